//! Storage sites: turns a site's URI, options and credentials plus a dataset's path into
//! an OpenDAL [`Operator`] whose root is the dataset, so object keys everywhere else in
//! the agent are relative to the dataset.
//!
//! Guarantees:
//! - Nothing is read from the environment, `~/.aws`, `~/.config/gcloud`, or a cloud
//!   metadata service: a site is exactly what its settings say. A bucket site without
//!   credentials is accessed anonymously (unsigned requests).
//! - Unknown options and credentials are refused by name, so a typo fails at build
//!   time instead of silently falling back to a default.
//! - A dataset path cannot leave its site (`..` segments are refused).

use std::{
    collections::{BTreeMap, HashMap},
    fmt,
    sync::{LazyLock, Mutex},
    time::Duration,
};

use opendal::{
    layers::{RetryEvent, RetryInterceptor, RetryLayer, TimeoutLayer},
    services, Operator,
};
use secrecy::{ExposeSecret, SecretString};

/// Everything needed to reach one dataset on one site.
#[derive(Clone, Debug)]
pub struct SiteAccess {
    /// The site's URI as Ferry stores it: `file:///abs/root`, `s3://bucket/prefix`,
    /// `gs://bucket/prefix`, `azblob://container/prefix` or `memory://[name]`.
    pub uri: String,
    /// Non-secret settings. s3: `endpoint`, `region` (default `us-east-1`),
    /// `force_path_style` (default `true`), `storage_class`; gs: `endpoint`,
    /// `storage_class`; azblob: `endpoint`, `account_name`.
    pub options: BTreeMap<String, String>,
    /// Secrets. s3: `access_key_id`, `secret_access_key`, `session_token`;
    /// gs: `credential` (base64 service-account JSON); azblob: `account_key`,
    /// `sas_token`.
    pub credentials: BTreeMap<String, SecretString>,
    /// The dataset's path below the site root, `/`-separated; empty for the root.
    pub path: String,
}

/// Why a site could not be turned into an operator.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("site uri {uri:?}: {reason}")]
    InvalidUri { uri: String, reason: String },
    #[error(
        "site uri {uri:?}: unsupported scheme {scheme:?} (expected file, s3, gs, azblob or memory)"
    )]
    UnsupportedScheme { uri: String, scheme: String },
    #[error("dataset path {path:?}: {reason}")]
    InvalidPath { path: String, reason: String },
    #[error("site {uri}: unknown {what} {name:?} for {scheme} sites")]
    UnknownSetting {
        uri: String,
        scheme: &'static str,
        what: &'static str,
        name: String,
    },
    #[error("site {uri}: option {name:?} = {value:?}: {reason}")]
    InvalidOption {
        uri: String,
        name: String,
        value: String,
        reason: String,
    },
    #[error("site {uri}: {reason}")]
    MissingSetting { uri: String, reason: String },
    #[error("site {uri}: building the {scheme} operator: {source}")]
    Build {
        uri: String,
        scheme: &'static str,
        #[source]
        source: Box<opendal::Error>,
    },
}

/// The kinds of site Ferry can reach.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    File,
    S3,
    Gcs,
    Azblob,
    Memory,
}

impl Scheme {
    /// The URI scheme as Ferry writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::File => "file",
            Scheme::S3 => "s3",
            Scheme::Gcs => "gs",
            Scheme::Azblob => "azblob",
            Scheme::Memory => "memory",
        }
    }

    fn options(self) -> &'static [&'static str] {
        match self {
            Scheme::File | Scheme::Memory => &[],
            Scheme::S3 => &["endpoint", "region", "force_path_style", "storage_class"],
            Scheme::Gcs => &["endpoint", "storage_class"],
            Scheme::Azblob => &["endpoint", "account_name"],
        }
    }

    fn credentials(self) -> &'static [&'static str] {
        match self {
            Scheme::File | Scheme::Memory => &[],
            Scheme::S3 => &["access_key_id", "secret_access_key", "session_token"],
            Scheme::Gcs => &["credential"],
            Scheme::Azblob => &["account_key", "sas_token"],
        }
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A site URI split into its parts. For `file` the location is the absolute root
/// directory; for bucket schemes it is the bucket (or container) and the prefix is the
/// site's root inside it; for `memory` the location is the optional store name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SiteUri {
    pub scheme: Scheme,
    pub location: String,
    pub prefix: String,
}

