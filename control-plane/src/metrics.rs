//! Process counters, served in the Prometheus text format at `GET /metrics` on the gRPC
//! port. Counters are process-wide statics: they count what this process did since it
//! started, which is what a scraper expects of a counter.

use std::{
    fmt::Write,
    sync::atomic::{AtomicU64, Ordering},
};

pub struct Counter {
    name: &'static str,
    help: &'static str,
    /// Prometheus label pairs without braces, e.g. `reason="malformed"`; may be empty.
    labels: &'static str,
    value: AtomicU64,
}

impl Counter {
    const fn new(name: &'static str, labels: &'static str, help: &'static str) -> Self {
        Counter {
            name,
            help,
            labels,
            value: AtomicU64::new(0),
        }
    }

    pub fn add(&self, n: u64) {
        self.value.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.value.load(Ordering::Relaxed)
    }
}

const DROPPED_HELP: &str = "Access events the aggregator let go, by reason.";

pub static ACCESS_EVENTS_ACCEPTED: Counter = Counter::new(
    "ferry_access_events_accepted_total",
    "",
    "Access events validated and stored in FERRY_EVENTS.",
);
pub static ACCESS_EVENTS_FOLDED: Counter = Counter::new(
    "ferry_access_events_folded_total",
    "",
    "Access events folded into hourly aggregates.",
);
pub static ACCESS_EVENTS_DROPPED_DELETED: Counter = Counter::new(
    "ferry_access_events_dropped_total",
    r#"reason="dataset_deleted""#,
    DROPPED_HELP,
);
pub static ACCESS_EVENTS_MALFORMED: Counter = Counter::new(
    "ferry_access_events_dropped_total",
    r#"reason="malformed""#,
    DROPPED_HELP,
);
pub static RECOMMENDATIONS_COMPUTED: Counter = Counter::new(
    "ferry_recommendations_computed_total",
    "",
    "Recommendations computed and recorded.",
);
pub static MODELS_TRAINED: Counter = Counter::new(
    "ferry_demand_models_trained_total",
    "",
    "Demand models trained, in use or not.",
);
pub static AUTOPILOT_MIGRATIONS: Counter = Counter::new(
    "ferry_autopilot_migrations_started_total",
    "",
    "Migrations the autopilot started on auto-migrate policies.",
);

const REFUSED_HELP: &str = "Calls refused by authentication or authorization, by code.";

pub static CALLS_UNAUTHENTICATED: Counter = Counter::new(
    "ferry_calls_refused_total",
    r#"code="unauthenticated""#,
    REFUSED_HELP,
);
pub static CALLS_PERMISSION_DENIED: Counter = Counter::new(
    "ferry_calls_refused_total",
    r#"code="permission_denied""#,
    REFUSED_HELP,
);
pub static AUDIT_REFUSALS_UNRECORDED: Counter = Counter::new(
    "ferry_audit_refusals_unrecorded_total",
    "",
    "Unauthenticated calls beyond the audit log's rate limit, counted but not recorded.",
);

/// Every counter, those of one name next to each other.
static ALL: [&Counter; 10] = [
    &ACCESS_EVENTS_ACCEPTED,
    &ACCESS_EVENTS_FOLDED,
    &ACCESS_EVENTS_DROPPED_DELETED,
    &ACCESS_EVENTS_MALFORMED,
    &RECOMMENDATIONS_COMPUTED,
    &MODELS_TRAINED,
    &AUTOPILOT_MIGRATIONS,
    &CALLS_UNAUTHENTICATED,
    &CALLS_PERMISSION_DENIED,
    &AUDIT_REFUSALS_UNRECORDED,
];

/// The exposition: `# HELP` and `# TYPE` once per name, then a sample per counter.
pub fn render() -> String {
    let mut out = String::new();
    let mut previous = "";
    for c in ALL {
        if c.name != previous {
            let _ = writeln!(out, "# HELP {} {}", c.name, c.help);
            let _ = writeln!(out, "# TYPE {} counter", c.name);
            previous = c.name;
        }
        if c.labels.is_empty() {
            let _ = writeln!(out, "{} {}", c.name, c.get());
        } else {
            let _ = writeln!(out, "{}{{{}}} {}", c.name, c.labels, c.get());
        }
    }
    let _ = writeln!(
        out,
        "# HELP ferry_build_info The running version.\n# TYPE ferry_build_info gauge\nferry_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_are_announced_once() {
        ACCESS_EVENTS_MALFORMED.add(2);
        let text = render();
        assert_eq!(
            text.matches("# TYPE ferry_access_events_dropped_total counter")
                .count(),
            1
        );
        assert!(text.contains("ferry_access_events_dropped_total{reason=\"malformed\"} "));
        assert!(text.contains("ferry_access_events_dropped_total{reason=\"dataset_deleted\"} "));
        assert!(text
            .lines()
            .all(|l| l.starts_with('#') || l.split(' ').count() == 2));
    }
}
