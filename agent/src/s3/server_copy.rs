//! Server-side copy: the service moves the bytes itself, so none cross the agent.

use std::fmt::Write as _;

use aws_sdk_s3::{
    config::http::HttpResponse,
    error::{ProvideErrorMetadata, SdkError},
    operation::head_object::HeadObjectOutput,
    types::{CompletedMultipartUpload, CompletedPart, MetadataDirective, StorageClass},
};
use ferry_storage::{ErrorKind, ObjectError, Operation};
use futures::{stream, StreamExt, TryStreamExt};

use super::{content_length, sdk_failure, unreadable_success, S3Dataset};

/// The largest object S3 copies in one `CopyObject` request (5 GiB); larger objects are
/// copied part by part.
pub const SINGLE_COPY_LIMIT: u64 = 5 << 30;
/// Default size of each `UploadPartCopy` range: few enough requests for a large object,
/// small enough that a failed part is cheap to redo.
pub const DEFAULT_COPY_PART_SIZE: u64 = 512 << 20;
/// Default number of `UploadPartCopy` requests in flight per object.
pub const DEFAULT_COPY_CONCURRENCY: usize = 8;
/// S3's bounds on multipart uploads: every part but the last is at least 5 MiB, no part
/// exceeds 5 GiB, an upload has at most 10,000 parts.
const MIN_PART_SIZE: u64 = 5 << 20;
const MAX_PART_SIZE: u64 = 5 << 30;
const MAX_PARTS: u64 = 10_000;

/// How [`S3Dataset::copy_from`] asks the service to copy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerCopyOptions {
    /// Objects up to this size are copied with one `CopyObject`, larger ones part by
    /// part. Values above [`SINGLE_COPY_LIMIT`] act as that limit, which S3 enforces.
    pub single_copy_limit: u64,
    /// Size of each part copy. Raised to S3's 5 MiB minimum, and as far as needed to
    /// stay within 10,000 parts; lowered to the 5 GiB maximum.
    pub part_size: u64,
    /// Part copies in flight per object; 0 acts as 1.
    pub concurrency: usize,
    /// Storage class of the copy; `None` is the bucket's default (S3 does not carry
    /// the source's class over).
    pub storage_class: Option<String>,
}

impl Default for ServerCopyOptions {
    fn default() -> Self {
        ServerCopyOptions {
            single_copy_limit: SINGLE_COPY_LIMIT,
            part_size: DEFAULT_COPY_PART_SIZE,
            concurrency: DEFAULT_COPY_CONCURRENCY,
            storage_class: None,
        }
    }
}

/// What [`S3Dataset::copy_from`] copied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerCopied {
    /// The source's size when the copy started; every request of the copy was
    /// conditional on the source's etag, so it is also the copy's size.
    pub size: u64,
    /// The destination's etag as S3 returns it (quotes included). A part-by-part copy
    /// has a multipart etag, which differs from the source's single-request one.
    pub etag: Option<String>,
    /// The source's etag every request of the copy was conditional on: the version
    /// copied. `None` when the source had none to give (the copy was unconditional).
    pub source_etag: Option<String>,
}

/// One `UploadPartCopy` range: bytes `first..=last` of the source.
#[derive(Clone, Copy, Debug)]
struct PartRange {
    number: i32,
    first: u64,
    last: u64,
}

