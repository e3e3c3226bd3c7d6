//! MySQL's sqlx [`Driver`]: how a [`Value`] is bound (strictly, as the column's type wants it),
//! how a column is decoded by its MySQL type, and what MySQL's errors mean (a taken key, a
//! deadlock, a lock wait that expired, a missing column or table).

use sqlx::mysql::{MySqlQueryResult, MySqlRow};
use sqlx::{MySql, Row as _, TypeInfo as _, ValueRef as _};

use crate::entity::TableDef;
use crate::error::{Error, Result};
use crate::storage::sql::driver::{self, Driver, Meaning, Query as DriverQuery};
use crate::storage::sql::rows::Bind;
use crate::value::Value;

/// MySQL's errors that mean something of their own.
fn database_error(table: Option<&'static TableDef>, db: &dyn sqlx::error::DatabaseError) -> Option<Meaning> {
    let code = db.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>().map(|e| e.number())?;
    match code {
        // ER_DUP_ENTRY: the insert found the key taken.
        1062 => table.map(|t| Meaning::Is(Error::AlreadyExists { table: t.name, key: Value::Null })),
        // ER_LOCK_DEADLOCK (on Galera also a certification failure at commit: another node's
        // transaction changed the row first); ER_UNKNOWN_COM_ERROR, Galera's "WSREP has not yet
        // prepared node for application use" (the statement was not run).
        1213 | 1047 => Some(Meaning::Retryable),
        // ER_LOCK_WAIT_TIMEOUT (MariaDB's NOWAIT too), ER_LOCK_NOWAIT (MySQL 8)
        1205 | 3572 => Some(Meaning::Is(Error::LockTimeout { table: table.map(|t| t.name), key: None })),
        // ER_BAD_FIELD_ERROR: "Unknown column 'x' in 'field list'"
        1054 => driver::missing_column(table, db.message().split('\'').nth(1)),
        // ER_NO_SUCH_TABLE
        1146 => driver::missing_table(table, db.message()),
        _ => None,
    }
}

/// A sqlx error of this backend as ours.
pub(super) fn storage_error(table: Option<&'static TableDef>, err: sqlx::Error) -> Error {
    driver::error::<MySql>(table, err)
}

impl Driver for MySql {
    fn bind<'q>(query: DriverQuery<'q, Self>, bind: Bind<'_>) -> Result<DriverQuery<'q, Self>> {
        driver::bind_strict(query, bind)
    }

    fn decode_value(row: &MySqlRow, i: usize) -> std::result::Result<Value, String> {
        let get = |e: sqlx::Error| e.to_string();
        let raw = row.try_get_raw(i).map_err(get)?;
        if raw.is_null() {
            return Ok(Value::Null);
        }
        let ty = raw.type_info();
        Ok(match ty.name() {
            "BOOLEAN" => Value::Bool(row.try_get_unchecked(i).map_err(get)?),
            "TINYINT" | "SMALLINT" | "MEDIUMINT" | "INT" | "BIGINT" => {
                Value::Int(row.try_get_unchecked(i).map_err(get)?)
            }
            "TINYINT UNSIGNED" | "SMALLINT UNSIGNED" | "MEDIUMINT UNSIGNED" | "INT UNSIGNED" | "BIGINT UNSIGNED" => {
                let v: u64 = row.try_get_unchecked(i).map_err(get)?;
                Value::Int(i64::try_from(v).map_err(|_| format!("stored integer {v} is above i64::MAX"))?)
            }
            "FLOAT" => Value::Float(row.try_get_unchecked::<f32, _>(i).map_err(get)?.into()),
            "DOUBLE" => Value::Float(row.try_get_unchecked(i).map_err(get)?),
            "CHAR" | "VARCHAR" | "TINYTEXT" | "TEXT" | "MEDIUMTEXT" | "LONGTEXT" | "JSON" | "ENUM" => {
                Value::Text(row.try_get_unchecked(i).map_err(get)?)
            }
            // A text column of a `*_bin` collation (a text key as `create_table` declares it)
            // carries the binary flag, after which sqlx names it: its character set (not
            // `binary`) is what says it holds text.
            "BINARY" | "VARBINARY" | "TINYBLOB" | "BLOB" | "MEDIUMBLOB" | "LONGBLOB"
                if <str as sqlx::Type<MySql>>::compatible(&ty) =>
            {
                Value::Text(row.try_get_unchecked(i).map_err(get)?)
            }
            "BINARY" | "VARBINARY" | "TINYBLOB" | "BLOB" | "MEDIUMBLOB" | "LONGBLOB" => {
                Value::Bytes(row.try_get_unchecked(i).map_err(get)?)
            }
            other => return Err(format!("the column's MySQL type {other} is not one versioned reads")),
        })
    }

    fn rows_affected(done: &MySqlQueryResult) -> u64 {
        done.rows_affected()
    }

    fn database_error(table: Option<&'static TableDef>, db: &dyn sqlx::error::DatabaseError) -> Option<Meaning> {
        database_error(table, db)
    }
}
