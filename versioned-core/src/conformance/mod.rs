//! The backend conformance suite: the semantics table of `versioned`, as tests any backend runs.
//!
//! Each public `async fn` here checks one rule on a fresh [`Store`] and panics (it is test code)
//! when the backend breaks it. [`conformance_tests!`](crate::conformance_tests) turns the whole
//! suite into `#[tokio::test]`s for a backend, given a function that makes an empty store (or a
//! fixture that is `AsRef<Store<_>>`, to keep a temporary directory alive), wrapped in `Some` —
//! `None` skips the test, for a server backend that is not configured on this machine:
//!
//! ```ignore
//! versioned::conformance_tests!(|| async { Some(versioned::Store::memory()) });
//! ```
//!
//! The stories of the source documents are here too: Slim3's salary update, Kii's high-score race.

use std::collections::BTreeSet;
use std::fmt::Debug;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime};

use crate::error::Error;
use crate::patch::Check;
use crate::retry::RetryPolicy;
use crate::storage::Storage;
use crate::store::Store;
use crate::transaction::Transaction;
use crate::value::Value;

mod bad_patches;
mod batches;
mod cancellation;
mod faults;
mod integrity;
mod keyed_delete;
mod locking;
mod mappings;
mod misuse;
mod transactions;
mod typed_fields;
mod unstorable_versions;

pub use bad_patches::*;
pub use batches::*;
pub use cancellation::*;
pub use faults::{Fault, FaultPlan, FaultyStorage, FaultyTransaction, faults_never_leave_half_an_operation};
pub use integrity::*;
pub use keyed_delete::*;
pub use locking::*;
pub use mappings::{
    a_narrower_struct_used_first_keeps_the_columns_it_lacks,
    a_wider_struct_used_first_leaves_a_narrower_one_its_columns, narrow_first, wide_first,
};
pub use misuse::*;
pub use transactions::*;
pub use typed_fields::*;
pub use unstorable_versions::*;

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

