//! Multipart uploads to S3 that survive the agent: the upload id and each completed
//! part are journalled, so a restarted agent (or another one) uploads only what is
//! missing.
//!
//! The source is read in order whatever was journalled: every byte goes into the
//! whole-object xxh3 that Ferry verifies against, and each part's own xxh3 decides
//! whether the journalled part still holds the source's bytes. Resuming saves the
//! upload, never the read.

use std::{
    collections::HashMap,
    future::Future,
    ops::Range,
    sync::{
        atomic::{AtomicBool, Ordering as AtomicOrdering},
        Arc,
    },
};

use aws_sdk_s3::{
    config::http::HttpResponse,
    error::{ProvideErrorMetadata, SdkError},
    primitives::ByteStream,
    types::{CompletedMultipartUpload, CompletedPart, StorageClass},
};
use bytes::Bytes;
use futures::{stream, StreamExt, TryStreamExt};
use opendal::{ErrorKind, Metadata, Operator, Reader};
use tokio::sync::OwnedSemaphorePermit;
use xxhash_rust::xxh3::{xxh3_128, Xxh3};

use crate::{
    local_file,
    s3::{sdk_failure, S3Dataset},
    transfer::{
        ensure_unchanged, read_failure, source_changed, stat_file, xxh3_hex, Copied, CopyOptions,
        TransferError,
    },
};

/// S3's smallest part (except the last); smaller chunk sizes are rounded up to it.
const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;
/// S3's largest part.
const MAX_PART_SIZE: u64 = 5 * 1024 * 1024 * 1024;
/// S3's most parts per upload; larger objects get larger parts.
const MAX_PARTS: u64 = 10_000;

/// Where an interrupted upload stands, as journalled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadState {
    pub upload_id: String,
    /// The part size the upload was started with; a resume with another part size
    /// would cut the object differently, so it starts over.
    pub part_size: u64,
    pub parts: Vec<PartDone>,
}

/// One part the service acknowledged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartDone {
    /// 1-based, as S3 numbers parts.
    pub number: u32,
    pub size: u64,
    /// The service's ETag for the part, needed to complete the upload.
    pub etag: String,
    /// xxh3-128 of the part's bytes: a resume reuses the part only if the source
    /// still holds exactly these bytes there.
    pub xxh3: u128,
}

/// Durable record of an upload's progress (the agent sends it to the control plane).
pub trait UploadJournal: Send + Sync {
    /// Called after CreateMultipartUpload and before any part is uploaded: when it
    /// returns Ok the id is durable, so a crash cannot orphan the upload.
    fn started(
        &self,
        key: &str,
        upload_id: &str,
        part_size: u64,
    ) -> impl Future<Output = anyhow::Result<()>> + Send;

    /// Called after each part upload succeeded, possibly for several parts at once
    /// and not in part order.
    fn part_done(
        &self,
        key: &str,
        upload_id: &str,
        part: &PartDone,
    ) -> impl Future<Output = anyhow::Result<()>> + Send;
}

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
) -> Result<Copied, TransferError> {
    let source = stat_file(src, key).await?;
    let size = source.content_length();
    let copy = PartCopy {
        src,
        source: &source,
        dst,
        key,
        plan: Plan::new(dst, key, options.chunk_size, size)?,
        attributes: Attributes::of(&source, options.preserve_metadata),
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
        metadata_dropped: copy.attributes.dropped,
    })
}

/// How one object is cut into parts.
#[derive(Clone, Copy, Debug)]
struct Plan {
    size: u64,
    part_size: u64,
    /// At least 1: an empty object is one empty part.
    count: u32,
}

impl Plan {
    fn new(
        dst: &S3Dataset,
        key: &str,
        chunk_size: usize,
        size: u64,
    ) -> Result<Plan, TransferError> {
        Plan::cut(chunk_size, size).ok_or_else(|| TransferError {
            key: key.to_owned(),
            operation: "write",
            kind: ErrorKind::Unsupported,
            message: format!(
                "writing {}: {size} bytes do not fit in {MAX_PARTS} parts of at most {MAX_PART_SIZE} bytes",
                url(dst, key)
            ),
            temporary: false,
        })
    }

