//! The outbox relay: publishes what transactions wrote to the outbox, in order, awaiting
//! each publish ack before marking the row published. A crash between the commit and
//! the publish only delays the message; a crash between the publish and the mark
//! repeats it with the same `Nats-Msg-Id`, which JetStream drops.

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

async fn publish_pending(store: &Store, bus: &Bus) -> crate::error::Result<usize> {
    let pending = store.unpublished(BATCH).await?;
    for p in &pending {
        // A child of the span that wrote the message; the agent's task is its child.
        let span = tracing::info_span!(
            "dispatch",
            subject = %p.message.subject,
            message_id = %p.message.message_id,
        );
        ferry_telemetry::propagation::set_parent(&span, p.message.trace_parent.as_deref());
        async {
            bus.publish(
                &p.message.subject,
                &p.message.message_id,
                p.message.payload.clone(),
            )
            .await?;
            store.mark_published(p.id, clock::system_now()).await?;
            debug!("published");
            Ok::<_, crate::error::Error>(())
        }
        .instrument(span)
        .await?;
    }
    Ok(pending.len())
}