fn jo(by: &str) -> Contact {
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

/// The names of every test of the suite, for [`conformance_tests!`](crate::conformance_tests).
#[macro_export]
macro_rules! conformance_tests {
    ($make:expr) => {
        $crate::conformance_tests!(@each $make;
            insert_sets_version_one,
            a_version_above_what_storage_holds_is_a_conflict,
            a_put_of_a_value_storage_cannot_hold_writes_nothing,
            a_patch_naming_a_column_the_table_lacks_is_refused,
            a_narrower_struct_used_first_keeps_the_columns_it_lacks,
            a_wider_struct_used_first_leaves_a_narrower_one_its_columns,
            insert_existing_key_is_already_exists,
            get_returns_stored_record_or_none,
            get_with_version_checks_the_version,
            put_replaces_all_columns_and_increments,
            stale_put_is_refused_and_leaves_caller_unchanged,
            slim3_salary_story,
            stale_put_never_reinserts_deleted_record,
            put_unchecked_overwrites_and_never_reuses_a_version,
            kii_high_score_race,
            delete_is_checked,
            delete_through_stale_copy_of_deleted_record_says_gone,
            delete_unchecked_removes_whatever_the_version,
            delete_with_version_is_checked,
            version_at_maximum_refuses_to_increment,
            conflict_current_decodes_to_stored_struct,
            every_field_type_round_trips,
            unstorable_value_is_refused_and_nothing_stored,
            operations_run_inside_tokio_spawn,
            kii_balance_failure_is_rolled_back,
            transaction_commits_all_writes_at_once_and_reads_its_own,
            transaction_closure_error_rolls_back_and_is_returned_unchanged,
            derived_helpers_work_inside_a_transaction,
            concurrent_update_counts_exactly,
            concurrent_transfers_keep_the_sum,
            get_for_update_blocks_a_second_writer_until_commit,
            retries_exhausted_carries_the_last_conflict,
            dropped_transaction_future_leaves_nothing_behind,
            patch_changes_only_the_given_columns,
            stale_patch_is_refused_and_changes_nothing,
            patch_of_a_missing_record_never_creates_it,
            kii_update_options_two_by_two,
            json_patch_merges_every_level_and_keeps_keys,
            concurrent_json_patches_lose_no_merge,
            text_fields_are_stored_as_plain_text,
            patches_set_typed_fields_and_merge_json_on_request,
            audit_fields_are_set_by_the_store,
            conflict_says_who_changed_the_record,
            touch_increments_only_the_version,
            touch_guards_a_group_of_records,
            patch_and_touch_inside_transactions,
            patch_and_touch_refuse_to_overflow,
            corrupt_stored_versions_are_refused_by_every_operation,
            a_patch_that_could_not_be_read_back_writes_nothing,
            a_row_that_no_longer_decodes_is_never_patched,
            cancelled_transactions_commit_whole_or_not_at_all,
            store_writes_inside_its_own_transaction_fail_fast,
            lock_waits_end_in_lock_timeout,
            copies_of_a_rolled_back_transaction_stay_usable,
            retried_attempts_start_from_untouched_copies,
            a_failed_savepoint_undoes_only_its_own_writes,
            savepoints_nest,
            savepoints_cannot_be_misused,
            a_savepoint_recovers_from_a_lock_refused_inside_it,
            read_transactions_see_one_snapshot_and_refuse_writes,
            read_transactions_never_see_half_a_transfer,
            save_inserts_new_copies_and_checks_the_others,
            refresh_reloads_and_unchanged_puts_still_count,
            insert_all_is_all_or_nothing,
            put_all_checks_every_record_and_reports_every_conflict,
            delete_all_is_checked_and_all_or_nothing,
            a_refused_batch_inside_a_transaction_is_undone_alone,
            batches_carry_every_field_type,
            faults_never_leave_half_an_operation
        );
    };
    (@each $make:expr; $($name:ident),* $(,)?) => {$(
        #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            // `None`: the backend is not configured here (a server test without its URL).
            let Some(fixture) = ($make)().await else { return };
            $crate::conformance::$name(::core::convert::AsRef::as_ref(&fixture)).await;
        }
    )*};
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
async fn tiny_at_maximum<S: Storage>(store: &Store<S>, note: &str) -> Tiny {
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
fn assert_conflict(err: &Error, expected: u64, actual: Option<u64>) {
    match err {
        Error::ConcurrentModification { expected: e, actual: a, .. } => {
            assert_eq!((*e, *a), (expected, actual), "conflict versions (expected, actual)");
        }
        other => panic!("expected ConcurrentModification, got {other:?}"),
    }
}

#[track_caller]
fn assert_unchanged<T: PartialEq + Debug>(after: &T, before: &T) {
    assert_eq!(after, before, "a failed write must leave the caller's struct exactly as it was");
}

/// `insert` stores the record with version 1, in the store and in the struct.
pub async fn insert_sets_version_one<S: Storage>(store: &Store<S>) {
    setup(store).await;
    let mut p = Person { version: 42, ..ann() };
    store.insert(&mut p).await.expect("insert");
    assert_eq!(p.version, 1);
    assert_eq!(store.get::<Person>(&1).await.expect("get"), Some(Person { version: 1, ..ann() }));
}

/// Inserting an existing key is `AlreadyExists`, not a conflict, and changes nothing.
pub async fn insert_existing_key_is_already_exists<S: Storage>(store: &Store<S>) {
    setup(store).await;
    store.insert(&mut ann()).await.expect("first insert");
    let mut again = Person { name: "Impostor".into(), ..ann() };
    let before = again.clone();
    let err = store.insert(&mut again).await.expect_err("second insert must fail");
    assert!(matches!(&err, Error::AlreadyExists { table: "people", key: Value::Int(1) }), "{err:?}");
    assert!(!err.is_conflict() && !err.is_retryable());
    assert_unchanged(&again, &before);
    assert_eq!(store.get::<Person>(&1).await.expect("get").map(|p| p.name), Some("Ann".into()));
}

/// `get` gives the stored record, or `None`.
pub async fn get_returns_stored_record_or_none<S: Storage>(store: &Store<S>) {
    setup(store).await;
    assert_eq!(store.get::<Person>(&1).await.expect("get"), None);
    let mut p = ann();
    store.insert(&mut p).await.expect("insert");
    assert_eq!(store.get::<Person>(&1).await.expect("get"), Some(p));
    assert_eq!(store.get::<Person>(&2).await.expect("get"), None);
}

/// `get_with_version` (Slim3): the record when versions match; a conflict with both versions when
/// they differ; `NotFound` when there is no record.
pub async fn get_with_version_checks_the_version<S: Storage>(store: &Store<S>) {
    setup(store).await;
    let mut p = ann();
    store.insert(&mut p).await.expect("insert");
    assert_eq!(Person::get_with_version(store, &1, 1).await.expect("matching version"), p);

    let err = Person::get_with_version(store, &1, 7).await.expect_err("wrong version");
    assert_conflict(&err, 7, Some(1));
    assert!(err.is_retryable());

    let err = Person::get_with_version(store, &99, 1).await.expect_err("missing");
    assert!(matches!(err, Error::NotFound { table: "people", key: Value::Int(99) }), "{err:?}");
}

/// A checked `put` replaces every column and increments the version in store and struct.
pub async fn put_replaces_all_columns_and_increments<S: Storage>(store: &Store<S>) {
    setup(store).await;
    let mut p = ann();
    p.insert(store).await.expect("insert");
    p.name = "Ann B.".into();
    p.salary = 120;
    p.put(store).await.expect("put");
    assert_eq!(p.version, 2);
    p.salary = 130;
    p.put(store).await.expect("second put");
    assert_eq!(p.version, 3);
    let stored = Person::get(store, &1).await.expect("get").expect("present");
    assert_eq!(stored, Person { id: 1, name: "Ann B.".into(), salary: 130, version: 3 });
}

/// A `put` through a stale copy is refused with both versions, writes nothing, and leaves the
/// caller's struct exactly as it was.
pub async fn stale_put_is_refused_and_leaves_caller_unchanged<S: Storage>(store: &Store<S>) {
    setup(store).await;
    store.insert(&mut ann()).await.expect("insert");
    let mut fresh = store.get::<Person>(&1).await.expect("get").expect("present");
    let mut stale = fresh.clone();
    fresh.salary = 200;
    fresh.put(store).await.expect("fresh put");

    stale.salary = 1;
    stale.name = "Stale".into();
    let before = stale.clone();
    let err = stale.put(store).await.expect_err("stale put");
    assert_conflict(&err, 1, Some(2));
    assert_unchanged(&stale, &before);
    assert_eq!(store.get::<Person>(&1).await.expect("get"), Some(fresh));
}

/// Slim3's `updateSalary(key, version, newSalary)`: a stale `get_with_version` and a stale `put`
/// are both `ConcurrentModification` with the right versions.
pub async fn slim3_salary_story<S: Storage>(store: &Store<S>) {
    setup(store).await;
    store.insert(&mut ann()).await.expect("insert");

    // Two requests render the record at version 1.
    let shown_to_a = 1;
    let shown_to_b = 1;

    let mut p = Person::get_with_version(store, &1, shown_to_a).await.expect("A reads");
    p.salary = 150;
    p.put(store).await.expect("A updates the salary");

    // B's request carries the version B saw: the read already fails.
    let err = Person::get_with_version(store, &1, shown_to_b).await.expect_err("B's read is stale");
    assert_conflict(&err, 1, Some(2));

    // And had B read before A's write, B's put fails.
    let mut b = Person { salary: 90, version: shown_to_b, ..ann() };
    let err = b.put(store).await.expect_err("B's put is stale");
    assert_conflict(&err, 1, Some(2));
    assert_eq!(store.get::<Person>(&1).await.expect("get").map(|p| p.salary), Some(150));
}

/// A stale `put` of a record deleted meanwhile is a conflict saying it is gone, and never
/// re-inserts it.
pub async fn stale_put_never_reinserts_deleted_record<S: Storage>(store: &Store<S>) {
    setup(store).await;
    let mut p = ann();
    store.insert(&mut p).await.expect("insert");
    let mut stale = p.clone();
    store.delete(&p).await.expect("delete");

    stale.salary = 999;
    let err = store.put(&mut stale).await.expect_err("put of deleted record");
    assert_conflict(&err, 1, None);
    assert!(matches!(&err, Error::ConcurrentModification { current: None, .. }));
    assert_eq!(stale.version, 1);
    assert_eq!(store.get::<Person>(&1).await.expect("get"), None, "a stale put must not re-insert");
}

/// `put_unchecked` (force): inserts a new record at version 1; overwrites an existing one whatever
/// the caller's version, at stored version + 1, never reusing a version.
pub async fn put_unchecked_overwrites_and_never_reuses_a_version<S: Storage>(store: &Store<S>) {
    setup(store).await;
    let mut p = Person { version: 17, ..ann() };
    store.put_unchecked(&mut p).await.expect("force insert");
    assert_eq!(p.version, 1);

    let mut other = store.get::<Person>(&1).await.expect("get").expect("present");
    other.salary = 300;
    other.put(store).await.expect("checked put");
    assert_eq!(other.version, 2);

    // `p` is stale (version 1); forcing it wins, at version 3.
    p.name = "Forced".into();
    store.put_unchecked(&mut p).await.expect("force update");
    assert_eq!(p.version, 3);
    assert_eq!(
        store.get::<Person>(&1).await.expect("get"),
        Some(Person { id: 1, name: "Forced".into(), salary: 100, version: 3 })
    );
}

/// Kii's high-score race: A and B both read 60; A writes 87; B's 76 is refused by the check and a
/// retry from a fresh read keeps 87. Without the check B's 76 wins and A's update is lost.
pub async fn kii_high_score_race<S: Storage>(store: &Store<S>) {
    setup(store).await;
    let board = "global".to_string();
    store.insert(&mut HighScore { board: board.clone(), score: 60, version: 0 }).await.expect("insert");

    // With the overwrite check.
    let mut a = store.get::<HighScore>(&board).await.expect("A gets").expect("present");
    let mut b = store.get::<HighScore>(&board).await.expect("B gets").expect("present");
    a.score = a.score.max(87);
    b.score = b.score.max(76);
    a.put(store).await.expect("A updates");
    let err = b.put(store).await.expect_err("B's update must be refused");
    assert_conflict(&err, 1, Some(2));
    // B repeats from step 2: a fresh read, and 76 is not a new high score.
    let mut b = store.get::<HighScore>(&board).await.expect("B gets again").expect("present");
    if 76 > b.score {
        b.score = 76;
        b.put(store).await.expect("B updates");
    }
    assert_eq!(store.get::<HighScore>(&board).await.expect("get").map(|h| h.score), Some(87));

    // Without the overwrite check: the same race loses A's update.
    let reset = &mut store.get::<HighScore>(&board).await.expect("get").expect("present");
    reset.score = 60;
    reset.put(store).await.expect("reset to 60");
    let mut a = store.get::<HighScore>(&board).await.expect("A gets").expect("present");
    let mut b = store.get::<HighScore>(&board).await.expect("B gets").expect("present");
    a.score = 87;
    b.score = 76;
    a.put_unchecked(store).await.expect("A forces");
    b.put_unchecked(store).await.expect("B forces");
    assert_eq!(
        store.get::<HighScore>(&board).await.expect("get").map(|h| h.score),
        Some(76),
        "without the check, the last writer wins and A's 87 is lost"
    );
}

/// A checked `delete` removes the record only at the stored version; a stale one is a conflict
/// that leaves the record in place.
pub async fn delete_is_checked<S: Storage>(store: &Store<S>) {
    setup(store).await;
    let mut p = ann();
    store.insert(&mut p).await.expect("insert");
    let stale = p.clone();
    p.salary = 1;
    p.put(store).await.expect("put");

    let err = store.delete(&stale).await.expect_err("stale delete");
    assert_conflict(&err, 1, Some(2));
    assert!(store.get::<Person>(&1).await.expect("get").is_some());

    p.delete(store).await.expect("delete at current version");
    assert_eq!(store.get::<Person>(&1).await.expect("get"), None);
}

/// Deleting through a stale copy after the record was already deleted is a conflict that says the
/// record is gone (`actual: None`).
pub async fn delete_through_stale_copy_of_deleted_record_says_gone<S: Storage>(store: &Store<S>) {
    setup(store).await;
    let mut p = ann();
    store.insert(&mut p).await.expect("insert");
    store.delete(&p).await.expect("first delete");
    let err = store.delete(&p).await.expect_err("second delete");
    assert_conflict(&err, 1, None);
    assert!(err.current::<Person>().is_none());
}

/// `delete_unchecked` removes the record whatever its version and says whether one was there.
pub async fn delete_unchecked_removes_whatever_the_version<S: Storage>(store: &Store<S>) {
    setup(store).await;
    let mut p = ann();
    store.insert(&mut p).await.expect("insert");
    p.put(store).await.expect("put");
    assert!(store.delete_unchecked::<Person>(&1).await.expect("delete"));
    assert!(!store.delete_unchecked::<Person>(&1).await.expect("delete again"));
    assert_eq!(store.get::<Person>(&1).await.expect("get"), None);
}

/// A version at its type's maximum refuses to increment, checked or forced, and nothing changes.
pub async fn version_at_maximum_refuses_to_increment<S: Storage>(store: &Store<S>) {
    setup(store).await;
    let mut t = tiny_at_maximum(store, "start").await;
    assert_eq!(t.version, u8::MAX);

    t.note = "one too many".into();
    let before = t.clone();
    let err = t.put(store).await.expect_err("put at the maximum");
    assert!(matches!(err, Error::VersionOverflow { version: 255, .. }), "{err:?}");
    assert_unchanged(&t, &before);

    let err = t.put_unchecked(store).await.expect_err("forced put at the maximum");
    assert!(matches!(err, Error::VersionOverflow { .. }), "{err:?}");
    assert_unchanged(&t, &before);

    let stored = store.get::<Tiny>(&1).await.expect("get").expect("present");
    assert_eq!((stored.note.as_str(), stored.version), ("start", u8::MAX));
}

/// A conflict carries the stored record, and `current::<T>()` decodes it.
pub async fn conflict_current_decodes_to_stored_struct<S: Storage>(store: &Store<S>) {
    setup(store).await;
    store.insert(&mut ann()).await.expect("insert");
    let mut mine = store.get::<Person>(&1).await.expect("get").expect("present");
    let mut theirs = mine.clone();
    theirs.name = "Ann (theirs)".into();
    theirs.put(store).await.expect("their put");

    mine.salary = 5;
    let err = mine.put(store).await.expect_err("my put");
    let current = err.current::<Person>().expect("a stored record").expect("decodes");
    assert_eq!(current, theirs);
    assert!(err.current::<Tiny>().is_none(), "a record of another table is not decoded");
    assert!(err.to_string().contains("expected version 1"), "{err}");
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

/// Every supported field type, `NULL`s and JSON round-trip unchanged.
pub async fn every_field_type_round_trips<S: Storage>(store: &Store<S>) {
    setup(store).await;
    let [mut full, mut empty] = everything();
    store.insert(&mut full).await.expect("insert full");
    store.insert(&mut empty).await.expect("insert empty");
    assert_eq!(store.get::<Everything>(&"full".to_string()).await.expect("get"), Some(full));
    assert_eq!(store.get::<Everything>(&"empty".to_string()).await.expect("get"), Some(empty));
}

/// A value that cannot be stored (a `u64` above `i64::MAX`) is an `Encode` error naming the column,
/// and nothing is written.
pub async fn unstorable_value_is_refused_and_nothing_stored<S: Storage>(store: &Store<S>) {
    setup(store).await;
    let mut e = Everything {
        id: "big".into(),
        nickname: None,
        rank: None,
        ratio: 0.0,
        active: false,
        blob: vec![],
        big: u64::MAX,
        meta: serde_json::json!({}),
        version: 0,
    };
    let err = store.insert(&mut e).await.expect_err("u64::MAX cannot be stored");
    assert!(matches!(err, Error::Encode { table: "everything", column: "big", .. }), "{err:?}");
    assert_eq!(e.version, 0);
    assert_eq!(store.get::<Everything>(&"big".to_string()).await.expect("get"), None);
}

/// Every operation's future is `Send`: it runs inside `tokio::spawn`.
pub async fn operations_run_inside_tokio_spawn<S: Storage + Clone>(store: &Store<S>) {
    setup(store).await;
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut p = Person { id: i, name: format!("P{i}"), salary: 10, version: 0 };
                store.insert(&mut p).await?;
                let mut p = Person::get_with_version(&store, &i, 1).await?;
                p.salary += 1;
                p.put(&store).await?;
                store.put_unchecked(&mut p).await?;
                let found = store.get::<Person>(&i).await?;
                store.delete(&p).await?;
                store.delete_unchecked::<Person>(&i).await?;
                Ok::<_, Error>(found.map(|p| (p.salary, p.version)))
            })
        })
        .collect();
    for handle in handles {
        assert_eq!(handle.await.expect("task").expect("operations"), Some((11, 3)));
    }
}

