//! Google Cloud Storage resumable uploads (the JSON API's `uploadType=resumable`), the
//! way GCS itself takes large objects: one session per object, filled in order, chunk
//! by chunk. Real GCS and the emulators implement it, where OpenDAL's GCS writer sends
//! objects above one chunk as XML-API multipart uploads, which the emulators lack.
//!
//! A session outlives the process that started it (a week on GCS): whoever knows its
//! URI can ask how much of the object the service holds and send the rest, which is
//! what lets an agent's copy resume after a crash. The session URI is itself the
//! authorisation to write that one object, so it is kept like an upload id: journalled
//! with the job, never logged.

use std::{collections::BTreeMap, time::Duration};

use bytes::Bytes;
use reqsign_core::{Context, Signer};
use reqsign_google::{Credential, RequestSigner, StaticCredentialProvider};
use secrecy::ExposeSecret;

use crate::{
    error::{ErrorKind, ObjectError, Operation},
    settings::{GcsSite, DEFAULT_GCS_ENDPOINT},
};

/// Every chunk of a session but the last is a multiple of this many bytes.
pub const CHUNK_ALIGN: u64 = 256 * 1024;
/// The OAuth scope Ferry asks for: read and write objects.
const SCOPE: &str = "https://www.googleapis.com/auth/devstorage.read_write";

/// What a session holds after a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Progress {
    /// The service holds the object's first `persisted` bytes and waits for the rest.
    Incomplete { persisted: u64 },
    /// The object is stored.
    Complete(Completed),
}

/// A stored object, as the service describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Completed {
    pub size: u64,
    pub etag: Option<String>,
    pub generation: Option<String>,
}

/// The resumable uploads of one dataset on a GCS site.
#[derive(Clone)]
pub struct GcsUploads {
    http: reqwest::Client,
    endpoint: String,
    bucket: String,
    /// The dataset's key prefix in the bucket: empty or ending in `/`.
    prefix: String,
    storage_class: Option<String>,
    signer: Option<Signer<Credential>>,
}

impl std::fmt::Debug for GcsUploads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GcsUploads")
            .field("endpoint", &self.endpoint)
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// Sends the token exchange of a service-account key through the uploads' client.
#[derive(Debug)]
struct ReqwestSend(reqwest::Client);

impl reqsign_core::HttpSend for ReqwestSend {
    async fn http_send(
        &self,
        req: http::Request<Bytes>,
    ) -> reqsign_core::Result<http::Response<Bytes>> {
        let failed = |what: &str, e: reqwest::Error| {
            reqsign_core::Error::unexpected(format!("{what} the token request")).with_source(e)
        };
        let req = reqwest::Request::try_from(req).map_err(|e| failed("building", e))?;
        let resp = self
            .0
            .execute(req)
            .await
            .map_err(|e| failed("sending", e))?;
        let mut answer = http::Response::builder().status(resp.status());
        for (name, value) in resp.headers() {
            answer = answer.header(name, value);
        }
        let body = resp.bytes().await.map_err(|e| failed("reading", e))?;
        answer
            .body(body)
            .map_err(|e| reqsign_core::Error::unexpected("the token answer").with_source(e))
    }
}

