//! Raw SQL on a store's own pool, for the `SqlFixture` of each SQL test binary: a failing
//! statement panics with the statement and the error.

use sqlx::{Database, Decode, Executor, IntoArguments, Pool, Type};

/// Runs one statement.
pub async fn exec<DB: Database>(pool: &Pool<DB>, sql: &str)
where
    for<'c> &'c Pool<DB>: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
{
    let query = sqlx::query(sqlx::AssertSqlSafe(sql.to_string()));
    query.execute(pool).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// The first column, as text, of the one row `sql` selects.
pub async fn text<DB: Database>(pool: &Pool<DB>, sql: &str) -> String
where
    for<'c> &'c Pool<DB>: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    String: Type<DB> + for<'r> Decode<'r, DB>,
    usize: sqlx::ColumnIndex<DB::Row>,
{
    let query = sqlx::query_scalar::<DB, String>(sqlx::AssertSqlSafe(sql.to_string()));
    query.fetch_one(pool).await.unwrap_or_else(|e| panic!("{sql}: {e}"))
}
