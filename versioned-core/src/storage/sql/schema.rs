//! The schema check of the server backends (PostgreSQL, MySQL/MariaDB), without the database:
//! [`check`] compares a struct's [`TableDef`] with the columns the server's catalogue declares
//! ([`Declared`], read by [`POSTGRES_COLUMNS`] or [`MYSQL_COLUMNS`]) and reports the first
//! problem with the statement that fixes it, before a statement fails half-way or a value reads
//! back changed. SQLite's check lives beside its backend (`storage/sqlite/schema.rs`).
//!
//! The rules, per column of the struct, in column order:
//! - the table has the column (PostgreSQL: named exactly, as the statements quote it; MySQL:
//!   without regard to ASCII case, as the server compares column names);
//! - its declared type holds every value of the field and reads it back as written (wider
//!   integers and floats are fine: the field's type checks the range when reading).
//!
//! Nullability is not refused either way, because several structs may map one table (a
//! projection with `Option` fields over `NOT NULL` columns, a struct whose field another leaves
//! `NULL`), and no difference loses data: a `NULL` read into a field that is no `Option` is
//! `Error::Decode` naming the column, and a `None` written into a `NOT NULL` column is the
//! server's error, which writes nothing. Columns the
//! struct does not map are allowed, even `NOT NULL` without a default: a struct that maps part of a
//! table (a projection) reads and patches it, and only its insert would fail, with the server's
//! error naming the column.
#![cfg(any(feature = "postgres", feature = "mysql"))]

use crate::entity::TableDef;
#[cfg(feature = "mysql")]
use crate::entity::{ColumnDef, ColumnRole};
use crate::error::{Error, Result, StorageError};
use crate::storage::sql::Dialect;
use crate::value::ColumnType;

/// PostgreSQL's columns of the table named by `$1` (the struct's table name, bound as text), in
/// the schema an unqualified quoted name resolves to, as the statements' (the search path's,
/// `pg_temp` included): no rows when there is no such table. Decode each row as
/// [`PostgresColumn`] and turn them into [`Declared`]s with [`postgres_declared`].
///
/// `udt_name` names the type under a domain or an array's element (`_int4`), with no length or
/// precision: the name the check compares. `data_type` is the SQL name (`integer`, `timestamp
/// without time zone`), for messages. An identity or generated column has a value without a
/// `DEFAULT`.
#[cfg(feature = "postgres")]
pub(crate) const POSTGRES_COLUMNS: &str = "SELECT column_name::text, udt_name::text, \
     (CASE WHEN data_type IN ('USER-DEFINED', 'ARRAY') THEN udt_name::text ELSE data_type::text END), \
     is_nullable = 'YES', \
     column_default IS NOT NULL OR is_identity = 'YES' OR is_generated = 'ALWAYS', \
     NOT EXISTS (SELECT 1 FROM pg_catalog.pg_collation co JOIN pg_catalog.pg_namespace cn \
     ON cn.oid = co.collnamespace WHERE co.collname = collation_name AND cn.nspname = collation_schema \
     AND NOT co.collisdeterministic) \
     FROM information_schema.columns \
     WHERE table_name = $1::text AND table_schema = (SELECT n.nspname FROM pg_catalog.pg_class c \
     JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = to_regclass(quote_ident($1::text)))";

/// One row of [`POSTGRES_COLUMNS`]: `(column_name, udt_name, data_type, nullable, has_default,
/// deterministic)`, for `sqlx::query_as::<_, PostgresColumn>`. `deterministic`: the column's
/// collation (if any) is deterministic, so two texts are equal only when their bytes are.
#[cfg(feature = "postgres")]
pub(crate) type PostgresColumn = (String, String, String, bool, bool, bool);

