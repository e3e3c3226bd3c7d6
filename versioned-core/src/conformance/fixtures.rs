//! The suite's records and helpers: the structs its tests store (Slim3's `Person`, Kii's
//! `HighScore` and `Account`, OutSystems' `Contact`, …), `setup`, which creates their tables, and
//! the assertions and generators the tests share.

use std::fmt::Debug;
use std::time::{Duration, SystemTime};

use crate::error::{Error, StorageError};
use crate::retry::RetryPolicy;
use crate::storage::Storage;
use crate::store::Store;
use crate::transaction::Transaction;

/// Slim3's `Person`, with a `salary`.
#[derive(versioned_derive::Versioned, Debug, Clone, PartialEq)]
#[versioned(crate = crate, table = "people")]
pub struct Person {
    /// Key.
    #[key]
    pub id: i64,
    /// Name.
    pub name: String,
    /// Salary.
    pub salary: i32,
    /// Version.
    #[version]
    pub version: u64,
}

/// Kii's high-score record: a text key and a `u32` version.
#[derive(versioned_derive::Versioned, Debug, Clone, PartialEq)]
#[versioned(crate = crate)]
pub struct HighScore {
    /// Key.
    #[key]
    pub board: String,
    /// The high score.
    #[versioned(column = "highscore")]
    pub score: i64,
    /// Version.
    #[version]
    #[versioned(column = "_version")]
    pub version: u32,
}

/// A record whose `u8` version runs out quickly.
#[derive(versioned_derive::Versioned, Debug, Clone, PartialEq)]
#[versioned(crate = crate)]
pub struct Tiny {
    /// Key.
    #[key]
    pub id: i32,
    /// Some data.
    pub note: String,
    /// Version.
    #[version]
    pub version: u8,
}

/// Every kind of field: options, floats, bytes, bools, unsigned integers and JSON.
#[derive(versioned_derive::Versioned, Debug, Clone, PartialEq)]
#[versioned(crate = crate)]
pub struct Everything {
    /// Key.
    #[key]
    pub id: String,
    /// A nullable column.
    pub nickname: Option<String>,
    /// Another nullable column.
    pub rank: Option<i16>,
    /// A float.
    pub ratio: f64,
    /// A bool.
    pub active: bool,
    /// Bytes.
    pub blob: Vec<u8>,
    /// An unsigned 64-bit integer: values above `i64::MAX` cannot be stored.
    pub big: u64,
    /// A JSON document.
    #[versioned(json)]
    pub meta: serde_json::Value,
    /// Version.
    #[version]
    pub version: i64,
}

/// A counter, for sequence numbers.
#[derive(versioned_derive::Versioned, Debug, Clone, PartialEq)]
#[versioned(crate = crate)]
pub struct Counter {
    /// Key.
    #[key]
    pub name: String,
    /// The last number handed out.
    pub n: i64,
    /// Version.
    #[version]
    pub version: u64,
}

/// An account of Kii's balance book.
#[derive(versioned_derive::Versioned, Debug, Clone, PartialEq)]
#[versioned(crate = crate)]
pub struct Account {
    /// Key.
    #[key]
    pub id: i32,
    /// Balance.
    pub balance: i64,
    /// Version.
    #[version]
    pub version: u64,
}

/// Counts kept as a typed JSON document: a merge must still decode into the map.
#[derive(versioned_derive::Versioned, Debug, Clone, PartialEq)]
#[versioned(crate = crate)]
pub struct Tally {
    /// Key.
    #[key]
    pub id: i64,
    /// Counts by name.
    #[versioned(json)]
    pub counts: std::collections::BTreeMap<String, i32>,
    /// Version.
    #[version]
    pub version: u64,
}

/// OutSystems' contact, with audit fields and a JSON profile.
#[derive(versioned_derive::Versioned, Debug, Clone, PartialEq)]
#[versioned(crate = crate)]
pub struct Contact {
    /// Key.
    #[key]
    pub id: i64,
    /// Name.
    pub name: String,
    /// Phone.
    pub phone: String,
    /// A free-form JSON profile.
    #[versioned(json)]
    pub profile: serde_json::Value,
    /// Set by the store on insert.
    #[versioned(created_at)]
    pub created_at: SystemTime,
    /// Set by the store on every write.
    #[versioned(updated_at)]
    pub updated_at: SystemTime,
    /// Who made the last write.
    #[versioned(updated_by)]
    pub updated_by: String,
    /// Version.
    #[version]
    pub version: u32,
}

