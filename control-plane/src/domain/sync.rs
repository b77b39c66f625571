//! Sync jobs: keeping a dataset's secondary replica in step with its primary. A sync
//! copies only what changed since the replica's last verified sync, judged by the
//! replica's manifest, and deals with objects found only at the destination by its
//! deletion rule.

use std::fmt;

use chrono::{DateTime, Utc};

/// What a job does: move a dataset (copy, verify, switch) or bring a replica in step.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum JobKind {
    #[default]
    Migration,
    Sync(SyncRule),
}

impl JobKind {
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Migration => "migration",
            JobKind::Sync(_) => "sync",
        }
    }

    pub fn sync(self) -> Option<SyncRule> {
        match self {
            JobKind::Sync(rule) => Some(rule),
            JobKind::Migration => None,
        }
    }
}

/// What a sync does with objects at the destination that the source does not hold.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyncRule {
    pub deletion: Deletion,
    /// The most objects one run may delete; a run that would delete more deletes
    /// nothing and fails. `None`: no cap.
    pub max_delete: Option<u64>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Deletion {
    /// Extras stay at the destination and are reported.
    #[default]
    Keep,
    /// Extras are deleted, within the cap.
    Delete,
}

impl Deletion {
    pub fn as_str(self) -> &'static str {
        match self {
            Deletion::Keep => "keep",
            Deletion::Delete => "delete",
        }
    }
}

impl std::str::FromStr for Deletion {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "keep" => Ok(Deletion::Keep),
            "delete" => Ok(Deletion::Delete),
            other => Err(format!("unknown deletion rule '{other}'")),
        }
    }
}

/// What one sync run found, besides the counters every job has.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyncFigures {
    /// Source objects the manifest showed unchanged, present at the destination.
    pub unchanged: u64,
    /// Objects found at the destination only.
    pub extras: u64,
    /// Of those, the ones deleted.
    pub deleted: u64,
}

/// Why the deletion step of a sync was refused: more extras than its cap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OverCap {
    pub extras: u64,
    pub max_delete: u64,
}

impl fmt::Display for OverCap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "deletion refused: {} object(s) at the destination are not at the source, more \
             than max_delete ({}); nothing was deleted (raise max_delete, or sync with \
             deletion keep)",
            self.extras, self.max_delete
        )
    }
}

impl SyncRule {
    /// Whether the deletion step may delete `extras` objects.
    pub fn check_deletions(self, extras: u64) -> Result<(), OverCap> {
        match self.max_delete {
            Some(max_delete) if extras > max_delete => Err(OverCap { extras, max_delete }),
            _ => Ok(()),
        }
    }
}

/// What a manifest says of one object: the source as the last verified sync listed
/// it, and the xxh3 of its bytes where one was computed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestEntry {
    pub size: u64,
    pub modified: Option<DateTime<Utc>>,
    pub etag: Option<String>,
    pub xxh3: Option<String>,
}

/// A source object as a sync's listing found it, with what the destination holds
/// under the same key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ComparedObject {
    pub key: String,
    pub size: u64,
    pub modified: Option<DateTime<Utc>>,
    pub etag: Option<String>,
    /// The size of the destination's object of that key; `None` when it has none.
    pub destination_size: Option<u64>,
}

impl ComparedObject {
    /// Whether the object is as the manifest recorded it and the destination still
    /// holds it at that size: then it needs no copy. Size, modification time and etag
    /// must match where both sides know them; an object the manifest has no time or
    /// etag for, where the listing has one, counts as changed.
    pub fn unchanged_since(&self, entry: &ManifestEntry) -> bool {
        fn same<T: PartialEq>(listed: &Option<T>, recorded: &Option<T>) -> bool {
            match (listed, recorded) {
                (Some(l), Some(r)) => l == r,
                (None, _) => true,
                (Some(_), None) => false,
            }
        }
        // The catalogue keeps times to the microsecond (PostgreSQL's precision); a
        // listing may carry nanoseconds.
        let micros = |t: &Option<DateTime<Utc>>| t.map(|t| t.timestamp_micros());
        self.size == entry.size
            && self.destination_size == Some(entry.size)
            && same(&micros(&self.modified), &micros(&entry.modified))
            && same(&self.etag, &entry.etag)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(size: u64, modified: i64, destination_size: Option<u64>) -> ComparedObject {
        ComparedObject {
            key: "a".into(),
            size,
            modified: DateTime::from_timestamp(modified, 0),
            etag: None,
            destination_size,
        }
    }

    fn entry(size: u64, modified: i64) -> ManifestEntry {
        ManifestEntry {
            size,
            modified: DateTime::from_timestamp(modified, 0),
            etag: None,
            xxh3: None,
        }
    }

    #[test]
    fn an_object_as_recorded_and_present_is_unchanged() {
        assert!(listed(4, 100, Some(4)).unchanged_since(&entry(4, 100)));
    }

    #[test]
    fn a_new_time_a_new_size_or_a_missing_copy_is_a_change() {
        assert!(!listed(4, 101, Some(4)).unchanged_since(&entry(4, 100)));
        assert!(!listed(5, 100, Some(4)).unchanged_since(&entry(4, 100)));
        assert!(!listed(4, 100, None).unchanged_since(&entry(4, 100)));
        assert!(!listed(4, 100, Some(3)).unchanged_since(&entry(4, 100)));
    }

    #[test]
    fn times_are_compared_to_the_microsecond_the_catalogue_keeps() {
        let mut o = listed(4, 100, Some(4));
        o.modified = DateTime::from_timestamp(100, 123_456_789);
        let mut e = entry(4, 100);
        e.modified = DateTime::from_timestamp(100, 123_456_000);
        assert!(o.unchanged_since(&e));
        e.modified = DateTime::from_timestamp(100, 123_457_000);
        assert!(!o.unchanged_since(&e));
    }

    #[test]
    fn an_etag_the_manifest_lacks_is_a_change() {
        let mut o = listed(4, 100, Some(4));
        o.etag = Some("\"e\"".into());
        assert!(!o.unchanged_since(&entry(4, 100)));
        let mut e = entry(4, 100);
        e.etag = Some("\"e\"".into());
        assert!(o.unchanged_since(&e));
        e.etag = Some("\"f\"".into());
        assert!(!o.unchanged_since(&e));
    }

    #[test]
    fn deletions_beyond_the_cap_are_refused_whole() {
        let rule = SyncRule {
            deletion: Deletion::Delete,
            max_delete: Some(3),
        };
        assert!(rule.check_deletions(3).is_ok());
        let refused = rule.check_deletions(4).unwrap_err();
        assert!(refused.to_string().contains("4 object(s)"));
        assert!(refused.to_string().contains("max_delete (3)"));
        let uncapped = SyncRule {
            deletion: Deletion::Delete,
            max_delete: None,
        };
        assert!(uncapped.check_deletions(1_000_000).is_ok());
    }
}
