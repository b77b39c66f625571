//! Native S3 access through `aws-sdk-s3`, for what OpenDAL does not expose: copies the
//! service makes itself (server-side copy), multipart uploads whose id and parts
//! outlive the process that started them, and objects streamed in one request.
//!
//! The client is built from the site's checked settings ([`ferry_storage::S3Site`]),
//! so, like the store's operator, nothing is read from the environment.
//!
//! S3-compatible services differ from AWS in small ways; what rclone and boto3 accept,
//! Ferry accepts, and success is judged by what the bucket holds: a 200 answer whose
//! body the SDK cannot read (another root element than AWS's, say) is confirmed with a
//! HEAD of the object ([`S3Dataset::confirm_written`]).

mod multipart;
mod put;
mod server_copy;

use std::time::SystemTime;

use aws_sdk_s3::{
    config::{
        http::HttpResponse, BehaviorVersion, Credentials, Region, RequestChecksumCalculation,
        ResponseChecksumValidation,
    },
    error::{DisplayErrorContext, ProvideErrorMetadata, SdkError},
    operation::head_object::HeadObjectOutput,
};
use ferry_storage::{classify_s3, Backend, ErrorKind, ObjectError, Operation, Store};
use secrecy::ExposeSecret;

pub use self::{
    multipart::upload_resumable,
    put::{put_streamed, PutFailure, FOOTPRINT as STREAMED_FOOTPRINT},
    server_copy::{ServerCopied, ServerCopyOptions, SINGLE_COPY_LIMIT},
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
    /// The dataset of `store` on S3, or `None` for another kind of store.
    pub fn for_store(store: &Store) -> Option<S3Dataset> {
        let Backend::S3(site) = store.backend() else {
            return None;
        };
        let mut config = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(site.region.clone()))
            .force_path_style(site.path_style)
            // Every byte is hashed with xxh3 already and verified end to end; a CRC of
            // every part on top costs CPU the transfer needs (S3 checks Content-MD5 or
            // the signature's payload hash where it requires one).
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
        if let Some(endpoint) = &site.endpoint {
            config = config.endpoint_url(endpoint);
        }
        if let Some(keys) = &site.keys {
            let token = keys
                .session_token
                .as_ref()
                .map(|t| t.expose_secret().to_owned());
            config = config.credentials_provider(Credentials::new(
                &keys.access_key_id,
                keys.secret_access_key.expose_secret(),
                token,
                None,
                "ferry-site",
            ));
        }
        Some(S3Dataset {
            client: aws_sdk_s3::Client::from_conf(config.build()),
            bucket: site.bucket.clone(),
            prefix: store.key_prefix(),
            storage_class: store.storage_class().map(str::to_owned),
            service: Service {
                endpoint: site.endpoint.clone(),
                region: site.region.clone(),
                access_key_id: site.keys.as_ref().map(|k| k.access_key_id.clone()),
                secret_fingerprint: site.keys.as_ref().map(|k| {
                    xxhash_rust::xxh3::xxh3_64(k.secret_access_key.expose_secret().as_bytes())
                }),
            },
        })
    }

    /// The full object key of `key`, a key relative to the dataset.
    pub fn object_key(&self, key: &str) -> String {
        format!("{}{}", self.prefix, key.trim_start_matches('/'))
    }

    /// The printable location of `key`: `s3://bucket/prefix/key`.
    pub fn url(&self, key: &str) -> String {
        format!("s3://{}/{}", self.bucket, self.object_key(key))
    }

    /// Whether the service can copy from `source` into this dataset by itself: same
    /// endpoint, region and credentials.
    pub fn can_copy_from(&self, source: &S3Dataset) -> bool {
        self.service == source.service && self.service.access_key_id.is_some()
    }

    /// Size and etag of object `key`.
    pub async fn head(&self, key: &str) -> Result<(u64, Option<String>), ObjectError> {
        let head = self.head_object(key).await?;
        let size = content_length(self, key, &head)?;
        Ok((size, head.e_tag().map(str::to_owned)))
    }

    async fn head_object(&self, key: &str) -> Result<HeadObjectOutput, ObjectError> {
        self.client
            .head_object()
            .bucket(&self.bucket)
            .key(self.object_key(key))
            .send()
            .await
            .map_err(|e| sdk_failure(self, key, Operation::Stat, e))
    }

    /// A request that writes `key` (CompleteMultipartUpload, CopyObject) failed with
    /// `err`: when the service answered 200 with a body the SDK could not read, the
    /// write may well have taken effect, as rclone and boto3 assume. A HEAD decides: an
    /// object of `size` bytes there is the write (its etag is returned), anything else
    /// is the failure `err` describes. A 200 that carried an `<Error>` document, or any
    /// other failure, is returned as it is.
    pub async fn confirm_written<E>(
        &self,
        key: &str,
        operation: Operation,
        size: u64,
        err: SdkError<E, HttpResponse>,
    ) -> Result<Option<String>, ObjectError>
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        if !unreadable_success(&err) {
            return Err(sdk_failure(self, key, operation, err));
        }
        let unreadable = DisplayErrorContext(&err).to_string();
        match self.head(key).await {
            Ok((found, etag)) if found == size => {
                tracing::info!(
                    key,
                    size,
                    answer = %unreadable,
                    "the service's answer was unreadable; a HEAD shows the object written"
                );
                Ok(etag)
            }
            Ok((found, _)) => Err(ObjectError::new(
                &self.url(key),
                key,
                operation,
                ErrorKind::Temporary,
                "UnreadableAnswer",
                format!(
                    "the service answered 200 with a body that could not be read ({unreadable}), \
                     and the object holds {found} bytes, not {size}"
                ),
            )),
            Err(head) => Err(ObjectError {
                message: format!(
                    "{}; after a 200 answer that could not be read ({unreadable})",
                    head.message
                ),
                operation,
                ..head
            }),
        }
    }
}

