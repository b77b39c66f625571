//! Runs one task of a job, reporting every step:
//!
//! - LIST lists the source page by page, cutting it into copy tasks that the control
//!   plane records and dispatches to every agent of the site;
//! - COPY copies a batch of objects, then verifies them;
//! - RETIRE deletes the source once the control plane has switched.
//!
//! The destination is written, never the source, until the retire task.

use std::{collections::HashMap, future::Future, pin::pin, sync::Arc, time::Duration};

use async_nats::jetstream;
use ferry_proto::v1::{self as pb, progress_report::Event};
use futures::{StreamExt, TryStreamExt};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::{
    bandwidth::{Bandwidth, JobBandwidths},
    budget::{copy_footprint, MemoryBudget},
    config::AgentConfig,
    control::ControlPlane,
    destination,
    filter::ObjectFilter,
    job_watch::{FetchJob, JobWatches},
    journal::TaskJournal,
    multipart,
    report::{Reporter, ResultQueue},
    s3::{S3Dataset, ServerCopied, ServerCopyOptions},
    storage::{operator, SiteAccess},
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
    /// This agent's share of each job's limit, for all its tasks of the job here.
    job_bandwidths: Arc<JobBandwidths>,
    /// One lookup of each job for all its tasks here: ends them when their attempt is
    /// over, and follows the job's limit.
    job_watches: Arc<JobWatches>,
    /// Bounds the bytes all transfers of this agent hold at once.
    budget: Arc<MemoryBudget>,
    /// Objects in flight across every task this agent runs (`concurrency`).
    object_slots: Arc<Semaphore>,
}

/// Both ends of a job, as operators and, for S3, as native clients.
struct Sites {
    src: opendal::Operator,
    dst: opendal::Operator,
    src_s3: Option<S3Dataset>,
    dst_s3: Option<S3Dataset>,
    /// Source and destination are the same objects: a storage-class change in place,
    /// where each object is copied onto itself server-side and none is ever skipped.
    in_place: bool,
}

impl Sites {
    fn new(source: &SiteAccess, destination: &SiteAccess) -> anyhow::Result<Self> {
        Ok(Sites {
            src: operator(source).map_err(|e| anyhow::anyhow!("source: {e}"))?,
            dst: operator(destination).map_err(|e| anyhow::anyhow!("destination: {e}"))?,
            src_s3: S3Dataset::for_site(source).map_err(|e| anyhow::anyhow!("source: {e}"))?,
            dst_s3: S3Dataset::for_site(destination)
                .map_err(|e| anyhow::anyhow!("destination: {e}"))?,
            in_place: source.same_objects(destination),
        })
    }

    /// What a copy of a `size`-byte object reserves of the memory budget before it
    /// starts: nothing for a server-side copy, which holds no bytes, nor for a multipart
    /// upload, whose parts reserve their own room as they are read.
    fn footprint(&self, size: u64, options: &CopyOptions) -> u64 {
        let multipart = self.dst_s3.is_some() && size > options.chunk_size as u64;
        if self.server_side().is_some() || (multipart && options.part_budget.is_some()) {
            0
        } else {
            copy_footprint(size, options)
        }
    }

    /// Source and destination when the service can copy between them by itself.
    fn server_side(&self) -> Option<(&S3Dataset, &S3Dataset)> {
        match (&self.src_s3, &self.dst_s3) {
            (Some(src), Some(dst)) if dst.can_copy_from(src) => Some((src, dst)),
            _ => None,
        }
    }
}

/// Why a copy task may stop early.
#[derive(Clone, Copy)]
struct Cancel<'a> {
    /// The task stops: the agent shuts down, or the job is over.
    task: &'a CancellationToken,
    /// The job ended or moved to another attempt: nobody resumes its uploads.
    job_over: &'a CancellationToken,
}

/// How an object's copy can be checked.
#[derive(Clone, Debug)]
enum Proof {
    /// The agent moved the bytes: their xxh3-128.
    Hashed(u128),
    /// The service copied it: the destination's size and etag must match.
    ServerSide(ServerCopied),
}

/// One copied object waiting for verification.
struct Work {
    info: ObjectInfo,
    proof: Proof,
}

