//! Fields stored by type rather than as they are: `#[versioned(text)]` enums in plain text
//! columns, and patches that set a `#[versioned(json)]` field whole, by its own type, or merge a
//! document into it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Contact, ContactPatch, jo, setup};
use crate::entity::Entity;
use crate::error::Error;
use crate::patch::{Check, JsonChange};
use crate::storage::Storage;
use crate::store::Store;
use crate::value::{Row, Value};

/// Where a bug stands: stored as text (`open`, `in_progress`, `closed`).
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Reported.
    Open,
    /// Someone works on it.
    InProgress,
    /// Done with.
    Closed,
}

/// How a bug was closed.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Resolution {
    /// Fixed.
    Fixed,
    /// Not to be fixed.
    WontFix,
}

/// A bug's triage, kept as a JSON document of a type of its own.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct Triage {
    /// 1 (highest) to 5.
    pub severity: u8,
    /// Notes by author.
    pub notes: BTreeMap<String, String>,
}

/// Slim3's Bug 838, with its status as text and its triage as JSON.
#[derive(versioned_derive::Versioned, Debug, Clone, PartialEq)]
#[versioned(crate = crate, table = "bugs")]
pub struct Bug {
    /// Key.
    #[key]
    pub id: i64,
    /// Title.
    pub title: String,
    /// A plain text column.
    #[versioned(text)]
    pub status: Status,
    /// A nullable text column: `NULL` while open.
    #[versioned(text)]
    pub resolution: Option<Resolution>,
    /// A JSON document.
    #[versioned(json)]
    pub triage: Triage,
    /// Version.
    #[version]
    pub version: u64,
}

fn bug_838() -> Bug {
    let notes = BTreeMap::from([("amy".to_owned(), "crashes on save".to_owned())]);
    Bug {
        id: 838,
        title: "Crash on save".into(),
        status: Status::Open,
        resolution: None,
        triage: Triage { severity: 2, notes },
        version: 0,
    }
}

async fn raw_row<S: Storage>(store: &Store<S>, id: i64) -> Row {
    store.backend().fetch(Bug::TABLE, &Value::Int(id)).await.expect("raw fetch").expect("the row")
}

/// A `#[versioned(text)]` field is a text column holding serde's name of the variant (`NULL` for
/// `None`), read back as the enum; stored text that names no variant is `Error::Decode` naming the
/// table and the column.
pub async fn text_fields_are_stored_as_plain_text<S: Storage>(store: &Store<S>) {
    store.create_table::<Bug>().await.expect("create bugs");
    assert_eq!(
        Bug::TABLE.columns.iter().map(|c| (c.name, c.ty, c.nullable)).collect::<Vec<_>>()[2..4],
        [("status", crate::ColumnType::Text, false), ("resolution", crate::ColumnType::Text, true)]
    );
    let mut bug = bug_838();
    bug.status = Status::InProgress;
    store.insert(&mut bug).await.expect("insert");
    assert_eq!(store.get::<Bug>(&838).await.expect("get"), Some(bug.clone()));
    let row = raw_row(store, 838).await;
    assert_eq!(row.get(2), Some(&Value::Text("in_progress".into())), "the variant's name, no JSON quotes");
    assert_eq!(row.get(3), Some(&Value::Null), "None is NULL");

    bug.status = Status::Closed;
    bug.resolution = Some(Resolution::WontFix);
    bug.put(store).await.expect("put");
    let row = raw_row(store, 838).await;
    assert_eq!((row.get(2), row.get(3)), (Some(&Value::Text("closed".into())), Some(&Value::Text("wont_fix".into()))));
    assert_eq!(store.get::<Bug>(&838).await.expect("get"), Some(bug.clone()));

    // Text written past the typed API that names no variant.
    let mut stored = Bug { id: 839, version: 1, ..bug }.to_row().expect("a row");
    stored.set(2, Value::Text("Closed".into())); // not serde's name: the case differs
    store.backend().insert(Bug::TABLE, stored).await.expect("raw insert");
    match store.get::<Bug>(&839).await {
        Err(Error::Decode { table: "bugs", column: "status", reason }) => {
            assert!(reason.contains("\"Closed\"") && reason.contains("unknown variant"), "{reason}");
        }
        other => panic!("expected Error::Decode naming bugs.status, got {other:?}"),
    }
}

