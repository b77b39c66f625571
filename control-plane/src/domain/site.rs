//! Storage sites: where a site is, what it costs, how fast it answers, and the rules for
//! its settings and credentials.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use secrecy::SecretString;

use ferry_storage::SiteUri;

use super::{ids::SiteId, name::Name, tier::Tier};
use crate::error::{Error, Result};

/// A storage site as the catalogue holds it. Credentials are not part of it: they are
/// sealed separately and only their key names are known here.
#[derive(Clone, Debug, PartialEq)]
pub struct Site {
    pub id: SiteId,
    pub name: Name,
    pub uri: SiteUri,
    pub options: BTreeMap<String, String>,
    pub tier: Tier,
    pub default_storage_class: String,
    pub latency_ms: u32,
    pub prices: Prices,
    /// Bytes per second the site's agents share; `None` is unlimited.
    pub bandwidth_limit: Option<u64>,
    pub credential_keys: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Prices in US dollars, feeding the cost model.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Prices {
    pub storage_per_gb_month: f64,
    pub retrieval_per_gb: f64,
    pub egress_per_gb: f64,
    pub per_1000_requests: f64,
    pub min_storage_days: u32,
}

impl Prices {
    pub fn validate(&self) -> Result<()> {
        for (field, value) in [
            ("storage_per_gb_month", self.storage_per_gb_month),
            ("retrieval_per_gb", self.retrieval_per_gb),
            ("egress_per_gb", self.egress_per_gb),
            ("per_1000_requests", self.per_1000_requests),
        ] {
            if !value.is_finite() || value < 0.0 {
                return Err(Error::invalid(
                    field,
                    format!("must be a non-negative price, got {value}"),
                ));
            }
        }
        Ok(())
    }
}

/// The fields a new site is created from.
#[derive(Clone, Debug)]
pub struct NewSite {
    pub name: Name,
    pub uri: SiteUri,
    pub options: BTreeMap<String, String>,
    pub tier: Tier,
    pub default_storage_class: String,
    pub latency_ms: u32,
    pub prices: Prices,
    pub bandwidth_limit: Option<u64>,
}

impl NewSite {
    pub fn validate(&self) -> Result<()> {
        validate_bandwidth(self.bandwidth_limit)?;
        validate_storage_class(&self.default_storage_class)?;
        self.prices.validate().map_err(|e| e.within("prices"))
    }
}

/// Changes to a site; `None` leaves a field as it is. Name and URI are immutable: a site
/// that moves is a new site, so recorded replicas never silently point elsewhere.
#[derive(Clone, Debug, Default)]
pub struct SitePatch {
    pub options: Option<BTreeMap<String, String>>,
    pub tier: Option<Tier>,
    pub default_storage_class: Option<String>,
    pub latency_ms: Option<u32>,
    pub prices: PricesPatch,
    /// `Some(None)` lifts the limit.
    pub bandwidth_limit: Option<Option<u64>>,
    pub credentials: Option<Credentials>,
}

/// Changes to individual prices, so one price can change without restating the others.
#[derive(Clone, Copy, Debug, Default)]
pub struct PricesPatch {
    pub storage_per_gb_month: Option<f64>,
    pub retrieval_per_gb: Option<f64>,
    pub egress_per_gb: Option<f64>,
    pub per_1000_requests: Option<f64>,
    pub min_storage_days: Option<u32>,
}

impl PricesPatch {
    /// A patch that sets every price.
    pub fn all(p: Prices) -> Self {
        PricesPatch {
            storage_per_gb_month: Some(p.storage_per_gb_month),
            retrieval_per_gb: Some(p.retrieval_per_gb),
            egress_per_gb: Some(p.egress_per_gb),
            per_1000_requests: Some(p.per_1000_requests),
            min_storage_days: Some(p.min_storage_days),
        }
    }

    fn apply(&self, p: &mut Prices) {
        let PricesPatch {
            storage_per_gb_month,
            retrieval_per_gb,
            egress_per_gb,
            per_1000_requests,
            min_storage_days,
        } = *self;
        p.storage_per_gb_month = storage_per_gb_month.unwrap_or(p.storage_per_gb_month);
        p.retrieval_per_gb = retrieval_per_gb.unwrap_or(p.retrieval_per_gb);
        p.egress_per_gb = egress_per_gb.unwrap_or(p.egress_per_gb);
        p.per_1000_requests = per_1000_requests.unwrap_or(p.per_1000_requests);
        p.min_storage_days = min_storage_days.unwrap_or(p.min_storage_days);
    }
}

impl Site {
    /// Whether `path` on this site and `other_path` on `other` hold the same objects:
    /// the same backend, bucket and endpoint, and the same place inside the bucket
    /// (site roots and dataset paths joined), whatever the sites are called.
    pub fn same_location(&self, path: &str, other: &Site, other_path: &str) -> bool {
        self.same_store(other) && self.place(path) == other.place(other_path)
    }

