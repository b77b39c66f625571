//! A COPY task: its objects are copied, each the fastest way the two sites allow, and
//! then verified. Every object's result is reported as it comes, and all of them are
//! stored before the task's end is.

use std::{collections::HashMap, future::Future, sync::Arc, time::Duration};

use ferry_proto::v1 as pb;
use futures::StreamExt;
use tokio::sync::{Semaphore, SemaphorePermit};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{
    cleanup,
    object_report::ObjectReport,
    sites::{Route, Sites},
    verify::{self, Proof, Verified, Work},
    Executor,
};
use crate::{
    bandwidth::Bandwidth,
    budget::MemoryBudget,
    destination,
    journal::TaskJournal,
    multipart,
    report::{Reporter, ResultQueue},
    s3::{S3Dataset, ServerCopyOptions},
    single_put::{self, PutFailure},
    transfer::{self, CopyOptions, ObjectInfo, TransferError, VerifyMode},
};

/// Copies of one object tried before its failure is final (temporary errors only).
const COPY_TRIES: u32 = 3;
/// The wait before an object's second copy; it doubles for each one after.
const FIRST_BACKOFF: Duration = Duration::from_millis(200);

/// Why a copy task may stop early.
#[derive(Clone, Copy)]
pub(super) struct Cancel<'a> {
    /// The task stops: the agent shuts down, or the job is over.
    pub task: &'a CancellationToken,
    /// The job ended or moved to another attempt: nobody resumes its uploads.
    pub job_over: &'a CancellationToken,
}

impl Executor {
    /// Copies and verifies the task's objects. Their results are published in the
    /// background as they come, and all of them are stored before this returns, however
    /// it ends, so the task's end is never reported ahead of its objects.
    pub(super) async fn copy_and_verify(
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
        results: &mut ResultQueue,
    ) -> anyhow::Result<()> {
        let recorded = self
            .control
            .task_objects(&command.job_id, &command.task_id)
            .await?;
        let objects: Vec<ObjectInfo> = command.objects.iter().map(listed_object).collect();
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
        let present = if (command.destination_was_empty && first_run) || sites.in_place {
            HashMap::new()
        } else {
            destination::listing(&sites.dst, &objects, &command.job_id).await
        };
        let journal = TaskJournal::new(reporter.clone(), &recorded, &self.config.faults);
        let resume = Resume::sort(objects, &recorded, &present);
        info!(
            job_id = %command.job_id,
            task = %command.task_id,
            to_copy = resume.todo.len(),
            copied_before = resume.copied.len(),
            done_before = resume.done,
            "copying"
        );
        let mode = if command.verify_mode == pb::VerifyMode::Full as i32 {
            VerifyMode::Full
        } else {
            VerifyMode::Quick
        };
        let task = CopyTask {
            sites,
            options: CopyOptions {
                bandwidth: vec![bandwidth, self.site_bandwidth.clone()],
                part_budget: Some(self.budget.clone()),
                task_started: Some(std::time::SystemTime::now()),
                multipart_threshold: self.config.multipart_threshold_mib.map(|mib| mib << 20),
                ..self.budget.copy_options(
                    (self.config.part_size_mib << 20) as usize,
                    transfer::DEFAULT_CONCURRENCY,
                )
            },
            server: ServerCopyOptions {
                storage_class: sites.dst_s3.as_ref().and_then(|d| d.storage_class.clone()),
                ..ServerCopyOptions::default()
            },
            mode,
            budget: &self.budget,
            slots: &self.object_slots,
            concurrency: self.config.concurrency,
            // A full verification reads each object back as soon as its copy is done,
            // in the copy's slot: the reads overlap the other objects' copies instead
            // of waiting for the slowest copy of the task. A quick one checks the whole
            // task with one listing afterwards.
            verify_at_once: mode == VerifyMode::Full
                && self.config.faults.pause_before_verify_ms == 0,
            pause_after_object: Duration::from_millis(self.config.faults.pause_after_object_ms),
        };

        let mut failed = Failed::default();
        let mut copied = task
            .copy(
                resume.todo,
                &present,
                &journal,
                cancel,
                results,
                &mut failed,
            )
            .await?;
        copied.extend(resume.copied);
        // What failed to copy is recorded already; the rest is checked, so one bad
        // object does not leave the others of the task unverified.
        let pause = Duration::from_millis(self.config.faults.pause_before_verify_ms);
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
        task.verify(copied, &command.job_id, cancel, results, &mut failed)
            .await?;
        failed.into_result()
    }
}

