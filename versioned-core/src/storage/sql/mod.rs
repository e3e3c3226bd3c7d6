//! ONE SQL layer: the statements of a table, built once from its [`TableDef`] and a
//! [`Dialect`], and the row operations written once over any SQL connection ([`rows`]).
//!
//! Identifiers are always quoted, values always bound. Each conditional write is one statement
//! carrying the version check in its `WHERE` clause. The bind order of every statement is fixed
//! here and documented on its field, whatever the dialect, so the row operations bind without
//! re-deriving it. A backend adds its [`Dialect`] (beside it: `storage/<backend>/dialect.rs`)
//! and a [`driver::Driver`] implementation for its sqlx driver.

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::{Arc, PoisonError, RwLock};

use crate::entity::{ColumnDef, ColumnRole, TableDef};

pub(crate) mod dialect;
pub(crate) mod driver;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) mod group_commit;
pub(crate) mod history;
pub(crate) mod rows;
pub(crate) mod schema;
pub(crate) mod select;
#[cfg(any(feature = "postgres", feature = "mysql"))]
pub(crate) mod server_transaction;

pub(crate) use dialect::{Dialect, Upsert};

/// What a backend keeps per struct mapping (the statements of a [`TableDef`], and whatever else
/// it learns once about its table), shared by every clone of the backend and built the first
/// time the mapping is used.
///
/// Entries belong to a mapping, not to a table name: two structs on one table (a wider one, a
/// narrower projection, other column orders) have statements and schema checks of their own. A
/// mapping is found by its `TableDef`'s address; the same address always holds the same
/// definition, and a definition found at two addresses only costs a second entry.
pub(crate) struct Mappings<T>(Arc<RwLock<HashMap<usize, Arc<T>>>>);

impl<T> Mappings<T> {
    /// The entry of `table`, made by `make` the first time.
    pub(crate) fn get(&self, table: &'static TableDef, make: impl FnOnce() -> T) -> Arc<T> {
        let address = std::ptr::from_ref(table) as usize;
        // The map only ever gains complete entries, so a poisoned lock still holds valid data.
        if let Some(found) = self.0.read().unwrap_or_else(PoisonError::into_inner).get(&address) {
            return Arc::clone(found);
        }
        let mut map = self.0.write().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(map.entry(address).or_insert_with(|| Arc::new(make())))
    }

    /// An address shared by every clone, and by no other backend:
    /// [`Capabilities::identity`](crate::storage::Capabilities::identity).
    pub(crate) fn identity(&self) -> usize {
        Arc::as_ptr(&self.0) as *const () as usize
    }
}

impl<T> Default for Mappings<T> {
    fn default() -> Self {
        Mappings(Arc::default())
    }
}

impl<T> Clone for Mappings<T> {
    fn clone(&self) -> Self {
        Mappings(Arc::clone(&self.0))
    }
}

impl<T> std::fmt::Debug for Mappings<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mappings").finish_non_exhaustive()
    }
}

/// The statements of one table.
#[cfg_attr(not(any(feature = "postgres", feature = "mysql")), allow(dead_code))] // the server backends' only
pub(crate) struct Statements {
    /// `SELECT <all columns> FROM t WHERE key = ?` — binds: key.
    pub select: Arc<str>,
    /// `SELECT version FROM t WHERE key = ?`: the version an upsert wrote, where the dialect's
    /// upsert cannot return it — binds: key.
    pub select_version: Arc<str>,
    /// `select … FOR UPDATE`, where the dialect locks rows — binds: key.
    pub select_for_update: Option<Arc<str>>,
    /// `select … FOR UPDATE NOWAIT`, where the dialect locks rows — binds: key.
    pub select_for_update_nowait: Option<Arc<str>>,
    /// An insert that writes nothing when the key exists — binds: every column in order.
    pub insert: Arc<str>,
    /// `UPDATE t SET <update_columns> WHERE key = ? AND version = ?` — binds: the values of
    /// `update_columns` in order (the version column holding the new version), then key, expected
    /// version.
    pub update: Arc<str>,
    /// The columns an update sets: all but the key and a `CreatedAt` column.
    pub update_columns: Vec<usize>,
    /// The upsert of `put_unchecked` ([`Dialect::upsert`]), returning the new version; a stored
    /// version that is not a valid version, or is at the maximum, is never incremented (no row)
    /// — binds: every column in order (version bound as 1).
    pub upsert: Arc<str>,
    /// `DELETE FROM t WHERE key = ? AND version = ?` — binds: key, expected version.
    pub delete_checked: Arc<str>,
    /// `DELETE FROM t WHERE key = ? AND <version is valid>` — binds: key.
    pub delete_unchecked: Arc<str>,
    /// `CREATE TABLE IF NOT EXISTS …`.
    pub create: Arc<str>,
    /// One `CREATE INDEX` per `#[versioned(index)]` column, on the column then the key (the
    /// order a query by the column takes, ties broken by the key).
    pub indexes: Vec<Arc<str>>,
    /// The history table's statements (`#[versioned(history)]`).
    pub history: Option<history::HistoryStatements>,
    /// Whether `upsert` returns the new version ([`Dialect::returning`]).
    pub returning: bool,
    dialect: &'static dyn Dialect,
    table: &'static TableDef,
    /// Every column as read, in column order: what a query selects.
    read_list: String,
    table_name: String,
    key: String,
    version: String,
    quoted: Vec<String>,
    /// The patch statements built so far, by the columns they set.
    patches: RwLock<HashMap<Vec<usize>, Arc<str>>>,
    /// The batch statements built so far, by kind and number of rows.
    batches: RwLock<HashMap<(Batch, usize), Arc<str>>>,
}

