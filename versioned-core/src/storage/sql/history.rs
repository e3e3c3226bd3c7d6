//! A table's version history in SQL (`#[versioned(history)]`): the history table, the triggers
//! that fill it, and the queries that read it back. Written once here; a dialect adds only its
//! trigger syntax, its clock and its auto-numbered key ([`Dialect::history_triggers`]).
//!
//! Triggers rather than statements of ours: a trigger runs inside the statement that fired it, so
//! the record and its history entry are one atomic write whatever wrote the row (a checked put, a
//! batch, group commit, a `patch_where`, or SQL of your own), and a write costs no extra round
//! trip.

use std::sync::Arc;

use super::Dialect;
use crate::entity::TableDef;
use crate::revisions::{HistoryDef, Retention};

/// The statements of a table's history.
#[derive(Debug, Clone)]
pub(crate) struct HistoryStatements {
    /// What `create_table` (and a migration) runs after the table itself, in order: the history
    /// table, its index, the triggers (replaced, so that a changed struct or retention takes
    /// effect). Run as plain text (MySQL prepares no `CREATE TRIGGER`).
    pub ddl: Vec<Arc<str>>,
    /// What `create_table` runs between the history table and the triggers: each column added
    /// where the table lacks it (a field added to the struct since the table was made), so that
    /// the triggers never name a column the history table does not have. Not in a migration,
    /// which creates the table with every column.
    pub add_columns: Vec<Arc<str>>,
    /// How many of `ddl`'s statements come before the triggers.
    pub before_triggers: usize,
    /// `SELECT <columns>, history_deleted, history_at FROM h WHERE key = ? ORDER BY history_id`
    /// — binds: key.
    pub select: Arc<str>,
    /// `select`, of one version — binds: key, version.
    pub select_version: Arc<str>,
}

/// What a dialect's triggers are made of: their names, the statements that record the new row
/// (after an insert or an update) and the deleted one (after a delete), each ending with `;`,
/// and the condition that an update changed the version (an update that does not is not a new
/// version, and records nothing).
pub(crate) struct Triggers<'a> {
    /// The record table, quoted.
    pub table: &'a str,
    /// The triggers' names, unquoted: after an insert, an update, a delete; and a function's
    /// (PostgreSQL's triggers call one).
    pub names: [String; 4],
    /// Records `NEW` (the row after an insert or an update).
    pub record_new: String,
    /// Records `OLD` as a deletion.
    pub record_old: String,
    /// `NEW`'s version differs from `OLD`'s, in the dialect's words.
    pub changed: String,
}

/// The name of the history table's column that numbers its entries in write order.
pub(crate) const ID: &str = "history_id";
/// The name of the column saying an entry is a deletion.
pub(crate) const DELETED: &str = "history_deleted";
/// The name of the column holding when an entry was written (microseconds since the epoch).
pub(crate) const AT: &str = "history_at";

impl HistoryStatements {
    /// The history statements of `table` in `dialect`; `quoted` are its quoted column names and
    /// `read_list` its columns as a query reads them.
    pub(crate) fn new(
        dialect: &dyn Dialect,
        table: &'static TableDef,
        history: HistoryDef,
        quoted: &[String],
        read_list: &str,
    ) -> Self {
        let q = |name: &str| dialect.quote(name);
        let name = super::short_name(history.table.to_owned());
        let (t, h) = (q(table.name), q(&name));
        let (key, version) = (&quoted[table.key], &quoted[table.version]);
        let (deleted, at) = (q(DELETED), q(AT));
        let now = dialect.now_micros();

        let mut columns: Vec<String> = vec![format!("{} {}", q(ID), dialect.history_id())];
        columns.extend(table.columns.iter().zip(quoted).map(|(c, name)| format!("{name} {}", dialect.column_type(c))));
        columns.push(format!("{deleted} {} NOT NULL", dialect.boolean()));
        columns.push(format!("{at} BIGINT NOT NULL"));
        let create = format!("CREATE TABLE IF NOT EXISTS {h} ({})", columns.join(", "));
        let index_columns = [(key.as_str(), table.key_column().ty), (version.as_str(), table.version_column().ty)];
        let index = dialect.create_index(&h, &q(&super::index_name(&name, "key")), &index_columns);
        let add_columns = table
            .columns
            .iter()
            .zip(quoted)
            .map(|(c, column)| Arc::from(dialect.add_column(&h, column, dialect.column_type(c))))
            .collect();

        let list = quoted.join(", ");
        // One entry per write (a deletion at the deleted row's own version), then what the
        // retention drops of that record's entries.
        let record = |row: &str, is_deletion: bool| {
            let values: Vec<String> = quoted.iter().map(|c| format!("{row}.{c}")).collect();
            let flag = if is_deletion { "TRUE" } else { "FALSE" };
            let mut sql =
                format!("INSERT INTO {h} ({list}, {deleted}, {at}) VALUES ({}, {flag}, {now});", values.join(", "));
            match history.keep {
                Retention::All => {}
                Retention::Versions(n) => sql.push_str(&format!(
                    " DELETE FROM {h} WHERE {key} = {row}.{key} AND {version} <= {row}.{version} - {n};"
                )),
                Retention::Seconds(s) => sql.push_str(&format!(
                    " DELETE FROM {h} WHERE {key} = {row}.{key} AND {at} < {now} - {};",
                    s.saturating_mul(1_000_000).min(i64::MAX as u64)
                )),
            }
            sql
        };
        let trigger_name = |suffix: &str| super::short_name(format!("{}_{suffix}", history.table));
        let triggers = dialect.history_triggers(&Triggers {
            table: &t,
            names: ["insert", "update", "delete", "record"].map(trigger_name),
            record_new: record("NEW", false),
            record_old: record("OLD", true),
            changed: dialect.distinct(&format!("NEW.{version}"), &format!("OLD.{version}")),
        });

        let select = format!(
            "SELECT {read_list}, {deleted}, {at} FROM {h} WHERE {key} = {}",
            dialect.bind(1, table.key_column().ty)
        );
        let select_version =
            format!("{select} AND {version} = {} ORDER BY {}", dialect.bind(2, table.version_column().ty), q(ID));
        let select = format!("{select} ORDER BY {}", q(ID));

        let mut ddl: Vec<Arc<str>> = vec![create.into(), index.into()];
        ddl.extend(triggers.into_iter().map(Arc::from));
        HistoryStatements {
            ddl,
            add_columns,
            before_triggers: 2,
            select: select.into(),
            select_version: select_version.into(),
        }
    }
}