    /// `chunk_size` within S3's part limits, grown until the object fits in
    /// [`MAX_PARTS`]; `None` if it cannot.
    fn cut(chunk_size: usize, size: u64) -> Option<Plan> {
        let part_size = u64::try_from(chunk_size)
            .unwrap_or(u64::MAX)
            .clamp(MIN_PART_SIZE, MAX_PART_SIZE)
            .max(size.div_ceil(MAX_PARTS));
        if part_size > MAX_PART_SIZE {
            return None;
        }
        let count = u32::try_from(size.div_ceil(part_size).max(1)).ok()?;
        Some(Plan {
            size,
            part_size,
            count,
        })
    }

    /// Each part's number and byte range, in order.
    fn parts(self) -> impl Iterator<Item = (u32, Range<u64>)> {
        (1..=self.count).map(move |number| {
            let start = u64::from(number - 1) * self.part_size;
            (number, start..(start + self.part_size).min(self.size))
        })
    }
}

/// The content type and user metadata an upload carries.
pub(crate) struct Attributes {
    pub content_type: Option<String>,
    pub user_metadata: Option<HashMap<String, String>>,
    /// The source had some but `preserve_metadata` was off.
    pub dropped: bool,
}

impl Attributes {
    pub fn of(source: &Metadata, preserve: bool) -> Attributes {
        let content_type = source.content_type().map(str::to_owned);
        let user_metadata: Option<HashMap<String, String>> =
            source.user_metadata().filter(|m| !m.is_empty()).map(|m| {
                m.into_iter()
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect()
            });
        let has_any = content_type.is_some() || user_metadata.is_some();
        if preserve {
            Attributes {
                content_type,
                user_metadata,
                dropped: false,
            }
        } else {
            Attributes {
                content_type: None,
                user_metadata: None,
                dropped: has_any,
            }
        }
    }
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
        let err = sdk_failure(dst, key, "write", err);
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
    UploadGone(TransferError),
    Failed(TransferError),
}

