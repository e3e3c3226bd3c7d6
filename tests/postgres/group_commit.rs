//! Group commit on PostgreSQL: the checked writes of many tasks that arrive together share
//! statements (seen in the debug event each such write emits), each keeps its own outcome, and a
//! write whose statement fails alone fails alone. (`concurrent_writes_keep_their_own_outcomes`
//! of the conformance suite checks every outcome the same way on every backend.)

use std::sync::{Arc, Mutex};

use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use versioned::{Error, Store};
use versioned_core::conformance::Person;

/// The `statement` field of every group-commit event: how many writes shared a write's
/// statement.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u64>>>);

struct Statement(Option<u64>);

impl Visit for Statement {
    fn record_u64(&mut self, field: &Field, value: u64) {
        if field.name() == "statement" {
            self.0 = Some(value);
        }
    }

    fn record_debug(&mut self, _: &Field, _: &dyn std::fmt::Debug) {}
}

impl<S: tracing::Subscriber> Layer<S> for Shared {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        let mut statement = Statement(None);
        event.record(&mut statement);
        if let Some(n) = statement.0 {
            self.0.lock().unwrap().push(n);
        }
    }
}

/// 32 tasks put their own records at once, round after round, one of them a salary the table's
/// `CHECK` refuses: that write fails alone, the others apply, and writes shared statements.
#[tokio::test]
async fn checked_writes_of_many_tasks_share_statements_and_keep_their_own_outcomes() {
    let Some(db) = super::db().await else { return };
    let store: Store<_> = db.store.clone();
    store.create_table::<Person>().await.expect("create");
    super::raw_sql::exec(store.backend().pool(), "ALTER TABLE people ADD CONSTRAINT no_777 CHECK (salary <> 777)")
        .await;
    for id in 0..32 {
        store.insert(&mut Person { id, name: format!("P{id}"), salary: 0, version: 0 }).await.expect("insert");
    }
    let shared = Shared::default();
    let _default = crate::events::capture_on_this_thread(tracing_subscriber::registry().with(shared.clone()));
    let mut copies: Vec<Person> = Vec::new();
    for id in 0..32 {
        copies.push(store.get::<Person>(&id).await.expect("get").expect("present"));
    }
    let mut merged = 0;
    for round in 1..=40 {
        let doomed = (round * 7) % 32;
        let tasks: Vec<_> = copies
            .drain(..)
            .map(|mut p| {
                let store = store.clone();
                p.salary = if p.id == doomed as i64 { 777 } else { round };
                tokio::spawn(async move {
                    let result = p.put(&store).await;
                    (p, result)
                })
            })
            .collect();
        for task in tasks {
            let (mut p, result) = task.await.expect("task");
            if p.id == doomed as i64 {
                assert!(matches!(result, Err(Error::Storage(_))), "record {}: {result:?}", p.id);
                let stored = store.get::<Person>(&p.id).await.expect("get").expect("present");
                assert_ne!(stored.salary, 777, "nothing of the refused write is stored");
                assert_eq!(p.version, stored.version, "the caller's copy is left as it was");
                p = stored;
            } else {
                result.unwrap_or_else(|e| panic!("record {}: {e}", p.id));
            }
            copies.push(p);
        }
        for p in &copies {
            let stored = store.get::<Person>(&p.id).await.expect("get").expect("present");
            assert_eq!(&stored, p, "round {round}");
        }
        merged = shared.0.lock().unwrap().iter().copied().max().unwrap_or(0);
        if merged > 1 && round >= 5 {
            break;
        }
    }
    assert!(merged > 1, "writes that arrived together shared a statement (largest: {merged})");
}

