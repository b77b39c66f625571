//! Runs one task of a job: copy → verify for a copy task, deleting the source for a
//! retire task, reporting every step. The destination is written, never the source,
//! until the control plane has switched and dispatched the retire task.

use std::{collections::HashMap, sync::Arc, time::Duration};

use async_nats::jetstream;
use ferry_proto::v1::{self as pb, progress_report::Event};
use futures::{StreamExt, TryStreamExt};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::{
    bandwidth::Bandwidth,
    budget::{copy_footprint, MemoryBudget},
    config::AgentConfig,
    control::ControlPlane,
    filter::ObjectFilter,
    report::Reporter,
    storage::operator,
    transfer::{self, CopyOptions, ObjectInfo, TransferError, VerifyMode},
};

/// Copies of one object tried before its failure is final (temporary errors only).
const COPY_TRIES: u32 = 3;
/// Object results sent per report, at most.
const REPORT_BATCH: usize = 64;
/// Results are sent at least this often, so progress and resume points stay fresh.
const REPORT_INTERVAL: Duration = Duration::from_millis(250);

/// What to do with the job message once the task stopped.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The task ran to an end that is reported: acknowledge the message.
    Done,
    /// The message is stale or belongs to another agent: acknowledge and forget it.
    Dropped(String),
    /// Could not run now (control plane unreachable, shutting down): redeliver it.
    Retry(String),
}

pub struct Executor {
    control: Arc<ControlPlane>,
    js: jetstream::Context,
    config: Arc<AgentConfig>,
    /// This agent's share of its site's limit, across all the jobs it runs.
    site_bandwidth: Arc<Bandwidth>,
    /// Bounds the bytes all transfers of this agent hold at once.
    budget: Arc<MemoryBudget>,
}

/// One object's progress through the task.
struct Work {
    info: ObjectInfo,
    source_xxh3: u128,
    attempts: u32,
}

impl Executor {
    pub fn new(
        control: Arc<ControlPlane>,
        js: jetstream::Context,
        config: Arc<AgentConfig>,
        site_bandwidth: Arc<Bandwidth>,
    ) -> Self {
        let budget = Arc::new(MemoryBudget::new(config.memory_budget_mib << 20));
        Executor {
            control,
            js,
            config,
            site_bandwidth,
            budget,
        }
    }

    pub async fn run(&self, command: &pb::JobCommand, cancel: CancellationToken) -> Outcome {
        let (source, mut destination) = match self
            .control
            .job_access(&command.job_id, command.attempt)
            .await
        {
            Ok(access) => access,
            Err(status) => {
                return match status.code() {
                    tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Internal => {
                        Outcome::Retry(status.message().to_owned())
                    }
                    _ => Outcome::Dropped(status.message().to_owned()),
                }
            }
        };
        // The plan's storage class applies to what this job writes, on the services that
        // have one.
        let classed = destination.uri.starts_with("s3://") || destination.uri.starts_with("gs://");
        if classed && !command.storage_class.is_empty() {
            destination
                .options
                .insert("storage_class".into(), command.storage_class.clone());
        }
        let reporter = Reporter::new(self.js.clone(), command, self.control.agent_id());
        let bandwidth = Arc::new(Bandwidth::new(Some(command.bandwidth_limit_bytes_per_sec)));
        let watcher = self.watch_job(command, cancel.clone(), bandwidth.clone());
        let result = async {
            let src = operator(&source).map_err(|e| anyhow::anyhow!("source: {e}"))?;
            let dst = operator(&destination).map_err(|e| anyhow::anyhow!("destination: {e}"))?;
            reporter.send(Event::Started(pb::TaskStarted {})).await?;
            if command.kind == pb::TaskKind::Retire as i32 {
                self.retire(&src, &cancel).await
            } else {
                self.copy_and_verify(command, &src, &dst, &reporter, &cancel, bandwidth)
                    .await
            }
        }
        .await;
        watcher.abort();
        let finished = match result {
            Ok(()) => pb::TaskFinished {
                success: true,
                ..Default::default()
            },
            Err(_) if cancel.is_cancelled() => {
                return Outcome::Dropped("the job was cancelled or moved on".into())
            }
            Err(e) => pb::TaskFinished {
                success: false,
                error: format!("{e:#}"),
                ..Default::default()
            },
        };
        let success = finished.success;
        match reporter.send(Event::Finished(finished)).await {
            Ok(()) => {
                info!(job_id = %command.job_id, task = %command.task_id, success, "task finished");
                Outcome::Done
            }
            Err(e) => Outcome::Retry(format!("{e:#}")),
        }
    }