impl Failure {
    fn into_error(self) -> TransferError {
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

/// Where parts are read from.
enum PartSource {
    /// The source object is a local file: parts are read at their offsets with
    /// positional reads, straight into their buffers.
    File(Arc<std::fs::File>),
    Store(Reader),
}

/// One part as read from the source.
struct SourcePart {
    number: u32,
    xxh3: u128,
    bytes: Bytes,
    /// The part's share of the memory budget, held until it is uploaded.
    _room: Option<OwnedSemaphorePermit>,
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
    ) -> Result<(Upload, Vec<PartDone>), TransferError> {
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
    async fn start(&self) -> Result<String, TransferError> {
        let created = self
            .dst
            .client
            .create_multipart_upload()
            .bucket(&self.dst.bucket)
            .key(self.dst.object_key(self.key))
            .set_content_type(self.attributes.content_type.clone())
            .set_metadata(self.attributes.user_metadata.clone())
            .set_storage_class(self.dst.storage_class.as_deref().map(StorageClass::from))
            .send()
            .await
            .map_err(|e| sdk_failure(self.dst, self.key, "write", e))?;
        let Some(upload_id) = created.upload_id.filter(|id| !id.is_empty()) else {
            return Err(self.failure("CreateMultipartUpload answered without an upload id", false));
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
        let reader = self.open_source().await.map_err(Failure::Failed)?;
        let concurrency = self.options.concurrency.max(1);
        let reusable: HashMap<u32, &PartDone> = journalled
            .iter()
            .filter(|part| !part.etag.is_empty())
            .map(|part| (part.number, part))
            .collect();
        let mut whole = Xxh3::new();
        let mut placed: Vec<Placed> = stream::iter(self.plan.parts())
            .map(|(number, range)| self.read_part(&reader, number, range))
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

    /// The source file itself on a local file system; elsewhere a reader pinned to the
    /// stat'ed version where the store supports it.
    async fn open_source(&self) -> Result<PartSource, TransferError> {
        let info = self.src.info();
        if local_file::is_local(self.src) {
            let file = local_file::open(self.src, self.key).await?;
            return Ok(PartSource::File(Arc::new(file)));
        }
        let mut reader = self.src.reader_with(self.key);
        if let Some(etag) = self.source.etag() {
            if info.capability().read_with_if_match {
                reader = reader.if_match(etag);
            }
        }
        let reader = reader.await.map_err(|e| self.read_failure(e))?;
        Ok(PartSource::Store(reader))
    }

    /// A local read's failure, classified as the store's would be.
    fn io_failure(&self, e: &std::io::Error) -> TransferError {
        local_file::io_error(self.src, self.key, "read", e)
    }

    async fn read_part(
        &self,
        source: &PartSource,
        number: u32,
        range: Range<u64>,
    ) -> Result<(u32, Bytes, Option<OwnedSemaphorePermit>), TransferError> {
        let expected = range.end - range.start;
        if expected == 0 {
            return Ok((number, Bytes::new(), None));
        }
        let room = match &self.options.part_budget {
            Some(budget) => Some(budget.reserve_owned(expected).await),
            None => None,
        };
        let start = range.start;
        let held = |len: u64| {
            source_changed(
                self.src,
                self.key,
                format!("part {number} at byte {start} held {len} of {expected} bytes"),
            )
        };
        // The part gets a mapping of its own, filled once and sent as it is, and given
        // back to the system as soon as the upload drops it. From the heap, glibc kept
        // the freed parts, and the agent's resident memory grew far past its budget.
        let mut part =
            memmap2::MmapMut::map_anon(expected as usize).map_err(|e| self.io_failure(&e))?;
        huge_pages(&part);
        let reader = match source {
            PartSource::File(file) => {
                // Straight into the part's buffer, with no copy through a read buffer.
                let file = file.clone();
                let (part, read) = tokio::task::spawn_blocking(move || {
                    use std::os::unix::fs::FileExt;
                    let read = file.read_exact_at(&mut part, start);
                    (part, read)
                })
                .await
                .map_err(|e| self.io_failure(&std::io::Error::other(e.to_string())))?;
                return match read {
                    Ok(()) => Ok((number, Bytes::from_owner(part), room)),
                    Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(source_changed(
                        self.src,
                        self.key,
                        format!("part {number} at byte {start} ended early: the file shrank"),
                    )),
                    Err(e) => Err(self.io_failure(&e)),
                };
            }
            PartSource::Store(reader) => reader,
        };
        let mut filled = 0usize;
        let mut chunks = reader
            .clone()
            .into_stream(range)
            .await
            .map_err(|e| self.read_failure(e))?;
        while let Some(buffer) = chunks.try_next().await.map_err(|e| self.read_failure(e))? {
            for chunk in buffer {
                let end = filled + chunk.len();
                if end > part.len() {
                    return Err(held(end as u64));
                }
                part[filled..end].copy_from_slice(&chunk);
                filled = end;
            }
        }
        if filled != part.len() {
            return Err(held(filled as u64));
        }
        Ok((number, Bytes::from_owner(part), room))
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
        for limit in &self.options.bandwidth {
            limit.take(part.bytes.len()).await;
        }
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
            // At most MAX_PARTS (see `Plan::new`).
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
                format!("UploadPart of part {number} answered without an etag"),
                false,
            ))
        })
    }