/// A task's object as the listing gave it.
fn listed_object(o: &pb::ListedObject) -> ObjectInfo {
    ObjectInfo {
        key: o.key.clone(),
        size: o.size,
        content_type: None,
        user_metadata: Default::default(),
        last_modified: None,
        etag: Some(o.etag.clone()).filter(|e| !e.is_empty()),
    }
}

/// The task's objects sorted by what an earlier run of it left. An object an earlier
/// run copied is not copied again when the destination holds the recorded size;
/// verification checks it against the recorded source hash. One already verified needs
/// nothing. An unfinished multipart upload continues where it stopped (the journal).
struct Resume {
    todo: Vec<ObjectInfo>,
    copied: Vec<Work>,
    done: usize,
}

impl Resume {
    fn sort(
        objects: Vec<ObjectInfo>,
        recorded: &HashMap<String, pb::JobObject>,
        present: &HashMap<String, destination::Listed>,
    ) -> Self {
        let mut resume = Resume {
            todo: Vec::new(),
            copied: Vec::new(),
            done: 0,
        };
        for info in objects {
            let previous = recorded.get(&info.key).filter(|r| r.size == info.size);
            let status = previous.and_then(|r| pb::ObjectStatus::try_from(r.status).ok());
            let hash = previous.and_then(|r| transfer::parse_xxh3_hex(&r.source_xxh3).ok());
            match (status, hash) {
                (Some(pb::ObjectStatus::Verified | pb::ObjectStatus::Skipped), _) => {
                    resume.done += 1
                }
                (Some(pb::ObjectStatus::Copied), Some(source_xxh3))
                    if present.get(&info.key).map(|l| l.size) == Some(info.size) =>
                {
                    resume.copied.push(Work {
                        info,
                        proof: Proof::Recorded(source_xxh3),
                    })
                }
                _ => resume.todo.push(info),
            }
        }
        resume
    }
}

/// The failures of a task's objects, each recorded on its object already; the first
/// of each kind becomes the task's error.
#[derive(Default)]
struct Failed {
    copies: Vec<TransferError>,
    verifications: Vec<TransferError>,
}

impl Failed {
    fn into_result(self) -> anyhow::Result<()> {
        if let Some(first) = self.copies.first() {
            anyhow::bail!(
                "{} object(s) could not be copied; first: {first}",
                self.copies.len()
            );
        }
        if let Some(first) = self.verifications.first() {
            anyhow::bail!(
                "{} object(s) failed verification; first: {first}",
                self.verifications.len()
            );
        }
        Ok(())
    }
}

/// What every object of one copy task shares.
struct CopyTask<'a> {
    sites: &'a Sites,
    options: CopyOptions,
    server: ServerCopyOptions,
    mode: VerifyMode,
    /// Bounds the bytes all transfers of this agent hold at once.
    budget: &'a MemoryBudget,
    /// Objects in flight across every task this agent runs.
    slots: &'a Semaphore,
    concurrency: usize,
    /// Each copy is verified in its own slot as soon as it is done.
    verify_at_once: bool,
    /// Fault injection: a pause after each object's result.
    pause_after_object: Duration,
}

/// How an object reached the destination in the copy phase.
enum Placed {
    /// Copied: how to check it, the bytes copied (the source may have changed size
    /// since it was listed), and the tries it took.
    Copied(Proof, u64, u32),
    /// It was there already, with this xxh3-128 at both ends.
    AlreadyThere(u128),
}