/// A statement writing many rows at once ([`Statements::batch`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Batch {
    /// `WITH versioned_batch(…) AS (VALUES …) UPDATE t SET … FROM versioned_batch WHERE key = …
    /// AND version = … RETURNING key` — binds, per row: key, the values of `update_columns`,
    /// expected version.
    Update,
    /// `INSERT INTO t (…) VALUES (…), (…) ON CONFLICT (key) DO NOTHING RETURNING key` — binds,
    /// per row: every column in order.
    Insert,
    /// `DELETE FROM t WHERE (key, version) IN (VALUES (…), (…)) RETURNING key` — binds, per row:
    /// key, expected version.
    Delete,
}

/// The most values one batch statement binds: below SQLite's limit (32,766) and PostgreSQL's
/// (65,535).
const MAX_BATCH_BINDS: usize = 30_000;
/// The most rows one batch statement writes.
const MAX_BATCH_ROWS: usize = 1_000;
/// Batch statements of up to this many rows are kept once built, whatever the chunk size.
const KEPT_BATCH_ROWS: usize = 64;

impl std::fmt::Debug for Statements {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Statements").field("table", &self.table_name).finish_non_exhaustive()
    }
}

/// Numbers placeholders in bind order.
struct Binds<'d> {
    dialect: &'d dyn Dialect,
    table: &'d TableDef,
    next: usize,
}

impl Binds<'_> {
    /// The next bound value, for column `index`.
    fn next(&mut self, index: usize) -> String {
        self.next += 1;
        self.dialect.bind(self.next, self.table.columns[index].ty)
    }

    /// A value for every column, in column order.
    fn row(&mut self) -> String {
        (0..self.table.columns.len()).map(|i| self.next(i)).collect::<Vec<_>>().join(", ")
    }
}

/// What `create_table` runs for `table` in `dialect`: the `CREATE TABLE`, then its indexes.
pub(crate) fn ddl(dialect: &'static dyn Dialect, table: &'static TableDef) -> Vec<String> {
    let statements = Statements::new(dialect, table);
    let history = statements.history.iter().flat_map(|h| h.ddl.iter());
    std::iter::once(&statements.create).chain(&statements.indexes).chain(history).map(|s| s.to_string()).collect()
}

/// Why a column of `table` the table lacks is refused, with the statement that adds it as
/// `create_table` declares it in `dialect` (not for the key, which must be the table's primary
/// key); a version column with every existing row at version 1 (putting a table of yours under
/// versioning).
pub(crate) fn missing_column(dialect: &dyn Dialect, table: &TableDef, column: &ColumnDef) -> String {
    let add = format!(
        "ALTER TABLE {} ADD COLUMN {} {}",
        dialect.quote(table.name),
        dialect.quote(column.name),
        dialect.column_type(column)
    );
    match column.role {
        ColumnRole::Version => format!(
            "the table has no such column: it is not under versioning yet; add the version column, every existing \
             row starting at version 1: {add} NOT NULL DEFAULT 1"
        ),
        // No statement: a key cannot be added to a table that has rows or a primary key already.
        ColumnRole::Key => "the table has no such column, and it is the key: map the `#[key]` field to the table's \
                             primary key (`#[versioned(column = \"…\")]` when the names differ), or create the \
                             table with create_table (or the statements of versioned::migrations)"
            .to_owned(),
        _ if column.nullable => format!("the table has no such column; add it: {add}"),
        _ => format!(
            "the table has no such column; add it (NOT NULL needs a value in every existing row: add a DEFAULT to \
             the statement, or add it nullable, fill it, then make it NOT NULL): {add} NOT NULL"
        ),
    }
}