impl SiteUri {
    /// Parses a site URI. No percent-decoding: Ferry stores site URIs verbatim.
    pub fn parse(uri: &str) -> Result<SiteUri, StorageError> {
        let invalid = |reason: &str| StorageError::InvalidUri {
            uri: uri.to_owned(),
            reason: reason.to_owned(),
        };
        let (scheme, rest) = uri
            .split_once("://")
            .ok_or_else(|| invalid("expected <scheme>://..."))?;
        let scheme = match scheme {
            "file" => Scheme::File,
            "s3" => Scheme::S3,
            "gs" => Scheme::Gcs,
            "azblob" => Scheme::Azblob,
            "memory" => Scheme::Memory,
            other => {
                return Err(StorageError::UnsupportedScheme {
                    uri: uri.to_owned(),
                    scheme: other.to_owned(),
                })
            }
        };
        match scheme {
            Scheme::File => {
                if !rest.starts_with('/') {
                    return Err(invalid(
                        "a file site needs an absolute path (file:///abs/root)",
                    ));
                }
                let root = normalize_segments(rest).map_err(|reason| invalid(&reason))?;
                Ok(SiteUri {
                    scheme,
                    location: format!("/{root}"),
                    prefix: String::new(),
                })
            }
            Scheme::Memory => Ok(SiteUri {
                scheme,
                location: rest.trim_end_matches('/').to_owned(),
                prefix: String::new(),
            }),
            Scheme::S3 | Scheme::Gcs | Scheme::Azblob => {
                let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
                if bucket.is_empty() {
                    return Err(invalid("missing bucket (or container) name"));
                }
                let prefix = normalize_segments(prefix).map_err(|reason| invalid(&reason))?;
                Ok(SiteUri {
                    scheme,
                    location: bucket.to_owned(),
                    prefix,
                })
            }
        }
    }
}

/// Builds the operator for `site`, rooted at the dataset: keys passed to it are
/// relative to `<site root>/<path>`.
///
/// Building does no network I/O: a wrong endpoint or secret shows up on the first
/// operation. For a `file://` site the dataset directory is created if it is missing
/// (OpenDAL's fs service needs its root to exist).
///
/// A `memory://` site is one process-wide store per (URI, dataset path): two operators
/// built from equal `SiteAccess` values see the same objects, but datasets on one
/// memory site do not nest (OpenDAL's memory service cannot share its data between
/// roots). Memory stores are for tests and never freed.
pub fn operator(site: &SiteAccess) -> Result<Operator, StorageError> {
    // Registers the HTTP transport the bucket services send through. Idempotent.
    opendal::install_default();

    let uri = SiteUri::parse(&site.uri)?;
    check_known_settings(site, uri.scheme)?;
    let dataset = dataset_path(site)?;
    let root = join_root(&uri.prefix, &dataset);

    let build = |result: opendal::Result<Operator>| {
        result.map_err(|source| build_error(site, uri.scheme, source))
    };

    match uri.scheme {
        Scheme::File => {
            let dir = if dataset.is_empty() {
                uri.location.clone()
            } else if uri.location == "/" {
                format!("/{dataset}")
            } else {
                format!("{}/{dataset}", uri.location)
            };
            build(Operator::new(services::Fs::default().root(&dir)))
        }
        Scheme::Memory => {
            let key = (site.uri.trim_end_matches('/').to_owned(), dataset.clone());
            let mut stores = MEMORY_STORES
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if let Some(op) = stores.get(&key) {
                return Ok(op.clone());
            }
            let op = build(Operator::new(services::Memory::default().root(&root)))?;
            stores.insert(key, op.clone());
            Ok(op)
        }
        Scheme::S3 => build_s3(site, &uri, &root).map(resilient),
        Scheme::Gcs => build_gcs(site, &uri, &root).map(resilient),
        Scheme::Azblob => build_azblob(site, &uri, &root).map(resilient),
    }
}

impl SiteAccess {
    /// Whether both name the same objects: one URI, endpoint and dataset path. A job
    /// between them can only rewrite its objects where they are.
    pub fn same_objects(&self, other: &SiteAccess) -> bool {
        self.uri.trim_end_matches('/') == other.uri.trim_end_matches('/')
            && option(self, "endpoint") == option(other, "endpoint")
            && matches!(
                (dataset_path(self), dataset_path(other)),
                (Ok(a), Ok(b)) if a == b
            )
    }
}

