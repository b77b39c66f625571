//! Bandwidth pacing: every byte a job copies waits for its slot at the job's rate, so
//! over any stretch of the transfer no more than `rate × elapsed` bytes have gone out.
//! The rate can change while the job runs (`UpdateJob`); slots already handed out keep
//! the old rate. Slots are handed out a [`PACE_QUANTUM`] at a time, however large the
//! chunk that waits for them, which bounds the lag to one quantum per stream in flight.
//!
//! A job's limit holds for the job, not for each of its tasks: the tasks an agent runs
//! of one job share one [`Bandwidth`] ([`JobBandwidths`]), and the agents running tasks
//! of a job split its limit equally, as their heartbeats tell them how many they are.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use tokio::time::Instant;

/// The most bytes one slot covers: a larger chunk waits for several slots in turn, each
/// at the rate of its time.
pub const PACE_QUANTUM: usize = 1 << 20;

#[derive(Debug)]
pub struct Bandwidth {
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    /// Bytes per second; `None` is unlimited.
    rate: Option<u64>,
    /// When the bytes handed out so far will have gone out at the rate.
    busy_until: Instant,
}

impl Bandwidth {
    pub fn new(rate: Option<u64>) -> Self {
        Bandwidth {
            state: Mutex::new(State {
                rate: rate.filter(|r| *r > 0),
                busy_until: Instant::now(),
            }),
        }
    }

    /// Sets a new rate for the bytes not yet handed out; `None` or 0 lifts the limit.
    pub fn set_rate(&self, rate: Option<u64>) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.rate = rate.filter(|r| *r > 0);
    }

    pub fn rate(&self) -> Option<u64> {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .rate
    }

    /// Waits until `bytes` may go: the end of their slots after everything handed out
    /// before. Idle time earns no credit, so a pause is never followed by a burst.
    pub async fn take(&self, bytes: usize) {
        let mut left = bytes;
        while left > 0 {
            let slot = left.min(PACE_QUANTUM);
            let until = {
                let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
                let Some(rate) = state.rate else { return };
                let start = state.busy_until.max(Instant::now());
                state.busy_until = start + Duration::from_secs_f64(slot as f64 / rate as f64);
                state.busy_until
            };
            tokio::time::sleep_until(until).await;
            left -= slot;
        }
    }
}

/// The pace of every job this agent runs copy tasks of: one [`Bandwidth`] per job for
/// all of its tasks here, at the job's limit divided among the agents running its
/// tasks (this one included).
#[derive(Debug, Default)]
pub struct JobBandwidths {
    jobs: Mutex<HashMap<String, JobPace>>,
}

#[derive(Debug)]
struct JobPace {
    bandwidth: Arc<Bandwidth>,
    /// This agent's tasks of the job that hold a [`JobLease`].
    tasks: usize,
    /// The job's limit, bytes per second, for all its agents together.
    limit: Option<u64>,
    /// Agents running tasks of the job, as the last heartbeat answered; at least 1.
    agents: u32,
}

impl JobPace {
    fn share(&self) -> Option<u64> {
        self.limit
            .map(|limit| (limit / u64::from(self.agents.max(1))).max(1))
    }
}

/// What a copy task holds of its job's pace while it runs.
#[derive(Debug)]
pub struct JobLease {
    registry: Arc<JobBandwidths>,
    job: String,
    bandwidth: Arc<Bandwidth>,
    first: bool,
}

impl JobLease {
    /// The job's pace on this agent, shared by all its tasks here.
    pub fn bandwidth(&self) -> Arc<Bandwidth> {
        self.bandwidth.clone()
    }

    /// Whether no other task of the job was running here when this one began: the
    /// control plane does not know yet that this agent works on the job.
    pub fn is_first(&self) -> bool {
        self.first
    }
}

impl Drop for JobLease {
    fn drop(&mut self) {
        let mut jobs = self.registry.lock();
        if let Some(pace) = jobs.get_mut(&self.job) {
            pace.tasks -= 1;
            if pace.tasks == 0 {
                jobs.remove(&self.job);
            }
        }
    }
}

impl JobBandwidths {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, JobPace>> {
        self.jobs.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Joins a copy task to its job's pace, created at `limit` (0 is none) for this
    /// agent alone if no other task of the job runs here.
    pub fn join(self: &Arc<Self>, job: &str, limit: u64) -> JobLease {
        let mut jobs = self.lock();
        let first = !jobs.contains_key(job);
        let pace = jobs.entry(job.to_owned()).or_insert_with(|| {
            let limit = Some(limit).filter(|l| *l > 0);
            JobPace {
                bandwidth: Arc::new(Bandwidth::new(limit)),
                tasks: 0,
                limit,
                agents: 1,
            }
        });
        pace.tasks += 1;
        JobLease {
            registry: self.clone(),
            job: job.to_owned(),
            bandwidth: pace.bandwidth.clone(),
            first,
        }
    }

    /// Sets a job's limit (`None` lifts it). Returns whether it changed; a job with no
    /// copy task running here is left alone.
    pub fn set_limit(&self, job: &str, limit: Option<u64>) -> bool {
        let mut jobs = self.lock();
        let Some(pace) = jobs.get_mut(job) else {
            return false;
        };
        let limit = limit.filter(|l| *l > 0);
        if pace.limit == limit {
            return false;
        }
        pace.limit = limit;
        pace.bandwidth.set_rate(pace.share());
        true
    }