    /// Whether `path` on this site and `other_path` on `other` share objects: the same
    /// place, or one inside the other, in the same bucket of the same backend.
    pub fn overlaps(&self, path: &str, other: &Site, other_path: &str) -> bool {
        let (a, b) = (self.place(path), other.place(other_path));
        let inside = |outer: &str, inner: &str| {
            outer.is_empty() || inner == outer || inner.starts_with(&format!("{outer}/"))
        };
        self.same_store(other) && (inside(&a, &b) || inside(&b, &a))
    }

    fn same_store(&self, other: &Site) -> bool {
        self.uri.scheme() == other.uri.scheme()
            && self.uri.bucket() == other.uri.bucket()
            && self.options.get("endpoint") == other.options.get("endpoint")
    }

    /// The site's root and `path` joined: where a dataset's objects are in the bucket.
    fn place(&self, path: &str) -> String {
        [self.uri.root(), path]
            .into_iter()
            .flat_map(|p| p.split('/'))
            .filter(|p| !p.is_empty())
            .collect::<Vec<_>>()
            .join("/")
    }

    /// Applies a patch, validating each field; the options and credentials together
    /// are checked by [`check_settings`] against the credentials the site ends with.
    pub fn apply(&mut self, patch: &SitePatch) -> Result<()> {
        if let Some(options) = &patch.options {
            self.options = options.clone();
        }
        if let Some(tier) = patch.tier {
            self.tier = tier;
        }
        if let Some(class) = &patch.default_storage_class {
            validate_storage_class(class)?;
            self.default_storage_class = class.clone();
        }
        if let Some(latency) = patch.latency_ms {
            self.latency_ms = latency;
        }
        if let Some(limit) = patch.bandwidth_limit {
            validate_bandwidth(limit)?;
            self.bandwidth_limit = limit;
        }
        let mut prices = self.prices;
        patch.prices.apply(&mut prices);
        prices.validate().map_err(|e| e.within("prices"))?;
        self.prices = prices;
        if let Some(credentials) = &patch.credentials {
            self.credential_keys = credentials.keys();
        }
        Ok(())
    }
}

/// Whether agents can reach a site so configured: the storage layer's own check of the
/// URI with its options and credentials, the one the agent builds its clients with, so
/// a site that cannot work is refused before it is stored. An error names the field:
/// `options[endpoint]`, `credentials[account_key]`, `credentials`.
pub fn check_settings(
    uri: &SiteUri,
    options: &BTreeMap<String, String>,
    credentials: &Credentials,
) -> Result<()> {
    ferry_storage::Backend::from_uri(uri, options, credentials.entries())?;
    Ok(())
}

/// Stored as a signed 64-bit integer: anything larger is refused, not clamped.
fn validate_bandwidth(limit: Option<u64>) -> Result<()> {
    match limit {
        Some(l) if l > i64::MAX as u64 => Err(Error::invalid(
            "bandwidth_limit_bytes_per_sec",
            format!("must be at most {}", i64::MAX),
        )),
        _ => Ok(()),
    }
}

fn validate_storage_class(class: &str) -> Result<()> {
    let ok = class.len() <= 64 && class.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "default_storage_class",
            format!("'{class}' must be at most 64 letters, digits or '_' (e.g. STANDARD_IA)"),
        ))
    }
}

/// A site's secrets. They never print: `Debug` shows the key names only.
#[derive(Clone, Default)]
pub struct Credentials(BTreeMap<String, SecretString>);