/// The site's dataset path, normalized: `/`-separated, no empty or `.` segments.
pub(crate) fn dataset_path(site: &SiteAccess) -> Result<String, StorageError> {
    normalize_segments(&site.path).map_err(|reason| StorageError::InvalidPath {
        path: site.path.clone(),
        reason,
    })
}

/// Attempts of one operation against a remote store: the first and four retries.
const ATTEMPTS: usize = 5;

/// Bounds every remote call in time and retries the temporary failures (timeouts, 5xx,
/// throttling, connection resets) with exponential back-off and jitter. Permanent ones
/// (403, 404, invalid requests) are not retried: they surface at once, to be recorded on
/// the object.
fn resilient(op: Operator) -> Operator {
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
            .with_notify(LogRetries),
    )
}

/// Logs each retry, so an operator sees a flaky store before a job fails on it.
struct LogRetries;

impl RetryInterceptor for LogRetries {
    fn intercept(&self, event: RetryEvent<'_>) {
        tracing::warn!(
            operation = %event.op,
            attempt = event.attempt,
            retry_after_ms = event.retry_after.as_millis() as u64,
            error = %event.err,
            "temporary storage error; retrying"
        );
    }
}

static MEMORY_STORES: LazyLock<Mutex<HashMap<(String, String), Operator>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

fn build_s3(site: &SiteAccess, uri: &SiteUri, root: &str) -> Result<Operator, StorageError> {
    let mut builder = services::S3::default()
        .bucket(&uri.location)
        .root(root)
        .region(option(site, "region").unwrap_or("us-east-1"))
        // Never consult AWS_* variables, ~/.aws or the instance metadata service.
        .disable_config_load()
        .disable_ec2_metadata();
    if let Some(endpoint) = option(site, "endpoint") {
        builder = builder.endpoint(endpoint);
    }
    // OpenDAL sends path-style requests unless virtual-host style is enabled.
    if !parse_bool(site, "force_path_style", true)? {
        builder = builder.enable_virtual_host_style();
    }
    if let Some(class) = option(site, "storage_class") {
        builder = builder.default_storage_class(class);
    }
    let access_key = credential(site, "access_key_id");
    let secret_key = credential(site, "secret_access_key");
    match (access_key, secret_key) {
        (Some(ak), Some(sk)) => {
            builder = builder.access_key_id(ak).secret_access_key(sk);
            if let Some(token) = credential(site, "session_token") {
                builder = builder.session_token(token);
            }
        }
        (None, None) => {
            if credential(site, "session_token").is_some() {
                return Err(StorageError::MissingSetting {
                    uri: site.uri.clone(),
                    reason: "session_token needs access_key_id and secret_access_key".into(),
                });
            }
            builder = builder.skip_signature();
        }
        _ => {
            return Err(StorageError::MissingSetting {
                uri: site.uri.clone(),
                reason: "access_key_id and secret_access_key go together".into(),
            })
        }
    }
    Operator::new(builder).map_err(|source| build_error(site, Scheme::S3, source))
}

fn build_gcs(site: &SiteAccess, uri: &SiteUri, root: &str) -> Result<Operator, StorageError> {
    let mut builder = services::Gcs::default()
        .bucket(&uri.location)
        .root(root)
        // Never consult GOOGLE_* variables, well-known credential files or the VM
        // metadata server.
        .disable_config_load()
        .disable_vm_metadata();
    if let Some(endpoint) = option(site, "endpoint") {
        builder = builder.endpoint(endpoint);
    }
    if let Some(class) = option(site, "storage_class") {
        builder = builder.default_storage_class(class);
    }
    builder = match credential(site, "credential") {
        Some(credential) => builder.credential(credential),
        None => builder.skip_signature(),
    };
    Operator::new(builder).map_err(|source| build_error(site, Scheme::Gcs, source))
}

