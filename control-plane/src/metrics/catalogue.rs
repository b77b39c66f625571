//! Gauges read from the catalogue and the work queues at each scrape: jobs by state,
//! each running job's last change and each live agent's last heartbeat (what the
//! stall and silence alerts compare with `time()`), the outbox and queue backlogs,
//! what each site holds and costs, pending recommendations, and token and certificate
//! expiry.

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use ferry_telemetry::metrics::{self as m, Gauge, GaugeVec, IntGauge, IntGaugeVec};
use futures::TryStreamExt;
use tokio::sync::Mutex;

use crate::{
    bus::Bus,
    domain::{agent::STALE_AFTER, job::JobState},
    store::Store,
};

static JOBS: LazyLock<IntGaugeVec> =
    LazyLock::new(|| m::int_gauge_vec("ferry_jobs", "Jobs in each state.", &["state"]));
static JOB_PROGRESS: LazyLock<GaugeVec> = LazyLock::new(|| {
    m::gauge_vec(
        "ferry_job_last_progress_timestamp_seconds",
        "When each running job last changed or had progress reported.",
        &["job_id", "dataset_id"],
    )
});
static ACTIVE_OBJECTS: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    m::int_gauge_vec(
        "ferry_active_job_objects",
        "Objects of the jobs not ended (queued, copying, verifying, switching) by state: done (verified or already there), failed, pending (listed, not finished).",
        &["state"],
    )
});
static ACTIVE_BYTES: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    m::int_gauge_vec(
        "ferry_active_job_bytes",
        "Bytes of the jobs not ended by state: done (copied), pending (listed, not copied yet).",
        &["state"],
    )
});
static JOB_STALL: LazyLock<Gauge> = LazyLock::new(|| {
    m::gauge(
        "ferry_job_stall_threshold_seconds",
        "How long a running job may go without progress before FerryJobStalled fires (alerts.job_stall_secs).",
    )
});
static HEARTBEATS: LazyLock<GaugeVec> = LazyLock::new(|| {
    m::gauge_vec(
        "ferry_agent_last_heartbeat_timestamp_seconds",
        "When each agent that has not stopped last heartbeated.",
        &["agent_id", "site"],
    )
});
static HEARTBEAT_DEADLINE: LazyLock<Gauge> = LazyLock::new(|| {
    m::gauge(
        "ferry_agent_heartbeat_deadline_seconds",
        "Silence after which an agent is treated as gone and its tasks go to others.",
    )
});
static OUTBOX: LazyLock<IntGauge> = LazyLock::new(|| {
    m::int_gauge(
        "ferry_outbox_messages",
        "Dispatch messages committed to the outbox but not yet published to NATS.",
    )
});
static QUEUE: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    m::int_gauge_vec(
        "ferry_work_queue_pending_messages",
        "Tasks in each site's JetStream work queue not yet acknowledged.",
        &["site"],
    )
});
static SITES: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    m::int_gauge_vec(
        "ferry_sites",
        "Sites by tier and backend.",
        &["tier", "backend"],
    )
});
static SITE_BYTES: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    m::int_gauge_vec(
        "ferry_site_stored_bytes",
        "Bytes of the datasets placed at each site.",
        &["site", "tier"],
    )
});
static SITE_COST: LazyLock<GaugeVec> = LazyLock::new(|| {
    m::gauge_vec(
        "ferry_site_monthly_cost_dollars",
        "What the bytes at each site cost a month at its storage price (USD).",
        &["site", "tier"],
    )
});
static RECOMMENDATIONS: LazyLock<IntGauge> = LazyLock::new(|| {
    m::int_gauge(
        "ferry_recommendations_pending",
        "Recommendations waiting for approval.",
    )
});
static TOKENS: LazyLock<GaugeVec> = LazyLock::new(|| {
    m::gauge_vec(
        "ferry_token_expiry_timestamp_seconds",
        "When each live token with an expiry expires.",
        &["token_id", "role"],
    )
});
static CERTIFICATE: LazyLock<Gauge> = LazyLock::new(|| {
    m::gauge(
        "ferry_tls_certificate_expiry_timestamp_seconds",
        "When the certificate the control plane serves expires.",
    )
});

/// Scrapes one at a time: each clears and refills label sets that come and go.
static REFRESH: Mutex<()> = Mutex::const_new(());

pub(super) fn init() {
    for gauge in [
        &JOBS,
        &QUEUE,
        &SITES,
        &SITE_BYTES,
        &ACTIVE_OBJECTS,
        &ACTIVE_BYTES,
    ] {
        LazyLock::force(gauge);
    }
    for gauge in [&JOB_PROGRESS, &HEARTBEATS, &SITE_COST, &TOKENS] {
        LazyLock::force(gauge);
    }
    LazyLock::force(&OUTBOX);
    LazyLock::force(&RECOMMENDATIONS);
    HEARTBEAT_DEADLINE.set(STALE_AFTER.as_secs_f64());
}

