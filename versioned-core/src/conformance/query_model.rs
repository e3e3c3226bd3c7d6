//! A model-based test of queries: random records and random queries (filter trees over every kind
//! of field, orders of up to three fields in either direction, limits, pages walked to the end
//! while records are inserted and deleted between pages), each answered by the backend and by
//! Rust itself over the same records (`Vec` filters and `Ord` on the struct's fields, written
//! apart from the library's own evaluation). Cases are drawn by proptest from a fixed seed, so a
//! failure names its case and repeats.

use std::cmp::Ordering;

use proptest::prelude::*;
use proptest::strategy::ValueTree as _;
use proptest::test_runner::{Config, TestRunner};

use super::queries::Ticket;
use crate::query::{Cursor, Filter, OrderBy};
use crate::storage::Storage;
use crate::store::Store;

/// How many cases each backend runs.
pub const QUERY_MODEL_CASES: u32 = 100;

/// Words whose order by code point differs from a language's, with the characters `LIKE` treats
/// specially.
const WORDS: [&str; 10] = ["a", "A", "b", "ä", "a ", "a%", "a_", "", "B", "ab"];

/// A filter, as a tree the test can both hand to the library and evaluate in Rust.
#[derive(Debug, Clone)]
enum Q {
    Title(Cmp, &'static str),
    TitleStarts(&'static str),
    Assignee(Cmp, Option<&'static str>),
    AssigneeStarts(&'static str),
    AssigneeIn(Vec<Option<&'static str>>),
    Priority(Cmp, i32),
    PriorityIn(Vec<i32>),
    Open(bool),
    And(Box<Q>, Box<Q>),
    Or(Box<Q>, Box<Q>),
    Not(Box<Q>),
}

#[derive(Debug, Clone, Copy)]
enum Cmp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Cmp {
    fn holds(self, ordering: Ordering) -> bool {
        match self {
            Cmp::Eq => ordering == Ordering::Equal,
            Cmp::Ne => ordering != Ordering::Equal,
            Cmp::Lt => ordering == Ordering::Less,
            Cmp::Le => ordering != Ordering::Greater,
            Cmp::Gt => ordering == Ordering::Greater,
            Cmp::Ge => ordering != Ordering::Less,
        }
    }
}

/// `column cmp value` through the library's field handle.
macro_rules! compare {
    ($column:expr, $cmp:expr, $value:expr) => {
        match $cmp {
            Cmp::Eq => $column.eq($value),
            Cmp::Ne => $column.ne($value),
            Cmp::Lt => $column.lt($value),
            Cmp::Le => $column.le($value),
            Cmp::Gt => $column.gt($value),
            Cmp::Ge => $column.ge($value),
        }
    };
}

impl Q {
    /// The library's filter.
    fn filter(&self) -> Filter<Ticket> {
        match self {
            Q::Title(cmp, word) => compare!(Ticket::TITLE, cmp, *word),
            Q::TitleStarts(prefix) => Ticket::TITLE.starts_with(prefix),
            Q::Assignee(cmp, word) => compare!(Ticket::ASSIGNEE, cmp, word.map(str::to_owned)),
            Q::AssigneeStarts(prefix) => Ticket::ASSIGNEE.starts_with(prefix),
            Q::AssigneeIn(words) => Ticket::ASSIGNEE.in_list(words.iter().map(|w| w.map(str::to_owned))),
            Q::Priority(cmp, p) => compare!(Ticket::PRIORITY, cmp, *p),
            Q::PriorityIn(ps) => Ticket::PRIORITY.in_list(ps.iter().copied()),
            Q::Open(open) => Ticket::OPEN.eq(*open),
            Q::And(a, b) => a.filter().and(b.filter()),
            Q::Or(a, b) => a.filter().or(b.filter()),
            Q::Not(a) => a.filter().not(),
        }
    }

    /// Rust's answer for one ticket.
    fn holds(&self, t: &Ticket) -> bool {
        let assignee = t.assignee.as_deref();
        match self {
            Q::Title(cmp, word) => cmp.holds(t.title.as_str().cmp(word)),
            Q::TitleStarts(prefix) => t.title.starts_with(prefix),
            Q::Assignee(cmp, word) => cmp.holds(assignee.cmp(word)),
            Q::AssigneeStarts(prefix) => assignee.is_some_and(|a| a.starts_with(prefix)),
            Q::AssigneeIn(words) => words.contains(&assignee),
            Q::Priority(cmp, p) => cmp.holds(t.priority.cmp(p)),
            Q::PriorityIn(ps) => ps.contains(&t.priority),
            Q::Open(open) => t.open == *open,
            Q::And(a, b) => a.holds(t) && b.holds(t),
            Q::Or(a, b) => a.holds(t) || b.holds(t),
            Q::Not(a) => !a.holds(t),
        }
    }
}

/// One key of an order: which field, and whether descending.
#[derive(Debug, Clone, Copy)]
enum Key {
    Title,
    Assignee,
    Priority,
    Open,
}

impl Key {
    fn order(self, descending: bool) -> OrderBy<Ticket> {
        let asc = match self {
            Key::Title => Ticket::TITLE.asc(),
            Key::Assignee => Ticket::ASSIGNEE.asc(),
            Key::Priority => Ticket::PRIORITY.asc(),
            Key::Open => Ticket::OPEN.asc(),
        };
        if descending {
            match self {
                Key::Title => Ticket::TITLE.desc(),
                Key::Assignee => Ticket::ASSIGNEE.desc(),
                Key::Priority => Ticket::PRIORITY.desc(),
                Key::Open => Ticket::OPEN.desc(),
            }
        } else {
            asc
        }
    }

    fn compare(self, a: &Ticket, b: &Ticket) -> Ordering {
        match self {
            Key::Title => a.title.cmp(&b.title),
            Key::Assignee => a.assignee.cmp(&b.assignee),
            Key::Priority => a.priority.cmp(&b.priority),
            Key::Open => a.open.cmp(&b.open),
        }
    }
}

/// A case: the records, a query, an order, a limit, and a page size.
#[derive(Debug, Clone)]
struct Case {
    tickets: Vec<(&'static str, Option<&'static str>, i32, bool)>,
    query: Q,
    order: Vec<(Key, bool)>,
    limit: Option<u64>,
    page: u64,
}

fn word() -> impl Strategy<Value = &'static str> {
    proptest::sample::select(WORDS.to_vec())
}

fn cmp() -> impl Strategy<Value = Cmp> {
    prop_oneof![Just(Cmp::Eq), Just(Cmp::Ne), Just(Cmp::Lt), Just(Cmp::Le), Just(Cmp::Gt), Just(Cmp::Ge)]
}

fn query() -> impl Strategy<Value = Q> {
    let leaf = prop_oneof![
        (cmp(), word()).prop_map(|(c, w)| Q::Title(c, w)),
        word().prop_map(Q::TitleStarts),
        (cmp(), proptest::option::of(word())).prop_map(|(c, w)| Q::Assignee(c, w)),
        word().prop_map(Q::AssigneeStarts),
        proptest::collection::vec(proptest::option::of(word()), 0..4).prop_map(Q::AssigneeIn),
        (cmp(), 0..6i32).prop_map(|(c, p)| Q::Priority(c, p)),
        proptest::collection::vec(0..6i32, 0..4).prop_map(Q::PriorityIn),
        any::<bool>().prop_map(Q::Open),
    ];
    leaf.prop_recursive(3, 12, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| Q::And(Box::new(a), Box::new(b))),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| Q::Or(Box::new(a), Box::new(b))),
            inner.prop_map(|a| Q::Not(Box::new(a))),
        ]
    })
}

