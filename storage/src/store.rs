//! One dataset on one site, opened: an OpenDAL [`Operator`] rooted at the dataset, so
//! object keys everywhere else are relative to it, and the typed [`Backend`] it was
//! built from, for the clients OpenDAL does not cover (S3 server-side copies and
//! journalled multipart uploads, GCS resumable uploads).

use std::{
    collections::{BTreeMap, HashMap},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, LazyLock, Mutex,
    },
    time::Duration,
};

use opendal::{
    layers::{RetryEvent, RetryInterceptor, RetryLayer, TimeoutLayer},
    services, Operator,
};
use secrecy::{ExposeSecret, SecretString};

use crate::{
    error::InvalidField,
    gcs::GcsUploads,
    settings::{AzblobSite, Backend, GcsSite, S3Site},
    uri::{normalise_path, Scheme, SiteUri},
};

/// Everything needed to reach one dataset on one site, as the control plane hands it
/// to an agent.
#[derive(Clone, Debug)]
pub struct SiteAccess {
    /// The site's URI: `file:///abs/root`, `s3://bucket/prefix`, `gs://bucket/prefix`,
    /// `azblob://container/prefix` or `memory://[name]`.
    pub uri: String,
    /// Non-secret settings (see [`crate::option_keys`]).
    pub options: BTreeMap<String, String>,
    /// Secrets (see [`crate::credential_keys`]); they never print.
    pub credentials: BTreeMap<String, SecretString>,
    /// The dataset's path below the site root, `/`-separated; empty for the root.
    pub path: String,
}

/// Attempts of one operation against a remote store: the first and four retries.
const ATTEMPTS: usize = 5;

/// A dataset on a site, ready to use.
#[derive(Clone, Debug)]
pub struct Store {
    op: Operator,
    backend: Backend,
    /// The dataset's path below the site's root, normalised.
    dataset: String,
    /// The storage class objects written here get; `None` is the service's default.
    storage_class: Option<String>,
    /// Temporary failures retried on this store, counted by the retry layer.
    retries: Arc<AtomicU64>,
    /// What names the temporary files this store's writes to a file system go through
    /// (see [`crate::fs_write`]): unique to the store unless [`Store::writing_for`]
    /// sets it.
    write_tag: Arc<str>,
}

impl Store {
    /// Opens the dataset `site.path` of the site: checks every setting as
    /// [`Backend::parse`] does and builds the operator. No network I/O: a wrong endpoint
    /// or secret shows up on the first operation. A `file://` dataset's directory is
    /// created if it is missing (OpenDAL's fs service needs its root to exist).
    ///
    /// A `memory://` site is one process-wide store per (site, dataset path): two
    /// stores opened from equal accesses see the same objects, but datasets on one
    /// memory site do not nest. Memory stores are for tests and never freed.
    pub fn open(site: &SiteAccess) -> Result<Store, InvalidField> {
        Store::open_with_class(site, None)
    }

    /// [`Store::open`], with the storage class that what is written here gets (S3 and
    /// GCS; ignored elsewhere).
    pub fn open_with_class(
        site: &SiteAccess,
        storage_class: Option<&str>,
    ) -> Result<Store, InvalidField> {
        // Registers the HTTP transport the bucket services send through. Idempotent.
        opendal::install_default();
        let uri = SiteUri::parse(&site.uri)?;
        let backend = Backend::from_uri(&uri, &site.options, &site.credentials)?;
        let dataset = normalise_path(&site.path).map_err(|r| InvalidField::new("path", r))?;
        let storage_class = storage_class
            .filter(|c| !c.is_empty())
            .filter(|_| matches!(uri.scheme(), Scheme::S3 | Scheme::Gcs))
            .map(str::to_owned);
        let retries = Arc::new(AtomicU64::new(0));
        let build = |result: opendal::Result<Operator>| {
            result.map_err(|e| {
                InvalidField::new("uri", format!("building the {} client: {e}", uri.scheme()))
            })
        };
        let root = join_root(uri.root(), &dataset);
        let op = match &backend {
            Backend::File { directory } => {
                let dir = match (directory.as_str(), dataset.is_empty()) {
                    (dir, true) => dir.to_owned(),
                    ("/", false) => format!("/{dataset}"),
                    (dir, false) => format!("{dir}/{dataset}"),
                };
                build(Operator::new(services::Fs::default().root(&dir)))?
            }
            Backend::Memory { name } => {
                let mut stores = MEMORY_STORES
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                let key = (name.clone(), dataset.clone());
                match stores.get(&key) {
                    Some(op) => op.clone(),
                    None => {
                        let op = build(Operator::new(services::Memory::default().root(&root)))?;
                        stores.insert(key, op.clone());
                        op
                    }
                }
            }
            Backend::S3(s3) => resilient(
                build(s3_operator(s3, &root, storage_class.as_deref()))?,
                &retries,
            ),
            Backend::Gcs(gcs) => resilient(
                build(gcs_operator(gcs, &root, storage_class.as_deref()))?,
                &retries,
            ),
            Backend::Azblob(az) => resilient(build(azblob_operator(az, &root))?, &retries),
        };
        Ok(Store {
            op,
            backend,
            dataset,
            storage_class,
            retries,
            write_tag: unique_tag().into(),
        })
    }

