//! Object transfer primitives: list a dataset, copy one object between sites while
//! hashing it, hash or verify one object, delete one object.
//!
//! Every operation streams: memory use is bounded by the chunk size and concurrency in
//! [`CopyOptions`], never by the object size. Every error names the object, the
//! operation and whether retrying can help (see [`TransferError`]).

use std::{collections::BTreeMap, sync::Arc, time::SystemTime};

use chrono::{DateTime, Utc};
use futures::{stream, Stream, StreamExt, TryStreamExt};
use opendal::{Buffer, ErrorKind, Metadata, Operator, Writer};
use xxhash_rust::xxh3::Xxh3;

use crate::{
    bandwidth::Bandwidth,
    budget::MemoryBudget,
    local_file::{self, SmallFile},
    storage::object_url,
};

/// Default size of each ranged read and each multipart part.
pub const DEFAULT_CHUNK_SIZE: usize = 8 * 1024 * 1024;
/// Default number of chunks in flight per object, for reads and for part uploads.
pub const DEFAULT_CONCURRENCY: usize = 4;
/// Objects stat'ed concurrently while listing, when the listing lacks their metadata.
const LIST_STAT_CONCURRENCY: usize = 16;

/// One object of a dataset, as listed. `key` is relative to the dataset root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectInfo {
    pub key: String,
    pub size: u64,
    pub content_type: Option<String>,
    pub user_metadata: BTreeMap<String, String>,
    pub last_modified: Option<DateTime<Utc>>,
    /// The store's entity tag, where it has one (S3 lists them).
    pub etag: Option<String>,
}

/// How [`copy_object`] moves bytes.
#[derive(Clone, Debug)]
pub struct CopyOptions {
    /// Size of each ranged read and of each multipart part. Objects up to this size are
    /// read whole and sent in one request; larger ones to S3 as multipart uploads, or as
    /// one streamed request up to `multipart_threshold`. Services may round it up to
    /// their minimum part size (5 MiB on S3).
    pub chunk_size: usize,
    /// Bytes: objects to S3 above `chunk_size` but not above this go in one request whose
    /// body streams from the source; larger ones as multipart uploads. `None`, or a
    /// value below `chunk_size`, is `chunk_size`: everything above a part goes in parts.
    pub multipart_threshold: Option<u64>,
    /// Chunks in flight per object, for reads and for part uploads. Peak memory per
    /// object is about `2 * concurrency * chunk_size`.
    pub concurrency: usize,
    /// Carry the source's content type and user metadata to the destination, where
    /// the destination can store them (S3, GCS and Azure store both; memory stores
    /// the content type only; a file system stores user metadata as `user.*` extended
    /// attributes and no content type). Turn off for file systems without extended
    /// attributes, where writing them fails.
    pub preserve_metadata: bool,
    /// Limits that pace the bytes written (the job's, the site's share), each shared by
    /// every copy it governs; none is unlimited.
    pub bandwidth: Vec<Arc<Bandwidth>>,
    /// Where a resumable multipart upload reserves each part's buffer while it holds
    /// it. The caller then reserves nothing for such a copy up front, so large objects
    /// share the budget part by part instead of each waiting for room for its peak.
    pub part_budget: Option<Arc<MemoryBudget>>,
    /// When the task began: a multipart upload that has nothing journalled first
    /// aborts the uploads of its key begun before then, which an agent killed between
    /// creating and journalling one left behind. `None` aborts nothing.
    pub task_started: Option<SystemTime>,
}

impl Default for CopyOptions {
    fn default() -> Self {
        CopyOptions {
            chunk_size: DEFAULT_CHUNK_SIZE,
            multipart_threshold: None,
            concurrency: DEFAULT_CONCURRENCY,
            preserve_metadata: true,
            bandwidth: Vec::new(),
            part_budget: None,
            task_started: None,
        }
    }
}

