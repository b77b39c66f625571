//! One dataset on a fresh site of each backend, on a real server or emulator started
//! for the test on a free port: the local file system, memory, S3 on s3s-fs, Azure Blob
//! on Azurite, GCS on fake-gcs-server. An emulator that is not installed fails the test
//! with the install command (`deploy/test.sh` installs them all).

use std::{
    collections::{BTreeMap, HashMap},
    sync::atomic::{AtomicUsize, Ordering},
};

use ferry_proto::v1 as pb;
use ferry_storage::{SiteAccess, Store};
use ferry_tests::{azurite::Azurite, gcs::GcsEmulator, S3Server};
use secrecy::SecretString;

/// The backends the suite runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Fs,
    Memory,
    S3,
    Azblob,
    Gcs,
}

/// What keeps a site's server running for the test.
#[allow(dead_code)]
enum Server {
    None(Option<tempfile::TempDir>),
    S3(S3Server),
    Azurite(Azurite),
    Gcs(GcsEmulator),
}

pub struct Fixture {
    pub kind: Kind,
    pub access: SiteAccess,
    pub store: Store,
    _server: Server,
}

static UNIQUE: AtomicUsize = AtomicUsize::new(0);

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        UNIQUE.fetch_add(1, Ordering::Relaxed)
    )
}

/// A site as the control plane hands it to an agent, at dataset `datasets/ds`.
fn access(site: pb::Site, credentials: HashMap<String, String>) -> SiteAccess {
    SiteAccess {
        uri: site.uri,
        options: site.options.into_iter().collect(),
        credentials: credentials
            .into_iter()
            .map(|(k, v)| (k, SecretString::from(v)))
            .collect(),
        path: "datasets/ds".to_owned(),
    }
}

impl Fixture {
    pub async fn new(kind: Kind) -> Fixture {
        let (access, server) = match kind {
            Kind::Fs => {
                let temp = tempfile::tempdir().expect("a temp dir");
                let root = std::fs::canonicalize(temp.path()).expect("its real path");
                let access = SiteAccess {
                    uri: format!("file://{}/site root", root.display()),
                    options: BTreeMap::new(),
                    credentials: BTreeMap::new(),
                    path: "datasets/ds".to_owned(),
                };
                (access, Server::None(Some(temp)))
            }
            Kind::Memory => {
                let access = SiteAccess {
                    uri: format!("memory://{}", unique("conformance")),
                    options: BTreeMap::new(),
                    credentials: BTreeMap::new(),
                    path: "datasets/ds".to_owned(),
                };
                (access, Server::None(None))
            }
            Kind::S3 => {
                let server = S3Server::start().await;
                let bucket = unique("bucket");
                server.create_bucket(&bucket).await;
                let (site, credentials) = server.site("s3", &bucket, pb::Tier::Hot);
                (access(site, credentials), Server::S3(server))
            }
            Kind::Azblob => {
                let server = Azurite::start().await;
                let container = unique("container");
                server.create_container(&container).await;
                let (site, credentials) = server.site("az", &container, "ferry", pb::Tier::Hot);
                (access(site, credentials), Server::Azurite(server))
            }
            Kind::Gcs => {
                let server = GcsEmulator::start().await;
                let bucket = unique("bucket");
                server.create_bucket(&bucket).await;
                let (site, credentials) = server.site("gs", &bucket, "ferry", pb::Tier::Hot);
                (access(site, credentials), Server::Gcs(server))
            }
        };
        let store = Store::open(&access).unwrap_or_else(|e| panic!("opening {kind:?}: {e}"));
        Fixture {
            kind,
            access,
            store,
            _server: server,
        }
    }

    /// The same site with a wrong secret, where the backend checks one.
    pub fn with_wrong_key(&self) -> Store {
        let mut access = self.access.clone();
        let (key, wrong) = match self.kind {
            Kind::S3 => ("secret_access_key", "not-the-secret".to_owned()),
            // Base64, as Azure keys are, but not the account's.
            Kind::Azblob => (
                "account_key",
                "d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXk=".to_owned(),
            ),
            kind => panic!("{kind:?} sites take no key"),
        };
        access
            .credentials
            .insert(key.into(), SecretString::from(wrong));
        Store::open(&access).expect("a site with a wrong key still opens")
    }

    /// The S3 server of an S3 fixture.
    pub fn s3_server(&self) -> &S3Server {
        match &self._server {
            Server::S3(server) => server,
            _ => panic!("{:?} has no S3 server", self.kind),
        }
    }

    /// Whether what is written here keeps its content type, and its user metadata.
    pub fn keeps(&self) -> (bool, bool) {
        match self.kind {
            Kind::S3 | Kind::Azblob | Kind::Gcs => (true, true),
            Kind::Memory => (true, false),
            // User metadata as `user.*` extended attributes; no content type.
            Kind::Fs => (false, true),
        }
    }
}
