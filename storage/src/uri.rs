//! Site URIs: which backend a site lives on and where its root is. This is the one
//! parser of a site URI in Ferry; the control plane stores what [`SiteUri`]'s `Display`
//! prints, so every later parse sees the canonical form.

use std::fmt;

use crate::error::InvalidField;

/// The kinds of storage Ferry reaches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// A directory of a local (or locally mounted) file system.
    File,
    /// An S3 bucket, on AWS or any S3-compatible service.
    S3,
    /// A Google Cloud Storage bucket.
    Gcs,
    /// An Azure Blob Storage container.
    Azblob,
    /// A process-wide in-memory store, for tests.
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

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "file" => Scheme::File,
            "s3" => Scheme::S3,
            "gs" => Scheme::Gcs,
            "azblob" => Scheme::Azblob,
            "memory" => Scheme::Memory,
            _ => return None,
        })
    }

    /// What a site of this scheme calls its bucket.
    fn bucket_word(self) -> &'static str {
        if self == Scheme::Azblob {
            "container"
        } else {
            "bucket"
        }
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A parsed, normalised site URI: a scheme, a bucket or container where the scheme has
/// one, and a root path inside it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SiteUri {
    scheme: Scheme,
    bucket: Option<String>,
    /// Without leading or trailing '/'; empty for the bucket's (or file system's) root.
    /// For `file://` the absolute directory without its leading '/'; for `memory://`
    /// the store's name.
    root: String,
}

impl SiteUri {
    /// Parses a site URI; an error names the field `uri`. No percent-decoding: Ferry
    /// stores site URIs verbatim.
    pub fn parse(s: &str) -> Result<Self, InvalidField> {
        let invalid = |reason: String| InvalidField::new("uri", reason);
        let (scheme, rest) = s.split_once("://").ok_or_else(|| {
            invalid(format!(
                "'{s}' is not a URI; expected file:///path, s3://bucket/prefix, \
                 gs://bucket/prefix, azblob://container/prefix or memory://"
            ))
        })?;
        let scheme = Scheme::parse(scheme).ok_or_else(|| {
            invalid(format!(
                "unsupported scheme '{scheme}'; expected file, s3, gs, azblob or memory"
            ))
        })?;
        if rest.contains(['?', '#']) {
            return Err(invalid(
                "must not carry a query or fragment; use site options".into(),
            ));
        }
        let (bucket, path) = match scheme {
            Scheme::File => {
                let path = rest.strip_prefix("localhost").unwrap_or(rest);
                if !path.starts_with('/') {
                    return Err(invalid(format!(
                        "'{s}' must be an absolute path, e.g. file:///srv/data"
                    )));
                }
                (None, path)
            }
            Scheme::Memory => (None, rest),
            Scheme::S3 | Scheme::Gcs | Scheme::Azblob => {
                let (bucket, path) = rest.split_once('/').unwrap_or((rest, ""));
                validate_bucket(scheme, bucket).map_err(invalid)?;
                (Some(bucket.to_owned()), path)
            }
        };
        let root = normalise_path(path).map_err(invalid)?;
        Ok(SiteUri {
            scheme,
            bucket,
            root,
        })
    }

    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// The bucket (or container) of a bucket scheme.
    pub fn bucket(&self) -> Option<&str> {
        self.bucket.as_deref()
    }

    /// The site's root inside its bucket, or its directory, or its memory store's name;
    /// normalised, without leading or trailing '/'.
    pub fn root(&self) -> &str {
        &self.root
    }
}

impl fmt::Display for SiteUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = self.scheme.as_str();
        match (&self.bucket, self.scheme) {
            (_, Scheme::File) => write!(f, "file:///{}", self.root),
            (Some(bucket), _) if self.root.is_empty() => write!(f, "{scheme}://{bucket}"),
            (Some(bucket), _) => write!(f, "{scheme}://{bucket}/{}", self.root),
            (None, _) if self.root.is_empty() => write!(f, "{scheme}://"),
            (None, _) => write!(f, "{scheme}:///{}", self.root),
        }
    }
}