impl CopyOptions {
    /// The largest object sent to S3 in one request; see `multipart_threshold`.
    pub fn multipart_threshold(&self) -> u64 {
        self.multipart_threshold
            .unwrap_or(0)
            .max(self.chunk_size as u64)
    }
}

/// What [`copy_object`] wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Copied {
    /// Bytes read from the source and written to the destination.
    pub size: u64,
    /// xxh3-128 of exactly those bytes.
    pub source_xxh3: u128,
    /// The etag an S3 destination gave the object it stored (see [`written_etag`]).
    pub etag: Option<String>,
    /// The source had a content type or user metadata that the destination cannot
    /// store (or `preserve_metadata` was off), so it was not carried over.
    pub metadata_dropped: bool,
}

/// How thoroughly [`verify_object`] checks the destination.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VerifyMode {
    /// The destination's size equals the expected size and, where the copy noted the
    /// etag the store gave it, so does its etag. One stat (or one listing for many
    /// objects); tells the object the copy wrote from any other written over it, but
    /// does not catch corruption that keeps the size in a store without etags.
    Quick,
    /// The destination is read back in full and its xxh3-128 compared.
    Full,
}

/// The answer of [`verify_object`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    /// The destination's size.
    pub destination_size: u64,
    /// xxh3-128 of the destination's bytes; `None` in [`VerifyMode::Quick`].
    pub destination_xxh3: Option<u128>,
    /// The destination's etag, as its stat gave it; `None` in [`VerifyMode::Full`].
    pub destination_etag: Option<String>,
    /// Whether the destination holds what was expected, as far as the mode checks.
    pub matches: bool,
}

/// A failed operation on one object (or on the listing, with an empty `key`).
#[derive(Clone, Debug, thiserror::Error)]
#[error("{message}")]
pub struct TransferError {
    /// The object's key relative to the dataset root.
    pub key: String,
    /// `"list"`, `"stat"`, `"read"`, `"write"` or `"delete"`.
    pub operation: &'static str,
    pub kind: ErrorKind,
    /// Lowercase, with the object's location: `reading s3://bucket/key: not found: ...`.
    pub message: String,
    /// Retrying the same operation may succeed (network failure, throttling, a 5xx,
    /// the source changing mid-copy). Never true for not-found, permission-denied or
    /// configuration errors.
    pub temporary: bool,
}

impl TransferError {
    pub(crate) fn from_opendal(
        op: &Operator,
        key: &str,
        operation: &'static str,
        err: opendal::Error,
    ) -> Self {
        let kind = err.kind();
        let mut detail = kind_text(kind).to_owned();
        if !err.message().is_empty() {
            detail.push_str(": ");
            detail.push_str(err.message());
        }
        let mut source = std::error::Error::source(&err);
        while let Some(cause) = source {
            detail.push_str(": ");
            detail.push_str(&cause.to_string());
            source = cause.source();
        }
        TransferError {
            key: key.to_owned(),
            operation,
            kind,
            message: format!("{} {}: {detail}", verb(operation), object_url(op, key)),
            temporary: is_temporary(&err),
        }
    }

    pub(crate) fn new(
        op: &Operator,
        key: &str,
        operation: &'static str,
        kind: ErrorKind,
        detail: impl std::fmt::Display,
        temporary: bool,
    ) -> Self {
        TransferError {
            key: key.to_owned(),
            operation,
            kind,
            message: format!("{} {}: {detail}", verb(operation), object_url(op, key)),
            temporary,
        }
    }
}

fn verb(operation: &str) -> &'static str {
    match operation {
        "list" => "listing",
        "stat" => "stat",
        "read" => "reading",
        "write" => "writing",
        "delete" => "deleting",
        _ => "accessing",
    }
}