/// Whether `err` is a 200 answer whose body the SDK could not read, as opposed to an
/// error the service reported (which has a code, and is not 200, whatever the wire
/// said: the SDK turns an `<Error>` document in a 200 answer into a service error).
fn unreadable_success<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> bool {
    match err {
        SdkError::ServiceError(service) => {
            service.raw().status().is_success() && service.err().code().is_none()
        }
        SdkError::ResponseError(response) => response.raw().status().is_success(),
        _ => false,
    }
}

/// A failed `aws-sdk-s3` call on `key` (relative to `dataset`), classified like the
/// store's errors: timeouts, dispatch failures, 5xx and throttling are temporary; 403
/// is permission denied, 404 not found, other 4xx invalid.
pub(crate) fn sdk_failure<E>(
    dataset: &S3Dataset,
    key: &str,
    operation: Operation,
    err: SdkError<E, HttpResponse>,
) -> ObjectError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let (kind, cause, detail) = match &err {
        SdkError::ServiceError(service) => {
            let status = service.raw().status().as_u16();
            let e = service.err();
            let text = match (e.code(), e.message()) {
                (Some(c), Some(m)) => format!("{c}: {m}"),
                (Some(c), None) => c.to_owned(),
                (None, Some(m)) => m.to_owned(),
                (None, None) => DisplayErrorContext(&err).to_string(),
            };
            let cause = e
                .code()
                .map_or_else(|| format!("HTTP {status}"), str::to_owned);
            (
                classify_s3(status, e.code()),
                cause,
                format!("HTTP {status}: {text}"),
            )
        }
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => (
            ErrorKind::Temporary,
            "Transport".to_owned(),
            DisplayErrorContext(&err).to_string(),
        ),
        _ => (
            ErrorKind::Other,
            "Request".to_owned(),
            DisplayErrorContext(&err).to_string(),
        ),
    };
    ObjectError::new(&dataset.url(key), key, operation, kind, cause, detail)
}

/// The size S3 reported for object `key` of `dataset`.
fn content_length(
    dataset: &S3Dataset,
    key: &str,
    head: &HeadObjectOutput,
) -> Result<u64, ObjectError> {
    head.content_length()
        .and_then(|n| u64::try_from(n).ok())
        .ok_or_else(|| {
            ObjectError::new(
                &dataset.url(key),
                key,
                Operation::Stat,
                ErrorKind::Other,
                "NoContentLength",
                "the response has no valid content length",
            )
        })
}

impl S3Dataset {
    /// Aborts the multipart upload `upload_id` of `key`, freeing its parts.
    pub async fn abort_upload(&self, key: &str, upload_id: &str) -> Result<(), ObjectError> {
        self.client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(self.object_key(key))
            .upload_id(upload_id)
            .send()
            .await
            .map_err(|e| sdk_failure(self, key, Operation::Write, e))?;
        Ok(())
    }

    /// Aborts the multipart uploads of `key` in progress here that began before
    /// `before`. Those are uploads an agent created and was killed before it could
    /// journal: nobody else knows their ids, so nobody would ever complete or abort
    /// them. Uploads begun after `before` are left alone: they belong to whoever else
    /// runs the same task right now. Best effort: a service that cannot list uploads
    /// (s3s-fs, some S3 lookalikes) leaves them to the bucket's lifecycle rules.
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
}
