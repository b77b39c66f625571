//! The outbox relay: publishes what transactions wrote to the outbox, in order, awaiting
//! each publish ack before marking the rows published, a batch at a time. A crash
//! between the commit and the publish only delays the message; a crash between the
//! publish and the mark repeats the batch's messages with the same `Nats-Msg-Id`s,
//! which JetStream drops.

use std::{sync::Arc, time::Duration};

use tokio::sync::Notify;
use tracing::{debug, info, warn, Instrument};

use super::Bus;
use crate::{clock, store::Store};

const BATCH: u64 = 256;
const IDLE_POLL: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Published rows are kept this long for inspection, then pruned.
const KEEP_PUBLISHED: chrono::TimeDelta = chrono::TimeDelta::hours(24);

pub async fn run(store: Store, bus: Bus, wakeup: Arc<Notify>) {
    let mut backoff = Duration::from_millis(200);
    loop {
        match bus.ensure_streams().await {
            Ok(()) => break,
            Err(e) => {
                warn!(error = %e, "JetStream streams not ready; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
    info!("JetStream streams ready; outbox relay running");
    let mut backoff = Duration::from_millis(200);
    let mut last_prune = tokio::time::Instant::now();
    loop {
        match publish_pending(&store, &bus).await {
            Ok(0) => {
                backoff = Duration::from_millis(200);
                let _ = tokio::time::timeout(IDLE_POLL, wakeup.notified()).await;
            }
            Ok(n) => {
                debug!(messages = n, "outbox published");
                backoff = Duration::from_millis(200);
            }
            Err(e) => {
                warn!(error = %e, "outbox relay failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
        if last_prune.elapsed() > Duration::from_secs(3600) {
            last_prune = tokio::time::Instant::now();
            match store
                .prune_outbox(clock::system_now() - KEEP_PUBLISHED)
                .await
            {
                Ok(n) if n > 0 => debug!(rows = n, "pruned published outbox rows"),
                Ok(_) => {}
                Err(e) => warn!(error = %e, "pruning the outbox"),
            }
        }
    }
}

/// Publishes a batch of pending messages in order, each awaiting JetStream's ack, then
/// marks those published in one statement. One write a batch rather than one a
/// message: on SQLite each write waits for the lock, and while reports are applied back
/// to back the progress consumer holds it almost always, so a relay writing after every
/// message held the agents' next tasks back for seconds.
async fn publish_pending(store: &Store, bus: &Bus) -> crate::error::Result<usize> {
    let pending = store.unpublished(BATCH).await?;
    let mut published = Vec::with_capacity(pending.len());
    let mut failed = None;
    for p in &pending {
        // A child of the span that wrote the message; the agent's task is its child.
        let span = tracing::info_span!(
            "dispatch",
            subject = %p.message.subject,
            message_id = %p.message.message_id,
        );
        ferry_telemetry::propagation::set_parent(&span, p.message.trace_parent.as_deref());
        let publish = bus
            .publish(
                &p.message.subject,
                &p.message.message_id,
                p.message.payload.clone(),
            )
            .instrument(span.clone())
            .await;
        match publish {
            Ok(()) => {
                span.in_scope(|| debug!("published"));
                published.push(p.id);
            }
            // The rest waits for the next round, in order.
            Err(e) => {
                failed = Some(e);
                break;
            }
        }
    }
    store
        .mark_published(&published, clock::system_now())
        .await?;
    match failed {
        Some(e) => Err(e),
        None => Ok(pending.len()),
    }
}