/// Kii's balance book, done right: two puts in one transaction, the second stale. The conflict
/// rolls the first back: after the error, the first record is unchanged in the store.
pub async fn kii_balance_failure_is_rolled_back<S: Storage>(store: &Store<S>) {
    setup(store).await;
    store.insert(&mut Account { id: 1, balance: 100, version: 0 }).await.expect("insert 1");
    store.insert(&mut Account { id: 2, balance: 100, version: 0 }).await.expect("insert 2");

    // This device read account 2 earlier; another device has updated it since.
    let stale_two = store.get::<Account>(&2).await.expect("get").expect("present");
    let mut other = stale_two.clone();
    other.balance = 500;
    other.put(store).await.expect("the other device's update");

    let err = store
        .transaction(|tx| async move {
            let mut one = tx.get::<Account>(&1).await?.ok_or_else(|| Error::not_found::<Account>(&1))?;
            let mut two = stale_two;
            one.balance -= 10;
            two.balance += 10;
            tx.put(&mut one).await?; // Update B1: succeeds inside the transaction
            tx.put(&mut two).await?; // Update B2: stale, fails
            Ok(())
        })
        .await
        .expect_err("the second put is stale");
    assert_conflict(&err, 1, Some(2));
    assert_eq!(
        store.get::<Account>(&1).await.expect("get"),
        Some(Account { id: 1, balance: 100, version: 1 }),
        "the first write must have been rolled back"
    );
    assert_eq!(store.get::<Account>(&2).await.expect("get").map(|a| a.balance), Some(500));
}

