//! Version history (`#[versioned(history)]`): every write of a record also keeps the record as
//! written, at its version, in a history table of its own, written by the same statement or
//! transaction as the record; [`Store::history`](crate::Store::history) and
//! [`Store::revision`](crate::Store::revision) read it back.
//!
//! Where each backend keeps it:
//!
//! - SQL (SQLite, PostgreSQL, MySQL/MariaDB): a table `<table>_history` and triggers on the
//!   record's table, created by `create_table` (and written out by
//!   [`migrations`](crate::migrations)). A trigger runs inside the statement that fired it, so a
//!   write and its history commit together or not at all, whatever wrote the row: the store's
//!   statements, its batches, group commit, or your own SQL.
//! - memory: beside each record, under the same lock as its write.
//! - etcd: one key per version under `<prefix><table>/h/<key>/`, put by the same etcd
//!   transaction as the record.

use std::time::{Duration, SystemTime};

use crate::entity::{Entity, TableDef};
use crate::error::{Error, Result};
use crate::value::Row;

/// The history a table keeps: `#[versioned(history)]` on the struct.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryDef {
    /// The history table's name (`<table>_history`).
    pub table: &'static str,
    /// How much of each record's history is kept.
    pub keep: Retention,
}

/// How much of each record's history is kept. Old entries of a record are dropped when the
/// record is written (by that write, for that record only), so the cost of a write stays
/// bounded by what one record keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retention {
    /// Every version (`#[versioned(history)]`).
    All,
    /// The versions within this many of the one just written
    /// (`#[versioned(history(keep_versions = 50))]`); at least 1.
    Versions(u64),
    /// The versions recorded within this many seconds of the write
    /// (`#[versioned(history(keep_days = 30))]`, `keep_seconds = …`); the entry just written is
    /// always kept.
    Seconds(u64),
}

/// A struct that keeps its version history: what `#[versioned(history)]` implements, and what
/// [`Store::history`](crate::Store::history) asks for, so that reading the history of a struct
/// that keeps none does not compile.
#[diagnostic::on_unimplemented(
    message = "`{Self}` keeps no version history",
    label = "not `#[versioned(history)]`",
    note = "add `#[versioned(history)]` to the struct: its writes then keep every version in a history table"
)]
pub trait WithHistory: Entity {}

/// One stored version of a record, from its history.
#[derive(Debug, Clone, PartialEq)]
pub struct Revision<T> {
    /// The version this entry holds.
    pub version: u64,
    /// The record as written at that version (its audit fields included). For a deletion, the
    /// record as it was when deleted (at its last version).
    pub record: T,
    /// Whether this entry is the record's deletion (a tombstone).
    pub deleted: bool,
    /// When the entry was written, by the clock of the database (SQL) or of the writing process
    /// (memory, etcd), to the microsecond (SQLite's clock: to the millisecond).
    pub recorded_at: SystemTime,
}

/// One entry of a record's history as a backend returns it: the row as written, whether it is a
/// deletion, and when it was written (microseconds since the Unix epoch).
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryRow {
    /// The row as written, in the table's column order (its version column holding the entry's
    /// version).
    pub row: Row,
    /// Whether the entry is a deletion.
    pub deleted: bool,
    /// When it was written, in microseconds since the Unix epoch.
    pub recorded_at: i64,
}

impl<T: Entity> Revision<T> {
    /// The entry `row` of `T`'s history, decoded.
    pub(crate) fn decode(row: HistoryRow) -> Result<Self> {
        let version = T::TABLE.version_of(&row.row)?;
        let micros = u64::try_from(row.recorded_at).map_err(|_| {
            Error::decode(T::TABLE, "history_at", format!("negative time {} in the history", row.recorded_at))
        })?;
        Ok(Revision {
            version,
            record: T::from_row(row.row)?,
            deleted: row.deleted,
            recorded_at: SystemTime::UNIX_EPOCH + Duration::from_micros(micros),
        })
    }
}

/// What a write leaves in a record's history: the row written, or the row deleted (recorded at
/// its own version, as a deletion), with that version.
#[derive(Debug, Clone)]
pub(crate) struct Written {
    pub(crate) row: Row,
    pub(crate) version: u64,
    pub(crate) deleted: bool,
}

impl Written {
    /// The entry of a write that replaced `before` with `after` (rows as the table lays them
    /// out), if the write left anything to record. Made before the write is applied: its error
    /// (a row whose version is not one) writes nothing.
    pub(crate) fn of(table: &TableDef, before: Option<&Row>, after: Option<&Row>) -> Result<Option<Written>> {
        let (row, deleted) = match (before, after) {
            (_, Some(row)) => (row, false),
            (Some(row), None) => (row, true),
            (None, None) => return Ok(None),
        };
        Ok(Some(Written { version: table.version_of(row)?, row: row.clone(), deleted }))
    }
}

/// Now, in microseconds since the Unix epoch: when the memory and etcd backends record an entry.
pub(crate) fn now_micros() -> i64 {
    let since = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    i64::try_from(since.as_micros()).unwrap_or(i64::MAX)
}

impl Retention {
    /// Whether an entry at `version`, recorded at `at` (microseconds), is kept once the entry at
    /// `newest` recorded at `now` is written.
    pub(crate) fn keeps(self, version: u64, at: i64, newest: u64, now: i64) -> bool {
        match self {
            Retention::All => true,
            Retention::Versions(n) => version.saturating_add(n) > newest,
            Retention::Seconds(s) => {
                at >= now.saturating_sub(i64::try_from(s.saturating_mul(1_000_000)).unwrap_or(i64::MAX))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Retention;

    #[test]
    fn retention_keeps_what_it_says() {
        assert!(Retention::All.keeps(1, 0, 1_000, i64::MAX));
        // keep 3: with 10 just written, 8, 9 and 10 stay.
        assert!(!Retention::Versions(3).keeps(7, 0, 10, 0));
        assert!(Retention::Versions(3).keeps(8, 0, 10, 0));
        assert!(Retention::Versions(1).keeps(10, 0, 10, 0));
        // keep 2 s: recorded 2 s before the write stays, a microsecond older goes.
        assert!(Retention::Seconds(2).keeps(1, 1_000_000, 2, 3_000_000));
        assert!(!Retention::Seconds(2).keeps(1, 999_999, 2, 3_000_000));
    }
}
