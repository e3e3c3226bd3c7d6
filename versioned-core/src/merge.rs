//! Three-way merge of a refused write: the copy you started from (the base), your edited copy
//! (mine) and the stored record (theirs), field by field ([`merge`]); and the checked put that
//! retries with the merged record while nothing collides ([`put_merging`]).
//!
//! | field changed (from the base) by | the merged record holds |
//! |---|---|
//! | nobody | the base's value (= theirs) |
//! | you only | yours |
//! | the other writer only | theirs |
//! | both, to the same value | that value |
//! | both, to different values | a [`Collision`]; nothing is written |
//! | a `#[versioned(json)]` field changed by both | merged key by key, recursively, by these rules; a key both changed differently collides |
//!
//! The key must be the same in all three; the version, `created_at` and `updated_at` are the
//! stored record's (the store sets them), `updated_by` is yours (you are writing).

use crate::entity::{ColumnDef, ColumnRole, Entity, TableDef};
use crate::error::{Error, Result};
use crate::executor::Executor;
use crate::ops;
use crate::retry::RetryPolicy;
use crate::value::{ColumnType, Row, Value};

/// A field that both sides changed to different values.
#[derive(Debug, Clone, PartialEq)]
pub struct Collision {
    /// The column.
    pub column: &'static str,
    /// The Rust field.
    pub field: &'static str,
    /// Within a JSON field, where the documents collide (JSON pointers, `/address/city`); empty
    /// for any other field.
    pub paths: Vec<String>,
    /// The value you started from.
    pub base: Value,
    /// Your value.
    pub mine: Value,
    /// The stored value.
    pub theirs: Value,
}

/// The outcome of a [`merge`].
#[derive(Debug)]
pub struct Merged<T> {
    /// The merged record, at the stored record's version: a checked put of it is checked against
    /// the version it was merged with. Where fields collide, they hold the stored values.
    pub record: T,
    /// The fields both sides changed to different values, in column order.
    pub collisions: Vec<Collision>,
    /// The fields taken from the stored record because only the other writer changed them.
    pub theirs: Vec<&'static str>,
}

/// Merges `mine` (your edit of `base`) with `theirs` (the stored record, which another writer
/// changed from `base`), field by field: see the [module](self) for the rules. Fails with
/// `Error::Encode` when the three do not have the same key, or a value does not encode.
pub fn merge<T: Entity>(base: &T, mine: &T, theirs: &T) -> Result<Merged<T>> {
    let table = T::TABLE;
    let (base, mine, theirs) = (base.to_row()?, mine.to_row()?, theirs.to_row()?);
    let (merged, collisions, taken) = merge_rows(table, &base, &mine, &theirs)?;
    Ok(Merged { record: T::from_row(merged)?, collisions, theirs: taken })
}

/// [`merge`] on rows.
fn merge_rows(
    table: &'static TableDef,
    base: &Row,
    mine: &Row,
    theirs: &Row,
) -> Result<(Row, Vec<Collision>, Vec<&'static str>)> {
    let key = table.key;
    if !same(value(mine, key), value(theirs, key)) || !same(value(base, key), value(theirs, key)) {
        return Err(Error::Encode {
            table: table.name,
            column: table.key_column().name,
            reason: "a merge needs the same record on all three sides: the keys differ".to_owned(),
        });
    }
    let mut merged = theirs.clone();
    let mut collisions = Vec::new();
    let mut taken = Vec::new();
    for (index, column) in table.columns.iter().enumerate() {
        let (b, m, t) = (value(base, index), value(mine, index), value(theirs, index));
        match column.role {
            ColumnRole::Key | ColumnRole::Version | ColumnRole::CreatedAt | ColumnRole::UpdatedAt => continue,
            ColumnRole::UpdatedBy => {
                merged.set(index, m.clone());
                continue;
            }
            ColumnRole::Data => {}
        }
        let json = column.ty == ColumnType::Json;
        // JSON documents compare as documents: the database may keep another spelling.
        let equal = |x: &Value, y: &Value| if json { same_document(x, y) } else { same(x, y) };
        match (equal(m, b), equal(t, b)) {
            (true, true) => {}
            (true, false) => taken.push(column.field), // theirs, already in `merged`
            (false, true) => {
                merged.set(index, m.clone());
            }
            (false, false) if equal(m, t) => {}
            (false, false) => match merge_documents(b, m, t).filter(|_| json) {
                Some((document, paths)) if paths.is_empty() => {
                    let text = serde_json::to_string(&document).map_err(|e| Error::Encode {
                        table: table.name,
                        column: column.name,
                        reason: e.to_string(),
                    })?;
                    merged.set(index, Value::Text(text));
                    taken.push(column.field);
                }
                Some((_, paths)) => collisions.push(collision(column, paths, b, m, t)),
                None => collisions.push(collision(column, Vec::new(), b, m, t)),
            },
        }
    }
    Ok((merged, collisions, taken))
}

