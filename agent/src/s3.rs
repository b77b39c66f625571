//! Native S3 access through `aws-sdk-s3`, for what OpenDAL does not expose: copies the
//! service makes itself (server-side copy) and multipart uploads whose id and parts
//! outlive the process that started them.
//!
//! Like [`crate::storage::operator`], nothing is read from the environment: the client
//! is exactly what the site's settings say.

use std::time::SystemTime;

use aws_sdk_s3::{
    config::{
        http::HttpResponse, BehaviorVersion, Credentials, Region, RequestChecksumCalculation,
        ResponseChecksumValidation,
    },
    error::{DisplayErrorContext, ProvideErrorMetadata, SdkError},
};
use opendal::ErrorKind;

use crate::{
    storage::{self, Scheme, SiteAccess, SiteUri, StorageError},
    transfer::TransferError,
};

/// One dataset on an S3 site, reached with `aws-sdk-s3`.
#[derive(Clone, Debug)]
pub struct S3Dataset {
    pub client: aws_sdk_s3::Client,
    pub bucket: String,
    /// The key prefix of the dataset inside the bucket: empty, or ending in `/`. An
    /// object key relative to the dataset becomes `format!("{prefix}{key}")`.
    pub prefix: String,
    /// The storage class objects written here get (the site's, or the plan's); `None`
    /// is the bucket's default.
    pub storage_class: Option<String>,
    /// Who answers and who signs: two datasets with equal services can copy between
    /// each other server-side.
    service: Service,
}

/// The endpoint, region and credentials of a site, compared to decide whether one
/// request can copy between two sites.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Service {
    endpoint: Option<String>,
    region: String,
    access_key_id: Option<String>,
    /// Kept as an xxh3 so that the secret does not sit in a second place in memory
    /// longer than the client that uses it, yet two sites can still be compared.
    secret_fingerprint: Option<u64>,
}

impl S3Dataset {
    /// The dataset of `site` on S3, or `None` for another kind of site. Fails on the
    /// same settings [`storage::operator`] refuses.
    pub fn for_site(site: &SiteAccess) -> Result<Option<S3Dataset>, StorageError> {
        let uri = SiteUri::parse(&site.uri)?;
        if uri.scheme != Scheme::S3 {
            return Ok(None);
        }
        // The operator checks every setting; building it first keeps one set of rules.
        storage::operator(site)?;
        let dataset = storage::dataset_path(site)?;
        let root = storage::join_root(&uri.prefix, &dataset);
        let prefix = root.trim_start_matches('/').to_owned();
        let region = storage::option(site, "region")
            .unwrap_or("us-east-1")
            .to_owned();
        let endpoint = storage::option(site, "endpoint").map(str::to_owned);
        let access_key_id = storage::credential(site, "access_key_id");
        let secret = storage::credential(site, "secret_access_key");
        let mut config = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(region.clone()))
            .force_path_style(storage::parse_bool(site, "force_path_style", true)?)
            // Every byte is hashed with xxh3 already and verified end to end; a CRC of
            // every part on top costs CPU the transfer needs (S3 checks Content-MD5 or
            // the signature's payload hash where it requires one).
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
        if let Some(endpoint) = &endpoint {
            config = config.endpoint_url(endpoint);
        }
        if let (Some(ak), Some(sk)) = (access_key_id, secret) {
            let token = storage::credential(site, "session_token").map(str::to_owned);
            config =
                config.credentials_provider(Credentials::new(ak, sk, token, None, "ferry-site"));
        }
        Ok(Some(S3Dataset {
            client: aws_sdk_s3::Client::from_conf(config.build()),
            bucket: uri.location,
            prefix,
            storage_class: storage::option(site, "storage_class").map(str::to_owned),
            service: Service {
                endpoint,
                region,
                access_key_id: access_key_id.map(str::to_owned),
                secret_fingerprint: secret.map(|s| xxhash_rust::xxh3::xxh3_64(s.as_bytes())),
            },
        }))
    }

    /// The full object key of `key`, a key relative to the dataset.
    pub fn object_key(&self, key: &str) -> String {
        format!("{}{}", self.prefix, key.trim_start_matches('/'))
    }

    /// Whether the service can copy from `source` into this dataset by itself: same
    /// endpoint, region and credentials.
    pub fn can_copy_from(&self, source: &S3Dataset) -> bool {
        self.service == source.service && self.service.access_key_id.is_some()
    }
}