/// MySQL's and MariaDB's columns of the table named by `?` (the struct's table name) in the
/// current database. Decode each row as [`MysqlColumn`] and turn them into [`Declared`]s with
/// [`mysql_declared`].
///
/// Text is cast to `CHAR` (MariaDB returns some `information_schema` text as binary), the
/// conditions to `SIGNED` (MySQL has no boolean type: a comparison is an integer). `DATA_TYPE`
/// is the name the check compares; `COLUMN_TYPE` adds what it leaves out (`char(36)`,
/// `datetime(6)`, `unsigned`). An `AUTO_INCREMENT` or generated column has a value without a
/// `DEFAULT`. `TABLE_NAME` is selected because `information_schema` may match table names
/// without regard to case.
#[cfg(feature = "mysql")]
pub(crate) const MYSQL_COLUMNS: &str = "SELECT CAST(TABLE_NAME AS CHAR), CAST(COLUMN_NAME AS CHAR), \
     CAST(LOWER(DATA_TYPE) AS CHAR), CAST(LOWER(COLUMN_TYPE) AS CHAR), CAST(IS_NULLABLE = 'YES' AS SIGNED), \
     CAST(COLUMN_DEFAULT IS NOT NULL OR EXTRA LIKE '%auto_increment%' \
     OR COALESCE(GENERATION_EXPRESSION, '') <> '' AS SIGNED) \
     FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?";

/// One row of [`MYSQL_COLUMNS`]: `(TABLE_NAME, COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, nullable,
/// has_default)`, the last two 0 or 1, for `sqlx::query_as::<_, MysqlColumn>`.
#[cfg(feature = "mysql")]
pub(crate) type MysqlColumn = (String, String, String, String, i64, i64);

/// The server whose catalogue a [`Declared`] comes from: what its type names mean, and how it
/// compares column names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Server {
    /// PostgreSQL: [`POSTGRES_COLUMNS`].
    #[cfg(feature = "postgres")]
    Postgres,
    /// MySQL 8 or MariaDB: [`MYSQL_COLUMNS`].
    #[cfg(feature = "mysql")]
    Mysql,
}

/// One column of the table, as the server's catalogue declares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Declared {
    /// The column's name, as the server stores it.
    pub name: String,
    /// The type's name, compared by the check: PostgreSQL's `udt_name` (`int4`, `timestamptz`),
    /// MySQL's `DATA_TYPE` (`int`, `datetime`), in lower case.
    pub data_type: String,
    /// The type as messages show it: PostgreSQL's `data_type` (`integer`), MySQL's `COLUMN_TYPE`
    /// in lower case (`datetime(6)`, `char(36)`, `bigint(20) unsigned`), which the check also
    /// reads for lengths, precisions and signs.
    pub column_type: String,
    /// Whether the column allows `NULL`.
    pub nullable: bool,
    /// Whether an insert that leaves the column out gives it a value (a `DEFAULT`, an identity,
    /// an `AUTO_INCREMENT`, a generated column).
    pub has_default: bool,
}

/// The [`Declared`] columns of the rows of [`POSTGRES_COLUMNS`].
#[cfg(feature = "postgres")]
pub(crate) fn postgres_declared(rows: Vec<PostgresColumn>) -> Vec<Declared> {
    rows.into_iter()
        .map(|(name, data_type, column_type, nullable, has_default, _)| Declared {
            name,
            data_type,
            column_type,
            nullable,
            has_default,
        })
        .collect()
}

/// The [`Declared`] columns of the rows of [`MYSQL_COLUMNS`] for `table`: those of the table
/// spelled as the struct spells it where there are several (table names matched without regard
/// to case), else those of the one found (a server that folds table names to lower case, as the
/// statements' are then).
#[cfg(feature = "mysql")]
pub(crate) fn mysql_declared(table: &TableDef, rows: Vec<MysqlColumn>) -> Vec<Declared> {
    let exact = rows.iter().any(|row| row.0 == table.name);
    let first = rows.first().map(|row| row.0.clone()).unwrap_or_default();
    rows.into_iter()
        .filter(|row| if exact { row.0 == table.name } else { row.0 == first })
        .map(|(_, name, data_type, column_type, nullable, has_default)| Declared {
            name,
            data_type,
            column_type,
            nullable: nullable != 0,
            has_default: has_default != 0,
        })
        .collect()
}

