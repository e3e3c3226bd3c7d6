//! How contended each record is, as one store sees it ([`Heat`]): what
//! [`Store::update`](crate::Store::update) reads to choose, per attempt, between an optimistic
//! read and checked put (two statements, no transaction) and, for a hot record, a turn among the
//! store's attempts on it or a locked read-modify-write (a transaction reading the record
//! `FOR UPDATE`), as the backend's [`HotUpdates`](crate::HotUpdates) says.
//!
//! A record's temperature is the share of its recent `update` attempts that met a conflict
//! (MOCC's per-record temperature, Wang and Kimura, PVLDB 2016): attempts and conflicts are
//! counted per [`WINDOW`], and the record is hot while, in the current window or the last one,
//! at least [`HOT_CONFLICTS`] attempts conflicted and they were at least a quarter of all. A turn
//! or a lock makes every attempt wait, so it pays only where conflicts are that frequent; a
//! record updated in turns (or locked) for a whole window meets no conflict and cools, unless
//! its updaters queue: an attempt in its turn (or locked) that finds two or more other updates of
//! the record under way in this store counts as a conflict (it would most likely have been one),
//! so a record hammered by many tasks stays hot, and one that only sometimes sees a second
//! updater goes back to optimistic attempts. Records share 1,024 slots by a hash of their table
//! and key: two records in one slot only warm each other, which costs a wait, never correctness;
//! each record has its own turns.
//!
//! A record's turns hand on the record as the last turn wrote it ([`Kept`]), so the next turn
//! need not read it back: its checked put still refuses it if anyone else wrote the record since
//! (another process, a write of this store outside the turns), and from then on the queue's turns
//! read the record each time.

use std::any::Any;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::entity::TableDef;
use crate::lock::LockWait;
use crate::value::Value;
use tokio::sync::OwnedMutexGuard;

/// How long attempts are counted together.
pub(crate) const WINDOW: Duration = Duration::from_millis(200);
/// The fewest conflicts in a window that make a record hot (with a quarter of its attempts).
pub(crate) const HOT_CONFLICTS: u32 = 2;

const SLOTS: usize = 1024;

/// The contention of a store's records (see the [module](self)).
pub(crate) struct Heat {
    slots: Box<[Slot]>,
    start: Instant,
}

#[derive(Default)]
struct Slot {
    /// `update`s of the slot's records under way in this store.
    running: AtomicU32,
    /// The current window's start: milliseconds since [`Heat::start`].
    window: AtomicU64,
    /// Attempts and conflicts in the current window.
    attempts: AtomicU32,
    conflicts: AtomicU32,
    /// Whether the last window ended hot.
    was_hot: AtomicBool,
    /// The turns of this store's attempts on the slot's hot records, one queue per record; a
    /// queue nobody holds or waits for is pruned at the slot's next turn (having let go of what
    /// it kept when its last turn ended).
    turns: Mutex<Vec<Turns>>,
}

/// One record's queue of turns.
struct Turns {
    table: &'static str,
    key: Value,
    queue: Arc<tokio::sync::Mutex<Kept>>,
}

/// What a record's turns hand on to each other: the record as the last turn wrote it.
#[derive(Default)]
pub(crate) struct Kept {
    /// The record the last turn wrote (a `T: Entity`), unless it was read locked since.
    record: Option<Box<dyn Any + Send>>,
    /// Whether a kept record was found stale: another writer writes the record too, so the
    /// queue's turns read it each time.
    stale: bool,
}

impl Kept {
    /// The record the last turn wrote, if it was kept as a `T` (two structs may map one table).
    pub(crate) fn take<T: 'static>(&mut self) -> Option<T> {
        self.record.take()?.downcast().ok().map(|record| *record)
    }

    /// Keeps `record`, just written, for the next turn; unless a kept record was found stale.
    pub(crate) fn keep<T: Send + 'static>(&mut self, record: T) {
        if !self.stale {
            self.record = Some(Box::new(record));
        }
    }

    /// Lets go of the kept record: an attempt locked the record, and wrote past it.
    pub(crate) fn discard(&mut self) {
        self.record = None;
    }

    /// A write from the kept record conflicted: someone else wrote the record since.
    pub(crate) fn found_stale(&mut self) {
        self.stale = true;
        self.discard();
    }
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

/// Whether `conflicts` out of `attempts` make a record hot.
fn hot(attempts: u32, conflicts: u32) -> bool {
    conflicts >= HOT_CONFLICTS && conflicts.saturating_mul(4) >= attempts
}

impl Heat {
    /// The record `key` of `table`, for one `update`'s attempts: counted as under way until the
    /// guard is dropped.
    pub(crate) fn record<'a>(&'a self, table: &'static TableDef, key: &'a Value) -> Record<'a> {
        let slot = &self.slots[slot_of(table, key)];
        slot.running.fetch_add(1, Ordering::AcqRel);
        Record { slot, heat: self, table: table.name, key }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

/// One record's slot, as an `update` under way sees it.
pub(crate) struct Record<'a> {
    slot: &'a Slot,
    heat: &'a Heat,
    table: &'static str,
    key: &'a Value,
}

