//! Site URIs: which storage backend a site lives on and where its root is.

use std::fmt;

use crate::error::{Error, Result};

/// The storage services Ferry reaches through OpenDAL.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Backend {
    Fs,
    S3,
    Gcs,
    Azblob,
    Memory,
}

impl Backend {
    pub fn scheme(self) -> &'static str {
        match self {
            Backend::Fs => "file",
            Backend::S3 => "s3",
            Backend::Gcs => "gs",
            Backend::Azblob => "azblob",
            Backend::Memory => "memory",
        }
    }

    /// Non-secret settings a site of this backend accepts.
    pub fn option_keys(self) -> &'static [&'static str] {
        match self {
            Backend::Fs | Backend::Memory => &[],
            Backend::S3 => &["endpoint", "region", "force_path_style"],
            Backend::Gcs => &["endpoint"],
            Backend::Azblob => &["endpoint", "account_name"],
        }
    }

    /// Credential entries a site of this backend accepts.
    pub fn credential_keys(self) -> &'static [&'static str] {
        match self {
            Backend::Fs | Backend::Memory => &[],
            Backend::S3 => &["access_key_id", "secret_access_key", "session_token"],
            Backend::Gcs => &["credential"],
            Backend::Azblob => &["account_key", "sas_token"],
        }
    }

    fn from_scheme(s: &str) -> Option<Self> {
        Some(match s {
            "file" => Backend::Fs,
            "s3" => Backend::S3,
            "gs" => Backend::Gcs,
            "azblob" => Backend::Azblob,
            "memory" => Backend::Memory,
            _ => return None,
        })
    }
}

/// A parsed, normalised site URI: a backend, a bucket or container where the backend
/// has one, and a root path inside it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SiteUri {
    backend: Backend,
    bucket: Option<String>,
    /// Without leading or trailing '/'; empty for the bucket's (or file system's) root.
    root: String,
}

impl SiteUri {
    pub fn parse(field: &str, s: &str) -> Result<Self> {
        let invalid = |reason: String| Error::invalid(field, reason);
        let (scheme, rest) = s.split_once("://").ok_or_else(|| {
            invalid(format!(
                "'{s}' is not a URI; expected file:///path, s3://bucket/prefix, \
                 gs://bucket/prefix, azblob://container/prefix or memory://"
            ))
        })?;
        let backend = Backend::from_scheme(scheme).ok_or_else(|| {
            invalid(format!(
                "unsupported scheme '{scheme}'; expected file, s3, gs, azblob or memory"
            ))
        })?;
        if rest.contains(['?', '#']) {
            return Err(invalid(
                "must not carry a query or fragment; use site options".into(),
            ));
        }
        let (bucket, path) = match backend {
            Backend::Fs => {
                let path = rest.strip_prefix("localhost").unwrap_or(rest);
                if !path.starts_with('/') {
                    return Err(invalid(format!(
                        "'{s}' must be an absolute path, e.g. file:///srv/data"
                    )));
                }
                (None, path)
            }
            Backend::Memory => (None, rest),
            Backend::S3 | Backend::Gcs | Backend::Azblob => {
                let (bucket, path) = rest.split_once('/').unwrap_or((rest, ""));
                validate_bucket(backend, bucket).map_err(invalid)?;
                (Some(bucket.to_owned()), path)
            }
        };
        let root = normalise_path(path).map_err(invalid)?;
        Ok(SiteUri {
            backend,
            bucket,
            root,
        })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn bucket(&self) -> Option<&str> {
        self.bucket.as_deref()
    }

    pub fn root(&self) -> &str {
        &self.root
    }
}

impl fmt::Display for SiteUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = self.backend.scheme();
        match (&self.bucket, self.backend) {
            (_, Backend::Fs) => write!(f, "file:///{}", self.root),
            (Some(bucket), _) if self.root.is_empty() => write!(f, "{scheme}://{bucket}"),
            (Some(bucket), _) => write!(f, "{scheme}://{bucket}/{}", self.root),
            (None, _) if self.root.is_empty() => write!(f, "{scheme}://"),
            (None, _) => write!(f, "{scheme}:///{}", self.root),
        }
    }
}

fn validate_bucket(backend: Backend, bucket: &str) -> std::result::Result<(), String> {
    let what = if backend == Backend::Azblob {
        "container"
    } else {
        "bucket"
    };
    if !(3..=63).contains(&bucket.len()) {
        return Err(format!("{what} name '{bucket}' must be 3 to 63 characters"));
    }
    let ok_chars = bucket
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '.' | '_'));
    let ok_ends = bucket.starts_with(|c: char| c.is_ascii_alphanumeric())
        && bucket.ends_with(|c: char| c.is_ascii_alphanumeric());
    if !ok_chars || !ok_ends {
        return Err(format!(
            "{what} name '{bucket}' must be lowercase letters, digits, '-', '.' or '_', \
             starting and ending with a letter or digit"
        ));
    }
    Ok(())
}

/// Normalises a relative path: no empty, `.` or `..` segments, no NUL, no leading or
/// trailing '/'.
pub fn normalise_path(path: &str) -> std::result::Result<String, String> {
    if path.contains('\0') {
        return Err("path must not contain NUL".into());
    }
    let trimmed = path.trim_matches('/');
    if trimmed.is_empty() {
        return Ok(String::new());
    }
    for segment in trimmed.split('/') {
        match segment {
            "" => return Err(format!("path '{path}' has an empty segment ('//')")),
            "." | ".." => return Err(format!("path '{path}' must not contain '.' or '..'")),
            _ => {}
        }
    }
    Ok(trimmed.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_backend() {
        let cases = [
            ("file:///srv/data/", "file:///srv/data", Backend::Fs),
            ("file://localhost/srv", "file:///srv", Backend::Fs),
            (
                "s3://my-bucket/some/prefix",
                "s3://my-bucket/some/prefix",
                Backend::S3,
            ),
            ("s3://my-bucket", "s3://my-bucket", Backend::S3),
            ("gs://bucket-1/x", "gs://bucket-1/x", Backend::Gcs),
            (
                "azblob://container/p",
                "azblob://container/p",
                Backend::Azblob,
            ),
            ("memory://", "memory://", Backend::Memory),
        ];
        for (input, canonical, backend) in cases {
            let uri = SiteUri::parse("uri", input).unwrap();
            assert_eq!(uri.backend(), backend);
            assert_eq!(uri.to_string(), canonical);
            assert_eq!(SiteUri::parse("uri", canonical).unwrap(), uri);
        }
    }

    #[test]
    fn rejects_malformed_uris_naming_the_field() {
        for bad in [
            "/srv/data",
            "ftp://host/x",
            "file://relative/path",
            "s3://",
            "s3://UPPER",
            "s3://ab",
            "s3://bucket/a/../b",
            "s3://bucket/a//b",
            "s3://bucket/x?region=y",
        ] {
            let err = SiteUri::parse("site.uri", bad).unwrap_err();
            assert!(err.to_string().starts_with("site.uri: "), "{bad}: {err}");
        }
    }
}
