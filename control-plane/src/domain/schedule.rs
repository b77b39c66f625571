//! Sync schedules: a cron expression read in a time zone, and the sync each due time
//! plans. At most one run of a schedule is unfinished at a time; times missed while
//! nothing checked (the control plane down) are coalesced into one run.

use std::str::FromStr;

use chrono::{DateTime, SubsecRound, Utc};
use chrono_tz::Tz;
use croner::Cron;

use super::{
    ids::{JobId, ScheduleId},
    name::Name,
};
use crate::error::{Error, Result};

/// When a schedule is due: a five-field cron expression in an IANA time zone.
#[derive(Clone, Debug)]
pub struct When {
    cron: Cron,
    pattern: String,
    zone: Tz,
}

impl When {
    /// Parses `cron` (field `cron`) and `time_zone` (field `time_zone`; empty means
    /// UTC). Only the five standard fields are taken: a schedule has no seconds.
    pub fn parse(cron: &str, time_zone: &str) -> Result<When> {
        let pattern = cron.trim();
        let fields = pattern.split_whitespace().count();
        if fields != 5 {
            return Err(Error::invalid(
                "cron",
                format!(
                    "expected five fields (minute hour day-of-month month day-of-week, e.g. \
                     `0 2 * * *`), got {fields} in {pattern:?}"
                ),
            ));
        }
        let parsed = Cron::from_str(pattern)
            .map_err(|e| Error::invalid("cron", format!("{pattern:?}: {e}")))?;
        let zone_name = match time_zone.trim() {
            "" => "UTC",
            name => name,
        };
        let zone = Tz::from_str(zone_name).map_err(|_| {
            Error::invalid(
                "time_zone",
                format!("unknown time zone {zone_name:?}; use an IANA name such as Europe/Paris"),
            )
        })?;
        let when = When {
            cron: parsed,
            pattern: pattern.to_owned(),
            zone,
        };
        if when.next_after(Utc::now()).is_none() {
            return Err(Error::invalid("cron", format!("{pattern:?} never matches")));
        }
        Ok(when)
    }

    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    pub fn time_zone(&self) -> &str {
        self.zone.name()
    }

    /// The first due time strictly after `t`, in whole seconds (the search would keep
    /// `t`'s fraction of a second).
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron
            .find_next_occurrence(&t.trunc_subsecs(0).with_timezone(&self.zone), false)
            .ok()
            .map(|next| next.with_timezone(&Utc))
    }
}

/// Two schedules are equal when they name the same times in the same zone.
impl PartialEq for When {
    fn eq(&self, other: &Self) -> bool {
        self.pattern == other.pattern && self.zone == other.zone
    }
}

impl std::fmt::Display for When {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "`{}` in {}", self.pattern, self.zone.name())
    }
}

/// A schedule as the catalogue keeps it. `sync` is the encoded `PlanSyncRequest` each
/// run plans, with the dataset and destination site by id.
#[derive(Clone, Debug)]
pub struct SyncSchedule {
    pub id: ScheduleId,
    pub name: Name,
    pub dataset_id: super::ids::DatasetId,
    pub sync: Vec<u8>,
    pub when: When,
    pub next_run_at: DateTime<Utc>,
    pub last_job: Option<JobId>,
    pub runs: u64,
    pub skipped: u64,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    /// Also synced as its watchers report changes, between its due times.
    pub continuous: bool,
    /// Keys reported changed that no run has taken yet.
    pub pending_changes: u64,
}

/// The key under which a watcher's report that it may have missed changes is kept.
pub const RESCAN_KEY: &str = "";
/// The most keys a run of a continuous sync's changes checks one by one; with more, it
/// lists everything instead.
pub const MAX_CHANGED_KEYS: u64 = 1000;
/// The most bytes of keys such a run carries (they travel in its list task's message).
const MAX_CHANGED_KEY_BYTES: usize = 256 << 10;

/// The changes waiting for a continuous sync's next run: the distinct keys reported
/// (at most one more than [`MAX_CHANGED_KEYS`]) and the last report they cover.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Changes {
    pub up_to: i64,
    keys: Vec<String>,
}

impl Changes {
    pub fn new(up_to: i64, keys: Vec<String>) -> Self {
        Changes { up_to, keys }
    }

    /// The keys the run checks that could hold objects below the sync's `prefix` (a
    /// watcher reports whatever changes in the dataset's directory), or `None` when it
    /// must list everything instead. Empty: nothing the sync takes changed.
    pub fn keys_under(&self, prefix: &str) -> Option<Vec<String>> {
        let keys = self.keys()?;
        Some(
            keys.iter()
                .filter(|k| may_hold(prefix, k))
                .cloned()
                .collect(),
        )
    }