pub(crate) fn jo(by: &str) -> Contact {
    Contact {
        id: 7,
        name: "Jo Doe".into(),
        phone: "555-0100".into(),
        profile: serde_json::json!({"a": 1, "nested": {"x": 1, "y": 2}}),
        created_at: SystemTime::UNIX_EPOCH,
        updated_at: SystemTime::UNIX_EPOCH,
        updated_by: by.into(),
        version: 0,
    }
}

/// Two records of every field type: one with every value set (the extremes where there are
/// any), one with every `Option` empty.
pub(crate) fn everything() -> [Everything; 2] {
    [
        Everything {
            id: "full".into(),
            nickname: Some("Nick".into()),
            rank: Some(-3),
            ratio: 0.25,
            active: true,
            blob: vec![0, 1, 254, 255],
            big: i64::MAX as u64,
            meta: serde_json::json!({"tags": ["a", "b"], "nested": {"level": 2}}),
            version: 0,
        },
        Everything {
            id: "empty".into(),
            nickname: None,
            rank: None,
            ratio: -1.5,
            active: false,
            blob: vec![],
            big: 0,
            meta: serde_json::Value::Null,
            version: 0,
        },
    ]
}

pub(crate) async fn setup<S: Storage>(store: &Store<S>) {
    store.create_table::<Person>().await.expect("create people");
    store.create_table::<HighScore>().await.expect("create high_score");
    store.create_table::<Tiny>().await.expect("create tiny");
    store.create_table::<Everything>().await.expect("create everything");
    store.create_table::<Counter>().await.expect("create counter");
    store.create_table::<Account>().await.expect("create account");
    store.create_table::<Contact>().await.expect("create contact");
    store.create_table::<Tally>().await.expect("create tally");
}

/// Patient enough that a test under heavy contention never runs out of attempts.
pub(crate) fn patient() -> RetryPolicy {
    RetryPolicy { max_attempts: 100_000, max_backoff: Duration::from_millis(5), ..RetryPolicy::default() }
}

/// A small deterministic generator (xorshift), so the transfer test needs no dependency.
pub(crate) struct Xorshift(pub(crate) u64);

impl Xorshift {
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }

    /// Two different accounts among `accounts` (numbered from 0), to transfer between.
    pub(crate) fn two_accounts(&mut self, accounts: i32) -> (i32, i32) {
        let n = accounts.max(2) as u64;
        let from = self.below(n) as i32;
        (from, (from + 1 + self.below(n - 1) as i32) % n as i32)
    }
}

/// Moves `amount` from account `from` to account `to` inside `tx`: both read, both written with
/// checked puts.
pub(crate) async fn transfer<S: Storage>(tx: &Transaction<S>, from: i32, to: i32, amount: i64) -> Result<(), Error> {
    let missing = |id| move || Error::not_found::<Account>(&id);
    let mut a = tx.get::<Account>(&from).await?.ok_or_else(missing(from))?;
    let mut b = tx.get::<Account>(&to).await?.ok_or_else(missing(to))?;
    a.balance -= amount;
    b.balance += amount;
    tx.put(&mut a).await?;
    tx.put(&mut b).await
}

/// A `Tiny` record written until its `u8` version is at the maximum, 255.
pub(crate) async fn tiny_at_maximum<S: Storage>(store: &Store<S>, note: &str) -> Tiny {
    let mut t = Tiny { id: 1, note: note.into(), version: 0 };
    store.insert(&mut t).await.expect("insert");
    for _ in 1..u8::MAX {
        t.put(store).await.expect("put below the maximum");
    }
    t
}

pub(crate) fn ann() -> Person {
    Person { id: 1, name: "Ann".into(), salary: 100, version: 0 }
}

#[track_caller]
pub(crate) fn assert_conflict(err: &Error, expected: u64, actual: Option<u64>) {
    match err {
        Error::ConcurrentModification { expected: e, actual: a, .. } => {
            assert_eq!((*e, *a), (expected, actual), "conflict versions (expected, actual)");
        }
        other => panic!("expected ConcurrentModification, got {other:?}"),
    }
}

#[track_caller]
pub(crate) fn assert_unchanged<T: PartialEq + Debug>(after: &T, before: &T) {
    assert_eq!(after, before, "a failed write must leave the caller's struct exactly as it was");
}

/// The closure's own failure, to roll a transaction back on purpose.
pub(crate) fn abort() -> Error {
    StorageError::new("aborted by the test").into()
}

pub(crate) async fn person<S: Storage>(store: &Store<S>, id: i64) -> Option<Person> {
    store.get::<Person>(&id).await.expect("get person")
}
