//! A site's settings: which options and credentials each scheme takes, the rules they
//! follow, and the typed [`Backend`] they become. The control plane checks a site with
//! [`Backend::parse`] before it stores it, and the agent builds its clients from the
//! same [`Backend`], so a site that cannot work is refused when it is created rather
//! than when a migration starts.
//!
//! Guarantees: unknown options and credentials are refused by name (a typo never falls
//! back to a default); nothing is read from the environment, `~/.aws`,
//! `~/.config/gcloud` or a cloud metadata service, so a site is exactly what its
//! settings say; a bucket site without credentials is reached anonymously.

use std::collections::BTreeMap;

use base64::Engine as _;
use secrecy::{ExposeSecret, SecretString};

use crate::{
    error::InvalidField,
    uri::{Scheme, SiteUri},
};

/// The region an S3 site without one is signed for.
pub const DEFAULT_S3_REGION: &str = "us-east-1";

/// Non-secret settings a site of `scheme` accepts.
pub fn option_keys(scheme: Scheme) -> &'static [&'static str] {
    match scheme {
        Scheme::File | Scheme::Memory => &[],
        Scheme::S3 => &["endpoint", "region", "force_path_style"],
        Scheme::Gcs => &["endpoint"],
        Scheme::Azblob => &["endpoint", "account_name"],
    }
}

/// Credential entries a site of `scheme` accepts.
pub fn credential_keys(scheme: Scheme) -> &'static [&'static str] {
    match scheme {
        Scheme::File | Scheme::Memory => &[],
        Scheme::S3 => &["access_key_id", "secret_access_key", "session_token"],
        Scheme::Gcs => &["credential"],
        Scheme::Azblob => &["account_key", "sas_token"],
    }
}

/// Where a site is and how to reach it, checked and typed.
#[derive(Clone, Debug)]
pub enum Backend {
    /// A local directory: `/`-rooted, absolute.
    File {
        directory: String,
    },
    /// A process-wide in-memory store named `name` (empty for the default one).
    Memory {
        name: String,
    },
    S3(S3Site),
    Gcs(GcsSite),
    Azblob(AzblobSite),
}

/// An S3 bucket (AWS or compatible).
#[derive(Clone, Debug)]
pub struct S3Site {
    pub bucket: String,
    /// The site's root in the bucket, normalised; empty for the bucket's root.
    pub prefix: String,
    /// `None` is AWS's regional endpoint.
    pub endpoint: Option<String>,
    pub region: String,
    /// Path-style requests (`endpoint/bucket/key`); the default, since most
    /// S3-compatible services want it. `false` sends virtual-host style.
    pub path_style: bool,
    /// `None`: unsigned (anonymous) requests.
    pub keys: Option<S3Keys>,
}

#[derive(Clone, Debug)]
pub struct S3Keys {
    pub access_key_id: String,
    pub secret_access_key: SecretString,
    pub session_token: Option<SecretString>,
}

/// A Google Cloud Storage bucket.
#[derive(Clone, Debug)]
pub struct GcsSite {
    pub bucket: String,
    pub prefix: String,
    /// `None` is `https://storage.googleapis.com`.
    pub endpoint: Option<String>,
    /// A service account's JSON key, base64-encoded as OpenDAL takes it; `None`:
    /// anonymous requests.
    pub credential: Option<SecretString>,
}

/// An Azure Blob Storage container.
#[derive(Clone, Debug)]
pub struct AzblobSite {
    pub container: String,
    pub prefix: String,
    /// The blob endpoint: the option, else `https://<account_name>.blob.core.windows.net`.
    pub endpoint: String,
    pub account_name: Option<String>,
    pub account_key: Option<SecretString>,
    pub sas_token: Option<SecretString>,
}

/// The Google Cloud Storage endpoint a site without one uses.
pub const DEFAULT_GCS_ENDPOINT: &str = "https://storage.googleapis.com";

impl Backend {
    /// Checks a site's URI, options and credentials together and types them. An error
    /// names the field: `uri`, `options[<key>]`, `credentials[<key>]`.
    pub fn parse(
        uri: &str,
        options: &BTreeMap<String, String>,
        credentials: &BTreeMap<String, SecretString>,
    ) -> Result<Backend, InvalidField> {
        let uri = SiteUri::parse(uri)?;
        Backend::from_uri(&uri, options, credentials)
    }