/// Checks that `declared`, the columns of `table`'s table on `server`, hold the struct: the
/// first problem is `Error::Decode` naming the column (a column the struct does not map, a
/// storage error), each with the statement that fixes it, written in `dialect` (types as
/// `create_table` declares them). An empty `declared` is a table that does not exist.
pub(crate) fn check(
    server: Server,
    dialect: &dyn Dialect,
    table: &'static TableDef,
    declared: &[Declared],
) -> Result<()> {
    if declared.is_empty() {
        return Err(StorageError::new(format!(
            "no such table: {} (create it with create_table, or with your migrations)",
            table.name
        ))
        .into());
    }
    for column in table.columns {
        let Some(found) = declared.iter().find(|d| server.same_name(&d.name, column.name)) else {
            return Err(Error::decode(table, column.name, super::missing_column(dialect, table, column)));
        };
        let fit = match server {
            #[cfg(feature = "postgres")]
            Server::Postgres => postgres_fit(column.ty, &found.data_type.to_ascii_lowercase()),
            #[cfg(feature = "mysql")]
            Server::Mysql => mysql_fit(column, &found.data_type.to_ascii_lowercase(), &found.column_type),
        };
        if let Some(why) = fit {
            return Err(Error::decode(
                table,
                column.name,
                format!(
                    "the column is declared {}, which cannot hold field `{}` ({}){}; declare it {}",
                    found.shown(),
                    column.field,
                    column.ty.describe(),
                    why.map(|why| format!(": {why}")).unwrap_or_default(),
                    dialect.column_type(column)
                ),
            ));
        }
    }
    Ok(())
}

impl Server {
    /// Whether the server takes column names `declared` and `ours` for the same column: our
    /// statements quote names, which PostgreSQL then keeps exactly; MySQL compares column names
    /// without regard to case, quoted or not.
    fn same_name(self, declared: &str, ours: &str) -> bool {
        match self {
            #[cfg(feature = "postgres")]
            Server::Postgres => declared == ours,
            #[cfg(feature = "mysql")]
            Server::Mysql => declared.eq_ignore_ascii_case(ours),
        }
    }
}

impl Declared {
    /// The type for a message: the fuller form where the catalogue gave one.
    fn shown(&self) -> &str {
        if self.column_type.is_empty() { &self.data_type } else { &self.column_type }
    }
}

/// Why a declared type cannot hold a field: `None` when it holds it, `Some(None)` when the types
/// simply differ, `Some(Some(why))` when it looks as if it could but would not read back as
/// written.
type Misfit = Option<Option<&'static str>>;

/// Whether PostgreSQL type `udt` (a `udt_name`) holds a field of type `ty` (see [`Misfit`]): what
/// the driver decodes (`INT2`…`INT8`, `FLOAT4`/`FLOAT8`, `BOOL`, text, `BYTEA`) and what the
/// dialect converts in the statement (`jsonb`, `uuid`, `timestamptz`).
#[cfg(feature = "postgres")]
fn postgres_fit(ty: ColumnType, udt: &str) -> Misfit {
    let holds = match ty {
        ColumnType::Bool => udt == "bool",
        // Bound as int8, which the server narrows on assignment; read at the column's width.
        ColumnType::Int16 => matches!(udt, "int2" | "int4" | "int8"),
        ColumnType::Int32 => matches!(udt, "int4" | "int8"),
        ColumnType::Int64 => udt == "int8",
        ColumnType::Float32 => matches!(udt, "float4" | "float8"),
        ColumnType::Float64 => udt == "float8",
        ColumnType::Text if udt == "bpchar" => {
            return Some(Some("character(n) pads text with spaces, so it would not read back as written"));
        }
        ColumnType::Text => matches!(udt, "text" | "varchar"),
        ColumnType::Bytes => udt == "bytea",
        // Bound as `jsonb`, which the server converts to `json` on assignment; read as text.
        ColumnType::Json => matches!(udt, "jsonb" | "json"),
        ColumnType::Uuid => udt == "uuid",
        // Bound as a `timestamptz`, read as seconds since the epoch: a `timestamp` keeps the
        // session time zone's wall-clock time, read back as if it were UTC.
        ColumnType::Timestamp if udt == "timestamp" => {
            return Some(Some(
                "a timestamp without time zone keeps the session time zone's wall-clock time, which reads back \
                 shifted unless the session is in UTC",
            ));
        }
        ColumnType::Timestamp => udt == "timestamptz",
    };
    if holds { None } else { Some(None) }
}

