//! Queries evaluated in Rust, over rows a backend holds or has read: what the memory and etcd
//! backends run, and the definition the SQL backends' statements are tested against.

use std::cmp::Ordering;

use super::select::{Comparison, Condition, Order, Select};
use crate::entity::TableDef;
use crate::value::{Row, Value};

/// Rust's order of two stored values of one column: `NULL` first, then numbers by value, text by
/// code point, bytes byte by byte, `false` before `true`. Rust has no order for a float NaN: here
/// it is above every number and equal to itself, as PostgreSQL sorts it, so the order stays total
/// (a sort never meets a cycle). Values of two different types (a table that another struct laid
/// out) compare by the type's rank.
pub fn compare(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Null, Value::Null) => Ordering::Equal,
        (Value::Bool(a), Value::Bool(b)) => a.cmp(b),
        (Value::Int(a), Value::Int(b)) => a.cmp(b),
        (Value::Float(a), Value::Float(b)) => floats(*a, *b),
        (Value::Int(a), Value::Float(b)) => floats(*a as f64, *b),
        (Value::Float(a), Value::Int(b)) => floats(*a, *b as f64),
        (Value::Text(a), Value::Text(b)) => a.cmp(b),
        (Value::Bytes(a), Value::Bytes(b)) => a.cmp(b),
        (a, b) => rank(a).cmp(&rank(b)),
    }
}

/// Two floats by value, NaN above every number and equal to itself; `-0.0` equals `0.0`.
fn floats(a: f64, b: f64) -> Ordering {
    a.partial_cmp(&b).unwrap_or_else(|| a.is_nan().cmp(&b.is_nan()))
}

/// Where a value's type sorts among the others, for two values of different types.
fn rank(value: &Value) -> u8 {
    match value {
        Value::Null => 0,
        Value::Bool(_) => 1,
        Value::Int(_) | Value::Float(_) => 2,
        Value::Text(_) => 3,
        Value::Bytes(_) => 4,
    }
}

/// Whether `row` meets `condition`.
pub fn matches(condition: &Condition, row: &Row) -> bool {
    let column = |i: &usize| row.get(*i).unwrap_or(&Value::Null);
    match condition {
        Condition::Compare { column: i, op, value } => {
            let stored = column(i);
            if matches!(stored, Value::Null) {
                return false;
            }
            let ordering = compare(stored, value);
            match op {
                Comparison::Eq => ordering == Ordering::Equal,
                Comparison::Ne => ordering != Ordering::Equal,
                Comparison::Lt => ordering == Ordering::Less,
                Comparison::Le => ordering != Ordering::Greater,
                Comparison::Gt => ordering == Ordering::Greater,
                Comparison::Ge => ordering != Ordering::Less,
            }
        }
        Condition::In { column: i, values } => {
            let stored = column(i);
            !matches!(stored, Value::Null) && values.iter().any(|v| compare(stored, v) == Ordering::Equal)
        }
        Condition::IsNull { column: i } => matches!(column(i), Value::Null),
        Condition::StartsWith { column: i, prefix } => {
            matches!(column(i), Value::Text(text) if text.starts_with(prefix.as_str()))
        }
        Condition::And(all) => all.iter().all(|c| matches(c, row)),
        Condition::Or(any) => any.iter().any(|c| matches(c, row)),
        Condition::Not(c) => !matches(c, row),
    }
}

/// The keys `condition` limits the rows to, when it names them (an equality or a list on the
/// key, alone or in an `AND`): a backend that reads whole tables can read just those rows.
pub fn keys_named<'c>(table: &TableDef, condition: &'c Condition) -> Option<Vec<&'c Value>> {
    match condition {
        Condition::Compare { column, op: Comparison::Eq, value } if *column == table.key => Some(vec![value]),
        Condition::In { column, values } if *column == table.key => Some(values.iter().collect()),
        Condition::And(all) => all.iter().find_map(|c| keys_named(table, c)),
        _ => None,
    }
}

/// The order of two rows by `order`.
pub fn compare_rows(order: &[Order], a: &Row, b: &Row) -> Ordering {
    for key in order {
        let (x, y) = (a.get(key.column).unwrap_or(&Value::Null), b.get(key.column).unwrap_or(&Value::Null));
        let ordering = compare(x, y);
        let ordering = if key.descending { ordering.reverse() } else { ordering };
        if ordering != Ordering::Equal {
            return ordering;
        }
    }
    Ordering::Equal
}