/// A transaction's reads see its own writes; nobody else sees them before commit; after commit
/// all of them are there.
pub async fn transaction_commits_all_writes_at_once_and_reads_its_own<S: Storage>(store: &Store<S>) {
    setup(store).await;
    store.insert(&mut Account { id: 1, balance: 10, version: 0 }).await.expect("insert");
    let outside = store.clone();
    let seen_outside = store
        .transaction(|tx| async move {
            let mut one = tx.get::<Account>(&1).await?.ok_or_else(|| Error::not_found::<Account>(&1))?;
            one.balance = 20;
            tx.put(&mut one).await?;
            tx.insert(&mut Account { id: 2, balance: 30, version: 0 }).await?;
            assert_eq!(tx.get::<Account>(&1).await?.map(|a| (a.balance, a.version)), Some((20, 2)));
            assert_eq!(tx.get::<Account>(&2).await?.map(|a| a.balance), Some(30));
            let err = tx.insert(&mut Account { id: 2, balance: 0, version: 0 }).await.expect_err("own insert");
            assert!(matches!(err, Error::AlreadyExists { .. }), "{err:?}");
            tx.delete_unchecked::<Account>(&2).await?;
            assert_eq!(tx.get::<Account>(&2).await?, None);
            tx.insert(&mut Account { id: 3, balance: 40, version: 0 }).await?;
            // Another task, on another connection, sees none of it yet.
            let reader = tokio::spawn(async move {
                Ok::<_, Error>((
                    outside.get::<Account>(&1).await?.map(|a| a.balance),
                    outside.get::<Account>(&3).await?,
                ))
            });
            reader.await.expect("reader task")
        })
        .await
        .expect("transaction");
    assert_eq!(seen_outside, (Some(10), None));
    assert_eq!(store.get::<Account>(&1).await.expect("get").map(|a| (a.balance, a.version)), Some((20, 2)));
    assert_eq!(store.get::<Account>(&2).await.expect("get"), None);
    assert_eq!(store.get::<Account>(&3).await.expect("get").map(|a| a.balance), Some(40));
}