    /// [`Backend::parse`] for a URI parsed already.
    pub fn from_uri(
        uri: &SiteUri,
        options: &BTreeMap<String, String>,
        credentials: &BTreeMap<String, SecretString>,
    ) -> Result<Backend, InvalidField> {
        let settings = Settings::check(uri.scheme(), options, credentials)?;
        let bucket = || uri.bucket().unwrap_or_default().to_owned();
        let prefix = uri.root().to_owned();
        Ok(match uri.scheme() {
            Scheme::File => Backend::File {
                directory: format!("/{}", uri.root()),
            },
            Scheme::Memory => Backend::Memory {
                name: uri.root().to_owned(),
            },
            Scheme::S3 => Backend::S3(S3Site {
                bucket: bucket(),
                prefix,
                endpoint: settings.option("endpoint").map(str::to_owned),
                region: settings
                    .option("region")
                    .unwrap_or(DEFAULT_S3_REGION)
                    .to_owned(),
                path_style: settings.option("force_path_style") != Some("false"),
                keys: settings.s3_keys()?,
            }),
            Scheme::Gcs => Backend::Gcs(GcsSite {
                bucket: bucket(),
                prefix,
                endpoint: settings.option("endpoint").map(str::to_owned),
                credential: settings.gcs_credential()?,
            }),
            Scheme::Azblob => Backend::Azblob(settings.azblob(bucket(), prefix)?),
        })
    }

    pub fn scheme(&self) -> Scheme {
        match self {
            Backend::File { .. } => Scheme::File,
            Backend::Memory { .. } => Scheme::Memory,
            Backend::S3(_) => Scheme::S3,
            Backend::Gcs(_) => Scheme::Gcs,
            Backend::Azblob(_) => Scheme::Azblob,
        }
    }
}

/// A site's options and credentials, checked key by key against its scheme.
struct Settings<'a> {
    options: &'a BTreeMap<String, String>,
    credentials: &'a BTreeMap<String, SecretString>,
}

impl<'a> Settings<'a> {
    fn check(
        scheme: Scheme,
        options: &'a BTreeMap<String, String>,
        credentials: &'a BTreeMap<String, SecretString>,
    ) -> Result<Self, InvalidField> {
        let expected = |allowed: &[&str], what: &str| {
            if allowed.is_empty() {
                format!("{scheme}:// sites take no {what}")
            } else {
                format!("expected one of {}", allowed.join(", "))
            }
        };
        let allowed = option_keys(scheme);
        for (key, value) in options {
            let field = format!("options[{key}]");
            if !allowed.contains(&key.as_str()) {
                return Err(InvalidField::new(
                    field,
                    format!(
                        "unknown option for a {scheme}:// site; {}",
                        expected(allowed, "options")
                    ),
                ));
            }
            if value.is_empty() {
                return Err(InvalidField::new(field, "must not be empty"));
            }
            match key.as_str() {
                "endpoint" => check_endpoint(value).map_err(|r| InvalidField::new(field, r))?,
                "region" => check_region(value).map_err(|r| InvalidField::new(field, r))?,
                "account_name" => {
                    check_account_name(value).map_err(|r| InvalidField::new(field, r))?
                }
                "force_path_style" if !matches!(value.as_str(), "true" | "false") => {
                    return Err(InvalidField::new(
                        field,
                        format!("must be true or false, got '{value}'"),
                    ));
                }
                _ => {}
            }
        }
        let allowed = credential_keys(scheme);
        for (key, value) in credentials {
            let field = format!("credentials[{key}]");
            if !allowed.contains(&key.as_str()) {
                return Err(InvalidField::new(
                    field,
                    format!("unknown credential; {}", expected(allowed, "credentials")),
                ));
            }
            if value.expose_secret().is_empty() {
                return Err(InvalidField::new(field, "must not be empty"));
            }
        }
        Ok(Settings {
            options,
            credentials,
        })
    }