/// Off, every write is its own statement: no write shares one.
#[tokio::test]
async fn group_commit_can_be_turned_off() {
    let Some(db) = super::db().await else { return };
    let store = Store::new(db.store.backend().clone().with_group_commit(false));
    store.create_table::<Person>().await.expect("create");
    for id in 0..16 {
        store.insert(&mut Person { id, name: format!("P{id}"), salary: 0, version: 0 }).await.expect("insert");
    }
    let shared = Shared::default();
    let _default = crate::events::capture_on_this_thread(tracing_subscriber::registry().with(shared.clone()));
    for _ in 0..5 {
        let tasks: Vec<_> = (0..16)
            .map(|id| {
                let store = store.clone();
                tokio::spawn(async move {
                    let mut p = store.get::<Person>(&id).await.expect("get").expect("present");
                    p.salary += 1;
                    p.put(&store).await.expect("put");
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("task");
        }
    }
    assert!(shared.0.lock().unwrap().is_empty(), "no write shared a statement");
    for id in 0..16 {
        assert_eq!(store.get::<Person>(&id).await.expect("get").expect("present").salary, 5);
    }
}

/// Text keys share a statement where the key column's collation is deterministic (`create_table`
/// declares `COLLATE "C"`), and never where it is not: with a case-insensitive collation `'ann'`
/// and `'ANN'` are one record, and of two puts of it at one version exactly one applies.
#[tokio::test]
async fn text_keys_share_statements_only_under_a_deterministic_collation() {
    use versioned::Entity;
    use versioned_core::conformance::HighScore;
    let Some(db) = super::db().await else { return };
    let store: Store<_> = db.store.clone();
    let pool = store.backend().pool().clone();
    let name = HighScore::TABLE.name;
    super::raw_sql::exec(
        &pool,
        "CREATE COLLATION folded (provider = icu, locale = 'und-u-ks-level2', deterministic = false)",
    )
    .await;
    super::raw_sql::exec(
        &pool,
        &format!("CREATE TABLE {name} (board TEXT COLLATE folded PRIMARY KEY, highscore BIGINT, _version BIGINT)"),
    )
    .await;
    let shared = Shared::default();
    let _default = crate::events::capture_on_this_thread(tracing_subscriber::registry().with(shared.clone()));
    for round in 0..30 {
        // Ten other boards written at once, then the two spellings of one: they meet in the
        // writer's queue.
        let board = format!("Board{round}");
        let others: Vec<String> = (0..10).map(|i| format!("Other{round}-{i}")).collect();
        for b in others.iter().chain([&board]) {
            store.insert(&mut HighScore { board: b.clone(), score: 0, version: 0 }).await.expect("insert");
        }
        let spellings = [board.to_lowercase(), board.to_uppercase()];
        let tasks: Vec<_> = others
            .iter()
            .chain(&spellings)
            .enumerate()
            .map(|(i, spelling)| {
                let (store, spelling) = (store.clone(), spelling.clone());
                tokio::spawn(async move {
                    let mut h = HighScore { board: spelling, score: i as i64 + 1, version: 1 };
                    h.put(&store).await
                })
            })
            .collect();
        let mut outcomes = Vec::new();
        for task in tasks {
            outcomes.push(task.await.expect("task"));
        }
        let (others, pair) = outcomes.split_at(10);
        assert!(others.iter().all(Result::is_ok), "round {round}: {others:?}");
        assert_eq!(pair.iter().filter(|o| o.is_ok()).count(), 1, "round {round}: {pair:?}");
        let refused = pair.iter().find_map(|o| o.as_ref().err()).expect("one refused");
        assert!(matches!(refused, Error::ConcurrentModification { actual: Some(2), .. }), "{refused:?}");
    }
    assert!(shared.0.lock().unwrap().is_empty(), "no text key shared a statement under a nondeterministic collation");
    shared.0.lock().unwrap().clear();
    // The same struct over a table `create_table` made (`COLLATE "C"`), through a storage that
    // has not checked the table yet: its text keys share.
    super::raw_sql::exec(&pool, &format!("DROP TABLE {name}")).await;
    let store = Store::new(versioned::PostgresStorage::from_pool(pool.clone()));
    store.create_table::<HighScore>().await.expect("create");
    for round in 0..40 {
        let boards: Vec<String> = (0..16).map(|i| format!("B{round}-{i}")).collect();
        for board in &boards {
            store.insert(&mut HighScore { board: board.clone(), score: 0, version: 0 }).await.expect("insert");
        }
        let tasks: Vec<_> = boards
            .into_iter()
            .map(|board| {
                let store = store.clone();
                tokio::spawn(async move { HighScore { board, score: 9, version: 1 }.put(&store).await })
            })
            .collect();
        for task in tasks {
            task.await.expect("task").expect("put");
        }
        if shared.0.lock().unwrap().iter().any(|n| *n > 1) {
            return;
        }
    }
    panic!("text keys under COLLATE \"C\" never shared a statement");
}
