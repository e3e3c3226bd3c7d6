//! What differs between SQL databases, and nothing else.
//!
//! A [`Dialect`]'s provided methods write standard SQL (double-quoted identifiers, `ON CONFLICT`
//! upserts, `RETURNING`, `FOR UPDATE`); each database's dialect overrides only what it does
//! differently. The statements themselves are written once, in [`super::Statements`], and their
//! bind order never depends on the dialect.

use crate::entity::ColumnDef;
use crate::value::ColumnType;

/// The parts of an upsert (`put_unchecked`): an insert that, on a duplicate key, replaces the
/// stored columns and increments a valid stored version below the maximum.
pub(crate) struct Upsert<'a> {
    /// The quoted table name.
    pub table: &'a str,
    /// The quoted column list, in column order.
    pub columns: &'a str,
    /// The placeholders of every column, in column order.
    pub values: &'a str,
    /// The quoted key column.
    pub key: &'a str,
    /// The quoted version column.
    pub version: &'a str,
    /// The quoted columns an update replaces (the version column among them).
    pub set: &'a [String],
    /// The largest version the field holds, as an SQL literal.
    pub version_max: u64,
}

/// The differences between SQL databases the statements need.
pub(crate) trait Dialect: Sync + 'static {
    /// Quotes an identifier: `name` -> `"name"`, doubling any embedded quote.
    fn quote(&self, name: &str) -> String {
        format!("\"{}\"", name.replace('"', "\"\""))
    }

    /// The placeholder of the `index`-th bound value (from 1).
    fn placeholder(&self, index: usize) -> String {
        let _ = index;
        "?".to_owned()
    }

    /// How the `index`-th bound value (from 1) of a column of type `ty` enters a statement: its
    /// placeholder, converted where the bound form differs from the column's type.
    fn bind(&self, index: usize, ty: ColumnType) -> String {
        let _ = ty;
        self.placeholder(index)
    }

    /// How a column of type `ty` is read: the expression that yields the value as bound.
    fn read(&self, column: &str, ty: ColumnType) -> String {
        let _ = ty;
        column.to_owned()
    }

    /// The declared type of a column.
    fn column_type(&self, column: &ColumnDef) -> &'static str;

    /// The clause that locks the rows a `SELECT` reads until the transaction ends, failing at
    /// once when another transaction holds them (`nowait`); `None` where the database locks no
    /// rows (SQLite's transactions hold the whole database).
    fn for_update(&self, nowait: bool) -> Option<&'static str> {
        Some(if nowait { " FOR UPDATE NOWAIT" } else { " FOR UPDATE" })
    }

    /// The condition that a stored version (a qualified column) is a version: a non-negative
    /// integer. A typed integer column only needs the sign checked.
    fn valid_version(&self, version: &str) -> String {
        format!("{version} >= 0")
    }

    /// An insert that writes nothing when the key exists (affecting no row).
    fn insert_unless_exists(&self, table: &str, columns: &str, values: &str, key: &str) -> String {
        format!("INSERT INTO {table} ({columns}) VALUES ({values}) ON CONFLICT ({key}) DO NOTHING")
    }

    /// Whether a batch is one statement per chunk of rows (`UPDATE … FROM (VALUES …)`,
    /// multi-row `INSERT … ON CONFLICT DO NOTHING`, `DELETE … WHERE (key, version) IN (VALUES …)`,
    /// each `RETURNING` the keys written), rather than a statement per row.
    fn batch_values(&self) -> bool {
        true
    }

    /// Whether the upsert returns the new version itself (`RETURNING`). Where it does not, the
    /// version is read after it, by the same connection in the same transaction.
    fn returning(&self) -> bool {
        true
    }

    /// The upsert of `put_unchecked`, returning the new version (no row when refused) where the
    /// dialect has `RETURNING`.
    fn upsert(&self, u: &Upsert<'_>) -> String {
        let (t, v) = (u.table, u.version);
        let set: Vec<String> = u
            .set
            .iter()
            .map(|c| if c == v { format!("{c} = {t}.{c} + 1") } else { format!("{c} = excluded.{c}") })
            .collect();
        format!(
            "INSERT INTO {t} ({}) VALUES ({}) ON CONFLICT ({}) DO UPDATE SET {} WHERE {} AND {t}.{v} < {} RETURNING {v}",
            u.columns,
            u.values,
            u.key,
            set.join(", "),
            self.valid_version(&format!("{t}.{v}")),
            u.version_max
        )
    }
}

/// SQLite: any value in any column, so a version's type is checked too; no row locks (a
/// transaction holds the database's write lock).
pub(crate) struct SqliteDialect;

impl Dialect for SqliteDialect {
    fn column_type(&self, column: &ColumnDef) -> &'static str {
        match column.ty {
            ColumnType::Bool => "BOOLEAN",
            ty if ty.is_integer() => "INTEGER",
            ColumnType::Float32 | ColumnType::Float64 => "REAL",
            ColumnType::Bytes => "BLOB",
            _ => "TEXT",
        }
    }

    fn valid_version(&self, version: &str) -> String {
        format!("typeof({version}) = 'integer' AND {version} >= 0")
    }

    fn for_update(&self, _nowait: bool) -> Option<&'static str> {
        None
    }
}