fn build_azblob(site: &SiteAccess, uri: &SiteUri, root: &str) -> Result<Operator, StorageError> {
    let account_name = option(site, "account_name");
    let endpoint = match (option(site, "endpoint"), account_name) {
        (Some(endpoint), _) => endpoint.to_owned(),
        (None, Some(account)) => format!("https://{account}.blob.core.windows.net"),
        (None, None) => {
            return Err(StorageError::MissingSetting {
                uri: site.uri.clone(),
                reason: "azblob sites need an endpoint or an account_name".into(),
            })
        }
    };
    let mut builder = services::Azblob::default()
        .container(&uri.location)
        .root(root)
        .endpoint(&endpoint);
    if let Some(account) = account_name {
        builder = builder.account_name(account);
    }
    let account_key = credential(site, "account_key");
    let sas_token = credential(site, "sas_token");
    if account_key.is_some() && account_name.is_none() {
        return Err(StorageError::MissingSetting {
            uri: site.uri.clone(),
            reason: "account_key needs account_name".into(),
        });
    }
    if let Some(key) = account_key {
        builder = builder.account_key(key);
    }
    if let Some(token) = sas_token {
        builder = builder.sas_token(token);
    }
    if account_key.is_none() && sas_token.is_none() {
        // Without static credentials OpenDAL would fall back to AZURE_* variables and
        // managed identity; unsigned requests keep the site self-contained.
        builder = builder.skip_signature();
    }
    Operator::new(builder).map_err(|source| build_error(site, Scheme::Azblob, source))
}

fn build_error(site: &SiteAccess, scheme: Scheme, source: opendal::Error) -> StorageError {
    StorageError::Build {
        uri: site.uri.clone(),
        scheme: scheme.as_str(),
        source: Box::new(source),
    }
}

fn check_known_settings(site: &SiteAccess, scheme: Scheme) -> Result<(), StorageError> {
    let unknown = |what: &'static str, name: &str| StorageError::UnknownSetting {
        uri: site.uri.clone(),
        scheme: scheme.as_str(),
        what,
        name: name.to_owned(),
    };
    if let Some(name) = site
        .options
        .keys()
        .find(|k| !scheme.options().contains(&k.as_str()))
    {
        return Err(unknown("option", name));
    }
    if let Some(name) = site
        .credentials
        .keys()
        .find(|k| !scheme.credentials().contains(&k.as_str()))
    {
        return Err(unknown("credential", name));
    }
    Ok(())
}

/// A non-empty option value; empty strings count as unset.
pub(crate) fn option<'a>(site: &'a SiteAccess, name: &str) -> Option<&'a str> {
    site.options
        .get(name)
        .map(String::as_str)
        .filter(|v| !v.is_empty())
}

/// A non-empty secret; empty strings count as unset.
pub(crate) fn credential<'a>(site: &'a SiteAccess, name: &str) -> Option<&'a str> {
    site.credentials
        .get(name)
        .map(|s| s.expose_secret())
        .filter(|v| !v.is_empty())
}

pub(crate) fn parse_bool(
    site: &SiteAccess,
    name: &str,
    default: bool,
) -> Result<bool, StorageError> {
    match option(site, name) {
        None => Ok(default),
        Some(v) if v.eq_ignore_ascii_case("true") || v == "1" => Ok(true),
        Some(v) if v.eq_ignore_ascii_case("false") || v == "0" => Ok(false),
        Some(v) => Err(StorageError::InvalidOption {
            uri: site.uri.clone(),
            name: name.to_owned(),
            value: v.to_owned(),
            reason: "expected true or false".into(),
        }),
    }
}

/// Joins `/`-separated segments without empty or `.` parts; refuses `..`.
fn normalize_segments(path: &str) -> Result<String, String> {
    let mut out = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => return Err("\"..\" is not allowed".to_owned()),
            s => out.push(s),
        }
    }
    Ok(out.join("/"))
}

