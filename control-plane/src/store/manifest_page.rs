//! Reading a replica's manifest a page at a time, as every sync run does for the agent
//! that compares its listing with it (whole datasets at once), and a migration's
//! copied objects the same way for its final pass. On SQLite a page comes back as one
//! row holding a JSON array (see `json_rows`); on a manifest of 100,000 objects the
//! driver's hand-off of each row cost about four times the query itself.

use chrono::{DateTime, NaiveDateTime, Utc};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    QueryTrait, Select,
};
use tracing::warn;

use super::{
    db_error,
    entity::{job_object, replica_object},
    json_rows,
    sync::replica_of,
    to_u64, Store,
};
use crate::{
    domain::{
        job::{Job, ObjectStatus},
        sync::{JobKind, ManifestEntry},
    },
    error::Result,
};

/// One manifest entry as the database returns it: key, size, modification time
/// (text, on SQLite), etag and xxh3.
type Row<T> = (String, i64, Option<T>, Option<String>, Option<String>);

/// The columns of a manifest page, in [`Row`]'s order.
const COLUMNS: [&str; 5] = ["key", "size", "modified", "etag", "xxh3"];

impl Store {
    /// One page of the sync job's replica's manifest (a migration's: what it copied),
    /// in key order: up to `limit` entries (key and entry) after the key `after`.
    pub async fn manifest_page(
        &self,
        job: &Job,
        after: Option<&str>,
        limit: u64,
    ) -> Result<Vec<(String, ManifestEntry)>> {
        if job.kind == JobKind::Migration {
            return self.copied_page(job, after, limit).await;
        }
        let mut query = replica_object::Entity::find()
            .select_only()
            .columns([
                replica_object::Column::Key,
                replica_object::Column::Size,
                replica_object::Column::Modified,
                replica_object::Column::Etag,
                replica_object::Column::Xxh3,
            ])
            .filter(replica_of(job))
            .order_by_asc(replica_object::Column::Key)
            .limit(limit);
        if let Some(after) = after {
            query = query.filter(replica_object::Column::Key.gt(after));
        }
        self.read_page(query).await
    }

    /// One page of what the migration `job` has copied, for its final pass to compare
    /// the source's listing with: its objects done (verified, or found in place), in
    /// key order, each as its source was listed when copied. The control plane still
    /// judges whatever the agent sends; this only spares it the pages of objects
    /// nobody touched.
    async fn copied_page(
        &self,
        job: &Job,
        after: Option<&str>,
        limit: u64,
    ) -> Result<Vec<(String, ManifestEntry)>> {
        let done = ObjectStatus::DONE.map(ObjectStatus::as_str);
        let mut query = job_object::Entity::find()
            .select_only()
            .column(job_object::Column::Key)
            .column(job_object::Column::Size)
            .column_as(job_object::Column::SourceModified, "modified")
            .column_as(job_object::Column::SourceEtag, "etag")
            .column_as(job_object::Column::SourceXxh3, "xxh3")
            .filter(job_object::Column::JobId.eq(job.id.to_string()))
            .filter(job_object::Column::Status.is_in(done))
            .order_by_asc(job_object::Column::Key)
            .limit(limit);
        if let Some(after) = after {
            query = query.filter(job_object::Column::Key.gt(after));
        }
        self.read_page(query).await
    }

    /// The entries `query` selects, as [`COLUMNS`] in key order: on SQLite as one row of
    /// JSON (see `json_rows`), whose times are text; on PostgreSQL as rows.
    async fn read_page<E: EntityTrait>(
        &self,
        query: Select<E>,
    ) -> Result<Vec<(String, ManifestEntry)>> {
        if self.db.get_database_backend() != DbBackend::Sqlite {
            let rows: Vec<Row<DateTime<Utc>>> =
                query.into_tuple().all(&self.db).await.map_err(db_error)?;
            return Ok(rows.into_iter().map(entry).collect());
        }
        let page = json_rows::as_json(query.build(DbBackend::Sqlite), &COLUMNS);
        let mut rows: Vec<Row<String>> = json_rows::read_json(&self.db, page).await?;
        // In the query's order as a rule, which the sort then only checks; the pages
        // follow each other by their last key.
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(rows
            .into_iter()
            .map(|(key, size, modified, etag, xxh3)| {
                let modified = modified.and_then(|text| modified_from_text(&key, &text));
                entry((key, size, modified, etag, xxh3))
            })
            .collect())
    }
}

/// The key and entry of `row`.
fn entry((key, size, modified, etag, xxh3): Row<DateTime<Utc>>) -> (String, ManifestEntry) {
    let entry = ManifestEntry {
        size: to_u64(size),
        modified,
        etag,
        xxh3,
    };
    (key, entry)
}

/// A modification time as SQLite holds it: RFC 3339, as sqlx writes it, or SQLite's
/// own `YYYY-MM-DD HH:MM:SS.SSS` (UTC unless it has an offset). A time in neither form
/// is read as unknown, and the object then counts as changed: copied again, and its
/// entry rewritten, rather than wrongly taken for unchanged.
fn modified_from_text(key: &str, text: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.with_timezone(&Utc));
    }
    if let Ok(t) = DateTime::parse_from_str(text, "%F %T%.f%:z") {
        return Some(t.with_timezone(&Utc));
    }
    if let Ok(t) = NaiveDateTime::parse_from_str(text, "%F %T%.f") {
        return Some(t.and_utc());
    }
    warn!(
        key,
        modified = text,
        "manifest entry's modification time unreadable; the object counts as changed"
    );
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_in_the_forms_sqlite_holds_are_read_to_the_microsecond() {
        let expected = DateTime::parse_from_rfc3339("2026-12-06T20:00:00.123456Z")
            .unwrap()
            .with_timezone(&Utc);
        for text in [
            "2026-12-06T20:00:00.123456+00:00",
            "2026-12-06T22:00:00.123456+02:00",
            "2026-12-06 20:00:00.123456+00:00",
            "2026-12-06 20:00:00.123456",
        ] {
            assert_eq!(modified_from_text("k", text), Some(expected), "{text}");
        }
        assert_eq!(modified_from_text("k", "yesterday"), None);
    }
}
