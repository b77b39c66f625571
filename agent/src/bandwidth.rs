//! Bandwidth pacing: every byte a job copies waits for its slot at the job's rate, so
//! over any stretch of the transfer no more than `rate × elapsed` bytes have gone out.
//! The rate can change while the job runs (`UpdateJob`); slots already handed out keep
//! the old rate. Slots are handed out a [`PACE_QUANTUM`] at a time, however large the
//! chunk that waits for them, which bounds the lag to one quantum per stream in flight.
//!
//! A job's limit holds for the job, not for each of its tasks: the tasks an agent runs
//! of one job share one [`Bandwidth`] ([`JobBandwidths`]), and the agents running tasks
//! of a job split its limit equally, as their heartbeats tell them how many they are.
//! An agent that joins a job other agents already run holds off its first bytes until
//! they have heard of it ([`JOB_JOIN_HOLD`]), so that together they never go faster
//! than the limit while the news travels; and the job's other tasks here wait for the
//! answer its first task here asked for, rather than send at the whole limit meanwhile.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use tokio::{sync::watch, time::Instant};

/// The most bytes one slot covers: a larger chunk waits for several slots in turn, each
/// at the rate of its time.
pub const PACE_QUANTUM: usize = 1 << 20;

/// How often an agent running a job with a bandwidth limit heartbeats, to learn how
/// many agents share the job.
pub const LIMITED_JOB_REFRESH: Duration = Duration::from_secs(1);

/// How long an agent joining a job that other agents run waits before sending: two of
/// their heartbeats, after which each has lowered its share (one heartbeat, plus as
/// long again for the call itself on a busy machine).
pub const JOB_JOIN_HOLD: Duration = Duration::from_secs(2 * LIMITED_JOB_REFRESH.as_secs());

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

    /// Lets no byte go for `hold` from now (bytes already handed out keep their
    /// slots), nor burst after it: the rate starts over when the hold ends.
    pub fn hold_for(&self, hold: Duration) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.busy_until = state.busy_until.max(Instant::now() + hold);
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
    /// Whether a heartbeat has answered since this agent joined the job.
    answered: bool,
    /// Becomes true once the job's first task here has heard back from its heartbeat
    /// (or gave up on it, or ended): until then this agent's share is unknown.
    announced: Arc<watch::Sender<bool>>,
}

impl JobPace {
    fn share(&self) -> Option<u64> {
        self.limit
            .map(|limit| (limit / u64::from(self.agents.max(1))).max(1))
    }
}

/// A limited job whose share on this agent changed with a heartbeat's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShareChange {
    pub job: String,
    /// Agents running tasks of the job, this one included.
    pub agents: u32,
    /// This agent's share of the job's limit, bytes per second.
    pub share: Option<u64>,
    /// How long this agent holds off, having just joined the job.
    pub hold: Option<Duration>,
}

/// What a copy task holds of its job's pace while it runs.
#[derive(Debug)]
pub struct JobLease {
    registry: Arc<JobBandwidths>,
    job: String,
    bandwidth: Arc<Bandwidth>,
    first: bool,
    announced: Arc<watch::Sender<bool>>,
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

    /// Called by the first task once its heartbeat has answered (and the answer was
    /// applied) or failed: the job's other tasks here may go.
    pub fn announced(&self) {
        self.announced.send_replace(true);
    }

    /// Waits, in a task that is not the job's first here, until the first task's
    /// heartbeat has answered: before that this agent's share of a limited job is not
    /// known, and going at the whole limit could take the job past it. A job without a
    /// limit has nothing to wait for.
    pub async fn until_announced(&self) {
        if self.bandwidth.rate().is_none() {
            return;
        }
        let mut announced = self.announced.subscribe();
        // The sender lives as long as this lease, so the wait cannot fail.
        let _ = announced.wait_for(|announced| *announced).await;
    }
}

