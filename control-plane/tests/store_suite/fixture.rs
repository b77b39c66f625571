//! The suite's fixture: a `Catalogue` over a fresh database of one backend, torn down
//! after the test whether it passed or not, and builders for the requests tests send.

use std::{collections::BTreeMap, fmt::Debug, path::PathBuf, sync::Arc};

use ferry_control_plane::{
    clock::SharedClock,
    domain::{
        dataset::{Dataset, DatasetPath, NewDataset},
        labels::Labels,
        name::{Name, Ref},
        page::{Page, PageRequest},
        policy::Policy,
        site::{Credentials, NewSite, Prices, Site},
        tier::Tier,
    },
    error::{Error, Result},
    service::Catalogue,
    store::Store,
    vault::Vault,
};
use sea_orm::{ConnectionTrait, Database};
use secrecy::SecretString;
use tempfile::TempDir;

/// Admin URL of a PostgreSQL server, which the (ignored by default) postgres variants
/// need.
const DATABASE_URL_VAR: &str = "FERRY_TEST_DATABASE_URL";

/// Enough connections for the concurrency test's eight writers.
const MAX_CONNECTIONS: u32 = 8;

pub struct Fixture {
    pub catalogue: Catalogue,
    url: String,
    key_file: PathBuf,
    postgres: Option<PgDatabase>,
    _dir: TempDir,
}

/// A database created on the admin server for one test.
struct PgDatabase {
    admin_url: String,
    name: String,
}

impl Fixture {
    /// A catalogue over a new SQLite file in a temporary directory.
    pub async fn sqlite() -> Fixture {
        let dir = tempfile::tempdir().expect("creating a temporary directory");
        let url = format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("ferry.db").display()
        );
        Fixture::open(dir, url, None).await
    }

    /// A catalogue over a new PostgreSQL database on the server `FERRY_TEST_DATABASE_URL`
    /// names; panics, saying what is missing, when it is unset or unreachable.
    pub async fn postgres() -> Fixture {
        let admin_url = std::env::var(DATABASE_URL_VAR)
            .ok()
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| {
                panic!(
                    "{DATABASE_URL_VAR} is not set: the PostgreSQL cases need the admin URL of \
                     a server, e.g. postgres://postgres@127.0.0.1:5432/postgres"
                )
            });
        let name = format!("ferry_test_{}", uuid::Uuid::now_v7().simple());
        let admin = Database::connect(&admin_url).await.unwrap_or_else(|e| {
            panic!("connecting to the server of {DATABASE_URL_VAR} (is PostgreSQL running?): {e}")
        });
        admin
            .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
            .await
            .expect("creating the test database");
        admin.close().await.expect("closing the admin connection");
        let mut url = url::Url::parse(&admin_url).expect("FERRY_TEST_DATABASE_URL is a URL");
        url.set_path(&name);
        let dir = tempfile::tempdir().expect("creating a temporary directory");
        let database = PgDatabase { admin_url, name };
        Fixture::open(dir, url.to_string(), Some(database)).await
    }

    async fn open(dir: TempDir, url: String, postgres: Option<PgDatabase>) -> Fixture {
        let key_file = dir.path().join("master.key");
        let catalogue = connect(&url, &key_file).await;
        let expected = if postgres.is_some() {
            "postgres"
        } else {
            "sqlite"
        };
        assert_eq!(
            catalogue.store().backend_name(),
            expected,
            "the store's backend"
        );
        Fixture {
            catalogue,
            url,
            key_file,
            postgres,
            _dir: dir,
        }
    }

    pub fn store(&self) -> &Store {
        self.catalogue.store()
    }

    /// A vault over the fixture's master key file, as the control plane loads it.
    pub fn vault(&self) -> Vault {
        Vault::load(None, &self.key_file).expect("loading the master key file")
    }

    /// Closes the store and connects a new one (and vault) to the same database.
    pub async fn reopen(&mut self) {
        self.store().clone().close().await;
        self.catalogue = connect(&self.url, &self.key_file).await;
    }

    /// Closes the store, drops the PostgreSQL database, then re-raises the test's panic.
    pub async fn finish(self, outcome: std::thread::Result<()>) {
        let Fixture {
            catalogue,
            postgres,
            _dir,
            ..
        } = self;
        catalogue.store().clone().close().await;
        drop(catalogue);
        if let Some(database) = postgres {
            if let Err(e) = database.drop().await {
                // A failed test's own panic says more than the clean-up's.
                if outcome.is_ok() {
                    panic!("dropping test database {}: {e}", database.name);
                }
                eprintln!("dropping test database {}: {e}", database.name);
            }
        }
        if let Err(panic) = outcome {
            std::panic::resume_unwind(panic);
        }
    }
}