fn case() -> impl Strategy<Value = Case> {
    let ticket = (word(), proptest::option::of(word()), 1..5i32, any::<bool>());
    let key = prop_oneof![Just(Key::Title), Just(Key::Assignee), Just(Key::Priority), Just(Key::Open)];
    (
        proptest::collection::vec(ticket, 0..30),
        query(),
        proptest::collection::vec((key, any::<bool>()), 0..4),
        proptest::option::of(0..12u64),
        1..8u64,
    )
        .prop_map(|(tickets, query, order, limit, page)| Case { tickets, query, order, limit, page })
}

/// Every case on `store`: the answers of `all`, `count` and a page walk must be Rust's.
pub async fn queries_agree_with_a_model_in_rust<S: Storage>(store: &Store<S>) {
    store.create_table::<Ticket>().await.expect("create tickets");
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        proptest::test_runner::TestRng::deterministic_rng(proptest::test_runner::RngAlgorithm::ChaCha),
    );
    let strategy = case();
    for n in 0..QUERY_MODEL_CASES {
        let case = strategy.new_tree(&mut runner).expect("a case").current();
        run_case(store, i64::from(n), &case).await;
    }
}

async fn run_case<S: Storage>(store: &Store<S>, n: i64, case: &Case) {
    // Each case has keys of its own, and every query is narrowed to them.
    let (low, high) = (n * 1_000 + 1, n * 1_000 + 999);
    let mut tickets: Vec<Ticket> = case
        .tickets
        .iter()
        .enumerate()
        .map(|(i, (title, assignee, priority, open))| Ticket {
            id: low + i as i64,
            title: (*title).to_owned(),
            assignee: assignee.map(str::to_owned),
            priority: *priority,
            open: *open,
            version: 0,
        })
        .collect();
    if !tickets.is_empty() {
        store.insert_all(&mut tickets).await.expect("insert the case's tickets");
    }
    let mine = || Ticket::ID.ge(low).and(Ticket::ID.le(high));
    let find = || {
        let mut find = store.find::<Ticket>().filter(mine()).filter(case.query.filter());
        for (key, descending) in &case.order {
            find = find.order_by(key.order(*descending));
        }
        find
    };
    let by = |a: &Ticket, b: &Ticket| {
        for (key, descending) in &case.order {
            let ordering = key.compare(a, b);
            let ordering = if *descending { ordering.reverse() } else { ordering };
            if ordering != Ordering::Equal {
                return ordering;
            }
        }
        a.id.cmp(&b.id)
    };
    let expected = |tickets: &[Ticket]| {
        let mut kept: Vec<&Ticket> = tickets.iter().filter(|t| case.query.holds(t)).collect();
        kept.sort_by(|a, b| by(a, b));
        kept.into_iter().map(|t| t.id).collect::<Vec<_>>()
    };
    let want = expected(&tickets);
    let ids = |ts: &[Ticket]| ts.iter().map(|t| t.id).collect::<Vec<_>>();

    let all = find().all().await.unwrap_or_else(|e| panic!("case {n} {case:?}: {e}"));
    assert_eq!(ids(&all), want, "case {n}: all, {case:?}");
    let count = find().count().await.expect("count");
    assert_eq!(count, want.len() as u64, "case {n}: count, {case:?}");
    if let Some(limit) = case.limit {
        let limited = find().limit(limit).all().await.expect("limited");
        let cut: Vec<i64> = want.iter().take(limit as usize).copied().collect();
        assert_eq!(ids(&limited), cut, "case {n}: limit {limit}, {case:?}");
    }

    // Pages walked to the end, a record inserted and one deleted between two pages: every
    // record there throughout comes once, in order; none comes twice.
    let mut seen: Vec<Ticket> = Vec::new();
    let mut cursor: Option<Cursor> = None;
    let mut next_id = low + 500;
    let mut deleted = Vec::new();
    loop {
        let page = find().after_opt(cursor.take()).page(case.page).await.expect("page");
        assert!(page.records.len() as u64 <= case.page);
        seen.extend(page.records);
        let Some(next) = page.next else { break };
        cursor = Some(next);
        let template = &tickets[(next_id as usize) % tickets.len().max(1)..];
        if let Some(t) = template.first() {
            let mut new = Ticket { id: next_id, version: 0, ..t.clone() };
            store.insert(&mut new).await.expect("insert between pages");
        }
        next_id += 1;
        // Delete an original record not seen yet.
        if let Some(gone) = want.iter().find(|id| !seen.iter().any(|s| s.id == **id) && !deleted.contains(*id)) {
            store.delete_unchecked::<Ticket>(gone).await.expect("delete between pages");
            deleted.push(*gone);
        }
    }
    let mut unique = ids(&seen);
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), seen.len(), "case {n}: a record came twice, {case:?}");
    for pair in seen.windows(2) {
        assert_eq!(by(&pair[0], &pair[1]), Ordering::Less, "case {n}: pages out of order, {case:?}");
    }
    let throughout: Vec<i64> = want.iter().copied().filter(|id| !deleted.contains(id)).collect();
    let originals: Vec<i64> = ids(&seen).into_iter().filter(|id| *id < low + 500).collect();
    assert_eq!(originals, throughout, "case {n}: pages, {case:?}");
}