/// `<table>_<column>_idx`, or where that passes the 63 characters PostgreSQL keeps (MySQL takes
/// 64), its first 46 and a hash of the whole: two long names never end up the same.
fn index_name(table: &str, column: &str) -> String {
    short_name(format!("{table}_{column}_idx"))
}

/// `name`, or where it passes the 63 characters PostgreSQL keeps (MySQL takes 64), its first 46
/// and a hash of the whole: two long names never end up the same.
fn short_name(name: String) -> String {
    if name.len() <= 63 {
        return name;
    }
    let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    let cut = (0..=46).rev().find(|at| name.is_char_boundary(*at)).unwrap_or(0);
    format!("{}_{hash:016x}", &name[..cut])
}

impl Statements {
    pub(crate) fn new(dialect: &'static dyn Dialect, table: &'static TableDef) -> Self {
        let q = |name: &str| dialect.quote(name);
        let t = q(table.name);
        let key = q(table.key_column().name);
        let version = q(table.version_column().name);
        let all: Vec<String> = table.columns.iter().map(|c| q(c.name)).collect();
        let all_list = all.join(", ");
        let read_list =
            table.columns.iter().zip(&all).map(|(c, q)| dialect.read(q, c.ty)).collect::<Vec<_>>().join(", ");
        // What an update (checked or forced) rewrites: all but the key and the creation time.
        let created = table.column_with(ColumnRole::CreatedAt);
        let update_columns: Vec<usize> = (0..all.len()).filter(|i| *i != table.key && Some(*i) != created).collect();
        let (k, v) = (table.key, table.version);
        let binds = || Binds { dialect, table, next: 0 };

        let mut b = binds();
        let select = format!("SELECT {read_list} FROM {t} WHERE {key} = {}", b.next(k));

        let mut b = binds();
        let select_version = format!("SELECT {version} FROM {t} WHERE {key} = {}", b.next(k));
        let insert = dialect.insert_unless_exists(&t, &all_list, &binds().row(), &key);
        let mut b = binds();
        let set_bound: Vec<String> = update_columns.iter().map(|i| format!("{} = {}", all[*i], b.next(*i))).collect();
        let update = format!(
            "UPDATE {t} SET {} WHERE {key} = {} AND {version} = {}",
            set_bound.join(", "),
            b.next(k),
            b.next(v)
        );
        let set: Vec<String> = update_columns.iter().map(|i| all[*i].clone()).collect();
        let upsert = dialect.upsert(&Upsert {
            table: &t,
            columns: &all_list,
            values: &binds().row(),
            key: &key,
            version: &version,
            set: &set,
            version_max: table.version_max,
        });
        let mut b = binds();
        let delete_checked = format!("DELETE FROM {t} WHERE {key} = {} AND {version} = {}", b.next(k), b.next(v));
        let mut b = binds();
        let delete_unchecked = format!(
            "DELETE FROM {t} WHERE {key} = {} AND {}",
            b.next(k),
            dialect.valid_version(&format!("{t}.{version}"))
        );
        let for_update = |nowait| dialect.for_update(nowait).map(|lock| Arc::from(format!("{select}{lock}")));

        let mut create = format!("CREATE TABLE IF NOT EXISTS {t} (");
        for (i, c) in table.columns.iter().enumerate() {
            let sep = if i == 0 { "" } else { ", " };
            let null = if c.nullable { "" } else { " NOT NULL" };
            let pk = if i == table.key { " PRIMARY KEY" } else { "" };
            // Writing to a String cannot fail.
            let _ = write!(create, "{sep}{} {}{null}{pk}", all[i], dialect.column_type(c));
        }
        create.push(')');
        let indexes = table
            .columns
            .iter()
            .enumerate()
            .filter(|(i, c)| c.indexed && *i != table.key)
            .map(|(i, c)| {
                let name = q(&index_name(table.name, c.name));
                let columns = [(all[i].as_str(), c.ty), (key.as_str(), table.key_column().ty)];
                Arc::from(dialect.create_index(&t, &name, &columns))
            })
            .collect();

        let history = table.history.map(|def| history::HistoryStatements::new(dialect, table, def, &all, &read_list));
        Statements {
            history,
            select_for_update: for_update(false),
            select_for_update_nowait: for_update(true),
            select: select.into(),
            select_version: select_version.into(),
            insert: insert.into(),
            update: update.into(),
            update_columns,
            upsert: upsert.into(),
            delete_checked: delete_checked.into(),
            delete_unchecked: delete_unchecked.into(),
            create: create.into(),
            indexes,
            returning: dialect.returning(),
            dialect,
            table,
            read_list,
            table_name: t,
            key,
            version,
            quoted: all,
            patches: RwLock::default(),
            batches: RwLock::default(),
        }
    }

