//! Rows from your own queries: a sqlx row of SQLite, PostgreSQL or MySQL decoded into a struct
//! with the library's mapping ([`FromSqlRow::from_sql_row`]), and the column list to select
//! for it ([`FromSqlRow::sql_columns`]).
//!
//! The library stores some values in a form of its own — JSON as text, timestamps as
//! microseconds since the epoch on the servers' `TIMESTAMPTZ`/`DATETIME(6)`, UUIDs as `CHAR(36)`
//! on MySQL — so a row is decoded as the store decodes its own: by column name, each value by its
//! database type, then by the field's type. Select the columns as `sql_columns` writes them (it
//! converts the types the store reads through a conversion) and the row decodes on every backend:
//!
//! ```
//! # use versioned_core as versioned;
//! use versioned::migrations::SqlDialect;
//! use versioned::FromSqlRow;
//! # #[derive(versioned_derive::Versioned)]
//! # #[versioned(crate = versioned_core, table = "bugs")]
//! # struct Bug { #[key] id: i64, title: String, #[versioned(json)] tags: Vec<String>, #[version] version: u64 }
//!
//! let sql = format!(
//!     "SELECT {}, u.name FROM bugs b JOIN users u ON u.id = b.owner WHERE u.team = $1",
//!     Bug::sql_columns(SqlDialect::Postgres, "b"),
//! );
//! assert!(sql.starts_with(r#"SELECT b."id" AS "id", b."title" AS "title", b."tags"::text AS "tags""#));
//! // let rows = sqlx::query(&sql).bind(team).fetch_all(&pool).await?;
//! // let bugs = rows.iter().map(Bug::from_sql_row).collect::<versioned::Result<Vec<_>>>()?;
//! ```

use sqlx::Column as _;

use crate::entity::Entity;
use crate::error::{Error, Result};
use crate::migrations::SqlDialect;
use crate::value::{Row, Value};

/// A row of a sqlx query on SQLite, PostgreSQL or MySQL: what
/// [`FromSqlRow::from_sql_row`] decodes. Implemented for `SqliteRow`, `PgRow` and `MySqlRow`.
pub trait SqlRow: sqlx::Row + sealed::Sealed {
    #[doc(hidden)]
    /// The value at `index`, by its database type, as the store reads it.
    fn decode_value(&self, index: usize) -> std::result::Result<Value, String>;
}

mod sealed {
    /// Only the rows of the three SQL drivers.
    pub trait Sealed {}
}

#[cfg(feature = "postgres")]
impl sealed::Sealed for sqlx::postgres::PgRow {}

#[cfg(feature = "postgres")]
impl SqlRow for sqlx::postgres::PgRow {
    fn decode_value(&self, index: usize) -> std::result::Result<Value, String> {
        <sqlx::Postgres as crate::storage::sql::driver::Driver>::decode_value(self, index)
    }
}

#[cfg(feature = "mysql")]
impl sealed::Sealed for sqlx::mysql::MySqlRow {}

#[cfg(feature = "mysql")]
impl SqlRow for sqlx::mysql::MySqlRow {
    fn decode_value(&self, index: usize) -> std::result::Result<Value, String> {
        <sqlx::MySql as crate::storage::sql::driver::Driver>::decode_value(self, index)
    }
}

#[cfg(feature = "sqlite")]
impl sealed::Sealed for sqlx::sqlite::SqliteRow {}

#[cfg(feature = "sqlite")]
impl SqlRow for sqlx::sqlite::SqliteRow {
    fn decode_value(&self, index: usize) -> std::result::Result<Value, String> {
        <sqlx::Sqlite as crate::storage::sql::driver::Driver>::decode_value(self, index)
    }
}

/// Structs of `#[derive(Versioned)]` from rows of your own queries; implemented for every
/// [`Entity`].
pub trait FromSqlRow: Entity {
    /// The struct in `row`, a row of your own query: each field from the column of its name
    /// (spelled exactly, else without regard to ASCII case, as MySQL compares names), in any
    /// order, other columns ignored. A column that is missing, or whose value the field cannot
    /// hold, is [`Error::Decode`] naming it.
    fn from_sql_row<R: SqlRow>(row: &R) -> Result<Self> {
        let table = Self::TABLE;
        let mut values = Vec::with_capacity(table.columns.len());
        for column in table.columns {
            let Some(index) = position(row, column.name) else {
                return Err(Error::decode(
                    table,
                    column.name,
                    format!(
                        "the row has no column {:?}: select the struct's columns as {}::sql_columns writes them",
                        column.name, table.entity
                    ),
                ));
            };
            let value = row.decode_value(index).map_err(|reason| {
                Error::decode(table, column.name, format!("{reason} (select it as {}::sql_columns does)", table.entity))
            })?;
            values.push(value);
        }
        crate::ops::decode_row(Row::new(values))
    }

    /// The struct's columns for the `SELECT` of your own query on `dialect`, each read as the
    /// store reads it and named as the field's column (`"tags"::text AS "tags"` for JSON on
    /// PostgreSQL), so that [`from_sql_row`](Self::from_sql_row) decodes the row. `alias` qualifies
    /// each column (`b."id" AS "id"`) for a query that joins other tables; `""` for none.
    fn sql_columns(dialect: SqlDialect, alias: &str) -> String {
        let dialect = dialect.dialect();
        let columns: Vec<String> = Self::TABLE
            .columns
            .iter()
            .map(|column| {
                let name = dialect.quote(column.name);
                let qualified = if alias.is_empty() { name.clone() } else { format!("{alias}.{name}") };
                format!("{} AS {name}", dialect.read(&qualified, column.ty))
            })
            .collect();
        columns.join(", ")
    }
}

impl<T: Entity> FromSqlRow for T {}

/// The index of the column named `name` in `row`: spelled exactly, else without regard to
/// ASCII case (MySQL's column names).
fn position<R: SqlRow>(row: &R, name: &str) -> Option<usize> {
    let columns = row.columns();
    columns
        .iter()
        .position(|c| c.name() == name)
        .or_else(|| columns.iter().position(|c| c.name().eq_ignore_ascii_case(name)))
}
