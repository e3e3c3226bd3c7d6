//! PostgreSQL's [`Dialect`]: numbered placeholders, native column types, and the conversions of
//! JSON documents, UUIDs and timestamps in the statement.

use crate::entity::ColumnDef;
use crate::storage::sql::Dialect;
use crate::storage::sql::history::Triggers;
use crate::value::ColumnType;

/// PostgreSQL: numbered placeholders, native types. JSON documents, UUIDs and timestamps are
/// bound and read as text and microseconds, converted in the statement.
pub(crate) struct PostgresDialect;

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

    /// PostgreSQL sorts `NULL` above every value by default.
    fn nulls_first(&self, first: bool) -> &'static str {
        if first { " NULLS FIRST" } else { " NULLS LAST" }
    }

    fn column_type(&self, column: &ColumnDef) -> &'static str {
        match column.ty {
            ColumnType::Bool => "BOOLEAN",
            ColumnType::Int16 => "SMALLINT",
            ColumnType::Int32 => "INTEGER",
            ColumnType::Int64 => "BIGINT",
            ColumnType::Float32 => "REAL",
            ColumnType::Float64 => "DOUBLE PRECISION",
            // Compared and sorted byte by byte (UTF-8: by code point), as Rust compares strings;
            // the database's default collation would follow a language's rules.
            ColumnType::Text => "TEXT COLLATE \"C\"",
            ColumnType::Bytes => "BYTEA",
            ColumnType::Json => "JSONB",
            ColumnType::Uuid => "UUID",
            ColumnType::Timestamp => "TIMESTAMPTZ",
        }
    }

    fn history_id(&self) -> &'static str {
        "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY"
    }

    /// The clock at the statement, not at the transaction's start (`now()`).
    fn now_micros(&self) -> &'static str {
        "(EXTRACT(EPOCH FROM clock_timestamp()) * 1000000)::int8"
    }

    /// One function and one trigger for the three events, both replaced (`CREATE OR REPLACE
    /// TRIGGER`: PostgreSQL 14 and later). The function names the history table unqualified: it
    /// is found by the `search_path` of the session that writes, as the record's table is.
    fn history_triggers(&self, t: &Triggers<'_>) -> Vec<String> {
        let record = self.quote(&t.names[3]);
        vec![
            format!(
                "CREATE OR REPLACE FUNCTION {record}() RETURNS trigger LANGUAGE plpgsql AS $versioned$ BEGIN \
                 IF TG_OP = 'DELETE' THEN {} ELSIF TG_OP = 'INSERT' THEN {new} ELSIF {} THEN {new} END IF; \
                 RETURN NULL; END $versioned$",
                t.record_old,
                t.changed,
                new = t.record_new,
            ),
            format!(
                "CREATE OR REPLACE TRIGGER {record} AFTER INSERT OR UPDATE OR DELETE ON {} FOR EACH ROW EXECUTE FUNCTION \
                 {record}()",
                t.table
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::sql::Statements;
    use crate::storage::sql::tests::PEOPLE;

    #[test]
    fn the_postgres_dialect_numbers_placeholders_and_converts_types() {
        let s = Statements::new(&PostgresDialect, &PEOPLE);
        assert_eq!(&*s.update, r#"UPDATE "people" SET "name" = $1, "version" = $2 WHERE "id" = $3 AND "version" = $4"#);
        assert_eq!(
            &*s.patch(&[1]),
            r#"UPDATE "people" SET "name" = $1, "version" = $2 WHERE "id" = $3 AND "version" = $4"#
        );
        assert_eq!(
            s.select_for_update_nowait.as_deref(),
            Some(r#"SELECT "id", "name", "created", "version" FROM "people" WHERE "id" = $1 FOR UPDATE NOWAIT"#)
        );
        assert_eq!(
            &*s.upsert,
            r#"INSERT INTO "people" ("id", "name", "created", "version") VALUES ($1, $2, $3, $4) ON CONFLICT ("id") DO UPDATE SET "name" = excluded."name", "version" = "people"."version" + 1 WHERE "people"."version" >= 0 AND "people"."version" < 100 RETURNING "version""#
        );
        assert_eq!(PostgresDialect.bind(3, ColumnType::Json), "$3::jsonb");
        assert_eq!(
            PostgresDialect.read(r#""at""#, ColumnType::Timestamp),
            r#"(EXTRACT(EPOCH FROM "at") * 1000000)::int8"#
        );
    }
}