    /// The same store, naming the temporary files of its writes to a file system after
    /// `scope` (a job's id): an attempt that follows one killed mid-write writes over
    /// and renames the temporary file that attempt left.
    pub fn writing_for(mut self, scope: &str) -> Store {
        self.write_tag = scope.into();
        self
    }

    /// What names the temporary files of this store's writes to a file system.
    pub fn write_tag(&self) -> &str {
        &self.write_tag
    }

    /// The operator, rooted at the dataset.
    pub fn op(&self) -> &Operator {
        &self.op
    }

    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    pub fn scheme(&self) -> Scheme {
        self.backend.scheme()
    }

    /// The dataset's path below the site root, normalised.
    pub fn dataset(&self) -> &str {
        &self.dataset
    }

    pub fn storage_class(&self) -> Option<&str> {
        self.storage_class.as_deref()
    }

    /// Temporary failures the store retried since it was opened.
    pub fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }

    /// A printable location of `key`, like `s3://bucket/prefix/key`, for messages.
    pub fn url(&self, key: &str) -> String {
        object_url(&self.op, key)
    }

    /// The object-key prefix of the dataset inside its bucket: empty, or ending in `/`.
    /// A key relative to the dataset becomes `format!("{prefix}{key}")`.
    pub fn key_prefix(&self) -> String {
        self.op.info().root().trim_start_matches('/').to_owned()
    }

    /// The dataset's GCS resumable uploads, for a GCS site.
    pub fn gcs_uploads(&self) -> Option<GcsUploads> {
        match &self.backend {
            Backend::Gcs(site) => Some(GcsUploads::new(
                site,
                &self.key_prefix(),
                self.storage_class.clone(),
            )),
            _ => None,
        }
    }

    /// Whether both name the same objects: one backend, bucket, endpoint and place in
    /// it. A job between them can only rewrite its objects where they are.
    pub fn same_objects(&self, other: &Store) -> bool {
        let info = (self.op.info(), other.op.info());
        self.scheme() == other.scheme()
            && info.0.name() == info.1.name()
            && info.0.root() == info.1.root()
            && self.endpoint() == other.endpoint()
    }

    fn endpoint(&self) -> Option<&str> {
        match &self.backend {
            Backend::S3(s) => s.endpoint.as_deref(),
            Backend::Gcs(s) => s.endpoint.as_deref(),
            Backend::Azblob(s) => Some(&s.endpoint),
            Backend::File { .. } | Backend::Memory { .. } => None,
        }
    }
}

static MEMORY_STORES: LazyLock<Mutex<HashMap<(String, String), Operator>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

fn s3_operator(s3: &S3Site, root: &str, class: Option<&str>) -> opendal::Result<Operator> {
    let mut builder = services::S3::default()
        .bucket(&s3.bucket)
        .root(root)
        .region(&s3.region)
        // Never consult AWS_* variables, ~/.aws or the instance metadata service.
        .disable_config_load()
        .disable_ec2_metadata();
    if let Some(endpoint) = &s3.endpoint {
        builder = builder.endpoint(endpoint);
    }
    // OpenDAL sends path-style requests unless virtual-host style is enabled.
    if !s3.path_style {
        builder = builder.enable_virtual_host_style();
    }
    if let Some(class) = class {
        builder = builder.default_storage_class(class);
    }
    builder = match &s3.keys {
        Some(keys) => {
            let mut b = builder
                .access_key_id(&keys.access_key_id)
                .secret_access_key(keys.secret_access_key.expose_secret());
            if let Some(token) = &keys.session_token {
                b = b.session_token(token.expose_secret());
            }
            b
        }
        None => builder.skip_signature(),
    };
    Operator::new(builder)
}

