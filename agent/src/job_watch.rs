//! One watcher per job on this agent, shared by all of the job's tasks running here: it
//! asks the control plane about the job every [`POLL`], stops the tasks whose attempt
//! is over (the job ended, or was retried), and passes a changed bandwidth limit on to
//! the job's pace. With a watcher per task, an agent running four tasks of a job asked
//! four times as often for the same answer.

use std::{
    collections::HashMap,
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex, PoisonError, Weak},
    time::Duration,
};

use ferry_proto::v1 as pb;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::bandwidth::JobBandwidths;

/// How often a job is looked up while tasks of it run here.
pub const POLL: Duration = Duration::from_secs(2);

/// Looks a job up; `None` when the control plane did not answer (the next poll asks
/// again).
pub type FetchJob =
    Arc<dyn Fn(String) -> Pin<Box<dyn Future<Output = Option<pb::Job>> + Send>> + Send + Sync>;

pub struct JobWatches {
    fetch: FetchJob,
    bandwidths: Arc<JobBandwidths>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    jobs: HashMap<String, Watched>,
    next_ticket: u64,
}

/// A job with tasks running here, and the poller that looks it up for them.
struct Watched {
    tasks: HashMap<u64, Watcher>,
    poller: JoinHandle<()>,
}

/// A task's attempt and what stops it.
struct Watcher {
    attempt: u32,
    cancel: Vec<CancellationToken>,
}

/// A task's place among its job's watchers; leaving it drops the task from them, and the
/// job's poller stops with its last task.
pub struct Watch {
    registry: Arc<JobWatches>,
    job: String,
    ticket: u64,
}

impl Drop for Watch {
    fn drop(&mut self) {
        let mut state = self.registry.lock();
        if let Some(watched) = state.jobs.get_mut(&self.job) {
            watched.tasks.remove(&self.ticket);
            if watched.tasks.is_empty() {
                watched.poller.abort();
                state.jobs.remove(&self.job);
            }
        }
    }
}