fn collision(column: &'static ColumnDef, paths: Vec<String>, b: &Value, m: &Value, t: &Value) -> Collision {
    Collision { column: column.name, field: column.field, paths, base: b.clone(), mine: m.clone(), theirs: t.clone() }
}

fn value(row: &Row, index: usize) -> &Value {
    row.get(index).unwrap_or(&Value::Null)
}

/// Whether two values are the same value: floats by their bits, so that a `NaN` nobody changed is
/// unchanged.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Float(x), Value::Float(y)) => x.to_bits() == y.to_bits(),
        (a, b) => a == b,
    }
}

/// Whether two JSON texts (or `NULL`s) are the same document, however spelled.
fn same_document(a: &Value, b: &Value) -> bool {
    match (document(a), document(b)) {
        (Some(x), Some(y)) => x == y,
        _ => same(a, b),
    }
}

/// A JSON column's value as a document: its text parsed, `NULL` as JSON's `null`; `None` for
/// anything else.
fn document(v: &Value) -> Option<serde_json::Value> {
    match v {
        Value::Null => Some(serde_json::Value::Null),
        Value::Text(text) => serde_json::from_str(text).ok(),
        _ => None,
    }
}

/// The three-way merge of three JSON documents (each a JSON text, or `NULL`), key by key: the
/// merged document and the pointers where both sides changed a value differently; `None` when
/// one of them is not JSON text.
fn merge_documents(base: &Value, mine: &Value, theirs: &Value) -> Option<(serde_json::Value, Vec<String>)> {
    let (b, m, t) = (document(base)?, document(mine)?, document(theirs)?);
    let mut paths = Vec::new();
    let merged = merge_json(Some(&b), Some(&m), Some(&t), "", &mut paths).unwrap_or(serde_json::Value::Null);
    Some((merged, paths))
}

/// The rules of the module on JSON values, where `None` is a key absent from an object (so that
/// adding and removing a key are changes like any other): objects both sides changed merge key
/// by key; any other value is whole. Collisions keep theirs, and are noted at `path`.
fn merge_json(
    base: Option<&serde_json::Value>,
    mine: Option<&serde_json::Value>,
    theirs: Option<&serde_json::Value>,
    path: &str,
    collisions: &mut Vec<String>,
) -> Option<serde_json::Value> {
    use serde_json::Value as J;
    if mine == base || mine == theirs {
        return theirs.cloned();
    }
    if theirs == base {
        return mine.cloned();
    }
    let empty = serde_json::Map::new();
    let base_object = match base {
        Some(J::Object(b)) => Some(b),
        None => Some(&empty), // both added the key: merge what they added
        Some(_) => None,
    };
    if let (Some(b), Some(J::Object(m)), Some(J::Object(t))) = (base_object, mine, theirs) {
        let mut keys: Vec<&String> = b.keys().chain(m.keys()).chain(t.keys()).collect();
        keys.sort();
        keys.dedup();
        let mut merged = serde_json::Map::new();
        for key in keys {
            let here = format!("{path}/{}", key.replace('~', "~0").replace('/', "~1"));
            if let Some(value) = merge_json(b.get(key), m.get(key), t.get(key), &here, collisions) {
                merged.insert(key.clone(), value);
            }
        }
        return Some(J::Object(merged));
    }
    collisions.push(if path.is_empty() { "/".to_owned() } else { path.to_owned() });
    theirs.cloned()
}

/// What [`put_merging`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MergeOutcome {
    /// The stored versions your copy was merged with, in order: empty when the put went through
    /// at once.
    pub merged_with: Vec<u64>,
    /// The fields taken from the stored record (changed only by other writers), without repeats.
    pub theirs: Vec<&'static str>,
}