fn gcs_operator(gcs: &GcsSite, root: &str, class: Option<&str>) -> opendal::Result<Operator> {
    let mut builder = services::Gcs::default()
        .bucket(&gcs.bucket)
        .root(root)
        // Never consult GOOGLE_* variables, well-known credential files or the VM
        // metadata server.
        .disable_config_load()
        .disable_vm_metadata();
    if let Some(endpoint) = &gcs.endpoint {
        builder = builder.endpoint(endpoint);
    }
    if let Some(class) = class {
        builder = builder.default_storage_class(class);
    }
    builder = match &gcs.credential {
        Some(credential) => builder.credential(credential.expose_secret()),
        None => builder.skip_signature(),
    };
    Operator::new(builder)
}

fn azblob_operator(az: &AzblobSite, root: &str) -> opendal::Result<Operator> {
    let mut builder = services::Azblob::default()
        .container(&az.container)
        .root(root)
        .endpoint(&az.endpoint);
    if let Some(account) = &az.account_name {
        builder = builder.account_name(account);
    }
    if let Some(key) = &az.account_key {
        builder = builder.account_key(key.expose_secret());
    }
    if let Some(token) = &az.sas_token {
        builder = builder.sas_token(token.expose_secret());
    }
    if az.account_key.is_none() && az.sas_token.is_none() {
        // Without static credentials OpenDAL would fall back to AZURE_* variables and
        // managed identity; unsigned requests keep the site self-contained.
        builder = builder.skip_signature();
    }
    Operator::new(builder)
}

/// A tag no other store of any process is likely to have.
fn unique_tag() -> String {
    use std::hash::BuildHasher;
    static OPENED: AtomicU64 = AtomicU64::new(0);
    let opened = OPENED.fetch_add(1, Ordering::Relaxed);
    let nonce = std::collections::hash_map::RandomState::new().hash_one((
        std::process::id(),
        opened,
        std::time::SystemTime::now(),
    ));
    format!("{nonce:016x}")
}

/// Bounds every remote call in time and retries the temporary failures (timeouts, 5xx,
/// throttling, connection resets) with exponential back-off and jitter. Permanent ones
/// (403, 404, invalid requests) are not retried: they surface at once, to be recorded on
/// the object.
fn resilient(op: Operator, retries: &Arc<AtomicU64>) -> Operator {
    op.layer(
        TimeoutLayer::new()
            // A metadata call (stat, list page, complete upload).
            .with_timeout(Duration::from_secs(60))
            // One read or write of a chunk or part: generous enough for a part on a slow
            // link, short enough that a stalled connection is noticed.
            .with_io_timeout(Duration::from_secs(60)),
    )
    .layer(
        RetryLayer::new()
            .with_max_times(ATTEMPTS - 1)
            .with_min_delay(Duration::from_millis(200))
            .with_max_delay(Duration::from_secs(10))
            .with_jitter()
            .with_notify(LogRetries(retries.clone())),
    )
}

/// Logs and counts each retry, so an operator sees a flaky store before a job fails on
/// it.
struct LogRetries(Arc<AtomicU64>);

impl RetryInterceptor for LogRetries {
    fn intercept(&self, event: RetryEvent<'_>) {
        self.0.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            operation = %event.op,
            attempt = event.attempt,
            retry_after_ms = event.retry_after.as_millis() as u64,
            error = %event.err,
            "temporary storage error; retrying"
        );
    }
}

/// An OpenDAL root (`/a/b/`) from a site prefix and a dataset path, both normalised.
fn join_root(prefix: &str, dataset: &str) -> String {
    match (prefix.is_empty(), dataset.is_empty()) {
        (true, true) => "/".to_owned(),
        (false, true) => format!("/{prefix}/"),
        (true, false) => format!("/{dataset}/"),
        (false, false) => format!("/{prefix}/{dataset}/"),
    }
}