/// A failed `aws-sdk-s3` call on `key` (relative to `dataset`), classified like the
/// OpenDAL errors in [`crate::transfer`]: timeouts, dispatch failures, 5xx and
/// throttling are temporary; 403, 404 and other 4xx are not.
pub(crate) fn sdk_failure<E>(
    dataset: &S3Dataset,
    key: &str,
    operation: &'static str,
    err: SdkError<E, HttpResponse>,
) -> TransferError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let url = format!("s3://{}/{}", dataset.bucket, dataset.object_key(key));
    let verb = match operation {
        "read" => "reading",
        "write" => "writing",
        "stat" => "stat",
        "delete" => "deleting",
        "copy" => "copying server-side to",
        _ => "accessing",
    };
    let (kind, temporary, detail) = match &err {
        SdkError::ServiceError(service) => {
            let status = service.raw().status().as_u16();
            let e = service.err();
            let code = e.code().unwrap_or("");
            let text = match (e.code(), e.message()) {
                (Some(c), Some(m)) => format!("{c}: {m}"),
                (Some(c), None) => c.to_owned(),
                (None, Some(m)) => m.to_owned(),
                (None, None) => format!("HTTP {status}"),
            };
            let throttled = matches!(code, "SlowDown" | "Throttling" | "ThrottlingException")
                || status == 429
                || status == 503;
            let kind = match status {
                404 => ErrorKind::NotFound,
                403 => ErrorKind::PermissionDenied,
                412 => ErrorKind::ConditionNotMatch,
                _ if throttled => ErrorKind::RateLimited,
                _ => ErrorKind::Unexpected,
            };
            let temporary =
                throttled || status >= 500 || matches!(code, "RequestTimeout" | "InternalError");
            (kind, temporary, format!("HTTP {status}: {text}"))
        }
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => (
            ErrorKind::Unexpected,
            true,
            DisplayErrorContext(&err).to_string(),
        ),
        _ => (
            ErrorKind::Unexpected,
            false,
            DisplayErrorContext(&err).to_string(),
        ),
    };
    TransferError {
        key: key.to_owned(),
        operation,
        kind,
        message: format!("{verb} {url}: {detail}"),
        temporary,
    }
}
// Server-side copy: the service moves the bytes itself, so none cross the agent.

use std::fmt::Write as _;