/// An OpenDAL root (`/a/b/`) from a site prefix and a dataset path, both normalized.
pub(crate) fn join_root(prefix: &str, dataset: &str) -> String {
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
    fn parses_each_scheme() {
        assert_eq!(
            SiteUri::parse("s3://bucket/some/prefix/").unwrap(),
            SiteUri {
                scheme: Scheme::S3,
                location: "bucket".into(),
                prefix: "some/prefix".into()
            }
        );
        assert_eq!(
            SiteUri::parse("file:///srv//data/").unwrap(),
            SiteUri {
                scheme: Scheme::File,
                location: "/srv/data".into(),
                prefix: String::new()
            }
        );
        assert_eq!(SiteUri::parse("gs://b").unwrap().prefix, "");
        assert_eq!(
            SiteUri::parse("azblob://c/p").unwrap().scheme,
            Scheme::Azblob
        );
        assert_eq!(SiteUri::parse("memory://").unwrap().location, "");
    }

    #[test]
    fn refuses_bad_uris_and_paths() {
        assert!(matches!(
            SiteUri::parse("ftp://x"),
            Err(StorageError::UnsupportedScheme { .. })
        ));
        assert!(matches!(
            SiteUri::parse("file://relative/dir"),
            Err(StorageError::InvalidUri { .. })
        ));
        assert!(matches!(
            SiteUri::parse("s3:///prefix"),
            Err(StorageError::InvalidUri { .. })
        ));
        assert!(matches!(
            SiteUri::parse("no-scheme"),
            Err(StorageError::InvalidUri { .. })
        ));
        let escaped = operator(&site("file:///tmp/ferry-site", "a/../../etc"));
        assert!(
            matches!(escaped, Err(StorageError::InvalidPath { .. })),
            "{escaped:?}"
        );
    }

    #[test]
    fn refuses_unknown_settings_by_name() {
        let mut s = site("s3://bucket", "");
        s.options.insert("endpiont".into(), "http://x".into());
        let err = operator(&s).unwrap_err();
        assert!(err.to_string().contains("\"endpiont\""), "{err}");

        let mut s = site("file:///tmp", "");
        s.credentials
            .insert("access_key_id".into(), SecretString::from("x"));
        let err = operator(&s).unwrap_err();
        assert!(matches!(
            err,
            StorageError::UnknownSetting {
                what: "credential",
                ..
            }
        ));
    }

    #[test]
    fn s3_credentials_go_together_and_never_print() {
        let mut s = site("s3://bucket/prefix", "ds");
        s.credentials
            .insert("access_key_id".into(), SecretString::from("AKIA-ONLY"));
        assert!(matches!(
            operator(&s),
            Err(StorageError::MissingSetting { .. })
        ));
        s.credentials.insert(
            "secret_access_key".into(),
            SecretString::from("very-secret-value"),
        );
        assert!(!format!("{s:?}").contains("very-secret-value"));
        let op = operator(&s).unwrap();
        assert_eq!(op.info().root(), "/prefix/ds/");
        assert_eq!(object_url(&op, "a b/c"), "s3://bucket/prefix/ds/a b/c");
    }

    #[test]
    fn force_path_style_must_be_a_boolean() {
        let mut s = site("s3://bucket", "");
        s.options.insert("force_path_style".into(), "maybe".into());
        assert!(matches!(
            operator(&s),
            Err(StorageError::InvalidOption { .. })
        ));
        s.options.insert("force_path_style".into(), "false".into());
        assert!(operator(&s).is_ok());
    }

    #[test]
    fn azblob_needs_an_endpoint_or_account() {
        assert!(matches!(
            operator(&site("azblob://container", "")),
            Err(StorageError::MissingSetting { .. })
        ));
        let mut s = site("azblob://container/p", "d");
        s.options.insert("account_name".into(), "acct".into());
        let op = operator(&s).unwrap();
        assert_eq!(object_url(&op, "k"), "azblob://container/p/d/k");
    }

    #[test]
    fn gcs_urls_use_the_gs_scheme() {
        let op = operator(&site("gs://bucket/root", "x/y")).unwrap();
        assert_eq!(object_url(&op, "k"), "gs://bucket/root/x/y/k");
    }

    #[test]
    fn file_operator_is_rooted_at_the_dataset() {
        let dir = tempfile::tempdir().unwrap();
        let uri = format!("file://{}", dir.path().display());
        let op = operator(&site(&uri, "/nested/ds/")).unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap().join("nested/ds");
        assert!(root.is_dir(), "the dataset directory is created");
        assert_eq!(object_url(&op, "k"), format!("file://{}/k", root.display()));
    }

    #[tokio::test]
    async fn memory_sites_are_shared_per_uri_and_path() {
        let a = operator(&site("memory://shared-test", "ds")).unwrap();
        let b = operator(&site("memory://shared-test/", "/ds/")).unwrap();
        let other = operator(&site("memory://other-test", "ds")).unwrap();
        a.write("k", b"v".to_vec()).await.unwrap();
        assert_eq!(b.read("k").await.unwrap().to_vec(), b"v");
        assert!(other.stat("k").await.is_err());
    }
}
