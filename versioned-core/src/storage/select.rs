//! What a query asks of a backend: a [`Condition`] on a table's columns, an [`Order`], a limit.
//! The typed layer (`query`) builds them from field handles; the SQL backends render them
//! (`sql/select.rs`), the memory and etcd backends evaluate them in Rust (`evaluate.rs`). Both give
//! the same answer: the rules below are the contract.

use crate::lock::LockWait;
use crate::value::Value;

/// How a column is compared with a value, in Rust's order of the field's values: numbers by value,
/// text by code point (case-sensitive), bytes byte by byte, `false` before `true`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Comparison {
    /// `=`
    Eq,
    /// `<>`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

/// A condition on a row, true or false for every row: a comparison with a `NULL` column is false
/// (never unknown, as in SQL), so [`Not`](Condition::Not) is plain negation. Values are never
/// [`Value::Null`]: the typed layer says "is null" with [`IsNull`](Condition::IsNull).
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// Column `column` compared with `value`; false where the column is `NULL`.
    Compare {
        /// The column's index in the table's columns.
        column: usize,
        /// The comparison.
        op: Comparison,
        /// The value, encoded as the column stores it.
        value: Value,
    },
    /// Column `column` equals one of `values` (none: false); false where the column is `NULL`.
    In {
        /// The column's index.
        column: usize,
        /// The values, encoded as the column stores them.
        values: Vec<Value>,
    },
    /// Column `column` is `NULL`.
    IsNull {
        /// The column's index.
        column: usize,
    },
    /// Text column `column` starts with `prefix` (compared by code point, case-sensitive; `%` and
    /// `_` are characters like any other); false where the column is `NULL`.
    StartsWith {
        /// The column's index.
        column: usize,
        /// The prefix.
        prefix: String,
    },
    /// Every condition holds (none: true).
    And(Vec<Condition>),
    /// At least one condition holds (none: false).
    Or(Vec<Condition>),
    /// The condition does not hold.
    Not(Box<Condition>),
}

impl Condition {
    /// The condition every row meets.
    pub fn all() -> Self {
        Condition::And(Vec::new())
    }

    /// Whether this is the condition every row meets, as [`all`](Self::all) makes it.
    pub fn is_all(&self) -> bool {
        matches!(self, Condition::And(c) if c.is_empty())
    }

    /// Both `self` and `other`, flattened.
    pub fn and(self, other: Condition) -> Self {
        match (self, other) {
            (a, b) if a.is_all() => b,
            (a, b) if b.is_all() => a,
            (Condition::And(mut a), Condition::And(b)) => {
                a.extend(b);
                Condition::And(a)
            }
            (Condition::And(mut a), b) => {
                a.push(b);
                Condition::And(a)
            }
            (a, b) => Condition::And(vec![a, b]),
        }
    }

    /// Either `self` or `other`, flattened.
    pub fn or(self, other: Condition) -> Self {
        match (self, other) {
            (Condition::Or(mut a), Condition::Or(b)) => {
                a.extend(b);
                Condition::Or(a)
            }
            (Condition::Or(mut a), b) => {
                a.push(b);
                Condition::Or(a)
            }
            (a, b) => Condition::Or(vec![a, b]),
        }
    }

    /// Every column the condition reads, for a backend that checks them.
    pub fn columns(&self, out: &mut Vec<usize>) {
        match self {
            Condition::Compare { column, .. }
            | Condition::In { column, .. }
            | Condition::IsNull { column }
            | Condition::StartsWith { column, .. } => out.push(*column),
            Condition::And(all) | Condition::Or(all) => all.iter().for_each(|c| c.columns(out)),
            Condition::Not(c) => c.columns(out),
        }
    }
}

/// One key of a query's order: a column, ascending or descending, in Rust's order of the values
/// with `NULL` (`None`) before every value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Order {
    /// The column's index.
    pub column: usize,
    /// Largest first.
    pub descending: bool,
}

/// How a transaction's query locks the rows it returns, until the transaction ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowLock {
    /// Locks each row, waiting as this says for one another transaction holds.
    Wait(LockWait),
    /// Locks each row no other transaction holds, and leaves the others out of the answer (the
    /// limit counts only rows returned): a job queue's "claim the next job".
    SkipLocked,
}

/// A query of one table: the rows meeting `condition`, in `order`, at most `limit` of them.
#[derive(Debug, Clone, PartialEq)]
pub struct Select {
    /// Which rows.
    pub condition: Condition,
    /// Their order: total, as it always ends with the key column.
    pub order: Vec<Order>,
    /// At most this many (`None`: all).
    pub limit: Option<u64>,
    /// In a transaction, how the rows returned are locked (`None`: not locked). The typed layer
    /// sets it only on a transaction's handle.
    pub lock: Option<RowLock>,
}
