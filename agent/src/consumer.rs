//! The site's work queue: a durable pull consumer shared by every agent of the site.
//! Up to `task_slots` task messages at a time; each one's ack deadline is extended with progress acks while the
//! task runs, and it is acknowledged only once the task's result is durably reported.

use std::{sync::Arc, time::Duration};

use async_nats::jetstream::{self, consumer, AckKind};
use ferry_proto::v1 as pb;
use futures::StreamExt;
use prost::Message;
use tokio::{
    sync::{OwnedSemaphorePermit, Semaphore},
    task::JoinSet,
};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn, Instrument};

use crate::executor::{Executor, Outcome};

pub async fn run(
    js: jetstream::Context,
    site_id: &str,
    ack_wait: Duration,
    task_slots: usize,
    executor: Arc<Executor>,
    shutdown: CancellationToken,
) {
    let consumer = loop {
        match site_consumer(&js, site_id, ack_wait).await {
            Ok(c) => break c,
            Err(e) => {
                warn!(error = %e, "job queue not ready (is the control plane up?); retrying");
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
    };
    info!(site_id, task_slots, "waiting for jobs");
    // A message is fetched only when a slot is free, so the tasks this agent cannot
    // start yet stay in the queue for the other agents of the site.
    let slots = Arc::new(Semaphore::new(task_slots));
    let mut running = JoinSet::new();
    while !shutdown.is_cancelled() {
        while running.try_join_next().is_some() {}
        let slot = tokio::select! {
            _ = shutdown.cancelled() => break,
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
        };
        let batch = consumer
            .fetch()
            .max_messages(1)
            .expires(Duration::from_secs(5))
            .messages()
            .await;
        let mut messages = match batch {
            Ok(m) => m,
            Err(e) => {
                warn!(error = %e, "fetching from the job queue failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let message = tokio::select! {
            _ = shutdown.cancelled() => break,
            next = messages.next() => next,
        };
        let Some(message) = message else { continue };
        let message = match message {
            Ok(m) => m,
            Err(e) => {
                warn!(error = %e, "receiving a job message failed");
                continue;
            }
        };
        let command = match pb::JobCommand::decode(message.payload.as_ref()) {
            Ok(c) => c,
            Err(e) => {
                warn!(error = %e, "malformed job message dropped");
                let _ = message.ack_with(AckKind::Term).await;
                continue;
            }
        };
        let span = task_span(&command);
        // A child of the control plane's dispatch: one migration is one trace.
        ferry_telemetry::propagation::set_parent_from_nats(&span, message.headers.as_ref());
        running.spawn(
            handle(
                message,
                command,
                ack_wait,
                executor.clone(),
                shutdown.clone(),
                slot,
            )
            .instrument(span),
        );
    }
    // Tasks still running stop with the shutdown token and hand their messages back.
    while running.join_next().await.is_some() {}
}

/// The span of one task: every line the agent logs about it carries the job, its
/// attempt, the task and the two sites, so one job's story is one filter away.
fn task_span(command: &pb::JobCommand) -> tracing::Span {
    let kind = pb::TaskKind::try_from(command.kind)
        .map(|k| {
            k.as_str_name()
                .trim_start_matches("TASK_KIND_")
                .to_lowercase()
        })
        .unwrap_or_else(|_| command.kind.to_string());
    tracing::info_span!(
        "task",
        job_id = %command.job_id,
        attempt = command.attempt,
        task = %command.task_id,
        kind = %kind,
        dataset = %command.dataset_id,
        source = %command.source_site,
        destination = %command.destination_site,
    )
}

/// Runs one task, keeping its message's ack deadline extended meanwhile, then
/// acknowledges it or hands it back for redelivery.
async fn handle(
    message: jetstream::Message,
    mut command: pb::JobCommand,
    ack_wait: Duration,
    executor: Arc<Executor>,
    shutdown: CancellationToken,
    _slot: OwnedSemaphorePermit,
) {
    info!("task received");
    // A first dispatch delivered again was taken, at least in part, by an agent before:
    // what it reported is the control plane's to say.
    let delivered = message.info().map_or(i64::MAX, |info| info.delivered);
    if delivered != 1 {
        command.first_dispatch = false;
    }
    let cancel = shutdown.child_token();
    let keepalive = {
        let message_ack = message.clone();
        tokio::spawn(
            async move {
                let mut tick = tokio::time::interval(ack_wait / 3);
                tick.tick().await;
                loop {
                    tick.tick().await;
                    if let Err(e) = message_ack.ack_with(AckKind::Progress).await {
                        warn!(error = %e, "extending the task's ack deadline failed");
                    }
                }
            }
            .in_current_span(),
        )
    };
    let mut outcome = executor.run(&command, cancel).await;
    keepalive.abort();
    if shutdown.is_cancelled() && outcome != Outcome::Done {
        // Stopped by our own shutdown, not by the job: another agent takes it over.
        outcome = Outcome::Retry("the agent is shutting down".into());
    }
    let acked = match &outcome {
        Outcome::Done => message.double_ack().await,
        Outcome::Dropped(reason) => {
            info!(reason, "task message dropped");
            message.double_ack().await
        }
        Outcome::Retry(reason) => {
            warn!(reason, "task handed back for redelivery");
            message
                .ack_with(AckKind::Nak(Some(Duration::from_secs(2))))
                .await
        }
    };
    if let Err(e) = acked {
        warn!(error = %e, "acknowledging the task message failed");
    }
}

async fn site_consumer(
    js: &jetstream::Context,
    site_id: &str,
    ack_wait: Duration,
) -> Result<consumer::PullConsumer, String> {
    use ferry_proto::bus::{jobs_subject, site_consumer, JOBS_STREAM};
    // No stream info: a site's NATS user may see its own consumer, not the stream.
    let stream = js
        .get_stream_no_info(JOBS_STREAM)
        .await
        .map_err(|e| format!("stream {JOBS_STREAM}: {e}"))?;
    let name = site_consumer(site_id);
    let consumer = stream
        .get_or_create_consumer(
            &name,
            consumer::pull::Config {
                durable_name: Some(name.clone()),
                filter_subject: jobs_subject(site_id),
                ack_policy: consumer::AckPolicy::Explicit,
                ack_wait,
                max_deliver: 50,
                ..Default::default()
            },
        )
        .await
        .map_err(|e| format!("consumer {name}: {e}"))?;
    Ok(consumer)
}
