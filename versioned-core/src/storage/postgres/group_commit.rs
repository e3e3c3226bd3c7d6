//! PostgreSQL's group commit: the shared writer (`storage/sql/group_commit.rs`) takes the checked
//! updates, inserts and checked deletes of many tasks that arrive together and writes those of one
//! table in one statement (`UPDATE … FROM (VALUES …) RETURNING key`, the statement of `put_all`),
//! in autocommit, with two statements in flight at once. Other writes run on their caller's task,
//! concurrently, as by hand: a transaction around them would cost two round trips more.

use std::sync::Arc;
use std::time::Duration;

use super::{PgTable, PostgresStorage, pg_table, storage_error};
use crate::entity::TableDef;
use crate::error::Error;
use crate::storage::sql::Mappings;
use crate::storage::sql::group_commit::Committer;

impl Committer for PostgresStorage {
    const NAME: &'static str = "PostgreSQL";
    /// Two statements: one is sent while the other's rows are written and committed. More only
    /// split the same writes into smaller statements (measured in `benches/servers.rs`).
    const IN_FLIGHT: usize = 2;
    const FILL_WAIT: Duration = Duration::from_micros(200);
    const BEGIN: Option<&'static str> = None;

    fn table(mappings: &Mappings<PgTable>, table: &'static TableDef) -> Arc<PgTable> {
        pg_table(mappings, table)
    }

    /// Where the key column's collation is deterministic (`create_table` declares `COLLATE
    /// "C"`): a nondeterministic one could make two spellings one record.
    fn binary_text_keys(state: &PgTable) -> bool {
        state.binary_text_keys.load(std::sync::atomic::Ordering::Acquire)
    }

    fn storage_error(table: Option<&'static TableDef>, err: sqlx::Error) -> Error {
        storage_error(table, err)
    }
}
