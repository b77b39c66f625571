//! Multipart uploads to S3 that survive the agent: the upload id and each completed
//! part are journalled (see [`crate::parts`]), so a restarted agent (or another one)
//! uploads only what is missing.

use std::{
    collections::HashMap,
    sync::atomic::{AtomicBool, Ordering as AtomicOrdering},
};

use aws_sdk_s3::{
    config::http::HttpResponse,
    error::{ProvideErrorMetadata, SdkError},
    primitives::ByteStream,
    types::{CompletedMultipartUpload, CompletedPart, StorageClass},
};
use bytes::Bytes;
use ferry_storage::{Attributes, ErrorKind, ObjectError, Operation};
use futures::{stream, StreamExt, TryStreamExt};
use opendal::{Metadata, Operator};
use xxhash_rust::xxh3::Xxh3;

use super::{sdk_failure, S3Dataset};
use crate::{
    parts::{
        hash_part, JournalError, PartDone, PartLimits, PartReader, Plan, SourcePart, UploadJournal,
        UploadState,
    },
    transfer::{ensure_unchanged, stat_file, xxh3_hex, Copied, CopyOptions},
};

/// S3's bounds on multipart uploads: every part but the last is at least 5 MiB, no part
/// exceeds 5 GiB, an upload has at most 10,000 parts.
pub(crate) const S3_PARTS: PartLimits = PartLimits {
    min: 5 * 1024 * 1024,
    max: 5 * 1024 * 1024 * 1024,
    align: 1,
    count: 10_000,
};

/// Copies `key` from `src` to the same key of `dst` as a multipart upload that a later
/// call can resume from `resume` (what `journal` recorded), hashing the bytes with
/// xxh3-128 as they pass.
///
/// Parts are `options.chunk_size` (at least 5 MiB, and large enough for 10 000 parts),
/// read in order with `options.concurrency` reads ahead and as many uploads in flight,
/// so about `2 * concurrency * part size` bytes are held. A journalled part whose
/// number, size and xxh3 match the source is not uploaded again. A resumed upload the
/// service no longer knows is replaced by a new one.
///
/// On failure the upload is aborted when retrying cannot help (a permanent error) or
/// must start over (the source changed); a temporary failure, or dropping the
/// future, leaves it in place for the next call to resume.
pub async fn upload_resumable(
    src: &Operator,
    dst: &S3Dataset,
    key: &str,
    resume: Option<UploadState>,
    options: &CopyOptions,
    journal: &impl UploadJournal,
) -> Result<Copied, ObjectError> {
    let source = stat_file(src, key).await?;
    let size = source.content_length();
    let plan = Plan::cut(options.chunk_size, size, S3_PARTS).ok_or_else(|| {
        ObjectError::new(
            &dst.url(key),
            key,
            Operation::Write,
            ErrorKind::Invalid,
            "TooLarge",
            format!(
                "{size} bytes do not fit in {} parts of at most {} bytes",
                S3_PARTS.count, S3_PARTS.max
            ),
        )
    })?;
    let (attributes, metadata_dropped) = options.carried(Attributes::of(&source));
    let copy = PartCopy {
        src,
        source: &source,
        dst,
        key,
        plan,
        attributes,
        options,
        journal,
    };

    let (mut upload, journalled) = copy.resume_or_start(resume).await?;
    let outcome = match copy.send(&upload, &journalled).await {
        Err(Failure::UploadGone(err)) => {
            tracing::info!(key, upload_id = %upload.id, error = %err, "journalled multipart upload is gone, starting over");
            // Usually the service no longer knows it and the abort fails (logged); when
            // only the connection broke, the abort keeps its parts from being orphaned.
            copy.abort(&upload.id).await;
            upload = Upload::new(copy.start().await?, false);
            copy.send(&upload, &[]).await
        }
        other => other,
    };
    let sent = match outcome {
        Ok(sent) => sent,
        Err(failure) => return Err(copy.give_up(&upload.id, failure.into_error()).await),
    };

    tracing::debug!(
        key,
        upload_id = %upload.id,
        size,
        parts = copy.plan.count,
        parts_uploaded = sent.uploaded,
        parts_reused = sent.reused,
        xxh3 = %xxh3_hex(sent.xxh3),
        "object uploaded in parts"
    );
    Ok(Copied {
        size,
        source_xxh3: sent.xxh3,
        etag: sent.etag,
        metadata_dropped,
    })
}

