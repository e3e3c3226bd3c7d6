use std::time::SystemTime;
use versioned::{ColumnRole, Entity, Patch, Versioned};

#[derive(Versioned, Debug, Clone)]
pub struct Contact {
    #[key]
    pub id: i64,
    pub name: String,
    pub nickname: Option<String>,
    #[versioned(json)]
    pub profile: serde_json::Value,
    #[versioned(created_at)]
    pub created_at: SystemTime,
    #[versioned(updated_at)]
    pub updated_at: Option<SystemTime>,
    #[versioned(updated_by)]
    pub updated_by: Option<String>,
    #[version]
    pub version: u64,
}

fn main() {
    let roles: Vec<_> = Contact::TABLE.columns.iter().map(|c| c.role).collect();
    assert_eq!(
        roles,
        [
            ColumnRole::Key,
            ColumnRole::Data,
            ColumnRole::Data,
            ColumnRole::Data,
            ColumnRole::CreatedAt,
            ColumnRole::UpdatedAt,
            ColumnRole::UpdatedBy,
            ColumnRole::Version
        ]
    );

    // Builder style; `Option` fields take `Some`/`None` (None sets NULL).
    let patch = ContactPatch::default().name("Jo").nickname(None).updated_by(Some("Amy".to_string()));
    let changes = patch.into_changes().unwrap();
    assert_eq!(changes.iter().map(|c| c.column).collect::<Vec<_>>(), [1, 2, 6]);

    // Struct-literal style; timestamps are the store's and have no patch field. A JSON field is
    // set whole, or merged into.
    let patch = ContactPatch { profile: Some(serde_json::json!({"k": 1}).into()), ..Default::default() };
    let changes = patch.into_changes().unwrap();
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].value, versioned::ChangeValue::Set(versioned::Value::Text(r#"{"k":1}"#.into())));
    let doc = serde_json::json!({"k": 1});
    let patch = ContactPatch { profile: Some(versioned::JsonChange::Merge(doc)), ..Default::default() };
    assert!(matches!(patch.into_changes().unwrap()[0].value, versioned::ChangeValue::Merge(_)));
}
