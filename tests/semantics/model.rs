//! A model-based property test: random sequences of operations from several clients, each holding
//! its own copy of records (fresh or stale), run against a backend and against a plain model of
//! the semantics table. Every outcome and the final state must agree.

use std::collections::BTreeMap;

use proptest::prelude::*;
use versioned::{Check, Error, Storage, Store};
use versioned_core::conformance::{Account, AccountPatch};

const CLIENTS: usize = 3;

#[derive(Debug, Clone)]
enum Op {
    Get {
        client: usize,
        id: i32,
    },
    Insert {
        client: usize,
        id: i32,
        balance: i64,
    },
    Put {
        client: usize,
        balance: i64,
    },
    PutUnchecked {
        client: usize,
        balance: i64,
    },
    Patch {
        client: usize,
        balance: i64,
        checked: bool,
    },
    Touch {
        client: usize,
    },
    Delete {
        client: usize,
    },
    DeleteUnchecked {
        id: i32,
    },
    /// A transaction writing two clients' copies, then committing or failing on purpose.
    Transfer {
        from: usize,
        to: usize,
        amount: i64,
        commit: bool,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let client = 0..CLIENTS;
    let id = 1..=3i32;
    let balance = -100i64..100;
    prop_oneof![
        (client.clone(), id.clone()).prop_map(|(client, id)| Op::Get { client, id }),
        (client.clone(), id.clone(), balance.clone()).prop_map(|(client, id, balance)| Op::Insert {
            client,
            id,
            balance
        }),
        (client.clone(), balance.clone()).prop_map(|(client, balance)| Op::Put { client, balance }),
        (client.clone(), balance.clone()).prop_map(|(client, balance)| Op::PutUnchecked { client, balance }),
        (client.clone(), balance.clone(), any::<bool>()).prop_map(|(client, balance, checked)| Op::Patch {
            client,
            balance,
            checked
        }),
        client.clone().prop_map(|client| Op::Touch { client }),
        client.clone().prop_map(|client| Op::Delete { client }),
        id.prop_map(|id| Op::DeleteUnchecked { id }),
        (client.clone(), client, 0i64..10, any::<bool>()).prop_map(|(from, to, amount, commit)| Op::Transfer {
            from,
            to,
            amount,
            commit
        }),
    ]
}

/// What an operation came to, in the terms of the semantics table.
#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    Skipped,
    Ok,
    Found(Option<(i64, u64)>),
    Deleted(bool),
    AlreadyExists,
    NotFound,
    Conflict { expected: u64, actual: Option<u64> },
    Aborted,
    Other(String),
}

fn outcome<T>(result: Result<T, Error>) -> Outcome {
    match result {
        Ok(_) => Outcome::Ok,
        Err(Error::AlreadyExists { .. }) => Outcome::AlreadyExists,
        Err(Error::NotFound { .. }) => Outcome::NotFound,
        Err(Error::ConcurrentModification { expected, actual, .. }) => Outcome::Conflict { expected, actual },
        Err(other) if other.to_string().contains("aborted on purpose") => Outcome::Aborted,
        Err(other) => Outcome::Other(other.to_string()),
    }
}

/// The records (id -> (balance, version)) and each client's copy.
#[derive(Debug, Clone, Default)]
struct World {
    stored: BTreeMap<i32, (i64, u64)>,
    copies: [Option<Account>; CLIENTS],
}

fn account(id: i32, (balance, version): (i64, u64)) -> Account {
    Account { id, balance, version }
}