fn kind_text(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::Unexpected => "unexpected error",
        ErrorKind::Unsupported => "unsupported",
        ErrorKind::ConfigInvalid => "invalid configuration",
        ErrorKind::NotFound => "not found",
        ErrorKind::PermissionDenied => "permission denied",
        ErrorKind::IsADirectory => "is a directory",
        ErrorKind::NotADirectory => "not a directory",
        ErrorKind::AlreadyExists => "already exists",
        ErrorKind::RateLimited => "rate limited",
        ErrorKind::IsSameFile => "same file",
        ErrorKind::ConditionNotMatch => "condition not met",
        ErrorKind::RangeNotSatisfied => "range not satisfiable",
        ErrorKind::Conflict => "conflict",
        _ => "error",
    }
}

/// OpenDAL marks transient failures (network, 5xx) temporary; throttling always is;
/// errors that no retry can change never are, whatever status they carry.
fn is_temporary(err: &opendal::Error) -> bool {
    match err.kind() {
        ErrorKind::NotFound
        | ErrorKind::PermissionDenied
        | ErrorKind::ConfigInvalid
        | ErrorKind::Unsupported
        | ErrorKind::IsADirectory
        | ErrorKind::NotADirectory
        | ErrorKind::IsSameFile => false,
        ErrorKind::RateLimited => true,
        _ => err.is_temporary(),
    }
}

/// Lists every file below the operator's root, recursively, as a stream that fetches
/// one listing page at a time. Directories (and S3 directory markers, keys ending in
/// `/`) are not objects and are skipped. When the listing lacks metadata the backend
/// can hold (S3 and file systems never list content type or user metadata), each
/// object is stat'ed, a bounded number at a time; an object deleted between the
/// listing and its stat is skipped. Order is the backend's listing order.
pub fn list(
    op: &Operator,
) -> impl Stream<Item = Result<ObjectInfo, TransferError>> + Send + 'static {
    list_objects(op, true, String::new(), None)
}

/// Like [`list`], but only keys, sizes and modification times are sure to be filled
/// in: objects are stat'ed only when the listing lacks those, which S3 listings never
/// do. Only keys below the directory `under` are listed (`""` for all, else ending in
/// `/`); keys are still relative to the operator's root. With `start_after`, where the
/// backend supports it (S3 does, in key order), the listing begins after that key;
/// elsewhere it begins at the start.
pub fn list_sizes(
    op: &Operator,
    under: &str,
    start_after: Option<&str>,
) -> impl Stream<Item = Result<ObjectInfo, TransferError>> + Send + 'static {
    list_objects(op, false, under.to_owned(), start_after.map(str::to_owned))
}

fn list_objects(
    op: &Operator,
    with_metadata: bool,
    under: String,
    start_after: Option<String>,
) -> impl Stream<Item = Result<ObjectInfo, TransferError>> + Send + 'static {
    let capability = op.info().capability();
    let may_have_content_type = with_metadata && capability.write_with_content_type;
    let may_have_user_metadata = with_metadata && capability.write_with_user_metadata;
    let start_after = start_after.filter(|_| capability.list_with_start_after);
    let lister_op = op.clone();
    let entries_op = op.clone();
    let stat_op = op.clone();

    stream::once(async move {
        let mut lister = lister_op.lister_with(&under).recursive(true);
        if let Some(key) = start_after {
            lister = lister.start_after(&key);
        }
        lister
            .await
            .map_err(|e| TransferError::from_opendal(&lister_op, &under, "list", e))
    })
    .map_ok(move |lister| {
        let op = entries_op.clone();
        lister.map_err(move |e| TransferError::from_opendal(&op, "", "list", e))
    })
    .try_flatten()
    .try_filter(|entry| {
        std::future::ready(!entry.metadata().is_dir() && !entry.path().ends_with('/'))
    })
    .map(move |entry| {
        let op = stat_op.clone();
        async move {
            let (key, metadata) = entry?.into_parts();
            let incomplete = !metadata.is_file()
                || metadata.last_modified().is_none()
                || (may_have_content_type && metadata.content_type().is_none())
                || (may_have_user_metadata && metadata.user_metadata().is_none());
            if !incomplete {
                return Ok(Some(object_info(key, &metadata)));
            }
            match op.stat(&key).await {
                Ok(full) if full.is_file() => Ok(Some(object_info(key, &full))),
                Ok(_) => Ok(None),
                Err(e) if e.kind() == ErrorKind::NotFound => {
                    tracing::debug!(key = %key, "object vanished between listing and stat");
                    Ok(None)
                }
                Err(e) => Err(TransferError::from_opendal(&op, &key, "stat", e)),
            }
        }
    })
    .buffered(LIST_STAT_CONCURRENCY)
    .try_filter_map(|info| std::future::ready(Ok(info)))
}