fn validate_bucket(scheme: Scheme, bucket: &str) -> Result<(), String> {
    let what = scheme.bucket_word();
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
/// trailing '/'. A dataset path cannot leave its site.
pub fn normalise_path(path: &str) -> Result<String, String> {
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
    fn parses_every_scheme_into_its_canonical_form() {
        let cases = [
            ("file:///srv/data/", "file:///srv/data", Scheme::File),
            ("file://localhost/srv", "file:///srv", Scheme::File),
            (
                "s3://my-bucket/some/prefix",
                "s3://my-bucket/some/prefix",
                Scheme::S3,
            ),
            ("s3://my-bucket", "s3://my-bucket", Scheme::S3),
            ("gs://bucket-1/x", "gs://bucket-1/x", Scheme::Gcs),
            (
                "azblob://container/p",
                "azblob://container/p",
                Scheme::Azblob,
            ),
            ("memory://", "memory://", Scheme::Memory),
            ("memory://store-a/", "memory:///store-a", Scheme::Memory),
        ];
        for (input, canonical, scheme) in cases {
            let uri = SiteUri::parse(input).unwrap();
            assert_eq!(uri.scheme(), scheme);
            assert_eq!(uri.to_string(), canonical);
            assert_eq!(SiteUri::parse(canonical).unwrap(), uri);
        }
        let s3 = SiteUri::parse("s3://bucket/a/b/").unwrap();
        assert_eq!((s3.bucket(), s3.root()), (Some("bucket"), "a/b"));
    }

    #[test]
    fn rejects_malformed_uris_naming_the_field() {
        for bad in [
            "/srv/data",
            "no-scheme",
            "ftp://host/x",
            "file://relative/path",
            "s3://",
            "s3:///prefix",
            "s3://UPPER",
            "s3://ab",
            "s3://bucket/a/../b",
            "s3://bucket/a//b",
            "s3://bucket/x?region=y",
        ] {
            let err = SiteUri::parse(bad).unwrap_err();
            assert_eq!(err.field, "uri", "{bad}: {err}");
        }
        assert!(SiteUri::parse("ftp://x")
            .unwrap_err()
            .reason
            .contains("unsupported scheme 'ftp'"));
    }

    #[test]
    fn paths_cannot_leave_their_site() {
        assert_eq!(normalise_path("/a/b/").unwrap(), "a/b");
        assert_eq!(normalise_path("").unwrap(), "");
        assert!(normalise_path("a/../../etc").is_err());
        assert!(normalise_path("a/./b").is_err());
        assert!(normalise_path("a\0b").is_err());
    }
}

/// Site URIs come from users: any text gets a URI or an error naming `uri`, never a
/// panic, and what is accepted prints a canonical form that parses back to itself.
#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    /// Text that gets past the scheme often: a known or random scheme, then anything.
    fn uri_like() -> impl Strategy<Value = String> {
        let scheme = prop_oneof![
            Just("file".to_owned()),
            Just("s3".to_owned()),
            Just("gs".to_owned()),
            Just("azblob".to_owned()),
            Just("memory".to_owned()),
            "\\PC{0,8}",
        ];
        let rest = prop_oneof![
            "[a-z0-9./_-]{0,80}",
            "(localhost)?/[a-z./?#]{0,20}",
            any::<String>(),
        ];
        (scheme, rest).prop_map(|(scheme, rest)| format!("{scheme}://{rest}"))
    }

    /// One path segment: anything but '/', NUL, '?' and '#', and never `.` or `..`.
    fn segment() -> impl Strategy<Value = String> {
        "[^/\\x00?#]{1,12}".prop_filter("not . or ..", |s| s != "." && s != "..")
    }

    fn bucket() -> impl Strategy<Value = String> {
        "[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]"
    }

    proptest! {
        #[test]
        fn any_text_is_a_uri_or_an_error_naming_uri(s in prop_oneof![any::<String>(), uri_like()]) {
            match SiteUri::parse(&s) {
                Ok(uri) => {
                    let canonical = uri.to_string();
                    prop_assert_eq!(SiteUri::parse(&canonical), Ok(uri.clone()));
                    prop_assert_eq!(SiteUri::parse(&canonical)?.to_string(), canonical);
                    prop_assert!(!uri.root().starts_with('/') && !uri.root().ends_with('/'));
                }
                Err(e) => prop_assert_eq!(e.field, "uri"),
            }
        }

        #[test]
        fn well_formed_bucket_uris_are_accepted(
            scheme in prop_oneof![Just(Scheme::S3), Just(Scheme::Gcs), Just(Scheme::Azblob)],
            bucket in bucket(),
            segments in prop::collection::vec(segment(), 0..5),
            trailing_slash in any::<bool>(),
        ) {
            let root = segments.join("/");
            let slash = if trailing_slash { "/" } else { "" };
            let uri = SiteUri::parse(&format!("{scheme}://{bucket}/{root}{slash}"))?;
            prop_assert_eq!(uri.scheme(), scheme);
            prop_assert_eq!(uri.bucket(), Some(bucket.as_str()));
            prop_assert_eq!(uri.root(), root);
        }

        #[test]
        fn well_formed_file_and_memory_uris_are_accepted(
            segments in prop::collection::vec(segment(), 0..5),
        ) {
            let root = segments.join("/");
            let file = SiteUri::parse(&format!("file:///{root}"))?;
            prop_assert_eq!((file.scheme(), file.root()), (Scheme::File, root.as_str()));
            let memory = SiteUri::parse(&format!("memory://{root}"))?;
            prop_assert_eq!((memory.scheme(), memory.root()), (Scheme::Memory, root.as_str()));
        }

        #[test]
        fn normalised_paths_stay_inside_and_are_stable(
            path in prop_oneof![
                any::<String>(),
                "[a./]{0,16}",
                prop::collection::vec(prop_oneof![segment(), Just(".".to_owned()), Just("..".to_owned()), Just(String::new())], 0..6)
                    .prop_map(|s| s.join("/")),
            ],
        ) {
            match normalise_path(&path) {
                Ok(clean) => {
                    prop_assert!(!clean.starts_with('/') && !clean.ends_with('/'));
                    prop_assert!(!clean.contains('\0'));
                    if !clean.is_empty() {
                        prop_assert!(clean.split('/').all(|s| !matches!(s, "" | "." | "..")));
                    }
                    prop_assert_eq!(normalise_path(&clean), Ok(clean.clone()));
                }
                Err(_) => prop_assert!(
                    path.contains('\0')
                        || path.trim_matches('/').split('/').any(|s| matches!(s, "" | "." | ".."))
                ),
            }
        }
    }
}