/// Runs `history`'s DDL on `conn` (after the record's table): the history table, its missing
/// columns, the triggers; each statement as plain text, an error that `exists` says means
/// "already there" (an index, a column, a trigger another process made meanwhile) taken as done.
pub(crate) async fn create<DB: super::driver::Driver>(
    conn: &mut DB::Connection,
    table: &'static TableDef,
    history: &HistoryStatements,
    exists: impl Fn(&sqlx::Error) -> bool,
) -> crate::error::Result<()>
where
    for<'e> &'e mut DB::Connection: sqlx::Executor<'e, Database = DB>,
{
    use sqlx::Executor;
    let (tables, triggers) = history.ddl.split_at(history.before_triggers);
    for statement in tables.iter().chain(&history.add_columns).chain(triggers) {
        match (&mut *conn).execute(sqlx::AssertSqlSafe(statement.to_string())).await {
            Err(err) if !exists(&err) => return Err(super::driver::error::<DB>(Some(table), err)),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(all(test, feature = "sqlite"))]
mod tests {
    use crate::entity::TableDef;
    use crate::revisions::{HistoryDef, Retention};
    use crate::storage::sql::Statements;
    use crate::storage::sql::tests::PEOPLE;
    use crate::storage::sqlite::dialect::SqliteDialect;

    static KEPT: TableDef = TableDef {
        history: Some(HistoryDef { table: "people_history", keep: Retention::Versions(3) }),
        name: PEOPLE.name,
        entity: PEOPLE.entity,
        columns: PEOPLE.columns,
        key: PEOPLE.key,
        version: PEOPLE.version,
        version_max: PEOPLE.version_max,
    };

    #[test]
    fn the_history_table_is_filled_by_triggers_that_keep_what_the_retention_says() {
        let statements = Statements::new(&SqliteDialect, &KEPT);
        let history = statements.history.as_ref().expect("history statements");
        let ddl: Vec<&str> = history.ddl.iter().map(|s| &**s).collect();
        assert_eq!(
            ddl[0],
            r#"CREATE TABLE IF NOT EXISTS "people_history" ("history_id" INTEGER PRIMARY KEY, "id" INTEGER, "name" TEXT, "created" INTEGER, "version" INTEGER, "history_deleted" BOOLEAN NOT NULL, "history_at" BIGINT NOT NULL)"#
        );
        assert_eq!(
            ddl[1],
            r#"CREATE INDEX IF NOT EXISTS "people_history_key_idx" ON "people_history" ("id", "version")"#
        );
        let now = "CAST((julianday('now') - 2440587.5) * 86400000000.0 AS INTEGER)";
        assert_eq!(ddl[6], r#"DROP TRIGGER IF EXISTS "people_history_delete""#);
        assert_eq!(
            ddl[7],
            format!(
                r#"CREATE TRIGGER "people_history_delete" AFTER DELETE ON "people" FOR EACH ROW BEGIN INSERT INTO "people_history" ("id", "name", "created", "version", "history_deleted", "history_at") VALUES (OLD."id", OLD."name", OLD."created", OLD."version", TRUE, {now}); DELETE FROM "people_history" WHERE "id" = OLD."id" AND "version" <= OLD."version" - 3; END"#
            )
        );
        assert!(
            ddl[5].starts_with(r#"CREATE TRIGGER "people_history_update" AFTER UPDATE ON "people" FOR EACH ROW WHEN NEW."version" IS DISTINCT FROM OLD."version" BEGIN"#),
            "an update that keeps the version records nothing: {}",
            ddl[5]
        );
        assert_eq!(&*history.add_columns[1], r#"ALTER TABLE "people_history" ADD COLUMN "name" TEXT"#);
        assert_eq!(
            &*history.select_version,
            r#"SELECT "id", "name", "created", "version", "history_deleted", "history_at" FROM "people_history" WHERE "id" = ? AND "version" = ? ORDER BY "history_id""#
        );
        // The migration text has them after the table.
        assert_eq!(crate::storage::sql::ddl(&SqliteDialect, &KEPT).len(), 1 + 2 + 6);
    }
}
