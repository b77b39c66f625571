//! The access aggregator: folds `FERRY_EVENTS` into hourly aggregates and datasets' last
//! access. Batches commit together with the stream sequence they reach; a batch seen
//! again after a crash (redelivered because its ack was lost) is skipped by sequence, so
//! no event counts twice. Events of deleted datasets are dropped and counted.

use std::time::Duration;

use async_nats::jetstream::consumer;
use ferry_proto::{time::from_timestamp, v1 as pb};
use futures::StreamExt;
use prost::Message;
use tracing::{debug, info, warn};

use super::{Bus, EVENTS_STREAM};
use crate::{
    domain::{
        access::{AccessEvent, AccessOp, Fold},
        ids::DatasetId,
    },
    metrics,
    store::Store,
};

const CONSUMER: &str = "aggregator";
/// Messages per fetch (each up to 1,000 events), and a bound on their bytes.
const BATCH: usize = 500;
const FETCH_BYTES: usize = 16 << 20;

pub async fn run(bus: Bus, store: Store) {
    let mut backoff = Duration::from_millis(200);
    loop {
        match consume(&bus, &store).await {
            Ok(()) => warn!("access event stream ended; resubscribing"),
            Err(e) => warn!(error = %e, "access aggregator failed; resubscribing"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
}

async fn consume(bus: &Bus, store: &Store) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    bus.ensure_streams().await?;
    let stream = bus.jetstream().get_stream(EVENTS_STREAM).await?;
    let consumer: consumer::PullConsumer = stream
        .get_or_create_consumer(
            CONSUMER,
            consumer::pull::Config {
                durable_name: Some(CONSUMER.into()),
                filter_subject: "ferry.events.access.>".into(),
                // Acking the last message of a batch acknowledges the batch.
                ack_policy: consumer::AckPolicy::All,
                ack_wait: Duration::from_secs(30),
                max_ack_pending: 20_000,
                ..Default::default()
            },
        )
        .await?;
    info!("access aggregator running");
    loop {
        let mut messages = consumer
            .fetch()
            .max_messages(BATCH)
            .max_bytes(FETCH_BYTES)
            .expires(Duration::from_millis(500))
            .messages()
            .await?;
        let cursor = store.event_cursor(CONSUMER).await?;
        let mut fold = Fold::default();
        let mut last = None;
        let mut reached = cursor;
        let mut folded = 0u64;
        while let Some(message) = messages.next().await {
            let message = message?;
            let sequence = message.info()?.stream_sequence;
            if sequence > cursor {
                match decode(&message.payload) {
                    Some(events) => {
                        for event in &events {
                            fold.add(event);
                        }
                        folded += events.len() as u64;
                    }
                    None => {
                        metrics::ACCESS_EVENTS_MALFORMED.inc();
                        warn!(sequence, "malformed access event skipped")
                    }
                }
                reached = reached.max(sequence);
            }
            last = Some(message);
        }
        let Some(last) = last else { continue };
        if reached > cursor {
            let ids: Vec<DatasetId> = fold.last_access.keys().copied().collect();
            let existing = store.existing_datasets(&ids).await?;
            let dropped = fold.retain_datasets(|d| existing.contains(d));
            if dropped > 0 {
                metrics::ACCESS_EVENTS_DROPPED_DELETED.inc_by(dropped);
                debug!(
                    events = dropped,
                    "access events of deleted datasets dropped"
                );
            }
            metrics::ACCESS_EVENTS_FOLDED.inc_by(folded - dropped);
            store.apply_access(CONSUMER, reached, &fold).await?;
        }
        last.ack().await?;
    }
}

/// A batch of one dataset's events; `None` when any of them is malformed.
fn decode(payload: &[u8]) -> Option<Vec<AccessEvent>> {
    let batch = pb::AccessEventBatch::decode(payload).ok()?;
    let dataset_id: DatasetId = batch.dataset_id.parse().ok()?;
    batch
        .events
        .into_iter()
        .map(|e| {
            Some(AccessEvent {
                dataset_id,
                op: match pb::AccessOp::try_from(e.op).ok()? {
                    pb::AccessOp::Read => AccessOp::Read,
                    pb::AccessOp::Write => AccessOp::Write,
                    pb::AccessOp::Unspecified => return None,
                },
                bytes: u64::try_from(e.bytes).ok()?,
                latency_ms: e.latency_ms,
                time: from_timestamp(e.time.as_ref()?)?,
                client_id: e.client_id,
                event_id: e.event_id,
            })
        })
        .collect()
}