impl Drop for JobLease {
    fn drop(&mut self) {
        if self.first {
            // A first task that ends before its answer must not hold the others back.
            self.announced.send_replace(true);
        }
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
                answered: false,
                announced: Arc::new(watch::Sender::new(false)),
            }
        });
        pace.tasks += 1;
        JobLease {
            registry: self.clone(),
            job: job.to_owned(),
            bandwidth: pace.bandwidth.clone(),
            first,
            announced: pace.announced.clone(),
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
    /// limited jobs whose share changed.
    ///
    /// The first answer after this agent joined a limited job that others already run
    /// also holds the job's pace here for [`JOB_JOIN_HOLD`]: the others still go at
    /// their old, larger shares until their next heartbeat.
    pub fn set_agents(&self, agents: &HashMap<String, u32>) -> Vec<ShareChange> {
        let mut jobs = self.lock();
        let mut changed = Vec::new();
        for (job, count) in agents {
            let Some(pace) = jobs.get_mut(job) else {
                continue;
            };
            let count = (*count).max(1);
            let joined = !std::mem::replace(&mut pace.answered, true);
            if joined {
                pace.announced.send_replace(true);
            }
            let hold = (joined && count > 1 && pace.limit.is_some()).then_some(JOB_JOIN_HOLD);
            if pace.agents != count {
                pace.agents = count;
                pace.bandwidth.set_rate(pace.share());
                if let Some(hold) = hold {
                    pace.bandwidth.hold_for(hold);
                }
                if pace.limit.is_some() {
                    changed.push(ShareChange {
                        job: job.clone(),
                        agents: count,
                        share: pace.share(),
                        hold,
                    });
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

        // Alone on the job at first; a second agent on it halves this one's share,
        // with no hold (the newcomer holds). The unlimited job stays unlimited.
        let alone = HashMap::from([("j".to_owned(), 1), ("k".to_owned(), 3)]);
        assert!(registry.set_agents(&alone).is_empty());
        let counts = HashMap::from([("j".to_owned(), 2), ("k".to_owned(), 3)]);
        assert_eq!(
            registry.set_agents(&counts),
            [ShareChange {
                job: "j".to_owned(),
                agents: 2,
                share: Some(500_000),
                hold: None
            }]
        );
        let start = Instant::now();
        first.bandwidth().take(500_000).await;
        near(start.elapsed(), Duration::from_secs(1));
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

    /// Whether `lease` still waits for its job's answer after a minute (of paused time).
    async fn still_waiting(lease: &JobLease) -> bool {
        tokio::time::timeout(Duration::from_secs(60), lease.until_announced())
            .await
            .is_err()
    }

    #[tokio::test(start_paused = true)]
    async fn a_jobs_other_tasks_wait_for_the_answer_its_first_task_asked_for() {
        let registry = Arc::new(JobBandwidths::default());

        // Released by the first task once its heartbeat is through, not before.
        let first = registry.join("j", 1_000_000);
        let second = registry.join("j", 1_000_000);
        assert!(
            still_waiting(&second).await,
            "went before the first task's answer"
        );
        first.announced();
        assert!(!still_waiting(&second).await);
        let third = registry.join("j", 1_000_000);
        assert!(!still_waiting(&third).await, "the answer is in for the job");
        drop((first, second, third));

        // Released by a heartbeat's answer for the job, whoever asked.
        let first = registry.join("j", 1_000_000);
        let second = registry.join("j", 1_000_000);
        registry.set_agents(&HashMap::from([("j".to_owned(), 1)]));
        assert!(!still_waiting(&second).await);
        drop((first, second));

        // Released when the first task ends without an answer.
        let first = registry.join("j", 1_000_000);
        let second = registry.join("j", 1_000_000);
        drop(first);
        assert!(!still_waiting(&second).await);
        drop(second);

        // A job without a limit has no share to wait for.
        let _first = registry.join("k", 0);
        let second = registry.join("k", 0);
        assert!(!still_waiting(&second).await);
    }

    #[tokio::test(start_paused = true)]
    async fn an_agent_joining_a_job_others_run_holds_off_until_they_know() {
        let registry = Arc::new(JobBandwidths::default());
        let lease = registry.join("j", 1_000_000);
        let unlimited = registry.join("k", 0);
        let counts = HashMap::from([("j".to_owned(), 3), ("k".to_owned(), 3)]);
        assert_eq!(
            registry.set_agents(&counts),
            [ShareChange {
                job: "j".to_owned(),
                agents: 3,
                share: Some(333_333),
                hold: Some(JOB_JOIN_HOLD)
            }]
        );
        // Nothing goes during the hold, and no burst after it: 333,333 bytes take the
        // hold and one second.
        let start = Instant::now();
        lease.bandwidth().take(333_333).await;
        near(start.elapsed(), JOB_JOIN_HOLD + Duration::from_secs(1));
        // An unlimited job has nothing to hold.
        let start = Instant::now();
        unlimited.bandwidth().take(usize::MAX).await;
        near(start.elapsed(), Duration::ZERO);

        // Only the first answer after joining holds: later changes in the count do not.
        let more = HashMap::from([("j".to_owned(), 4)]);
        assert_eq!(registry.set_agents(&more)[0].hold, None);
        let start = Instant::now();
        lease.bandwidth().take(250_000).await;
        near(start.elapsed(), Duration::from_secs(1));
        // Leaving and joining again is joining again.
        drop(lease);
        let again = registry.join("j", 1_000_000);
        assert_eq!(registry.set_agents(&more)[0].hold, Some(JOB_JOIN_HOLD));
        drop(again);
    }
}
