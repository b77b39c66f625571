//! Progress reports to the control plane over `FERRY_PROGRESS`, each awaited until
//! JetStream acknowledges that it is stored. Every report carries the job's attempt;
//! its subject names the agent's site, which the control plane checks runs the job.

use std::{sync::Arc, time::Duration};

use async_nats::jetstream;
use bytes::Bytes;
use ferry_proto::v1::{self as pb, progress_report::Event};
use prost::Message;
use tokio::{sync::mpsc, task::JoinHandle, time::Instant};
use tracing::Instrument;

use crate::local_write::Retired;

/// A report JetStream did not store.
#[derive(Clone, Debug, thiserror::Error)]
#[error("reporting progress of job {job}: {detail}")]
pub struct ReportError {
    pub job: String,
    pub detail: String,
}

/// Result batches a [`ResultQueue`] holds before `flush` waits for the broker.
const QUEUED_BATCHES: usize = 8;
/// Object results sent per report, at most. Each report costs the control plane one
/// transaction and a local destination one `syncfs`, whatever its size: on many small
/// files, batches of 64 kept the control plane seconds behind the copies.
const REPORT_BATCH: usize = 512;
/// Encoded bytes of the results sent per report, at most: far below the broker's
/// 1 MiB message limit, even for results that carry long error messages.
const REPORT_BYTES: usize = 256 << 10;
/// Results are sent at least this often, so progress and resume points stay fresh.
const REPORT_INTERVAL: Duration = Duration::from_millis(250);

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
    /// Reports of `command` by an agent of `site_id`, on that site's progress subject
    /// (the only one its NATS user may publish to).
    pub fn new(
        js: jetstream::Context,
        command: &pb::JobCommand,
        site_id: &str,
        agent_id: &str,
    ) -> Self {
        Reporter {
            js,
            subject: ferry_proto::bus::progress_subject(site_id, &command.job_id),
            job_id: command.job_id.clone(),
            attempt: command.attempt,
            task_id: command.task_id.clone(),
            agent_id: agent_id.to_owned(),
        }
    }

    /// Sends one report, retrying a few times while the broker is unreachable.
    pub async fn send(&self, event: Event) -> Result<(), ReportError> {
        let report = pb::ProgressReport {
            job_id: self.job_id.clone(),
            attempt: self.attempt,
            task_id: self.task_id.clone(),
            agent_id: self.agent_id.clone(),
            time: Some(ferry_proto::time::to_timestamp(chrono::Utc::now())),
            event: Some(event),
        };
        let payload = Bytes::from(report.encode_to_vec());
        // The control plane applies the report as a child of this task's span.
        let mut headers = async_nats::HeaderMap::new();
        ferry_telemetry::propagation::inject_nats(&mut headers);
        let mut backoff = Duration::from_millis(100);
        let mut tries = 0;
        loop {
            tries += 1;
            let result = async {
                let ack = self
                    .js
                    .publish_with_headers(self.subject.clone(), headers.clone(), payload.clone())
                    .await
                    .map_err(|e| e.to_string())?;
                ack.await.map(drop).map_err(|e| e.to_string())
            }
            .await;
            match result {
                Ok(()) => return Ok(()),
                Err(e) if tries < 8 => {
                    tracing::warn!(job_id = %self.job_id, error = %e, "report not stored yet; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
                Err(detail) => {
                    return Err(ReportError {
                        job: self.job_id.clone(),
                        detail,
                    })
                }
            }
        }
    }

    pub async fn objects(&self, results: Vec<pb::ObjectResult>) -> Result<(), ReportError> {
        if results.is_empty() {
            return Ok(());
        }
        self.send(Event::Objects(pb::ObjectResults { results }))
            .await
    }
}

/// A task's object results, gathered into batches and published in order by a
/// background task, so copies go on while JetStream stores a batch instead of pausing
/// for every acknowledgement.
pub struct ResultQueue {
    batches: mpsc::Sender<Vec<pb::ObjectResult>>,
    publisher: JoinHandle<Result<(), ReportError>>,
    job: String,
    /// Results added since the last batch was queued, and their encoded size.
    batch: Vec<pb::ObjectResult>,
    batch_bytes: usize,
    last_queued: Instant,
    /// Old files the task's copies replaced, removed once every result is stored.
    retired: Arc<Retired>,
}

impl ResultQueue {
    /// With `local_destination`, a file system written without a flush per file, each
    /// batch is published only after that file system is synced: what a result says
    /// was copied is on disk before the control plane hears of it.
    pub fn start(reporter: Reporter, local_destination: Option<opendal::Operator>) -> Self {
        let (batches, mut queued) = mpsc::channel::<Vec<pb::ObjectResult>>(QUEUED_BATCHES);
        let job = reporter.job_id.clone();
        // In the task's span, so that its warnings carry the job's fields.
        let publisher = tokio::spawn(
            async move {
                while let Some(results) = queued.recv().await {
                    let objects = results.len();
                    if let Some(op) = &local_destination {
                        crate::local_write::sync_tree(op)
                            .await
                            .map_err(|e| ReportError {
                                job: reporter.job_id.clone(),
                                detail: format!("syncing the destination: {e}"),
                            })?;
                        tracing::debug!(objects, "destination synced");
                    }
                    reporter.objects(results).await?;
                    tracing::debug!(objects, "results reported");
                }
                Ok(())
            }
            .in_current_span(),
        );
        ResultQueue {
            job,
            batches,
            publisher,
            batch: Vec::new(),
            batch_bytes: 0,
            last_queued: Instant::now(),
            retired: Arc::default(),
        }
    }

    /// Where the task's copies keep the old files they replace (see [`Retired`]).
    pub(crate) fn retired(&self) -> &Arc<Retired> {
        &self.retired
    }

    /// Adds one object's result. The batch is queued once it holds [`REPORT_BATCH`]
    /// results or [`REPORT_BYTES`], or [`REPORT_INTERVAL`] has passed since the last
    /// one was.
    pub async fn add(&mut self, result: pb::ObjectResult) -> Result<(), ReportError> {
        self.batch_bytes += result.encoded_len();
        self.batch.push(result);
        if self.batch.len() >= REPORT_BATCH
            || self.batch_bytes >= REPORT_BYTES
            || self.last_queued.elapsed() >= REPORT_INTERVAL
        {
            self.flush().await?;
        }
        Ok(())
    }

    /// Queues the results added so far; waits only while [`QUEUED_BATCHES`] are queued
    /// already. Fails once a batch could not be published (the publisher's error says
    /// why).
    pub async fn flush(&mut self) -> Result<(), ReportError> {
        let results = std::mem::take(&mut self.batch);
        self.batch_bytes = 0;
        self.last_queued = Instant::now();
        if results.is_empty() || self.batches.send(results).await.is_ok() {
            return Ok(());
        }
        match (&mut self.publisher).await {
            Ok(Err(e)) => Err(e),
            Ok(Ok(())) => Err(self.failure("the result publisher stopped early")),
            Err(e) => Err(self.failure(format!("the result publisher failed: {e}"))),
        }
    }

    /// Queues what is left and waits until every batch is stored, so that nothing
    /// reported after (the task's end) can overtake them. Then, however that went, the
    /// old files the copies replaced are removed in the background.
    pub async fn finish(mut self) -> Result<(), ReportError> {
        let flushed = self.flush().await;
        let ResultQueue {
            batches,
            publisher,
            job,
            retired,
            ..
        } = self;
        drop(batches);
        let stored = match flushed {
            Ok(()) => publisher.await.unwrap_or_else(|e| {
                Err(ReportError {
                    job,
                    detail: format!("the result publisher failed: {e}"),
                })
            }),
            Err(e) => Err(e),
        };
        retired.remove_later();
        stored
    }

    fn failure(&self, detail: impl Into<String>) -> ReportError {
        ReportError {
            job: self.job.clone(),
            detail: detail.into(),
        }
    }
}
