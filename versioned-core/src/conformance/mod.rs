//! The backend conformance suite: the semantics table of `versioned`, as tests any backend runs.
//!
//! Each public `async fn` here checks one rule on a fresh [`Store`](crate::Store) and panics (it is
//! test code) when the backend breaks it. [`conformance_tests!`](crate::conformance_tests) turns
//! the whole suite into `#[tokio::test]`s for a backend, given a function that makes an empty store
//! (or a fixture that is `AsRef<Store<_>>`, to keep a temporary directory alive), wrapped in `Some`
//! — `None` skips the test, for a server backend that is not configured on this machine:
//!
//! ```ignore
//! versioned::conformance_tests!(|| async { Some(versioned::Store::memory()) });
//! ```
//!
//! One file per area: `fixtures.rs` (the records the tests store, and their helpers), then
//! records, patch, touch and audit, batches, transactions, savepoints, locking, concurrency,
//! cancellation, faults, integrity, misuse, mappings (several structs on one table), typed fields,
//! and the refusals of bad patches, unstorable versions and keyed deletes. Every test is
//! re-exported here, where the macro finds it. The stories of the source documents (Slim3's salary
//! update, Kii's high-score race and balance book, Hibernate's force increment) are told in the doc
//! comments of the tests that check them. [`sql`] holds the SQL backends' own checks, on tables of
//! users' migrations.

mod bad_patches;
mod batches;
mod cancellation;
mod concurrency;
mod faults;
mod fixtures;
mod history;
mod integrity;
mod keyed_delete;
#[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
mod lent;
mod locking;
mod mappings;
mod merge;
mod misuse;
mod patch;
mod queries;
mod query_model;
mod records;
mod revisions;
mod savepoints;
pub mod sql;
mod touch_and_audit;
mod transactions;
mod typed_fields;
mod unstorable_versions;

#[cfg(test)]
mod listed;

pub use bad_patches::*;
pub use batches::*;
pub use cancellation::*;
pub use concurrency::*;
pub use faults::*;
pub use fixtures::*;
pub use history::*;
pub use integrity::*;
pub use keyed_delete::*;
pub use locking::*;
pub use mappings::*;
pub use merge::*;
pub use misuse::*;
pub use patch::*;
pub use queries::*;
pub use query_model::*;
pub use records::*;
pub use revisions::*;
pub use savepoints::*;
pub use touch_and_audit::*;
pub use transactions::*;
pub use typed_fields::*;
pub use unstorable_versions::*;
// `unstorable_versions` declares a `Tally` of its own, for its test only: the fixtures' is the
// one exported.
pub use fixtures::{Tally, TallyPatch};