impl World {
    /// The semantics table, for one operation: its outcome, and the world after it.
    fn apply(&mut self, op: &Op) -> Outcome {
        let stored = |w: &World, id: i32| w.stored.get(&id).copied();
        match *op {
            Op::Get { client, id } => {
                self.copies[client] = stored(self, id).map(|r| account(id, r));
                Outcome::Found(stored(self, id))
            }
            Op::Insert { client, id, balance } => {
                if self.stored.contains_key(&id) {
                    return Outcome::AlreadyExists;
                }
                self.stored.insert(id, (balance, 1));
                self.copies[client] = Some(account(id, (balance, 1)));
                Outcome::Ok
            }
            Op::Put { client, balance } => {
                let Some(copy) = self.copies[client].clone() else { return Outcome::Skipped };
                match stored(self, copy.id) {
                    Some((_, v)) if v == copy.version => {
                        self.stored.insert(copy.id, (balance, v + 1));
                        self.copies[client] = Some(account(copy.id, (balance, v + 1)));
                        Outcome::Ok
                    }
                    other => Outcome::Conflict { expected: copy.version, actual: other.map(|(_, v)| v) },
                }
            }
            Op::PutUnchecked { client, balance } => {
                let Some(copy) = self.copies[client].clone() else { return Outcome::Skipped };
                let version = stored(self, copy.id).map_or(1, |(_, v)| v + 1);
                self.stored.insert(copy.id, (balance, version));
                self.copies[client] = Some(account(copy.id, (balance, version)));
                Outcome::Ok
            }
            Op::Patch { client, balance, checked } => {
                let Some(copy) = self.copies[client].clone() else { return Outcome::Skipped };
                match stored(self, copy.id) {
                    None if checked => Outcome::Conflict { expected: copy.version, actual: None },
                    None => Outcome::NotFound,
                    Some((_, v)) if checked && v != copy.version => {
                        Outcome::Conflict { expected: copy.version, actual: Some(v) }
                    }
                    Some((_, v)) => {
                        self.stored.insert(copy.id, (balance, v + 1));
                        self.copies[client] = Some(account(copy.id, (balance, v + 1)));
                        Outcome::Ok
                    }
                }
            }
            Op::Touch { client } => {
                let Some(copy) = self.copies[client].clone() else { return Outcome::Skipped };
                match stored(self, copy.id) {
                    Some((b, v)) if v == copy.version => {
                        self.stored.insert(copy.id, (b, v + 1));
                        self.copies[client] = Some(Account { version: v + 1, ..copy });
                        Outcome::Ok
                    }
                    other => Outcome::Conflict { expected: copy.version, actual: other.map(|(_, v)| v) },
                }
            }
            Op::Delete { client } => {
                let Some(copy) = self.copies[client].clone() else { return Outcome::Skipped };
                match stored(self, copy.id) {
                    Some((_, v)) if v == copy.version => {
                        self.stored.remove(&copy.id);
                        Outcome::Ok
                    }
                    other => Outcome::Conflict { expected: copy.version, actual: other.map(|(_, v)| v) },
                }
            }
            Op::DeleteUnchecked { id } => Outcome::Deleted(self.stored.remove(&id).is_some()),
            Op::Transfer { from, to, amount, commit } => {
                let (Some(a), Some(b)) = (self.copies[from].clone(), self.copies[to].clone()) else {
                    return Outcome::Skipped;
                };
                if a.id == b.id {
                    return Outcome::Skipped;
                }
                for copy in [&a, &b] {
                    match stored(self, copy.id) {
                        Some((_, v)) if v == copy.version => {}
                        other => return Outcome::Conflict { expected: copy.version, actual: other.map(|(_, v)| v) },
                    }
                }
                if !commit {
                    return Outcome::Aborted;
                }
                let (a2, b2) = ((a.balance - amount, a.version + 1), (b.balance + amount, b.version + 1));
                self.stored.insert(a.id, a2);
                self.stored.insert(b.id, b2);
                self.copies[from] = Some(account(a.id, a2));
                self.copies[to] = Some(account(b.id, b2));
                Outcome::Ok
            }
        }
    }
}

