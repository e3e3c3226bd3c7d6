//! SQLite's group commit: the shared writer (`storage/sql/group_commit.rs`) with one batch in
//! flight (SQLite has one writer at a time anyway), and a batch that is not one statement in one
//! `BEGIN IMMEDIATE` transaction, so that the writes that arrive together share one commit (one
//! `fsync` of the WAL).

use std::sync::Arc;
use std::time::Duration;

use super::SqliteStorage;
use super::driver::{is_busy, storage_error};
use super::schema::{TableState, table_state};
use crate::entity::TableDef;
use crate::error::Error;
use crate::storage::sql::Mappings;
use crate::storage::sql::group_commit::Committer;

impl Committer for SqliteStorage {
    const NAME: &'static str = "SQLite";
    const IN_FLIGHT: usize = 1;
    const FILL_WAIT: Duration = Duration::ZERO;
    const BEGIN: Option<&'static str> = Some("BEGIN IMMEDIATE");

    fn table(mappings: &Mappings<TableState>, table: &'static TableDef) -> Arc<TableState> {
        table_state(mappings, table)
    }

    fn binary_text_keys(state: &TableState) -> bool {
        state.binary_text_keys()
    }

    fn storage_error(table: Option<&'static TableDef>, err: sqlx::Error) -> Error {
        storage_error(table, err)
    }

    /// `BEGIN IMMEDIATE` refused because another connection held the write lock past the busy
    /// timeout: a lock timeout, and the connection is fine.
    fn begin_error(err: sqlx::Error) -> (Error, bool) {
        if is_busy(&err) {
            (Error::LockTimeout { table: None, key: None }, true)
        } else {
            (storage_error(None, err), false)
        }
    }
}
