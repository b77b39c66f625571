//! Objects larger than a part but within the multipart threshold, sent to S3 in one
//! PutObject whose body streams from the source as it is read.
//!
//! One request and one write for the service, as rclone and the AWS CLI send objects
//! below their cutoffs, with no more of the object in the agent's memory than a few
//! chunks. A multipart upload costs the service more: many stores (s3s-fs among them)
//! assemble the object from its parts by reading and writing every byte a second time.
//! The price is the resume: after a crash the whole object is sent again, where a
//! multipart upload continues with the parts it lacks. That is why the threshold
//! defaults to one part, and objects above it always go in parts.

use std::{
    io,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use aws_sdk_s3::{error::SdkError, primitives::ByteStream, types::StorageClass};
use bytes::Bytes;
use ferry_storage::{Attributes, ErrorKind, ObjectError, Operation};
use http_body::{Body, Frame, SizeHint};
use opendal::{Metadata, Operator};
use tokio::sync::mpsc;
use xxhash_rust::xxh3::Xxh3;

use super::{sdk_failure, S3Dataset};
use crate::{
    local_file,
    transfer::{ensure_unchanged, stat_file, xxh3_hex, Copied, CopyOptions, ObjectBytes},
};

/// Bytes read from a local source at a time.
const CHUNK: usize = 1 << 20;
/// What one streamed object holds of the memory budget: a chunk being read, one waiting
/// for the request and one being sent. A store's chunks are the sizes its responses
/// arrive in, smaller than this.
pub const FOOTPRINT: u64 = 3 * CHUNK as u64;
/// S3's largest object in one request.
pub const MAX_SIZE: u64 = 5 << 30;

/// Why a streamed request failed.
#[derive(Debug)]
pub enum PutFailure {
    /// The connection broke before the service answered. A service may refuse a request
    /// as soon as it arrives (403) and close the connection while the body is still
    /// being sent, so the refusal never reaches the client and every retry would meet
    /// the same; a request without a body, such as a multipart upload's start, gets the
    /// answer. A broken network looks the same, and a multipart upload then resumes.
    Unanswered(ObjectError),
    Failed(ObjectError),
}

impl From<ObjectError> for PutFailure {
    fn from(e: ObjectError) -> Self {
        PutFailure::Failed(e)
    }
}

/// Copies `key` from `src` to the same key of `dst` in one PutObject, hashing the bytes
/// with xxh3-128 as they pass and pacing them by `options.bandwidth`.
///
/// The last chunk is held back until the source is found unchanged since its stat, so
/// a source that moved during the copy fails the request before the service has all of
/// it: the object at the destination stays what it was.
pub async fn put_streamed(
    src: &Operator,
    dst: &S3Dataset,
    key: &str,
    options: &CopyOptions,
) -> Result<Copied, PutFailure> {
    let source = stat_file(src, key).await?;
    let size = source.content_length();
    if size > MAX_SIZE {
        return Err(PutFailure::Failed(ObjectError::new(
            &dst.url(key),
            key,
            Operation::Write,
            ErrorKind::Invalid,
            "TooLarge",
            format!(
                "{size} bytes exceed S3's {MAX_SIZE} for one request; \
                 lower the agent's multipart_threshold_mib"
            ),
        )));
    }
    let (attributes, metadata_dropped) = options.carried(Attributes::of(&source));
    let user_metadata = Some(&attributes.user_metadata)
        .filter(|m| !m.is_empty())
        .map(|m| m.clone().into_iter().collect());
    let (sender, chunks) = mpsc::channel(1);
    let request = dst
        .client
        .put_object()
        .bucket(&dst.bucket)
        .key(dst.object_key(key))
        .content_length(i64::try_from(size).unwrap_or(i64::MAX))
        .set_content_type(attributes.content_type.clone())
        .set_metadata(user_metadata)
        .set_storage_class(dst.storage_class.as_deref().map(StorageClass::from))
        .body(ByteStream::from_body_1_x(ChannelBody { chunks, size }))
        // The bytes are hashed with xxh3 on the way and verified end to end; a SHA-256
        // of the body for the signature as well would cost the agent and the service
        // about as much CPU as the rest of the upload.
        .customize()
        .disable_payload_signing()
        .send();
    let (fed, sent) = tokio::join!(feed(src, key, &source, options, sender), request);
    // A failed read explains the broken request better than the request's own error.
    let fed = fed?;
    let sent = sent.map_err(|e| {
        let unanswered = matches!(e, SdkError::DispatchFailure(_));
        let e = sdk_failure(dst, key, Operation::Write, e);
        if unanswered {
            PutFailure::Unanswered(e)
        } else {
            PutFailure::Failed(e)
        }
    })?;
    let Some(source_xxh3) = fed else {
        return Err(PutFailure::Failed(ObjectError::new(
            &dst.url(key),
            key,
            Operation::Write,
            ErrorKind::Temporary,
            "BodyNotSent",
            "the request ended before its body was sent",
        )));
    };
    tracing::debug!(key, size, xxh3 = %xxh3_hex(source_xxh3), "object streamed in one request");
    Ok(Copied {
        size,
        source_xxh3,
        etag: sent.e_tag,
        metadata_dropped,
    })
}

/// The request body: the chunks [`feed`] sends, and the exact length they add up to.
struct ChannelBody {
    chunks: mpsc::Receiver<io::Result<Bytes>>,
    size: u64,
}

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        self.chunks
            .poll_recv(cx)
            .map(|chunk| chunk.map(|c| c.map(Frame::data)))
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.size)
    }
}

