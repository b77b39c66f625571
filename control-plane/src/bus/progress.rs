//! The progress consumer: applies agents' reports from `FERRY_PROGRESS` to the catalogue,
//! one at a time and in order (a durable consumer with one message in flight), acking
//! each only after its effect committed.

use std::time::Duration;

use async_nats::jetstream::{consumer, AckKind};
use futures::StreamExt;
use tracing::{info, warn};

use super::{Bus, PROGRESS_STREAM};
use crate::convert::decode_report;
use crate::{error::Error, service::Migrations};

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
        let report = match decode_report(&message.payload, migrations.catalogue().clock().now()) {
            Ok(report) => report,
            Err(e) => {
                warn!(subject = %message.subject, error = %e, "malformed report dropped");
                message.ack().await?;
                continue;
            }
        };
        match migrations.apply(report).await {
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