    /// How many writes one batch statement of `kind` carries, or `None` where the dialect writes
    /// a batch one row at a time.
    pub(crate) fn chunk(&self, kind: Batch) -> Option<usize> {
        let binds_per_row = match kind {
            Batch::Update => self.update_columns.len() + 2,
            Batch::Insert => self.table.columns.len(),
            Batch::Delete => 2,
        };
        self.dialect.batch_values().then(|| (MAX_BATCH_BINDS / binds_per_row.max(1)).clamp(1, MAX_BATCH_ROWS))
    }

    /// The batch statement of `kind` for `rows` rows (see [`Batch`] for its binds). Kept for a
    /// full [`chunk`](Self::chunk) (the size every large batch repeats) and for small sizes
    /// (SQLite's group commit sends those over and over); a longer last chunk is built each time,
    /// so the cache (and the connections' prepared statements) stay small.
    pub(crate) fn batch(&self, kind: Batch, rows: usize) -> Arc<str> {
        // The map only ever gains complete entries, so a poisoned lock still holds valid data.
        if let Some(sql) = self.batches.read().unwrap_or_else(PoisonError::into_inner).get(&(kind, rows)) {
            return Arc::clone(sql);
        }
        let (t, key, version) = (&self.table_name, &self.key, &self.version);
        let (k, v) = (self.table.key, self.table.version);
        let returning = self.dialect.read(key, self.table.key_column().ty);
        let mut b = Binds { dialect: self.dialect, table: self.table, next: 0 };
        let sql = match kind {
            Batch::Update => {
                let columns = &self.update_columns;
                let values: Vec<String> = (0..rows)
                    .map(|_| {
                        let mut row = vec![b.next(k)];
                        row.extend(columns.iter().map(|i| b.next(*i)));
                        row.push(b.next(v));
                        format!("({})", row.join(", "))
                    })
                    .collect();
                // Names of ours, unlike any column's or table's, so nothing is ambiguous.
                let names: Vec<String> = columns.iter().map(|i| format!("versioned_c{i}")).collect();
                let set: Vec<String> =
                    columns.iter().map(|i| format!("{} = versioned_batch.versioned_c{i}", self.quoted[*i])).collect();
                format!(
                    "WITH versioned_batch(versioned_k, {}, versioned_e) AS (VALUES {}) UPDATE {t} SET {} \
                     FROM versioned_batch WHERE {t}.{key} = versioned_batch.versioned_k \
                     AND {t}.{version} = versioned_batch.versioned_e RETURNING {returning}",
                    names.join(", "),
                    values.join(", "),
                    set.join(", "),
                )
            }
            Batch::Insert => {
                let values: Vec<String> = (0..rows).map(|_| format!("({})", b.row())).collect();
                format!(
                    "INSERT INTO {t} ({}) VALUES {} ON CONFLICT ({key}) DO NOTHING RETURNING {returning}",
                    self.quoted.join(", "),
                    values.join(", ")
                )
            }
            Batch::Delete => {
                let values: Vec<String> = (0..rows).map(|_| format!("({}, {})", b.next(k), b.next(v))).collect();
                format!(
                    "DELETE FROM {t} WHERE ({key}, {version}) IN (VALUES {}) RETURNING {returning}",
                    values.join(", ")
                )
            }
        };
        if rows > KEPT_BATCH_ROWS && Some(rows) != self.chunk(kind) {
            return sql.into();
        }
        let mut batches = self.batches.write().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(batches.entry((kind, rows)).or_insert_with(|| sql.into()))
    }