use aws_sdk_s3::{
    operation::head_object::HeadObjectOutput,
    types::{CompletedMultipartUpload, CompletedPart, MetadataDirective, StorageClass},
};
use futures::{stream, StreamExt, TryStreamExt};

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
    ) -> Result<ServerCopied, TransferError> {
        let limit = options.single_copy_limit.min(SINGLE_COPY_LIMIT);
        // The listing's size is all a single copy needs: the service carries the
        // metadata over, and one CopyObject copies one version whole, so no HEAD and
        // one request per object. With the listed etag as its condition, a source
        // changed since the listing fails the copy and the retry takes the new version;
        // a listing without etags (some S3-compatible services) leaves the copy
        // unconditional, and verification compares the size copied with the listing's.
        if let Some((size, etag)) = listed.filter(|(size, _)| *size <= limit) {
            let etag = self.copy_whole(source, key, etag, options).await?;
            tracing::debug!(key, from = %source.url(key), to = %self.url(key), size, "copied server-side");
            return Ok(ServerCopied { size, etag });
        }
        let head = source.head_object(key).await?;
        let size = content_length(source, key, &head)?;
        let single = size <= limit;
        let (etag, parts) = if single {
            (
                self.copy_whole(source, key, head.e_tag(), options).await?,
                1,
            )
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
        Ok(ServerCopied { size, etag })
    }

    /// Size and etag of object `key`, for a quick check of a server-side copy.
    pub async fn head(&self, key: &str) -> Result<(u64, Option<String>), TransferError> {
        let head = self.head_object(key).await?;
        let size = content_length(self, key, &head)?;
        Ok((size, head.e_tag().map(str::to_owned)))
    }

    async fn head_object(&self, key: &str) -> Result<HeadObjectOutput, TransferError> {
        self.client
            .head_object()
            .bucket(&self.bucket)
            .key(self.object_key(key))
            .send()
            .await
            .map_err(|e| sdk_failure(self, key, "stat", e))
    }

    fn url(&self, key: &str) -> String {
        format!("s3://{}/{}", self.bucket, self.object_key(key))
    }

    /// The `x-amz-copy-source` value naming object `key` of this dataset.
    fn copy_source(&self, key: &str) -> String {
        format!("{}/{}", self.bucket, encode_copy_key(&self.object_key(key)))
    }

    /// One `CopyObject`; returns the destination's etag.
    async fn copy_whole(
        &self,
        source: &S3Dataset,
        key: &str,
        source_etag: Option<&str>,
        options: &ServerCopyOptions,
    ) -> Result<Option<String>, TransferError> {
        let out = self
            .client
            .copy_object()
            .bucket(&self.bucket)
            .key(self.object_key(key))
            .copy_source(source.copy_source(key))
            .set_copy_source_if_match(source_etag.map(str::to_owned))
            .metadata_directive(MetadataDirective::Copy)
            .set_storage_class(options.storage_class.as_deref().map(StorageClass::from))
            .send()
            .await
            .map_err(|e| self.copy_failure(source, key, e))?;
        Ok(out
            .copy_object_result()
            .and_then(|r| r.e_tag())
            .map(str::to_owned))
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
    ) -> Result<(Option<String>, usize), TransferError> {
        let ranges = part_ranges(size, options.part_size).ok_or_else(|| TransferError {
            key: key.to_owned(),
            operation: "copy",
            kind: ErrorKind::Unsupported,
            message: format!(
                "copying server-side to {}: {size} bytes need more than {MAX_PARTS} parts \
                 of {MAX_PART_SIZE} bytes",
                self.url(key)
            ),
            temporary: false,
        })?;
        let upload_id = self.create_copy_upload(source, key, head, options).await?;
        let copied = match self
            .copy_parts(source, key, head, &upload_id, &ranges, options.concurrency)
            .await
        {
            Ok(parts) => {
                self.complete_copy_upload(source, key, &upload_id, parts)
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
    ) -> Result<String, TransferError> {
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
        out.upload_id()
            .map(str::to_owned)
            .ok_or_else(|| TransferError {
                key: key.to_owned(),
                operation: "copy",
                kind: ErrorKind::Unexpected,
                message: format!(
                "copying server-side to {}: the multipart upload was created without an upload id",
                self.url(key)
            ),
                temporary: true,
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
    ) -> Result<Vec<CompletedPart>, TransferError> {
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
    ) -> Result<CompletedPart, TransferError> {
        let out = self
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
            .await
            .map_err(|e| self.copy_failure(source, key, e))?;
        let etag = out.copy_part_result().and_then(|r| r.e_tag());
        Ok(CompletedPart::builder()
            .part_number(range.number)
            .set_e_tag(etag.map(str::to_owned))
            .build())
    }

    async fn complete_copy_upload(
        &self,
        source: &S3Dataset,
        key: &str,
        upload_id: &str,
        parts: Vec<CompletedPart>,
    ) -> Result<Option<String>, TransferError> {
        let out = self
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
            .await
            .map_err(|e| self.copy_failure(source, key, e))?;
        Ok(out.e_tag().map(str::to_owned))
    }

    /// Aborts the multipart upload `upload_id` of `key`, freeing its parts.
    pub async fn abort_upload(&self, key: &str, upload_id: &str) -> Result<(), TransferError> {
        self.client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(self.object_key(key))
            .upload_id(upload_id)
            .send()
            .await
            .map_err(|e| sdk_failure(self, key, "write", e))?;
        Ok(())
    }

    /// Aborts the multipart uploads of `key` in progress here that began before
    /// `before`. Those are uploads an agent created and was
    /// killed before it could journal: nobody else knows their ids, so nobody would
    /// ever complete or abort them. Uploads begun after `before` are left alone: they
    /// belong to whoever else runs the same task right now. Best effort: a service
    /// that cannot list uploads (s3s-fs, some S3 lookalikes) leaves them to the bucket's
    /// lifecycle rules.
    pub async fn abort_unjournalled_uploads(&self, key: &str, before: SystemTime) {
        let object_key = self.object_key(key);
        let listed = self
            .client
            .list_multipart_uploads()
            .bucket(&self.bucket)
            .prefix(&object_key)
            .send()
            .await;
        let uploads = match listed {
            Ok(listed) => listed.uploads.unwrap_or_default(),
            Err(e) => {
                tracing::debug!(key, error = %DisplayErrorContext(&e), "multipart uploads not listed");
                return;
            }
        };
        for upload in uploads {
            let began_before = upload
                .initiated
                .and_then(|at| SystemTime::try_from(at).ok())
                .is_some_and(|at| at < before);
            let (Some(upload_id), true) = (upload.upload_id, began_before) else {
                continue;
            };
            if upload.key.as_deref() != Some(object_key.as_str()) {
                continue;
            }
            match self.abort_upload(key, &upload_id).await {
                Ok(()) => tracing::info!(key, upload_id, "unjournalled multipart upload aborted"),
                Err(e) => {
                    tracing::warn!(key, upload_id, error = %e, "aborting an unjournalled multipart upload failed")
                }
            }
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
    ) -> TransferError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let mut failure = sdk_failure(self, key, "copy", err);
        let from = source.url(key);
        if failure.kind == ErrorKind::ConditionNotMatch {
            failure.temporary = true;
            failure.message = format!("{}: source {from} changed during the copy", failure.message);
        } else {
            failure.message = format!("{} (from {from})", failure.message);
        }
        failure
    }
}

/// The size S3 reported for object `key` of `dataset`.
fn content_length(
    dataset: &S3Dataset,
    key: &str,
    head: &HeadObjectOutput,
) -> Result<u64, TransferError> {
    head.content_length()
        .and_then(|n| u64::try_from(n).ok())
        .ok_or_else(|| TransferError {
            key: key.to_owned(),
            operation: "stat",
            kind: ErrorKind::Unexpected,
            message: format!(
                "stat {}: the response has no valid content length",
                dataset.url(key)
            ),
            temporary: false,
        })
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