/// Reads the source in order into `body`, hashing and pacing each chunk; the source's
/// xxh3-128, or `None` when the request stopped taking bytes (it failed, and says why).
/// A failure is also sent down `body`, so the request fails rather than completes.
async fn feed(
    src: &Operator,
    key: &str,
    source: &Metadata,
    options: &CopyOptions,
    body: mpsc::Sender<io::Result<Bytes>>,
) -> Result<Option<u128>, ObjectError> {
    let fed = feed_chunks(src, key, source, options, &body).await;
    if let Err(e) = &fed {
        // The request may be gone already; then it has failed anyway.
        let _ = body.send(Err(io::Error::other(e.message.clone()))).await;
    }
    fed
}

async fn feed_chunks(
    src: &Operator,
    key: &str,
    source: &Metadata,
    options: &CopyOptions,
    body: &mpsc::Sender<io::Result<Bytes>>,
) -> Result<Option<u128>, ObjectError> {
    // Exactly the stat'ed size, or a failure saying the source changed.
    let mut chunks = Chunks::open(src, key, source).await?;
    let mut hasher = Xxh3::new();
    // Each chunk goes out once the next one is read, so the last one is still here when
    // the source is checked at the end.
    let mut held: Option<Bytes> = None;
    while let Some(chunk) = chunks.next().await? {
        hasher.update(&chunk);
        if let Some(previous) = held.replace(chunk) {
            if !send(options, body, previous).await {
                return Ok(None);
            }
        }
    }
    ensure_unchanged(src, key, source).await?;
    if let Some(last) = held {
        if !send(options, body, last).await {
            return Ok(None);
        }
    }
    Ok(Some(hasher.digest128()))
}

/// Paces `chunk` and hands it to the request; false if the request is gone.
async fn send(options: &CopyOptions, body: &mpsc::Sender<io::Result<Bytes>>, chunk: Bytes) -> bool {
    options.pace(chunk.len()).await;
    body.send(Ok(chunk)).await.is_ok()
}

/// The source's bytes in order, exactly as many as its stat said: positional reads of a
/// local file, or [`ObjectBytes`] from a store.
enum Chunks<'a> {
    File {
        src: &'a Operator,
        key: &'a str,
        file: Arc<std::fs::File>,
        offset: u64,
        size: u64,
    },
    // Boxed: the stream is far larger than the file's variant.
    Store(Box<ObjectBytes<'a>>),
}

