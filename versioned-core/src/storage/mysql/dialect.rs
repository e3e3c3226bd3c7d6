//! The MySQL and MariaDB [`Dialect`]s: backquoted identifiers, `ON DUPLICATE KEY UPDATE`, no
//! `RETURNING`, and the binary no-pad collation each server declares a text key with.

use crate::entity::{ColumnDef, ColumnRole};
use crate::storage::sql::history::Triggers;
use crate::storage::sql::{Dialect, Upsert};
use crate::value::ColumnType;

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
pub(crate) struct MysqlDialect;

/// [`MysqlDialect`] for MySQL 8.0.17 and later, whose binary no-pad collation is
/// `utf8mb4_0900_bin` (MariaDB has no such name, MySQL no `utf8mb4_nopad_bin`).
pub(crate) struct Mysql8Dialect;

/// What differs between the MySQL dialects: the collation that compares text keys byte for byte.
pub(crate) trait MysqlFlavor: Sync + 'static {
    /// A `utf8mb4` collation that compares byte for byte, trailing spaces included.
    const EXACT_COLLATION: &'static str;
    /// The declared type of a text key.
    const TEXT_KEY: &'static str;
    /// The declared type of another text column: compared by code point, as the key.
    const TEXT: &'static str;
    /// Whether the server takes `ADD COLUMN IF NOT EXISTS` and `CREATE OR REPLACE TRIGGER`
    /// (MariaDB; not MySQL 8).
    const IF_NOT_EXISTS: bool;
}

impl MysqlFlavor for MysqlDialect {
    const EXACT_COLLATION: &'static str = "utf8mb4_nopad_bin";
    const TEXT_KEY: &'static str = "VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin";
    const TEXT: &'static str = "LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin";
    const IF_NOT_EXISTS: bool = true;
}