/// A patch sets a text field, and sets a JSON field whole by its own type (keys the new value
/// lacks are gone) or merges a document into it on request (`_merge`: keys kept). A patch
/// deserialized from a `PATCH` body sets what it names (`null` is `None`) and keeps the rest.
pub async fn patches_set_typed_fields_and_merge_json_on_request<S: Storage>(store: &Store<S>) {
    store.create_table::<Bug>().await.expect("create bugs");
    let mut bug = bug_838();
    store.insert(&mut bug).await.expect("insert");

    let triage = Triage { severity: 1, notes: BTreeMap::from([("jim".to_owned(), "mine".to_owned())]) };
    let patch = BugPatch::default().status(Status::InProgress).triage(triage.clone());
    assert!(matches!(patch.clone().triage, Some(JsonChange::Set(_))), "a patch is Clone");
    assert!(format!("{patch:?}").contains("status: Some(InProgress)"), "a patch is Debug: {patch:?}");
    let patched = store.patch::<Bug>(&838, patch, Check::Version(1)).await.expect("set whole");
    assert_eq!(
        (patched.status, patched.resolution, &patched.triage, patched.version),
        (Status::InProgress, None, &triage, 2)
    );
    assert_eq!(raw_row(store, 838).await.get(2), Some(&Value::Text("in_progress".into())));

    let merge = BugPatch::default().triage_merge(serde_json::json!({"notes": {"amy": "still crashes"}}));
    let merged = store.patch::<Bug>(&838, merge, Check::Version(2)).await.expect("merge");
    let notes = BTreeMap::from([("amy".to_owned(), "still crashes".to_owned()), ("jim".to_owned(), "mine".to_owned())]);
    assert_eq!(merged.triage, Triage { severity: 1, notes }, "a merge keeps what it does not name");
    let bad = BugPatch::default().triage_merge(serde_json::json!({"severity": "high"}));
    match store.patch::<Bug>(&838, bad, Check::Unchecked).await {
        Err(Error::Decode { table: "bugs", column: "triage", .. }) => {}
        other => panic!("a merge that no longer reads as a Triage: {other:?}"),
    }

    // A PATCH body: what it names is set, `null` sets an `Option` to `None`, the rest is kept.
    let body: BugPatch = serde_json::from_str(r#"{"status": "closed", "resolution": "fixed"}"#).expect("body");
    let closed = store.patch::<Bug>(&838, body, Check::Version(3)).await.expect("closed");
    assert_eq!(
        (closed.status, closed.resolution, closed.title.as_str()),
        (Status::Closed, Some(Resolution::Fixed), "Crash on save")
    );
    let body: BugPatch =
        serde_json::from_str(r#"{"resolution": null, "triage": {"severity": 5, "notes": {}}}"#).expect("body");
    let reopened = store.patch::<Bug>(&838, body, Check::Version(4)).await.expect("null");
    assert_eq!((reopened.status, reopened.resolution, reopened.triage.severity), (Status::Closed, None, 5));
    assert!(reopened.triage.notes.is_empty(), "a JSON field in a body is set whole: {:?}", reopened.triage);
    assert_eq!(raw_row(store, 838).await.get(3), Some(&Value::Null));
    for refused in
        [r#"{"status": "shut"}"#, r#"{"title": null}"#, r#"{"version": 9}"#, r#"{"triage": {"severity": 1}}"#]
    {
        assert!(serde_json::from_str::<BugPatch>(refused).is_err(), "{refused} is not a patch of a Bug");
    }
    assert_eq!(store.get::<Bug>(&838).await.expect("get").map(|b| b.version), Some(5));

    // A `serde_json::Value` field is set whole too; `_merge` merges.
    setup(store).await;
    store.insert(&mut jo("Amy")).await.expect("insert");
    let set = ContactPatch::default().profile(serde_json::json!({"b": 2}));
    let contact = store.patch::<Contact>(&7, set, Check::Version(1)).await.expect("set");
    assert_eq!(contact.profile, serde_json::json!({"b": 2}));
    let merge = ContactPatch::default().profile_merge(serde_json::json!({"c": 3}));
    let contact = store.patch::<Contact>(&7, merge, Check::Version(2)).await.expect("merge");
    assert_eq!(contact.profile, serde_json::json!({"b": 2, "c": 3}));
}
