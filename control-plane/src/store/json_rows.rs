//! Many rows read as one on SQLite. sqlx's SQLite driver hands every row of a result
//! from its worker thread to the caller over a channel, with a thread wake-up each:
//! on the pages of a manifest, and on the records an agent's report of 512 objects
//! reads back, those hand-offs cost several times the query itself. Wrapped by
//! [`as_json`], a query comes back as one row holding a JSON array of its rows.
//! PostgreSQL's driver has no such hand-off, and reads rows as rows.

use sea_orm::{ConnectionTrait, Statement};
use serde::de::DeserializeOwned;

use super::db_error;
use crate::error::{Error, Result};

/// The query `rows` as one row: a JSON array holding, for each of its rows, an array
/// of `columns` (names of its result columns). The array comes in no promised order:
/// a caller that needs one sorts what it read. (An ORDER BY inside the aggregate sorts
/// again, through a temporary b-tree, rows the query has sorted already.)
pub(super) fn as_json(rows: Statement, columns: &[&str]) -> Statement {
    Statement {
        sql: format!(
            "SELECT json_group_array(json_array({})) FROM ({})",
            columns.join(", "),
            rows.sql
        ),
        ..rows
    }
}

/// Runs `statement`, made by [`as_json`], and reads each of its rows as a `T` (a tuple
/// of the columns, in order).
pub(super) async fn read_json<T: DeserializeOwned>(
    conn: &impl ConnectionTrait,
    statement: Statement,
) -> Result<Vec<T>> {
    let row = conn
        .query_one(statement)
        .await
        .map_err(db_error)?
        .ok_or_else(|| Error::Internal("a JSON aggregate returned no row".into()))?;
    let rows: String = row.try_get_by_index(0).map_err(db_error)?;
    serde_json::from_str(&rows).map_err(|e| Error::Internal(format!("rows unreadable: {e}")))
}