impl S3Dataset {
    /// Has the service copy object `key` of `source` to the same key in this dataset,
    /// with its content type and user metadata. Only meaningful when
    /// [`can_copy_from`](Self::can_copy_from) holds: the request is signed with this
    /// dataset's credentials, which must be able to read the source.
    ///
    /// `listed` is the object's size and, where the listing had one, its etag. A source
    /// that changes during the copy fails it with a temporary error (S3's 412 on the
    /// etag condition), so a retry copies the new version whole. A part-by-part copy
    /// that fails is aborted, so no parts linger (best effort).
    pub async fn copy_from(
        &self,
        source: &S3Dataset,
        key: &str,
        listed: Option<(u64, Option<&str>)>,
        options: &ServerCopyOptions,
    ) -> Result<ServerCopied, ObjectError> {
        let limit = options.single_copy_limit.min(SINGLE_COPY_LIMIT);
        // The listing's size is all a single copy needs: the service carries the
        // metadata over, and one CopyObject copies one version whole, so no HEAD and
        // one request per object. With the listed etag as its condition, a source
        // changed since the listing fails the copy and the retry takes the new version;
        // a listing without etags (some S3-compatible services) leaves the copy
        // unconditional, and verification compares the size copied with the listing's.
        if let Some((size, etag)) = listed.filter(|(size, _)| *size <= limit) {
            let source_etag = etag.map(str::to_owned);
            let etag = self.copy_whole(source, key, size, etag, options).await?;
            tracing::debug!(key, from = %source.url(key), to = %self.url(key), size, "copied server-side");
            return Ok(ServerCopied {
                size,
                etag,
                source_etag,
            });
        }
        let head = source.head_object(key).await?;
        let size = content_length(source, key, &head)?;
        let (etag, parts) = if size <= limit {
            let etag = self
                .copy_whole(source, key, size, head.e_tag(), options)
                .await?;
            (etag, 1)
        } else {
            self.copy_in_parts(source, key, size, &head, options)
                .await?
        };
        tracing::debug!(
            key,
            from = %source.url(key),
            to = %self.url(key),
            size,
            parts,
            "copied server-side"
        );
        Ok(ServerCopied {
            size,
            etag,
            source_etag: head.e_tag().map(str::to_owned),
        })
    }

    /// The `x-amz-copy-source` value naming object `key` of this dataset.
    fn copy_source(&self, key: &str) -> String {
        format!("{}/{}", self.bucket, encode_copy_key(&self.object_key(key)))
    }

    /// One `CopyObject` of `size` bytes; returns the destination's etag.
    async fn copy_whole(
        &self,
        source: &S3Dataset,
        key: &str,
        size: u64,
        source_etag: Option<&str>,
        options: &ServerCopyOptions,
    ) -> Result<Option<String>, ObjectError> {
        let sent = self
            .client
            .copy_object()
            .bucket(&self.bucket)
            .key(self.object_key(key))
            .copy_source(source.copy_source(key))
            .set_copy_source_if_match(source_etag.map(str::to_owned))
            .metadata_directive(MetadataDirective::Copy)
            .set_storage_class(options.storage_class.as_deref().map(StorageClass::from))
            .send()
            .await;
        match sent {
            Ok(out) => Ok(out
                .copy_object_result()
                .and_then(|r| r.e_tag())
                .map(str::to_owned)),
            Err(e) if unreadable_success(&e) => {
                self.confirm_written(key, Operation::Copy, size, e).await
            }
            Err(e) => Err(self.copy_failure(source, key, e)),
        }
    }

    /// A multipart upload filled with `UploadPartCopy`; returns the destination's etag
    /// and the number of parts. Aborts the upload when any step fails.
    async fn copy_in_parts(
        &self,
        source: &S3Dataset,
        key: &str,
        size: u64,
        head: &HeadObjectOutput,
        options: &ServerCopyOptions,
    ) -> Result<(Option<String>, usize), ObjectError> {
        let ranges = part_ranges(size, options.part_size).ok_or_else(|| {
            ObjectError::new(
                &self.url(key),
                key,
                Operation::Copy,
                ErrorKind::Invalid,
                "TooLarge",
                format!("{size} bytes need more than {MAX_PARTS} parts of {MAX_PART_SIZE} bytes"),
            )
        })?;
        let upload_id = self.create_copy_upload(source, key, head, options).await?;
        let copied = match self
            .copy_parts(source, key, head, &upload_id, &ranges, options.concurrency)
            .await
        {
            Ok(parts) => {
                self.complete_copy_upload(source, key, size, &upload_id, parts)
                    .await
            }
            Err(e) => Err(e),
        };
        if copied.is_err() {
            self.abort_copy_upload(key, &upload_id).await;
        }
        Ok((copied?, ranges.len()))
    }

