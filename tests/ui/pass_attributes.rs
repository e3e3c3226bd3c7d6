use versioned::{ColumnType, Entity, Versioned};

#[derive(Versioned, Debug, Clone, PartialEq)]
struct BugReport {
    #[key]
    r#id: u32,
    #[versioned(column = "assigned_to")]
    assignee: Option<String>,
    #[versioned(json)]
    labels: Vec<String>,
    #[version]
    version: i32,
}

#[derive(Versioned)]
#[versioned(table = "people")]
struct Person {
    #[versioned(column = "person_id")]
    #[key]
    id: String,
    #[version]
    #[versioned(column = "_version")]
    rev: u16,
}

#[derive(Versioned)]
#[versioned(table = "notes", history(keep_days = 30))]
struct Note {
    #[key]
    id: i64,
    #[version]
    version: u64,
}

#[derive(Versioned)]
#[versioned(history)]
struct Kept {
    #[key]
    id: i64,
    #[version]
    version: u64,
}

fn keeps_history<T: versioned::WithHistory>() {}

fn main() {
    keeps_history::<Note>();
    keeps_history::<Kept>();
    let history = Note::TABLE.history.expect("history");
    assert_eq!((history.table, history.keep), ("notes_history", versioned::Retention::Seconds(30 * 86_400)));
    assert_eq!(Kept::TABLE.history.map(|h| h.keep), Some(versioned::Retention::All));
    assert!(Person::TABLE.history.is_none());

    let table = BugReport::TABLE;
    assert_eq!(table.name, "bug_report");
    assert_eq!(table.entity, "BugReport");
    let names: Vec<_> = table.columns.iter().map(|c| c.name).collect();
    assert_eq!(names, ["id", "assigned_to", "labels", "version"]);
    assert_eq!(table.columns[1].ty, ColumnType::Text);
    assert!(table.columns[1].nullable);
    assert_eq!(table.columns[2].ty, ColumnType::Json);
    assert_eq!((table.key, table.version, table.version_max), (0, 3, i32::MAX as u64));

    assert_eq!(Person::TABLE.name, "people");
    assert_eq!(Person::TABLE.key_column().name, "person_id");
    assert_eq!(Person::TABLE.version_column().name, "_version");
    assert_eq!(Person::TABLE.version_max, u64::from(u16::MAX));
}
