//! Dry runs: the control plane asks what a plan's filter would take of a dataset on
//! this agent's site, and the agent answers from a listing of it. In a real deployment
//! only an agent near the site can see it (an on-prem path, a bucket behind a private
//! endpoint), so the control plane lists nothing itself.
//!
//! Questions arrive by NATS request and reply on `ferry.dryrun.<site id>`, in a queue
//! group shared by the site's agents, so one of them answers each. A question carries
//! no credential: the agent fetches its site's over authenticated gRPC, just in time.

use std::{pin::pin, sync::Arc};

use async_nats::Client;
use ferry_proto::v1 as pb;
use ferry_storage::{ObjectFilter, Store};
use futures::{StreamExt, TryStreamExt};
use prost::Message;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn, Instrument};

use crate::{control::ControlPlane, wire};

/// Dry runs one agent lists at once; more wait their turn.
const CONCURRENT: usize = 2;

/// Answers the site's dry runs until `shutdown`.
pub async fn serve(nats: Client, control: Arc<ControlPlane>, shutdown: CancellationToken) {
    let subject = ferry_proto::bus::dry_run_subject(control.site_id());
    let mut questions = loop {
        match nats
            .queue_subscribe(subject.clone(), ferry_proto::bus::DRY_RUN_QUEUE.to_owned())
            .await
        {
            Ok(subscription) => break subscription,
            Err(e) => {
                warn!(error = %e, subject, "cannot subscribe to dry runs; retrying");
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
                }
            }
        }
    };
    info!(subject, "answering dry runs");
    let running = Arc::new(Semaphore::new(CONCURRENT));
    loop {
        let message = tokio::select! {
            _ = shutdown.cancelled() => break,
            message = questions.next() => message,
        };
        let Some(message) = message else { break };
        let Some(reply) = message.reply.clone() else {
            continue;
        };
        let question = match pb::DryRunQuestion::decode(message.payload.as_ref()) {
            Ok(question) => question,
            Err(e) => {
                warn!(error = %e, "malformed dry run question dropped");
                continue;
            }
        };
        let (nats, control, running) = (nats.clone(), control.clone(), running.clone());
        let span = tracing::info_span!("dry_run", path = %question.path);
        tokio::spawn(
            async move {
                let _turn = running.acquire().await;
                let answer = answer(&control, &question).await;
                if let Err(e) = nats.publish(reply, answer.encode_to_vec().into()).await {
                    warn!(error = %e, "the dry run's answer was not sent");
                }
            }
            .instrument(span),
        );
    }
}

/// Lists the dataset through the question's filter; a failure is the answer's error.
async fn answer(control: &ControlPlane, question: &pb::DryRunQuestion) -> pb::DryRunAnswer {
    match list(control, question).await {
        Ok(answer) => {
            info!(
                objects = answer.objects,
                bytes = answer.bytes,
                "dry run answered"
            );
            answer
        }
        Err(error) => {
            warn!(error, "dry run failed");
            pb::DryRunAnswer {
                error,
                ..Default::default()
            }
        }
    }
}

async fn list(
    control: &ControlPlane,
    question: &pb::DryRunQuestion,
) -> Result<pb::DryRunAnswer, String> {
    let filter = ObjectFilter::new(&wire::filter_spec(question.filter.as_ref()))
        .map_err(|e| e.to_string())?;
    let access = control
        .site_access(&question.path)
        .await
        .map_err(|status| {
            format!(
                "asking the control plane for the site: {}",
                status.message()
            )
        })?;
    let store = Store::open(&access).map_err(|e| format!("the site: {e}"))?;
    let mut listing = pin!(ferry_storage::list_sizes(store.op(), "", None));
    let (mut objects, mut bytes, mut sample) = (0u64, 0u64, Vec::new());
    while let Some(object) = listing.try_next().await.map_err(|e| e.to_string())? {
        if !filter.accepts(&object) {
            continue;
        }
        objects += 1;
        bytes += object.size;
        if sample.len() < question.sample as usize {
            sample.push(object);
        }
    }
    Ok(wire::dry_run_answer(objects, bytes, sample))
}