/// Any error from the closure rolls everything back and comes back unchanged.
pub async fn transaction_closure_error_rolls_back_and_is_returned_unchanged<S: Storage>(store: &Store<S>) {
    setup(store).await;
    let err = store
        .transaction(|tx| async move {
            tx.insert(&mut Account { id: 1, balance: 1, version: 0 }).await?;
            tx.get_with_version::<Account>(&99, 1).await?; // NotFound
            Ok(())
        })
        .await
        .expect_err("closure fails");
    assert!(matches!(err, Error::NotFound { table: "account", key: Value::Int(99) }), "{err:?}");
    assert_eq!(store.get::<Account>(&1).await.expect("get"), None);
}

/// The derive's helpers take a transaction as well as a store.
pub async fn derived_helpers_work_inside_a_transaction<S: Storage>(store: &Store<S>) {
    setup(store).await;
    store
        .transaction(|tx| async move {
            let mut p = ann();
            p.insert(&tx).await?;
            let mut p = Person::get_with_version(&tx, &1, 1).await?;
            p.salary = 111;
            p.put(&tx).await?;
            p.put_unchecked(&tx).await?;
            assert_eq!(Person::get(&tx, &1).await?.map(|p| (p.salary, p.version)), Some((111, 3)));
            Ok(())
        })
        .await
        .expect("transaction");
    assert_eq!(store.get::<Person>(&1).await.expect("get").map(|p| p.version), Some(3));
}

/// 16 tasks x 200 increments of one counter through `update`: exactly 3,200, every number unique.
pub async fn concurrent_update_counts_exactly<S: Storage>(store: &Store<S>) {
    const TASKS: usize = 16;
    const EACH: usize = 200;
    setup(store).await;
    let key = "orders".to_string();
    store.insert(&mut Counter { name: key.clone(), n: 0, version: 0 }).await.expect("insert");
    let tasks: Vec<_> = (0..TASKS)
        .map(|_| {
            let (store, key) = (store.clone(), key.clone());
            tokio::spawn(async move {
                let mut drawn = Vec::with_capacity(EACH);
                for _ in 0..EACH {
                    drawn.push(
                        store
                            .update::<Counter, _>(&key, patient(), |c| {
                                c.n += 1;
                                c.n
                            })
                            .await?,
                    );
                }
                Ok::<_, Error>(drawn)
            })
        })
        .collect();
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.expect("task").expect("every update commits"));
    }
    let unique: BTreeSet<i64> = all.iter().copied().collect();
    assert_eq!(all.len(), TASKS * EACH);
    assert_eq!(unique, (1..=(TASKS * EACH) as i64).collect(), "every number 1..=3200 exactly once");
    let counter = store.get::<Counter>(&key).await.expect("get").expect("present");
    assert_eq!((counter.n, counter.version), (3200, 3201));
}

/// 8 tasks x 200 random transfers among 10 accounts through `transaction_with_retry`: the sum of
/// the balances never changes, and every committed transfer is reflected exactly once.
pub async fn concurrent_transfers_keep_the_sum<S: Storage>(store: &Store<S>) {
    const ACCOUNTS: i32 = 10;
    const TASKS: u64 = 8;
    const EACH: usize = 200;
    setup(store).await;
    for id in 0..ACCOUNTS {
        store.insert(&mut Account { id, balance: 1_000, version: 0 }).await.expect("insert");
    }
    let tasks: Vec<_> = (0..TASKS)
        .map(|seed| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut rng = Xorshift(0x9E37_79B9_7F4A_7C15 ^ (seed + 1));
                let mut committed = Vec::with_capacity(EACH);
                for _ in 0..EACH {
                    let (from, to) = rng.two_accounts(ACCOUNTS);
                    let amount = 1 + rng.below(50) as i64;
                    store
                        .transaction_with_retry(patient(), |tx| async move { transfer(&tx, from, to, amount).await })
                        .await?;
                    committed.push((from, to, amount));
                }
                Ok::<_, Error>(committed)
            })
        })
        .collect();
    let mut expected = vec![1_000i64; ACCOUNTS as usize];
    let mut writes = 0;
    for task in tasks {
        for (from, to, amount) in task.await.expect("task").expect("every transfer commits") {
            expected[from as usize] -= amount;
            expected[to as usize] += amount;
            writes += 2;
        }
    }
    let mut total = 0;
    let mut versions = 0;
    for id in 0..ACCOUNTS {
        let account = store.get::<Account>(&id).await.expect("get").expect("present");
        assert_eq!(account.balance, expected[id as usize], "account {id}: each committed transfer once");
        total += account.balance;
        versions += account.version - 1;
    }
    assert_eq!(total, 1_000 * i64::from(ACCOUNTS), "the sum never changes");
    assert_eq!(versions, writes, "one version step per committed write, none lost or doubled");
}