    /// Cancels the task when the job ends or moves to another attempt elsewhere, and
    /// follows changes of its bandwidth limit.
    fn watch_job(
        &self,
        command: &pb::JobCommand,
        cancel: CancellationToken,
        bandwidth: Arc<Bandwidth>,
    ) -> tokio::task::JoinHandle<()> {
        let control = self.control.clone();
        let (job, attempt) = (command.job_id.clone(), command.attempt);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(2));
            loop {
                tick.tick().await;
                if let Ok(j) = control.job(&job).await {
                    let ended = matches!(
                        pb::JobState::try_from(j.state),
                        Ok(pb::JobState::Completed
                            | pb::JobState::Failed
                            | pb::JobState::Cancelled)
                    );
                    if ended || j.attempt != attempt {
                        info!(job_id = %job, "job ended or moved to another attempt; stopping");
                        cancel.cancel();
                        return;
                    }
                    let limit = Some(j.bandwidth_limit_bytes_per_sec).filter(|l| *l > 0);
                    if limit != bandwidth.rate() {
                        info!(job_id = %job, bytes_per_sec = limit.unwrap_or(0), "bandwidth limit changed");
                        bandwidth.set_rate(limit);
                    }
                }
            }
        })
    }

    async fn copy_and_verify(
        &self,
        command: &pb::JobCommand,
        src: &opendal::Operator,
        dst: &opendal::Operator,
        reporter: &Reporter,
        cancel: &CancellationToken,
        bandwidth: Arc<Bandwidth>,
    ) -> anyhow::Result<()> {
        let filter = ObjectFilter::from_pb(command.filter.as_ref()).map_err(anyhow::Error::msg)?;
        let objects: Vec<ObjectInfo> = transfer::list(src)
            .try_filter(|o| std::future::ready(filter.accepts(o)))
            .try_collect()
            .await
            .map_err(|e: TransferError| anyhow::anyhow!("{e}"))?;
        let bytes = objects.iter().map(|o| o.size).sum();
        reporter
            .send(Event::Listed(pb::SourceListed {
                objects: objects.len() as u64,
                bytes,
            }))
            .await?;
        // Resume: an object an earlier run copied is not copied again when the
        // destination holds the recorded size; verification checks it against the
        // recorded source hash. One already verified needs nothing.
        let recorded = self.control.recorded_objects(&command.job_id).await?;
        // What the destination already holds, by key and size, listed once: it decides
        // both resumption and, for an object of the same size not recorded, whether to
        // compare checksums before writing.
        let present = &destination_sizes(dst, &command.job_id).await;
        let mut todo = Vec::new();
        let mut resumed: Vec<Work> = Vec::new();
        let mut already_verified = 0usize;
        for info in objects {
            let previous = recorded.get(&info.key).filter(|r| r.size == info.size);
            let hash = previous.and_then(|r| transfer::parse_xxh3_hex(&r.source_xxh3).ok());
            match (previous, hash) {
                (Some(r), Some(_)) if r.status == pb::ObjectStatus::Verified as i32 => {
                    already_verified += 1
                }
                (Some(_), Some(source_xxh3)) if present.get(&info.key) == Some(&info.size) => {
                    resumed.push(Work {
                        info,
                        source_xxh3,
                        attempts: 0,
                    })
                }
                _ => todo.push(info),
            }
        }
        info!(
            job_id = %command.job_id,
            to_copy = todo.len(),
            copied_before = resumed.len(),
            verified_before = already_verified,
            "copying"
        );
        let options = CopyOptions {
            bandwidth: vec![bandwidth, self.site_bandwidth.clone()],
            ..self.budget.copy_options(
                (self.config.part_size_mib << 20) as usize,
                transfer::DEFAULT_CONCURRENCY,
            )
        };
        let budget = &self.budget;
        let concurrency = self.config.concurrency;
        let pause = Duration::from_millis(self.config.faults.pause_after_object_ms);

        // Copy phase.
        let mut copied: Vec<Work> = resumed;
        let mut last_flush = tokio::time::Instant::now();
        let mut failures = Vec::new();
        let mut batch = Vec::new();
        let mut results = futures::stream::iter(todo.into_iter().map(|info| {
            let options = options.clone();
            async move {
                let _room = budget.reserve(copy_footprint(info.size, &options)).await;
                if present.get(&info.key) == Some(&info.size) {
                    if let Some(xxh3) = same_content(src, dst, &info.key).await {
                        return (info, Ok(Placed::AlreadyThere(xxh3)));
                    }
                }
                let outcome = copy_with_retries(src, dst, &info.key, &options)
                    .await
                    .map(|(c, attempts)| Placed::Copied(c, attempts));
                (info, outcome)
            }
        }))
        .buffer_unordered(concurrency);
        while let Some((info, outcome)) = results.next().await {
            if cancel.is_cancelled() {
                anyhow::bail!("cancelled");
            }
            match outcome {
                Ok(Placed::AlreadyThere(xxh3)) => batch.push(result(
                    &info.key,
                    info.size,
                    pb::ObjectStatus::Skipped,
                    Some(xxh3),
                    Some(xxh3),
                    0,
                    None,
                )),
                Ok(Placed::Copied(c, attempts)) => {
                    batch.push(result(
                        &info.key,
                        c.size,
                        pb::ObjectStatus::Copied,
                        Some(c.source_xxh3),
                        None,
                        attempts,
                        None,
                    ));
                    copied.push(Work {
                        info,
                        source_xxh3: c.source_xxh3,
                        attempts,
                    });
                }
                Err((e, attempts)) => {
                    batch.push(result(
                        &info.key,
                        info.size,
                        pb::ObjectStatus::Failed,
                        None,
                        None,
                        attempts,
                        Some(e.to_string()),
                    ));
                    failures.push(e);
                }
            }
            if batch.len() >= REPORT_BATCH || last_flush.elapsed() >= REPORT_INTERVAL {
                reporter.objects(std::mem::take(&mut batch)).await?;
                last_flush = tokio::time::Instant::now();
            }
            if !pause.is_zero() {
                tokio::time::sleep(pause).await;
            }
        }
        drop(results);
        reporter.objects(std::mem::take(&mut batch)).await?;
        if let Some(first) = failures.first() {
            anyhow::bail!(
                "{} object(s) could not be copied; first: {first}",
                failures.len()
            );
        }

        // Verify phase.
        let pause = Duration::from_millis(self.config.faults.pause_before_verify_ms);
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
        reporter
            .send(Event::Phase(pb::PhaseStarted {
                state: pb::JobState::Verifying.into(),
            }))
            .await?;
        let mode = if command.verify_mode == pb::VerifyMode::Full as i32 {
            VerifyMode::Full
        } else {
            VerifyMode::Quick
        };
        let mut results = futures::stream::iter(copied.into_iter().map(|work| {
            let options = options.clone();
            async move {
                // A full verify reads the destination back; either mode may repair by
                // copying again, so the copy's footprint is reserved.
                let _room = budget
                    .reserve(copy_footprint(work.info.size, &options))
                    .await;
                verify_or_repair(src, dst, work, mode, &options).await
            }
        }))
        .buffer_unordered(concurrency);
        let mut mismatches = Vec::new();
        while let Some(outcome) = results.next().await {
            if cancel.is_cancelled() {
                anyhow::bail!("cancelled");
            }
            match outcome {
                Ok((work, destination_xxh3, repaired)) => batch.push(result(
                    &work.info.key,
                    work.info.size,
                    pb::ObjectStatus::Verified,
                    Some(work.source_xxh3),
                    destination_xxh3,
                    repaired,
                    None,
                )),
                Err((work, e, repaired)) => {
                    batch.push(result(
                        &work.info.key,
                        work.info.size,
                        pb::ObjectStatus::Failed,
                        Some(work.source_xxh3),
                        None,
                        repaired,
                        Some(e.clone()),
                    ));
                    mismatches.push(e);
                }
            }
            if batch.len() >= REPORT_BATCH || last_flush.elapsed() >= REPORT_INTERVAL {
                reporter.objects(std::mem::take(&mut batch)).await?;
                last_flush = tokio::time::Instant::now();
            }
        }
        drop(results);
        reporter.objects(batch).await?;
        if let Some(first) = mismatches.first() {
            anyhow::bail!(
                "{} object(s) failed verification; first: {first}",
                mismatches.len()
            );
        }
        Ok(())
    }

    async fn retire(
        &self,
        src: &opendal::Operator,
        cancel: &CancellationToken,
    ) -> anyhow::Result<()> {
        let objects: Vec<ObjectInfo> = transfer::list(src)
            .try_collect()
            .await
            .map_err(|e: TransferError| anyhow::anyhow!("{e}"))?;
        let total = objects.len();
        for o in objects {
            if cancel.is_cancelled() {
                anyhow::bail!("cancelled");
            }
            transfer::delete_object(src, &o.key)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
        }
        info!(objects = total, "source retired");
        Ok(())
    }
}

