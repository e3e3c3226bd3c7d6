//! [`OrderBy`]: one key of a query's order.

use std::marker::PhantomData;

use super::column::Column;
use crate::entity::Entity;
use crate::storage::select::Order;

/// A field of struct `T`, ascending or descending: made by [`Column::asc`] and [`Column::desc`];
/// a [`Column`] alone means ascending.
pub struct OrderBy<T> {
    pub(crate) order: Order,
    entity: PhantomData<fn() -> T>,
}

impl<T> OrderBy<T> {
    pub(crate) fn new(order: Order) -> Self {
        OrderBy { order, entity: PhantomData }
    }
}

impl<T> Clone for OrderBy<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for OrderBy<T> {}

impl<T> std::fmt::Debug for OrderBy<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.order.fmt(f)
    }
}

impl<T: Entity, V> From<Column<T, V>> for OrderBy<T> {
    fn from(column: Column<T, V>) -> Self {
        column.asc()
    }
}