/// A copy's final failure and the tries it took.
pub(super) type CopyFailure = (TransferError, u32);

impl CopyTask<'_> {
    /// The copy phase: copies `todo`, at most `concurrency` objects at once, and reports
    /// each object's result. Returns the copies still to verify.
    async fn copy(
        &self,
        todo: Vec<ObjectInfo>,
        present: &HashMap<String, destination::Listed>,
        journal: &TaskJournal,
        cancel: Cancel<'_>,
        results: &mut ResultQueue,
        failed: &mut Failed,
    ) -> anyhow::Result<Vec<Work>> {
        let mut copied = Vec::new();
        let mut placed = futures::stream::iter(
            todo.into_iter()
                .map(|info| self.place_in_slot(info, present, journal)),
        )
        .buffer_unordered(self.concurrency);
        loop {
            let next = tokio::select! {
                _ = cancel.task.cancelled() => None,
                next = placed.next() => next,
            };
            let Some((info, outcome, verified)) = next else {
                break;
            };
            let report = match (outcome, verified) {
                (Ok(Placed::AlreadyThere(xxh3)), _) => {
                    ObjectReport::new(&info, pb::ObjectStatus::Skipped)
                        .hashes(Some(xxh3), Some(xxh3))
                        .into()
                }
                // Verified at once: its one result says so. Should the agent stop before
                // reporting it, the next run finds the same bytes at both ends and
                // records the object skipped, without writing it again.
                (Ok(Placed::Copied(_, _, attempts)), Some(verified)) => {
                    verify::verification_report(verified, attempts, &mut failed.verifications)
                }
                (Ok(Placed::Copied(proof, size, attempts)), None) => {
                    let info = ObjectInfo { size, ..info };
                    let report = ObjectReport::new(&info, pb::ObjectStatus::Copied)
                        .hashes(proof.source_xxh3(), None)
                        .attempts(attempts)
                        .into();
                    copied.push(Work { info, proof });
                    report
                }
                (Err((e, attempts)), _) => {
                    let report = ObjectReport::new(&info, pb::ObjectStatus::Failed)
                        .attempts(attempts)
                        .failed(&e)
                        .into();
                    failed.copies.push(e);
                    report
                }
            };
            results.add(report).await?;
            if !self.pause_after_object.is_zero() {
                tokio::time::sleep(self.pause_after_object).await;
            }
        }
        drop(placed);
        if cancel.task.is_cancelled() {
            if cancel.job_over.is_cancelled() {
                cleanup::abort_uploads(self.sites, journal).await;
            }
            anyhow::bail!("cancelled");
        }
        results.flush().await?;
        Ok(copied)
    }

    /// Copies one object in one of the agent's object slots, with the room it needs
    /// reserved, and verifies it there at once when the task does.
    async fn place_in_slot(
        &self,
        info: ObjectInfo,
        present: &HashMap<String, destination::Listed>,
        journal: &TaskJournal,
    ) -> (ObjectInfo, Result<Placed, CopyFailure>, Option<Verified>) {
        let _held = self.slot_and_room(info.size).await;
        let outcome = place(
            self.sites,
            &info,
            present,
            &self.options,
            &self.server,
            journal,
        )
        .await;
        let verified = match &outcome {
            Ok(Placed::Copied(proof, size, _)) if self.verify_at_once => {
                let work = Work {
                    info: ObjectInfo {
                        size: *size,
                        ..info.clone()
                    },
                    proof: proof.clone(),
                };
                Some(self.verify_or_repair(work).await)
            }
            _ => None,
        };
        (info, outcome, verified)
    }

    /// The verify phase: checks every copy not verified yet and reports each result. A
    /// quick verification confirms most objects with one listing of the task's range;
    /// only those it does not confirm are looked at one by one (and repaired).
    async fn verify(
        &self,
        mut copied: Vec<Work>,
        job_id: &str,
        cancel: Cancel<'_>,
        results: &mut ResultQueue,
        failed: &mut Failed,
    ) -> anyhow::Result<()> {
        if self.mode == VerifyMode::Quick {
            let infos: Vec<ObjectInfo> = copied.iter().map(|w| w.info.clone()).collect();
            let listed = destination::listing(&self.sites.dst, &infos, job_id).await;
            let (confirmed, unconfirmed) = copied.into_iter().partition::<Vec<_>, _>(|w| {
                verify::confirmed_by_listing(w, listed.get(&w.info.key))
            });
            for work in confirmed {
                let report = ObjectReport::new(&work.info, pb::ObjectStatus::Verified)
                    .hashes(work.proof.source_xxh3(), None);
                results.add(report.into()).await?;
            }
            copied = unconfirmed;
        }
        let mut verified = futures::stream::iter(copied.into_iter().map(|work| async move {
            // A full verify reads the destination back; either mode may repair by
            // copying again, so the copy's footprint is reserved.
            let _held = self.slot_and_room(work.info.size).await;
            self.verify_or_repair(work).await
        }))
        .buffer_unordered(self.concurrency);
        while let Some(outcome) = verified.next().await {
            if cancel.task.is_cancelled() {
                anyhow::bail!("cancelled");
            }
            results
                .add(verify::verification_report(
                    outcome,
                    0,
                    &mut failed.verifications,
                ))
                .await?;
        }
        drop(verified);
        results.flush().await
    }

    /// One of the agent's object slots and the memory budget's room for copying a
    /// `size`-byte object, both held until the pair is dropped.
    async fn slot_and_room(&self, size: u64) -> (Option<SemaphorePermit<'_>>, SemaphorePermit<'_>) {
        let slot = self.slots.acquire().await.ok();
        let room = self
            .budget
            .reserve(self.sites.footprint(size, &self.options))
            .await;
        (slot, room)
    }

    async fn verify_or_repair(&self, work: Work) -> Verified {
        verify::verify_or_repair(self.sites, work, self.mode, &self.options, &self.server).await
    }
}