    /// Starts the destination's multipart upload with the source's content headers and
    /// user metadata, which a part copy does not carry; returns the upload id.
    async fn create_copy_upload(
        &self,
        source: &S3Dataset,
        key: &str,
        head: &HeadObjectOutput,
        options: &ServerCopyOptions,
    ) -> Result<String, ObjectError> {
        let out = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(self.object_key(key))
            .set_content_type(head.content_type().map(str::to_owned))
            .set_content_encoding(head.content_encoding().map(str::to_owned))
            .set_content_disposition(head.content_disposition().map(str::to_owned))
            .set_content_language(head.content_language().map(str::to_owned))
            .set_cache_control(head.cache_control().map(str::to_owned))
            .set_metadata(head.metadata().cloned())
            .set_storage_class(options.storage_class.as_deref().map(StorageClass::from))
            .send()
            .await
            .map_err(|e| self.copy_failure(source, key, e))?;
        out.upload_id().map(str::to_owned).ok_or_else(|| {
            ObjectError::new(
                &self.url(key),
                key,
                Operation::Copy,
                ErrorKind::Temporary,
                "NoUploadId",
                "the multipart upload was created without an upload id",
            )
        })
    }

    /// Copies every range, `concurrency` at a time, stopping at the first failure;
    /// returns the parts in order, as completing the upload requires.
    async fn copy_parts(
        &self,
        source: &S3Dataset,
        key: &str,
        head: &HeadObjectOutput,
        upload_id: &str,
        ranges: &[PartRange],
        concurrency: usize,
    ) -> Result<Vec<CompletedPart>, ObjectError> {
        let etag = head.e_tag();
        let mut parts: Vec<CompletedPart> = stream::iter(ranges.iter().copied())
            .map(|range| self.copy_part(source, key, etag, upload_id, range))
            .buffer_unordered(concurrency.max(1))
            .try_collect()
            .await?;
        parts.sort_by_key(|p| p.part_number());
        Ok(parts)
    }

    async fn copy_part(
        &self,
        source: &S3Dataset,
        key: &str,
        source_etag: Option<&str>,
        upload_id: &str,
        range: PartRange,
    ) -> Result<CompletedPart, ObjectError> {
        let sent = self
            .client
            .upload_part_copy()
            .bucket(&self.bucket)
            .key(self.object_key(key))
            .upload_id(upload_id)
            .part_number(range.number)
            .copy_source(source.copy_source(key))
            .copy_source_range(format!("bytes={}-{}", range.first, range.last))
            .set_copy_source_if_match(source_etag.map(str::to_owned))
            .send()
            .await;
        let etag = match sent {
            Ok(out) => out
                .copy_part_result()
                .and_then(|r| r.e_tag())
                .map(str::to_owned),
            Err(e) if unreadable_success(&e) => self.confirm_part(key, upload_id, range, e).await?,
            Err(e) => return Err(self.copy_failure(source, key, e)),
        };
        Ok(CompletedPart::builder()
            .part_number(range.number)
            .set_e_tag(etag)
            .build())
    }

