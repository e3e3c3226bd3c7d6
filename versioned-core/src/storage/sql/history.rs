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
    /// What `create_table` runs after the table itself, in order: the history table, its
    /// index, the triggers. Run as plain text (MySQL prepares no `CREATE TRIGGER`).
    pub ddl: Vec<Arc<str>>,
    /// `SELECT <columns>, history_deleted, history_at FROM h WHERE key = ? ORDER BY history_id`
    /// — binds: key.
    pub select: Arc<str>,
    /// `select`, of one version — binds: key, version.
    pub select_version: Arc<str>,
}

/// What a dialect's triggers are made of: the statements that record the new row (after an
/// insert or an update) and the deleted one (after a delete), each ending with `;`, written with
/// the dialect's own names for the two rows.
pub(crate) struct Triggers<'a> {
    /// The record table, quoted.
    pub table: &'a str,
    /// The history table's name, unquoted: triggers and functions are named after it.
    pub name: &'a str,
    /// Records the row after an insert or an update: `(new)` is the dialect's name of that row.
    pub record_new: &'a dyn Fn(&str) -> String,
    /// Records a deletion: `(old)` is the dialect's name of the deleted row.
    pub record_old: &'a dyn Fn(&str) -> String,
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
        let (t, h) = (q(table.name), q(history.table));
        let (key, version) = (&quoted[table.key], &quoted[table.version]);
        let (deleted, at) = (q(DELETED), q(AT));
        let now = dialect.now_micros();

        let mut columns: Vec<String> = vec![format!("{} {}", q(ID), dialect.history_id())];
        columns.extend(table.columns.iter().zip(quoted).map(|(c, name)| format!("{name} {}", dialect.column_type(c))));
        columns.push(format!("{deleted} {} NOT NULL", dialect.boolean()));
        columns.push(format!("{at} BIGINT NOT NULL"));
        let create = format!("CREATE TABLE IF NOT EXISTS {h} ({})", columns.join(", "));
        let index_columns = [(key.as_str(), table.key_column().ty), (version.as_str(), table.version_column().ty)];
        let index = dialect.create_index(&h, &q(&super::index_name(history.table, "key")), &index_columns);

        let list = quoted.join(", ");
        // One entry per write, then what the retention drops of that record's entries.
        let record = |row: &str, is_deletion: bool| {
            let values: Vec<String> =
                quoted
                    .iter()
                    .enumerate()
                    .map(|(i, c)| {
                        if is_deletion && i == table.version { format!("{row}.{c} + 1") } else { format!("{row}.{c}") }
                    })
                    .collect();
            let flag = if is_deletion { "TRUE" } else { "FALSE" };
            let newest = if is_deletion { format!("{row}.{version} + 1") } else { format!("{row}.{version}") };
            let mut sql =
                format!("INSERT INTO {h} ({list}, {deleted}, {at}) VALUES ({}, {flag}, {now});", values.join(", "));
            match history.keep {
                Retention::All => {}
                Retention::Versions(n) => sql
                    .push_str(&format!(" DELETE FROM {h} WHERE {key} = {row}.{key} AND {version} <= {newest} - {n};")),
                Retention::Seconds(s) => sql.push_str(&format!(
                    " DELETE FROM {h} WHERE {key} = {row}.{key} AND {at} < {now} - {};",
                    s.saturating_mul(1_000_000).min(i64::MAX as u64)
                )),
            }
            sql
        };
        let triggers = dialect.history_triggers(&Triggers {
            table: &t,
            name: history.table,
            record_new: &|row| record(row, false),
            record_old: &|row| record(row, true),
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
        HistoryStatements { ddl, select: select.into(), select_version: select_version.into() }
    }
}

/// Runs `history`'s DDL on `conn` (after the record's table): each statement as plain text, an
/// error that `exists` says means "already there" taken as done.
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
    for statement in &history.ddl {
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
        assert_eq!(
            ddl[4],
            format!(
                r#"CREATE TRIGGER IF NOT EXISTS "people_history_delete" AFTER DELETE ON "people" FOR EACH ROW BEGIN INSERT INTO "people_history" ("id", "name", "created", "version", "history_deleted", "history_at") VALUES (OLD."id", OLD."name", OLD."created", OLD."version" + 1, TRUE, {now}); DELETE FROM "people_history" WHERE "id" = OLD."id" AND "version" <= OLD."version" + 1 - 3; END"#
            )
        );
        assert_eq!(
            &*history.select_version,
            r#"SELECT "id", "name", "created", "version", "history_deleted", "history_at" FROM "people_history" WHERE "id" = ? AND "version" = ? ORDER BY "history_id""#
        );
        // The migration text has them after the table.
        assert_eq!(crate::storage::sql::ddl(&SqliteDialect, &KEPT).len(), 1 + 2 + 3);
    }
}
