//! The catalogue's persistence: sea-orm over SQLite (embedded default) or PostgreSQL.
//! Database errors are mapped to domain errors here; SQL never reaches the services.

mod access;
mod agents;
mod audit;
mod datasets;
mod demand_models;
mod entity;
mod gauges;
mod job_counters;
mod job_objects;
mod jobs;
mod json_rows;
mod manifest_page;
mod migration;
mod outbox;
mod policies;
mod policy_runs;
mod recommendations;
mod recorded;
mod retries;
mod schedules;
mod sites;
mod sync;
mod sync_changes;
mod tokens;
mod vanished;

use std::time::Duration;

use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction, DbBackend,
    DbErr, TransactionTrait,
};
use sea_orm_migration::MigratorTrait;

pub use gauges::{CatalogueGauges, SiteGauge};
pub use job_objects::ListedRecord;
pub use jobs::{active_job_error, JobFilter, Planned, Switch};
pub use outbox::{OutboxMessage, PendingMessage};
pub use sites::{CredentialsUpdate, SiteUsage};

use crate::error::{Error, Result};

/// Handle to the catalogue database. Cheap to clone: it wraps a connection pool.
#[derive(Clone)]
pub struct Store {
    db: DatabaseConnection,
}

impl Store {
    /// Connects and applies pending schema migrations. `url` is `sqlite://path?mode=rwc`
    /// or `postgres://...`.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self> {
        let mut options = ConnectOptions::new(url.to_owned());
        options
            .max_connections(max_connections)
            .min_connections(1)
            .connect_timeout(Duration::from_secs(10))
            .acquire_timeout(Duration::from_secs(10))
            .sqlx_logging(false)
            // A writer waits for another's commit this long before SQLite says "database
            // is locked"; sqlx's 5 s default is short when the disk is saturated by the
            // very transfers being recorded.
            .map_sqlx_sqlite_opts(|o| o.busy_timeout(Duration::from_secs(30)))
            // sqlx prepares every statement, and PostgreSQL soon settles on one generic
            // plan per statement, made while a job's objects were few. Lookups by key
            // then scanned a job's (job_id, status) index: with statistics not yet
            // refreshed, applying the reports of a 100,000-object job took 200 s instead
            // of 16. Planning each execution costs well under a millisecond.
            .map_sqlx_postgres_opts(|o| o.options([("plan_cache_mode", "force_custom_plan")]));
        let db = Database::connect(options).await.map_err(|e| {
            Error::Unavailable(format!("connecting to the database: {}", describe(&e)))
        })?;
        if db.get_database_backend() == DbBackend::Sqlite {
            // WAL lets readers proceed while a writer commits; the setting persists in
            // the database file.
            db.execute_unprepared("PRAGMA journal_mode=WAL")
                .await
                .map_err(db_error)?;
        }
        Migrator::up(&db, None)
            .await
            .map_err(|e| Error::Internal(format!("applying schema migrations: {e}")))?;
        Ok(Store { db })
    }

    /// Begins a transaction that writes. On SQLite it takes the write lock at once:
    /// a transaction begun the usual (deferred) way reads from a snapshot, and when
    /// another connection commits before its first write, SQLite refuses that write
    /// with "database is locked" without waiting. Taking the lock first makes it wait
    /// its turn (up to the busy timeout) instead. sea-orm has no `BEGIN IMMEDIATE`, so
    /// the first statement is a write that changes nothing; any write statement takes
    /// the lock whether or not it touches a row.
    async fn begin_write(&self) -> Result<DatabaseTransaction> {
        let txn = self.db.begin().await.map_err(db_error)?;
        if txn.get_database_backend() == DbBackend::Sqlite {
            txn.execute_unprepared("UPDATE seaql_migrations SET version = version WHERE 0")
                .await
                .map_err(db_error)?;
        }
        Ok(txn)
    }

    pub fn backend_name(&self) -> &'static str {
        match self.db.get_database_backend() {
            DbBackend::Sqlite => "sqlite",
            DbBackend::Postgres => "postgres",
            DbBackend::MySql => "mysql",
        }
    }

    /// Checks the database answers; used by health reporting.
    pub async fn ping(&self) -> Result<()> {
        self.db.ping().await.map_err(db_error)
    }

    pub async fn close(self) {
        if let Err(e) = self.db.close().await {
            tracing::warn!(error = %e, "closing the database pool");
        }
    }
}

use migration::Migrator;

/// Maps a database error that no caller handles specially.
fn db_error(e: DbErr) -> Error {
    match &e {
        DbErr::Conn(_) | DbErr::ConnectionAcquire(_) => {
            Error::Unavailable(format!("database unavailable: {}", describe(&e)))
        }
        _ => Error::Internal(format!("database: {}", describe(&e))),
    }
}