/// How an object reached the destination in the copy phase.
enum Placed {
    Copied(transfer::Copied, u32),
    /// It was there already, with this xxh3-128 at both ends.
    AlreadyThere(u128),
}

/// Sizes of the objects at the destination, by key. A destination that cannot be listed
/// (not created yet, say) holds nothing as far as skipping goes: everything is copied.
async fn destination_sizes(dst: &opendal::Operator, job: &str) -> HashMap<String, u64> {
    let listed = transfer::list(dst)
        .try_fold(HashMap::new(), |mut sizes, o| {
            sizes.insert(o.key, o.size);
            std::future::ready(Ok(sizes))
        })
        .await;
    match listed {
        Ok(sizes) => sizes,
        Err(e) => {
            info!(job_id = %job, reason = %e, "destination not listed; copying every object");
            HashMap::new()
        }
    }
}

/// The object's xxh3-128 when source and destination hold the same bytes.
async fn same_content(src: &opendal::Operator, dst: &opendal::Operator, key: &str) -> Option<u128> {
    match tokio::join!(
        transfer::hash_object(src, key),
        transfer::hash_object(dst, key)
    ) {
        (Ok((src_size, src_xxh3)), Ok((dst_size, dst_xxh3)))
            if src_size == dst_size && src_xxh3 == dst_xxh3 =>
        {
            Some(src_xxh3)
        }
        _ => None,
    }
}