    /// The keys the run checks, or `None` when it must list everything instead: a
    /// watcher may have missed changes, or there are too many keys to check one by one.
    pub fn keys(&self) -> Option<&[String]> {
        let bytes: usize = self.keys.iter().map(String::len).sum();
        let rescan = self.keys.iter().any(|k| k == RESCAN_KEY);
        (!rescan && self.keys.len() as u64 <= MAX_CHANGED_KEYS && bytes <= MAX_CHANGED_KEY_BYTES)
            .then_some(self.keys.as_slice())
    }
}

/// Whether the object `key`, or one below the directory `key`, can start with
/// `prefix` (a filter's prefix is a plain string prefix of the key).
fn may_hold(prefix: &str, key: &str) -> bool {
    key.starts_with(prefix) || prefix.starts_with(&format!("{key}/"))
}

/// What a due time did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A run was planned.
    Planned(JobId),
    /// The previous run is unfinished: no run this time.
    Skipped,
    /// Planning failed; the reason.
    Failed(String),
}

impl SyncSchedule {
    /// The idempotency key of the run due at `due`: planning it twice (two control
    /// planes, a retry after a crash) gives one job.
    pub fn run_key(&self, due: DateTime<Utc>) -> String {
        format!("schedule:{}:{}", self.id, due.timestamp())
    }

    /// The idempotency key of the run of the changes reported up to row `up_to`.
    pub fn changes_key(&self, up_to: i64) -> String {
        format!("schedule:{}:changes:{up_to}", self.id)
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
    }

    #[test]
    fn due_times_are_read_in_the_schedules_time_zone() {
        let nightly = When::parse("30 2 * * *", "Europe/Paris").unwrap();
        // 02:30 in Paris is 01:30 UTC in winter and 00:30 UTC in summer.
        assert_eq!(
            nightly.next_after(at(2026, 12, 5, 12, 0)),
            Some(at(2026, 12, 6, 1, 30))
        );
        assert_eq!(
            nightly.next_after(at(2026, 7, 5, 12, 0)),
            Some(at(2026, 7, 6, 0, 30))
        );
        let after = at(2026, 12, 5, 12, 0) + chrono::TimeDelta::milliseconds(732);
        assert_eq!(
            nightly.next_after(after),
            Some(at(2026, 12, 6, 1, 30)),
            "due times fall on whole seconds"
        );
        let utc = When::parse("*/15 * * * *", "").unwrap();
        assert_eq!(utc.time_zone(), "UTC");
        assert_eq!(
            utc.next_after(at(2026, 12, 5, 10, 15)),
            Some(at(2026, 12, 5, 10, 30))
        );
    }

    #[test]
    fn a_run_of_changes_lists_everything_after_a_rescan_or_beyond_the_limits() {
        let keys = |n: usize| (0..n).map(|i| format!("k{i}")).collect::<Vec<_>>();
        assert_eq!(Changes::new(7, keys(3)).keys(), Some(&keys(3)[..]));
        let limit = MAX_CHANGED_KEYS as usize;
        assert_eq!(
            Changes::new(7, keys(limit)).keys().map(<[_]>::len),
            Some(limit)
        );
        assert_eq!(Changes::new(7, keys(limit + 1)).keys(), None);
        let mut rescan = keys(2);
        rescan.push(RESCAN_KEY.to_owned());
        assert_eq!(Changes::new(7, rescan).keys(), None);
        let reported = ["reads/a.bam", "reads", "re", "tmp/x", "readsX/y"].map(String::from);
        assert_eq!(
            Changes::new(7, reported.to_vec()).keys_under("reads/"),
            Some(vec!["reads/a.bam".to_owned(), "reads".to_owned()]),
            "a key under the prefix, or a directory above it"
        );
        assert_eq!(
            Changes::new(7, vec!["tmp/x".to_owned()]).keys_under("reads/"),
            Some(Vec::new())
        );
        assert_eq!(
            Changes::new(7, reported.to_vec())
                .keys_under("")
                .map(|k| k.len()),
            Some(reported.len())
        );
        let long = vec!["x".repeat(1000); 300];
        assert_eq!(
            Changes::new(7, long).keys(),
            None,
            "more than 256 KiB of keys"
        );
    }

    #[test]
    fn bad_expressions_and_zones_name_their_field() {
        for (cron, zone, field) in [
            ("0 2 * *", "UTC", "cron"),
            ("* * * * * *", "UTC", "cron"),
            ("61 2 * * *", "UTC", "cron"),
            ("0 2 * * nope", "UTC", "cron"),
            ("0 2 * * *", "Mars/Olympus", "time_zone"),
        ] {
            match When::parse(cron, zone) {
                Err(Error::InvalidArgument { field: f, .. }) => {
                    assert_eq!(f, field, "{cron:?} {zone:?}")
                }
                other => panic!("{cron:?} {zone:?}: {other:?}"),
            }
        }
    }
}
