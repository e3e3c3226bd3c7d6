//! How contended each record is, as one store sees it ([`Heat`]): what
//! [`Store::update`](crate::Store::update) reads to choose, per attempt, between an optimistic
//! read and checked put (two statements, no transaction) and a locked read-modify-write (a
//! transaction reading the record `FOR UPDATE`).
//!
//! A record is hot while another `update` of it runs in this store (contention seen directly),
//! or for [`COOLING`] after an `update` of it met a conflict (contention from writers elsewhere:
//! other stores, other processes). Records share 1,024 slots by a hash of their table and key:
//! two records in one slot only make each other look hot, which costs a lock, never correctness.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::entity::TableDef;
use crate::value::Value;

/// How long a record stays hot after a conflict.
pub(crate) const COOLING: Duration = Duration::from_millis(200);

const SLOTS: usize = 1024;

/// The contention of a store's records (see the [module](self)).
pub(crate) struct Heat {
    slots: Box<[Slot]>,
    start: Instant,
}

#[derive(Default)]
struct Slot {
    /// `update`s of the slot's records under way.
    running: AtomicU32,
    /// When an `update` of them last met a conflict: milliseconds since `start`, plus one (0:
    /// never).
    conflict: AtomicU64,
}

impl std::fmt::Debug for Heat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Heat").finish_non_exhaustive()
    }
}

impl Default for Heat {
    fn default() -> Self {
        Heat { slots: (0..SLOTS).map(|_| Slot::default()).collect(), start: Instant::now() }
    }
}

impl Heat {
    /// Counts an `update` of the record `key` of `table` as running until the guard is dropped.
    pub(crate) fn enter(&self, table: &'static TableDef, key: &Value) -> Running<'_> {
        let slot = &self.slots[slot_of(table, key)];
        slot.running.fetch_add(1, Ordering::AcqRel);
        Running { slot, heat: self }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX - 1)
    }
}

/// An `update` of one record, counted as running.
pub(crate) struct Running<'a> {
    slot: &'a Slot,
    heat: &'a Heat,
}

impl Running<'_> {
    /// Whether the record is hot: another `update` of it runs, or one met a conflict within
    /// [`COOLING`].
    pub(crate) fn hot(&self) -> bool {
        if self.slot.running.load(Ordering::Acquire) > 1 {
            return true;
        }
        let conflict = self.slot.conflict.load(Ordering::Acquire);
        conflict != 0 && self.heat.now_ms() < conflict - 1 + COOLING.as_millis() as u64
    }

    /// An attempt met a conflict: the record is hot for [`COOLING`] from now.
    pub(crate) fn conflicted(&self) {
        self.slot.conflict.store(self.heat.now_ms() + 1, Ordering::Release);
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.slot.running.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The slot of a record: FNV-1a over the table's address and the key's bytes.
fn slot_of(table: &'static TableDef, key: &Value) -> usize {
    let mut hash = 0xcbf2_9ce4_8422_2325_u64;
    let mut eat = |bytes: &[u8]| {
        for byte in bytes {
            hash = (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3);
        }
    };
    eat(&(std::ptr::from_ref(table) as usize).to_le_bytes());
    match key {
        Value::Int(i) => eat(&i.to_le_bytes()),
        Value::Text(s) => eat(s.as_bytes()),
        Value::Bytes(b) => eat(b),
        other => eat(other.to_string().as_bytes()),
    }
    (hash % SLOTS as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merge::tests::CONTACTS as T;

    #[test]
    fn a_record_is_hot_while_another_update_runs_and_for_a_while_after_a_conflict() {
        let heat = Heat::default();
        let one = heat.enter(&T, &Value::Int(1));
        assert!(!one.hot(), "alone and without conflicts: cold");
        let two = heat.enter(&T, &Value::Int(1));
        assert!(one.hot() && two.hot(), "two updates of one record: hot");
        drop(two);
        assert!(!one.hot(), "cold again when the other ends");
        one.conflicted();
        assert!(one.hot(), "hot after a conflict");
        std::thread::sleep(COOLING + Duration::from_millis(20));
        assert!(!one.hot(), "cooled");
    }
}