    /// `UPDATE t SET <columns>, version = ? WHERE key = ? AND version = ?` — binds: the values of
    /// `columns` in order, the new version, key, expected version. Built once per column set.
    pub(crate) fn patch(&self, columns: &[usize]) -> Arc<str> {
        // The map only ever gains complete entries, so a poisoned lock still holds valid data.
        if let Some(sql) = self.patches.read().unwrap_or_else(PoisonError::into_inner).get(columns) {
            return Arc::clone(sql);
        }
        let (t, key, version) = (&self.table_name, &self.key, &self.version);
        let (k, v) = (self.table.key, self.table.version);
        let mut b = Binds { dialect: self.dialect, table: self.table, next: 0 };
        let mut set: Vec<String> = columns.iter().map(|i| format!("{} = {}", self.quoted[*i], b.next(*i))).collect();
        set.push(format!("{version} = {}", b.next(v)));
        let sql: Arc<str> =
            format!("UPDATE {t} SET {} WHERE {key} = {} AND {version} = {}", set.join(", "), b.next(k), b.next(v))
                .into();
        let mut patches = self.patches.write().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(patches.entry(columns.to_vec()).or_insert(sql))
    }
}

#[cfg(test)]
pub(crate) mod tests {

    #[test]
    fn long_index_names_are_cut_to_what_the_databases_keep_and_stay_distinct() {
        assert_eq!(super::index_name("bugs", "status"), "bugs_status_idx");
        let long = "t".repeat(40);
        let (a, b) = (super::index_name(&long, &"c".repeat(30)), super::index_name(&long, &"c".repeat(31)));
        assert!(a.len() <= 63 && b.len() <= 63, "{a} {b}");
        assert_ne!(a, b);
    }

    use super::*;
    use crate::entity::ColumnDef;
    #[cfg(feature = "sqlite")]
    use crate::storage::sqlite::dialect::SqliteDialect;
    use crate::value::ColumnType;

    /// A table of four columns, one of them written only on insert: the fixture of the statements'
    /// tests, here and beside each dialect.
    pub(crate) static PEOPLE: TableDef = TableDef {
        name: "people",
        entity: "Person",
        columns: &[
            ColumnDef {
                name: "id",
                field: "id",
                ty: ColumnType::Int64,
                nullable: false,
                role: ColumnRole::Key,
                indexed: false,
            },
            ColumnDef {
                name: "name",
                field: "name",
                ty: ColumnType::Text,
                nullable: true,
                role: ColumnRole::Data,
                indexed: false,
            },
            ColumnDef {
                name: "created",
                field: "created",
                ty: ColumnType::Int64,
                nullable: false,
                role: ColumnRole::CreatedAt,
                indexed: false,
            },
            ColumnDef {
                name: "version",
                field: "version",
                ty: ColumnType::Int64,
                nullable: false,
                role: ColumnRole::Version,
                indexed: false,
            },
        ],
        key: 0,
        version: 3,
        version_max: 100,
        history: None,
    };

    #[cfg(feature = "sqlite")]
    #[test]
    fn checked_writes_carry_the_version_in_their_where_clause() {
        let s = Statements::new(&SqliteDialect, &PEOPLE);
        assert_eq!(&*s.update, r#"UPDATE "people" SET "name" = ?, "version" = ? WHERE "id" = ? AND "version" = ?"#);
        assert_eq!(s.update_columns, [1, 3], "an update never sets the key or the creation time");
        assert_eq!(&*s.delete_checked, r#"DELETE FROM "people" WHERE "id" = ? AND "version" = ?"#);
        assert_eq!(
            &*s.upsert,
            r#"INSERT INTO "people" ("id", "name", "created", "version") VALUES (?, ?, ?, ?) ON CONFLICT ("id") DO UPDATE SET "name" = excluded."name", "version" = "people"."version" + 1 WHERE typeof("people"."version") = 'integer' AND "people"."version" >= 0 AND "people"."version" < 100 RETURNING "version""#
        );
        assert_eq!(
            &*s.delete_unchecked,
            r#"DELETE FROM "people" WHERE "id" = ? AND typeof("people"."version") = 'integer' AND "people"."version" >= 0"#
        );
        assert_eq!(
            &*s.create,
            r#"CREATE TABLE IF NOT EXISTS "people" ("id" INTEGER NOT NULL PRIMARY KEY, "name" TEXT, "created" INTEGER NOT NULL, "version" INTEGER NOT NULL)"#
        );
        assert_eq!(
            &*s.patch(&[1]),
            r#"UPDATE "people" SET "name" = ?, "version" = ? WHERE "id" = ? AND "version" = ?"#
        );
        assert_eq!(&*s.patch(&[]), r#"UPDATE "people" SET "version" = ? WHERE "id" = ? AND "version" = ?"#);
        assert!(Arc::ptr_eq(&s.patch(&[1]), &s.patch(&[1])), "built once per column set");
    }

    #[cfg(feature = "sqlite")]
    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(SqliteDialect.quote(r#"we"ird"#), r#""we""ird""#);
    }
}
