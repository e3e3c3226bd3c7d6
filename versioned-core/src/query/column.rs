//! [`Column`]: a typed handle on one field of a struct, from which filters and orders are built.

use std::fmt;
use std::marker::PhantomData;

use super::filter::Filter;
use super::order::OrderBy;
use crate::entity::Entity;
use crate::storage::select::{Comparison, Condition, Order};
use crate::value::Value;

/// A field of struct `T` whose Rust type is `V`, for queries: `#[derive(Versioned)]` makes one
/// per field (but `#[versioned(json)]` ones) as an associated constant named after the field in
/// capitals, `Bug::STATUS` for `status`.
///
/// Values compared with it are encoded as the field is stored, so a comparison means what it
/// means in Rust: numbers by value, text by code point (case-sensitive), `false` before `true`,
/// `None` before every value (so `lt` and `le` match `None`, and `ne(x)` matches `None` too). A
/// field stored as text (`#[versioned(text)]`) compares by its stored text.
///
/// ```
/// # use versioned_core as versioned;
/// # use versioned_derive::Versioned;
/// #[derive(Versioned)]
/// # #[versioned(crate = versioned_core)]
/// struct Bug {
///     #[key]
///     id: i64,
///     title: String,
///     assignee: Option<String>,
///     #[version]
///     version: u64,
/// }
///
/// let mine = Bug::ASSIGNEE.eq("ann").and(Bug::TITLE.starts_with("crash"));
/// let unassigned = Bug::ASSIGNEE.is_none();
/// # let _ = (mine, unassigned);
/// ```
pub struct Column<T, V> {
    index: usize,
    encode: fn(&V) -> std::result::Result<Value, String>,
    entity: PhantomData<fn() -> T>,
}

impl<T, V> Clone for Column<T, V> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T, V> Copy for Column<T, V> {}

impl<T: Entity, V> fmt::Debug for Column<T, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", T::TABLE.entity, T::TABLE.columns.get(self.index).map_or("?", |c| c.field))
    }
}

/// A value a field of type `V` can be compared with: a `V`, a `&V`, a `&str` for a `String`, and
/// for an `Option<V>` field also a `V` (meaning `Some`).
#[diagnostic::on_unimplemented(
    message = "a field of type `{V}` cannot be compared with a `{Self}`",
    label = "expected a `{V}` here"
)]
pub trait Operand<V> {
    /// Encodes the value with the field's own encoding.
    fn encode(self, encode: fn(&V) -> std::result::Result<Value, String>) -> std::result::Result<Value, String>;
}

impl<V> Operand<V> for V {
    fn encode(self, encode: fn(&V) -> std::result::Result<Value, String>) -> std::result::Result<Value, String> {
        encode(&self)
    }
}

impl<V> Operand<V> for &V {
    fn encode(self, encode: fn(&V) -> std::result::Result<Value, String>) -> std::result::Result<Value, String> {
        encode(self)
    }
}

impl<V> Operand<Option<V>> for V {
    fn encode(
        self,
        encode: fn(&Option<V>) -> std::result::Result<Value, String>,
    ) -> std::result::Result<Value, String> {
        encode(&Some(self))
    }
}

impl Operand<String> for &str {
    fn encode(self, encode: fn(&String) -> std::result::Result<Value, String>) -> std::result::Result<Value, String> {
        encode(&self.to_owned())
    }
}

impl Operand<Option<String>> for &str {
    fn encode(
        self,
        encode: fn(&Option<String>) -> std::result::Result<Value, String>,
    ) -> std::result::Result<Value, String> {
        encode(&Some(self.to_owned()))
    }
}

impl<T: Entity, V> Column<T, V> {
    /// The handle of column `index` of `T::TABLE`, whose values `encode` stores. The derive makes
    /// these; `index` must be the field's column.
    #[doc(hidden)]
    pub const fn new(index: usize, encode: fn(&V) -> std::result::Result<Value, String>) -> Self {
        Column { index, encode, entity: PhantomData }
    }

    /// The column's index in `T::TABLE.columns`.
    pub fn index(&self) -> usize {
        self.index
    }