impl Record<'_> {
    /// Starts a new window if the current one is over, keeping whether it ended hot. Counts are
    /// approximate under races (two tasks may both start the window): a temperature, not a tally.
    fn roll(&self) {
        let now = self.heat.now_ms();
        let window = self.slot.window.load(Ordering::Acquire);
        if now.saturating_sub(window) < WINDOW.as_millis() as u64 {
            return;
        }
        if self.slot.window.compare_exchange(window, now, Ordering::AcqRel, Ordering::Acquire).is_ok() {
            let attempts = self.slot.attempts.swap(0, Ordering::AcqRel);
            let conflicts = self.slot.conflicts.swap(0, Ordering::AcqRel);
            // A window with no attempt at all (the record left alone) ends cold too.
            let ended_hot = hot(attempts, conflicts) && now.saturating_sub(window) < 2 * WINDOW.as_millis() as u64;
            self.slot.was_hot.store(ended_hot, Ordering::Release);
        }
    }

    /// Whether the record is hot (see the [module](self)).
    pub(crate) fn hot(&self) -> bool {
        self.roll();
        self.slot.was_hot.load(Ordering::Acquire)
            || hot(self.slot.attempts.load(Ordering::Acquire), self.slot.conflicts.load(Ordering::Acquire))
    }

    /// Whether at least two other `update`s of the record are under way in this store: an
    /// attempt in its turn (or locked) that finds them waiting would most likely have conflicted
    /// without its turn (or lock), and counts as a conflict, so that a record whose updaters
    /// queue stays hot.
    pub(crate) fn crowded(&self) -> bool {
        self.slot.running.load(Ordering::Acquire) >= 3
    }

    /// The record's turn among this store's attempts on it, held for one attempt; turns are
    /// given in the order they were asked for. Waits as `wait` says: `None` once a timeout
    /// expires (or at once, for `NoWait`, if the record's turn is taken). Another record's turns
    /// are its own, even in the same slot: a task holding one record's row lock can wait for
    /// another's turn without waiting for itself.
    pub(crate) async fn turn(&self, wait: LockWait) -> Option<Turn> {
        let queue = {
            let mut turns = self.slot.turns.lock().unwrap_or_else(PoisonError::into_inner);
            // A queue only this list holds has no holder and no waiter left.
            turns.retain(|turns| Arc::strong_count(&turns.queue) > 1);
            match turns.iter().find(|turns| turns.table == self.table && turns.key == *self.key) {
                Some(turns) => Arc::clone(&turns.queue),
                None => {
                    let queue = Arc::default();
                    turns.push(Turns { table: self.table, key: self.key.clone(), queue: Arc::clone(&queue) });
                    queue
                }
            }
        };
        let guard = match wait {
            LockWait::Forever => Some(queue.lock_owned().await),
            LockWait::Timeout(limit) => tokio::time::timeout(limit, queue.lock_owned()).await.ok(),
            LockWait::NoWait => queue.try_lock_owned().ok(),
        };
        guard.map(|guard| Turn { guard })
    }

    /// Counts an attempt, and whether it met a conflict (or, in its turn or locked, found the
    /// record crowded).
    pub(crate) fn attempted(&self, conflicted: bool) {
        self.roll();
        self.slot.attempts.fetch_add(1, Ordering::AcqRel);
        if conflicted {
            self.slot.conflicts.fetch_add(1, Ordering::AcqRel);
        }
    }
}

/// A record's turn, held for one attempt: what the turns keep, and the queue, until dropped.
pub(crate) struct Turn {
    guard: OwnedMutexGuard<Kept>,
}

impl std::ops::Deref for Turn {
    type Target = Kept;

    fn deref(&self) -> &Kept {
        &self.guard
    }
}

impl std::ops::DerefMut for Turn {
    fn deref_mut(&mut self) -> &mut Kept {
        &mut self.guard
    }
}

impl Drop for Turn {
    /// The last turn of a burst (nobody else holds or waits for the queue: only the slot's list
    /// and this turn have it) lets go of the record it kept, rather than holding a copy of it
    /// until the slot's next turn prunes the queue. A turn asked for just now reads the record.
    fn drop(&mut self) {
        if Arc::strong_count(OwnedMutexGuard::mutex(&self.guard)) <= 2 {
            self.guard.discard();
        }
    }
}