/// PostgreSQL: numbered placeholders, native types. JSON documents, UUIDs and timestamps are
/// bound and read as text and microseconds, converted in the statement.
#[cfg(feature = "postgres")]
pub(crate) struct PostgresDialect;

#[cfg(feature = "postgres")]
impl Dialect for PostgresDialect {
    fn placeholder(&self, index: usize) -> String {
        format!("${index}")
    }

    fn bind(&self, index: usize, ty: ColumnType) -> String {
        match ty {
            ColumnType::Json => format!("${index}::jsonb"),
            ColumnType::Uuid => format!("${index}::uuid"),
            // Exact for the ±285 years around 1970 that a float8 holds to the microsecond.
            ColumnType::Timestamp => format!("(TIMESTAMPTZ 'epoch' + ${index}::int8 * INTERVAL '1 microsecond')"),
            _ => format!("${index}"),
        }
    }

    fn read(&self, column: &str, ty: ColumnType) -> String {
        match ty {
            ColumnType::Json | ColumnType::Uuid => format!("{column}::text"),
            ColumnType::Timestamp => format!("(EXTRACT(EPOCH FROM {column}) * 1000000)::int8"),
            _ => column.to_owned(),
        }
    }

    fn column_type(&self, column: &ColumnDef) -> &'static str {
        match column.ty {
            ColumnType::Bool => "BOOLEAN",
            ColumnType::Int16 => "SMALLINT",
            ColumnType::Int32 => "INTEGER",
            ColumnType::Int64 => "BIGINT",
            ColumnType::Float32 => "REAL",
            ColumnType::Float64 => "DOUBLE PRECISION",
            ColumnType::Text => "TEXT",
            ColumnType::Bytes => "BYTEA",
            ColumnType::Json => "JSONB",
            ColumnType::Uuid => "UUID",
            ColumnType::Timestamp => "TIMESTAMPTZ",
        }
    }
}

/// MySQL 8 and MariaDB 10.11: backquoted identifiers, `?` placeholders, `ON DUPLICATE KEY UPDATE`
/// and no `RETURNING` (the version an upsert wrote is read after it, in the same transaction). A
/// key of text or bytes is a `VARCHAR(255)` / `VARBINARY(255)`: MySQL cannot index a whole
/// `TEXT`. UUIDs are `CHAR(36)` text; timestamps `DATETIME(6)` in UTC, bound and read as
/// microseconds since the epoch.
///
/// A text key is compared exactly, as on every other backend: its column is declared with a
/// binary collation that pads no spaces ([`MysqlFlavor::EXACT_COLLATION`]), so `'Ann'`, `'ann'`,
/// `'ann '`, `'é'` and `'e'` are five keys. The server's default (`utf8mb4_general_ci`, or
/// MySQL 8's `utf8mb4_0900_ai_ci`) ignores case and accents, and `utf8mb4_bin` is `PAD SPACE`
/// (trailing spaces ignored) on both. The servers share no such collation: this dialect writes
/// MariaDB's (`utf8mb4_nopad_bin`, since 10.2), [`Mysql8Dialect`] MySQL's (`utf8mb4_0900_bin`,
/// since 8.0.17); the two differ in nothing else. Other text columns keep the table's default
/// collation: only the key's comparisons are the store's.
#[cfg(any(test, feature = "mysql"))]
pub(crate) struct MysqlDialect;

/// [`MysqlDialect`] for MySQL 8.0.17 and later, whose binary no-pad collation is
/// `utf8mb4_0900_bin` (MariaDB has no such name, MySQL no `utf8mb4_nopad_bin`).
#[cfg(feature = "mysql")]
pub(crate) struct Mysql8Dialect;

/// What differs between the MySQL dialects: the collation that compares text keys byte for byte.
#[cfg(any(test, feature = "mysql"))]
pub(crate) trait MysqlFlavor: Sync + 'static {
    /// A `utf8mb4` collation that compares byte for byte, trailing spaces included.
    const EXACT_COLLATION: &'static str;
    /// The declared type of a text key.
    const TEXT_KEY: &'static str;
}

#[cfg(any(test, feature = "mysql"))]
impl MysqlFlavor for MysqlDialect {
    const EXACT_COLLATION: &'static str = "utf8mb4_nopad_bin";
    const TEXT_KEY: &'static str = "VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin";
}

#[cfg(feature = "mysql")]
impl MysqlFlavor for Mysql8Dialect {
    const EXACT_COLLATION: &'static str = "utf8mb4_0900_bin";
    const TEXT_KEY: &'static str = "VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_0900_bin";
}

#[cfg(any(test, feature = "mysql"))]
impl<M: MysqlFlavor> Dialect for M {
    fn quote(&self, name: &str) -> String {
        format!("`{}`", name.replace('`', "``"))
    }

