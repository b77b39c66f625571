//! The progress consumer: applies agents' reports from `FERRY_PROGRESS` to the catalogue,
//! one at a time and in order (a durable consumer with one message in flight), acking
//! each only after its effect committed.

use std::time::Duration;

use async_nats::jetstream::{self, consumer, AckKind};
use futures::StreamExt;
use tracing::{info, warn, Instrument};

use super::{Bus, PROGRESS_STREAM};
use crate::convert::decode_report;
use crate::{
    domain::{ids::SiteId, report::Report},
    error::Error,
    service::Migrations,
};

const CONSUMER: &str = "control-plane";

pub async fn run(bus: Bus, migrations: Migrations) {
    let mut backoff = Duration::from_millis(200);
    loop {
        match consume(&bus, &migrations).await {
            Ok(()) => warn!("progress stream ended; resubscribing"),
            Err(e) => warn!(error = %e, "progress consumer failed; resubscribing"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
}

async fn consume(
    bus: &Bus,
    migrations: &Migrations,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    bus.ensure_streams().await?;
    let stream = bus.jetstream().get_stream(PROGRESS_STREAM).await?;
    let consumer: consumer::PullConsumer = stream
        .get_or_create_consumer(
            CONSUMER,
            consumer::pull::Config {
                durable_name: Some(CONSUMER.into()),
                filter_subject: "ferry.progress.>".into(),
                ack_policy: consumer::AckPolicy::Explicit,
                ack_wait: Duration::from_secs(30),
                // One in flight keeps reports in order, even across redeliveries.
                max_ack_pending: 1,
                ..Default::default()
            },
        )
        .await?;
    info!("progress consumer running");
    let mut messages = consumer.messages().await?;
    while let Some(message) = messages.next().await {
        let message = message?;
        let (report, from) = match read(&message, migrations) {
            Ok(read) => read,
            Err(reason) => {
                warn!(subject = %message.subject, reason, "report dropped");
                message.ack().await?;
                continue;
            }
        };
        let span = tracing::info_span!("apply_report", subject = %message.subject);
        ferry_telemetry::propagation::set_parent_from_nats(&span, message.headers.as_ref());
        match migrations.apply(report, from).instrument(span).await {
            Ok(()) => message.ack().await?,
            Err(e @ (Error::Unavailable(_) | Error::Internal(_) | Error::Conflict(_))) => {
                warn!(error = %e, "applying a report failed; it will be redelivered");
                message
                    .ack_with(AckKind::Nak(Some(Duration::from_secs(1))))
                    .await?;
            }
            Err(e) => {
                warn!(error = %e, "report refused by the job's state; dropped");
                message.ack().await?;
            }
        }
    }
    Ok(())
}

/// The report a message carries and the site that sent it, which its subject
/// (`ferry.progress.<site id>.<job id>`) names; the job there must be the report's own.
fn read(message: &jetstream::Message, migrations: &Migrations) -> Result<(Report, SiteId), String> {
    let (site, job) = ferry_proto::bus::parse_progress_subject(&message.subject)
        .ok_or("its subject names no site (an agent older than this control plane?)")?;
    let from: SiteId = site
        .parse()
        .map_err(|_| format!("'{site}' in its subject is not a site id"))?;
    let report = decode_report(&message.payload, migrations.catalogue().clock().now())
        .map_err(|e| format!("malformed: {e}"))?;
    if report.job_id.to_string() != job {
        return Err(format!(
            "it is about job {} but was sent on the subject of job {job}",
            report.job_id
        ));
    }
    Ok((report, from))
}
