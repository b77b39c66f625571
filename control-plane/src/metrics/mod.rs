//! The control plane's Prometheus metrics, served at `GET /metrics` on the gRPC port
//! (docs/metrics.md lists them). Counters count what this process did since it
//! started; the catalogue's gauges ([`catalogue`]) are read at each scrape.

pub mod catalogue;

use std::{sync::LazyLock, time::Duration};

use ferry_telemetry::metrics::{self as m, HistogramVec, IntCounter, IntCounterVec};

const DROPPED_HELP: &str = "Access events the aggregator let go, by reason.";
const REFUSED_HELP: &str = "Calls refused by authentication or authorization, by code.";

static DROPPED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    m::int_counter_vec(
        "ferry_access_events_dropped_total",
        DROPPED_HELP,
        &["reason"],
    )
});
static REFUSED: LazyLock<IntCounterVec> =
    LazyLock::new(|| m::int_counter_vec("ferry_calls_refused_total", REFUSED_HELP, &["code"]));

pub static ACCESS_EVENTS_ACCEPTED: LazyLock<IntCounter> = LazyLock::new(|| {
    m::int_counter(
        "ferry_access_events_accepted_total",
        "Access events validated and stored in FERRY_EVENTS.",
    )
});
pub static ACCESS_EVENTS_FOLDED: LazyLock<IntCounter> = LazyLock::new(|| {
    m::int_counter(
        "ferry_access_events_folded_total",
        "Access events folded into hourly aggregates.",
    )
});
pub static ACCESS_EVENTS_DROPPED_DELETED: LazyLock<IntCounter> =
    LazyLock::new(|| DROPPED.with_label_values(&["dataset_deleted"]));
pub static ACCESS_EVENTS_MALFORMED: LazyLock<IntCounter> =
    LazyLock::new(|| DROPPED.with_label_values(&["malformed"]));
pub static RECOMMENDATIONS_COMPUTED: LazyLock<IntCounter> = LazyLock::new(|| {
    m::int_counter(
        "ferry_recommendations_computed_total",
        "Recommendations computed and recorded.",
    )
});
pub static MODELS_TRAINED: LazyLock<IntCounter> = LazyLock::new(|| {
    m::int_counter(
        "ferry_demand_models_trained_total",
        "Demand models trained, in use or not.",
    )
});
pub static AUTOPILOT_MIGRATIONS: LazyLock<IntCounter> = LazyLock::new(|| {
    m::int_counter(
        "ferry_autopilot_migrations_started_total",
        "Migrations the autopilot started on auto-migrate policies.",
    )
});
pub static CALLS_UNAUTHENTICATED: LazyLock<IntCounter> =
    LazyLock::new(|| REFUSED.with_label_values(&["unauthenticated"]));
pub static CALLS_PERMISSION_DENIED: LazyLock<IntCounter> =
    LazyLock::new(|| REFUSED.with_label_values(&["permission_denied"]));
pub static AUDIT_REFUSALS_UNRECORDED: LazyLock<IntCounter> = LazyLock::new(|| {
    m::int_counter(
        "ferry_audit_refusals_unrecorded_total",
        "Unauthenticated calls beyond the audit log's rate limit, counted but not recorded.",
    )
});

/// Always 1, labelled with the running version.
static BUILD: LazyLock<m::IntGaugeVec> = LazyLock::new(|| {
    let build = m::int_gauge_vec("ferry_build_info", "The running version.", &["version"]);
    build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
    build
});
static RPC_HANDLED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    m::int_counter_vec(
        "ferry_grpc_server_handled_total",
        "RPCs answered, by service, method and gRPC status code.",
        &["service", "method", "code"],
    )
});
static RPC_SECONDS: LazyLock<HistogramVec> = LazyLock::new(|| {
    m::histogram_vec(
        "ferry_grpc_server_handling_seconds",
        "Time from an RPC's request to the end of its answer.",
        &["service", "method", "code"],
        m::LATENCY_BUCKETS,
    )
});

/// Registers every metric, so that each series is exported (at zero) from the start
/// rather than from its first event: a rate over a series that appears late misses
/// its first increase.
pub fn init() {
    m::register_process_metrics();
    LazyLock::force(&BUILD);
    for counter in [
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
    ] {
        LazyLock::force(counter);
    }
    LazyLock::force(&RPC_HANDLED);
    LazyLock::force(&RPC_SECONDS);
    catalogue::init();
}

/// Counts an answered RPC; `code` is the status's name (`OK`, `InvalidArgument`, …).
pub fn rpc_finished(service: &str, method: &str, code: &str, elapsed: Duration) {
    RPC_HANDLED
        .with_label_values(&[service, method, code])
        .inc();
    RPC_SECONDS
        .with_label_values(&[service, method, code])
        .observe(elapsed.as_secs_f64());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labelled_counters_share_one_family() {
        init();
        ACCESS_EVENTS_MALFORMED.inc_by(2);
        let text = m::render();
        assert_eq!(
            text.matches("# TYPE ferry_access_events_dropped_total counter")
                .count(),
            1
        );
        assert!(text.contains("ferry_access_events_dropped_total{reason=\"malformed\"} "));
        assert!(text.contains("ferry_access_events_dropped_total{reason=\"dataset_deleted\"} "));
        assert!(text.contains("ferry_build_info{version=\""));
    }
}