/// The upload the parts go to.
struct Upload {
    id: String,
    /// Taken from a journal rather than created by this call: the service may have
    /// forgotten it.
    resumed: bool,
    /// A part went through in this call.
    accepted: AtomicBool,
}

impl Upload {
    fn new(id: String, resumed: bool) -> Self {
        Upload {
            id,
            resumed,
            accepted: AtomicBool::new(false),
        }
    }

    /// Classifies a failed call on this upload. A resumed upload that has accepted
    /// nothing is also given up when the connection broke before any answer: a service
    /// may refuse a part of an upload it no longer knows as soon as the request starts
    /// and close the connection while the part is still being sent, so the refusal
    /// never arrives and every retry would meet it again.
    fn failure<E>(&self, dst: &S3Dataset, key: &str, err: SdkError<E, HttpResponse>) -> Failure
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let unanswered = matches!(err, SdkError::DispatchFailure(_))
            && !self.accepted.load(AtomicOrdering::SeqCst);
        let gone = self.resumed && (upload_gone(&err) || unanswered);
        let err = sdk_failure(dst, key, Operation::Write, err);
        if gone {
            Failure::UploadGone(err)
        } else {
            Failure::Failed(err)
        }
    }
}

/// Why sending the parts stopped.
enum Failure {
    /// The resumed upload is unknown to the service (aborted, completed, expired) or
    /// refused: a new upload can still succeed.
    UploadGone(ObjectError),
    Failed(ObjectError),
}

impl Failure {
    fn into_error(self) -> ObjectError {
        match self {
            Failure::UploadGone(err) | Failure::Failed(err) => err,
        }
    }
}

/// Whether a service answer says the upload id is unusable. S3 answers `NoSuchUpload`
/// (404); s3s-fs answers an unknown id with `AccessDenied` (403), as S3 may for an
/// upload of another principal. If we truly lack permission, the new upload fails the
/// same way and that error is reported.
fn upload_gone<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> bool {
    match err {
        SdkError::ServiceError(service) => {
            let status = service.raw().status().as_u16();
            service.err().code() == Some("NoSuchUpload") || status == 404 || status == 403
        }
        _ => false,
    }
}

/// What became of one part.
struct Placed {
    part: PartDone,
    reused: bool,
}

/// What a successful [`PartCopy::send`] did.
struct Sent {
    xxh3: u128,
    /// The etag the service gave the completed object.
    etag: Option<String>,
    uploaded: usize,
    reused: usize,
}

/// Everything one object's upload needs, so the steps below take only what varies.
struct PartCopy<'a, J> {
    src: &'a Operator,
    source: &'a Metadata,
    dst: &'a S3Dataset,
    key: &'a str,
    plan: Plan,
    attributes: Attributes,
    options: &'a CopyOptions,
    journal: &'a J,
}

