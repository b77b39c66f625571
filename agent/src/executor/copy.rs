//! A COPY task: its objects are copied, each the fastest way the two sites allow, and
//! then verified. Every object's result is reported as it comes, and all of them are
//! stored before the task's end is.

mod batch;

use std::{collections::HashMap, sync::Arc, time::Duration};

use ferry_proto::v1 as pb;
use ferry_storage::{ObjectError, ObjectInfo};
use futures::{future::Either, FutureExt, StreamExt};
use tokio::sync::{Semaphore, SemaphorePermit};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn, Instrument};

use self::batch::Unit;
use super::{
    cleanup,
    place::{place, CopyFailure, Placed},
    sites::Sites,
    verify::{self, Proof, Verified, Work},
    Executor, TaskError,
};
use crate::{
    bandwidth::Bandwidth,
    budget::MemoryBudget,
    destination,
    journal::TaskJournal,
    local_copy::LocalCopy,
    metrics,
    report::{Reporter, ResultQueue},
    s3::ServerCopyOptions,
    transfer::{self, CopyOptions, VerifyMode},
    wire::{self, ObjectReport},
};

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
    ) -> Result<(), TaskError> {
        // The job's pace on this agent, shared with its other tasks here. The first
        // task of a job here tells the control plane at once, to learn how many agents
        // split the job's limit before it sends a byte; the others wait for that answer.
        let lease = self
            .job_bandwidths
            .join(&command.job_id, command.bandwidth_limit_bytes_per_sec);
        if lease.is_first() {
            if let Err(e) = self.heartbeat(false).await {
                warn!(error = %e.message(), "heartbeat failed");
            }
            lease.announced();
        } else {
            lease.until_announced().await;
        }
        let local = crate::local_file::is_local(sites.dst.op()).then(|| sites.dst.op().clone());
        let mut results = ResultQueue::start(reporter.clone(), local);
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
        outcome.and(stored.map_err(TaskError::from))
    }

    async fn copy_and_verify_into(
        &self,
        command: &pb::JobCommand,
        sites: &Sites,
        reporter: &Reporter,
        cancel: Cancel<'_>,
        bandwidth: Arc<Bandwidth>,
        results: &mut ResultQueue,
    ) -> Result<(), TaskError> {
        // What earlier runs of the task reported, to resume from. A first dispatch
        // received first has none, and the control plane is not asked: on a job of
        // many small tasks, agents waited on its answers more than they copied.
        let recorded = if command.first_dispatch {
            HashMap::new()
        } else {
            self.control
                .task_objects(&command.job_id, &command.task_id)
                .await
                .map_err(|status| TaskError::Control {
                    what: "for the task's objects",
                    message: status.message().to_owned(),
                })?
        };
        let objects: Vec<ObjectInfo> = command.objects.iter().map(wire::listed_object).collect();
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
            destination::listing(sites.dst.op(), &objects).await
        };
        let journal = TaskJournal::new(reporter.clone(), &recorded, &self.config.faults);
        let resume = Resume::sort(objects, &recorded, &present);
        info!(
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
        let options = CopyOptions {
            bandwidth: vec![bandwidth, self.site_bandwidth.clone()],
            part_budget: Some(self.budget.clone()),
            task_started: Some(std::time::SystemTime::now()),
            multipart_threshold: self.config.multipart_threshold_mib.map(|mib| mib << 20),
            ..self.budget.copy_options(
                (self.config.part_size_mib << 20) as usize,
                transfer::DEFAULT_CONCURRENCY,
            )
        };
        // Unless a fault injection holds verification back, a full verification reads
        // each object back as soon as its copy is done, in the copy's slot: the reads
        // overlap the other objects' copies instead of waiting for the slowest copy of
        // the task. A quick one checks the whole task with one listing afterwards. A
        // batch of small local files checks its files as it writes them, in either mode.
        let check_at_once = self.config.faults.pause_before_verify_ms == 0;
        let task = CopyTask {
            sites,
            journal: &journal,
            batch: batch::batching(sites, &options, mode, check_at_once, results.retired()),
            options,
            server: ServerCopyOptions {
                storage_class: sites.dst_s3.as_ref().and_then(|d| d.storage_class.clone()),
                ..ServerCopyOptions::default()
            },
            mode,
            budget: &self.budget,
            slots: &self.object_slots,
            batch_slots: &self.batch_slots,
            concurrency: self.config.concurrency,
            verify_at_once: mode == VerifyMode::Full && check_at_once,
            pause_after_object: Duration::from_millis(self.config.faults.pause_after_object_ms),
        };

        let mut failed = Failed::default();
        let mut copied = task
            .copy(resume.todo, &present, cancel, results, &mut failed)
            .await?;
        copied.extend(resume.copied);
        // What failed to copy is recorded already; the rest is checked, so one bad
        // object does not leave the others of the task unverified.
        let pause = Duration::from_millis(self.config.faults.pause_before_verify_ms);
        if !pause.is_zero() {
            let until = tokio::time::Instant::now() + pause;
            match &self.config.faults.verify_gate {
                Some(gate) => {
                    while !gate.exists() && tokio::time::Instant::now() < until {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
                None => tokio::time::sleep_until(until).await,
            }
        }
        task.verify(copied, cancel, results, &mut failed).await?;
        failed.into_result()
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
    copies: Vec<ObjectError>,
    verifications: Vec<ObjectError>,
}

impl Failed {
    fn into_result(self) -> Result<(), TaskError> {
        let count = self.copies.len();
        if let Some(first) = self.copies.into_iter().next() {
            return Err(TaskError::Copies { count, first });
        }
        let count = self.verifications.len();
        if let Some(first) = self.verifications.into_iter().next() {
            return Err(TaskError::Verifications { count, first });
        }
        Ok(())
    }
}

/// One object's copy: the object, how it was placed, and its verification when it was
/// verified at once.
type PlacedObject = (ObjectInfo, Result<Placed, CopyFailure>, Option<Verified>);

/// What every object of one copy task shares.
struct CopyTask<'a> {
    sites: &'a Sites,
    /// The task's multipart uploads: what a copy, or a repair, resumes.
    journal: &'a TaskJournal,
    options: CopyOptions,
    server: ServerCopyOptions,
    mode: VerifyMode,
    /// Bounds the bytes all transfers of this agent hold at once.
    budget: &'a MemoryBudget,
    /// Objects in flight across every task this agent runs.
    slots: &'a Semaphore,
    /// Batches in flight across every task this agent runs.
    batch_slots: &'a Semaphore,
    concurrency: usize,
    /// Each copy is verified in its own slot as soon as it is done.
    verify_at_once: bool,
    /// Fault injection: a pause after each object's result.
    pause_after_object: Duration,
    /// Small files between local file systems, copied a batch at a time.
    batch: Option<Arc<LocalCopy>>,
}

impl CopyTask<'_> {
    /// The copy phase: copies `todo`, at most `concurrency` objects at once, and reports
    /// each object's result. Returns the copies still to verify.
    async fn copy(
        &self,
        todo: Vec<ObjectInfo>,
        present: &HashMap<String, destination::Listed>,
        cancel: Cancel<'_>,
        results: &mut ResultQueue,
        failed: &mut Failed,
    ) -> Result<Vec<Work>, TaskError> {
        let mut copied = Vec::new();
        let units = batch::units(todo, self.batch.as_ref());
        let mut placed = futures::stream::iter(units.into_iter().map(|unit| match unit {
            Unit::One(info) => Either::Left(self.place_in_slot(info, present).map(|p| vec![p])),
            Unit::Batch(copy, files) => Either::Right(self.place_batch(copy, files, present)),
        }))
        .buffer_unordered(self.concurrency);
        loop {
            let next = tokio::select! {
                _ = cancel.task.cancelled() => None,
                next = placed.next() => next,
            };
            let Some(unit) = next else {
                break;
            };
            for placed in unit {
                self.report_placed(placed, &mut copied, results, failed)
                    .await?;
            }
        }
        drop(placed);
        if cancel.task.is_cancelled() {
            if cancel.job_over.is_cancelled() {
                cleanup::abort_uploads(self.sites, self.journal).await;
            }
            return Err(TaskError::Cancelled);
        }
        results.flush().await?;
        Ok(copied)
    }

    /// Reports one object's copy; a copy still to verify joins `copied`.
    async fn report_placed(
        &self,
        (info, outcome, verified): PlacedObject,
        copied: &mut Vec<Work>,
        results: &mut ResultQueue,
        failed: &mut Failed,
    ) -> Result<(), TaskError> {
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
        Ok(())
    }

    /// Copies one object in one of the agent's object slots, with the room it needs
    /// reserved, and verifies it there at once when the task does.
    async fn place_in_slot(
        &self,
        info: ObjectInfo,
        present: &HashMap<String, destination::Listed>,
    ) -> PlacedObject {
        let span = tracing::info_span!("copy_object", key = %info.key, bytes = info.size);
        async {
            let _held = self.slot_and_room(info.size).await;
            let in_flight = metrics::InFlight::new(info.size);
            let outcome = place(
                self.sites,
                &info,
                present,
                &self.options,
                &self.server,
                self.journal,
            )
            .await;
            drop(in_flight);
            match &outcome {
                Ok(Placed::Copied(_, size, _)) => metrics::copied(*size),
                Ok(Placed::AlreadyThere(_)) => {}
                Err((e, _)) => metrics::failed(e),
            }
            let verified = match &outcome {
                Ok(Placed::Copied(proof, size, _)) if self.verify_at_once => {
                    let work = Work {
                        info: ObjectInfo {
                            size: *size,
                            ..info.clone()
                        },
                        proof: proof.clone(),
                    };
                    let span = tracing::info_span!("verify_object", key = %info.key, bytes = *size);
                    Some(self.verify_or_repair(work).instrument(span).await)
                }
                _ => None,
            };
            (info, outcome, verified)
        }
        .instrument(span)
        .await
    }

    /// The verify phase: checks every copy not verified yet and reports each result. A
    /// quick verification confirms most objects with one listing of the task's range;
    /// only those it does not confirm are looked at one by one (and repaired).
    async fn verify(
        &self,
        mut copied: Vec<Work>,
        cancel: Cancel<'_>,
        results: &mut ResultQueue,
        failed: &mut Failed,
    ) -> Result<(), TaskError> {
        if self.mode == VerifyMode::Quick {
            let infos: Vec<ObjectInfo> = copied.iter().map(|w| w.info.clone()).collect();
            let listed = destination::listing(self.sites.dst.op(), &infos)
                .instrument(tracing::info_span!("verify_listing", objects = infos.len()))
                .await;
            let (confirmed, unconfirmed) = copied.into_iter().partition::<Vec<_>, _>(|w| {
                verify::confirmed_by_listing(w, listed.get(&w.info.key))
            });
            for work in confirmed {
                metrics::verified(work.info.size);
                let report = ObjectReport::new(&work.info, pb::ObjectStatus::Verified)
                    .hashes(work.proof.source_xxh3(), None);
                results.add(report.into()).await?;
            }
            copied = unconfirmed;
        }
        let mut verified = futures::stream::iter(copied.into_iter().map(|work| {
            let span =
                tracing::info_span!("verify_object", key = %work.info.key, bytes = work.info.size);
            async move {
                // A full verify reads the destination back; either mode may repair by
                // copying again, so the copy's footprint is reserved.
                let _held = self.slot_and_room(work.info.size).await;
                self.verify_or_repair(work).await
            }
            .instrument(span)
        }))
        .buffer_unordered(self.concurrency);
        while let Some(outcome) = verified.next().await {
            if cancel.task.is_cancelled() {
                return Err(TaskError::Cancelled);
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
        Ok(results.flush().await?)
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
        let copy = verify::Recopy {
            options: &self.options,
            server: &self.server,
            journal: self.journal,
        };
        verify::verify_or_repair(self.sites, work, self.mode, &copy).await
    }
}