/// See [`Store::put_merging`](crate::Store::put_merging).
pub async fn put_merging<E: Executor + ?Sized, T: Entity>(on: &E, base: &T, mine: &mut T) -> Result<MergeOutcome> {
    let mut outcome = MergeOutcome { merged_with: Vec::new(), theirs: Vec::new() };
    let mut base = base.to_row()?;
    let mut attempts = RetryPolicy::attempts(10).start("put_merging");
    loop {
        let err = match ops::put(on, mine).await {
            Ok(()) => return Ok(outcome),
            Err(err) => err,
        };
        let Error::ConcurrentModification { current: Some(stored), actual: Some(version), .. } = &err else {
            return Err(err);
        };
        // Through the struct, so that each value is spelled as the copies' are (a database's
        // JSON text, SQLite's integers for booleans).
        let (stored, version) = (T::from_row(stored.clone())?.to_row()?, *version);
        let (merged, collisions, taken) = merge_rows(T::TABLE, &base, &mine.to_row()?, &stored)?;
        if !collisions.is_empty() {
            return Err(Error::Collisions {
                table: T::TABLE.name,
                key: T::TABLE.key_of(&stored)?.clone(),
                version,
                collisions,
                current: stored,
            });
        }
        // The merged copy is at the stored version: the next put is checked against it, and the
        // stored record is the base of any later merge.
        *mine = T::from_row(merged)?;
        base = stored;
        outcome.merged_with.push(version);
        for field in taken {
            if !outcome.theirs.contains(&field) {
                outcome.theirs.push(field);
            }
        }
        attempts.failed(err).await?;
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use proptest::prelude::*;
    use serde_json::{Value as J, json};

    use super::*;

    const fn column(name: &'static str, ty: ColumnType, role: ColumnRole) -> ColumnDef {
        ColumnDef { name, field: name, ty, nullable: true, role, indexed: false }
    }

    /// A table of every kind of column a merge treats apart (also the heat test's table).
    pub(crate) static CONTACTS: TableDef = TableDef {
        name: "contacts",
        entity: "Contact",
        columns: &[
            column("id", ColumnType::Int64, ColumnRole::Key),
            column("name", ColumnType::Text, ColumnRole::Data),
            column("phone", ColumnType::Int64, ColumnRole::Data),
            column("score", ColumnType::Float64, ColumnRole::Data),
            column("extra", ColumnType::Json, ColumnRole::Data),
            column("by", ColumnType::Text, ColumnRole::UpdatedBy),
            column("version", ColumnType::Int64, ColumnRole::Version),
        ],
        key: 0,
        version: 6,
        version_max: i64::MAX as u64,
        history: None,
    };

    fn row(values: Vec<Value>) -> Row {
        Row::new(values)
    }

    fn contact(name: &str, phone: i64, extra: J, version: i64) -> Row {
        row(vec![
            Value::Int(1),
            Value::Text(name.into()),
            Value::Int(phone),
            Value::Float(0.5),
            Value::Text(extra.to_string()),
            Value::Text("amy".into()),
            Value::Int(version),
        ])
    }

    #[test]
    fn disjoint_changes_merge_and_the_record_keeps_the_stored_version() {
        let base = contact("Amy", 1, json!({}), 1);
        let mine = contact("Amy Lee", 1, json!({}), 1);
        let theirs = contact("Amy", 2, json!({}), 2);
        let (merged, collisions, taken) = merge_rows(&CONTACTS, &base, &mine, &theirs).expect("merge");
        assert!(collisions.is_empty());
        assert_eq!(taken, ["phone"]);
        assert_eq!(merged, contact("Amy Lee", 2, json!({}), 2));
    }

    #[test]
    fn json_documents_merge_key_by_key_and_collide_only_where_both_changed_a_key() {
        let base = contact("Amy", 1, json!({"a": 1, "b": {"x": 1, "y": 1}, "gone": 1}), 1);
        let mine = contact("Amy", 1, json!({"a": 2, "b": {"x": 2, "y": 1}, "new": 1}), 1);
        let theirs = contact("Amy", 1, json!({"a": 1, "b": {"x": 1, "y": 3}, "gone": 1, "other": 1}), 2);
        let (merged, collisions, _) = merge_rows(&CONTACTS, &base, &mine, &theirs).expect("merge");
        assert!(collisions.is_empty(), "{collisions:?}");
        let document: J = match merged.get(4) {
            Some(Value::Text(text)) => serde_json::from_str(text).expect("JSON"),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            document,
            json!({"a": 2, "b": {"x": 2, "y": 3}, "new": 1, "other": 1}),
            "mine's removal of gone kept"
        );
        let clash = contact("Amy", 1, json!({"a": 3, "b": {"x": 1, "y": 1}, "gone": 1}), 2);
        let (_, collisions, _) = merge_rows(&CONTACTS, &base, &mine, &clash).expect("merge");
        assert_eq!(collisions.len(), 1);
        assert_eq!((collisions[0].field, collisions[0].paths.as_slice()), ("extra", &["/a".to_owned()][..]));
    }

    #[test]
    fn a_merge_of_another_record_is_refused() {
        let base = contact("Amy", 1, json!({}), 1);
        let mut other = contact("Amy", 1, json!({}), 1);
        other.set(0, Value::Int(2));
        assert!(matches!(merge_rows(&CONTACTS, &base, &base, &other), Err(Error::Encode { column: "id", .. })));
    }

    /// A small JSON value: leaves from a few numbers, objects of a few keys, two levels deep.
    fn document() -> impl Strategy<Value = J> {
        let leaf = prop_oneof![(0..3_i64).prop_map(J::from), Just(J::Null)];
        leaf.prop_recursive(2, 8, 3, |inner| {
            prop::collection::btree_map(prop::sample::select(vec!["a", "b", "c"]), inner, 0..3)
                .prop_map(|map| J::Object(map.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()))
        })
    }

    /// One side's edit of `base`: each field kept or replaced.
    fn edit(base: Vec<Value>) -> impl Strategy<Value = Vec<Value>> {
        let changes = (
            prop::option::of(prop::sample::select(vec!["Amy", "Ann", "Bob"])),
            prop::option::of(0..3_i64),
            prop::option::of(prop::sample::select(vec![0.5, 1.5, f64::NAN])),
            prop::option::of(document()),
        );
        changes.prop_map(move |(name, phone, score, extra)| {
            let mut row = base.clone();
            if let Some(name) = name {
                row[1] = Value::Text(name.into());
            }
            if let Some(phone) = phone {
                row[2] = Value::Int(phone);
            }
            if let Some(score) = score {
                row[3] = Value::Float(score);
            }
            if let Some(extra) = extra {
                row[4] = Value::Text(extra.to_string());
            }
            row
        })
    }

    fn cases() -> impl Strategy<Value = (Vec<Value>, Vec<Value>, Vec<Value>)> {
        (document(), 0..3_i64).prop_flat_map(|(extra, phone)| {
            let base = contact("Amy", phone, extra, 1).values().to_vec();
            (Just(base.clone()), edit(base.clone()), edit(base))
        })
    }

    fn parse(v: &Value) -> J {
        match v {
            Value::Text(text) => serde_json::from_str(text).expect("JSON"),
            _ => J::Null,
        }
    }

    /// The three-way rules at one JSON value (`None`: absent), where nothing collided.
    fn check_json(b: Option<&J>, m: Option<&J>, t: Option<&J>, merged: Option<&J>) {
        if m == b || m == t {
            assert_eq!(merged, t, "unchanged by me (or the same change): theirs");
        } else if t == b {
            assert_eq!(merged, m, "changed by me only: mine");
        } else {
            let (Some(J::Object(mo)), Some(J::Object(to)), Some(J::Object(me))) = (m, t, merged) else {
                panic!("both changed a non-object differently without a collision: {b:?} {m:?} {t:?} -> {merged:?}");
            };
            let empty = serde_json::Map::new();
            let bo = match b {
                Some(J::Object(bo)) => bo,
                _ => &empty,
            };
            for key in bo.keys().chain(mo.keys()).chain(to.keys()).chain(me.keys()) {
                check_json(bo.get(key), mo.get(key), to.get(key), me.get(key));
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        /// A merge never loses a change of either side that did not collide, and reports a
        /// collision only where both sides changed a field differently.
        #[test]
        fn a_merge_keeps_every_change_that_did_not_collide((base, mine, theirs) in cases()) {
            let (b, m, t) = (row(base), row(mine), row(theirs));
            let (merged, collisions, _) = merge_rows(&CONTACTS, &b, &m, &t).expect("merge");
            for index in 1..=4 {
                let (bv, mv, tv, out) = (value(&b, index), value(&m, index), value(&t, index), value(&merged, index));
                let json = index == 4;
                let equal = |x: &Value, y: &Value| if json { parse(x) == parse(y) } else { same(x, y) };
                let collided = collisions.iter().any(|c| c.column == CONTACTS.columns[index].name);
                if collided {
                    prop_assert!(!equal(mv, bv) && !equal(tv, bv) && !equal(mv, tv), "a collision where one side kept the base");
                    prop_assert!(equal(out, tv), "a collided field keeps the stored value");
                } else if json {
                    check_json(Some(&parse(bv)), Some(&parse(mv)), Some(&parse(tv)), Some(&parse(out)));
                } else if equal(mv, bv) {
                    prop_assert!(equal(out, tv));
                } else if equal(tv, bv) || equal(mv, tv) {
                    prop_assert!(equal(out, mv));
                } else {
                    prop_assert!(false, "both changed {} differently and no collision", CONTACTS.columns[index].name);
                }
            }
            prop_assert_eq!(value(&merged, 6), value(&t, 6), "the stored version: a put of it is checked");
            prop_assert_eq!(value(&merged, 5), value(&m, 5), "updated_by is the writer's");
        }
    }
}
