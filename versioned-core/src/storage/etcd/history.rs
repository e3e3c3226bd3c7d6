//! A record's version history on etcd (`#[versioned(history)]`): one key per entry under
//! `P<table>/h/<K>/`, put by the same etcd transaction as the record's write, and what the
//! retention drops as range deletions in that transaction.
//!
//! An entry's key sorts by version (`v<version><micros><seq>`, hex), or by time
//! (`t<micros><seq><version>`) for a table whose history is kept for a duration, so that what
//! the retention drops of the entries already stored is one range. `seq` numbers the entries of
//! one transaction (a transaction may write a record more than once), so that no two keys are the
//! same. The value holds the whole entry ([`codec::history_bytes`]). Entries are read back in
//! the order they were written: by the revision of the transaction that wrote them, then `seq`.

use etcd_client::{DeleteOptions, GetOptions, TxnOp};

use super::cluster::{Cluster, request_error};
use super::codec::{self, RecordKeys};
use crate::entity::TableDef;
use crate::error::Result;
use crate::revisions::{HistoryRow, Retention, Written};

/// `prefix`, `layout`, then the hex digits of each of `numbers` (16 for a `u64`, 8 for a `u32`).
fn key(prefix: &[u8], layout: u8, numbers: &[(u64, usize)]) -> Vec<u8> {
    let mut key = Vec::with_capacity(prefix.len() + 41);
    key.extend_from_slice(prefix);
    key.push(layout);
    for (n, digits) in numbers {
        key.extend_from_slice(format!("{n:0digits$x}").as_bytes());
    }
    key
}

/// The operations recording `entries` (one record's, in write order) at `at` (microseconds),
/// and dropping what `keep` no longer keeps of that record's history: what the same writes
/// leave, one after the other, on the other backends.
pub(super) fn record(
    table: &'static TableDef,
    keys: &RecordKeys,
    keep: Retention,
    entries: &[&Written],
    at: i64,
    ops: &mut Vec<TxnOp>,
) -> usize {
    let prefix = keys.history();
    let micros = u64::try_from(at).unwrap_or(0);
    let mut bytes = 0;
    let mut put = Vec::with_capacity(entries.len());
    for (seq, entry) in entries.iter().enumerate() {
        // Kept unless a later write of this transaction drops it (as each write prunes).
        if !entries[seq..].iter().all(|later| keep.keeps(entry.version, at, later.version, at)) {
            continue;
        }
        let seq = u32::try_from(seq).unwrap_or(u32::MAX);
        let key = match keep {
            Retention::Seconds(_) => key(&prefix, b't', &[(micros, 16), (u64::from(seq), 8), (entry.version, 16)]),
            _ => key(&prefix, b'v', &[(entry.version, 16), (micros, 16), (u64::from(seq), 8)]),
        };
        let value = codec::history_bytes(table, &entry.row, entry.deleted, at, seq);
        bytes += key.len() + value.len();
        put.push(key.clone());
        ops.push(TxnOp::put(key, value, None));
    }
    // What the retention drops of the entries stored before: one range, less the keys this
    // transaction puts inside it (etcd refuses a put inside a range the same transaction deletes).
    let newest = entries.iter().map(|entry| entry.version).max().unwrap_or(0);
    let dropped = match keep {
        Retention::All => None,
        Retention::Versions(n) => newest.checked_sub(n).map(|last| (b'v', key(&prefix, b'v', &[(last + 1, 16)]))),
        Retention::Seconds(s) => {
            let cutoff = micros.saturating_sub(s.saturating_mul(1_000_000));
            (cutoff > 0).then(|| (b't', key(&prefix, b't', &[(cutoff, 16)])))
        }
    };
    if let Some((layout, end)) = dropped {
        let mut start = prefix.clone();
        start.push(layout);
        put.sort();
        let from = start.clone();
        for inside in put.iter().filter(|k| **k >= from && **k < end) {
            bytes += start.len() + inside.len();
            ops.push(TxnOp::delete(start.clone(), Some(DeleteOptions::new().with_range(inside.clone()))));
            start = inside.clone();
            start.push(0);
        }
        bytes += start.len() + end.len();
        ops.push(TxnOp::delete(start, Some(DeleteOptions::new().with_range(end))));
    }
    bytes
}

/// The history of the record `keys`, in the order it was written.
pub(super) async fn read(cluster: &Cluster, table: &'static TableDef, keys: &RecordKeys) -> Result<Vec<HistoryRow>> {
    let options = GetOptions::new().with_prefix();
    let reply = cluster.client.kv_client().get(keys.history(), Some(options)).await.map_err(request_error)?;
    let mut entries = Vec::with_capacity(reply.kvs().len());
    for kv in reply.kvs() {
        let (entry, seq) = codec::decode_history(table, kv.value())?;
        entries.push(((kv.mod_revision(), seq), entry));
    }
    entries.sort_by_key(|(order, _)| *order);
    Ok(entries.into_iter().map(|(_, entry)| entry).collect())
}
