//! The backend-neutral half of a resumable upload: how an object is cut into parts,
//! how each part is read from the source into a buffer of its own (under the memory
//! budget) and hashed, and the journal that makes an upload outlive the agent.
//!
//! S3 multipart uploads ([`crate::s3::upload_resumable`]) and GCS resumable sessions
//! ([`crate::gcs_upload::upload_resumable`]) are both built on it. The source is read in
//! order whatever was journalled: every byte goes into the whole-object xxh3 that Ferry
//! verifies against, and each part's own xxh3 decides whether a journalled part still
//! holds the source's bytes. Resuming saves the upload, never the read.

use std::{future::Future, ops::Range, sync::Arc};

use bytes::Bytes;
use ferry_storage::{ObjectError, Operation};
use futures::TryStreamExt;
use opendal::{Metadata, Operator, Reader};
use tokio::sync::OwnedSemaphorePermit;
use xxhash_rust::xxh3::{xxh3_128, Xxh3};

use crate::{
    local_file,
    transfer::{pinned_reader, read_failure, CopyOptions},
};

/// Where an interrupted upload stands, as journalled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadState {
    /// The S3 upload id, or the GCS session URI.
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
    /// The service's ETag for the part, needed to complete an S3 upload; empty for a
    /// GCS session, which needs none.
    pub etag: String,
    /// xxh3-128 of the part's bytes: a resume reuses the part only if the source
    /// still holds exactly these bytes there.
    pub xxh3: u128,
}

/// The journal could not record an upload's progress.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct JournalError(pub String);

/// Durable record of an upload's progress (the agent sends it to the control plane).
pub trait UploadJournal: Send + Sync {
    /// Called once the upload exists and before any part is sent: when it returns Ok
    /// the id is durable, so a crash cannot orphan the upload.
    fn started(
        &self,
        key: &str,
        upload_id: &str,
        part_size: u64,
    ) -> impl Future<Output = Result<(), JournalError>> + Send;

    /// Called after each part was stored, possibly for several parts at once and not
    /// in part order.
    fn part_done(
        &self,
        key: &str,
        upload_id: &str,
        part: &PartDone,
    ) -> impl Future<Output = Result<(), JournalError>> + Send;
}

/// How one object is cut into parts.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Plan {
    pub size: u64,
    pub part_size: u64,
    /// At least 1: an empty object is one empty part.
    pub count: u32,
}

/// A service's bounds on parts.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PartLimits {
    /// The smallest part but the last.
    pub min: u64,
    /// The largest part.
    pub max: u64,
    /// Every part but the last is a multiple of this.
    pub align: u64,
    /// The most parts of one upload.
    pub count: u64,
}

impl Plan {
    /// `chunk_size` within the limits, grown until the object fits in their count;
    /// `None` if it cannot.
    pub fn cut(chunk_size: usize, size: u64, limits: PartLimits) -> Option<Plan> {
        let requested = u64::try_from(chunk_size).unwrap_or(u64::MAX);
        let part_size = requested
            .clamp(limits.min, limits.max)
            .max(size.div_ceil(limits.count))
            .div_ceil(limits.align)
            * limits.align;
        if part_size > limits.max {
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
    pub fn parts(self) -> impl Iterator<Item = (u32, Range<u64>)> {
        (1..=self.count).map(move |number| {
            let start = u64::from(number - 1) * self.part_size;
            (number, start..(start + self.part_size).min(self.size))
        })
    }
}

/// One part as read from the source.
pub(crate) struct SourcePart {
    pub number: u32,
    pub xxh3: u128,
    pub bytes: Bytes,
    /// The part's share of the memory budget, held until it is sent.
    pub _room: Option<OwnedSemaphorePermit>,
}

/// Reads an object's parts, each into a buffer of its own.
pub(crate) struct PartReader<'a> {
    src: &'a Operator,
    key: &'a str,
    options: &'a CopyOptions,
    source: PartSource,
}

/// Where parts are read from.
enum PartSource {
    /// The source object is a local file: parts are read at their offsets with
    /// positional reads, straight into their buffers.
    File(Arc<std::fs::File>),
    Store(Reader),
}

impl<'a> PartReader<'a> {
    /// The source file itself on a local file system; elsewhere a reader pinned to the
    /// stat'ed version (`metadata`) where the store supports it.
    pub async fn open(
        src: &'a Operator,
        key: &'a str,
        metadata: &Metadata,
        options: &'a CopyOptions,
    ) -> Result<PartReader<'a>, ObjectError> {
        let source = if local_file::is_local(src) {
            PartSource::File(Arc::new(local_file::open(src, key).await?))
        } else {
            PartSource::Store(pinned_reader(src, key, metadata, 0, 1).await?)
        };
        Ok(PartReader {
            src,
            key,
            options,
            source,
        })
    }