impl<'a> Chunks<'a> {
    async fn open(
        src: &'a Operator,
        key: &'a str,
        source: &Metadata,
    ) -> Result<Chunks<'a>, ObjectError> {
        if local_file::is_local(src) {
            return Ok(Chunks::File {
                src,
                key,
                file: Arc::new(local_file::open(src, key).await?),
                offset: 0,
                size: source.content_length(),
            });
        }
        // One streamed read: the request takes the bytes as fast as the store gives them.
        let bytes = ObjectBytes::open(src, key, source, CHUNK, 1).await?;
        Ok(Chunks::Store(Box::new(bytes)))
    }

    /// The next chunk, or `None` at the end.
    async fn next(&mut self) -> Result<Option<Bytes>, ObjectError> {
        match self {
            Chunks::File {
                src,
                key,
                file,
                offset,
                size,
            } => {
                let len = (*size - *offset).min(CHUNK as u64) as usize;
                if len == 0 {
                    return Ok(None);
                }
                let (file, start) = (file.clone(), *offset);
                let chunk = tokio::task::spawn_blocking(move || {
                    use std::os::unix::fs::FileExt;
                    let mut chunk = vec![0; len];
                    file.read_exact_at(&mut chunk, start).map(|()| chunk)
                })
                .await
                .unwrap_or_else(|e| Err(io::Error::other(e.to_string())))
                .map_err(|e| match e.kind() {
                    io::ErrorKind::UnexpectedEof => ObjectError::source_changed(
                        src,
                        key,
                        format!(
                            "it ended before byte {}: the file shrank",
                            start + len as u64
                        ),
                    ),
                    _ => local_file::io_error(src, key, Operation::Read, &e),
                })?;
                *offset += len as u64;
                Ok(Some(Bytes::from(chunk)))
            }
            Chunks::Store(bytes) => Ok(bytes.next().await?.map(|buffer| buffer.to_bytes())),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::{Duration, SystemTime};

    use xxhash_rust::xxh3::xxh3_128;

    use super::*;

    fn fs_operator(root: &std::path::Path) -> Operator {
        Operator::new(opendal::services::Fs::default().root(&root.display().to_string())).unwrap()
    }

    /// Everything `feed` sends, read as the request would, and what it returned.
    async fn fed(
        src: &Operator,
        key: &str,
        source: &Metadata,
        before_the_end: impl FnOnce(),
    ) -> (Vec<io::Result<Bytes>>, Result<Option<u128>, ObjectError>) {
        let (sender, mut receiver) = mpsc::channel(1);
        let options = CopyOptions::default();
        let feeding = feed(src, key, source, &options, sender);
        let receiving = async {
            let mut received = Vec::new();
            let mut before_the_end = Some(before_the_end);
            while let Some(chunk) = receiver.recv().await {
                // After the first chunk: the source is still being read.
                if let Some(change) = before_the_end.take() {
                    change();
                }
                received.push(chunk);
            }
            received
        };
        let (outcome, received) = tokio::join!(feeding, receiving);
        (received, outcome)
    }

    #[tokio::test]
    async fn a_local_file_is_sent_whole_in_order_and_hashed() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = ferry_tests::dataset::bytes(7, 3 * CHUNK + 123);
        std::fs::write(dir.path().join("f.bin"), &bytes).unwrap();
        let src = fs_operator(dir.path());
        let source = src.stat("f.bin").await.unwrap();

        let (received, outcome) = fed(&src, "f.bin", &source, || {}).await;
        let sent: Vec<u8> = received
            .into_iter()
            .flat_map(|c| c.unwrap().to_vec())
            .collect();
        assert_eq!(sent.len(), bytes.len());
        assert!(sent == bytes, "the body holds the file's bytes in order");
        assert_eq!(outcome.unwrap(), Some(xxh3_128(&bytes)));
    }

    #[tokio::test]
    async fn a_file_changed_during_the_copy_fails_the_body_before_its_last_byte() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.bin");
        let bytes = ferry_tests::dataset::bytes(8, 3 * CHUNK);
        std::fs::write(&path, &bytes).unwrap();
        let src = fs_operator(dir.path());
        let source = src.stat("f.bin").await.unwrap();

        // Same size, new contents and modification time, once the copy has begun.
        let (received, outcome) = fed(&src, "f.bin", &source, || {
            let changed = ferry_tests::dataset::bytes(9, 3 * CHUNK);
            std::fs::write(&path, changed).unwrap();
            let later = SystemTime::now() + Duration::from_secs(5);
            std::fs::File::options()
                .write(true)
                .open(&path)
                .unwrap()
                .set_modified(later)
                .unwrap();
        })
        .await;
        let e = outcome.unwrap_err();
        assert!(e.is_temporary(), "{e}");
        assert!(e.message.contains("changed"), "{e}");
        let (last, sent) = received.split_last().unwrap();
        assert!(last.is_err(), "the body ends with the failure");
        let sent_bytes: usize = sent.iter().map(|c| c.as_ref().unwrap().len()).sum();
        assert!(
            sent_bytes < bytes.len(),
            "the last chunk is never sent: {sent_bytes} bytes went out"
        );
    }
}
