//! Reading an object's bytes: exactly as many as its stat said, pinned to the stat'ed
//! version where the store allows it, and hashed where the caller asks.

use ferry_storage::{ObjectError, Operation};
use futures::TryStreamExt;
use md5::{Digest, Md5};
use opendal::{Buffer, Metadata, Operator};
use xxhash_rust::xxh3::Xxh3;

use super::DEFAULT_CHUNK_SIZE;

/// Stats `key` and insists it is a file.
pub(crate) async fn stat_file(op: &Operator, key: &str) -> Result<Metadata, ObjectError> {
    let metadata = op
        .stat(key)
        .await
        .map_err(|e| ObjectError::from_opendal(op, key, Operation::Stat, e))?;
    if metadata.is_dir() {
        return Err(ObjectError::is_a_directory(op, key));
    }
    Ok(metadata)
}

/// Reads `key` in full and returns its size and xxh3-128, streaming in
/// [`DEFAULT_CHUNK_SIZE`] ranged reads. Fails (temporarily) if the object changes while
/// it is read.
pub async fn hash_object(op: &Operator, key: &str) -> Result<(u64, u128), ObjectError> {
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
pub async fn hash_streamed(op: &Operator, key: &str) -> Result<(u64, u128), ObjectError> {
    let mut hasher = Xxh3::new();
    let size = read_streamed(op, key, |chunk| hasher.update(chunk)).await?;
    Ok((size, hasher.digest128()))
}

/// As [`hash_streamed`], with the MD5 of the bytes as well: the etag S3 gives an object
/// written in one request, which full verification of a server-side copy checks the
/// destination against instead of reading the source too.
pub async fn hash_streamed_md5(
    op: &Operator,
    key: &str,
) -> Result<(u64, u128, [u8; 16]), ObjectError> {
    let (mut xxh3, mut md5) = (Xxh3::new(), Md5::new());
    let size = read_streamed(op, key, |chunk| {
        xxh3.update(chunk);
        md5.update(chunk);
    })
    .await?;
    Ok((size, xxh3.digest128(), md5.finalize().into()))
}

/// Reads `key` in one streamed request, handing `each` its bytes in order; returns
/// how many it read.
async fn read_streamed(
    op: &Operator,
    key: &str,
    mut each: impl FnMut(&[u8]),
) -> Result<u64, ObjectError> {
    let failure = |e| ObjectError::from_opendal(op, key, Operation::Read, e);
    let mut stream = op
        .reader(key)
        .await
        .map_err(failure)?
        .into_stream(..)
        .await
        .map_err(failure)?;
    let mut size = 0u64;
    while let Some(buffer) = stream.try_next().await.map_err(failure)? {
        for chunk in buffer {
            each(&chunk);
            size += chunk.len() as u64;
        }
    }
    Ok(size)
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
    ) -> Result<ObjectBytes<'a>, ObjectError> {
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
        let reader = pinned_reader(op, key, metadata, chunk_size, concurrency).await?;
        let buffers = reader
            .into_stream(0..size)
            .await
            .map_err(|e| read_failure(op, key, e))?;
        bytes.buffers = Some(buffers);
        Ok(bytes)
    }

    /// The next buffer, or `None` once exactly `size` bytes were returned.
    pub(crate) async fn next(&mut self) -> Result<Option<Buffer>, ObjectError> {
        let Some(buffers) = self.buffers.as_mut() else {
            return Ok(None);
        };
        match buffers.try_next().await {
            Err(e) => Err(read_failure(self.op, self.key, e)),
            Ok(Some(buffer)) => {
                self.read += buffer.len() as u64;
                if self.read > self.size {
                    return Err(ObjectError::source_changed(
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
                    return Err(ObjectError::source_changed(
                        self.op,
                        self.key,
                        format!("read {} of the {} bytes it had", self.read, self.size),
                    ));
                }
                Ok(None)
            }
        }
    }
}

/// A reader of `key` pinned to the stat'ed version by ETag where the store supports
/// it; with `concurrency` above 1 it reads `chunk_size` ranges in parallel.
pub(crate) async fn pinned_reader(
    op: &Operator,
    key: &str,
    metadata: &Metadata,
    chunk_size: usize,
    concurrency: usize,
) -> Result<opendal::Reader, ObjectError> {
    let mut reader = op.reader_with(key);
    if concurrency > 1 {
        reader = reader.chunk(chunk_size).concurrent(concurrency);
    }
    if let Some(etag) = metadata.etag() {
        if op.info().capability().read_with_if_match {
            reader = reader.if_match(etag);
        }
    }
    reader.await.map_err(|e| read_failure(op, key, e))
}

/// A failed read of the source: a read pinned to an ETag that no longer matches means
/// the source changed (temporary); anything else is classified as the store's error.
pub(crate) fn read_failure(op: &Operator, key: &str, e: opendal::Error) -> ObjectError {
    if e.kind() == opendal::ErrorKind::ConditionNotMatch {
        ObjectError::source_changed(op, key, "its etag changed")
    } else {
        ObjectError::from_opendal(op, key, Operation::Read, e)
    }
}

/// For sources that cannot pin reads to a version: re-stat after reading and fail if
/// the size or modification time moved.
pub(crate) async fn ensure_unchanged(
    op: &Operator,
    key: &str,
    before: &Metadata,
) -> Result<(), ObjectError> {
    if before.etag().is_some() && op.info().capability().read_with_if_match {
        return Ok(());
    }
    let after = op
        .stat(key)
        .await
        .map_err(|e| ObjectError::from_opendal(op, key, Operation::Stat, e))?;
    if after.content_length() != before.content_length()
        || after.last_modified() != before.last_modified()
    {
        return Err(ObjectError::source_changed(
            op,
            key,
            "its size or modification time changed",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streaming_hash_equals_one_shot_hash() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let mut hasher = Xxh3::new();
        for chunk in data.chunks(4096) {
            hasher.update(chunk);
        }
        assert_eq!(hasher.digest128(), xxhash_rust::xxh3::xxh3_128(&data));
    }

    #[tokio::test]
    async fn an_object_read_back_gives_its_size_xxh3_and_md5() {
        let dir = tempfile::tempdir().expect("test setup");
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(dir.path().join("o.bin"), &data).expect("test setup");
        std::fs::write(dir.path().join("empty"), b"").expect("test setup");
        let builder = opendal::services::Fs::default().root(&dir.path().display().to_string());
        let op = Operator::new(builder).expect("test setup");
        let (size, xxh3, md5) = hash_streamed_md5(&op, "o.bin").await.expect("read");
        assert_eq!(size, 100_000);
        assert_eq!(xxh3, xxhash_rust::xxh3::xxh3_128(&data));
        assert_eq!(md5, <[u8; 16]>::from(Md5::digest(&data)));
        // MD5's published digest of nothing: what S3 gives an empty object as etag.
        let (_, _, empty) = hash_streamed_md5(&op, "empty").await.expect("read");
        assert_eq!(
            super::super::etag_md5("\"d41d8cd98f00b204e9800998ecf8427e\""),
            Some(empty)
        );
    }
}
