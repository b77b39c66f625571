//! The agent's Prometheus metrics, served at `GET /metrics` on `metrics.listen`
//! (docs/metrics.md lists them): what it copied and verified, what failed and was
//! retried, what it holds in flight, and how long its tasks take.

use std::{sync::LazyLock, time::Instant};

use ferry_storage::ObjectError;
use ferry_telemetry::metrics::{
    self as m, Histogram, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
};

static INFO: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    m::int_gauge_vec(
        "ferry_agent_info",
        "Always 1: the site this agent serves, its id and version.",
        &["site", "agent_id", "version"],
    )
});
static OBJECTS_COPIED: LazyLock<IntCounter> = LazyLock::new(|| {
    m::int_counter(
        "ferry_agent_objects_copied_total",
        "Objects copied to the destination.",
    )
});
static BYTES_COPIED: LazyLock<IntCounter> = LazyLock::new(|| {
    m::int_counter(
        "ferry_agent_bytes_copied_total",
        "Bytes of the objects copied to the destination.",
    )
});
static OBJECTS_VERIFIED: LazyLock<IntCounter> = LazyLock::new(|| {
    m::int_counter(
        "ferry_agent_objects_verified_total",
        "Objects whose destination copy was verified.",
    )
});
static BYTES_VERIFIED: LazyLock<IntCounter> = LazyLock::new(|| {
    m::int_counter(
        "ferry_agent_bytes_verified_total",
        "Bytes of the objects verified.",
    )
});
static ERRORS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    m::int_counter_vec(
        "ferry_agent_object_errors_total",
        "Objects that failed, by error kind and operation.",
        &["kind", "operation"],
    )
});
static RETRIES: LazyLock<IntCounter> = LazyLock::new(|| {
    m::int_counter(
        "ferry_agent_retries_total",
        "Attempts repeated after a temporary failure.",
    )
});
static IN_FLIGHT: LazyLock<IntGauge> = LazyLock::new(|| {
    m::int_gauge(
        "ferry_agent_bytes_in_flight",
        "Bytes of the objects being copied now.",
    )
});
static TASKS_RUNNING: LazyLock<IntGauge> =
    LazyLock::new(|| m::int_gauge("ferry_agent_tasks_running", "Tasks this agent runs now."));
static TASK_SECONDS: LazyLock<HistogramVec> = LazyLock::new(|| {
    m::histogram_vec(
        "ferry_agent_task_duration_seconds",
        "How long tasks took, by kind and outcome.",
        &["kind", "outcome"],
        m::DURATION_BUCKETS,
    )
});
static OBJECT_SIZE: LazyLock<Histogram> = LazyLock::new(|| {
    m::histogram(
        "ferry_agent_object_size_bytes",
        "Sizes of the objects copied.",
        m::SIZE_BUCKETS,
    )
});

/// Registers every metric (so each is exported from the start) and says which site
/// and agent this is.
pub fn init(site: &str, agent_id: &str) {
    m::register_process_metrics();
    INFO.with_label_values(&[site, agent_id, env!("CARGO_PKG_VERSION")])
        .set(1);
    for counter in [
        &OBJECTS_COPIED,
        &BYTES_COPIED,
        &OBJECTS_VERIFIED,
        &BYTES_VERIFIED,
        &RETRIES,
    ] {
        LazyLock::force(counter);
    }
    // Every kind and operation at zero: an error's first occurrence is a rate's step.
    use ferry_storage::{ErrorKind as K, Operation as O};
    for kind in [
        K::NotFound,
        K::PermissionDenied,
        K::Temporary,
        K::Invalid,
        K::Other,
    ] {
        for operation in [
            O::List,
            O::Stat,
            O::Read,
            O::Write,
            O::Copy,
            O::Delete,
            O::Verify,
        ] {
            ERRORS.with_label_values(&[kind_label(kind).as_str(), operation.as_str()]);
        }
    }
    LazyLock::force(&IN_FLIGHT);
    LazyLock::force(&TASKS_RUNNING);
    LazyLock::force(&TASK_SECONDS);
    LazyLock::force(&OBJECT_SIZE);
}

/// An object copied (not merely found already there).
pub fn copied(bytes: u64) {
    OBJECTS_COPIED.inc();
    BYTES_COPIED.inc_by(bytes);
    OBJECT_SIZE.observe(bytes as f64);
}

/// An object's copy verified.
pub fn verified(bytes: u64) {
    OBJECTS_VERIFIED.inc();
    BYTES_VERIFIED.inc_by(bytes);
}

/// An object that failed for good.
pub fn failed(error: &ObjectError) {
    let kind = kind_label(error.kind);
    ERRORS
        .with_label_values(&[kind.as_str(), error.operation.as_str()])
        .inc();
}

/// One more attempt after a temporary failure.
pub fn retried() {
    RETRIES.inc();
}

/// Counts `bytes` in flight until dropped.
pub struct InFlight(i64);

impl InFlight {
    pub fn new(bytes: u64) -> Self {
        let bytes = i64::try_from(bytes).unwrap_or(i64::MAX);
        IN_FLIGHT.add(bytes);
        InFlight(bytes)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        IN_FLIGHT.sub(self.0);
    }
}

/// A running task: counted while it runs, timed by kind and outcome when it ends.
/// Dropped without [`RunningTask::finish`], it counts as `cancelled`.
pub struct RunningTask {
    kind: &'static str,
    started: Instant,
    outcome: &'static str,
}

impl RunningTask {
    pub fn start(kind: &'static str) -> Self {
        TASKS_RUNNING.inc();
        RunningTask {
            kind,
            started: Instant::now(),
            outcome: "cancelled",
        }
    }

    /// `ok`, `failed` or `cancelled`.
    pub fn finish(mut self, outcome: &'static str) {
        self.outcome = outcome;
    }
}

impl Drop for RunningTask {
    fn drop(&mut self) {
        TASKS_RUNNING.dec();
        TASK_SECONDS
            .with_label_values(&[self.kind, self.outcome])
            .observe(self.started.elapsed().as_secs_f64());
    }
}

/// `not_found`, `permission_denied`, …
fn kind_label(kind: ferry_storage::ErrorKind) -> String {
    kind.as_str().replace(' ', "_")
}
