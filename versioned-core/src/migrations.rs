//! The DDL `create_table` runs, as text, for a migration file: teams that review and apply
//! their schema changes with their own tool (`sqlx migrate`, sqlx's `Migrator`, Flyway…) put the
//! library's tables there instead of creating them at run time.
//!
//! ```
//! # use versioned_core as versioned;
//! use versioned::migrations::{SqlDialect, create_table_sql};
//! # #[derive(versioned_derive::Versioned)]
//! # #[versioned(crate = versioned_core, table = "bugs")]
//! # struct Bug { #[key] id: i64, #[versioned(index)] status: String, #[version] version: u64 }
//!
//! let sql = create_table_sql::<Bug>(SqlDialect::Postgres);
//! assert!(sql.starts_with("CREATE TABLE IF NOT EXISTS \"bugs\""));
//! assert!(sql.contains("CREATE INDEX IF NOT EXISTS \"bugs_status_idx\""));
//! ```

use crate::entity::Entity;

/// The SQL database a migration is written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SqlDialect {
    /// SQLite.
    #[cfg(feature = "sqlite")]
    Sqlite,
    /// PostgreSQL.
    #[cfg(feature = "postgres")]
    Postgres,
    /// MariaDB (text compared by `utf8mb4_nopad_bin`).
    #[cfg(feature = "mysql")]
    MariaDb,
    /// MySQL 8 (text compared by `utf8mb4_0900_bin`).
    #[cfg(feature = "mysql")]
    Mysql8,
}

/// The statements `create_table::<T>()` runs on a database of `dialect`, one per element: the
/// `CREATE TABLE` (column types, `NOT NULL`, the key, text columns' collation), then one
/// `CREATE INDEX` per `#[versioned(index)]` field, then for `#[versioned(history)]` the history
/// table, its index and the triggers that fill it (see [`revisions`](crate::revisions); a trigger
/// is one statement whose body holds `;`: the `mysql` command-line client needs a `DELIMITER`
/// around it, sqlx's migrations do not).
pub fn create_table_statements<T: Entity>(dialect: SqlDialect) -> Vec<String> {
    crate::storage::sql::ddl(dialect.dialect(), T::TABLE)
}

impl SqlDialect {
    /// The dialect the backend of this database writes its statements in.
    pub(crate) fn dialect(self) -> &'static dyn crate::storage::sql::Dialect {
        match self {
            #[cfg(feature = "sqlite")]
            SqlDialect::Sqlite => crate::storage::sqlite::DIALECT,
            #[cfg(feature = "postgres")]
            SqlDialect::Postgres => crate::storage::postgres::DIALECT,
            #[cfg(feature = "mysql")]
            SqlDialect::MariaDb => crate::storage::mysql::MARIADB_DIALECT,
            #[cfg(feature = "mysql")]
            SqlDialect::Mysql8 => crate::storage::mysql::MYSQL8_DIALECT,
        }
    }
}

/// [`create_table_statements`] as the text of a migration file: each statement ends with `;` and
/// a line break.
pub fn create_table_sql<T: Entity>(dialect: SqlDialect) -> String {
    create_table_statements::<T>(dialect).into_iter().map(|statement| statement + ";\n").collect()
}
