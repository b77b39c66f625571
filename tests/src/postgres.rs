//! A private PostgreSQL database per test on the server `FERRY_TEST_DATABASE_URL` names.
//!
//! Tests that use one are `#[ignore = "needs PostgreSQL: set FERRY_TEST_DATABASE_URL"]`,
//! so that without a server nextest reports them as skipped, never as passed;
//! `deploy/test.sh` runs them (`--run-ignored all`) when a server answers. Once run, they
//! fail when the variable is missing or names no reachable server.

use std::process::Command;

/// A fresh database on the server of `FERRY_TEST_DATABASE_URL`, dropped on `Drop`.
pub struct TestDatabase {
    admin_url: String,
    name: String,
    pub url: String,
}

impl TestDatabase {
    /// Creates the database; panics, saying what is missing, when
    /// `FERRY_TEST_DATABASE_URL` is unset or its server cannot be reached.
    pub fn create() -> Self {
        let admin_url = std::env::var("FERRY_TEST_DATABASE_URL")
            .ok()
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| {
                panic!(
                    "FERRY_TEST_DATABASE_URL is not set: this PostgreSQL test needs the admin \
                     URL of a server, e.g. postgres://postgres@127.0.0.1:5432/postgres \
                     (deploy/test.sh sets it when a server answers on 127.0.0.1:5432)"
                )
            });
        let name = format!("ferry_test_{}", std::process::id()) + &unique_suffix();
        psql(&admin_url, &format!("CREATE DATABASE {name}"));
        let url = replace_database(&admin_url, &name);
        TestDatabase {
            admin_url,
            name,
            url,
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .args([
                &self.admin_url,
                "-qc",
                &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
            ])
            .output();
    }
}

fn unique_suffix() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("_{nanos}")
}

fn psql(url: &str, sql: &str) {
    let out = Command::new("psql")
        .args([url, "-v", "ON_ERROR_STOP=1", "-qc", sql])
        .output()
        .expect("running psql (Debian package postgresql-client)");
    assert!(
        out.status.success(),
        "psql {sql} on the server of FERRY_TEST_DATABASE_URL (is PostgreSQL running?): {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Swaps the database name at the end of a `postgres://…/db?params` URL.
fn replace_database(url: &str, name: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let authority_end = base.find("://").map_or(0, |i| i + 3);
    let prefix = match base[authority_end..].find('/') {
        Some(slash) => &base[..authority_end + slash],
        None => base,
    };
    match query {
        Some(q) => format!("{prefix}/{name}?{q}"),
        None => format!("{prefix}/{name}"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn database_name_is_replaced() {
        assert_eq!(
            super::replace_database("postgres://u@h:5432/postgres?sslmode=disable", "x"),
            "postgres://u@h:5432/x?sslmode=disable"
        );
        assert_eq!(
            super::replace_database("postgres://u@h", "x"),
            "postgres://u@h/x"
        );
    }
}