type CopyFailure = (TransferError, u32);

async fn copy_with_retries(
    src: &opendal::Operator,
    dst: &opendal::Operator,
    key: &str,
    options: &CopyOptions,
) -> Result<(transfer::Copied, u32), CopyFailure> {
    let mut attempts = 0;
    let mut backoff = Duration::from_millis(200);
    loop {
        attempts += 1;
        match transfer::copy_object(src, dst, key, options).await {
            Ok(c) => return Ok((c, attempts)),
            Err(e) if e.temporary && attempts < COPY_TRIES => {
                warn!(key, error = %e, attempts, "temporary failure; retrying");
                tokio::time::sleep(backoff).await;
                backoff *= 2;
            }
            Err(e) => return Err((e, attempts)),
        }
    }
}

/// Verifies one object; on a mismatch copies it again once and re-verifies. Returns the
/// destination hash (in full mode) and the number of extra copies made.
async fn verify_or_repair(
    src: &opendal::Operator,
    dst: &opendal::Operator,
    mut work: Work,
    mode: VerifyMode,
    options: &CopyOptions,
) -> Result<(Work, Option<u128>, u32), (Work, String, u32)> {
    let mut repaired = 0;
    loop {
        let verified = match transfer::verify_object(
            dst,
            &work.info.key,
            work.info.size,
            work.source_xxh3,
            mode,
        )
        .await
        {
            Ok(v) => v,
            Err(e) => return Err((work, e.to_string(), repaired)),
        };
        if verified.matches {
            return Ok((work, verified.destination_xxh3, repaired));
        }
        let found = verified
            .destination_xxh3
            .map(transfer::xxh3_hex)
            .unwrap_or_else(|| "a different size".into());
        if repaired >= 1 {
            let message = format!(
                "verifying {}: destination still differs after a re-copy (found {found}, expected {})",
                work.info.key,
                transfer::xxh3_hex(work.source_xxh3)
            );
            return Err((work, message, repaired));
        }
        warn!(key = %work.info.key, found, "destination differs from the source; copying again");
        repaired += 1;
        match copy_with_retries(src, dst, &work.info.key, options).await {
            Ok((c, attempts)) => {
                work.source_xxh3 = c.source_xxh3;
                work.info.size = c.size;
                work.attempts += attempts;
            }
            Err((e, _)) => return Err((work, e.to_string(), repaired)),
        }
    }
}

fn result(
    key: &str,
    size: u64,
    status: pb::ObjectStatus,
    source: Option<u128>,
    destination: Option<u128>,
    attempts: u32,
    error: Option<String>,
) -> pb::ObjectResult {
    pb::ObjectResult {
        key: key.to_owned(),
        size,
        status: status.into(),
        source_xxh3: source.map(transfer::xxh3_hex).unwrap_or_default(),
        destination_xxh3: destination.map(transfer::xxh3_hex).unwrap_or_default(),
        attempts,
        error: error.unwrap_or_default(),
        operation: String::new(),
    }
}