    /// Applies a heartbeat's answer: how many agents run tasks of each job. Returns the
    /// limited jobs whose share changed, with the new count and share.
    pub fn set_agents(&self, agents: &HashMap<String, u32>) -> Vec<(String, u32, Option<u64>)> {
        let mut jobs = self.lock();
        let mut changed = Vec::new();
        for (job, count) in agents {
            let Some(pace) = jobs.get_mut(job) else {
                continue;
            };
            let count = (*count).max(1);
            if pace.agents != count {
                pace.agents = count;
                pace.bandwidth.set_rate(pace.share());
                if pace.limit.is_some() {
                    changed.push((job.clone(), count, pace.share()));
                }
            }
        }
        changed
    }

    /// Whether any job with a limit has a copy task running here.
    pub fn any_limited(&self) -> bool {
        self.lock().values().any(|pace| pace.limit.is_some())
    }

    /// The jobs this agent runs copy tasks of, for its heartbeat.
    pub fn jobs(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Paused time moves in whole timer ticks; a millisecond or two over is the wheel.
    fn near(elapsed: Duration, expected: Duration) {
        assert!(
            elapsed >= expected && elapsed <= expected + Duration::from_millis(5),
            "{elapsed:?}, expected {expected:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn bytes_go_at_the_rate_and_the_rate_can_change() {
        let limit = Bandwidth::new(Some(1_000_000));
        let start = Instant::now();
        for _ in 0..10 {
            limit.take(100_000).await;
        }
        near(start.elapsed(), Duration::from_secs(1));
        limit.set_rate(Some(250_000));
        limit.take(500_000).await;
        near(start.elapsed(), Duration::from_secs(3));
        limit.set_rate(None);
        limit.take(usize::MAX).await;
        near(start.elapsed(), Duration::from_secs(3));
    }

    #[tokio::test(start_paused = true)]
    async fn a_lower_rate_reaches_the_rest_of_a_large_chunk() {
        let limit = std::sync::Arc::new(Bandwidth::new(Some(1 << 20)));
        let start = Instant::now();
        let chunk = {
            let limit = limit.clone();
            tokio::spawn(async move { limit.take(4 * PACE_QUANTUM).await })
        };
        // After the first quantum's second, the other three go at half the rate.
        tokio::time::sleep(Duration::from_millis(500)).await;
        limit.set_rate(Some(1 << 19));
        chunk.await.unwrap();
        near(start.elapsed(), Duration::from_secs(7));
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_streams_share_the_rate() {
        let limit = std::sync::Arc::new(Bandwidth::new(Some(1_000_000)));
        let start = Instant::now();
        let streams: Vec<_> = (0..4)
            .map(|_| {
                let limit = limit.clone();
                tokio::spawn(async move {
                    for _ in 0..5 {
                        limit.take(100_000).await;
                    }
                })
            })
            .collect();
        for s in streams {
            s.await.unwrap();
        }
        near(start.elapsed(), Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn the_tasks_of_a_job_share_its_pace_and_its_agents_split_the_limit() {
        let registry = Arc::new(JobBandwidths::default());
        let first = registry.join("j", 1_000_000);
        let second = registry.join("j", 1_000_000);
        let other = registry.join("k", 0);
        assert!(first.is_first() && !second.is_first() && other.is_first());
        assert!(registry.any_limited());
        assert!(Arc::ptr_eq(&first.bandwidth(), &second.bandwidth()));
        let mut jobs = registry.jobs();
        jobs.sort();
        assert_eq!(jobs, ["j", "k"]);

        // Two tasks of one job, 500 kB each, take the time of 1 MB at the job's limit.
        let start = Instant::now();
        let (a, b) = (first.bandwidth(), second.bandwidth());
        tokio::join!(a.take(500_000), b.take(500_000));
        near(start.elapsed(), Duration::from_secs(1));

        // A second agent on the job halves this one's share; the unlimited job stays so.
        let counts = HashMap::from([("j".to_owned(), 2), ("k".to_owned(), 3)]);
        assert_eq!(
            registry.set_agents(&counts),
            [("j".to_owned(), 2, Some(500_000))]
        );
        assert_eq!(first.bandwidth().rate(), Some(500_000));
        assert_eq!(other.bandwidth().rate(), None);
        assert!(registry.set_agents(&counts).is_empty(), "nothing changed");

        // A new limit is split the same way; the same limit again changes nothing.
        assert!(registry.set_limit("j", Some(3_000_000)));
        assert!(!registry.set_limit("j", Some(3_000_000)));
        assert_eq!(first.bandwidth().rate(), Some(1_500_000));
        assert!(registry.set_limit("j", None));
        assert_eq!(first.bandwidth().rate(), None);

        // The job's pace lasts as long as one of its tasks runs here.
        drop(first);
        assert_eq!(registry.jobs().len(), 2);
        drop(second);
        assert_eq!(registry.jobs(), ["k"]);
        assert!(!registry.any_limited(), "k has no limit");
        assert!(!registry.set_limit("j", Some(1)), "no task of it runs here");
        let again = registry.join("j", 7);
        assert!(again.is_first());
        assert_eq!(again.bandwidth().rate(), Some(7));
    }
}