/// Runs `op` on the store with the clients' copies in `copies`, updating them as the API does.
async fn run<S: Storage>(store: &Store<S>, copies: &mut [Option<Account>; CLIENTS], op: &Op) -> Outcome {
    match *op {
        Op::Get { client, id } => match store.get::<Account>(&id).await {
            Ok(found) => {
                let seen = found.as_ref().map(|a| (a.balance, a.version));
                copies[client] = found;
                Outcome::Found(seen)
            }
            Err(e) => outcome::<()>(Err(e)),
        },
        Op::Insert { client, id, balance } => {
            let mut a = Account { id, balance, version: 0 };
            let result = store.insert(&mut a).await;
            if result.is_ok() {
                copies[client] = Some(a);
            }
            outcome(result)
        }
        Op::Put { client, balance } | Op::PutUnchecked { client, balance } => {
            let Some(copy) = copies[client].as_mut() else { return Outcome::Skipped };
            let mut changed = Account { balance, ..copy.clone() };
            let result = match op {
                Op::Put { .. } => store.put(&mut changed).await,
                _ => store.put_unchecked(&mut changed).await,
            };
            if result.is_ok() {
                *copy = changed;
            }
            outcome(result)
        }
        Op::Patch { client, balance, checked } => {
            let Some(copy) = copies[client].as_mut() else { return Outcome::Skipped };
            let check = if checked { Check::Version(copy.version) } else { Check::Unchecked };
            match store.patch::<Account>(&copy.id, AccountPatch::default().balance(balance), check).await {
                Ok(stored) => {
                    *copy = stored;
                    Outcome::Ok
                }
                Err(e) => outcome::<()>(Err(e)),
            }
        }
        Op::Touch { client } => {
            let Some(copy) = copies[client].as_mut() else { return Outcome::Skipped };
            outcome(store.touch(copy).await)
        }
        Op::Delete { client } => {
            let Some(copy) = copies[client].as_ref() else { return Outcome::Skipped };
            outcome(store.delete(copy).await)
        }
        Op::DeleteUnchecked { id } => match store.delete_unchecked::<Account>(&id).await {
            Ok(was_there) => Outcome::Deleted(was_there),
            Err(e) => outcome::<()>(Err(e)),
        },
        Op::Transfer { from, to, amount, commit } => {
            let (Some(a), Some(b)) = (copies[from].clone(), copies[to].clone()) else { return Outcome::Skipped };
            if a.id == b.id {
                return Outcome::Skipped;
            }
            let result = store
                .transaction(|tx| async move {
                    let (mut a, mut b) = (a, b);
                    a.balance -= amount;
                    b.balance += amount;
                    tx.put(&mut a).await?;
                    tx.put(&mut b).await?;
                    if commit { Ok((a, b)) } else { Err(Error::Config { reason: "aborted on purpose".into() }) }
                })
                .await;
            match result {
                Ok((a, b)) => {
                    copies[from] = Some(a);
                    copies[to] = Some(b);
                    Outcome::Ok
                }
                Err(e) => outcome::<()>(Err(e)),
            }
        }
    }
}

async fn check<S: Storage>(store: Store<S>, ops: Vec<Op>) -> Result<(), TestCaseError> {
    store.create_table::<Account>().await.expect("create");
    let mut model = World::default();
    let mut copies: [Option<Account>; CLIENTS] = Default::default();
    for (step, op) in ops.iter().enumerate() {
        let expected = model.apply(op);
        let got = run(&store, &mut copies, op).await;
        prop_assert_eq!(&got, &expected, "step {}: {:?}", step, op);
        prop_assert_eq!(&copies, &model.copies, "step {}: the clients' copies after {:?}", step, op);
    }
    for id in 1..=3 {
        let stored = store.get::<Account>(&id).await.expect("get").map(|a| (a.balance, a.version));
        prop_assert_eq!(stored, model.stored.get(&id).copied(), "final state of {}", id);
    }
    Ok(())
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn memory_follows_the_model(ops in proptest::collection::vec(op(), 1..60)) {
        runtime().block_on(check(Store::memory(), ops))?;
    }

    #[test]
    fn sqlite_follows_the_model(ops in proptest::collection::vec(op(), 1..60)) {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("model.db").display());
        runtime().block_on(async { check(Store::sqlite(&url).await.expect("open"), ops).await })?;
    }
}