fn object_info(key: String, metadata: &Metadata) -> ObjectInfo {
    ObjectInfo {
        key,
        size: metadata.content_length(),
        content_type: metadata.content_type().map(str::to_owned),
        user_metadata: metadata
            .user_metadata()
            .map(|m| {
                m.into_iter()
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect()
            })
            .unwrap_or_default(),
        last_modified: metadata.last_modified().and_then(|ts| {
            i64::try_from(ts.into_inner().as_nanosecond())
                .ok()
                .map(DateTime::from_timestamp_nanos)
        }),
        etag: metadata.etag().map(str::to_owned),
    }
}

/// Copies `key` from `src` to the same key at `dst`, hashing the bytes with xxh3-128 as
/// they pass. The object is read in `chunk_size` ranged reads and written through one
/// writer (multipart above `chunk_size` where the destination supports it), so at most
/// about `2 * concurrency * chunk_size` bytes are held. Empty objects are written too.
///
/// Guarantees on success: `size` bytes were read and written, `source_xxh3` is their
/// hash, and the source did not change while it was read (checked with its ETag where
/// the source supports conditional reads, otherwise by re-checking its size and
/// modification time afterwards). A local file of at most `chunk_size` bytes is read
/// whole in one blocking call and written in one request. The destination is not re-read: that is
/// [`verify_object`]'s job. On failure an unfinished multipart upload is aborted; a
/// file-system destination may keep a partial file, which the next copy overwrites.
pub async fn copy_object(
    src: &Operator,
    dst: &Operator,
    key: &str,
    options: &CopyOptions,
) -> Result<Copied, TransferError> {
    let chunk_size = options.chunk_size.max(1);
    if local_file::is_local(src) {
        if let Some(file) = local_file::read_small(src, key, chunk_size as u64).await? {
            return write_whole(dst, key, file, options).await;
        }
    }
    let concurrency = options.concurrency.max(1);
    let source = stat_file(src, key).await?;
    let size = source.content_length();

    let dst_capability = dst.info().capability();
    let mut metadata_dropped = false;
    let mut writer = dst
        .writer_with(key)
        .chunk(chunk_size)
        .concurrent(concurrency);
    if let Some(content_type) = source.content_type() {
        if options.preserve_metadata && dst_capability.write_with_content_type {
            writer = writer.content_type(content_type);
        } else {
            metadata_dropped = true;
        }
    }
    if let Some(user_metadata) = source.user_metadata().filter(|m| !m.is_empty()) {
        if options.preserve_metadata && dst_capability.write_with_user_metadata {
            writer = writer.user_metadata(
                user_metadata
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), v.to_owned())),
            );
        } else {
            metadata_dropped = true;
        }
    }
    let mut writer = writer
        .await
        .map_err(|e| TransferError::from_opendal(dst, key, "write", e))?;

    let mut hasher = Xxh3::new();
    if let Err(err) = pump(src, dst, key, &source, options, &mut hasher, &mut writer).await {
        abort(&mut writer, dst, key).await;
        return Err(err);
    }
    if let Err(err) = ensure_unchanged(src, key, &source).await {
        abort(&mut writer, dst, key).await;
        return Err(err);
    }
    let written = match writer.close().await {
        Ok(written) => written,
        Err(e) => {
            abort(&mut writer, dst, key).await;
            return Err(TransferError::from_opendal(dst, key, "write", e));
        }
    };

    let source_xxh3 = hasher.digest128();
    tracing::debug!(
        key,
        size,
        xxh3 = %xxh3_hex(source_xxh3),
        metadata_dropped,
        "object copied"
    );
    Ok(Copied {
        size,
        source_xxh3,
        etag: written_etag(dst, &written),
        metadata_dropped,
    })
}