impl MysqlFlavor for Mysql8Dialect {
    const EXACT_COLLATION: &'static str = "utf8mb4_0900_bin";
    const TEXT_KEY: &'static str = "VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_0900_bin";
    const TEXT: &'static str = "LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_0900_bin";
    const IF_NOT_EXISTS: bool = false;
}

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

    /// Text, bytes and JSON are indexed on their first 255 characters (InnoDB indexes no whole
    /// `LONGTEXT`); the statement has no `IF NOT EXISTS` (MySQL 8 has none): the backend takes
    /// "duplicate key name" (1061) for an index that exists.
    fn create_index(&self, table: &str, name: &str, columns: &[(&str, ColumnType)]) -> String {
        let columns: Vec<String> = columns
            .iter()
            .map(|(c, ty)| match ty {
                ColumnType::Text | ColumnType::Bytes | ColumnType::Json => format!("{c}(255)"),
                _ => (*c).to_owned(),
            })
            .collect();
        format!("CREATE INDEX {name} ON {table} ({})", columns.join(", "))
    }

    fn column_type(&self, column: &ColumnDef) -> &'static str {
        let key = column.role == ColumnRole::Key;
        match column.ty {
            ColumnType::Bool => "BOOLEAN",
            ColumnType::Int16 => "SMALLINT",
            ColumnType::Int32 => "INT",
            ColumnType::Int64 => "BIGINT",
            ColumnType::Float32 => "FLOAT",
            ColumnType::Float64 => "DOUBLE",
            ColumnType::Text if key => M::TEXT_KEY,
            ColumnType::Text => M::TEXT,
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

    fn history_id(&self) -> &'static str {
        "BIGINT AUTO_INCREMENT PRIMARY KEY"
    }

    /// UTC, as timestamps are stored.
    fn now_micros(&self) -> &'static str {
        "TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', UTC_TIMESTAMP(6))"
    }

    /// `NULL`-safe equality, negated.
    fn distinct(&self, a: &str, b: &str) -> String {
        format!("NOT ({a} <=> {b})")
    }

    fn add_column(&self, table: &str, column: &str, ty: &str) -> String {
        let if_missing = if M::IF_NOT_EXISTS { "IF NOT EXISTS " } else { "" };
        format!("ALTER TABLE {table} ADD COLUMN {if_missing}{column} {ty}")
    }

    /// Three triggers, replaced: MariaDB's `CREATE OR REPLACE TRIGGER`, or on MySQL a drop and a
    /// create (the backend takes "trigger already exists", 1359, from a create that raced
    /// another). An update's body runs only when the version changed: an upsert that refused to
    /// increment still fires the trigger.
    fn history_triggers(&self, t: &Triggers<'_>) -> Vec<String> {
        let [insert, update, delete, _] = t.names.each_ref().map(|name| self.quote(name));
        let table = t.table;
        let create = if M::IF_NOT_EXISTS { "CREATE OR REPLACE TRIGGER" } else { "CREATE TRIGGER" };
        let mut statements = Vec::new();
        for (name, event, body) in [
            (&insert, "INSERT", t.record_new.clone()),
            (&update, "UPDATE", format!("IF {} THEN {} END IF;", t.changed, t.record_new)),
            (&delete, "DELETE", t.record_old.clone()),
        ] {
            if !M::IF_NOT_EXISTS {
                statements.push(format!("DROP TRIGGER IF EXISTS {name}"));
            }
            statements.push(format!("{create} {name} AFTER {event} ON {table} FOR EACH ROW BEGIN {body} END"));
        }
        statements
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entity::TableDef;
    use crate::storage::sql::Statements;
    use crate::storage::sql::tests::PEOPLE;

    static TAGS: TableDef = TableDef {
        name: "tags",
        entity: "Tag",
        columns: &[
            ColumnDef {
                name: "id",
                field: "id",
                ty: ColumnType::Text,
                nullable: false,
                role: ColumnRole::Key,
                indexed: false,
            },
            ColumnDef {
                name: "label",
                field: "label",
                ty: ColumnType::Text,
                nullable: false,
                role: ColumnRole::Data,
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
        version: 2,
        version_max: 100,
        history: None,
    };

    #[test]
    fn a_mysql_text_key_is_declared_binary_without_padding() {
        assert_eq!(
            &*Statements::new(&MysqlDialect, &TAGS).create,
            "CREATE TABLE IF NOT EXISTS `tags` (`id` VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin \
             NOT NULL PRIMARY KEY, `label` LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin NOT NULL, `version` BIGINT NOT NULL)",
            "every text column compares by code point"
        );
        assert!(MysqlDialect::TEXT_KEY.ends_with(&format!(" COLLATE {}", MysqlDialect::EXACT_COLLATION)));
    }

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

    #[test]
    fn the_mysql_dialect_writes_mysql() {
        let s = Statements::new(&MysqlDialect, &PEOPLE);
        assert_eq!(&*s.update, "UPDATE `people` SET `name` = ?, `version` = ? WHERE `id` = ? AND `version` = ?");
        assert_eq!(&*s.insert, "INSERT INTO `people` (`id`, `name`, `created`, `version`) VALUES (?, ?, ?, ?)");
        assert_eq!(
            &*s.upsert,
            "INSERT INTO `people` (`id`, `name`, `created`, `version`) VALUES (?, ?, ?, ?) ON DUPLICATE KEY UPDATE \
             `name` = IF(`version` >= 0 AND `version` < 100, VALUES(`name`), `name`), \
             `version` = IF(`version` >= 0 AND `version` < 100, `version` + 1, `version`)"
        );
        assert_eq!(&*s.select_version, "SELECT `version` FROM `people` WHERE `id` = ?");
        assert_eq!(
            s.select_for_update.as_deref(),
            Some("SELECT `id`, `name`, `created`, `version` FROM `people` WHERE `id` = ? FOR UPDATE")
        );
        assert_eq!(
            &*s.create,
            "CREATE TABLE IF NOT EXISTS `people` (`id` BIGINT NOT NULL PRIMARY KEY, `name` LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin, `created` BIGINT NOT NULL, `version` BIGINT NOT NULL)"
        );
        assert!(!MysqlDialect.returning());
        assert_eq!(MysqlDialect.quote("we`ird"), "`we``ird`");
    }
}
