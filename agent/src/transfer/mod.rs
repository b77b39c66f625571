//! Object transfer primitives: copy one object between stores while hashing it, hash or
//! verify one object, delete one object.
//!
//! Every operation streams: memory use is bounded by the chunk size and concurrency in
//! [`CopyOptions`], never by the object size. Every error names the object, the
//! operation and whether retrying can help (see [`ObjectError`]).

mod read;
mod verify;

use std::{sync::Arc, time::SystemTime};

use ferry_storage::{Attributes, ObjectError, ObjectWriter, Store};
use opendal::Metadata;
use xxhash_rust::xxh3::Xxh3;

pub(crate) use self::read::{
    ensure_unchanged, pinned_reader, read_failure, stat_file, ObjectBytes,
};
pub(crate) use self::verify::{etag_md5, etags_agree, keeps_etags};
pub use self::{
    read::{hash_object, hash_streamed, hash_streamed_md5},
    verify::{
        delete_object, parse_xxh3_hex, verify_object, xxh3_hex, InvalidXxh3, Verified, VerifyMode,
    },
};
use crate::{
    bandwidth::Bandwidth,
    budget::MemoryBudget,
    local_file::{self, SmallFile},
};

/// Default size of each ranged read and each multipart part.
pub const DEFAULT_CHUNK_SIZE: usize = 8 * 1024 * 1024;
/// Default number of chunks in flight per object, for reads and for part uploads.
pub const DEFAULT_CONCURRENCY: usize = 4;

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
    /// the destination can store them (see [`Store::keepable`]). Turn off for file
    /// systems without extended attributes, where writing them fails.
    pub preserve_metadata: bool,
    /// Limits that pace the bytes written (the job's, the site's share), each shared by
    /// every copy it governs; none is unlimited.
    pub bandwidth: Vec<Arc<Bandwidth>>,
    /// Where a resumable upload reserves each part's buffer while it holds it. The
    /// caller then reserves nothing for such a copy up front, so large objects share
    /// the budget part by part instead of each waiting for room for its peak.
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

    /// Waits until every bandwidth limit lets `bytes` more go out.
    pub(crate) async fn pace(&self, bytes: usize) {
        for limit in &self.bandwidth {
            limit.take(bytes).await;
        }
    }

    /// The content type and user metadata the copy carries to `dst`, and whether the
    /// source had some that it leaves out.
    pub(crate) fn attributes(&self, source: Attributes, dst: &Store) -> (Attributes, bool) {
        if self.preserve_metadata {
            dst.keepable(source)
        } else {
            self.carried(source)
        }
    }

    /// [`CopyOptions::attributes`] for a destination that keeps them all (S3, GCS).
    pub(crate) fn carried(&self, source: Attributes) -> (Attributes, bool) {
        if self.preserve_metadata {
            (source, false)
        } else {
            let dropped = !source.is_empty();
            (Attributes::default(), dropped)
        }
    }
}

/// What [`copy_object`] wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Copied {
    /// Bytes read from the source and written to the destination.
    pub size: u64,
    /// xxh3-128 of exactly those bytes.
    pub source_xxh3: u128,
    /// The etag an S3 destination gave the object it stored (see [`keeps_etags`]).
    pub etag: Option<String>,
    /// The source had a content type or user metadata that the destination cannot
    /// store (or `preserve_metadata` was off), so it was not carried over.
    pub metadata_dropped: bool,
}

/// Copies `key` from `src` to the same key at `dst`, hashing the bytes with xxh3-128 as
/// they pass. The object is read in `chunk_size` ranged reads and written through one
/// writer (in parts above `chunk_size` where the destination takes them: S3 multipart
/// uploads, Azure blocks, a GCS resumable session), so at most about
/// `2 * concurrency * chunk_size` bytes are held. Empty objects are written too.
///
/// Guarantees on success: `size` bytes were read and written, `source_xxh3` is their
/// hash, and the source did not change while it was read (checked with its ETag where
/// the source supports conditional reads, otherwise by re-checking its size and
/// modification time afterwards). A local file of at most `chunk_size` bytes is read
/// whole in one blocking call and written in one request. The destination is not
/// re-read: that is [`verify_object`]'s job. On failure an unfinished upload is
/// aborted; a file-system destination may keep a partial file, which the next copy
/// overwrites.
pub async fn copy_object(
    src: &Store,
    dst: &Store,
    key: &str,
    options: &CopyOptions,
) -> Result<Copied, ObjectError> {
    let chunk_size = options.chunk_size.max(1);
    if local_file::is_local(src.op()) {
        if let Some(file) = local_file::read_small(src.op(), key, chunk_size as u64).await? {
            return write_whole(dst, key, file, options).await;
        }
    }
    let source = stat_file(src.op(), key).await?;
    let size = source.content_length();
    let (attributes, metadata_dropped) = options.attributes(Attributes::of(&source), dst);
    let mut writer = dst
        .writer(key, &attributes, chunk_size, options.concurrency.max(1))
        .await?;
    let mut hasher = Xxh3::new();
    let written = async {
        pump(src, key, &source, options, &mut hasher, &mut writer).await?;
        ensure_unchanged(src.op(), key, &source).await?;
        writer.close().await
    }
    .await;
    let written = match written {
        Ok(written) => written,
        Err(e) => {
            writer.abort().await;
            return Err(e);
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
        etag: written.etag.filter(|_| keeps_etags(dst.op())),
        metadata_dropped,
    })
}

/// Writes a local file read whole in one request: a single PUT on S3.
async fn write_whole(
    dst: &Store,
    key: &str,
    file: SmallFile,
    options: &CopyOptions,
) -> Result<Copied, ObjectError> {
    let size = file.bytes.len() as u64;
    let source = Attributes {
        content_type: None,
        user_metadata: file.user_metadata,
    };
    let (attributes, metadata_dropped) = options.attributes(source, dst);
    options.pace(size as usize).await;
    // To a local file system without a flush to disk per file: the task syncs the
    // destination once before it reports a batch of results (see `local_write`).
    let etag = dst.write(key, file.bytes, &attributes).await?.etag;
    tracing::debug!(key, size, xxh3 = %xxh3_hex(file.xxh3), metadata_dropped, "object copied");
    Ok(Copied {
        size,
        source_xxh3: file.xxh3,
        etag: etag.filter(|_| keeps_etags(dst.op())),
        metadata_dropped,
    })
}

/// Moves the source's bytes into the destination writer, hashing them on the way.
async fn pump(
    src: &Store,
    key: &str,
    source: &Metadata,
    options: &CopyOptions,
    hasher: &mut Xxh3,
    writer: &mut ObjectWriter,
) -> Result<(), ObjectError> {
    let mut bytes = ObjectBytes::open(
        src.op(),
        key,
        source,
        options.chunk_size.max(1),
        options.concurrency.max(1),
    )
    .await?;
    while let Some(buffer) = bytes.next().await? {
        options.pace(buffer.len()).await;
        for chunk in buffer.clone() {
            hasher.update(&chunk);
        }
        writer.write(buffer).await?;
    }
    Ok(())
}