    fn option(&self, key: &str) -> Option<&'a str> {
        self.options.get(key).map(String::as_str)
    }

    fn credential(&self, key: &str) -> Option<&'a SecretString> {
        self.credentials.get(key)
    }

    fn s3_keys(&self) -> Result<Option<S3Keys>, InvalidField> {
        let access = self.credential("access_key_id");
        let secret = self.credential("secret_access_key");
        let token = self.credential("session_token");
        match (access, secret) {
            (Some(access), Some(secret)) => Ok(Some(S3Keys {
                access_key_id: access.expose_secret().to_owned(),
                secret_access_key: secret.clone(),
                session_token: token.cloned(),
            })),
            (None, None) if token.is_some() => Err(InvalidField::new(
                "credentials[session_token]",
                "needs access_key_id and secret_access_key",
            )),
            (None, None) => Ok(None),
            _ => Err(InvalidField::new(
                "credentials",
                "access_key_id and secret_access_key must be given together",
            )),
        }
    }

    /// The service-account key, which must be base64 of a JSON object: OpenDAL would
    /// otherwise drop an unreadable one without a word and send anonymous requests.
    fn gcs_credential(&self) -> Result<Option<SecretString>, InvalidField> {
        let Some(credential) = self.credential("credential") else {
            return Ok(None);
        };
        let field = "credentials[credential]";
        let json = base64::engine::general_purpose::STANDARD
            .decode(credential.expose_secret().trim())
            .map_err(|_| {
                InvalidField::new(field, "must be a service-account JSON key, base64-encoded")
            })?;
        match serde_json::from_slice::<serde_json::Value>(&json) {
            Ok(serde_json::Value::Object(key)) if key.contains_key("type") => {
                Ok(Some(credential.clone()))
            }
            _ => Err(InvalidField::new(
                field,
                "must be a service-account JSON key (an object with a \"type\"), base64-encoded",
            )),
        }
    }

    fn azblob(&self, container: String, prefix: String) -> Result<AzblobSite, InvalidField> {
        let account_name = self.option("account_name").map(str::to_owned);
        let endpoint = match (self.option("endpoint"), &account_name) {
            (Some(endpoint), _) => endpoint.trim_end_matches('/').to_owned(),
            (None, Some(account)) => format!("https://{account}.blob.core.windows.net"),
            (None, None) => {
                return Err(InvalidField::new(
                    "options",
                    "azblob sites need an endpoint or an account_name",
                ))
            }
        };
        let account_key = self.credential("account_key").cloned();
        if let Some(key) = &account_key {
            if account_name.is_none() {
                return Err(InvalidField::new(
                    "credentials[account_key]",
                    "needs the option account_name",
                ));
            }
            if base64::engine::general_purpose::STANDARD
                .decode(key.expose_secret().trim())
                .is_err()
            {
                return Err(InvalidField::new(
                    "credentials[account_key]",
                    "must be the account's base64 access key",
                ));
            }
        }
        Ok(AzblobSite {
            container,
            prefix,
            endpoint,
            account_name,
            account_key,
            sas_token: self.credential("sas_token").cloned(),
        })
    }
}

fn check_endpoint(value: &str) -> Result<(), String> {
    let ok = url::Url::parse(value)
        .map(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
        .unwrap_or(false);
    if ok {
        Ok(())
    } else {
        Err(format!("'{value}' is not an http(s) URL"))
    }
}

/// Without an endpoint, OpenDAL sends S3 requests to `https://s3.{region}.amazonaws.com`:
/// a region holding `/`, `@` or `:` would name another host, which would then receive
/// the site's access key id and session token. AWS's regions, and those S3-compatible
/// services take, are letters, digits, '-' and '_'.
fn check_region(value: &str) -> Result<(), String> {
    let ok = value.len() <= 64
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "'{value}' must be at most 64 letters, digits, '-' or '_' (e.g. eu-west-1)"
        ))
    }
}