    /// An `UploadPartCopy` answered 200 with a body the SDK could not read: the
    /// upload's part list says whether the part is there, with its size, and gives its
    /// etag where the service lists one (AWS does; s3s-fs does not, and completes an
    /// upload without them).
    async fn confirm_part<E>(
        &self,
        key: &str,
        upload_id: &str,
        range: PartRange,
        err: SdkError<E, HttpResponse>,
    ) -> Result<Option<String>, ObjectError>
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let size = range.last - range.first + 1;
        let mut marker: Option<String> = None;
        loop {
            let listed = self
                .client
                .list_parts()
                .bucket(&self.bucket)
                .key(self.object_key(key))
                .upload_id(upload_id)
                .set_part_number_marker(marker.take())
                .send()
                .await
                .map_err(|e| sdk_failure(self, key, Operation::Copy, e))?;
            let part = listed.parts().iter().find(|p| {
                p.part_number() == Some(range.number)
                    && p.size().and_then(|s| u64::try_from(s).ok()) == Some(size)
            });
            if let Some(part) = part {
                tracing::info!(key, part = range.number, "the service's answer to a part copy was unreadable; its part list shows the part");
                return Ok(part.e_tag().map(str::to_owned));
            }
            match listed.next_part_number_marker() {
                Some(next) if listed.is_truncated() == Some(true) => marker = Some(next.to_owned()),
                _ => return Err(sdk_failure(self, key, Operation::Copy, err)),
            }
        }
    }

    async fn complete_copy_upload(
        &self,
        source: &S3Dataset,
        key: &str,
        size: u64,
        upload_id: &str,
        parts: Vec<CompletedPart>,
    ) -> Result<Option<String>, ObjectError> {
        let sent = self
            .client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(self.object_key(key))
            .upload_id(upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await;
        match sent {
            Ok(out) => Ok(out.e_tag().map(str::to_owned)),
            Err(e) if unreadable_success(&e) => {
                self.confirm_written(key, Operation::Copy, size, e).await
            }
            Err(e) => Err(self.copy_failure(source, key, e)),
        }
    }

    /// Best effort: the copy has already failed and that error is the one to report.
    /// An upload left behind costs storage until a lifecycle rule removes it, so it is
    /// logged with its id.
    async fn abort_copy_upload(&self, key: &str, upload_id: &str) {
        if let Err(failure) = self.abort_upload(key, upload_id).await {
            tracing::warn!(
                key,
                upload_id,
                error = %failure,
                "failed multipart copy not aborted: its parts remain until a lifecycle rule"
            );
        }
    }

    /// A failed copy request, naming the source too. Every copy request carries the
    /// source's etag as its only condition, so a 412 means the source changed after
    /// the HEAD: temporary, since copying again takes the new version.
    fn copy_failure<E>(
        &self,
        source: &S3Dataset,
        key: &str,
        err: SdkError<E, HttpResponse>,
    ) -> ObjectError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let precondition =
            matches!(&err, SdkError::ServiceError(s) if s.raw().status().as_u16() == 412);
        let mut failure = sdk_failure(self, key, Operation::Copy, err);
        let from = source.url(key);
        if precondition {
            failure.kind = ErrorKind::Temporary;
            failure.message = format!("{}: source {from} changed during the copy", failure.message);
        } else {
            failure.message = format!("{} (from {from})", failure.message);
        }
        failure
    }
}

/// The ranges of a part-by-part copy of `size` bytes (at least one byte) in parts of
/// about `requested` bytes, within S3's part bounds; `None` when the object needs more
/// than 10,000 parts of the largest size.
fn part_ranges(size: u64, requested: u64) -> Option<Vec<PartRange>> {
    let part_size = requested
        .clamp(MIN_PART_SIZE, MAX_PART_SIZE)
        .max(size.div_ceil(MAX_PARTS));
    if part_size > MAX_PART_SIZE {
        return None;
    }
    let ranges = (0..size.div_ceil(part_size))
        .map(|i| PartRange {
            // At most MAX_PARTS, so the part number fits.
            number: i32::try_from(i + 1).unwrap_or(i32::MAX),
            first: i * part_size,
            last: ((i + 1) * part_size).min(size) - 1,
        })
        .collect();
    Some(ranges)
}

/// `key` percent-encoded for `x-amz-copy-source`, which S3 URL-decodes: every byte but
/// the unreserved characters and `/` is escaped, so spaces, `+`, `%`, `?` (which would
/// start a version id) and non-ASCII keys survive the round trip.
fn encode_copy_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for byte in key.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(char::from(byte));
        } else {
            // Writing to a String cannot fail.
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

#[cfg(test)]
mod server_copy_tests {
    use super::*;

    #[test]
    fn copy_source_keeps_slashes_and_escapes_the_rest() {
        assert_eq!(
            encode_copy_key("a b/naïve+1?x=%.txt"),
            "a%20b/na%C3%AFve%2B1%3Fx%3D%25.txt"
        );
    }

    #[test]
    fn part_ranges_cover_the_object_within_s3_bounds() {
        let ranges = part_ranges(12 << 20, 1).unwrap_or_default();
        let bounds: Vec<_> = ranges.iter().map(|r| (r.number, r.first, r.last)).collect();
        assert_eq!(
            bounds,
            [
                (1, 0, (5 << 20) - 1),
                (2, 5 << 20, (10 << 20) - 1),
                (3, 10 << 20, (12 << 20) - 1)
            ]
        );
        // 10,000 parts at most: a 100 GiB object gets parts above 5 MiB.
        assert_eq!(
            part_ranges(100 << 30, MIN_PART_SIZE).map(|r| r.len()),
            Some(10_000)
        );
        assert!(part_ranges(MAX_PARTS * MAX_PART_SIZE + 1, MIN_PART_SIZE).is_none());
    }
}