/// `get_for_update` locks the record: a second writer waits until the first transaction commits,
/// then sees its write.
pub async fn get_for_update_blocks_a_second_writer_until_commit<S: Storage>(store: &Store<S>) {
    setup(store).await;
    store.insert(&mut Account { id: 1, balance: 0, version: 0 }).await.expect("insert");
    let second = store.clone();
    store
        .transaction(|tx| async move {
            let mut locked = tx.get_for_update::<Account>(&1).await?.ok_or_else(|| Error::not_found::<Account>(&1))?;
            let waiter = tokio::spawn(async move {
                second
                    .transaction(|tx2| async move {
                        let mut a =
                            tx2.get_for_update::<Account>(&1).await?.ok_or_else(|| Error::not_found::<Account>(&1))?;
                        let seen = a.balance;
                        a.balance += 1;
                        tx2.put(&mut a).await?;
                        Ok(seen)
                    })
                    .await
            });
            tokio::time::sleep(Duration::from_millis(200)).await;
            assert!(!waiter.is_finished(), "the second writer must wait for the lock");
            locked.balance = 100;
            tx.put(&mut locked).await?;
            Ok(waiter)
        })
        .await
        .expect("first transaction")
        .await
        .map(|seen| assert_eq!(seen.expect("second transaction"), 100, "the second writer ran after the commit"))
        .expect("task");
    let account = store.get::<Account>(&1).await.expect("get").expect("present");
    assert_eq!((account.balance, account.version), (101, 3));
}

/// When attempts run out, `RetriesExhausted` says how many and carries the last conflict.
pub async fn retries_exhausted_carries_the_last_conflict<S: Storage>(store: &Store<S>) {
    setup(store).await;
    let mut p = ann();
    store.insert(&mut p).await.expect("insert");
    p.put(store).await.expect("put"); // stored version 2
    let calls = Arc::new(AtomicU32::new(0));
    let policy = RetryPolicy { max_attempts: 3, initial_backoff: Duration::from_millis(1), ..RetryPolicy::default() };
    let err = store
        .transaction_with_retry(policy, |tx| {
            let calls = Arc::clone(&calls);
            async move {
                calls.fetch_add(1, Ordering::SeqCst);
                let mut stale = Person { version: 1, ..ann() };
                tx.put(&mut stale).await
            }
        })
        .await
        .expect_err("always stale");
    match &err {
        Error::RetriesExhausted { attempts: 3, last } => assert_conflict(last, 1, Some(2)),
        other => panic!("expected RetriesExhausted after 3 attempts, got {other:?}"),
    }
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert!(!err.is_retryable());

    let err = store.update::<Person, _>(&404, RetryPolicy::default(), |p| p.salary += 1).await.expect_err("missing");
    assert!(matches!(err, Error::NotFound { .. }), "not retryable, so returned at once: {err:?}");
}

/// A transaction future dropped midway (here by a timeout) leaves nothing behind, and the store
/// takes writes again afterwards.
pub async fn dropped_transaction_future_leaves_nothing_behind<S: Storage>(store: &Store<S>) {
    setup(store).await;
    store.insert(&mut Account { id: 1, balance: 5, version: 0 }).await.expect("insert");
    let abandoned = tokio::time::timeout(
        Duration::from_millis(100),
        store.transaction(|tx| async move {
            let mut a = tx.get_for_update::<Account>(&1).await?.ok_or_else(|| Error::not_found::<Account>(&1))?;
            a.balance = 0;
            tx.put(&mut a).await?;
            tx.insert(&mut Account { id: 2, balance: 7, version: 0 }).await?;
            std::future::pending::<()>().await;
            Ok(())
        }),
    )
    .await;
    assert!(abandoned.is_err(), "the transaction never finishes on its own");
    assert_eq!(store.get::<Account>(&1).await.expect("get"), Some(Account { id: 1, balance: 5, version: 1 }));
    assert_eq!(store.get::<Account>(&2).await.expect("get"), None);
    let after = store.update::<Account, _>(&1, patient(), |a| {
        a.balance += 1;
        a.balance
    });
    assert_eq!(after.await.expect("the lock is released"), 6);
}

/// A partial update changes only the columns it sets, increments the version, and returns the
/// stored record.
pub async fn patch_changes_only_the_given_columns<S: Storage>(store: &Store<S>) {
    setup(store).await;
    store.insert(&mut ann()).await.expect("insert");
    let patched =
        store.patch::<Person>(&1, PersonPatch::default().salary(150), Check::Version(1)).await.expect("patch");
    assert_eq!(patched, Person { id: 1, name: "Ann".into(), salary: 150, version: 2 });
    assert_eq!(store.get::<Person>(&1).await.expect("get"), Some(patched));

    let empty = store.patch::<Person>(&1, PersonPatch::default(), Check::Unchecked).await.expect("empty patch");
    assert_eq!((empty.salary, empty.version), (150, 3), "an empty patch changes nothing but the version");

    let literal = PersonPatch { name: Some("Ann B.".into()), ..PersonPatch::default() };
    let patched = store.patch::<Person>(&1, literal, Check::Version(3)).await.expect("struct-literal patch");
    assert_eq!((patched.name.as_str(), patched.salary, patched.version), ("Ann B.", 150, 4));
}

/// A partial update with a stale expected version is refused and changes nothing.
pub async fn stale_patch_is_refused_and_changes_nothing<S: Storage>(store: &Store<S>) {
    setup(store).await;
    let mut p = ann();
    store.insert(&mut p).await.expect("insert");
    p.salary = 120;
    p.put(store).await.expect("put"); // version 2
    let err = store
        .patch::<Person>(&1, PersonPatch::default().name("Stale").salary(1), Check::Version(1))
        .await
        .expect_err("stale patch");
    assert_conflict(&err, 1, Some(2));
    assert_eq!(err.current::<Person>().expect("stored").expect("decodes"), p);
    assert_eq!(store.get::<Person>(&1).await.expect("get"), Some(p), "nothing changed");
}

/// A partial update never creates a record: `NotFound` without a check, a conflict saying the
/// record is gone with one.
pub async fn patch_of_a_missing_record_never_creates_it<S: Storage>(store: &Store<S>) {
    setup(store).await;
    let err = store.patch::<Person>(&5, PersonPatch::default().salary(1), Check::Unchecked).await.expect_err("missing");
    assert!(matches!(err, Error::NotFound { table: "people", key: Value::Int(5) }), "{err:?}");
    let err =
        store.patch::<Person>(&5, PersonPatch::default().salary(1), Check::Version(1)).await.expect_err("missing");
    assert_conflict(&err, 1, None);
    let err = store
        .patch::<Contact>(&5, ContactPatch::default().profile_merge(serde_json::json!({"k": 1})), Check::Unchecked)
        .await
        .expect_err("missing, with a JSON merge");
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    assert_eq!(store.get::<Person>(&5).await.expect("get"), None);
}

