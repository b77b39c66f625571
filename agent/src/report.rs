//! Progress reports to the control plane over `FERRY_PROGRESS`, each awaited until
//! JetStream acknowledges that it is stored. Every report carries the job's attempt.

use std::time::Duration;

use async_nats::jetstream;
use bytes::Bytes;
use ferry_proto::v1::{self as pb, progress_report::Event};
use prost::Message;

/// Publishes the reports of one task of one job.
#[derive(Clone)]
pub struct Reporter {
    js: jetstream::Context,
    subject: String,
    job_id: String,
    attempt: u32,
    task_id: String,
    agent_id: String,
}

impl Reporter {
    pub fn new(js: jetstream::Context, command: &pb::JobCommand, agent_id: &str) -> Self {
        Reporter {
            js,
            subject: format!("ferry.progress.{}", command.job_id),
            job_id: command.job_id.clone(),
            attempt: command.attempt,
            task_id: command.task_id.clone(),
            agent_id: agent_id.to_owned(),
        }
    }

    /// Sends one report, retrying a few times while the broker is unreachable.
    pub async fn send(&self, event: Event) -> anyhow::Result<()> {
        let report = pb::ProgressReport {
            job_id: self.job_id.clone(),
            attempt: self.attempt,
            task_id: self.task_id.clone(),
            agent_id: self.agent_id.clone(),
            time: Some(ferry_proto::time::to_timestamp(chrono::Utc::now())),
            event: Some(event),
        };
        let payload = Bytes::from(report.encode_to_vec());
        let mut backoff = Duration::from_millis(100);
        let mut tries = 0;
        loop {
            tries += 1;
            let result = async {
                let ack = self
                    .js
                    .publish(self.subject.clone(), payload.clone())
                    .await?;
                ack.await?;
                Ok::<_, anyhow::Error>(())
            }
            .await;
            match result {
                Ok(()) => return Ok(()),
                Err(e) if tries < 8 => {
                    tracing::warn!(job_id = %self.job_id, error = %e, "report not stored yet; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
                Err(e) => {
                    return Err(e.context(format!("reporting progress of job {}", self.job_id)))
                }
            }
        }
    }

    pub async fn objects(&self, results: Vec<pb::ObjectResult>) -> anyhow::Result<()> {
        if results.is_empty() {
            return Ok(());
        }
        self.send(Event::Objects(pb::ObjectResults { results }))
            .await
    }
}
