// Patches: `Debug`, `Clone` and `Deserialize` wherever their field types are; JSON fields set by
// their own type or merged on request; text fields; `delete_with_version` generated.
use versioned::{Check, ChangeValue, JsonChange, Patch, Store, Versioned};

#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, Copy, PartialEq)]
#[serde(rename_all = "snake_case")]
enum Status {
    Open,
    InProgress,
}

#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, PartialEq)]
struct Triage {
    severity: u8,
}

/// Neither `Clone` nor `Debug`: a patch with it is neither, and still a patch.
#[derive(serde::Serialize, serde::Deserialize)]
struct Opaque {
    secret: String,
}

#[derive(Versioned, Debug, Clone)]
#[versioned(table = "bugs")]
struct Bug {
    #[key]
    id: i64,
    title: String,
    #[versioned(text)]
    status: Status,
    #[versioned(text)]
    resolution: Option<Status>,
    #[versioned(json)]
    triage: Triage,
    #[versioned(json)]
    r#type: Option<String>,
    #[version]
    version: u64,
}

#[derive(Versioned)]
struct Vault {
    #[key]
    id: i64,
    #[versioned(json)]
    opaque: Opaque,
    #[version]
    version: u64,
}

/// Nothing to patch but the version: the patch still has every trait.
#[derive(Versioned)]
struct Marker {
    #[key]
    id: i64,
    #[version]
    version: u64,
}

fn is_clone_debug_deserialize<P: Clone + std::fmt::Debug + serde::de::DeserializeOwned>() {}

fn is_deserialize<P: serde::de::DeserializeOwned>() {}

fn main() {
    is_clone_debug_deserialize::<BugPatch>();
    is_deserialize::<VaultPatch>();
    is_clone_debug_deserialize::<MarkerPatch>();
    assert_eq!(format!("{:?}", MarkerPatch::default()), "MarkerPatch");

    // Builder: a JSON field is set by its own type, or merged into with `_merge`.
    let patch = BugPatch::default()
        .status(Status::InProgress)
        .resolution(None)
        .triage(Triage { severity: 1 })
        .r#type_merge(serde_json::json!("bug"));
    assert_eq!(patch.triage, Some(JsonChange::Set(Triage { severity: 1 })));
    assert_eq!(patch.r#type, Some(JsonChange::Merge(serde_json::json!("bug"))));
    let shown = format!("{:?}", patch.clone());
    assert!(shown.starts_with("BugPatch { title: None, status: Some(InProgress), resolution: Some(None)"), "{shown}");
    let changes = patch.into_changes().unwrap();
    assert_eq!(changes.iter().map(|c| c.column).collect::<Vec<_>>(), [2, 3, 4, 5]);
    assert_eq!(changes[0].value, ChangeValue::Set(versioned::Value::Text("in_progress".into())));
    assert_eq!(changes[1].value, ChangeValue::Set(versioned::Value::Null));
    assert_eq!(changes[2].value, ChangeValue::Set(versioned::Value::Text(r#"{"severity":1}"#.into())));
    assert!(matches!(changes[3].value, ChangeValue::Merge(_)));

    // Struct literal.
    let patch = BugPatch { triage: Some(Triage { severity: 2 }.into()), ..Default::default() };
    assert_eq!(patch.into_changes().unwrap().len(), 1);

    // From a PATCH body: absent kept, null is None, a raw identifier by its name.
    let body: BugPatch = serde_json::from_str(r#"{"resolution": null, "type": "bug"}"#).unwrap();
    assert_eq!((body.title, body.resolution), (None, Some(None)));
    assert_eq!(body.r#type, Some(JsonChange::Set(Some("bug".to_owned()))));
    let body: BugPatch = serde_json::from_str(r#"{"type": null}"#).unwrap();
    assert_eq!(body.r#type, Some(JsonChange::Set(None)), "null sets an Option JSON field to None");

    // A patch of a struct whose JSON type is neither `Clone` nor `Debug`.
    let patch = VaultPatch::default().opaque(Opaque { secret: "s".into() });
    assert_eq!(patch.into_changes().unwrap().len(), 1);

    let _ = |store: Store<versioned::MemoryStorage>| async move {
        Bug::delete_with_version(&store, &1, 2).await?;
        store.delete_with_version::<Bug>(&1, 2).await?;
        store.patch::<Bug>(&1, BugPatch::default(), Check::Unchecked).await.map(drop)
    };
}
