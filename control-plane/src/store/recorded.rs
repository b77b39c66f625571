//! What applying an agent's report needs of the records of the objects it names: read
//! once per report of up to 512 objects, so on SQLite as one row of JSON (see
//! `json_rows`) rather than a row, and a hand-off from the driver's thread, each.

use std::collections::HashMap;

use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, QuerySelect, QueryTrait,
};

use super::{db_error, entity::job_object, json_rows};
use crate::{domain::ids::JobId, error::Result};

/// An object's record, as far as a report changes it.
#[derive(Debug)]
pub(super) struct Recorded {
    pub status: String,
    pub size: i64,
    pub attempts: i64,
    pub task: Option<String>,
    /// JSON of the unfinished multipart upload.
    pub upload: Option<String>,
}

/// A row of [`recorded`]'s query: the key, then [`Recorded`]'s fields in order.
type Row = (String, String, i64, i64, Option<String>, Option<String>);

const COLUMNS: [&str; 6] = ["key", "status", "size", "attempts", "task", "upload"];

/// The records of job `id` under `keys` (at most a report's: one statement), by key;
/// a key the job has no record of is absent.
pub(super) async fn recorded(
    conn: &impl ConnectionTrait,
    id: JobId,
    keys: impl IntoIterator<Item = String>,
) -> Result<HashMap<String, Recorded>> {
    let query = job_object::Entity::find()
        .select_only()
        .columns([
            job_object::Column::Key,
            job_object::Column::Status,
            job_object::Column::Size,
            job_object::Column::Attempts,
            job_object::Column::Task,
            job_object::Column::Upload,
        ])
        .filter(job_object::Column::JobId.eq(id.to_string()))
        .filter(job_object::Column::Key.is_in(keys));
    let rows: Vec<Row> = if conn.get_database_backend() == DbBackend::Sqlite {
        let statement = json_rows::as_json(query.build(DbBackend::Sqlite), &COLUMNS);
        json_rows::read_json(conn, statement).await?
    } else {
        query.into_tuple().all(conn).await.map_err(db_error)?
    };
    Ok(rows
        .into_iter()
        .map(|(key, status, size, attempts, task, upload)| {
            let record = Recorded {
                status,
                size,
                attempts,
                task,
                upload,
            };
            (key, record)
        })
        .collect())
}
