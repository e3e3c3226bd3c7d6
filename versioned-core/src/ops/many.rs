//! Reads of many records by key, in one query per chunk of keys.

use super::{decode_row, key_value};
use crate::entity::Entity;
use crate::error::Result;
use crate::observe::{Kind, Operation, observed};
use crate::query::MAX_QUERY_VALUES;
use crate::storage::select::{Condition, Order, Select};
use crate::storage::{RowAccess, evaluate};
use crate::value::{KeyFor, Row, Value};

/// See [`Store::get_many`](crate::Store::get_many).
pub async fn get_many<T: Entity, A: RowAccess, K: KeyFor<T::Key>>(access: &A, keys: &[K]) -> Result<Vec<Option<T>>> {
    observed!(
        Operation::start("get_many", T::TABLE, || None),
        Kind::Read,
        |found: &Vec<Option<T>>| ("found", found.iter().flatten().count() as u64),
        get_many_inner::<T, _, _>(access, keys)
    )
}

async fn get_many_inner<T: Entity, A: RowAccess, K: KeyFor<T::Key>>(access: &A, keys: &[K]) -> Result<Vec<Option<T>>> {
    let table = T::TABLE;
    let keys: Vec<_> = keys.iter().map(key_value::<T>).collect::<Result<_>>()?;
    let mut rows = Vec::new();
    for chunk in keys.chunks(MAX_QUERY_VALUES) {
        let select = Select {
            condition: Condition::In { column: table.key, values: chunk.to_vec() },
            order: vec![Order { column: table.key, descending: false }],
            limit: None,
            lock: None,
        };
        rows.extend(access.select(table, &select).await?);
    }
    // Found by key in the stored order (a key given twice gets its record twice).
    let key_of = |row: &Row| row.get(table.key).cloned().unwrap_or(Value::Null);
    rows.sort_by(|a, b| evaluate::compare(&key_of(a), &key_of(b)));
    keys.iter()
        .map(|key| match rows.binary_search_by(|row| evaluate::compare(&key_of(row), key)) {
            Ok(at) => decode_row(rows[at].clone()).map(Some),
            Err(_) => Ok(None),
        })
        .collect()
}