/// Sets the stall threshold the `FerryJobStalled` alert compares with.
pub fn set_job_stall_threshold(secs: u64) {
    JOB_STALL.set(secs as f64);
}

/// Sets when the serving certificate expires (only with TLS on).
pub fn set_certificate_expiry(at: DateTime<Utc>) {
    CERTIFICATE.set(seconds(at));
}

fn seconds(at: DateTime<Utc>) -> f64 {
    at.timestamp_millis() as f64 / 1e3
}

/// Reads the catalogue and the work queues into the gauges, then renders every metric.
/// What cannot be read keeps its last value and is logged: a scrape still answers.
pub async fn render(store: &Store, bus: &Bus) -> String {
    let _one = REFRESH.lock().await;
    match store.gauges().await {
        Ok(g) => {
            JOBS.reset();
            for state in JobState::ALL {
                JOBS.with_label_values(&[state.as_str()]).set(0);
            }
            for (state, n) in &g.jobs_by_state {
                JOBS.with_label_values(&[state]).set(gauge_value(*n));
            }
            JOB_PROGRESS.reset();
            let (mut done, mut failed, mut pending, mut bytes_done, mut bytes_pending) =
                (0u64, 0u64, 0u64, 0u64, 0u64);
            for job in &g.running_jobs {
                JOB_PROGRESS
                    .with_label_values(&[&job.id, &job.dataset_id])
                    .set(seconds(job.last_change));
                done += job.objects_done;
                failed += job.objects_failed;
                pending += job
                    .objects_total
                    .saturating_sub(job.objects_done + job.objects_failed);
                bytes_done += job.bytes_done;
                bytes_pending += job.bytes_total.saturating_sub(job.bytes_done);
            }
            for (state, n) in [("done", done), ("failed", failed), ("pending", pending)] {
                ACTIVE_OBJECTS
                    .with_label_values(&[state])
                    .set(gauge_value(n));
            }
            for (state, n) in [("done", bytes_done), ("pending", bytes_pending)] {
                ACTIVE_BYTES.with_label_values(&[state]).set(gauge_value(n));
            }
            let site_name = |id: &str| {
                g.sites
                    .iter()
                    .find(|s| s.id == id)
                    .map_or_else(|| id.to_owned(), |s| s.name.clone())
            };
            HEARTBEATS.reset();
            for agent in &g.agents {
                HEARTBEATS
                    .with_label_values(&[&agent.id, &site_name(&agent.site_id)])
                    .set(seconds(agent.last_heartbeat_at));
            }
            SITES.reset();
            SITE_BYTES.reset();
            SITE_COST.reset();
            for site in &g.sites {
                SITES.with_label_values(&[&site.tier, &site.backend]).inc();
                SITE_BYTES
                    .with_label_values(&[&site.name, &site.tier])
                    .set(gauge_value(site.stored_bytes));
                SITE_COST
                    .with_label_values(&[&site.name, &site.tier])
                    .set(site.monthly_storage_cost);
            }
            OUTBOX.set(gauge_value(g.outbox_unpublished));
            RECOMMENDATIONS.set(gauge_value(g.recommendations_pending));
            TOKENS.reset();
            for token in &g.tokens {
                TOKENS
                    .with_label_values(&[&token.id, &token.role])
                    .set(seconds(token.expires_at));
            }
            if let Err(e) = queue_depths(bus, &g.sites).await {
                tracing::warn!(error = %e, "metrics: cannot read the work queues");
            }
        }
        Err(e) => tracing::warn!(error = %e, "metrics: cannot read the catalogue"),
    }
    m::render()
}

/// Per site, the messages in `FERRY_JOBS` under its subject: tasks waiting or being
/// worked on (a work queue drops a message once an agent acknowledges it).
async fn queue_depths(
    bus: &Bus,
    sites: &[crate::store::SiteGauge],
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let stream = bus
        .jetstream()
        .get_stream(ferry_proto::bus::JOBS_STREAM)
        .await?;
    let counts: Vec<(String, usize)> = stream
        .info_with_subjects(ferry_proto::bus::jobs_subject("*"))
        .await?
        .try_collect()
        .await?;
    QUEUE.reset();
    for site in sites {
        let subject = ferry_proto::bus::jobs_subject(&site.id);
        let depth = counts
            .iter()
            .find(|(s, _)| *s == subject)
            .map_or(0, |(_, n)| *n);
        QUEUE
            .with_label_values(&[&site.name])
            .set(gauge_value(depth as u64));
    }
    Ok(())
}

fn gauge_value(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