/// Every test of the suite as a `#[tokio::test]` for one backend: see
/// [the module](crate::conformance).
///
/// The list is kept by hand, by area; `listed.rs`'s unit tests fail when a public test of the suite
/// is missing from it.
#[macro_export]
macro_rules! conformance_tests {
    ($make:expr) => {
        $crate::conformance_tests!(@each $make;
            // records.rs
            insert_sets_version_one,
            insert_existing_key_is_already_exists,
            get_returns_stored_record_or_none,
            get_with_version_checks_the_version,
            put_replaces_all_columns_and_increments,
            stale_put_is_refused_and_leaves_caller_unchanged,
            stale_get_with_version_and_stale_put_are_both_conflicts,
            stale_put_never_reinserts_deleted_record,
            put_unchecked_overwrites_and_never_reuses_a_version,
            checked_puts_prevent_the_lost_update_unchecked_puts_allow,
            delete_is_checked,
            delete_through_stale_copy_of_deleted_record_says_gone,
            delete_unchecked_removes_whatever_the_version,
            version_at_maximum_refuses_to_increment,
            conflict_current_decodes_to_stored_struct,
            every_field_type_round_trips,
            unstorable_value_is_refused_and_nothing_stored,
            save_inserts_new_copies_and_checks_the_others,
            refresh_reloads_and_unchanged_puts_still_count,
            // keyed_delete.rs
            delete_with_version_is_checked,
            // unstorable_versions.rs
            a_version_above_what_storage_holds_is_a_conflict,
            a_put_of_a_value_storage_cannot_hold_writes_nothing,
            // patch.rs
            patch_changes_only_the_given_columns,
            stale_patch_is_refused_and_changes_nothing,
            patch_of_a_missing_record_never_creates_it,
            stale_full_and_partial_updates_are_refused_checked_and_applied_unchecked,
            json_patch_merges_every_level_and_keeps_keys,
            concurrent_json_patches_lose_no_merge,
            // bad_patches.rs
            a_patch_naming_a_column_the_table_lacks_is_refused,
            // typed_fields.rs
            text_fields_are_stored_as_plain_text,
            patches_set_typed_fields_and_merge_json_on_request,
            // touch_and_audit.rs
            audit_fields_are_set_by_the_store,
            conflict_says_who_changed_the_record,
            touch_increments_only_the_version,
            touch_guards_a_group_of_records,
            patch_and_touch_inside_transactions,
            patch_and_touch_refuse_to_overflow,
            // mappings.rs
            a_narrower_struct_used_first_keeps_the_columns_it_lacks,
            a_wider_struct_used_first_leaves_a_narrower_one_its_columns,
            // batches.rs
            insert_all_is_all_or_nothing,
            put_all_checks_every_record_and_reports_every_conflict,
            delete_all_is_checked_and_all_or_nothing,
            a_refused_batch_inside_a_transaction_is_undone_alone,
            batches_carry_every_field_type,
            // transactions.rs
            a_conflict_in_a_transaction_rolls_back_its_earlier_writes,
            transaction_commits_all_writes_at_once_and_reads_its_own,
            transaction_closure_error_rolls_back_and_is_returned_unchanged,
            derived_helpers_work_inside_a_transaction,
            copies_of_a_rolled_back_transaction_stay_usable,
            retried_attempts_start_from_untouched_copies,
            read_transactions_never_see_half_a_transfer,
            read_transactions_see_one_snapshot_and_refuse_writes,
            // savepoints.rs
            a_failed_savepoint_undoes_only_its_own_writes,
            savepoints_nest,
            savepoints_cannot_be_misused,
            a_savepoint_recovers_from_a_lock_refused_inside_it,
            // locking.rs
            get_for_update_blocks_a_second_writer_until_commit,
            lock_waits_end_in_lock_timeout,
            // history.rs
            a_history_of_appends_and_transfers_has_no_anomaly,
            // revisions.rs
            history_keeps_every_write_of_a_record,
            a_refused_write_keeps_no_history,
            history_keeps_what_its_retention_says,
            a_record_deleted_and_inserted_again_continues_its_history,
            put_merging_from_history_takes_the_base_from_the_history,
            patch_merging_from_history_merges_a_stale_patch,
            // merge.rs
            put_merging_merges_edits_of_different_fields,
            put_merging_refuses_fields_both_changed,
            put_merging_under_contention_loses_no_edit,
            // concurrency.rs
            operations_run_inside_tokio_spawn,
            concurrent_update_counts_exactly,
            updates_from_two_stores_count_exactly,
            concurrent_writes_keep_their_own_outcomes,
            concurrent_transfers_keep_the_sum,
            retries_exhausted_carries_the_last_conflict,
            // cancellation.rs
            dropped_transaction_future_leaves_nothing_behind,
            cancelled_transactions_commit_whole_or_not_at_all,
            // misuse.rs
            store_writes_inside_its_own_transaction_fail_fast,
            // integrity.rs
            corrupt_stored_versions_are_refused_by_every_operation,
            a_patch_that_could_not_be_read_back_writes_nothing,
            a_row_that_no_longer_decodes_is_never_patched,
            // queries.rs
            queries_return_what_rust_returns_in_rust_order,
            pages_walk_every_record_once_while_others_come_and_go,
            bad_query_input_is_refused_clearly,
            transactions_query_their_own_writes,
            get_many_returns_records_in_the_order_of_the_keys,
            streams_return_every_record_in_order,
            patch_where_and_delete_where_move_versions_on,
            locking_queries_lock_or_skip_what_they_return,
            queries_in_a_read_transaction_see_one_snapshot,
            floats_bytes_and_wide_integers_order_as_in_rust,
            // query_model.rs
            queries_agree_with_a_model_in_rust,
            // faults.rs
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
