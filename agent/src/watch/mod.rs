//! Continuous syncs' watchers. Each heartbeat's answer names the continuous syncs whose
//! datasets lie on this agent's site; for each, a watcher follows the dataset's
//! directory through the file system's notifications (inotify on Linux, through the
//! `notify` crate) and reports the keys that changed once they settle: no event for
//! [`SETTLE`], or [`MAX_WAIT`] after the first for a file written without pause. The
//! control plane runs a sync of those keys alone.
//!
//! A watcher cannot see what happened while it was not watching, nor what its event
//! queue dropped: it then reports a rescan (when it starts, when the queue overflowed,
//! when its reports could not be delivered for long), and the next run lists
//! everything. Keys are reported as paths, files or directories alike: the run looks
//! below a key that is no file at either end. A file the sync's filter does not take
//! by its prefix and globs is left out (a `*.csv` sync's editors' swap files start no
//! run); a directory, or a path whose kind cannot be told, is always reported.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use ferry_proto::v1 as pb;
use ferry_storage::{ObjectFilter, Store};
use notify::{Event, RecursiveMode, Watcher};
use tokio::{sync::mpsc, time::Instant};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, info_span, warn, Instrument};

use self::changes::{key_filter, keys_of, names_a_file, worth_reporting, Settled, Settling};
use crate::control::ControlPlane;

mod changes;

/// How often settled keys are looked for.
const TICK: Duration = Duration::from_millis(250);
/// Keys per report (the control plane's limit).
const REPORT_KEYS: usize = 1000;
/// Events queued between the notification thread and the watcher; beyond, they are
/// dropped and a rescan reported.
const EVENT_QUEUE: usize = 16_384;
/// Keys held for reports the control plane did not take; beyond, they are dropped and
/// a rescan reported instead.
const MAX_HELD_KEYS: usize = 100_000;
/// How long a watcher waits before trying again to watch a directory it could not.
const RETRY: Duration = Duration::from_secs(5);

/// The watchers this agent runs, by schedule id.
pub struct Watches {
    control: Arc<ControlPlane>,
    running: Mutex<HashMap<String, Running>>,
}

struct Running {
    path: String,
    stop: CancellationToken,
}

impl Watches {
    pub fn new(control: Arc<ControlPlane>) -> Self {
        Watches {
            control,
            running: Mutex::new(HashMap::new()),
        }
    }

    /// Starts a watcher for each watch a heartbeat named that none runs for yet (or
    /// whose dataset moved), and stops those it no longer names. A schedule's sync,
    /// its filter included, is fixed when the schedule is created.
    pub fn reconcile(&self, wanted: &[pb::Watch]) {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        running.retain(|schedule, r| {
            let keep = wanted
                .iter()
                .any(|w| &w.schedule == schedule && w.path == r.path);
            if !keep {
                info!(schedule, path = %r.path, "continuous sync no longer watched here");
                r.stop.cancel();
            }
            keep
        });
        for w in wanted {
            if running.contains_key(&w.schedule) {
                continue;
            }
            let stop = CancellationToken::new();
            let span = info_span!("watch", schedule = %w.schedule, path = %w.path);
            tokio::spawn(
                watch(
                    self.control.clone(),
                    w.schedule.clone(),
                    w.path.clone(),
                    key_filter(w.filter.as_ref()),
                    stop.clone(),
                )
                .instrument(span),
            );
            running.insert(
                w.schedule.clone(),
                Running {
                    path: w.path.clone(),
                    stop,
                },
            );
        }
    }

    /// Stops every watcher.
    pub fn stop(&self) {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        for (_, r) in running.drain() {
            r.stop.cancel();
        }
    }
}

/// Watches the dataset at `path` of this agent's site for `schedule` until `stop`,
/// leaving out the files `filter` does not take.
async fn watch(
    control: Arc<ControlPlane>,
    schedule: String,
    path: String,
    filter: Option<Arc<ObjectFilter>>,
    stop: CancellationToken,
) {
    let Some(dir) = local_directory(&control, &path, &stop).await else {
        return;
    };
    loop {
        let (events, queue) = mpsc::channel(EVENT_QUEUE);
        let overflowed = Arc::new(AtomicBool::new(false));
        match start_watcher(&dir, events, overflowed.clone()) {
            Ok(watcher) => {
                info!(dir = %dir.display(), "watching for changes");
                let mut reporter = Reporter::new(
                    control.clone(),
                    schedule.clone(),
                    dir.clone(),
                    filter.clone(),
                );
                follow(&dir, queue, &overflowed, &mut reporter, &stop).await;
                drop(watcher);
                // What is settled by now still goes out; the rest the next start's
                // rescan covers.
                reporter.flush_all().await;
                return;
            }
            Err(e) => {
                warn!(dir = %dir.display(), error = %e, "cannot watch the dataset's directory; trying again");
                tokio::select! {
                    () = tokio::time::sleep(RETRY) => {}
                    () = stop.cancelled() => return,
                }
            }
        }
    }
}