/// Copies one object the fastest way the two sites allow: not at all when the
/// destination holds the same bytes already, server-side within one S3 service, to S3
/// as a resumable multipart upload above the multipart threshold or in one streamed
/// request above a part, else through OpenDAL.
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
    let (copied, attempts) = match sites.route(info.size, options) {
        Route::ServerSide(src, dst) => {
            let listed = Some((info.size, info.etag.as_deref()));
            let (copied, attempts) =
                with_retries(key, || dst.copy_from(src, key, listed, server)).await?;
            let size = copied.size;
            return Ok(Placed::Copied(Proof::ServerSide(copied), size, attempts));
        }
        Route::Multipart(dst) => with_retries(key, || {
            multipart::upload_resumable(&sites.src, dst, key, journal.state(key), options, journal)
        })
        .await
        .inspect(|_| journal.finished(key))?,
        Route::Streamed(dst) => with_retries(key, || {
            streamed_or_parts(&sites.src, dst, key, options, journal)
        })
        .await
        .inspect(|_| journal.finished(key))?,
        Route::Through => {
            with_retries(key, || {
                transfer::copy_object(&sites.src, &sites.dst, key, options)
            })
            .await?
        }
    };
    let proof = Proof::Hashed {
        xxh3: copied.source_xxh3,
        etag: copied.etag,
    };
    Ok(Placed::Copied(proof, copied.size, attempts))
}

/// Sends `key` in one streamed request; should the connection break before the service
/// answered, as a multipart upload instead, whose start carries no body: a refusal
/// then arrives as what it is rather than as a broken pipe, and a broken network
/// leaves an upload that resumes part by part.
async fn streamed_or_parts(
    src: &opendal::Operator,
    dst: &S3Dataset,
    key: &str,
    options: &CopyOptions,
    journal: &TaskJournal,
) -> Result<transfer::Copied, TransferError> {
    match single_put::put_streamed(src, dst, key, options).await {
        Ok(copied) => Ok(copied),
        Err(PutFailure::Failed(e)) => Err(e),
        Err(PutFailure::Unanswered(e)) => {
            warn!(key, error = %e, "the request broke before the service answered; sending the object in parts");
            multipart::upload_resumable(src, dst, key, journal.state(key), options, journal).await
        }
    }
}