/// Whether MySQL or MariaDB type `data_type` (a `DATA_TYPE`; `column_type` its `COLUMN_TYPE`)
/// holds a field of type `ty` (see [`Misfit`]): what the driver decodes, and what the dialect
/// converts in the statement (`DATETIME(6)`). MariaDB's `JSON` is a `LONGTEXT` (with a `CHECK`),
/// so a JSON document fits any text column.
#[cfg(feature = "mysql")]
fn mysql_fit(column: &ColumnDef, data_type: &str, column_type: &str) -> Misfit {
    let long_text = matches!(data_type, "tinytext" | "text" | "mediumtext" | "longtext");
    let holds = match column.ty {
        // Written as 0 or 1, which any integer holds; read as a bool from 0 or 1.
        ColumnType::Bool => matches!(data_type, "tinyint" | "smallint" | "mediumint" | "int" | "bigint"),
        // Bound as a BIGINT, which the server narrows on assignment; read at the column's width.
        ColumnType::Int16 => matches!(data_type, "smallint" | "mediumint" | "int" | "bigint"),
        ColumnType::Int32 => matches!(data_type, "int" | "bigint"),
        ColumnType::Int64 => data_type == "bigint",
        ColumnType::Float32 => matches!(data_type, "float" | "double"),
        ColumnType::Float64 => data_type == "double",
        ColumnType::Text if data_type == "char" => {
            return Some(Some("CHAR(n) drops trailing spaces when read, so text would not read back as written"));
        }
        ColumnType::Text => long_text || data_type == "varchar",
        ColumnType::Bytes if data_type == "binary" => {
            return Some(Some("BINARY(n) pads bytes with zeros, so they would not read back as written"));
        }
        ColumnType::Bytes => matches!(data_type, "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob"),
        ColumnType::Json => long_text || matches!(data_type, "json" | "varchar"),
        // A UUID is its hyphenated text, 36 characters.
        ColumnType::Uuid if matches!(data_type, "char" | "varchar") => {
            return parenthesized(column_type)
                .is_some_and(|length| length < 36)
                .then_some(Some("a UUID is 36 characters of text"));
        }
        ColumnType::Uuid => long_text,
        ColumnType::Timestamp if data_type == "datetime" => {
            return (parenthesized(column_type).unwrap_or(0) < 6)
                .then_some(Some("it keeps no microseconds, so a timestamp would read back truncated"));
        }
        ColumnType::Timestamp if data_type == "timestamp" => {
            return Some(Some(
                "a TIMESTAMP is converted through the session's time zone (a point in time in a daylight-saving \
                 change reads back shifted) and ends in 2038",
            ));
        }
        ColumnType::Timestamp => false,
    };
    if !holds {
        return Some(None);
    }
    // Versions are never negative; other integer fields may be.
    let unsigned = column_type.contains("unsigned");
    (unsigned && column.ty.is_integer() && column.role != ColumnRole::Version)
        .then_some(Some("an unsigned column refuses the negative values the field can hold"))
}