    /// The column's name.
    pub fn name(&self) -> &'static str {
        T::TABLE.columns.get(self.index).map_or("?", |c| c.name)
    }

    fn nullable(&self) -> bool {
        T::TABLE.columns.get(self.index).is_some_and(|c| c.nullable)
    }

    /// `value`, encoded as the column stores it; an error names the column.
    fn value(&self, value: impl Operand<V>) -> std::result::Result<Value, (usize, String)> {
        value.encode(self.encode).map_err(|reason| (self.index, reason))
    }

    fn compare(self, op: Comparison, value: impl Operand<V>) -> Filter<T> {
        Filter::new(self.value(value).map(|value| compare(self.index, self.nullable(), op, value)))
    }

    /// The field equals `value`.
    pub fn eq(self, value: impl Operand<V>) -> Filter<T> {
        self.compare(Comparison::Eq, value)
    }

    /// The field differs from `value` (`None` differs from every value).
    pub fn ne(self, value: impl Operand<V>) -> Filter<T> {
        self.compare(Comparison::Ne, value)
    }

    /// The field is below `value` (`None` is below every value).
    pub fn lt(self, value: impl Operand<V>) -> Filter<T> {
        self.compare(Comparison::Lt, value)
    }

    /// The field is at most `value`.
    pub fn le(self, value: impl Operand<V>) -> Filter<T> {
        self.compare(Comparison::Le, value)
    }

    /// The field is above `value`.
    pub fn gt(self, value: impl Operand<V>) -> Filter<T> {
        self.compare(Comparison::Gt, value)
    }

    /// The field is at least `value`.
    pub fn ge(self, value: impl Operand<V>) -> Filter<T> {
        self.compare(Comparison::Ge, value)
    }

    /// The field equals one of `values` (none: no record matches).
    pub fn in_list<O: Operand<V>>(self, values: impl IntoIterator<Item = O>) -> Filter<T> {
        let encoded: std::result::Result<Vec<Value>, _> = values.into_iter().map(|v| self.value(v)).collect();
        Filter::new(encoded.map(|values| {
            let (nulls, values): (Vec<Value>, Vec<Value>) = values.into_iter().partition(|v| *v == Value::Null);
            let listed = Condition::In { column: self.index, values };
            if nulls.is_empty() { listed } else { Condition::IsNull { column: self.index }.or(listed) }
        }))
    }

    /// Ascending order of this field (`None` first).
    pub fn asc(self) -> OrderBy<T> {
        OrderBy::new(Order { column: self.index, descending: false })
    }

    /// Descending order of this field (`None` last).
    pub fn desc(self) -> OrderBy<T> {
        OrderBy::new(Order { column: self.index, descending: true })
    }
}

impl<T: Entity, V> Column<T, Option<V>> {
    /// The field is `None`.
    pub fn is_none(self) -> Filter<T> {
        Filter::new(Ok(Condition::IsNull { column: self.index }))
    }

    /// The field is `Some`.
    pub fn is_some(self) -> Filter<T> {
        Filter::new(Ok(Condition::Not(Box::new(Condition::IsNull { column: self.index }))))
    }
}

impl<T: Entity> Column<T, String> {
    /// The text starts with `prefix`, compared by code point (case-sensitive); `%` and `_` are
    /// characters like any other.
    pub fn starts_with(self, prefix: &str) -> Filter<T> {
        Filter::new(Ok(Condition::StartsWith { column: self.index, prefix: prefix.to_owned() }))
    }
}

impl<T: Entity> Column<T, Option<String>> {
    /// The text is `Some` and starts with `prefix`, as [`Column::starts_with`].
    pub fn starts_with(self, prefix: &str) -> Filter<T> {
        Filter::new(Ok(Condition::StartsWith { column: self.index, prefix: prefix.to_owned() }))
    }
}

/// The condition for `column op value` in Rust's order, where `NULL` (`None`) is below every
/// value; the contract's comparisons are false on `NULL`, so it is added where Rust's is true.
pub(crate) fn compare(column: usize, nullable: bool, op: Comparison, value: Value) -> Condition {
    let null = || Condition::IsNull { column };
    let not_null = || Condition::Not(Box::new(null()));
    if value == Value::Null {
        return match op {
            Comparison::Eq | Comparison::Le => null(),
            Comparison::Ne | Comparison::Gt => not_null(),
            Comparison::Lt => Condition::Or(Vec::new()),
            Comparison::Ge => Condition::all(),
        };
    }
    let compared = Condition::Compare { column, op, value };
    match op {
        Comparison::Ne | Comparison::Lt | Comparison::Le if nullable => null().or(compared),
        _ => compared,
    }
}
