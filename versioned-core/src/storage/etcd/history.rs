//! A record's version history on etcd (`#[versioned(history)]`): one key per entry under
//! `P<table>/h/<K>/`, put by the same etcd transaction as the record's write, and what the
//! retention drops as one range deletion in that transaction.
//!
//! An entry's key sorts by version then time (`v<version><micros>`, 16 hex digits each), or by
//! time then version (`t<micros><version>`) for a table whose history is kept for a duration,
//! so that what the retention drops is always one range. The value holds the whole entry
//! ([`codec::history_bytes`]).

use etcd_client::{DeleteOptions, GetOptions, TxnOp};

use super::cluster::{Cluster, request_error};
use super::codec::{self, RecordKeys};
use crate::entity::TableDef;
use crate::error::Result;
use crate::revisions::{HistoryRow, Retention, Written};

/// `prefix` followed by `layout` and the 16 hex digits of each of `numbers`.
fn key(prefix: &[u8], layout: u8, numbers: &[u64]) -> Vec<u8> {
    let mut key = Vec::with_capacity(prefix.len() + 1 + 16 * numbers.len());
    key.extend_from_slice(prefix);
    key.push(layout);
    for n in numbers {
        key.extend_from_slice(format!("{n:016x}").as_bytes());
    }
    key
}

/// The operations recording `entries` (one record's, in write order) at `at` (microseconds),
/// and dropping what `keep` no longer keeps of that record's history; and about how many bytes
/// they make.
pub(super) fn record(
    table: &'static TableDef,
    keys: &RecordKeys,
    keep: Retention,
    entries: &[&Written],
    at: i64,
    ops: &mut Vec<TxnOp>,
) -> Result<usize> {
    let prefix = keys.history();
    let micros = u64::try_from(at).unwrap_or(0);
    let mut newest = 0;
    for entry in entries {
        newest = newest.max(table.version_of(&entry.row)?);
    }
    let mut bytes = 0;
    for entry in entries {
        let version = table.version_of(&entry.row)?;
        // An entry the same write would drop is not put: etcd refuses a put inside a range the
        // same transaction deletes.
        if !keep.keeps(version, at, newest, at) {
            continue;
        }
        let key = match keep {
            Retention::Seconds(_) => key(&prefix, b't', &[micros, version]),
            _ => key(&prefix, b'v', &[version, micros]),
        };
        let value = codec::history_bytes(table, &entry.row, entry.deleted, at);
        bytes += key.len() + value.len();
        ops.push(TxnOp::put(key, value, None));
    }
    let dropped = match keep {
        Retention::All => None,
        // The versions up to `newest - n`: below the first kept one.
        Retention::Versions(n) => newest.checked_sub(n).map(|last| key(&prefix, b'v', &[last + 1])),
        Retention::Seconds(s) => {
            let cutoff = micros.saturating_sub(s.saturating_mul(1_000_000));
            (cutoff > 0).then(|| key(&prefix, b't', &[cutoff]))
        }
    };
    if let Some(end) = dropped {
        let mut start = prefix.clone();
        start.push(end[prefix.len()]);
        bytes += start.len() + end.len();
        ops.push(TxnOp::delete(start, Some(DeleteOptions::new().with_range(end))));
    }
    Ok(bytes)
}

/// The history of the record `keys`, oldest version first (a version's entries by time).
pub(super) async fn read(cluster: &Cluster, table: &'static TableDef, keys: &RecordKeys) -> Result<Vec<HistoryRow>> {
    let options = GetOptions::new().with_prefix();
    let reply = cluster.client.kv_client().get(keys.history(), Some(options)).await.map_err(request_error)?;
    let mut entries = Vec::with_capacity(reply.kvs().len());
    for kv in reply.kvs() {
        let entry = codec::decode_history(table, kv.value())?;
        entries.push((table.version_of(&entry.row)?, entry));
    }
    entries.sort_by_key(|(version, entry)| (*version, entry.recorded_at));
    Ok(entries.into_iter().map(|(_, entry)| entry).collect())
}