impl Drop for Record<'_> {
    fn drop(&mut self) {
        self.slot.running.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The slot of a record: FNV-1a over the table's name (two structs may map one table) and the
/// key's bytes.
fn slot_of(table: &'static TableDef, key: &Value) -> usize {
    let mut hash = 0xcbf2_9ce4_8422_2325_u64;
    let mut eat = |bytes: &[u8]| {
        for byte in bytes {
            hash = (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3);
        }
    };
    eat(table.name.as_bytes());
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
    fn a_record_is_hot_while_a_quarter_of_its_attempts_conflict_and_cools_when_they_stop() {
        let heat = Heat::default();
        let (one, two) = (Value::Int(1), Value::Int(2));
        let record = heat.record(&T, &one);
        assert!(!record.hot(), "never updated: cold");
        record.attempted(true);
        assert!(!record.hot(), "one conflict is not contention");
        for _ in 0..6 {
            record.attempted(false);
        }
        record.attempted(true);
        assert!(record.hot(), "2 conflicts in 8 attempts: hot");
        record.attempted(false);
        record.attempted(false);
        assert!(!record.hot(), "2 in 10: below a quarter");
        record.attempted(true);
        assert!(record.hot(), "3 in 11: hot");
        let other = heat.record(&T, &two);
        assert!(!other.hot(), "another record is not warmed by this one's conflicts");
        assert!(!other.crowded(), "one update under way");
        let (_second, _third) = (heat.record(&T, &two), heat.record(&T, &two));
        assert!(other.crowded(), "three under way");
        std::thread::sleep(WINDOW + Duration::from_millis(20));
        assert!(record.hot(), "the last window ended hot: hot through the next");
        for _ in 0..4 {
            record.attempted(false); // attempts in turn (or locked): no conflict
        }
        std::thread::sleep(WINDOW + Duration::from_millis(20));
        assert!(!record.hot(), "a window without conflicts cools it");
    }

    #[tokio::test]
    async fn a_hot_records_turns_are_one_at_a_time_in_order_and_bounded_by_the_lock_wait() {
        let heat = Heat::default();
        let one = Value::Int(1);
        let (first, second) = (heat.record(&T, &one), heat.record(&T, &one));
        let turn = first.turn(LockWait::Forever).await.expect("a free turn is given");
        assert!(second.turn(LockWait::NoWait).await.is_none(), "NoWait: the turn is taken");
        let started = tokio::time::Instant::now();
        assert!(second.turn(LockWait::Timeout(Duration::from_millis(50))).await.is_none(), "not given in time");
        assert!(started.elapsed() >= Duration::from_millis(50), "waited for the limit");
        // A record of the same slot: its turns are its own.
        let neighbour =
            (2..).map(Value::Int).find(|key| slot_of(&T, key) == slot_of(&T, &one)).expect("some key shares the slot");
        let other = heat.record(&T, &neighbour);
        assert!(other.turn(LockWait::NoWait).await.is_some(), "another record's turn is its own");

        // Waiters are given the turn in the order they asked for it.
        let order = std::sync::Mutex::new(Vec::new());
        let waiter = |n: u32| {
            let (record, order) = (heat.record(&T, &one), &order);
            async move {
                let _turn = record.turn(LockWait::Forever).await.expect("Forever waits");
                order.lock().unwrap().push(n);
            }
        };
        let waiters = futures_util::future::join_all((0..4).map(waiter));
        let release = async {
            tokio::task::yield_now().await; // every waiter has asked
            drop(turn);
        };
        futures_util::future::join(waiters, release).await;
        assert_eq!(*order.lock().unwrap(), vec![0, 1, 2, 3]);

        // A record's queue is kept only while someone holds or waits for a turn.
        let _turn = first.turn(LockWait::NoWait).await.expect("free again");
        let slot = &heat.slots[slot_of(&T, &one)];
        assert_eq!(slot.turns.lock().unwrap().len(), 1, "the neighbour's queue, unused, is gone");
    }

    #[tokio::test]
    async fn a_turn_hands_on_what_it_wrote_while_others_wait_until_a_kept_record_is_found_stale() {
        let heat = Heat::default();
        let one = Value::Int(1);
        let record = heat.record(&T, &one);
        // The next turn, asked for (polled once) while this one is held.
        macro_rules! waiting {
            ($record:expr) => {{
                let mut next = Box::pin($record.turn(LockWait::Forever));
                assert!(tokio::time::timeout(Duration::from_millis(10), &mut next).await.is_err(), "taken");
                next
            }};
        }
        let mut turn = record.turn(LockWait::Forever).await.expect("a turn");
        assert_eq!(turn.take::<i64>(), None, "nothing written yet");
        turn.keep(7_i64);
        let next = waiting!(record);
        drop(turn);
        let mut turn = next.await.expect("the next turn");
        assert_eq!(turn.take::<String>(), None, "kept as another type: not this one's");
        turn.keep(8_i64);
        let next = waiting!(record);
        drop(turn);
        let mut turn = next.await.expect("the next turn");
        assert_eq!(turn.take::<i64>(), Some(8), "the next turn takes what the last wrote");
        assert_eq!(turn.take::<i64>(), None, "once");
        turn.keep(9_i64);
        drop(turn);
        let mut turn = record.turn(LockWait::Forever).await.expect("a turn");
        assert_eq!(turn.take::<i64>(), None, "the last turn of a burst let go of what it kept");
        turn.found_stale();
        turn.keep(10_i64);
        assert_eq!(turn.take::<i64>(), None, "found stale: the queue's turns read the record");
        drop(turn);
        drop(record);
        // Unused, the queue is dropped: a later burst keeps again.
        let record = heat.record(&T, &one);
        let mut turn = record.turn(LockWait::Forever).await.expect("a turn");
        turn.keep(11_i64);
        assert_eq!(turn.take::<i64>(), Some(11), "a new queue keeps again");
    }
}
