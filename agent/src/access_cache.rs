//! The two sites of each job this agent runs, as the control plane last handed them,
//! kept a short while for the job's next tasks.
//!
//! Every task starts from its job's access, and asking for it costs the control plane
//! a write (it records which agent holds the job) besides reading both sites and their
//! credentials. On a job of a hundred small tasks the agent waited on those answers as
//! long as it copied. Access is kept per job and attempt, so a new attempt asks again,
//! and for [`KEEP`] at most, so changed credentials reach the next tasks soon after.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use ferry_storage::SiteAccess;

/// How long a job's access is reused after the control plane handed it.
pub const KEEP: Duration = Duration::from_secs(30);

/// A job's source and destination.
pub type JobAccess = (SiteAccess, SiteAccess);

/// The access of the jobs this agent ran tasks of lately, by job and attempt.
#[derive(Default)]
pub struct AccessCache {
    entries: Mutex<HashMap<(String, u32), (Instant, JobAccess)>>,
}

impl AccessCache {
    /// The access of `job` at `attempt`, if it was handed less than [`KEEP`] before `now`.
    pub fn get(&self, job: &str, attempt: u32, now: Instant) -> Option<JobAccess> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let (handed, access) = entries.get(&(job.to_owned(), attempt))?;
        (now.duration_since(*handed) < KEEP).then(|| access.clone())
    }

    /// Keeps `access` of `job` at `attempt`, handed at `now`, and forgets what is older
    /// than [`KEEP`].
    pub fn put(&self, job: &str, attempt: u32, access: JobAccess, now: Instant) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.retain(|_, (handed, _)| now.duration_since(*handed) < KEEP);
        entries.insert((job.to_owned(), attempt), (now, access));
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn site(uri: &str) -> SiteAccess {
        SiteAccess {
            uri: uri.to_owned(),
            options: BTreeMap::new(),
            credentials: BTreeMap::new(),
            path: "d".to_owned(),
        }
    }

    #[test]
    fn access_is_reused_for_its_job_and_attempt_until_it_is_too_old() {
        let cache = AccessCache::default();
        let t0 = Instant::now();
        assert!(cache.get("j", 1, t0).is_none(), "nothing handed yet");
        cache.put("j", 1, (site("file:///a"), site("file:///b")), t0);

        let (src, dst) = cache.get("j", 1, t0 + KEEP / 2).unwrap();
        assert_eq!(
            (src.uri.as_str(), dst.uri.as_str()),
            ("file:///a", "file:///b")
        );
        assert!(
            cache.get("j", 2, t0).is_none(),
            "another attempt asks again"
        );
        assert!(cache.get("k", 1, t0).is_none(), "another job asks again");
        assert!(cache.get("j", 1, t0 + KEEP).is_none(), "too old");

        // Handing another job's access forgets what is too old.
        cache.put("k", 1, (site("file:///c"), site("file:///d")), t0 + KEEP);
        assert_eq!(cache.entries.lock().unwrap().len(), 1);
    }
}