impl PgDatabase {
    async fn drop(&self) -> Result<(), sea_orm::DbErr> {
        let admin = Database::connect(&self.admin_url).await?;
        admin
            .execute_unprepared(&format!("DROP DATABASE \"{}\" WITH (FORCE)", self.name))
            .await?;
        admin.close().await
    }
}

async fn connect(url: &str, key_file: &std::path::Path) -> Catalogue {
    let store = Store::connect(url, MAX_CONNECTIONS)
        .await
        .expect("connecting the store");
    let vault = Vault::load(None, key_file).expect("loading the master key file");
    Catalogue::new(store, Arc::new(vault), SharedClock::system())
}

// Builders of requests.

pub fn name(s: &str) -> Name {
    Name::parse("name", s).expect("a valid name")
}

pub fn by_name<Id>(s: &str) -> Ref<Id> {
    Ref::Name(name(s))
}

pub fn labels(pairs: &[(&str, &str)]) -> Labels {
    let map: BTreeMap<String, String> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    Labels::parse("labels", &map).expect("valid labels")
}

pub fn options(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

pub fn credentials(pairs: &[(&str, &str)]) -> Credentials {
    Credentials::new(
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), SecretString::from(*v)))
            .collect(),
    )
}

pub fn prices() -> Prices {
    Prices {
        storage_per_gb_month: 0.023,
        retrieval_per_gb: 0.01,
        egress_per_gb: 0.09,
        per_1000_requests: 0.005,
        min_storage_days: 30,
    }
}

pub fn new_site(site: &str, uri: &str, tier: Tier) -> NewSite {
    NewSite {
        name: name(site),
        uri: ferry_storage::SiteUri::parse(uri).expect("a valid site URI"),
        options: BTreeMap::new(),
        tier,
        default_storage_class: "STANDARD".to_owned(),
        latency_ms: 20,
        prices: prices(),
        bandwidth_limit: Some(250_000_000),
    }
}

/// Creates a site without credentials.
pub async fn create_site(catalogue: &Catalogue, site: &str, uri: &str, tier: Tier) -> Site {
    catalogue
        .create_site(new_site(site, uri, tier), Credentials::default())
        .await
        .unwrap_or_else(|e| panic!("creating site {site}: {e}"))
}

pub fn new_dataset(dataset: &str, site: &str, path: &str, pairs: &[(&str, &str)]) -> NewDataset {
    NewDataset {
        name: name(dataset),
        site: by_name(site),
        path: DatasetPath::parse("path", path).expect("a valid dataset path"),
        current_tier: None,
        latency_slo_ms: Some(250),
        size_bytes: 5 << 30,
        object_count: 1200,
        owner: "alice".to_owned(),
        labels: labels(pairs),
    }
}

pub async fn create_dataset(catalogue: &Catalogue, new: NewDataset) -> Dataset {
    let dataset = new.name.clone();
    catalogue
        .create_dataset(new)
        .await
        .unwrap_or_else(|e| panic!("creating dataset {dataset}: {e}"))
}

pub fn first_page() -> PageRequest {
    PageRequest::parse(0, "").expect("the default page")
}

pub fn site_names(page: &Page<Site>) -> Vec<String> {
    page.items.iter().map(|s| s.name.to_string()).collect()
}

pub fn dataset_names(page: &Page<Dataset>) -> Vec<String> {
    page.items.iter().map(|d| d.name.to_string()).collect()
}

pub fn policy_names(page: &Page<Policy>) -> Vec<String> {
    page.items.iter().map(|p| p.name.to_string()).collect()
}

// Expected errors: each returns what the test goes on to check.

/// The reason of an `InvalidArgument` on exactly `expected_field`.
#[track_caller]
pub fn invalid_argument<T: Debug>(result: Result<T>, expected_field: &str) -> String {
    match result {
        Err(Error::InvalidArgument { field, reason }) => {
            assert_eq!(field, expected_field, "wrong field; reason: {reason}");
            reason
        }
        other => panic!("expected InvalidArgument on {expected_field}, got {other:?}"),
    }
}

/// The kind and reference of a `NotFound`.
#[track_caller]
pub fn not_found<T: Debug>(result: Result<T>) -> (&'static str, String) {
    match result {
        Err(Error::NotFound { kind, id }) => (kind, id),
        other => panic!("expected NotFound, got {other:?}"),
    }
}

#[track_caller]
pub fn already_exists<T: Debug>(result: Result<T>) -> String {
    match result {
        Err(Error::AlreadyExists(message)) => message,
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
}

#[track_caller]
pub fn failed_precondition<T: Debug>(result: Result<T>) -> String {
    match result {
        Err(Error::FailedPrecondition(message)) => message,
        other => panic!("expected FailedPrecondition, got {other:?}"),
    }
}
