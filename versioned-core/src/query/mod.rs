//! Queries beyond the key: typed field handles ([`Column`], one per field, made by the derive),
//! [`Filter`]s combined with `and`, `or` and `not`, orders ([`OrderBy`]), and [`Find`], which runs
//! them on a store or in a transaction and returns records, a [`Page`] with its [`Cursor`], a
//! count, or a stream.
//!
//! One meaning on every backend: the records returned, and their order, are those of the same
//! query evaluated over the records in Rust (the contract: `storage::select`).

mod column;
mod cursor;
mod filter;
pub(crate) mod find;
mod order;
mod stream;

pub use column::{Column, Operand};
pub use cursor::{Cursor, CursorParseError};
pub use filter::Filter;
pub use find::{Find, MAX_QUERY_VALUES, Page};
pub use order::OrderBy;