    fn bind(&self, _index: usize, ty: ColumnType) -> String {
        match ty {
            ColumnType::Timestamp => "TIMESTAMPADD(MICROSECOND, ?, '1970-01-01 00:00:00')".to_owned(),
            _ => "?".to_owned(),
        }
    }

    fn read(&self, column: &str, ty: ColumnType) -> String {
        match ty {
            ColumnType::Timestamp => format!("TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', {column})"),
            _ => column.to_owned(),
        }
    }

    fn column_type(&self, column: &ColumnDef) -> &'static str {
        let key = column.role == crate::entity::ColumnRole::Key;
        match column.ty {
            ColumnType::Bool => "BOOLEAN",
            ColumnType::Int16 => "SMALLINT",
            ColumnType::Int32 => "INT",
            ColumnType::Int64 => "BIGINT",
            ColumnType::Float32 => "FLOAT",
            ColumnType::Float64 => "DOUBLE",
            ColumnType::Text if key => M::TEXT_KEY,
            ColumnType::Text => "LONGTEXT",
            ColumnType::Bytes if key => "VARBINARY(255)",
            ColumnType::Bytes => "LONGBLOB",
            ColumnType::Json => "JSON",
            ColumnType::Uuid => "CHAR(36)",
            ColumnType::Timestamp => "DATETIME(6)",
        }
    }

    /// A plain insert: the duplicate key error (1062) is what says the key exists. (`INSERT
    /// IGNORE` would also silence other errors, and `ON DUPLICATE KEY UPDATE key = key` counts
    /// as a found row under `CLIENT_FOUND_ROWS`.)
    fn insert_unless_exists(&self, table: &str, columns: &str, values: &str, _key: &str) -> String {
        format!("INSERT INTO {table} ({columns}) VALUES ({values})")
    }

    fn returning(&self) -> bool {
        false
    }

    /// No `RETURNING` (MySQL) nor `UPDATE … FROM (VALUES …)` (MariaDB): a row at a time.
    fn batch_values(&self) -> bool {
        false
    }

    /// Every assignment is conditional on the stored version (read before the version column,
    /// assigned last, changes): MySQL's upsert has no `WHERE`.
    fn upsert(&self, u: &Upsert<'_>) -> String {
        let v = u.version;
        let ok = format!("{} AND {v} < {}", self.valid_version(v), u.version_max);
        let mut set: Vec<String> =
            u.set.iter().filter(|c| *c != v).map(|c| format!("{c} = IF({ok}, VALUES({c}), {c})")).collect();
        set.push(format!("{v} = IF({ok}, {v} + 1, {v})"));
        format!(
            "INSERT INTO {} ({}) VALUES ({}) ON DUPLICATE KEY UPDATE {}",
            u.table,
            u.columns,
            u.values,
            set.join(", ")
        )
    }
}

#[cfg(test)]
mod mysql_tests {
    use super::*;
    use crate::entity::{ColumnRole, TableDef};
    use crate::storage::sql::Statements;

    static TAGS: TableDef = TableDef {
        name: "tags",
        entity: "Tag",
        columns: &[
            ColumnDef { name: "id", field: "id", ty: ColumnType::Text, nullable: false, role: ColumnRole::Key },
            ColumnDef { name: "label", field: "label", ty: ColumnType::Text, nullable: false, role: ColumnRole::Data },
            ColumnDef {
                name: "version",
                field: "version",
                ty: ColumnType::Int64,
                nullable: false,
                role: ColumnRole::Version,
            },
        ],
        key: 0,
        version: 2,
        version_max: 100,
    };

    #[test]
    fn a_mysql_text_key_is_declared_binary_without_padding() {
        assert_eq!(
            &*Statements::new(&MysqlDialect, &TAGS).create,
            "CREATE TABLE IF NOT EXISTS `tags` (`id` VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin \
             NOT NULL PRIMARY KEY, `label` LONGTEXT NOT NULL, `version` BIGINT NOT NULL)",
            "only the key is declared with a collation of its own"
        );
        assert!(MysqlDialect::TEXT_KEY.ends_with(&format!(" COLLATE {}", MysqlDialect::EXACT_COLLATION)));
    }

    #[cfg(feature = "mysql")]
    #[test]
    fn mysql_8_declares_its_own_collation_and_nothing_else_differs() {
        let (mariadb, mysql) = (Statements::new(&MysqlDialect, &TAGS), Statements::new(&Mysql8Dialect, &TAGS));
        assert_eq!(*mysql.create, *mariadb.create.replace("utf8mb4_nopad_bin", "utf8mb4_0900_bin"));
        assert!(Mysql8Dialect::TEXT_KEY.ends_with(&format!(" COLLATE {}", Mysql8Dialect::EXACT_COLLATION)));
        assert_eq!(
            (&*mysql.upsert, &*mysql.update, &*mysql.select),
            (&*mariadb.upsert, &*mariadb.update, &*mariadb.select)
        );
    }
}