/// The number in a type's parentheses: `36` in `char(36)`, `6` in `datetime(6)`; `None` where
/// there is none, or more than one (`decimal(10,2)`).
#[cfg(feature = "mysql")]
fn parenthesized(column_type: &str) -> Option<u32> {
    let (_, rest) = column_type.split_once('(')?;
    let (inside, _) = rest.split_once(')')?;
    inside.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(not(feature = "mysql"))]
    use crate::entity::{ColumnDef, ColumnRole};
    use crate::storage::sql::tests::PEOPLE;

    /// A column of `ty` named as its field.
    const fn column(name: &'static str, ty: ColumnType, nullable: bool, role: ColumnRole) -> ColumnDef {
        ColumnDef { name, field: name, ty, nullable, role, indexed: false }
    }

    /// A table with a column of every type, a text key, and the version in the middle.
    static EVERYTHING: TableDef = TableDef {
        name: "everything",
        entity: "Everything",
        columns: &[
            column("id", ColumnType::Text, false, ColumnRole::Key),
            column("flag", ColumnType::Bool, false, ColumnRole::Data),
            column("small", ColumnType::Int16, false, ColumnRole::Data),
            column("medium", ColumnType::Int32, true, ColumnRole::Data),
            column("version", ColumnType::Int64, false, ColumnRole::Version),
            column("ratio", ColumnType::Float32, false, ColumnRole::Data),
            column("amount", ColumnType::Float64, false, ColumnRole::Data),
            column("blob", ColumnType::Bytes, true, ColumnRole::Data),
            column("doc", ColumnType::Json, false, ColumnRole::Data),
            column("uuid", ColumnType::Uuid, true, ColumnRole::Data),
            column("at", ColumnType::Timestamp, false, ColumnRole::UpdatedAt),
        ],
        key: 0,
        version: 4,
        version_max: u64::MAX,
        history: None,
    };

    /// A declared column.
    fn declared(name: &str, data_type: &str, column_type: &str, nullable: bool) -> Declared {
        Declared {
            name: name.to_owned(),
            data_type: data_type.to_owned(),
            column_type: column_type.to_owned(),
            nullable,
            has_default: false,
        }
    }

    /// The reason of an `Error::Decode` of `table`'s `column`, or a panic naming what came.
    fn decode_reason(result: Result<()>, table: &TableDef, column: &str) -> String {
        match result {
            Err(Error::Decode { table: t, column: c, reason }) if t == table.name && c == column => reason,
            other => panic!("expected a decode error of {}.{column}, got {other:?}", table.name),
        }
    }

    /// The message of a storage error, or a panic naming what came.
    fn storage_message(result: Result<()>) -> String {
        match result {
            Err(Error::Storage(e)) => {
                assert!(!e.is_retryable(), "trying again changes nothing");
                e.to_string()
            }
            other => panic!("expected a storage error, got {other:?}"),
        }
    }

    #[cfg(feature = "postgres")]
    mod postgres {
        use super::*;
        use crate::storage::postgres::DIALECT;

        /// `PEOPLE` as `create_table` declares it.
        fn people() -> Vec<Declared> {
            vec![
                declared("id", "int8", "bigint", false),
                declared("name", "text", "text", true),
                declared("created", "int8", "bigint", false),
                declared("version", "int8", "bigint", false),
            ]
        }

        /// `PEOPLE` checked against `columns`.
        fn check_people(columns: &[Declared]) -> Result<()> {
            check(Server::Postgres, DIALECT, &PEOPLE, columns)
        }

        /// `EVERYTHING` as `create_table` declares it.
        fn everything() -> Vec<Declared> {
            vec![
                declared("id", "text", "text", false),
                declared("flag", "bool", "boolean", false),
                declared("small", "int2", "smallint", false),
                declared("medium", "int4", "integer", true),
                declared("version", "int8", "bigint", false),
                declared("ratio", "float4", "real", false),
                declared("amount", "float8", "double precision", false),
                declared("blob", "bytea", "bytea", true),
                declared("doc", "jsonb", "jsonb", false),
                declared("uuid", "uuid", "uuid", true),
                declared("at", "timestamptz", "timestamp with time zone", false),
            ]
        }

        #[test]
        fn postgres_accepts_the_tables_create_table_makes() {
            check_people(&people()).expect("people");
            check(Server::Postgres, DIALECT, &EVERYTHING, &everything()).expect("everything");
        }

        #[test]
        fn postgres_accepts_wider_numbers_json_and_varchar() {
            let wider = [
                declared("id", "varchar", "character varying", false),
                declared("flag", "bool", "boolean", false),
                declared("small", "int8", "bigint", false),
                declared("medium", "int8", "bigint", true),
                declared("version", "int8", "bigint", false),
                declared("ratio", "float8", "double precision", false),
                declared("amount", "float8", "double precision", false),
                declared("blob", "bytea", "bytea", true),
                declared("doc", "json", "json", false),
                declared("uuid", "uuid", "uuid", true),
                declared("at", "timestamptz", "timestamp with time zone", false),
            ];
            check(Server::Postgres, DIALECT, &EVERYTHING, &wider).expect("wider");
        }

        #[test]
        fn postgres_refuses_a_missing_table() {
            let message = storage_message(check_people(&[]));
            assert!(message.contains("no such table: people (create it with create_table"), "{message}");
        }

        #[test]
        fn postgres_refuses_a_missing_column_with_the_statement_that_adds_it() {
            let mut columns = people();
            columns.remove(1);
            let reason = decode_reason(check_people(&columns), &PEOPLE, "name");
            assert!(reason.contains(r#"ALTER TABLE "people" ADD COLUMN "name" TEXT COLLATE "C""#), "{reason}");
            assert!(!reason.contains("NOT NULL"), "an Option field's column allows NULL: {reason}");

            let mut columns = people();
            columns.remove(2);
            let reason = decode_reason(check_people(&columns), &PEOPLE, "created");
            assert!(reason.contains(r#"ALTER TABLE "people" ADD COLUMN "created" BIGINT NOT NULL"#), "{reason}");
            assert!(reason.contains("DEFAULT"), "existing rows need a value: {reason}");
        }

        #[test]
        fn postgres_adds_a_missing_version_column_at_version_1() {
            let mut columns = people();
            columns.pop();
            let reason = decode_reason(check_people(&columns), &PEOPLE, "version");
            assert!(
                reason.ends_with(r#"ALTER TABLE "people" ADD COLUMN "version" BIGINT NOT NULL DEFAULT 1"#),
                "{reason}"
            );
            assert!(reason.contains("not under versioning yet") && reason.contains("version 1"), "{reason}");
        }

        #[test]
        fn postgres_refuses_a_mistyped_column_naming_both_types() {
            let mut columns = people();
            columns[2] = declared("created", "int4", "integer", false);
            let reason = decode_reason(check_people(&columns), &PEOPLE, "created");
            assert_eq!(
                reason,
                "the column is declared integer, which cannot hold field `created` (an integer); declare it BIGINT"
            );
            let error = check_people(&columns).expect_err("mistyped").to_string();
            assert!(error.contains("people.created"), "{error}");
        }

        #[test]
        fn postgres_refuses_types_that_would_not_read_back() {
            let mut columns = people();
            columns[1] = declared("name", "bpchar", "character", true);
            let reason = decode_reason(check_people(&columns), &PEOPLE, "name");
            assert!(reason.contains("pads text with spaces") && reason.ends_with("declare it TEXT COLLATE \"C\""));

            let mut columns = everything();
            columns[10] = declared("at", "timestamp", "timestamp without time zone", false);
            let reason = decode_reason(check(Server::Postgres, DIALECT, &EVERYTHING, &columns), &EVERYTHING, "at");
            assert!(reason.starts_with("the column is declared timestamp without time zone,"), "{reason}");
            assert!(reason.contains("UTC") && reason.ends_with("declare it TIMESTAMPTZ"), "{reason}");

            assert_eq!(postgres_fit(ColumnType::Timestamp, "timestamptz"), None);
            assert_eq!(postgres_fit(ColumnType::Int64, "numeric"), Some(None));
            assert_eq!(postgres_fit(ColumnType::Float64, "float4"), Some(None), "a float4 rounds an f64");
            assert_eq!(postgres_fit(ColumnType::Bool, "int2"), Some(None));
        }

        #[test]
        fn postgres_accepts_a_nullable_column_for_a_required_field() {
            let mut columns = people();
            columns[2].nullable = true;
            check_people(&columns).expect("a NULL is reported when read");
        }

        #[test]
        fn postgres_compares_column_names_exactly() {
            let mut columns = people();
            columns[1].name = "Name".to_owned();
            let reason = decode_reason(check_people(&columns), &PEOPLE, "name");
            assert!(reason.contains("no such column"), "{reason}");
        }

        #[test]
        fn postgres_columns_bind_the_table_name_once() {
            assert!(
                !POSTGRES_COLUMNS.contains("$2") && POSTGRES_COLUMNS.contains("to_regclass(quote_ident($1::text))")
            );
        }

        #[test]
        fn postgres_rows_become_declared_columns() {
            let rows = vec![("id".to_owned(), "int8".to_owned(), "bigint".to_owned(), false, true, true)];
            let declared = postgres_declared(rows);
            assert_eq!(declared.len(), 1);
            assert_eq!(
                (&*declared[0].name, &*declared[0].data_type, declared[0].nullable, declared[0].has_default),
                ("id", "int8", false, true)
            );
        }
    }

    #[cfg(feature = "mysql")]
    mod mysql {
        use super::*;
        use crate::storage::mysql::{MARIADB_DIALECT, MYSQL8_DIALECT};

        /// `PEOPLE` as `create_table` declares it on MariaDB.
        fn people() -> Vec<Declared> {
            vec![
                declared("id", "bigint", "bigint(20)", false),
                declared("name", "longtext", "longtext", true),
                declared("created", "bigint", "bigint(20)", false),
                declared("version", "bigint", "bigint(20)", false),
            ]
        }

        /// `PEOPLE` checked against `columns`.
        fn check_people(columns: &[Declared]) -> Result<()> {
            check(Server::Mysql, MARIADB_DIALECT, &PEOPLE, columns)
        }

        /// `EVERYTHING` as `create_table` declares it, JSON as the server reports it.
        fn everything(json: &str) -> Vec<Declared> {
            vec![
                declared("id", "varchar", "varchar(255)", false),
                declared("flag", "tinyint", "tinyint(1)", false),
                declared("small", "smallint", "smallint(6)", false),
                declared("medium", "int", "int(11)", true),
                declared("version", "bigint", "bigint(20)", false),
                declared("ratio", "float", "float", false),
                declared("amount", "double", "double", false),
                declared("blob", "longblob", "longblob", true),
                declared("doc", json, json, false),
                declared("uuid", "char", "char(36)", true),
                declared("at", "datetime", "datetime(6)", false),
            ]
        }

        /// `EVERYTHING` checked against `columns`.
        fn check_everything(columns: &[Declared]) -> Result<()> {
            check(Server::Mysql, MARIADB_DIALECT, &EVERYTHING, columns)
        }

        #[test]
        fn mysql_accepts_the_tables_create_table_makes() {
            check_people(&people()).expect("people");
            check_everything(&everything("longtext")).expect("MariaDB's JSON");
            check(Server::Mysql, MYSQL8_DIALECT, &EVERYTHING, &everything("json")).expect("MySQL's JSON");
        }

        #[test]
        fn mysql_refuses_a_missing_table() {
            let message = storage_message(check_people(&[]));
            assert!(message.contains("no such table: people (create it with create_table"), "{message}");
        }

        #[test]
        fn mysql_refuses_a_missing_column_with_the_statement_that_adds_it() {
            let mut columns = everything("json");
            columns.remove(8);
            let reason = decode_reason(check_everything(&columns), &EVERYTHING, "doc");
            assert!(reason.ends_with("ALTER TABLE `everything` ADD COLUMN `doc` JSON NOT NULL"), "{reason}");
        }

        #[test]
        fn mysql_adds_a_missing_version_column_at_version_1() {
            let mut columns = people();
            columns.pop();
            let reason = decode_reason(check_people(&columns), &PEOPLE, "version");
            assert!(
                reason.ends_with("ALTER TABLE `people` ADD COLUMN `version` BIGINT NOT NULL DEFAULT 1"),
                "{reason}"
            );
        }

        #[test]
        fn mysql_refuses_a_mistyped_column_naming_both_types() {
            let mut columns = everything("json");
            columns[1] = declared("flag", "varchar", "varchar(5)", false);
            let reason = decode_reason(check_everything(&columns), &EVERYTHING, "flag");
            assert_eq!(
                reason,
                "the column is declared varchar(5), which cannot hold field `flag` (a bool); declare it BOOLEAN"
            );
        }

        #[test]
        fn mysql_refuses_types_that_would_not_read_back() {
            let at = |column_type: &str| {
                let mut columns = everything("json");
                columns[10] = declared("at", column_type.split('(').next().unwrap_or(""), column_type, false);
                check_everything(&columns)
            };
            let reason = decode_reason(at("datetime"), &EVERYTHING, "at");
            assert!(reason.contains("microseconds") && reason.ends_with("declare it DATETIME(6)"), "{reason}");
            decode_reason(at("datetime(3)"), &EVERYTHING, "at");
            let reason = decode_reason(at("timestamp(6)"), &EVERYTHING, "at");
            assert!(reason.contains("time zone"), "{reason}");

            let mut columns = everything("json");
            columns[9] = declared("uuid", "char", "char(32)", true);
            let reason = decode_reason(check_everything(&columns), &EVERYTHING, "uuid");
            assert!(reason.contains("36 characters"), "{reason}");
            columns[9] = declared("uuid", "varchar", "varchar(64)", true);
            check_everything(&columns).expect("long enough");

            let mut columns = people();
            columns[2] = declared("created", "bigint", "bigint(20) unsigned", false);
            let reason = decode_reason(check_people(&columns), &PEOPLE, "created");
            assert!(reason.contains("negative"), "{reason}");
            let mut columns = people();
            columns[3] = declared("version", "bigint", "bigint(20) unsigned", false);
            check_people(&columns).expect("versions are never negative");

            assert!(matches!(mysql_fit(&EVERYTHING.columns[0], "char", "char(255)"), Some(Some(_))));
            assert_eq!(mysql_fit(&EVERYTHING.columns[3], "mediumint", "mediumint(9)"), Some(None));
            assert_eq!(mysql_fit(&EVERYTHING.columns[2], "mediumint", "mediumint(9)"), None);
        }

        #[test]
        fn mysql_compares_column_names_without_regard_to_case() {
            let mut columns = people();
            columns[1].name = "NAME".to_owned();
            columns[3].name = "Version".to_owned();
            check_people(&columns).expect("the same columns to MySQL");
        }

        #[test]
        fn mysql_columns_bind_the_table_name_once() {
            assert_eq!(MYSQL_COLUMNS.matches('?').count(), 1);
            assert!(MYSQL_COLUMNS.ends_with("TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?"));
        }

        #[test]
        fn mysql_keeps_the_rows_of_the_table_spelled_as_the_struct() {
            let row = |table: &str, column: &str| {
                (table.to_owned(), column.to_owned(), "int".to_owned(), "int(11)".to_owned(), 0, 1)
            };
            let rows = vec![row("People", "a"), row("people", "b"), row("People", "c")];
            let declared = mysql_declared(&PEOPLE, rows);
            assert_eq!(declared.iter().map(|d| &*d.name).collect::<Vec<_>>(), ["b"]);
            assert!(!declared[0].nullable && declared[0].has_default);

            let rows = vec![row("PEOPLE", "a"), row("People", "b"), row("PEOPLE", "c")];
            let declared = mysql_declared(&PEOPLE, rows);
            assert_eq!(declared.iter().map(|d| &*d.name).collect::<Vec<_>>(), ["a", "c"]);
        }
    }
}