    /// Reads part `number` (bytes `range` of the source) into a buffer mapped for it
    /// alone, with its room in the memory budget reserved first.
    pub async fn read(
        &self,
        number: u32,
        range: Range<u64>,
    ) -> Result<(u32, Bytes, Option<OwnedSemaphorePermit>), ObjectError> {
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
            ObjectError::source_changed(
                self.src,
                self.key,
                format!("part {number} at byte {start} held {len} of {expected} bytes"),
            )
        };
        let io_failure =
            |e: &std::io::Error| local_file::io_error(self.src, self.key, Operation::Read, e);
        // The part gets a mapping of its own, filled once and sent as it is, and given
        // back to the system as soon as the upload drops it. From the heap, glibc kept
        // the freed parts, and the agent's resident memory grew far past its budget.
        let mut part = memmap2::MmapMut::map_anon(expected as usize).map_err(|e| io_failure(&e))?;
        huge_pages(&part);
        let reader = match &self.source {
            PartSource::File(file) => {
                // Straight into the part's buffer, with no copy through a read buffer.
                let file = file.clone();
                let (part, read) = tokio::task::spawn_blocking(move || {
                    use std::os::unix::fs::FileExt;
                    let read = file.read_exact_at(&mut part, start);
                    (part, read)
                })
                .await
                .map_err(|e| io_failure(&std::io::Error::other(e.to_string())))?;
                return match read {
                    Ok(()) => Ok((number, Bytes::from_owner(part), room)),
                    Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                        Err(ObjectError::source_changed(
                            self.src,
                            self.key,
                            format!("part {number} at byte {start} ended early: the file shrank"),
                        ))
                    }
                    Err(e) => Err(io_failure(&e)),
                };
            }
            PartSource::Store(reader) => reader,
        };
        let mut filled = 0usize;
        let mut chunks = reader
            .clone()
            .into_stream(range)
            .await
            .map_err(|e| read_failure(self.src, self.key, e))?;
        while let Some(buffer) = chunks
            .try_next()
            .await
            .map_err(|e| read_failure(self.src, self.key, e))?
        {
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
}

/// Feeds a part into the whole-object hash (parts arrive in order) and hashes it
/// alone.
pub(crate) fn hash_part(
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const MIB: u64 = 1024 * 1024;
    const S3: PartLimits = PartLimits {
        min: 5 * MIB,
        max: 5 * 1024 * MIB,
        align: 1,
        count: 10_000,
    };

    fn plan(chunk_size: usize, size: u64, limits: PartLimits) -> (u64, u32, Vec<Range<u64>>) {
        let plan = Plan::cut(chunk_size, size, limits).unwrap();
        (
            plan.part_size,
            plan.count,
            plan.parts().map(|(_, r)| r).collect(),
        )
    }

    #[test]
    fn parts_cover_the_object_exactly() {
        let (part_size, count, ranges) = plan(5 * 1024 * 1024, 12 * MIB + 1, S3);
        assert_eq!((part_size, count), (5 * MIB, 3));
        assert_eq!(
            ranges,
            vec![0..5 * MIB, 5 * MIB..10 * MIB, 10 * MIB..12 * MIB + 1]
        );
        // Below the minimum: rounded up.
        assert_eq!(plan(1024, 6 * MIB, S3).0, 5 * MIB);
        // An empty object is one empty part.
        assert_eq!(plan(5 * 1024 * 1024, 0, S3).2, vec![0..0]);
        // Too many parts: the part grows.
        let (part_size, count, _) = plan(5 * 1024 * 1024, 100_000 * MIB, S3);
        assert_eq!((part_size, count), (10 * MIB, 10_000));
        // Too large even for the largest parts.
        assert!(Plan::cut(5 * 1024 * 1024, S3.count * S3.max + 1, S3).is_none());
    }

    #[test]
    fn parts_keep_the_services_alignment() {
        let gcs = PartLimits {
            min: 256 * 1024,
            max: u64::MAX / 2,
            align: 256 * 1024,
            count: u64::from(u32::MAX),
        };
        let (part_size, count, _) = plan(5 * 1024 * 1024 + 1, 20 * MIB, gcs);
        assert_eq!(part_size % (256 * 1024), 0);
        assert_eq!(part_size, 5 * MIB + 256 * 1024);
        assert_eq!(count, 4);
    }
}
