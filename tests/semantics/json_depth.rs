//! `#[versioned(json)]` documents nest at most `MAX_JSON_DEPTH` (127) arrays and objects deep, on
//! every backend: a deeper value is `Error::Encode` before anything is written (however deep: its
//! serialization stops at the limit), and a stored document deeper than that is `Error::Decode`
//! naming the table and column.

use serde::{Deserialize, Serialize};
use versioned::{Check, Error, JsonField, Storage, Store, Value, Versioned};

/// `versioned_core::value::MAX_JSON_DEPTH`.
const LIMIT: usize = 127;

/// n arrays inside one another (`[[…]]`), `null` for 0; serialized by recursion, as any
/// recursive type is.
#[derive(Debug, Clone, PartialEq)]
struct Nest(usize);

impl Serialize for Nest {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        if self.0 == 0 {
            return serializer.serialize_unit();
        }
        let mut seq = serializer.serialize_seq(Some(1))?;
        if self.0 > 1 {
            seq.serialize_element(&Nest(self.0 - 1))?;
        }
        seq.end()
    }
}

impl<'de> Deserialize<'de> for Nest {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Levels;
        impl<'de> serde::de::Visitor<'de> for Levels {
            type Value = Nest;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("nested arrays")
            }
            fn visit_unit<E>(self) -> Result<Nest, E> {
                Ok(Nest(0))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Nest, A::Error> {
                Ok(Nest(seq.next_element::<Nest>()?.map_or(1, |inner| inner.0 + 1)))
            }
        }
        deserializer.deserialize_any(Levels)
    }
}

#[derive(Versioned, Debug, Clone, PartialEq)]
#[versioned(table = "nests")]
struct Nested {
    #[key]
    id: i64,
    #[versioned(json)]
    body: Nest,
    #[version]
    version: u64,
}

/// JSON text stored as it is, through a `JsonField` of its own: to store what `Nested` would
/// never write.
#[derive(Debug, Clone, PartialEq)]
struct RawJson(String);

impl JsonField for RawJson {
    fn to_json(&self) -> Result<Value, String> {
        Ok(Value::Text(self.0.clone()))
    }

    fn from_json(value: Value) -> Result<Self, String> {
        match value {
            Value::Text(text) => Ok(RawJson(text)),
            other => Err(format!("expected text, found {}", other.describe())),
        }
    }
}

/// The same table as `Nested`, its document written as it is.
#[derive(Versioned, Debug, Clone, PartialEq)]
#[versioned(table = "nests")]
struct Raw {
    #[key]
    id: i64,
    #[versioned(json)]
    body: RawJson,
    #[version]
    version: u64,
}

#[derive(Versioned, Debug, Clone, PartialEq)]
#[versioned(table = "profiles")]
struct Profile {
    #[key]
    id: i64,
    #[versioned(json)]
    doc: serde_json::Value,
    #[version]
    version: u64,
}

#[track_caller]
fn assert_encode(err: Error, table: &str, column: &str) {
    match &err {
        Error::Encode { table: t, column: c, reason } if *t == table && *c == column => {
            assert!(reason.contains("deeper than 127"), "{reason}");
        }
        other => panic!("expected Encode of {table}.{column}, got {other:?}"),
    }
}

fn nested(depth: usize) -> serde_json::Value {
    let mut value = serde_json::json!({});
    for _ in 1..depth {
        value = serde_json::json!({ "a": value });
    }
    value
}

async fn scenario<S: Storage>(store: Store<S>) {
    store.create_table::<Nested>().await.unwrap();
    store.create_table::<Profile>().await.unwrap();

    // At the limit: written and read back.
    let mut deepest = Nested { id: 1, body: Nest(LIMIT), version: 0 };
    store.insert(&mut deepest).await.unwrap();
    assert_eq!(store.get::<Nested>(&1).await.unwrap(), Some(deepest.clone()));

    // One deeper: refused before anything is written, by every write.
    let mut deeper = Nested { id: 2, body: Nest(LIMIT + 1), version: 0 };
    assert_encode(store.insert(&mut deeper).await.unwrap_err(), "nests", "body");
    assert_encode(store.put_unchecked(&mut deeper).await.unwrap_err(), "nests", "body");
    assert_encode(store.insert_all(&mut [deeper.clone()]).await.unwrap_err(), "nests", "body");
    assert_eq!(store.get::<Nested>(&2).await.unwrap(), None);
    let mut over = Nested { body: Nest(LIMIT + 1), ..deepest.clone() };
    assert_encode(store.put(&mut over).await.unwrap_err(), "nests", "body");
    assert_encode(store.save(&mut over).await.unwrap_err(), "nests", "body");
    assert_encode(store.put_all(&mut [over.clone()]).await.unwrap_err(), "nests", "body");
    assert_eq!(over.version, 1, "a refused write leaves the copy as it was");
    assert_eq!(store.get::<Nested>(&1).await.unwrap(), Some(deepest.clone()));

    // 100,000 deep, on a runtime worker's stack: an error, not a stack overflow.
    let on_worker = store.clone();
    let endless = tokio::spawn(async move {
        let mut endless = Nested { id: 3, body: Nest(100_000), version: 0 };
        on_worker.insert(&mut endless).await
    });
    assert_encode(endless.await.expect("no crash").unwrap_err(), "nests", "body");
    assert_eq!(store.get::<Nested>(&3).await.unwrap(), None);

    // A merge that would go one past the limit is refused; the stored document stays.
    let mut profile = Profile { id: 1, doc: serde_json::json!({"a": {}}), version: 0 };
    store.insert(&mut profile).await.unwrap();
    let patch = ProfilePatch::default().doc(serde_json::json!({ "a": nested(LIMIT) }));
    assert_encode(store.patch::<Profile>(&1, patch, Check::Version(1)).await.unwrap_err(), "profiles", "doc");
    assert_eq!(store.get::<Profile>(&1).await.unwrap(), Some(profile));
    let patch = ProfilePatch::default().doc(serde_json::json!({ "a": nested(LIMIT - 1) }));
    let merged = store.patch::<Profile>(&1, patch, Check::Version(1)).await.unwrap();
    assert_eq!(merged.doc, serde_json::json!({ "a": nested(LIMIT - 1) }));

    // A stored document one past the limit (written as text) is not read: `Decode`, naming the
    // column.
    let text = "[".repeat(LIMIT + 1) + &"]".repeat(LIMIT + 1);
    store.insert(&mut Raw { id: 4, body: RawJson(text), version: 0 }).await.unwrap();
    match store.get::<Nested>(&4).await.unwrap_err() {
        Error::Decode { table: "nests", column: "body", reason } => {
            assert!(reason.contains("deeper than 127"), "{reason}")
        }
        other => panic!("expected Decode of nests.body, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory() {
    scenario(Store::memory()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("json.db").display());
    scenario(Store::sqlite(&url).await.expect("open SQLite file")).await;
}