impl<J: UploadJournal> PartCopy<'_, J> {
    /// The journalled upload if it was cut like this one, else a new upload (the old
    /// one, or those begun before the task when nothing was journalled, aborted, best
    /// effort).
    async fn resume_or_start(
        &self,
        resume: Option<UploadState>,
    ) -> Result<(Upload, Vec<PartDone>), ObjectError> {
        match resume.filter(|state| !state.upload_id.is_empty()) {
            Some(state) if state.part_size == self.plan.part_size => {
                tracing::info!(
                    key = self.key,
                    upload_id = %state.upload_id,
                    parts_journalled = state.parts.len(),
                    "resuming multipart upload"
                );
                return Ok((Upload::new(state.upload_id, true), state.parts));
            }
            Some(state) => {
                tracing::info!(
                    key = self.key,
                    upload_id = %state.upload_id,
                    journalled_part_size = state.part_size,
                    part_size = self.plan.part_size,
                    "journalled multipart upload has another part size, starting over"
                );
                self.abort(&state.upload_id).await;
            }
            None => {
                if let Some(task_started) = self.options.task_started {
                    self.dst
                        .abort_unjournalled_uploads(self.key, task_started)
                        .await;
                }
            }
        }
        Ok((Upload::new(self.start().await?, false), Vec::new()))
    }

    /// Creates an upload and makes its id durable before any part goes out.
    async fn start(&self) -> Result<String, ObjectError> {
        let metadata = Some(&self.attributes.user_metadata)
            .filter(|m| !m.is_empty())
            .map(|m| m.clone().into_iter().collect::<HashMap<_, _>>());
        let created = self
            .dst
            .client
            .create_multipart_upload()
            .bucket(&self.dst.bucket)
            .key(self.dst.object_key(self.key))
            .set_content_type(self.attributes.content_type.clone())
            .set_metadata(metadata)
            .set_storage_class(self.dst.storage_class.as_deref().map(StorageClass::from))
            .send()
            .await
            .map_err(|e| sdk_failure(self.dst, self.key, Operation::Write, e))?;
        let Some(upload_id) = created.upload_id.filter(|id| !id.is_empty()) else {
            return Err(self.failure(
                ErrorKind::Other,
                "NoUploadId",
                "CreateMultipartUpload answered without an upload id",
            ));
        };
        if let Err(e) = self
            .journal
            .started(self.key, &upload_id, self.plan.part_size)
            .await
        {
            // Not durable, so nobody would ever resume or abort it but us.
            self.abort(&upload_id).await;
            return Err(self.journal_failure(&e));
        }
        tracing::debug!(
            key = self.key,
            upload_id,
            part_size = self.plan.part_size,
            "multipart upload started"
        );
        Ok(upload_id)
    }

    /// Reads every part in order and uploads those the journal does not already hold,
    /// then completes the upload.
    async fn send(&self, upload: &Upload, journalled: &[PartDone]) -> Result<Sent, Failure> {
        let reader = PartReader::open(self.src, self.key, self.source, self.options)
            .await
            .map_err(Failure::Failed)?;
        let concurrency = self.options.concurrency.max(1);
        let reusable: HashMap<u32, &PartDone> = journalled
            .iter()
            .filter(|part| !part.etag.is_empty())
            .map(|part| (part.number, part))
            .collect();
        let mut whole = Xxh3::new();
        let mut placed: Vec<Placed> = stream::iter(self.plan.parts())
            .map(|(number, range)| reader.read(number, range))
            .buffered(concurrency)
            .map_ok(|(number, buffer, room)| hash_part(number, buffer, room, &mut whole))
            .map_err(Failure::Failed)
            .map_ok(|part| self.place_part(upload, part, &reusable))
            .try_buffer_unordered(concurrency)
            .try_collect()
            .await?;
        // Before completing: a source that moved must not become the destination.
        ensure_unchanged(self.src, self.key, self.source)
            .await
            .map_err(Failure::Failed)?;
        placed.sort_by_key(|p| p.part.number);
        let etag = self.complete(upload, &placed).await?;
        let reused = placed.iter().filter(|p| p.reused).count();
        Ok(Sent {
            xxh3: whole.digest128(),
            etag,
            uploaded: placed.len() - reused,
            reused,
        })
    }

    /// Reuses the journalled part if it holds the same bytes, else uploads the part
    /// and journals it.
    async fn place_part(
        &self,
        upload: &Upload,
        part: SourcePart,
        reusable: &HashMap<u32, &PartDone>,
    ) -> Result<Placed, Failure> {
        let size = part.bytes.len() as u64;
        if let Some(done) = reusable.get(&part.number) {
            if done.size == size && done.xxh3 == part.xxh3 {
                return Ok(Placed {
                    part: (*done).clone(),
                    reused: true,
                });
            }
            tracing::debug!(
                key = self.key,
                part = part.number,
                "journalled part no longer matches the source, uploading it again"
            );
        }
        self.options.pace(part.bytes.len()).await;
        let etag = self.upload_part(upload, part.number, part.bytes).await?;
        let done = PartDone {
            number: part.number,
            size,
            etag,
            xxh3: part.xxh3,
        };
        self.journal
            .part_done(self.key, &upload.id, &done)
            .await
            .map_err(|e| Failure::Failed(self.journal_failure(&e)))?;
        Ok(Placed {
            part: done,
            reused: false,
        })
    }

    async fn upload_part(
        &self,
        upload: &Upload,
        number: u32,
        bytes: Bytes,
    ) -> Result<String, Failure> {
        let answer = self
            .dst
            .client
            .upload_part()
            .bucket(&self.dst.bucket)
            .key(self.dst.object_key(self.key))
            .upload_id(&upload.id)
            // At most S3_PARTS.count (see `Plan::cut`).
            .part_number(i32::try_from(number).unwrap_or(i32::MAX))
            .content_length(i64::try_from(bytes.len()).unwrap_or(i64::MAX))
            .body(ByteStream::from(bytes))
            // The part's bytes are hashed with xxh3 for the journal and the object is
            // verified end to end; a SHA-256 of every part for the signature as well
            // would cost about as much CPU as the rest of the upload.
            .customize()
            .disable_payload_signing()
            .send()
            .await
            .map_err(|e| upload.failure(self.dst, self.key, e))?;
        upload.accepted.store(true, AtomicOrdering::SeqCst);
        answer.e_tag.filter(|etag| !etag.is_empty()).ok_or_else(|| {
            Failure::Failed(self.failure(
                ErrorKind::Other,
                "NoETag",
                format!("UploadPart of part {number} answered without an etag"),
            ))
        })
    }

    /// Completes the upload; returns the object's etag. A 200 answer whose body the SDK
    /// cannot read is confirmed with a HEAD (see [`S3Dataset::confirm_written`]).
    async fn complete(
        &self,
        upload: &Upload,
        placed: &[Placed],
    ) -> Result<Option<String>, Failure> {
        let parts = placed
            .iter()
            .map(|p| {
                CompletedPart::builder()
                    .part_number(i32::try_from(p.part.number).unwrap_or(i32::MAX))
                    .e_tag(&p.part.etag)
                    .build()
            })
            .collect();
        let completed = self
            .dst
            .client
            .complete_multipart_upload()
            .bucket(&self.dst.bucket)
            .key(self.dst.object_key(self.key))
            .upload_id(&upload.id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await;
        match completed {
            Ok(completed) => Ok(completed.e_tag),
            Err(e) if super::unreadable_success(&e) => self
                .dst
                .confirm_written(self.key, Operation::Write, self.plan.size, e)
                .await
                .map_err(Failure::Failed),
            Err(e) => Err(upload.failure(self.dst, self.key, e)),
        }
    }

    /// Aborts the upload when no later call could use it; otherwise keeps it for the
    /// resume. Returns `err` unchanged.
    async fn give_up(&self, upload_id: &str, err: ObjectError) -> ObjectError {
        // A changed source is temporary, yet its upload is dropped: the parts were cut
        // from a version that is gone, so the next attempt starts a new upload rather
        // than keep storage held for parts that will mostly be replaced.
        if !err.is_temporary() || err.is_source_changed() {
            self.abort(upload_id).await;
        } else {
            tracing::debug!(key = self.key, upload_id, error = %err, "multipart upload kept for a resume");
        }
        err
    }

    /// Best effort: a failed abort leaves an incomplete upload for the bucket's
    /// lifecycle rules.
    async fn abort(&self, upload_id: &str) {
        match self.dst.abort_upload(self.key, upload_id).await {
            Ok(()) => tracing::debug!(key = self.key, upload_id, "multipart upload aborted"),
            Err(err) => {
                tracing::warn!(key = self.key, upload_id, error = %err, "aborting the multipart upload failed")
            }
        }
    }

    /// The journal could not record progress: the upload stays, the next attempt
    /// resumes from what was recorded.
    fn journal_failure(&self, e: &JournalError) -> ObjectError {
        self.failure(
            ErrorKind::Temporary,
            "Journal",
            format!("journalling the multipart upload: {e}"),
        )
    }

    fn failure(&self, kind: ErrorKind, cause: &str, detail: impl std::fmt::Display) -> ObjectError {
        ObjectError::new(
            &self.dst.url(self.key),
            self.key,
            Operation::Write,
            kind,
            cause,
            detail,
        )
    }
}