/// How an object reached the destination in the copy phase.
enum Placed {
    /// Copied: how to check it, the bytes copied (the source may have changed size
    /// since it was listed), and the tries it took.
    Copied(Proof, u64, u32),
    /// It was there already, with this xxh3-128 at both ends.
    AlreadyThere(u128),
}

impl Executor {
    pub fn new(
        control: Arc<ControlPlane>,
        js: jetstream::Context,
        config: Arc<AgentConfig>,
        site_bandwidth: Arc<Bandwidth>,
    ) -> Self {
        let budget = Arc::new(MemoryBudget::new(config.memory_budget_mib << 20));
        let object_slots = Arc::new(Semaphore::new(config.concurrency));
        let job_bandwidths = Arc::<JobBandwidths>::default();
        let fetch: FetchJob = {
            let control = control.clone();
            Arc::new(move |job| {
                let control = control.clone();
                Box::pin(async move { control.job(&job).await.ok() })
            })
        };
        Executor {
            control,
            js,
            config,
            site_bandwidth,
            job_watches: JobWatches::new(fetch, job_bandwidths.clone()),
            job_bandwidths,
            budget,
            object_slots,
        }
    }

    /// Tells the control plane this agent is alive and which jobs it runs copy tasks
    /// of, and takes from the answer how many agents share each job's limit.
    pub async fn heartbeat(&self, stopping: bool) -> Result<(), tonic::Status> {
        let jobs = self.job_bandwidths.jobs();
        let agents = self.control.heartbeat(stopping, jobs).await?;
        for change in self.job_bandwidths.set_agents(&agents) {
            info!(
                job_id = %change.job,
                agents = change.agents,
                bytes_per_sec = change.share.unwrap_or(0),
                hold_ms = change.hold.map_or(0, |h| h.as_millis() as u64),
                "job bandwidth shared among its agents"
            );
        }
        Ok(())
    }

    /// Whether a job with a bandwidth limit has a copy task running here.
    pub fn runs_limited_jobs(&self) -> bool {
        self.job_bandwidths.any_limited()
    }

