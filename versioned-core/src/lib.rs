//! The runtime of [`versioned-store`](https://docs.rs/versioned-store) (imported as `versioned`): optimistic locking for plain structs.
//!
//! Most users depend on the `versioned` crate, which re-exports this one together with
//! `#[derive(Versioned)]`. This crate holds everything that runs:
//!
//! - [`Entity`], the description of a struct that the derive implements;
//! - [`Value`], [`Row`] and the [`Field`] conversions of Rust types to columns;
//! - [`Error`], one enum for every failure, with [`Error::ConcurrentModification`] for conflicts;
//! - [`Store`], the typed operations, written once over any backend, and [`Transaction`], units
//!   of work that commit all their writes or none, with [`RetryPolicy`] for retrying them;
//! - [`storage`], the contract a backend implements, and the backends: [`MemoryStorage`] (the
//!   reference) and, with the `sqlite` feature, SQLite.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

#[doc(hidden)]
#[cfg(feature = "axum")]
pub mod axum;
mod commit;
#[cfg(feature = "conformance")]
pub mod conformance;
pub mod copy;
mod entity;
mod error;
mod executor;
mod heat;
#[cfg(feature = "http")]
pub mod http;
mod leb128;
mod lock;
pub mod merge;
#[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
pub mod migrations;
mod observe;
#[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
mod on;
pub mod ops;
mod patch;
pub mod query;
mod reentrancy;
mod retry;
pub mod revisions;
#[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
mod sql_rows;
pub mod storage;
mod store;
mod transaction;
mod value;

pub use entity::{
    ColumnDef, ColumnRole, Entity, TableDef, decode, decode_json, decoded, encode, encode_json, encoded, row_values,
};
pub use error::{BoxError, Error, Result, StorageError};
/// The etcd client the etcd backend is built on, for what this crate does not do (watches, say)
/// through [`EtcdStorage::client`].
#[cfg(feature = "etcd")]
pub use etcd_client;
pub use executor::Executor;
pub use lock::LockWait;
#[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
pub use on::On;
pub use patch::{Change, ChangeValue, Check, JsonChange, Patch};
pub use query::{Column, Cursor, Filter, Find, OrderBy, Page};
pub use retry::RetryPolicy;
pub use revisions::{HistoryDef, Retention, Revision, WithHistory};
/// A JSON document: what a patch merges into a `#[versioned(json)]` field ([`JsonChange::Merge`]).
pub use serde_json::Value as JsonValue;
#[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
pub use sql_rows::{FromSqlRow, SqlRow};
pub use storage::any::{AnyStorage, AnyTransaction};
#[cfg(feature = "etcd")]
pub use storage::etcd::{EtcdOptions, EtcdStorage, EtcdTransaction};
pub use storage::memory::{MemoryStorage, MemoryTransaction};
#[cfg(feature = "mysql")]
pub use storage::mysql::{MysqlStorage, MysqlTransaction};
pub use storage::options::ConnectOptions;
#[cfg(feature = "postgres")]
pub use storage::postgres::{Isolation, PostgresStorage, PostgresTransaction};
#[cfg(feature = "sqlite")]
pub use storage::sqlite::{Durability, SqliteStorage, SqliteTransaction};
pub use storage::{Capabilities, HotUpdates, LockingRead, RowAccess, Storage, StorageTransaction, WriteOutcome};
pub use store::Store;
pub use transaction::Transaction;
pub use value::{
    ColumnType, Field, JsonField, KeyField, KeyFor, MAX_JSON_DEPTH, Row, TextField, TimestampField, UserField, Value,
    VersionField,
};

/// What the code `#[derive(Versioned)]` generates refers to; not a public API.
#[doc(hidden)]
pub mod __private {
    pub use serde;

    pub use crate::patch::private::*;
    pub use crate::value::text_not_null;
}