impl Credentials {
    pub fn new(entries: BTreeMap<String, SecretString>) -> Self {
        Credentials(entries)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn keys(&self) -> Vec<String> {
        self.0.keys().cloned().collect()
    }

    pub fn entries(&self) -> &BTreeMap<String, SecretString> {
        &self.0
    }
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s3() -> SiteUri {
        SiteUri::parse("s3://bucket/prefix").unwrap()
    }

    fn site(uri: &str, endpoint: Option<&str>) -> Site {
        let now = Utc::now();
        Site {
            id: SiteId::new(),
            name: Name::parse("name", "s").unwrap(),
            uri: SiteUri::parse(uri).unwrap(),
            options: endpoint
                .map(|e| BTreeMap::from([("endpoint".to_owned(), e.to_owned())]))
                .unwrap_or_default(),
            tier: Tier::Hot,
            default_storage_class: String::new(),
            latency_ms: 1,
            prices: Prices::default(),
            bandwidth_limit: None,
            credential_keys: Vec::new(),
            created_at: now,
            updated_at: now,
        }
    }

    #[test]
    fn a_place_inside_another_overlaps_it() {
        let a = site("s3://bucket/prefix", Some("http://s3.local"));
        let b = site("s3://bucket", Some("http://s3.local"));
        let elsewhere = site("s3://bucket", Some("http://other.local"));
        assert!(
            a.overlaps("d", &b, "prefix"),
            "the destination holds the source"
        );
        assert!(
            b.overlaps("prefix/d/e", &a, "d"),
            "the source holds the destination"
        );
        assert!(a.overlaps("d", &a, "d"));
        assert!(!a.overlaps("d", &a, "dd"), "a longer name is not inside");
        assert!(!a.overlaps("d", &elsewhere, "prefix/d"));
        let root = site("file:///srv/data", None);
        assert!(
            root.overlaps("", &root, "x"),
            "a site's root holds everything"
        );
    }

    #[test]
    fn the_same_objects_under_two_names_are_one_location() {
        let a = site("s3://bucket/prefix", Some("http://s3.local"));
        let b = site("s3://bucket", Some("http://s3.local"));
        assert!(a.same_location("d", &a, "d"));
        assert!(
            a.same_location("d/e", &b, "prefix/d/e"),
            "roots and paths join"
        );
        assert!(!a.same_location("d", &b, "d"));
        let elsewhere = site("s3://bucket/prefix", Some("http://other.local"));
        assert!(!a.same_location("d", &elsewhere, "d"), "another endpoint");
        let other_bucket = site("s3://bucket2/prefix", Some("http://s3.local"));
        assert!(!a.same_location("d", &other_bucket, "d"));
        let fs = site("file:///srv/data", None);
        assert!(fs.same_location("x", &site("file:///srv", None), "data/x"));
        assert!(!fs.same_location("x", &a, "x"));
    }

    #[test]
    fn options_are_checked_per_backend() {
        let ok = BTreeMap::from([
            ("endpoint".to_string(), "http://127.0.0.1:9000".to_string()),
            ("force_path_style".to_string(), "true".to_string()),
        ]);
        let none = Credentials::default();
        assert!(check_settings(&s3(), &ok, &none).is_ok());
        let fs = SiteUri::parse("file:///srv").unwrap();
        let err = check_settings(&fs, &ok, &none).unwrap_err();
        assert!(err.to_string().starts_with("options[endpoint]: "), "{err}");
        let bad = BTreeMap::from([("endpoint".to_string(), "not a url".to_string())]);
        assert!(check_settings(&s3(), &bad, &none).is_err());
    }

    #[test]
    fn credentials_never_print_and_are_checked() {
        let creds = Credentials::new(BTreeMap::from([
            ("access_key_id".to_string(), SecretString::from("AKIA")),
            (
                "secret_access_key".to_string(),
                SecretString::from("canary-secret"),
            ),
        ]));
        assert!(!format!("{creds:?}").contains("canary-secret"));
        let none = BTreeMap::new();
        assert!(check_settings(&s3(), &none, &creds).is_ok());
        let half = Credentials::new(BTreeMap::from([(
            "access_key_id".to_string(),
            SecretString::from("AKIA"),
        )]));
        assert!(check_settings(&s3(), &none, &half).is_err());
        let fs = SiteUri::parse("file:///srv").unwrap();
        let err = check_settings(&fs, &none, &creds).unwrap_err();
        assert!(err.to_string().starts_with("credentials["), "{err}");
    }

    #[test]
    fn negative_and_nan_prices_are_rejected() {
        let prices = Prices {
            egress_per_gb: -1.0,
            ..Prices::default()
        };
        assert!(prices
            .validate()
            .unwrap_err()
            .to_string()
            .starts_with("egress_per_gb"));
        let prices = Prices {
            storage_per_gb_month: f64::NAN,
            ..Prices::default()
        };
        assert!(prices.validate().is_err());
    }
}