/// A printable location of `key` under `op`, like `s3://bucket/prefix/key`, for error
/// messages and logs.
pub fn object_url(op: &Operator, key: &str) -> String {
    let info = op.info();
    let root = info.root();
    let root = root.trim_matches('/');
    let key = key.trim_start_matches('/');
    let path = if root.is_empty() {
        key.to_owned()
    } else {
        format!("{root}/{key}")
    };
    match info.scheme() {
        "fs" => format!("file:///{path}"),
        "memory" => format!("memory:///{path}"),
        "gcs" => format!("gs://{}/{path}", info.name()),
        scheme => format!("{scheme}://{}/{path}", info.name()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site(uri: &str, path: &str) -> SiteAccess {
        SiteAccess {
            uri: uri.to_owned(),
            options: BTreeMap::new(),
            credentials: BTreeMap::new(),
            path: path.to_owned(),
        }
    }

    #[test]
    fn a_dataset_path_cannot_leave_its_site() {
        let e = Store::open(&site("file:///tmp/ferry-site", "a/../../etc")).unwrap_err();
        assert_eq!(e.field, "path");
    }

    #[test]
    fn bucket_stores_are_rooted_at_the_dataset_and_print_their_urls() {
        let mut s = site("s3://bucket/prefix", "ds");
        s.credentials
            .insert("access_key_id".into(), SecretString::from("AKIA"));
        s.credentials.insert(
            "secret_access_key".into(),
            SecretString::from("very-secret-value"),
        );
        let store = Store::open(&s).unwrap();
        assert!(!format!("{store:?}").contains("very-secret-value"));
        assert_eq!(store.op().info().root(), "/prefix/ds/");
        assert_eq!(store.key_prefix(), "prefix/ds/");
        assert_eq!(store.url("a b/c"), "s3://bucket/prefix/ds/a b/c");

        let gcs = Store::open(&site("gs://bucket/root", "x/y")).unwrap();
        assert_eq!(gcs.url("k"), "gs://bucket/root/x/y/k");
        let mut az = site("azblob://container/p", "d");
        az.options.insert("account_name".into(), "acct".into());
        assert_eq!(
            Store::open(&az).unwrap().url("k"),
            "azblob://container/p/d/k"
        );
    }

    #[test]
    fn a_file_store_is_rooted_at_the_dataset_directory() {
        let dir = tempfile::tempdir().unwrap();
        let uri = format!("file://{}", dir.path().display());
        let store = Store::open(&site(&uri, "/nested/ds/")).unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap().join("nested/ds");
        assert!(root.is_dir(), "the dataset directory is created");
        assert_eq!(store.url("k"), format!("file://{}/k", root.display()));
    }

    #[test]
    fn the_same_objects_are_told_apart_from_others() {
        let mut a = site("s3://bucket/prefix", "d");
        a.options
            .insert("endpoint".into(), "http://s3.local".into());
        let mut b = site("s3://bucket", "prefix/d");
        b.options
            .insert("endpoint".into(), "http://s3.local".into());
        let (sa, sb) = (Store::open(&a).unwrap(), Store::open(&b).unwrap());
        assert!(sa.same_objects(&sb), "roots and paths join");
        let mut elsewhere = a.clone();
        elsewhere
            .options
            .insert("endpoint".into(), "http://other.local".into());
        assert!(!sa.same_objects(&Store::open(&elsewhere).unwrap()));
        let mut other_path = a.clone();
        other_path.path = "e".into();
        assert!(!sa.same_objects(&Store::open(&other_path).unwrap()));
    }

    #[tokio::test]
    async fn memory_sites_are_shared_per_name_and_path() {
        let a = Store::open(&site("memory://shared-test", "ds")).unwrap();
        let b = Store::open(&site("memory:///shared-test/", "/ds/")).unwrap();
        let other = Store::open(&site("memory://other-test", "ds")).unwrap();
        a.op().write("k", b"v".to_vec()).await.unwrap();
        assert_eq!(b.op().read("k").await.unwrap().to_vec(), b"v");
        assert!(other.op().stat("k").await.is_err());
    }
}