/// Kii's table of update options, all four: full or partial, with or without the overwrite check,
/// each written through a copy made stale by another client's write.
pub async fn kii_update_options_two_by_two<S: Storage>(store: &Store<S>) {
    setup(store).await;
    let mut base = ann();
    store.insert(&mut base).await.expect("insert");
    let stale = base.clone(); // version 1
    let mut other = base.clone();
    other.name = "Other".into();
    other.put(store).await.expect("another client writes"); // version 2, name "Other"

    // Full update with the check: refused.
    let mut full = Person { salary: 500, ..stale.clone() };
    assert_conflict(&store.put(&mut full).await.expect_err("full, checked"), 1, Some(2));
    // Partial update with the check: refused.
    let err = store.patch::<Person>(&1, PersonPatch::default().salary(500), Check::Version(1)).await;
    assert_conflict(&err.expect_err("partial, checked"), 1, Some(2));
    assert_eq!(store.get::<Person>(&1).await.expect("get").map(|p| (p.name, p.salary)), Some(("Other".into(), 100)));

    // Partial update without the check: merges, keeping the other client's name.
    let merged =
        store.patch::<Person>(&1, PersonPatch::default().salary(300), Check::Unchecked).await.expect("partial");
    assert_eq!((merged.name.as_str(), merged.salary, merged.version), ("Other", 300, 3));
    // Full update without the check: replaces everything, the other client's name included.
    let mut full = Person { salary: 400, ..stale };
    store.put_unchecked(&mut full).await.expect("full, unchecked");
    assert_eq!(
        store.get::<Person>(&1).await.expect("get"),
        Some(Person { id: 1, name: "Ann".into(), salary: 400, version: 4 })
    );
}

/// A JSON field in a patch is merged into the stored document at every level; keys are never
/// deleted (a `null` sets a key to null).
pub async fn json_patch_merges_every_level_and_keeps_keys<S: Storage>(store: &Store<S>) {
    setup(store).await;
    store.insert(&mut jo("Amy")).await.expect("insert");
    let doc = serde_json::json!({"nested": {"y": 3, "z": {"deep": true}}, "b": 2, "a": null});
    let patched = store
        .patch::<Contact>(&7, ContactPatch::default().profile_merge(doc).updated_by("Lawrence"), Check::Version(1))
        .await
        .expect("patch");
    let expected = serde_json::json!({"a": null, "b": 2, "nested": {"x": 1, "y": 3, "z": {"deep": true}}});
    assert_eq!(patched.profile, expected);
    assert_eq!((patched.name.as_str(), patched.updated_by.as_str(), patched.version), ("Jo Doe", "Lawrence", 2));
    assert_eq!(store.get::<Contact>(&7).await.expect("get").map(|c| c.profile), Some(expected));

    let err = store
        .patch::<Contact>(&7, ContactPatch::default().profile_merge(serde_json::json!({"c": 3})), Check::Version(1))
        .await
        .expect_err("stale JSON patch");
    assert_conflict(&err, 1, Some(2));
}