/// Writes a local file read whole in one request: a single PUT on S3.
async fn write_whole(
    dst: &Operator,
    key: &str,
    file: SmallFile,
    options: &CopyOptions,
) -> Result<Copied, TransferError> {
    let size = file.bytes.len() as u64;
    let mut metadata_dropped = false;
    let mut write = dst.write_with(key, file.bytes);
    if !file.user_metadata.is_empty() {
        if options.preserve_metadata && dst.info().capability().write_with_user_metadata {
            write = write.user_metadata(file.user_metadata);
        } else {
            metadata_dropped = true;
        }
    }
    for limit in &options.bandwidth {
        limit.take(size as usize).await;
    }
    let written = write
        .await
        .map_err(|e| TransferError::from_opendal(dst, key, "write", e))?;
    tracing::debug!(key, size, xxh3 = %xxh3_hex(file.xxh3), metadata_dropped, "object copied");
    Ok(Copied {
        size,
        source_xxh3: file.xxh3,
        etag: written_etag(dst, &written),
        metadata_dropped,
    })
}

/// The etag the store gave an object it just stored, if it is S3: S3 lists and stats
/// an object with the etag its write returned, so a later, different one means another
/// object took its place. Other stores are left to sizes: only S3's etags are tested
/// against a real server here, and a store whose listing gave the same etag in another
/// form would make every copy look replaced and fail it after one re-copy.
fn written_etag(dst: &Operator, written: &Metadata) -> Option<String> {
    keeps_etags(dst)
        .then(|| written.etag().map(str::to_owned))
        .flatten()
}

/// Whether Ferry checks the etags of what it writes to `op` (see [`written_etag`]).
pub(crate) fn keeps_etags(op: &Operator) -> bool {
    op.info().scheme() == "s3"
}

/// Whether an etag found at the destination agrees with the one `expected` of it; an
/// unknown one on either side agrees. S3 quotes etags, and some services leave the
/// quotes out of listings, so they are compared without.
pub(crate) fn etags_agree(expected: Option<&str>, found: Option<&str>) -> bool {
    fn bare(etag: &str) -> &str {
        etag.trim_start_matches("W/").trim_matches('"')
    }
    match (expected, found) {
        (Some(expected), Some(found)) => bare(expected) == bare(found),
        _ => true,
    }
}

/// Moves the source's bytes into the destination writer, hashing them on the way.
async fn pump(
    src: &Operator,
    dst: &Operator,
    key: &str,
    source: &Metadata,
    options: &CopyOptions,
    hasher: &mut Xxh3,
    writer: &mut Writer,
) -> Result<(), TransferError> {
    let mut bytes = ObjectBytes::open(
        src,
        key,
        source,
        options.chunk_size.max(1),
        options.concurrency.max(1),
    )
    .await?;
    while let Some(buffer) = bytes.next().await? {
        for limit in &options.bandwidth {
            limit.take(buffer.len()).await;
        }
        for chunk in buffer.clone() {
            hasher.update(&chunk);
        }
        writer
            .write(buffer)
            .await
            .map_err(|e| TransferError::from_opendal(dst, key, "write", e))?;
    }
    Ok(())
}