    /// Completes the upload; returns the object's etag.
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
            .await
            .map_err(|e| upload.failure(self.dst, self.key, e))?;
        Ok(completed.e_tag)
    }

    /// Aborts the upload when no later call could use it; otherwise keeps it for the
    /// resume. Returns `err` unchanged.
    async fn give_up(&self, upload_id: &str, err: TransferError) -> TransferError {
        // A changed source is temporary, yet its upload is dropped: the parts were cut
        // from a version that is gone, so the next attempt starts a new upload rather
        // than keep storage held for parts that will mostly be replaced.
        let source_moved = err.operation == "read" && err.kind == ErrorKind::ConditionNotMatch;
        if !err.temporary || source_moved {
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

    fn read_failure(&self, e: opendal::Error) -> TransferError {
        read_failure(self.src, self.key, e)
    }

    /// The journal could not record progress: the upload stays, the next attempt
    /// resumes from what was recorded.
    fn journal_failure(&self, e: &anyhow::Error) -> TransferError {
        TransferError {
            key: self.key.to_owned(),
            operation: "write",
            kind: ErrorKind::Unexpected,
            message: format!(
                "journalling the multipart upload of {}: {e:#}",
                url(self.dst, self.key)
            ),
            temporary: true,
        }
    }

    fn failure(&self, detail: impl std::fmt::Display, temporary: bool) -> TransferError {
        TransferError {
            key: self.key.to_owned(),
            operation: "write",
            kind: ErrorKind::Unexpected,
            message: format!("writing {}: {detail}", url(self.dst, self.key)),
            temporary,
        }
    }
}

/// Feeds a part into the whole-object hash (parts arrive in order) and hashes it
/// alone.
fn hash_part(
    number: u32,
    bytes: Bytes,
    room: Option<OwnedSemaphorePermit>,
    whole: &mut Xxh3,
) -> SourcePart {
    whole.update(&bytes);
    SourcePart {
        number,
        xxh3: xxh3_128(&bytes),
        bytes,
        _room: room,
    }
}

/// Asks for the part's buffer to be backed by transparent huge pages where the system
/// allows them (`madvise` mode, the common default): filling an 8 MiB part then takes 4
/// page faults instead of 2,048, which on a virtual machine cost more CPU than the
/// copy. Advice only: the buffer works the same without it.
fn huge_pages(part: &memmap2::MmapMut) {
    #[cfg(target_os = "linux")]
    if let Err(e) = part.advise(memmap2::Advice::HugePage) {
        tracing::trace!(error = %e, "no huge pages for a part buffer");
    }
    #[cfg(not(target_os = "linux"))]
    let _ = part;
}

pub(crate) fn url(dst: &S3Dataset, key: &str) -> String {
    format!("s3://{}/{}", dst.bucket, dst.object_key(key))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn plan(chunk_size: usize, size: u64) -> (u64, u32, Vec<Range<u64>>) {
        let plan = Plan::cut(chunk_size, size).unwrap();
        (
            plan.part_size,
            plan.count,
            plan.parts().map(|(_, r)| r).collect(),
        )
    }

    #[test]
    fn parts_cover_the_object_exactly() {
        const MIB: u64 = 1024 * 1024;
        let (part_size, count, ranges) = plan(5 * 1024 * 1024, 12 * MIB + 1);
        assert_eq!((part_size, count), (5 * MIB, 3));
        assert_eq!(
            ranges,
            vec![0..5 * MIB, 5 * MIB..10 * MIB, 10 * MIB..12 * MIB + 1]
        );
        // Below the S3 minimum: rounded up.
        assert_eq!(plan(1024, 6 * MIB).0, 5 * MIB);
        // An empty object is one empty part.
        assert_eq!(plan(5 * 1024 * 1024, 0).2, vec![0..0]);
        // Too many parts: the part grows.
        let (part_size, count, _) = plan(5 * 1024 * 1024, 100_000 * MIB);
        assert_eq!((part_size, count), (10 * MIB, 10_000));
        // Too large even for 5 GiB parts.
        assert!(Plan::cut(5 * 1024 * 1024, MAX_PARTS * MAX_PART_SIZE + 1).is_none());
    }
}
