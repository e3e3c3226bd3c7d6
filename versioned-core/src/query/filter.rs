//! [`Filter`]: which records a query returns, combined with `and`, `or` and `not`.

use std::fmt;
use std::marker::PhantomData;

use crate::entity::Entity;
use crate::error::{Error, Result};
use crate::storage::select::Condition;

/// A condition on the records of struct `T`, built from its field handles ([`Column`](super::Column))
/// and combined with [`and`](Self::and), [`or`](Self::or) and [`not`](Self::not) (or `&`, `|`
/// and `!`). A value that cannot be encoded for its field (a `u64` above what storage holds) makes
/// the query fail with that error before anything is read.
pub struct Filter<T> {
    /// The condition, or the column and reason of a value that could not be encoded.
    condition: std::result::Result<Condition, (usize, String)>,
    entity: PhantomData<fn() -> T>,
}

impl<T> Filter<T> {
    pub(crate) fn new(condition: std::result::Result<Condition, (usize, String)>) -> Self {
        Filter { condition, entity: PhantomData }
    }

    /// The filter every record meets.
    pub fn all() -> Self {
        Filter::new(Ok(Condition::all()))
    }

    /// Records meeting both filters.
    #[must_use]
    pub fn and(self, other: Filter<T>) -> Self {
        self.combine(other, Condition::and)
    }

    /// Records meeting either filter.
    #[must_use]
    pub fn or(self, other: Filter<T>) -> Self {
        self.combine(other, Condition::or)
    }

    /// Records not meeting the filter.
    #[must_use]
    #[allow(clippy::should_implement_trait)] // it is implemented too: `!filter`
    pub fn not(self) -> Self {
        Filter::new(self.condition.map(|c| match c {
            Condition::Not(inner) => *inner,
            c => Condition::Not(Box::new(c)),
        }))
    }

    fn combine(self, other: Filter<T>, with: fn(Condition, Condition) -> Condition) -> Self {
        Filter::new(match (self.condition, other.condition) {
            (Ok(a), Ok(b)) => Ok(with(a, b)),
            (Err(e), _) | (_, Err(e)) => Err(e),
        })
    }
}

impl<T: Entity> Filter<T> {
    /// The condition, or the error of a value that could not be encoded.
    pub(crate) fn into_condition(self) -> Result<Condition> {
        self.condition.map_err(|(column, reason)| Error::encode(T::TABLE, column, reason))
    }
}

impl<T> Default for Filter<T> {
    fn default() -> Self {
        Filter::all()
    }
}

impl<T> Clone for Filter<T> {
    fn clone(&self) -> Self {
        Filter::new(self.condition.clone())
    }
}

impl<T> fmt::Debug for Filter<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.condition {
            Ok(c) => fmt::Debug::fmt(c, f),
            Err((column, reason)) => write!(f, "Err(column {column}: {reason})"),
        }
    }
}

impl<T> std::ops::BitAnd for Filter<T> {
    type Output = Filter<T>;

    fn bitand(self, other: Filter<T>) -> Filter<T> {
        self.and(other)
    }
}

impl<T> std::ops::BitOr for Filter<T> {
    type Output = Filter<T>;

    fn bitor(self, other: Filter<T>) -> Filter<T> {
        self.or(other)
    }
}

impl<T> std::ops::Not for Filter<T> {
    type Output = Filter<T>;

    fn not(self) -> Filter<T> {
        Filter::not(self)
    }
}