impl JobWatches {
    pub fn new(fetch: FetchJob, bandwidths: Arc<JobBandwidths>) -> Arc<Self> {
        Arc::new(JobWatches {
            fetch,
            bandwidths,
            state: Mutex::default(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Watches `job` for a task of `attempt`: every token of `cancel` is cancelled once
    /// the job ended or moved to another attempt. The first task of a job here starts
    /// its poller, which asks at once.
    pub fn watch(self: &Arc<Self>, job: &str, attempt: u32, cancel: &[CancellationToken]) -> Watch {
        let mut state = self.lock();
        let ticket = state.next_ticket;
        state.next_ticket += 1;
        let watched = state.jobs.entry(job.to_owned()).or_insert_with(|| Watched {
            tasks: HashMap::new(),
            poller: tokio::spawn(poll(Arc::downgrade(self), job.to_owned())),
        });
        watched.tasks.insert(
            ticket,
            Watcher {
                attempt,
                cancel: cancel.to_vec(),
            },
        );
        Watch {
            registry: self.clone(),
            job: job.to_owned(),
            ticket,
        }
    }

    /// Applies an answer about `job` to its tasks here and to its pace.
    fn apply(&self, job: &pb::Job) {
        let ended = matches!(
            pb::JobState::try_from(job.state),
            Ok(pb::JobState::Completed | pb::JobState::Failed | pb::JobState::Cancelled)
        );
        {
            let state = self.lock();
            let Some(watched) = state.jobs.get(&job.id) else {
                return;
            };
            for watcher in watched.tasks.values() {
                let over = ended || watcher.attempt != job.attempt;
                if over && !watcher.cancel.iter().all(CancellationToken::is_cancelled) {
                    info!(job_id = %job.id, attempt = watcher.attempt, "job ended or moved to another attempt; stopping");
                    watcher.cancel.iter().for_each(CancellationToken::cancel);
                }
            }
        }
        let limit = Some(job.bandwidth_limit_bytes_per_sec).filter(|l| *l > 0);
        if self.bandwidths.set_limit(&job.id, limit) {
            info!(job_id = %job.id, bytes_per_sec = limit.unwrap_or(0), "bandwidth limit changed");
        }
    }
}

/// Looks `job` up every [`POLL`], the first time at once, until its last task here ends.
async fn poll(registry: Weak<JobWatches>, job: String) {
    let Some(fetch) = registry.upgrade().map(|r| r.fetch.clone()) else {
        return;
    };
    let mut tick = tokio::time::interval(POLL);
    loop {
        tick.tick().await;
        if let Some(answer) = fetch(job.clone()).await {
            match registry.upgrade() {
                Some(registry) => registry.apply(&answer),
                None => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// A control plane of one job, counting the lookups.
    struct Jobs {
        job: Mutex<pb::Job>,
        lookups: AtomicUsize,
    }

    fn registry(jobs: &Arc<Jobs>, bandwidths: Arc<JobBandwidths>) -> Arc<JobWatches> {
        let jobs = jobs.clone();
        let fetch: FetchJob = Arc::new(move |_id| {
            let jobs = jobs.clone();
            Box::pin(async move {
                jobs.lookups.fetch_add(1, Ordering::SeqCst);
                Some(jobs.job.lock().unwrap().clone())
            })
        });
        JobWatches::new(fetch, bandwidths)
    }

    fn running(attempt: u32, limit: u64) -> pb::Job {
        pb::Job {
            id: "j".into(),
            state: pb::JobState::Copying as i32,
            attempt,
            bandwidth_limit_bytes_per_sec: limit,
            ..Default::default()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_tasks_of_a_job_share_one_lookup_and_stop_when_their_attempt_is_over() {
        let jobs = Arc::new(Jobs {
            job: Mutex::new(running(2, 0)),
            lookups: AtomicUsize::new(0),
        });
        let bandwidths = Arc::new(JobBandwidths::default());
        let watches = registry(&jobs, bandwidths.clone());
        let pace = bandwidths.join("j", 0);
        let tasks: Vec<_> = (0..4).map(|_| CancellationToken::new()).collect();
        let stale = CancellationToken::new();
        let _watching: Vec<_> = tasks
            .iter()
            .map(|t| watches.watch("j", 2, std::slice::from_ref(t)))
            .chain([watches.watch("j", 1, std::slice::from_ref(&stale))])
            .collect();

        // Three polls for five tasks: at once, then every two seconds.
        tokio::time::sleep(POLL * 2 + Duration::from_millis(10)).await;
        assert_eq!(jobs.lookups.load(Ordering::SeqCst), 3);
        assert!(stale.is_cancelled(), "a task of an earlier attempt stops");
        assert!(tasks.iter().all(|t| !t.is_cancelled()));

        // A new limit reaches the job's pace at the next poll.
        *jobs.job.lock().unwrap() = running(2, 5_000);
        tokio::time::sleep(POLL).await;
        assert_eq!(pace.bandwidth().rate(), Some(5_000));

        // The job ends: every task of it stops.
        jobs.job.lock().unwrap().state = pb::JobState::Cancelled as i32;
        tokio::time::sleep(POLL).await;
        assert!(tasks.iter().all(CancellationToken::is_cancelled));
    }

    #[tokio::test(start_paused = true)]
    async fn the_poller_stops_with_the_jobs_last_task_here() {
        let jobs = Arc::new(Jobs {
            job: Mutex::new(running(1, 0)),
            lookups: AtomicUsize::new(0),
        });
        let watches = registry(&jobs, Arc::default());
        let first = watches.watch("j", 1, &[CancellationToken::new()]);
        let second = watches.watch("j", 1, &[CancellationToken::new()]);
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(jobs.lookups.load(Ordering::SeqCst), 1);
        drop(first);
        tokio::time::sleep(POLL).await;
        assert_eq!(
            jobs.lookups.load(Ordering::SeqCst),
            2,
            "one task still runs"
        );
        drop(second);
        tokio::time::sleep(POLL * 3).await;
        assert_eq!(jobs.lookups.load(Ordering::SeqCst), 2, "no task runs");
        assert!(watches.lock().jobs.is_empty());

        // A task of the job starting again here starts a new poller, which asks at once.
        let _again = watches.watch("j", 1, &[CancellationToken::new()]);
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(jobs.lookups.load(Ordering::SeqCst), 3);
    }
}
