//! Datasets and their replicas.

use chrono::{DateTime, Utc};

use super::{
    ids::{DatasetId, SiteId},
    labels::Labels,
    name::{Name, Ref},
    tier::Tier,
};
use crate::error::{Error, Result};

/// The largest count or size the catalogue stores: PostgreSQL has no unsigned integers.
pub const MAX_COUNTER: u64 = i64::MAX as u64;

#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    pub id: DatasetId,
    pub name: Name,
    /// The site of the primary replica.
    pub site_id: SiteId,
    /// The primary replica's path below the site's root.
    pub path: DatasetPath,
    pub current_tier: Tier,
    /// `None` means no latency objective.
    pub latency_slo_ms: Option<u32>,
    pub size_bytes: u64,
    pub object_count: u64,
    pub owner: String,
    pub labels: Labels,
    pub last_access_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A non-empty, normalised path below a site's root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DatasetPath(String);

impl DatasetPath {
    pub fn parse(field: &str, s: &str) -> Result<Self> {
        let path =
            ferry_storage::normalise_path(s).map_err(|reason| Error::invalid(field, reason))?;
        if path.is_empty() {
            return Err(Error::invalid(
                field,
                "must name a path below the site's root",
            ));
        }
        if path.len() > 1024 {
            return Err(Error::invalid(field, "must be at most 1024 bytes"));
        }
        Ok(DatasetPath(path))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Fields a dataset is created from; the service resolves the site reference.
#[derive(Clone, Debug)]
pub struct NewDataset {
    pub name: Name,
    pub site: Ref<SiteId>,
    pub path: DatasetPath,
    /// `None` takes the tier of the site.
    pub current_tier: Option<Tier>,
    pub latency_slo_ms: Option<u32>,
    pub size_bytes: u64,
    pub object_count: u64,
    pub owner: String,
    pub labels: Labels,
}

impl NewDataset {
    pub fn validate(&self) -> Result<()> {
        validate_counter("size_bytes", self.size_bytes)?;
        validate_counter("object_count", self.object_count)?;
        validate_owner(&self.owner)
    }
}

/// Changes to a dataset. Site and path change only through a migration's switch.
#[derive(Clone, Debug, Default)]
pub struct DatasetPatch {
    pub current_tier: Option<Tier>,
    pub latency_slo_ms: Option<Option<u32>>,
    pub size_bytes: Option<u64>,
    pub object_count: Option<u64>,
    pub owner: Option<String>,
    pub labels: Option<Labels>,
}

impl Dataset {
    pub fn apply(&mut self, patch: &DatasetPatch) -> Result<()> {
        if let Some(tier) = patch.current_tier {
            self.current_tier = tier;
        }
        if let Some(slo) = patch.latency_slo_ms {
            self.latency_slo_ms = slo;
        }
        if let Some(size) = patch.size_bytes {
            validate_counter("size_bytes", size)?;
            self.size_bytes = size;
        }
        if let Some(count) = patch.object_count {
            validate_counter("object_count", count)?;
            self.object_count = count;
        }
        if let Some(owner) = &patch.owner {
            validate_owner(owner)?;
            self.owner = owner.clone();
        }
        if let Some(labels) = &patch.labels {
            self.labels = labels.clone();
        }
        Ok(())
    }
}

fn validate_counter(field: &str, value: u64) -> Result<()> {
    if value > MAX_COUNTER {
        return Err(Error::invalid(
            field,
            format!("must be at most {MAX_COUNTER}"),
        ));
    }
    Ok(())
}

fn validate_owner(owner: &str) -> Result<()> {
    if owner.len() > 256 || owner.chars().any(char::is_control) {
        return Err(Error::invalid(
            "owner",
            "must be at most 256 printable characters",
        ));
    }
    Ok(())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplicaRole {
    Primary,
    Secondary,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplicaState {
    /// Being written by a migration.
    Copying,
    /// Complete: verified, or registered as the dataset's original location.
    Ready,
    /// Being deleted after a migration switched away from it.
    Retiring,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Replica {
    pub dataset_id: DatasetId,
    pub site_id: SiteId,
    pub path: String,
    pub role: ReplicaRole,
    pub state: ReplicaState,
    pub verified_at: Option<DateTime<Utc>>,
    pub manifest: Option<String>,
    /// When the replica's last verified sync listed the source; `None` for a replica
    /// no sync has kept.
    pub synced_at: Option<DateTime<Utc>>,
}

/// Filters of a dataset listing; every one set narrows it.
#[derive(Clone, Debug, Default)]
pub struct DatasetFilter {
    pub site: Option<Ref<SiteId>>,
    pub tier: Option<Tier>,
    pub owner: Option<String>,
    pub labels: Labels,
    /// Text the name contains, lowercased; matched in any case.
    pub name_contains: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_relative_and_clean() {
        assert_eq!(DatasetPath::parse("path", "/a/b/").unwrap().as_str(), "a/b");
        assert!(DatasetPath::parse("path", "").is_err());
        assert!(DatasetPath::parse("path", "/").is_err());
        assert!(DatasetPath::parse("path", "a/../b").is_err());
    }

    #[test]
    fn counters_fit_the_database() {
        let err = validate_counter("size_bytes", u64::MAX).unwrap_err();
        assert!(err.to_string().starts_with("size_bytes: "));
    }
}

/// Dataset paths come from users: any text is a clean path below the site's root or an
/// error naming the field, never a panic; a clean path parses back to itself.
#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn any_text_is_a_clean_path_or_an_error_naming_the_field(
            s in prop_oneof![any::<String>(), "[a./]{0,12}", "[a-z/]{1020,1030}"],
        ) {
            match DatasetPath::parse("dataset.path", &s) {
                Ok(path) => {
                    let p = path.as_str();
                    prop_assert!(!p.is_empty() && p.len() <= 1024);
                    prop_assert!(p.split('/').all(|seg| !matches!(seg, "" | "." | "..")));
                    prop_assert_eq!(DatasetPath::parse("dataset.path", p)?, path);
                }
                Err(Error::InvalidArgument { field, .. }) => prop_assert_eq!(field, "dataset.path"),
                Err(e) => prop_assert!(false, "{e}"),
            }
        }

        #[test]
        fn relative_paths_of_plain_segments_are_accepted(
            segments in prop::collection::vec("[a-zA-Z0-9_-][a-zA-Z0-9._ -]{0,15}", 1..8),
        ) {
            let path = segments.join("/");
            let parsed = DatasetPath::parse("path", &format!("/{path}/"))?;
            prop_assert_eq!(parsed.as_str(), path);
        }
    }
}