/// Without an endpoint, the account name becomes the host
/// `{account}.blob.core.windows.net`, which receives the SAS token: Azure's own rule for
/// the name (3 to 24 lowercase letters and digits) keeps it one label of that host.
fn check_account_name(value: &str) -> Result<(), String> {
    let ok = (3..=24).contains(&value.len())
        && value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "'{value}' is not an Azure storage account name (3 to 24 lowercase letters and digits)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn secrets(pairs: &[(&str, &str)]) -> BTreeMap<String, SecretString> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), SecretString::from(v.to_string())))
            .collect()
    }

    fn refused(uri: &str, o: &[(&str, &str)], c: &[(&str, &str)]) -> InvalidField {
        Backend::parse(uri, &options(o), &secrets(c)).unwrap_err()
    }

    #[test]
    fn options_are_checked_per_scheme_and_named() {
        let ok = options(&[
            ("endpoint", "http://127.0.0.1:9000"),
            ("force_path_style", "true"),
            ("region", "eu-west-1"),
        ]);
        let Backend::S3(s3) = Backend::parse("s3://bucket/p", &ok, &BTreeMap::new()).unwrap()
        else {
            panic!("an s3 site")
        };
        assert_eq!((s3.region.as_str(), s3.path_style), ("eu-west-1", true));
        assert!(s3.keys.is_none());

        let e = refused("file:///srv", &[("endpoint", "http://x")], &[]);
        assert_eq!(e.field, "options[endpoint]");
        assert!(e.reason.contains("file:// sites take no options"), "{e}");
        let e = refused("s3://bucket", &[("endpiont", "http://x")], &[]);
        assert_eq!(e.field, "options[endpiont]");
        let e = refused("s3://bucket", &[("endpoint", "not a url")], &[]);
        assert_eq!(e.field, "options[endpoint]");
        let e = refused("s3://bucket", &[("force_path_style", "maybe")], &[]);
        assert_eq!(e.field, "options[force_path_style]");
        let e = refused("s3://bucket", &[("region", "")], &[]);
        assert_eq!(e.field, "options[region]");
    }

    #[test]
    fn credentials_are_checked_per_scheme_and_never_print() {
        let e = refused("s3://bucket", &[], &[("access_key_id", "AKIA-ONLY")]);
        assert_eq!(e.field, "credentials");
        let e = refused("s3://bucket", &[], &[("session_token", "t")]);
        assert_eq!(e.field, "credentials[session_token]");
        let e = refused("file:///srv", &[], &[("access_key_id", "x")]);
        assert_eq!(e.field, "credentials[access_key_id]");
        let e = refused("s3://bucket", &[], &[("access_key_id", "")]);
        assert_eq!(e.reason, "must not be empty");

        let backend = Backend::parse(
            "s3://bucket",
            &BTreeMap::new(),
            &secrets(&[
                ("access_key_id", "AKIA"),
                ("secret_access_key", "canary-secret"),
            ]),
        )
        .unwrap();
        assert!(!format!("{backend:?}").contains("canary-secret"));
    }

    /// Found by the properties below: both went into the host name of the default
    /// endpoint, so a site could send its keys to any host.
    #[test]
    fn regions_and_account_names_cannot_name_another_host() {
        let e = refused("s3://bucket", &[("region", "evil.example/x")], &[]);
        assert_eq!(e.field, "options[region]");
        let e = refused("s3://bucket", &[("region", "a@evil.example:443")], &[]);
        assert_eq!(e.field, "options[region]");
        let e = refused(
            "azblob://container",
            &[("account_name", "evil.example/x?")],
            &[],
        );
        assert_eq!(e.field, "options[account_name]");
        assert!(e.reason.contains("Azure storage account name"), "{e}");
        let e = refused("azblob://container", &[("account_name", "Acct")], &[]);
        assert_eq!(e.field, "options[account_name]");
        for region in ["us-east-1", "garage", "de_fra_1"] {
            assert!(
                Backend::parse(
                    "s3://bucket",
                    &options(&[("region", region)]),
                    &BTreeMap::new()
                )
                .is_ok(),
                "{region}"
            );
        }
    }

    #[test]
    fn azblob_needs_an_endpoint_or_an_account() {
        let e = refused("azblob://container", &[], &[]);
        assert_eq!(e.field, "options");
        let e = refused(
            "azblob://container",
            &[("endpoint", "http://127.0.0.1:10000/devstoreaccount1")],
            &[("account_key", "a2V5")],
        );
        assert_eq!(e.field, "credentials[account_key]");
        let e = refused(
            "azblob://container",
            &[("account_name", "acct")],
            &[("account_key", "not base64!")],
        );
        assert_eq!(e.field, "credentials[account_key]");
        let Backend::Azblob(site) = Backend::parse(
            "azblob://container/p",
            &options(&[("account_name", "acct")]),
            &BTreeMap::new(),
        )
        .unwrap() else {
            panic!("an azblob site")
        };
        assert_eq!(site.endpoint, "https://acct.blob.core.windows.net");
    }

    #[test]
    fn a_gcs_credential_must_be_a_base64_service_account_key() {
        let e = refused("gs://bucket", &[], &[("credential", "{not base64")]);
        assert_eq!(e.field, "credentials[credential]");
        let not_a_key = base64::engine::general_purpose::STANDARD.encode("[1, 2]");
        let e = refused("gs://bucket", &[], &[("credential", &not_a_key)]);
        assert_eq!(e.field, "credentials[credential]");
        let key = base64::engine::general_purpose::STANDARD
            .encode(r#"{"type": "service_account", "client_email": "x@y"}"#);
        assert!(Backend::parse(
            "gs://bucket",
            &BTreeMap::new(),
            &secrets(&[("credential", &key)])
        )
        .is_ok());
    }
}

#[cfg(test)]
mod properties;
