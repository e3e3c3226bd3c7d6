//! # versioned
//!
//! Optimistic locking for plain Rust structs: concurrent writers never silently overwrite each
//! other.
//!
//! Mark a struct's `#[key]` and `#[version]` fields and derive [`Versioned`]. Every checked write
//! ([`Store::put`], [`Store::delete`]) succeeds only if the stored version is still the one you
//! read, in the same statement as the write; otherwise it fails with
//! [`Error::ConcurrentModification`], which carries the stored record so you can show the user what
//! changed, merge, or retry from a fresh read.
//!
//! ```
//! use versioned::{Error, Store, Versioned};
//!
//! #[derive(Versioned, Debug, Clone, PartialEq)]
//! #[versioned(table = "people")]
//! struct Person {
//!     #[key]
//!     id: i64,
//!     name: String,
//!     salary: i32,
//!     #[version]
//!     version: u64,
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Error> {
//! let store = Store::memory();
//! store.create_table::<Person>().await?;
//!
//! let mut ann = Person { id: 1, name: "Ann".into(), salary: 100, version: 0 };
//! store.insert(&mut ann).await?; // version 1
//!
//! // Two users open the record at version 1.
//! let mut a = Person::get_with_version(&store, &1, 1).await?;
//! let mut b = Person::get_with_version(&store, &1, 1).await?;
//!
//! a.salary = 120;
//! a.put(&store).await?; // checked: stored version 1 == 1, now 2
//!
//! b.salary = 90;
//! let err = b.put(&store).await.unwrap_err(); // stored version is 2, not 1: refused
//! assert!(matches!(err, Error::ConcurrentModification { expected: 1, actual: Some(2), .. }));
//! assert_eq!(err.current::<Person>().unwrap()?.salary, 120); // what the other writer saved
//! assert_eq!(b.version, 1); // the failed write left `b` as it was
//! # Ok(())
//! # }
//! ```
//!
//! The runtime lives in [`versioned_core`] and is re-exported here; this crate adds the derive.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub use versioned_core::*;
/// Derives [`Entity`] for a struct with named fields, one `#[key]` and one `#[version]`.
///
/// Struct attributes: `#[versioned(table = "name")]` (default: the struct's name in snake_case),
/// `#[versioned(crate = path)]` when `versioned` is re-exported under another path. Field
/// attributes: `#[key]`, `#[version]` (an integer), `#[versioned(column = "name")]` (default: the
/// field's name), `#[versioned(json)]` (any serde type, stored as JSON text), `#[versioned(text)]`
/// (a fieldless enum, stored as plain text: see [`TextField`]), and the audit fields
/// `#[versioned(created_at)]`, `#[versioned(updated_at)]` (timestamps the store sets) and
/// `#[versioned(updated_by)]` (who wrote, filled by the caller).
///
/// Besides the [`Entity`] implementation it adds the helpers `get`, `get_with_version`, `insert`,
/// `put`, `save`, `refresh`, `put_unchecked`, `delete` and `delete_with_version`, taking any
/// [`Executor`] (a [`Store`] or a [`Transaction`]), and a partial-update type named after the
/// struct (`PersonPatch` for `Person`) for [`Store::patch`]: see [`Patch`] and [`JsonChange`].
pub use versioned_derive::Versioned;

/// The README's code blocks, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