/// The local directory of the dataset at `path`, from the site's access: `None` when
/// the site is not a file system (nothing to watch) or `stop` came first.
async fn local_directory(
    control: &ControlPlane,
    path: &str,
    stop: &CancellationToken,
) -> Option<PathBuf> {
    loop {
        let found: Result<(), String> = match control.site_access(path).await {
            Ok(access) => match Store::open(&access) {
                Ok(store) if store.op().info().scheme() == "fs" => {
                    return Some(PathBuf::from(store.op().info().root()));
                }
                Ok(_) => Err(format!("{} is not a file system", access.uri)),
                Err(e) => Err(e.to_string()),
            },
            Err(e) => Err(e.message().to_owned()),
        };
        if let Err(reason) = found {
            warn!(
                reason,
                "cannot resolve the dataset's directory; trying again"
            );
        }
        tokio::select! {
            () = tokio::time::sleep(RETRY) => {}
            () = stop.cancelled() => return None,
        }
    }
}

/// A recursive watcher of `dir` whose events go to `events`; a full queue drops them
/// and sets `overflowed`.
fn start_watcher(
    dir: &Path,
    events: mpsc::Sender<Event>,
    overflowed: Arc<AtomicBool>,
) -> notify::Result<notify::RecommendedWatcher> {
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<Event>| {
        let delivered = match event {
            Ok(event) => events.try_send(event).is_ok(),
            // An error of the watch itself (a queue overflow reported by the kernel, a
            // directory that could not be watched): what it hid must be listed.
            Err(_) => false,
        };
        if !delivered {
            overflowed.store(true, Ordering::Relaxed);
        }
    })?;
    watcher.watch(dir, RecursiveMode::Recursive)?;
    Ok(watcher)
}

/// Gathers events into settling keys and reports them, until `stop`.
async fn follow(
    dir: &Path,
    mut queue: mpsc::Receiver<Event>,
    overflowed: &AtomicBool,
    reporter: &mut Reporter,
    stop: &CancellationToken,
) {
    // Changes made before the watch began are unknown: the first run lists everything.
    reporter.rescan = true;
    let mut tick = tokio::time::interval(TICK);
    loop {
        tokio::select! {
            event = queue.recv() => match event {
                Some(event) => {
                    let now = Instant::now();
                    match keys_of(dir, &event) {
                        Some(keys) => {
                            let file = names_a_file(&event.kind);
                            keys.into_iter().for_each(|k| reporter.settling.touch(k, file, now));
                        }
                        None => reporter.rescan = true,
                    }
                }
                None => return,
            },
            _ = tick.tick() => {
                if overflowed.swap(false, Ordering::Relaxed) {
                    warn!("events were lost; the next run lists everything");
                    reporter.rescan = true;
                }
                reporter.flush(Instant::now()).await;
            }
            () = stop.cancelled() => return,
        }
    }
}

/// Reports a watcher's settled keys, holding those the control plane did not take.
struct Reporter {
    control: Arc<ControlPlane>,
    schedule: String,
    /// The watched directory, and the sync's filter, whose files alone are reported.
    dir: PathBuf,
    filter: Option<Arc<ObjectFilter>>,
    settling: Settling,
    rescan: bool,
    held: Vec<String>,
    /// No report before this, after one failed.
    backoff_until: Option<Instant>,
    failures: u32,
}

impl Reporter {
    fn new(
        control: Arc<ControlPlane>,
        schedule: String,
        dir: PathBuf,
        filter: Option<Arc<ObjectFilter>>,
    ) -> Self {
        Reporter {
            control,
            schedule,
            dir,
            filter,
            settling: Settling::default(),
            rescan: false,
            held: Vec::new(),
            backoff_until: None,
            failures: 0,
        }
    }

    async fn flush(&mut self, now: Instant) {
        let settled = self.settling.take_settled(now);
        self.hold_worth_reporting(settled).await;
        if self.backoff_until.is_some_and(|until| now < until) {
            return;
        }
        self.send().await;
    }

    async fn flush_all(&mut self) {
        let all = self.settling.take_all();
        self.hold_worth_reporting(all).await;
        self.send().await;
    }

    /// Holds those of `settled` worth a run; if they could not be judged, a rescan
    /// instead.
    async fn hold_worth_reporting(&mut self, settled: Vec<Settled>) {
        match worth_reporting(&self.dir, self.filter.as_ref(), settled).await {
            Some(keys) => self.hold(keys),
            None => self.rescan = true,
        }
    }

    fn hold(&mut self, keys: Vec<String>) {
        self.held.extend(keys);
        if self.held.len() > MAX_HELD_KEYS {
            warn!(
                keys = self.held.len(),
                "too many changes held back; the next run lists everything instead"
            );
            self.held.clear();
            self.rescan = true;
        }
    }

    /// Sends the held keys and any rescan, a report of at most [`REPORT_KEYS`] keys at
    /// a time; on a failure keeps what was not sent and backs off.
    async fn send(&mut self) {
        while self.rescan || !self.held.is_empty() {
            let n = self.held.len().min(REPORT_KEYS);
            let keys: Vec<String> = self.held[..n].to_vec();
            match self
                .control
                .report_changes(&self.schedule, keys, self.rescan)
                .await
            {
                Ok(()) => {
                    debug!(keys = n, rescan = self.rescan, "changes reported");
                    self.held.drain(..n);
                    self.rescan = false;
                    self.failures = 0;
                    self.backoff_until = None;
                }
                Err(e) => {
                    self.failures += 1;
                    let wait = Duration::from_millis(500 << self.failures.min(6));
                    warn!(error = %e.message(), retry_ms = wait.as_millis() as u64, "reporting changes failed; keeping them");
                    self.backoff_until = Some(Instant::now() + wait);
                    return;
                }
            }
        }
    }
}