/// Runs `copy` until it succeeds, fails permanently, or failed [`COPY_TRIES`] times;
/// returns its result and the tries it took.
pub(super) async fn with_retries<T, F, Fut>(key: &str, mut copy: F) -> Result<(T, u32), CopyFailure>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, TransferError>>,
{
    let mut attempts = 0;
    let mut backoff = FIRST_BACKOFF;
    loop {
        attempts += 1;
        match copy().await {
            Ok(c) => return Ok((c, attempts)),
            Err(e) if e.temporary && attempts < COPY_TRIES => {
                let wait = jittered(backoff);
                warn!(key, error = %e, attempts, wait_ms = wait.as_millis() as u64, "temporary failure; retrying");
                tokio::time::sleep(wait).await;
                backoff *= 2;
            }
            Err(e) => return Err((e, attempts)),
        }
    }
}

/// Half of `backoff` and a random part of the other half: the objects of a task that
/// failed together, when the store was briefly overloaded, come back spread out rather
/// than all at once.
fn jittered(backoff: Duration) -> Duration {
    backoff / 2 + backoff.mul_f64(rand::random_range(0.0..0.5))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    fn failure(temporary: bool) -> TransferError {
        TransferError {
            key: "k".into(),
            operation: "write",
            kind: opendal::ErrorKind::Unexpected,
            message: "writing s3://b/k: the store said no".into(),
            temporary,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn temporary_failures_are_retried_after_jittered_growing_waits() {
        let calls = AtomicU32::new(0);
        let started = tokio::time::Instant::now();
        let (value, attempts) = with_retries("k", || async {
            match calls.fetch_add(1, Ordering::SeqCst) {
                0 | 1 => Err(failure(true)),
                _ => Ok("copied"),
            }
        })
        .await
        .unwrap();
        assert_eq!((value, attempts), ("copied", 3));
        // Two waits: 100 to 200 ms, then 200 to 400 ms.
        let waited = started.elapsed();
        assert!(
            (Duration::from_millis(300)..Duration::from_millis(600)).contains(&waited),
            "waited {waited:?}"
        );
    }

    /// Runs a copy that always fails so: its final failure, and how often it ran.
    async fn always_failing(temporary: bool) -> (CopyFailure, u32) {
        let calls = AtomicU32::new(0);
        let failed = with_retries("k", || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err::<(), _>(failure(temporary))
        })
        .await
        .unwrap_err();
        (failed, calls.load(Ordering::SeqCst))
    }

    #[tokio::test(start_paused = true)]
    async fn a_permanent_failure_is_not_retried_and_temporary_ones_stop_after_the_last_try() {
        let ((e, attempts), calls) = always_failing(false).await;
        assert_eq!((attempts, calls), (1, 1));
        assert!(!e.temporary);

        let ((e, attempts), calls) = always_failing(true).await;
        assert_eq!((attempts, calls), (COPY_TRIES, COPY_TRIES));
        assert!(e.temporary);
    }

    #[test]
    fn a_jittered_wait_lies_between_half_and_all_of_the_backoff() {
        let backoff = Duration::from_millis(400);
        let waits: Vec<Duration> = (0..200).map(|_| jittered(backoff)).collect();
        assert!(waits.iter().all(|w| (backoff / 2..backoff).contains(w)));
        // Spread out, not one fixed wait.
        let (min, max) = (waits.iter().min().unwrap(), waits.iter().max().unwrap());
        assert!(*max - *min > Duration::from_millis(50), "{min:?}..{max:?}");
    }
}