/// Reads `key` in full and returns its size and xxh3-128, streaming in
/// [`DEFAULT_CHUNK_SIZE`] ranged reads. Fails (temporarily) if the object changes while
/// it is read.
pub async fn hash_object(op: &Operator, key: &str) -> Result<(u64, u128), TransferError> {
    let metadata = stat_file(op, key).await?;
    let mut hasher = Xxh3::new();
    // One streamed read: hashing is far faster than any store, so parallel ranged
    // reads would only hold their chunks in memory while they wait their turn.
    let mut bytes = ObjectBytes::open(op, key, &metadata, DEFAULT_CHUNK_SIZE, 1).await?;
    while let Some(buffer) = bytes.next().await? {
        for chunk in buffer {
            hasher.update(&chunk);
        }
    }
    ensure_unchanged(op, key, &metadata).await?;
    Ok((metadata.content_length(), hasher.digest128()))
}

/// Reads `key` in one streamed request, with no stat before or after it, and returns
/// the size and xxh3-128 of what it read. This is the full verification of an object
/// whose expected size and hash are known: a short, long or changed object cannot match
/// both, so the stats [`hash_object`] adds to notice a change would add requests and
/// nothing else.
pub async fn hash_streamed(op: &Operator, key: &str) -> Result<(u64, u128), TransferError> {
    let failure = |e| TransferError::from_opendal(op, key, "read", e);
    let mut stream = op
        .reader(key)
        .await
        .map_err(failure)?
        .into_stream(..)
        .await
        .map_err(failure)?;
    let (mut hasher, mut size) = (Xxh3::new(), 0u64);
    while let Some(buffer) = stream.try_next().await.map_err(failure)? {
        for chunk in buffer {
            hasher.update(&chunk);
            size += chunk.len() as u64;
        }
    }
    Ok((size, hasher.digest128()))
}

/// Checks that `key` at `dst` holds `expected_size` bytes and, in
/// [`VerifyMode::Quick`], the etag `expected_etag` where one is given and the store
/// has etags; in [`VerifyMode::Full`], that their xxh3-128 is `expected_xxh3`. A
/// mismatch is an answer (`matches: false`), not an error; a missing destination object
/// is an error (`NotFound`, permanent).
pub async fn verify_object(
    dst: &Operator,
    key: &str,
    expected_size: u64,
    expected_xxh3: u128,
    expected_etag: Option<&str>,
    mode: VerifyMode,
) -> Result<Verified, TransferError> {
    match mode {
        VerifyMode::Quick => {
            let metadata = stat_file(dst, key).await?;
            let (size, etag) = (metadata.content_length(), metadata.etag());
            Ok(Verified {
                destination_size: size,
                destination_xxh3: None,
                destination_etag: etag.map(str::to_owned),
                matches: size == expected_size && etags_agree(expected_etag, etag),
            })
        }
        VerifyMode::Full => {
            let (size, xxh3) = hash_streamed(dst, key).await?;
            Ok(Verified {
                destination_size: size,
                destination_xxh3: Some(xxh3),
                destination_etag: None,
                matches: size == expected_size && xxh3 == expected_xxh3,
            })
        }
    }
}

/// Deletes `key` (source retirement). Deleting an object that does not exist
/// succeeds, so a retried retirement is harmless.
pub async fn delete_object(op: &Operator, key: &str) -> Result<(), TransferError> {
    op.delete(key)
        .await
        .map_err(|e| TransferError::from_opendal(op, key, "delete", e))
}

/// An xxh3-128 digest as 32 lowercase hex digits, the form Ferry stores and reports.
pub fn xxh3_hex(digest: u128) -> String {
    format!("{digest:032x}")
}

/// A digest string that is not 32 hex digits.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid xxh3-128 digest {input:?}: expected 32 hex digits")]
pub struct InvalidXxh3 {
    pub input: String,
}

/// Parses the form [`xxh3_hex`] writes (upper-case digits are accepted too).
pub fn parse_xxh3_hex(input: &str) -> Result<u128, InvalidXxh3> {
    let invalid = || InvalidXxh3 {
        input: input.to_owned(),
    };
    if input.len() != 32 || !input.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(invalid());
    }
    u128::from_str_radix(input, 16).map_err(|_| invalid())
}