    pub async fn run(&self, command: &pb::JobCommand, cancel: CancellationToken) -> Outcome {
        let cleanup = command.kind == pb::TaskKind::AbortUploads as i32;
        let (source, mut destination) = match self
            .control
            .job_access(&command.job_id, command.attempt, cleanup)
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
        if cleanup {
            return abort_recorded_uploads(command, &destination).await;
        }
        let reporter = Reporter::new(self.js.clone(), command, self.control.agent_id());
        // Cancelled by the agent's shutdown or when the job is over; `job_over` alone
        // tells the second apart, when unfinished uploads are no use to anyone.
        let cancel = cancel.child_token();
        let job_over = CancellationToken::new();
        let watch = self.job_watches.watch(
            &command.job_id,
            command.attempt,
            &[cancel.clone(), job_over.clone()],
        );
        let result = async {
            let sites = Sites::new(&source, &destination)?;
            reporter.send(Event::Started(pb::TaskStarted {})).await?;
            match pb::TaskKind::try_from(command.kind) {
                Ok(pb::TaskKind::Retire) => self.retire(&sites.src, &cancel).await,
                Ok(pb::TaskKind::List) => {
                    self.list_into_tasks(command, &sites, &reporter, &cancel)
                        .await
                }
                _ => {
                    let cancel = Cancel {
                        task: &cancel,
                        job_over: &job_over,
                    };
                    self.copy_and_verify(command, &sites, &reporter, cancel)
                        .await
                }
            }
        }
        .await;
        drop(watch);
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

    /// Lists the source through the plan's filter and reports it page by page as copy
    /// tasks of at most `task_objects` objects or `task_mib` MiB: memory does not grow
    /// with the number of keys, and agents start copying while the listing goes on.
    async fn list_into_tasks(
        &self,
        command: &pb::JobCommand,
        sites: &Sites,
        reporter: &Reporter,
        cancel: &CancellationToken,
    ) -> anyhow::Result<()> {
        let filter = ObjectFilter::from_pb(command.filter.as_ref()).map_err(anyhow::Error::msg)?;
        let destination_empty = destination::holds_nothing(&sites.dst).await;
        let mut listing = pin!(transfer::list_sizes(&sites.src, "", None)
            .try_filter(|o| std::future::ready(filter.accepts(o))));
        let max_bytes = self.config.task_mib << 20;
        let (mut page, mut page_bytes) = (Vec::new(), 0u64);
        let (mut tasks, mut objects, mut bytes) = (0usize, 0u64, 0u64);
        loop {
            let next = listing
                .try_next()
                .await
                .map_err(|e: TransferError| anyhow::anyhow!("{e}"))?;
            if cancel.is_cancelled() {
                anyhow::bail!("cancelled");
            }
            let end = next.is_none();
            if let Some(o) = next {
                objects += 1;
                bytes += o.size;
                page_bytes += o.size;
                page.push(pb::ListedObject {
                    key: o.key,
                    size: o.size,
                    etag: o.etag.unwrap_or_default(),
                    ..Default::default()
                });
            }
            let full = page.len() >= self.config.task_objects || page_bytes >= max_bytes;
            if !page.is_empty() && (full || end) {
                reporter
                    .send(Event::TaskListed(pb::TaskListed {
                        copy_task_id: format!("copy-{tasks}"),
                        objects: std::mem::take(&mut page),
                        destination_empty,
                    }))
                    .await?;
                tasks += 1;
                page_bytes = 0;
            }
            if end {
                break;
            }
        }
        info!(job_id = %command.job_id, tasks, objects, bytes, "source listed into copy tasks");
        Ok(())
    }

    /// Copies and verifies the task's objects. Their results are published in the
    /// background as they come, and all of them are stored before this returns, however
    /// it ends, so the task's end is never reported ahead of its objects.
    async fn copy_and_verify(
        &self,
        command: &pb::JobCommand,
        sites: &Sites,
        reporter: &Reporter,
        cancel: Cancel<'_>,
    ) -> anyhow::Result<()> {
        // The job's pace on this agent, shared with its other tasks here. The first
        // task of a job here tells the control plane at once, to learn how many agents
        // split the job's limit before it sends a byte; the others wait for that answer.
        let lease = self
            .job_bandwidths
            .join(&command.job_id, command.bandwidth_limit_bytes_per_sec);
        if lease.is_first() {
            if let Err(e) = self.heartbeat(false).await {
                warn!(job_id = %command.job_id, error = %e.message(), "heartbeat failed");
            }
            lease.announced();
        } else {
            lease.until_announced().await;
        }
        let mut results = ResultQueue::start(reporter.clone());
        let outcome = self
            .copy_and_verify_into(
                command,
                sites,
                reporter,
                cancel,
                lease.bandwidth(),
                &mut results,
            )
            .await;
        let stored = results.finish().await;
        outcome.and(stored)
    }

    async fn copy_and_verify_into(
        &self,
        command: &pb::JobCommand,
        sites: &Sites,
        reporter: &Reporter,
        cancel: Cancel<'_>,
        bandwidth: Arc<Bandwidth>,
        queue: &mut ResultQueue,
    ) -> anyhow::Result<()> {
        // Resume: an object an earlier run copied is not copied again when the
        // destination holds the recorded size; verification checks it against the
        // recorded source hash. One already verified needs nothing. An unfinished
        // multipart upload continues where it stopped.
        let recorded = self
            .control
            .task_objects(&command.job_id, &command.task_id)
            .await?;
        let objects: Vec<ObjectInfo> = command
            .objects
            .iter()
            .map(|o| ObjectInfo {
                key: o.key.clone(),
                size: o.size,
                content_type: None,
                user_metadata: Default::default(),
                last_modified: None,
                etag: Some(o.etag.clone()).filter(|e| !e.is_empty()),
            })
            .collect();
        // What the destination already holds, by key and size, listed once: it decides
        // both resumption and, for an object of the same size not recorded, whether to
        // compare checksums before writing. On a destination that held nothing when the
        // listing began, a first run of the task (nothing of it reported, no upload
        // journalled) has nothing there to find, and the listing is left out; should an
        // earlier run have died before reporting, what it wrote is written again. In
        // place, the destination holds every object already, with the old class: none is
        // skipped, and the listing is left out too.
        let first_run = recorded.values().all(|o| {
            o.status == pb::ObjectStatus::Pending as i32 && o.attempts == 0 && o.upload.is_none()
        });
        let present = &if (command.destination_was_empty && first_run) || sites.in_place {
            HashMap::new()
        } else {
            destination::listing(&sites.dst, &objects, &command.job_id).await
        };
        let journal = &TaskJournal::new(reporter.clone(), &recorded, &self.config.faults);
        let mut todo = Vec::new();
        let mut copied: Vec<Work> = Vec::new();
        let mut already_done = 0usize;
        for info in objects {
            let previous = recorded.get(&info.key).filter(|r| r.size == info.size);
            let status = previous.and_then(|r| pb::ObjectStatus::try_from(r.status).ok());
            let hash = previous.and_then(|r| transfer::parse_xxh3_hex(&r.source_xxh3).ok());
            match (status, hash) {
                (Some(pb::ObjectStatus::Verified | pb::ObjectStatus::Skipped), _) => {
                    already_done += 1
                }
                (Some(pb::ObjectStatus::Copied), Some(source_xxh3))
                    if present.get(&info.key).map(|l| l.size) == Some(info.size) =>
                {
                    copied.push(Work {
                        info,
                        proof: Proof::Hashed(source_xxh3),
                    })
                }
                _ => todo.push(info),
            }
        }
        info!(
            job_id = %command.job_id,
            task = %command.task_id,
            to_copy = todo.len(),
            copied_before = copied.len(),
            done_before = already_done,
            "copying"
        );
        let options = CopyOptions {
            bandwidth: vec![bandwidth, self.site_bandwidth.clone()],
            part_budget: Some(self.budget.clone()),
            task_started: Some(std::time::SystemTime::now()),
            ..self.budget.copy_options(
                (self.config.part_size_mib << 20) as usize,
                transfer::DEFAULT_CONCURRENCY,
            )
        };
        let server = ServerCopyOptions {
            storage_class: sites.dst_s3.as_ref().and_then(|d| d.storage_class.clone()),
            ..ServerCopyOptions::default()
        };
        let (budget, slots) = (&self.budget, &self.object_slots);
        let concurrency = self.config.concurrency;
        let pause = Duration::from_millis(self.config.faults.pause_after_object_ms);
        let mode = if command.verify_mode == pb::VerifyMode::Full as i32 {
            VerifyMode::Full
        } else {
            VerifyMode::Quick
        };
        // A full verification reads each object back as soon as its copy is done, in
        // the copy's slot: the reads overlap the other objects' copies instead of
        // waiting for the slowest copy of the task. A quick one checks the whole task
        // with one listing afterwards.
        let verify_at_once =
            mode == VerifyMode::Full && self.config.faults.pause_before_verify_ms == 0;

        // Copy phase.
        let mut last_flush = tokio::time::Instant::now();
        let mut failures = Vec::new();
        let mut batch = Vec::new();
        let mut results = futures::stream::iter(todo.into_iter().map(|info| {
            let (options, server) = (&options, &server);
            async move {
                let _slot = slots.acquire().await;
                let _room = budget.reserve(sites.footprint(info.size, options)).await;
                let outcome = place(sites, &info, present, options, server, journal).await;
                let verified = match &outcome {
                    Ok(Placed::Copied(proof, size, _)) if verify_at_once => {
                        let work = Work {
                            info: ObjectInfo {
                                size: *size,
                                ..info.clone()
                            },
                            proof: proof.clone(),
                        };
                        Some(verify_or_repair(sites, work, mode, options, server).await)
                    }
                    _ => None,
                };
                (info, outcome, verified)
            }
        }))
        .buffer_unordered(concurrency);
        let mut mismatches = Vec::new();
        loop {
            let next = tokio::select! {
                _ = cancel.task.cancelled() => None,
                next = results.next() => next,
            };
            let Some((info, outcome, verified)) = next else {
                break;
            };
            match (outcome, verified) {
                (Ok(Placed::AlreadyThere(xxh3)), _) => batch.push(
                    ObjectReport::new(&info, pb::ObjectStatus::Skipped)
                        .hashes(Some(xxh3), Some(xxh3))
                        .into(),
                ),
                // Verified at once: its one result says so. Should the agent stop before
                // reporting it, the next run finds the same bytes at both ends and
                // records the object skipped, without writing it again.
                (Ok(Placed::Copied(_, _, attempts)), Some(verified)) => {
                    batch.push(verification_report(verified, attempts, &mut mismatches))
                }
                (Ok(Placed::Copied(proof, size, attempts)), None) => {
                    let info = ObjectInfo { size, ..info };
                    let source_xxh3 = match &proof {
                        Proof::Hashed(xxh3) => Some(*xxh3),
                        Proof::ServerSide(_) => None,
                    };
                    batch.push(
                        ObjectReport::new(&info, pb::ObjectStatus::Copied)
                            .hashes(source_xxh3, None)
                            .attempts(attempts)
                            .into(),
                    );
                    copied.push(Work { info, proof });
                }
                (Err((e, attempts)), _) => {
                    batch.push(
                        ObjectReport::new(&info, pb::ObjectStatus::Failed)
                            .attempts(attempts)
                            .failed(&e)
                            .into(),
                    );
                    failures.push(e);
                }
            }
            if batch.len() >= REPORT_BATCH || last_flush.elapsed() >= REPORT_INTERVAL {
                queue.push(std::mem::take(&mut batch)).await?;
                last_flush = tokio::time::Instant::now();
            }
            if !pause.is_zero() {
                tokio::time::sleep(pause).await;
            }
        }
        drop(results);
        if cancel.task.is_cancelled() {
            if cancel.job_over.is_cancelled() {
                abort_uploads(sites, journal).await;
            }
            anyhow::bail!("cancelled");
        }
        queue.push(std::mem::take(&mut batch)).await?;

        // Verify phase: what failed to copy is recorded already; the rest is checked,
        // so one bad object does not leave the others of the task unverified.
        let pause = Duration::from_millis(self.config.faults.pause_before_verify_ms);
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
        if mode == VerifyMode::Quick {
            // One listing of the task's range checks most objects at once; only those
            // it does not confirm are looked at one by one (and repaired).
            let infos: Vec<ObjectInfo> = copied.iter().map(|w| w.info.clone()).collect();
            let listed = destination::listing(&sites.dst, &infos, &command.job_id).await;
            let (confirmed, unconfirmed) = copied
                .into_iter()
                .partition::<Vec<_>, _>(|w| confirmed_by_listing(w, listed.get(&w.info.key)));
            for work in confirmed {
                let source_xxh3 = match work.proof {
                    Proof::Hashed(xxh3) => Some(xxh3),
                    Proof::ServerSide(_) => None,
                };
                batch.push(
                    ObjectReport::new(&work.info, pb::ObjectStatus::Verified)
                        .hashes(source_xxh3, None)
                        .into(),
                );
            }
            copied = unconfirmed;
        }
        let mut results = futures::stream::iter(copied.into_iter().map(|work| {
            let (options, server) = (&options, &server);
            async move {
                let _slot = slots.acquire().await;
                // A full verify reads the destination back; either mode may repair by
                // copying again, so the copy's footprint is reserved.
                let _room = budget
                    .reserve(sites.footprint(work.info.size, options))
                    .await;
                verify_or_repair(sites, work, mode, options, server).await
            }
        }))
        .buffer_unordered(concurrency);
        while let Some(outcome) = results.next().await {
            if cancel.task.is_cancelled() {
                anyhow::bail!("cancelled");
            }
            batch.push(verification_report(outcome, 0, &mut mismatches));
            if batch.len() >= REPORT_BATCH || last_flush.elapsed() >= REPORT_INTERVAL {
                queue.push(std::mem::take(&mut batch)).await?;
                last_flush = tokio::time::Instant::now();
            }
        }
        drop(results);
        queue.push(batch).await?;
        if let Some(first) = failures.first() {
            anyhow::bail!(
                "{} object(s) could not be copied; first: {first}",
                failures.len()
            );
        }
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
        let mut listing = pin!(transfer::list_sizes(src, "", None));
        let mut total = 0usize;
        while let Some(o) = listing
            .try_next()
            .await
            .map_err(|e: TransferError| anyhow::anyhow!("{e}"))?
        {
            if cancel.is_cancelled() {
                anyhow::bail!("cancelled");
            }
            transfer::delete_object(src, &o.key)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            total += 1;
        }
        info!(objects = total, "source retired");
        Ok(())
    }
}

/// Copies one object the fastest way the two sites allow: not at all when the
/// destination holds the same bytes already, server-side within one S3 service, as a
/// resumable multipart upload to S3 above one part, else streamed through the agent.
async fn place(
    sites: &Sites,
    info: &ObjectInfo,
    present: &HashMap<String, destination::Listed>,
    options: &CopyOptions,
    server: &ServerCopyOptions,
    journal: &TaskJournal,
) -> Result<Placed, CopyFailure> {
    let key = info.key.as_str();
    if sites.in_place && sites.server_side().is_none() {
        // Reading an object while writing it would destroy it.
        let e = TransferError {
            key: key.to_owned(),
            operation: "copy",
            kind: opendal::ErrorKind::Unsupported,
            message: "source and destination are the same objects, and only an S3 \
                      server-side copy can rewrite an object in place"
                .into(),
            temporary: false,
        };
        return Err((e, 1));
    }
    if present.get(key).map(|l| l.size) == Some(info.size) {
        if let Some(xxh3) = destination::same_content(&sites.src, &sites.dst, key).await {
            return Ok(Placed::AlreadyThere(xxh3));
        }
    }
    if let Some((src, dst)) = sites.server_side() {
        let listed = Some((info.size, info.etag.as_deref()));
        let (copied, attempts) =
            with_retries(key, || dst.copy_from(src, key, listed, server)).await?;
        let size = copied.size;
        return Ok(Placed::Copied(Proof::ServerSide(copied), size, attempts));
    }
    let (copied, attempts) = match &sites.dst_s3 {
        Some(dst) if info.size > options.chunk_size as u64 => with_retries(key, || {
            multipart::upload_resumable(&sites.src, dst, key, journal.state(key), options, journal)
        })
        .await
        .inspect(|_| journal.finished(key))?,
        _ => {
            with_retries(key, || {
                transfer::copy_object(&sites.src, &sites.dst, key, options)
            })
            .await?
        }
    };
    Ok(Placed::Copied(
        Proof::Hashed(copied.source_xxh3),
        copied.size,
        attempts,
    ))
}

/// Aborts the task's unfinished multipart uploads, once the job is over, so that no
/// orphaned parts stay behind (and keep costing) at the destination. Best effort: a
/// failure is logged, and a bucket lifecycle rule is the backstop.
async fn abort_uploads(sites: &Sites, journal: &TaskJournal) {
    let Some(dst) = &sites.dst_s3 else { return };
    for (key, upload) in journal.uploads() {
        match dst.abort_upload(&key, &upload.upload_id).await {
            Ok(()) => {
                info!(key, upload_id = %upload.upload_id, "unfinished upload aborted: the job is over")
            }
            Err(e) => {
                warn!(key, upload_id = %upload.upload_id, error = %e, "aborting an unfinished upload failed")
            }
        }
    }
}

/// Aborts the uploads an ABORT_UPLOADS task lists: the job ended, and whichever agent
/// started them may be gone. An upload the service no longer knows is already gone.
async fn abort_recorded_uploads(command: &pb::JobCommand, destination: &SiteAccess) -> Outcome {
    let dst = match S3Dataset::for_site(destination) {
        Ok(Some(dst)) => dst,
        Ok(None) => return Outcome::Dropped("the destination is not on S3".into()),
        Err(e) => return Outcome::Dropped(format!("destination: {e}")),
    };
    let mut failed = 0;
    for o in &command.objects {
        match dst.abort_upload(&o.key, &o.upload_id).await {
            Ok(()) => {
                info!(job_id = %command.job_id, key = %o.key, upload_id = %o.upload_id, "unfinished upload aborted: the job is over")
            }
            Err(e) if e.kind == opendal::ErrorKind::NotFound => {}
            Err(e) if e.temporary => {
                warn!(job_id = %command.job_id, key = %o.key, error = %e, "aborting an upload failed; will retry");
                failed += 1;
            }
            Err(e) => {
                warn!(job_id = %command.job_id, key = %o.key, error = %e, "aborting an upload failed; a lifecycle rule must remove it")
            }
        }
    }
    if failed > 0 {
        return Outcome::Retry(format!("{failed} upload(s) not aborted yet"));
    }
    Outcome::Done
}

type CopyFailure = (TransferError, u32);

/// Runs `copy` until it succeeds, fails permanently, or failed [`COPY_TRIES`] times;
/// returns its result and the tries it took.
async fn with_retries<T, F, Fut>(key: &str, mut copy: F) -> Result<(T, u32), CopyFailure>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, TransferError>>,
{
    let mut attempts = 0;
    let mut backoff = Duration::from_millis(200);
    loop {
        attempts += 1;
        match copy().await {
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

/// Source and destination xxh3-128 as far as the verification computed them.
type Hashes = (Option<u128>, Option<u128>);

/// Verifies one object; on a mismatch copies it again once and re-verifies. Returns the
/// hashes known and the number of extra copies made.
async fn verify_or_repair(
    sites: &Sites,
    mut work: Work,
    mode: VerifyMode,
    options: &CopyOptions,
    server: &ServerCopyOptions,
) -> Result<(Work, Hashes, u32), (Work, TransferError, u32)> {
    let mut repaired = 0;
    loop {
        let checked = match &work.proof {
            Proof::Hashed(xxh3) => verify_hashed(sites, &work.info, *xxh3, mode).await,
            Proof::ServerSide(copied) => verify_server_copy(sites, &work.info, copied, mode).await,
        };
        let found = match checked {
            Ok(Ok(hashes)) => return Ok((work, hashes, repaired)),
            Ok(Err(found)) => found,
            Err(e) => return Err((work, e, repaired)),
        };
        if repaired >= 1 {
            let e = mismatch(
                &work.info.key,
                format!("destination still differs after a re-copy ({found})"),
            );
            return Err((work, e, repaired));
        }
        warn!(key = %work.info.key, found, "destination differs from the source; copying again");
        repaired += 1;
        let key = work.info.key.as_str();
        let again = match sites.server_side() {
            Some((src, dst)) => with_retries(key, || dst.copy_from(src, key, None, server))
                .await
                .map(|(c, _)| Proof::ServerSide(c)),
            None => with_retries(key, || {
                transfer::copy_object(&sites.src, &sites.dst, key, options)
            })
            .await
            .map(|(c, _)| Proof::Hashed(c.source_xxh3)),
        };
        match again {
            Ok(proof) => work.proof = proof,
            Err((e, _)) => return Err((work, e, repaired)),
        }
    }
}

/// The result line of a verification; a failure also goes to `mismatches`. `copies`
/// is what the copy before it took (0 when it happened in an earlier run): the
/// attempts recorded are those and the re-copies the verification made.
fn verification_report(
    outcome: Result<(Work, Hashes, u32), (Work, TransferError, u32)>,
    copies: u32,
    mismatches: &mut Vec<TransferError>,
) -> pb::ObjectResult {
    match outcome {
        Ok((work, hashes, repaired)) => ObjectReport::new(&work.info, pb::ObjectStatus::Verified)
            .hashes(hashes.0, hashes.1)
            .attempts(copies + repaired)
            .into(),
        Err((work, e, repaired)) => {
            let report = ObjectReport::new(&work.info, pb::ObjectStatus::Failed)
                .attempts(copies + repaired)
                .failed(&e)
                .into();
            mismatches.push(e);
            report
        }
    }
}

/// Whether a destination listing shows a copy as quick verification would find it:
/// the size copied, and for a server-side copy the etag the service returned, where
/// the listing carries etags (S3's does). A listing without them confirms a
/// server-side copy by its size, as it does a copy the agent made: a HEAD per object
/// would only have the service repeat the etag its CopyObject answer gave.
fn confirmed_by_listing(work: &Work, listed: Option<&destination::Listed>) -> bool {
    let Some(listed) = listed else { return false };
    match &work.proof {
        Proof::Hashed(_) => listed.size == work.info.size,
        Proof::ServerSide(copied) => {
            let etags_agree = match (&copied.etag, &listed.etag) {
                (Some(copied), Some(listed)) => copied == listed,
                _ => true,
            };
            listed.size == copied.size && etags_agree
        }
    }
}

/// Checks bytes the agent copied against their hash. `Ok(Err(found))` is a mismatch.
async fn verify_hashed(
    sites: &Sites,
    info: &ObjectInfo,
    source_xxh3: u128,
    mode: VerifyMode,
) -> Result<Result<Hashes, String>, TransferError> {
    let verified =
        transfer::verify_object(&sites.dst, &info.key, info.size, source_xxh3, mode).await?;
    if verified.matches {
        return Ok(Ok((Some(source_xxh3), verified.destination_xxh3)));
    }
    Ok(Err(format!(
        "found {}, expected {}",
        verified
            .destination_xxh3
            .map(transfer::xxh3_hex)
            .unwrap_or_else(|| "a different size".into()),
        transfer::xxh3_hex(source_xxh3)
    )))
}

/// Checks a server-side copy: in quick mode by size and etag (the service computed
/// both), in full mode by reading and hashing both ends.
async fn verify_server_copy(
    sites: &Sites,
    info: &ObjectInfo,
    copied: &ServerCopied,
    mode: VerifyMode,
) -> Result<Result<Hashes, String>, TransferError> {
    let Some((_, dst)) = sites.server_side() else {
        unreachable!("a server-side copy is verified only between S3 datasets of one service")
    };
    match mode {
        VerifyMode::Quick => {
            let (size, etag) = dst.head(&info.key).await?;
            let etag_matches = copied.etag.is_none() || etag == copied.etag;
            if size == copied.size && etag_matches {
                Ok(Ok((None, None)))
            } else {
                Ok(Err(format!(
                    "found {size} bytes with etag {etag:?}, expected {} with {:?}",
                    copied.size, copied.etag
                )))
            }
        }
        VerifyMode::Full => {
            let (source, destination) = tokio::join!(
                transfer::hash_streamed(&sites.src, &info.key),
                transfer::hash_streamed(&sites.dst, &info.key)
            );
            let ((src_size, src_xxh3), (dst_size, dst_xxh3)) = (source?, destination?);
            if src_size == dst_size && src_xxh3 == dst_xxh3 {
                Ok(Ok((Some(src_xxh3), Some(dst_xxh3))))
            } else {
                Ok(Err(format!(
                    "found {}, expected {}",
                    transfer::xxh3_hex(dst_xxh3),
                    transfer::xxh3_hex(src_xxh3)
                )))
            }
        }
    }
}

fn mismatch(key: &str, detail: String) -> TransferError {
    TransferError {
        key: key.to_owned(),
        operation: "verify",
        kind: opendal::ErrorKind::Unexpected,
        message: format!("verifying {key}: {detail}"),
        temporary: false,
    }
}

/// One object's line in a progress report.
struct ObjectReport(pb::ObjectResult);

impl ObjectReport {
    fn new(info: &ObjectInfo, status: pb::ObjectStatus) -> Self {
        ObjectReport(pb::ObjectResult {
            key: info.key.clone(),
            size: info.size,
            status: status.into(),
            ..Default::default()
        })
    }

    fn hashes(mut self, source: Option<u128>, destination: Option<u128>) -> Self {
        self.0.source_xxh3 = source.map(transfer::xxh3_hex).unwrap_or_default();
        self.0.destination_xxh3 = destination.map(transfer::xxh3_hex).unwrap_or_default();
        self
    }

    fn attempts(mut self, attempts: u32) -> Self {
        self.0.attempts = attempts;
        self
    }

    /// The failure's reason and the operation that failed (`read`, `write`, `copy`,
    /// `verify`...), kept on the object for the report.
    fn failed(mut self, e: &TransferError) -> Self {
        self.0.error = e.to_string();
        self.0.operation = e.operation.to_owned();
        self
    }
}

impl From<ObjectReport> for pb::ObjectResult {
    fn from(r: ObjectReport) -> Self {
        r.0
    }
}