/// Unchecked JSON patches from many tasks at once: each merge is written checked against the
/// version it merged into, so none is lost.
pub async fn concurrent_json_patches_lose_no_merge<S: Storage>(store: &Store<S>) {
    setup(store).await;
    let mut c = jo("Amy");
    c.profile = serde_json::json!({});
    store.insert(&mut c).await.expect("insert");
    let tasks: Vec<_> = (0..8)
        .map(|task| {
            let store = store.clone();
            tokio::spawn(async move {
                for i in 0..10 {
                    let doc = serde_json::json!({ format!("t{task}"): { format!("k{i}"): i } });
                    store.patch::<Contact>(&7, ContactPatch::default().profile_merge(doc), Check::Unchecked).await?;
                }
                Ok::<_, Error>(())
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("task").expect("every patch applies");
    }
    let stored = store.get::<Contact>(&7).await.expect("get").expect("present");
    for task in 0..8 {
        for i in 0..10 {
            assert_eq!(stored.profile[format!("t{task}")][format!("k{i}")], i, "merge t{task}.k{i} was lost");
        }
    }
    assert_eq!(stored.version, 81);
}

/// `created_at` is set on insert and never changed; `updated_at` on every write; `updated_by` is
/// stored as the caller filled it. The caller's struct holds what was stored.
pub async fn audit_fields_are_set_by_the_store<S: Storage>(store: &Store<S>) {
    setup(store).await;
    let before = SystemTime::now();
    let mut c = jo("Amy");
    store.insert(&mut c).await.expect("insert");
    assert!(c.created_at >= before - Duration::from_millis(1) && c.created_at <= SystemTime::now(), "created now");
    assert_eq!(c.updated_at, c.created_at);
    assert_eq!(store.get::<Contact>(&7).await.expect("get").as_ref(), Some(&c), "the struct holds what was stored");
    let created = c.created_at;

    tokio::time::sleep(Duration::from_millis(2)).await;
    c.phone = "555-0199".into();
    c.updated_by = "Lawrence".into();
    c.created_at = SystemTime::UNIX_EPOCH; // an update never changes the creation time
    c.put(store).await.expect("put");
    let stored = store.get::<Contact>(&7).await.expect("get").expect("present");
    assert_eq!(stored.created_at, created);
    assert!(stored.updated_at > created);
    assert_eq!(c.updated_at, stored.updated_at);
    assert_eq!(stored.updated_by, "Lawrence");

    tokio::time::sleep(Duration::from_millis(2)).await;
    let mut forced = Contact { created_at: SystemTime::UNIX_EPOCH, ..stored.clone() };
    forced.put_unchecked(store).await.expect("force");
    let after_force = store.get::<Contact>(&7).await.expect("get").expect("present");
    assert_eq!(after_force.created_at, created, "a forced update keeps the creation time too");
    assert!(after_force.updated_at > stored.updated_at);

    tokio::time::sleep(Duration::from_millis(2)).await;
    let patched = store
        .patch::<Contact>(&7, ContactPatch::default().phone("555-0123").updated_by("Amy"), Check::Unchecked)
        .await
        .expect("patch");
    assert_eq!(patched.created_at, created);
    assert!(patched.updated_at > after_force.updated_at);
    assert_eq!(patched.updated_by, "Amy");
}

/// A conflict's stored record says who changed it, and when (OutSystems).
pub async fn conflict_says_who_changed_the_record<S: Storage>(store: &Store<S>) {
    setup(store).await;
    store.insert(&mut jo("admin")).await.expect("insert");
    let mut amy = store.get::<Contact>(&7).await.expect("get").expect("present");
    let mut lawrence = amy.clone();
    amy.phone = "555-0199".into();
    amy.updated_by = "Amy Peters".into();
    amy.put(store).await.expect("Amy saves");

    lawrence.name = "Jo Doe-Ricci".into();
    lawrence.updated_by = "Lawrence Ricci".into();
    let err = lawrence.put(store).await.expect_err("Lawrence's save conflicts");
    let current = err.current::<Contact>().expect("stored record").expect("decodes");
    assert_eq!(current.updated_by, "Amy Peters");
    assert_eq!(current.updated_at, amy.updated_at);
    assert_eq!(current.phone, "555-0199");
}

/// `touch` increments the version with a check and changes nothing else, not even `updated_at`.
pub async fn touch_increments_only_the_version<S: Storage>(store: &Store<S>) {
    setup(store).await;
    let mut c = jo("Amy");
    store.insert(&mut c).await.expect("insert");
    let mut stale = c.clone();
    store.touch(&mut c).await.expect("touch");
    assert_eq!(c.version, 2);
    assert_eq!(store.get::<Contact>(&7).await.expect("get"), Some(c.clone()), "only the version changed");

    let before = stale.clone();
    let err = store.touch(&mut stale).await.expect_err("stale touch");
    assert_conflict(&err, 1, Some(2));
    assert_unchanged(&stale, &before);
}

/// Hibernate's force increment: writers of an order's lines touch the order, so two of them
/// writing different lines at once still conflict on the order's version.
pub async fn touch_guards_a_group_of_records<S: Storage>(store: &Store<S>) {
    setup(store).await;
    store.insert(&mut Person { id: 1, name: "order".into(), salary: 0, version: 0 }).await.expect("order");
    store.insert(&mut Account { id: 1, balance: 0, version: 0 }).await.expect("line 1");
    store.insert(&mut Account { id: 2, balance: 0, version: 0 }).await.expect("line 2");
    let order_seen_by_a = store.get::<Person>(&1).await.expect("get").expect("order");
    let order_seen_by_b = order_seen_by_a.clone();

    let add_to_line = |line: i32, mut order: Person| async move {
        store
            .transaction(|tx| async move {
                let mut l = tx.get::<Account>(&line).await?.ok_or_else(|| Error::not_found::<Account>(&line))?;
                l.balance += 10;
                tx.put(&mut l).await?;
                tx.touch(&mut order).await
            })
            .await
    };
    add_to_line(1, order_seen_by_a).await.expect("A changes line 1");
    let err = add_to_line(2, order_seen_by_b).await.expect_err("B's order version is stale");
    assert_conflict(&err, 1, Some(2));
    assert_eq!(store.get::<Account>(&2).await.expect("get").map(|l| l.balance), Some(0), "B's line write rolled back");
    assert_eq!(store.get::<Person>(&1).await.expect("get").map(|o| (o.name, o.version)), Some(("order".into(), 2)));
}

/// `patch` and `touch` take part in transactions: visible inside, rolled back with the rest.
pub async fn patch_and_touch_inside_transactions<S: Storage>(store: &Store<S>) {
    setup(store).await;
    store.insert(&mut ann()).await.expect("insert");
    let err = store
        .transaction(|tx| async move {
            let p = tx.patch::<Person>(&1, PersonPatch::default().salary(999), Check::Version(1)).await?;
            assert_eq!(tx.get::<Person>(&1).await?.map(|p| p.salary), Some(999));
            let mut p = p;
            tx.touch(&mut p).await?;
            assert_eq!(p.version, 3);
            tx.patch::<Person>(&1, PersonPatch::default().name("x"), Check::Version(1)).await
        })
        .await
        .expect_err("the last patch is stale");
    assert_conflict(&err, 1, Some(3));
    assert_eq!(store.get::<Person>(&1).await.expect("get"), Some(Person { version: 1, ..ann() }), "all rolled back");

    let committed = store
        .transaction(
            |tx| async move { tx.patch::<Person>(&1, PersonPatch::default().salary(7), Check::Unchecked).await },
        )
        .await
        .expect("commits");
    assert_eq!(store.get::<Person>(&1).await.expect("get"), Some(committed));
}

/// At the version's maximum, `patch` and `touch` refuse like `put`.
pub async fn patch_and_touch_refuse_to_overflow<S: Storage>(store: &Store<S>) {
    setup(store).await;
    let mut t = tiny_at_maximum(store, "n").await;
    let err = store.patch::<Tiny>(&1, TinyPatch::default().note("x"), Check::Unchecked).await.expect_err("patch");
    assert!(matches!(err, Error::VersionOverflow { version: 255, .. }), "{err:?}");
    let err = store.patch::<Tiny>(&1, TinyPatch::default().note("x"), Check::Version(255)).await.expect_err("patch");
    assert!(matches!(err, Error::VersionOverflow { version: 255, .. }), "{err:?}");
    let err = store.touch(&mut t).await.expect_err("touch");
    assert!(matches!(err, Error::VersionOverflow { .. }), "{err:?}");
    assert_eq!(t.version, 255);
    assert_eq!(store.get::<Tiny>(&1).await.expect("get").map(|t| t.note), Some("n".into()));
}