/// Stats `key` and insists it is a file.
pub(crate) async fn stat_file(op: &Operator, key: &str) -> Result<Metadata, TransferError> {
    let metadata = op
        .stat(key)
        .await
        .map_err(|e| TransferError::from_opendal(op, key, "stat", e))?;
    if metadata.is_dir() {
        return Err(is_a_directory(op, key));
    }
    Ok(metadata)
}

/// A directory where an object was expected: never worth retrying.
pub(crate) fn is_a_directory(op: &Operator, key: &str) -> TransferError {
    TransferError::new(
        op,
        key,
        "stat",
        ErrorKind::IsADirectory,
        "is a directory, not an object",
        false,
    )
}

/// The bytes of one object, exactly as many as its stat said, in order. Reads are
/// pinned to the stat'ed version by ETag where the service supports it.
pub(crate) struct ObjectBytes<'a> {
    op: &'a Operator,
    key: &'a str,
    size: u64,
    read: u64,
    buffers: Option<opendal::BufferStream>,
}

impl<'a> ObjectBytes<'a> {
    /// With `concurrency` above 1, `chunk_size` ranges are read in parallel and
    /// returned in order; with 1, the object is streamed in one read.
    pub(crate) async fn open(
        op: &'a Operator,
        key: &'a str,
        metadata: &Metadata,
        chunk_size: usize,
        concurrency: usize,
    ) -> Result<ObjectBytes<'a>, TransferError> {
        let size = metadata.content_length();
        let mut bytes = ObjectBytes {
            op,
            key,
            size,
            read: 0,
            buffers: None,
        };
        if size == 0 {
            return Ok(bytes);
        }
        let mut reader = op.reader_with(key);
        if concurrency > 1 {
            reader = reader.chunk(chunk_size).concurrent(concurrency);
        }
        if let Some(etag) = metadata.etag() {
            if op.info().capability().read_with_if_match {
                reader = reader.if_match(etag);
            }
        }
        let reader = reader.await.map_err(|e| bytes.read_error(e))?;
        let buffers = reader
            .into_stream(0..size)
            .await
            .map_err(|e| bytes.read_error(e))?;
        bytes.buffers = Some(buffers);
        Ok(bytes)
    }

    /// The next buffer, or `None` once exactly `size` bytes were returned.
    pub(crate) async fn next(&mut self) -> Result<Option<Buffer>, TransferError> {
        let Some(buffers) = self.buffers.as_mut() else {
            return Ok(None);
        };
        match buffers.try_next().await {
            Err(e) => Err(self.read_error(e)),
            Ok(Some(buffer)) => {
                self.read += buffer.len() as u64;
                if self.read > self.size {
                    return Err(source_changed(
                        self.op,
                        self.key,
                        format!("read more than the {} bytes it had", self.size),
                    ));
                }
                Ok(Some(buffer))
            }
            Ok(None) => {
                self.buffers = None;
                if self.read != self.size {
                    return Err(source_changed(
                        self.op,
                        self.key,
                        format!("read {} of the {} bytes it had", self.read, self.size),
                    ));
                }
                Ok(None)
            }
        }
    }

    fn read_error(&self, e: opendal::Error) -> TransferError {
        read_failure(self.op, self.key, e)
    }
}

/// A failed read of the source: a read pinned to an ETag that no longer matches means
/// the source changed (temporary); anything else is classified as the store's error.
pub(crate) fn read_failure(op: &Operator, key: &str, e: opendal::Error) -> TransferError {
    if e.kind() == ErrorKind::ConditionNotMatch {
        source_changed(op, key, "its etag changed")
    } else {
        TransferError::from_opendal(op, key, "read", e)
    }
}