fn describe(e: &DbErr) -> String {
    e.to_string()
}

/// True when `e` is a unique-constraint violation, which callers turn into
/// `AlreadyExists` for the resource at hand.
fn is_unique_violation(e: &DbErr) -> bool {
    matches!(
        e.sql_err(),
        Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
    )
}

fn is_foreign_key_violation(e: &DbErr) -> bool {
    matches!(
        e.sql_err(),
        Some(sea_orm::SqlErr::ForeignKeyConstraintViolation(_))
    )
}

/// A stored value that does not parse means the row was written by something other
/// than this code: report it, never guess.
fn corrupt(table: &str, id: &str, what: impl std::fmt::Display) -> Error {
    Error::Internal(format!("corrupt {table} row {id}: {what}"))
}

fn to_i64(value: u64) -> i64 {
    // Domain validation caps counters at i64::MAX before they reach the store.
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn to_u64(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

fn json_map(map: &std::collections::BTreeMap<String, String>) -> String {
    serde_json::to_string(map).unwrap_or_else(|_| "{}".to_owned())
}

fn parse_json_map(
    table: &str,
    id: &str,
    s: &str,
) -> Result<std::collections::BTreeMap<String, String>> {
    serde_json::from_str(s).map_err(|e| corrupt(table, id, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sqlite_database_uses_wal() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
        let store = Store::connect(&url, 2).await.unwrap();
        let row = store
            .db
            .query_one(sea_orm::Statement::from_string(
                DbBackend::Sqlite,
                "PRAGMA journal_mode",
            ))
            .await
            .unwrap()
            .unwrap();
        let mode: String = row.try_get_by_index(0).unwrap();
        assert_eq!(mode, "wal");
    }

    /// A transaction that reads and then writes, while another connection commits in
    /// between, waits for it rather than failing with "database is locked".
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_writers_wait_for_each_other() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
        let store = Store::connect(&url, 4).await.unwrap();
        store
            .db
            .execute_unprepared("CREATE TABLE scratch (x INTEGER)")
            .await
            .unwrap();
        let count =
            sea_orm::Statement::from_string(DbBackend::Sqlite, "SELECT count(*) FROM scratch");

        let txn = store.begin_write().await.unwrap();
        txn.query_one(count.clone()).await.unwrap();
        let other = {
            let db = store.db.clone();
            tokio::spawn(async move {
                db.execute_unprepared("INSERT INTO scratch VALUES (1)")
                    .await
            })
        };
        tokio::time::sleep(Duration::from_millis(200)).await;
        txn.execute_unprepared("INSERT INTO scratch VALUES (2)")
            .await
            .expect("the transaction's own write goes through");
        txn.commit().await.unwrap();
        other
            .await
            .unwrap()
            .expect("the other connection's write waited its turn");

        let rows = store.db.query_one(count).await.unwrap().unwrap();
        assert_eq!(rows.try_get_by_index::<i64>(0).unwrap(), 2);
    }

    /// Every pooled PostgreSQL connection plans each execution for its parameters.
    /// Ignored (reported as skipped) unless asked for; then `FERRY_TEST_DATABASE_URL`
    /// must name an admin URL.
    #[tokio::test]
    #[ignore = "needs PostgreSQL: set FERRY_TEST_DATABASE_URL"]
    async fn postgres_connections_plan_each_statement() {
        let admin_url = std::env::var("FERRY_TEST_DATABASE_URL")
            .expect("FERRY_TEST_DATABASE_URL names the admin URL of a PostgreSQL server");
        let name = format!("ferry_test_{}", uuid::Uuid::now_v7().simple());
        let admin = sea_orm::Database::connect(&admin_url)
            .await
            .expect("connecting to FERRY_TEST_DATABASE_URL (is PostgreSQL running?)");
        admin
            .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
            .await
            .unwrap();
        let mut url = url::Url::parse(&admin_url).unwrap();
        url.set_path(&name);
        let store = Store::connect(url.as_str(), 2).await.unwrap();
        let show = sea_orm::Statement::from_string(DbBackend::Postgres, "SHOW plan_cache_mode");
        // Two at once, so that both of the pool's connections answer.
        let (a, b) = tokio::join!(store.db.query_one(show.clone()), store.db.query_one(show));
        let modes: Vec<String> = [a, b]
            .into_iter()
            .map(|row| row.unwrap().unwrap().try_get_by_index(0).unwrap())
            .collect();
        store.close().await;
        admin
            .execute_unprepared(&format!("DROP DATABASE \"{name}\" WITH (FORCE)"))
            .await
            .unwrap();
        assert_eq!(modes, ["force_custom_plan", "force_custom_plan"]);
    }
}
