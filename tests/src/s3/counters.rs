//! What the S3 test server received: writes by kind, HEADs, listings, server-side
//! copies, and requests still being handled, for tests to tell how a client worked.

use std::sync::{
    atomic::{AtomicUsize, Ordering},
    Arc,
};

/// Writes the server received, by kind, so tests can tell how a client uploaded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriteCounts {
    /// Single-request object uploads (`PutObject`).
    pub single_puts: usize,
    /// `CreateMultipartUpload` calls.
    pub multipart_uploads: usize,
    /// `UploadPart` calls: parts whose bytes the client sent.
    pub parts: usize,
    /// `UploadPartCopy` calls: parts the server copied from another object.
    pub part_copies: usize,
}

/// One `CopyObject` the server received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerCopy {
    /// The request path, percent-decoded: `/bucket/key`.
    pub path: String,
    /// `x-amz-copy-source`, percent-decoded: `bucket/key`.
    pub source: String,
    /// `x-amz-storage-class`, if sent.
    pub storage_class: Option<String>,
    /// `x-amz-copy-source-if-match`, the source etag the copy is conditional on.
    pub if_match: Option<String>,
}

fn decoded(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

#[derive(Clone, Debug, Default)]
pub(super) struct Counters {
    single_puts: Arc<AtomicUsize>,
    multipart_uploads: Arc<AtomicUsize>,
    parts: Arc<AtomicUsize>,
    part_copies: Arc<AtomicUsize>,
    /// `UploadPart` calls by upload id, so a test can tell which upload a part went
    /// to even when a client retries a refused one.
    parts_by_upload: Arc<std::sync::Mutex<std::collections::HashMap<String, usize>>>,
    /// Requests the storage is handling right now.
    pub(super) in_flight: Arc<AtomicUsize>,
    /// `HeadObject` calls, so a test can tell whether a client looked at each object.
    pub(super) heads: Arc<AtomicUsize>,
    /// `ListObjects` calls (each page is one).
    pub(super) lists: Arc<AtomicUsize>,
    /// `CopyObject` calls, in the order they came.
    pub(super) copies: Arc<std::sync::Mutex<Vec<ServerCopy>>>,
    /// `GetObject` calls by bucket, so a test can tell which end a client read.
    pub(super) gets: Arc<std::sync::Mutex<std::collections::HashMap<String, usize>>>,
}

/// Counts one request as in flight until it is answered or abandoned.
pub(super) struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    pub(super) fn start(count: &Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        InFlight(count.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Counters {
    pub(super) fn count(&self, req: &http::Request<hyper::body::Incoming>) {
        let query = req.uri().query().unwrap_or("");
        let has = |name: &str| {
            query
                .split('&')
                .any(|p| p == name || p.starts_with(&format!("{name}=")))
        };
        let path = req.uri().path().trim_start_matches('/');
        let names_object = path.contains('/') && !path.ends_with('/');
        if req.method() == http::Method::HEAD && names_object {
            self.heads.fetch_add(1, Ordering::SeqCst);
            return;
        }
        if req.method() == http::Method::GET && !names_object && !path.is_empty() {
            self.lists.fetch_add(1, Ordering::SeqCst);
            return;
        }
        if req.method() == http::Method::GET && names_object && !has("uploadId") {
            let bucket = path.split('/').next().unwrap_or_default();
            *self
                .gets
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .entry(bucket.to_owned())
                .or_default() += 1;
            return;
        }
        let header = |name: &str| {
            req.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        if req.method() == http::Method::PUT && !has("partNumber") {
            if let Some(source) = header("x-amz-copy-source") {
                self.copies
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .push(ServerCopy {
                        path: decoded(req.uri().path()),
                        source: decoded(&source),
                        storage_class: header("x-amz-storage-class"),
                        if_match: header("x-amz-copy-source-if-match"),
                    });
                return;
            }
        }
        let counter = match *req.method() {
            http::Method::POST if has("uploads") => &self.multipart_uploads,
            http::Method::PUT if has("partNumber") && header("x-amz-copy-source").is_some() => {
                &self.part_copies
            }
            http::Method::PUT if has("partNumber") => &self.parts,
            http::Method::PUT
                if names_object && !req.headers().contains_key("x-amz-copy-source") =>
            {
                &self.single_puts
            }
            _ => return,
        };
        counter.fetch_add(1, Ordering::SeqCst);
        if std::ptr::eq(counter, &self.parts) {
            let upload = query
                .split('&')
                .find_map(|p| p.strip_prefix("uploadId="))
                .unwrap_or_default();
            *self
                .parts_by_upload
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .entry(upload.to_owned())
                .or_default() += 1;
        }
    }

    pub(super) fn parts_sent_to(&self, upload_id: &str) -> usize {
        self.parts_by_upload
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(upload_id)
            .copied()
            .unwrap_or_default()
    }

    pub(super) fn snapshot(&self) -> WriteCounts {
        WriteCounts {
            single_puts: self.single_puts.load(Ordering::SeqCst),
            multipart_uploads: self.multipart_uploads.load(Ordering::SeqCst),
            parts: self.parts.load(Ordering::SeqCst),
            part_copies: self.part_copies.load(Ordering::SeqCst),
        }
    }
}