impl GcsUploads {
    /// The uploads of the dataset whose keys start with `prefix` in `site`'s bucket.
    pub fn new(site: &GcsSite, prefix: &str, storage_class: Option<String>) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            // One chunk on a slow link may take a while; a stalled one is noticed.
            .read_timeout(Duration::from_secs(60))
            .build()
            .unwrap_or_default();
        let signer = site.credential.as_ref().and_then(|key| {
            // The key was checked when the site was stored (`Backend::parse`).
            let provider = StaticCredentialProvider::from_base64(key.expose_secret().trim())
                .ok()?
                .with_scope(SCOPE);
            let ctx = Context::new().with_http_send(ReqwestSend(http.clone()));
            Some(Signer::new(
                ctx,
                provider,
                RequestSigner::new("storage").with_scope(SCOPE),
            ))
        });
        GcsUploads {
            http,
            endpoint: site
                .endpoint
                .as_deref()
                .unwrap_or(DEFAULT_GCS_ENDPOINT)
                .trim_end_matches('/')
                .to_owned(),
            bucket: site.bucket.clone(),
            prefix: prefix.to_owned(),
            storage_class,
            signer,
        }
    }

    /// The printable location of `key`: `gs://bucket/prefix/key`.
    pub fn url(&self, key: &str) -> String {
        format!("gs://{}/{}", self.bucket, self.object_name(key))
    }

    fn object_name(&self, key: &str) -> String {
        format!("{}{}", self.prefix, key.trim_start_matches('/'))
    }

    /// Starts a session for `key` with its content type and user metadata; returns the
    /// session URI.
    pub async fn start(
        &self,
        key: &str,
        content_type: Option<&str>,
        user_metadata: &BTreeMap<String, String>,
    ) -> Result<String, ObjectError> {
        let name = self.object_name(key);
        let url = format!(
            "{}/upload/storage/v1/b/{}/o?uploadType=resumable&name={}",
            self.endpoint,
            encode(&self.bucket),
            encode(&name)
        );
        let mut resource = serde_json::json!({ "name": name });
        if let Some(content_type) = content_type {
            resource["contentType"] = content_type.into();
        }
        if !user_metadata.is_empty() {
            resource["metadata"] = serde_json::json!(user_metadata);
        }
        if let Some(class) = &self.storage_class {
            resource["storageClass"] = class.as_str().into();
        }
        let mut request = http::Request::post(url).header(
            http::header::CONTENT_TYPE,
            "application/json; charset=UTF-8",
        );
        if let Some(content_type) = content_type {
            request = request.header("x-upload-content-type", content_type);
        }
        let body = Bytes::from(resource.to_string());
        let answer = self.send(key, request, body).await?;
        if !answer.status.is_success() {
            return Err(self.refused(key, &answer));
        }
        answer
            .headers
            .get(http::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| {
                self.failure(
                    key,
                    ErrorKind::Other,
                    "NoLocation",
                    "the service started a resumable upload without a session URI",
                )
            })
    }

    /// Sends `chunk` as the object's bytes from `offset` on. `total` is the object's
    /// size when this is its last chunk (an empty last chunk finishes an object whose
    /// bytes were all sent); every other chunk must be a multiple of [`CHUNK_ALIGN`].
    pub async fn put(
        &self,
        key: &str,
        session: &str,
        offset: u64,
        chunk: Bytes,
        total: Option<u64>,
    ) -> Result<Progress, ObjectError> {
        let len = chunk.len() as u64;
        let total = total.map_or_else(|| "*".to_owned(), |t| t.to_string());
        let range = if len == 0 {
            format!("bytes */{total}")
        } else {
            format!("bytes {offset}-{}/{total}", offset + len - 1)
        };
        let request = http::Request::put(session).header(http::header::CONTENT_RANGE, range);
        let answer = self.send(key, request, chunk).await?;
        self.progress(key, answer)
    }

    /// Asks how much of the object the session holds. A session the service no longer
    /// knows (cancelled, expired) is `NotFound`.
    pub async fn status(&self, key: &str, session: &str) -> Result<Progress, ObjectError> {
        let request = http::Request::put(session).header(http::header::CONTENT_RANGE, "bytes */*");
        let answer = self.send(key, request, Bytes::new()).await?;
        self.progress(key, answer)
    }

    /// Cancels the session; its bytes are dropped. One the service no longer knows is
    /// gone already.
    pub async fn cancel(&self, key: &str, session: &str) -> Result<(), ObjectError> {
        let answer = self
            .send(key, http::Request::delete(session), Bytes::new())
            .await?;
        match answer.status.as_u16() {
            // GCS answers a cancelled session with 499.
            200..=299 | 404 | 410 | 499 => Ok(()),
            _ => Err(self.refused(key, &answer)),
        }
    }

    fn progress(&self, key: &str, answer: Answer) -> Result<Progress, ObjectError> {
        match answer.status.as_u16() {
            200 | 201 => Ok(Progress::Complete(completed(&answer.body))),
            308 => {
                // `Range: bytes=0-N`: the first N+1 bytes are stored; none without it.
                let persisted = answer
                    .headers
                    .get(http::header::RANGE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.strip_prefix("bytes=0-"))
                    .and_then(|last| last.parse::<u64>().ok())
                    .map_or(0, |last| last + 1);
                Ok(Progress::Incomplete { persisted })
            }
            _ => Err(self.refused(key, &answer)),
        }
    }

    async fn send(
        &self,
        key: &str,
        request: http::request::Builder,
        body: Bytes,
    ) -> Result<Answer, ObjectError> {
        let request = request
            .header(http::header::CONTENT_LENGTH, body.len())
            .body(body)
            .map_err(|e| self.failure(key, ErrorKind::Invalid, "BadRequest", e))?;
        let (mut parts, body) = request.into_parts();
        if let Some(signer) = &self.signer {
            signer.sign(&mut parts, None).await.map_err(|e| {
                self.failure(
                    key,
                    ErrorKind::PermissionDenied,
                    "Credential",
                    format!("signing: {e}"),
                )
            })?;
        }
        let request = reqwest::Request::try_from(http::Request::from_parts(parts, body))
            .map_err(|e| self.failure(key, ErrorKind::Invalid, "BadRequest", e))?;
        let transport = |e: reqwest::Error| {
            let kind = if e.is_timeout() || e.is_connect() || e.is_request() || e.is_body() {
                ErrorKind::Temporary
            } else {
                ErrorKind::Other
            };
            self.failure(key, kind, "Transport", error_chain(&e))
        };
        let resp = self.http.execute(request).await.map_err(transport)?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.bytes().await.map_err(transport)?;
        Ok(Answer {
            status,
            headers,
            body,
        })
    }

    /// A non-success answer, classified by its status.
    fn refused(&self, key: &str, answer: &Answer) -> ObjectError {
        let status = answer.status.as_u16();
        let kind = match status {
            404 | 410 => ErrorKind::NotFound,
            401 | 403 => ErrorKind::PermissionDenied,
            408 | 429 | 500..=599 => ErrorKind::Temporary,
            400..=499 => ErrorKind::Invalid,
            _ => ErrorKind::Other,
        };
        let text = String::from_utf8_lossy(&answer.body);
        let text: String = text.chars().take(300).collect();
        self.failure(
            key,
            kind,
            format!("HTTP {status}"),
            format!("HTTP {status}: {}", text.trim()),
        )
    }

    fn failure(
        &self,
        key: &str,
        kind: ErrorKind,
        cause: impl Into<String>,
        detail: impl std::fmt::Display,
    ) -> ObjectError {
        ObjectError::new(&self.url(key), key, Operation::Write, kind, cause, detail)
    }
}

struct Answer {
    status: http::StatusCode,
    headers: http::HeaderMap,
    body: Bytes,
}

/// The object resource a finished session answers with.
fn completed(body: &[u8]) -> Completed {
    let resource: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let text = |field: &str| match &resource[field] {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    Completed {
        size: text("size").and_then(|s| s.parse().ok()).unwrap_or(0),
        etag: text("etag"),
        generation: text("generation"),
    }
}

/// Percent-encodes a query value: everything but the unreserved characters.
fn encode(value: &str) -> String {
    const QUERY_VALUE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(value, QUERY_VALUE).to_string()
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_encoded_as_query_values() {
        assert_eq!(encode("a b/c+d?é"), "a%20b%2Fc%2Bd%3F%C3%A9");
    }

    #[test]
    fn a_finished_session_describes_its_object() {
        let done = completed(
            br#"{"name":"k","size":"1048576","etag":"CKih16GjycICEAE=","generation":"1"}"#,
        );
        assert_eq!(done.size, 1 << 20);
        assert_eq!(done.etag.as_deref(), Some("CKih16GjycICEAE="));
        assert_eq!(done.generation.as_deref(), Some("1"));
    }
}