/// For sources that cannot pin reads to a version: re-stat after reading and fail if
/// the size or modification time moved.
pub(crate) async fn ensure_unchanged(
    op: &Operator,
    key: &str,
    before: &Metadata,
) -> Result<(), TransferError> {
    if before.etag().is_some() && op.info().capability().read_with_if_match {
        return Ok(());
    }
    let after = op
        .stat(key)
        .await
        .map_err(|e| TransferError::from_opendal(op, key, "stat", e))?;
    if after.content_length() != before.content_length()
        || after.last_modified() != before.last_modified()
    {
        return Err(source_changed(
            op,
            key,
            "its size or modification time changed",
        ));
    }
    Ok(())
}

pub(crate) fn source_changed(
    op: &Operator,
    key: &str,
    why: impl std::fmt::Display,
) -> TransferError {
    TransferError::new(
        op,
        key,
        "read",
        ErrorKind::ConditionNotMatch,
        format!("object changed while it was read: {why}"),
        true,
    )
}

/// Best effort: a failed abort leaves an incomplete multipart upload for the bucket's
/// lifecycle rules, which is all that can be done at this point.
async fn abort(writer: &mut Writer, dst: &Operator, key: &str) {
    if let Err(e) = writer.abort().await {
        tracing::warn!(
            key,
            destination = %object_url(dst, key),
            error = %e,
            "aborting the destination write failed"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xxh3_hex_round_trips() {
        for digest in [
            0u128,
            1,
            u128::MAX,
            0x0123_4567_89ab_cdef_0011_2233_4455_6677,
        ] {
            let hex = xxh3_hex(digest);
            assert_eq!(hex.len(), 32);
            assert_eq!(hex, hex.to_lowercase());
            assert_eq!(parse_xxh3_hex(&hex).unwrap(), digest);
        }
        assert_eq!(xxh3_hex(1), "00000000000000000000000000000001");
        assert_eq!(
            parse_xxh3_hex("FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF").unwrap(),
            u128::MAX
        );
    }

    #[test]
    fn parse_xxh3_hex_refuses_anything_else() {
        for bad in [
            "",
            "0",
            "+0000000000000000000000000000001",
            "0000000000000000000000000000000g",
            "000000000000000000000000000000001",
            " 0000000000000000000000000000001",
        ] {
            assert!(parse_xxh3_hex(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn etags_agree_without_their_quotes_and_when_either_is_unknown() {
        let md5 = "\"9b2cf535f27731c974343645a3985328\"";
        assert!(etags_agree(Some(md5), Some(md5)));
        assert!(etags_agree(
            Some(md5),
            Some("9b2cf535f27731c974343645a3985328")
        ));
        assert!(etags_agree(Some("W/\"abc-2\""), Some("\"abc-2\"")));
        assert!(etags_agree(None, Some(md5)));
        assert!(etags_agree(Some(md5), None));
        assert!(!etags_agree(
            Some(md5),
            Some("\"9b2cf535f27731c974343645a3985329\"")
        ));
        assert!(!etags_agree(Some("\"abc-2\""), Some("\"abc-3\"")));
    }

    #[test]
    fn classification_never_retries_permanent_kinds() {
        let temporary_not_found = opendal::Error::new(ErrorKind::NotFound, "gone").set_temporary();
        assert!(!is_temporary(&temporary_not_found));
        assert!(is_temporary(&opendal::Error::new(
            ErrorKind::RateLimited,
            "slow down"
        )));
        assert!(is_temporary(
            &opendal::Error::new(ErrorKind::Unexpected, "connection reset").set_temporary()
        ));
        assert!(!is_temporary(&opendal::Error::new(
            ErrorKind::Unexpected,
            "bad xml"
        )));
    }

    #[test]
    fn streaming_hash_equals_one_shot_hash() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let mut hasher = Xxh3::new();
        for chunk in data.chunks(4096) {
            hasher.update(chunk);
        }
        assert_eq!(hasher.digest128(), xxhash_rust::xxh3::xxh3_128(&data));
    }
}