/// `found` (rows meeting `select`'s condition) in `select`'s order, at most its limit. Only the
/// rows kept are sorted in full.
pub fn order_and_limit(select: &Select, mut found: Vec<Row>) -> Vec<Row> {
    let by = |a: &Row, b: &Row| compare_rows(&select.order, a, b);
    if let Some(limit) = select.limit.map(|l| usize::try_from(l).unwrap_or(usize::MAX))
        && limit < found.len()
    {
        if limit == 0 {
            found.clear();
            return found;
        }
        found.select_nth_unstable_by(limit - 1, by);
        found.truncate(limit);
    }
    found.sort_unstable_by(by);
    found
}

/// The rows a query keeps, offered one at a time by a backend that reads every row of a table:
/// those meeting the condition, and with a limit only the first `limit` in order (a row is copied
/// only when it is kept, so a page of 20 of 100,000 copies about 20 rows, not every match).
pub struct Collector<'s> {
    select: &'s Select,
    limit: Option<usize>,
    /// Kept rows; once `limit` are kept, sorted, the last being the worst.
    rows: Vec<Row>,
}

impl<'s> Collector<'s> {
    /// A collector of `select`'s answer.
    pub fn new(select: &'s Select) -> Self {
        let limit = select.limit.map(|l| usize::try_from(l).unwrap_or(usize::MAX));
        Collector { select, limit, rows: Vec::new() }
    }

    /// Offers `row`: kept if it meets the condition and, with a limit, comes before the worst row
    /// kept so far (which it then replaces). Returns whether it met the condition.
    pub fn offer(&mut self, row: std::borrow::Cow<'_, Row>) -> bool {
        if !matches(&self.select.condition, &row) {
            return false;
        }
        let Some(limit) = self.limit else {
            self.rows.push(row.into_owned());
            return true;
        };
        let by = |a: &Row, b: &Row| compare_rows(&self.select.order, a, b);
        if self.rows.len() < limit {
            self.rows.push(row.into_owned());
            if self.rows.len() == limit {
                self.rows.sort_unstable_by(by);
            }
        } else if let Some(worst) = self.rows.last()
            && by(&row, worst) == Ordering::Less
        {
            let at = self.rows.partition_point(|kept| by(kept, &row) != Ordering::Greater);
            self.rows.pop();
            self.rows.insert(at, row.into_owned());
        }
        true
    }

    /// The rows kept, in order.
    pub fn finish(self) -> Vec<Row> {
        order_and_limit(self.select, self.rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::select::Order;

    /// NaN has no place in Rust's order of floats; here it is above every number, so a sort of
    /// rows with NaN in them has a total order to follow (a cycle could make the sort panic).
    #[test]
    fn nan_sorts_above_every_number_and_the_order_stays_total() {
        let rows: Vec<Row> = [2.0, f64::NAN, 1.0, -0.0, 0.0, f64::INFINITY, f64::NAN]
            .iter()
            .enumerate()
            .map(|(key, x)| Row::new(vec![Value::Int(key as i64), Value::Float(*x)]))
            .collect();
        let select = Select {
            condition: Condition::all(),
            order: vec![Order { column: 1, descending: false }, Order { column: 0, descending: false }],
            limit: Some(5),
            lock: None,
        };
        let mut collector = Collector::new(&select);
        for row in &rows {
            collector.offer(std::borrow::Cow::Borrowed(row));
        }
        let keys: Vec<Value> = collector.finish().into_iter().map(|r| r.values()[0].clone()).collect();
        assert_eq!(keys, [3, 4, 2, 0, 5].map(Value::Int), "-0.0 and 0.0 tie (the key decides), NaN last");
        assert_eq!(compare(&Value::Float(f64::NAN), &Value::Float(f64::NAN)), Ordering::Equal);
        let nan_is_not_one = Condition::Compare { column: 1, op: Comparison::Eq, value: Value::Float(1.0) };
        assert!(!matches(&nan_is_not_one, &rows[1]));
    }
}
