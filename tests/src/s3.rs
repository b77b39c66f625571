//! An in-process S3 server (`s3s` over `s3s-fs`) for tests, and an independent
//! `aws-sdk-s3` client to check what landed in it.
//!
//! The server runs on its own thread with its own multi-thread Tokio runtime, so it
//! keeps answering whatever runtime the test uses (current-thread `#[tokio::test]`
//! included), and even while the test thread blocks.

use std::{
    collections::HashMap,
    net::{SocketAddr, TcpListener as StdTcpListener},
    path::Path,
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc,
    },
    thread::JoinHandle,
    time::Duration,
};

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::conn::auto::Builder as ConnBuilder,
};
use s3s::{auth::SimpleAuth, service::S3ServiceBuilder};
use tokio::sync::oneshot;

/// Access key the server accepts (SigV4 and SigV2).
pub const ACCESS_KEY: &str = "FERRYTESTACCESSKEY";
/// Secret key that goes with [`ACCESS_KEY`].
pub const SECRET_KEY: &str = "ferry-test-secret-key-0123456789abcdef";
/// Region the client signs for; `s3s` accepts any region, this is the conventional one.
pub const REGION: &str = "us-east-1";

/// A running S3 server with a private temporary directory as its storage. Stopped
/// when dropped: the accept loop ends, open connections are aborted with the runtime,
/// and the directory is removed.
/// Failures the server injects before its real handling, so tests can watch clients
/// recover from a flaky store. None by default.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    unavailable_puts: Arc<AtomicUsize>,
    /// Writes to object keys ending with one of these are refused with 403.
    denied_suffixes: Arc<std::sync::Mutex<Vec<String>>>,
    /// Parts sent to these multipart uploads get their connection closed unanswered.
    broken_uploads: Arc<std::sync::Mutex<Vec<String>>>,
}

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
struct Counters {
    single_puts: Arc<AtomicUsize>,
    multipart_uploads: Arc<AtomicUsize>,
    parts: Arc<AtomicUsize>,
    part_copies: Arc<AtomicUsize>,
    /// `UploadPart` calls by upload id, so a test can tell which upload a part went
    /// to even when a client retries a refused one.
    parts_by_upload: Arc<std::sync::Mutex<std::collections::HashMap<String, usize>>>,
    /// Requests the storage is handling right now.
    in_flight: Arc<AtomicUsize>,
    /// `HeadObject` calls, so a test can tell whether a client looked at each object.
    heads: Arc<AtomicUsize>,
    /// `ListObjects` calls (each page is one).
    lists: Arc<AtomicUsize>,
    /// `CopyObject` calls, in the order they came.
    copies: Arc<std::sync::Mutex<Vec<ServerCopy>>>,
}

/// Counts one request as in flight until it is answered or abandoned.
struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    fn start(count: &Arc<AtomicUsize>) -> Self {
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
    fn count(&self, req: &http::Request<hyper::body::Incoming>) {
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

    fn parts_sent_to(&self, upload_id: &str) -> usize {
        self.parts_by_upload
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(upload_id)
            .copied()
            .unwrap_or_default()
    }

    fn snapshot(&self) -> WriteCounts {
        WriteCounts {
            single_puts: self.single_puts.load(Ordering::SeqCst),
            multipart_uploads: self.multipart_uploads.load(Ordering::SeqCst),
            parts: self.parts.load(Ordering::SeqCst),
            part_copies: self.part_copies.load(Ordering::SeqCst),
        }
    }
}

impl Faults {
    /// The next `n` PUT requests (objects and parts) are answered `503 SlowDown`.
    pub fn fail_next_puts(&self, n: usize) {
        self.unavailable_puts.store(n, Ordering::SeqCst);
    }

    /// How many injected failures have not been used yet.
    pub fn pending(&self) -> usize {
        self.unavailable_puts.load(Ordering::SeqCst)
    }

    /// Every write (PUT of an object or part, multipart upload start) of an object whose
    /// key ends with `suffix` is answered `403 AccessDenied`, as a bucket policy would.
    pub fn deny_writes_to(&self, suffix: &str) {
        self.denied_suffixes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(suffix.to_owned());
    }

    /// Every `UploadPart` of upload `upload_id` has its connection closed before any
    /// answer, as a service may do when it refuses a request while the body is still
    /// being sent: the client sees a broken connection, not the refusal.
    pub fn break_parts_of(&self, upload_id: &str) {
        self.broken_uploads
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(upload_id.to_owned());
    }

    fn breaks(&self, req: &http::Request<hyper::body::Incoming>) -> bool {
        let query = req.uri().query().unwrap_or("");
        let Some(upload) = query.split('&').find_map(|p| p.strip_prefix("uploadId=")) else {
            return false;
        };
        req.method() == http::Method::PUT
            && self
                .broken_uploads
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .iter()
                .any(|u| u == upload)
    }

    fn denies(&self, req: &http::Request<hyper::body::Incoming>) -> bool {
        let writes = matches!(*req.method(), http::Method::PUT | http::Method::POST);
        let path = req.uri().path();
        writes
            && self
                .denied_suffixes
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .iter()
                .any(|s| path.ends_with(s.as_str()))
    }

    fn take_put(&self) -> bool {
        self.unavailable_puts
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }
}

/// The S3 service behind the injected faults.
#[derive(Clone)]
struct FaultyService {
    inner: s3s::service::S3Service,
    faults: Faults,
    counters: Counters,
    root: std::path::PathBuf,
    /// Object listings carry each object's ETag, as AWS's do (see
    /// [`S3Server::list_etags`]).
    list_etags: Arc<AtomicBool>,
}

impl FaultyService {
    /// Whether a path-style request names a "directory" of the s3s-fs tree. S3 has no
    /// object there, but s3s-fs 0.14 takes tens of seconds to fail a HEAD of one (rclone
    /// probes its root that way), so the answer is S3's at once: 404.
    fn names_a_prefix(&self, req: &http::Request<hyper::body::Incoming>) -> bool {
        let path = req.uri().path().trim_start_matches('/');
        !path.is_empty()
            && path.contains('/')
            && !path.contains('%')
            && !path.split('/').any(|s| s == "..")
            && self.root.join(path).is_dir()
    }
}

impl FaultyService {
    /// `ListMultipartUploads` (`GET /bucket?uploads&prefix=…`), which s3s-fs 0.14 does
    /// not implement, answered from the files s3s-fs keeps: each upload in progress has
    /// one named `.bucket-<bucket>.object-<key>.upload-<id>.metadata.json` (base64url,
    /// unpadded) in its root from CreateMultipartUpload until it completes or aborts.
    fn list_multipart_uploads(
        &self,
        req: &http::Request<hyper::body::Incoming>,
    ) -> Option<s3s::HttpResponse> {
        let query = req.uri().query()?;
        let params: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        let bucket = req.uri().path().trim_matches('/');
        if req.method() != http::Method::GET
            || bucket.is_empty()
            || bucket.contains('/')
            || !params.iter().any(|(k, _)| k == "uploads")
        {
            return None;
        }
        let prefix = params
            .iter()
            .find(|(k, _)| k == "prefix")
            .map_or("", |(_, v)| v.as_str());
        let decode = |s: &str| {
            let bytes =
                base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, s)
                    .ok()?;
            String::from_utf8(bytes).ok()
        };
        let mut uploads = Vec::new();
        for entry in std::fs::read_dir(&self.root).ok()?.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(rest) = name
                .strip_prefix(".bucket-")
                .and_then(|r| r.strip_suffix(".metadata.json"))
            else {
                continue;
            };
            let Some((encoded_bucket, rest)) = rest.split_once(".object-") else {
                continue;
            };
            let Some((encoded_key, upload_id)) = rest.split_once(".upload-") else {
                continue;
            };
            let (Some(b), Some(key)) = (decode(encoded_bucket), decode(encoded_key)) else {
                continue;
            };
            if b != bucket || !key.starts_with(prefix) {
                continue;
            }
            let initiated = entry
                .metadata()
                .and_then(|m| m.modified())
                .map(chrono::DateTime::<chrono::Utc>::from)
                .unwrap_or_else(|_| chrono::Utc::now());
            uploads.push((key, upload_id.to_owned(), initiated));
        }
        uploads.sort();
        let escape = |s: &str| {
            s.replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
        };
        let mut body = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
             <ListMultipartUploadsResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
             <Bucket>{}</Bucket><Prefix>{}</Prefix><MaxUploads>1000</MaxUploads>\
             <IsTruncated>false</IsTruncated>",
            escape(bucket),
            escape(prefix)
        );
        for (key, upload_id, initiated) in &uploads {
            body.push_str(&format!(
                "<Upload><Key>{}</Key><UploadId>{upload_id}</UploadId>\
                 <Initiated>{}</Initiated><StorageClass>STANDARD</StorageClass></Upload>",
                escape(key),
                initiated.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
            ));
        }
        body.push_str("</ListMultipartUploadsResult>");
        let response = http::Response::builder()
            .header(http::header::CONTENT_TYPE, "application/xml")
            .body(s3s::Body::from(body))
            .expect("a well-formed listing");
        Some(response)
    }
}

impl FaultyService {
    /// The bucket `req` lists the objects of, if it is such a listing. Listings of
    /// multipart uploads never get here: [`Self::list_multipart_uploads`] answers them.
    fn listed_bucket(req: &http::Request<hyper::body::Incoming>) -> Option<String> {
        let bucket = req.uri().path().trim_matches('/');
        (req.method() == http::Method::GET && !bucket.is_empty() && !bucket.contains('/'))
            .then(|| bucket.to_owned())
    }
}

/// The object listing `body` of `bucket` with an `ETag` in each `Contents`, read from the
/// file where s3s-fs (storing under `root`) keeps each object's etag
/// (`.bucket-<bucket>.object-<key>.internal.json`, base64url, unpadded). An object
/// without that file is left without one.
fn with_etags(root: &Path, bucket: &str, body: &str) -> String {
    let encode =
        |s: &str| base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, s);
    let unescape = |s: &str| {
        s.replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&amp;", "&")
    };
    let etag_of = |key: &str| -> Option<String> {
        let file = root.join(format!(
            ".bucket-{}.object-{}.internal.json",
            encode(bucket),
            encode(key)
        ));
        let info: serde_json::Value = serde_json::from_slice(&std::fs::read(file).ok()?).ok()?;
        info.get("e_tag")?.as_str().map(str::to_owned)
    };
    let mut parts = body.split("<Contents>");
    let mut out = parts.next().unwrap_or_default().to_owned();
    for contents in parts {
        out.push_str("<Contents>");
        let keyed = contents.split_once("</Key>").and_then(|(before, after)| {
            let key = unescape(before.split_once("<Key>")?.1);
            Some((before, etag_of(&key)?, after))
        });
        match keyed {
            Some((before, etag, after)) => {
                out.push_str(before);
                out.push_str(&format!("</Key><ETag>&quot;{etag}&quot;</ETag>"));
                out.push_str(after);
            }
            None => out.push_str(contents),
        }
    }
    out
}

impl hyper::service::Service<http::Request<hyper::body::Incoming>> for FaultyService {
    type Response = s3s::HttpResponse;
    type Error = s3s::HttpError;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>> + Send>,
    >;

    fn call(&self, req: http::Request<hyper::body::Incoming>) -> Self::Future {
        if req.method() == http::Method::HEAD && self.names_a_prefix(&req) {
            let response = http::Response::builder()
                .status(http::StatusCode::NOT_FOUND)
                .body(s3s::Body::empty())
                .expect("a well-formed 404 response");
            return Box::pin(std::future::ready(Ok(response)));
        }
        if let Some(listing) = self.list_multipart_uploads(&req) {
            return Box::pin(std::future::ready(Ok(listing)));
        }
        self.counters.count(&req);
        if self.faults.breaks(&req) {
            // An error from the service makes hyper close the connection unanswered.
            let error = s3s::HttpError::new("injected fault: connection closed".into());
            return Box::pin(std::future::ready(Err(error)));
        }
        if self.faults.denies(&req) {
            let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
                <Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>";
            let response = http::Response::builder()
                .status(http::StatusCode::FORBIDDEN)
                .header(http::header::CONTENT_TYPE, "application/xml")
                .body(s3s::Body::from(body.to_owned()))
                .expect("a well-formed 403 response");
            return Box::pin(std::future::ready(Ok(response)));
        }
        if req.method() == http::Method::PUT && self.faults.take_put() {
            let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
                <Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>";
            let response = http::Response::builder()
                .status(http::StatusCode::SERVICE_UNAVAILABLE)
                .header(http::header::CONTENT_TYPE, "application/xml")
                .body(s3s::Body::from(body.to_owned()))
                .expect("a well-formed 503 response");
            return Box::pin(std::future::ready(Ok(response)));
        }
        let in_flight = InFlight::start(&self.counters.in_flight);
        let listing = if self.list_etags.load(Ordering::SeqCst) {
            Self::listed_bucket(&req).map(|bucket| (bucket, self.root.clone()))
        } else {
            None
        };
        let handled = hyper::service::Service::call(&self.inner, req);
        Box::pin(async move {
            let mut answer = handled.await;
            if let (Some((bucket, root)), Ok(response)) = (listing, answer.as_mut()) {
                if response.status().is_success() {
                    let body = response
                        .body_mut()
                        .store_all_limited(64 << 20)
                        .await
                        .map_err(s3s::HttpError::new)?;
                    let listed = with_etags(&root, &bucket, &String::from_utf8_lossy(&body));
                    response.headers_mut().remove(http::header::CONTENT_LENGTH);
                    *response.body_mut() = s3s::Body::from(listed);
                }
            }
            drop(in_flight);
            answer
        })
    }
}

pub struct S3Server {
    addr: SocketAddr,
    faults: Faults,
    counters: Counters,
    list_etags: Arc<AtomicBool>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    root: tempfile::TempDir,
}

impl S3Server {
    /// Starts a server on `127.0.0.1` on a free port and returns once it accepts
    /// connections. Panics if the port, the runtime or the storage directory cannot be
    /// set up: this is a test fixture.
    pub async fn start() -> S3Server {
        let root = tempfile::tempdir().expect("temp dir for the S3 server");
        // Bound here, before the server thread exists, so the port is ours from the
        // start and `endpoint()` never races with the bind.
        let listener =
            StdTcpListener::bind("127.0.0.1:0").expect("binding the S3 server on loopback");
        listener
            .set_nonblocking(true)
            .expect("making the S3 listener non-blocking");
        let addr = listener.local_addr().expect("address of the S3 listener");

        let fs = s3s_fs::FileSystem::new(root.path()).expect("s3s-fs over the temp dir");
        let service = {
            let mut builder = S3ServiceBuilder::new(fs);
            builder.set_auth(SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
            builder.build()
        };

        let faults = Faults::default();
        let counters = Counters::default();
        let list_etags = Arc::new(AtomicBool::new(false));
        let service = FaultyService {
            inner: service,
            faults: faults.clone(),
            counters: counters.clone(),
            root: root.path().to_path_buf(),
            list_etags: list_etags.clone(),
        };
        let (ready_tx, ready_rx) = oneshot::channel::<()>();
        let (shutdown_tx, shutdown_rx) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(format!("s3-server-{}", addr.port()))
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .thread_name("s3-server-worker")
                    .enable_all()
                    .build()
                    .expect("runtime for the S3 server");
                runtime.block_on(serve(listener, service, ready_tx, shutdown_rx));
                // Connections still open belong to the runtime: give in-flight
                // requests a moment, then drop them.
                runtime.shutdown_timeout(Duration::from_secs(5));
            })
            .expect("spawning the S3 server thread");

        ready_rx
            .await
            .expect("S3 server thread stopped before accepting connections");

        S3Server {
            addr,
            faults,
            counters,
            list_etags,
            shutdown: Some(shutdown_tx),
            thread: Some(thread),
            root,
        }
    }

    /// `http://127.0.0.1:PORT`, the endpoint for path-style requests.
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// From now on, object listings carry each object's ETag, as AWS's do; s3s-fs 0.14
    /// leaves them out, and clients then have only sizes to go by.
    pub fn list_etags(&self) {
        self.list_etags.store(true, Ordering::SeqCst);
    }

    /// Writes received so far, by kind (failed ones included).
    pub fn writes(&self) -> WriteCounts {
        self.counters.snapshot()
    }

    /// Waits until no request is being handled: one a client abandoned mid-way (a
    /// dropped upload) may still be writing, and would land after what the test does
    /// next. Panics after 30 s.
    pub async fn wait_idle(&self) {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
        while self.counters.in_flight.load(Ordering::SeqCst) > 0 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the S3 test server is still handling requests after 30 s"
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    /// `HeadObject` requests received so far (those for a missing object included).
    pub fn heads(&self) -> usize {
        self.counters.heads.load(Ordering::SeqCst)
    }

    /// `ListObjects` requests received so far, one a page.
    pub fn lists(&self) -> usize {
        self.counters.lists.load(Ordering::SeqCst)
    }

    /// The `CopyObject` requests received so far.
    pub fn server_copies(&self) -> Vec<ServerCopy> {
        self.counters
            .copies
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// `UploadPart` requests received for the multipart upload `upload_id` (failed ones
    /// and client retries included).
    pub fn parts_sent_to(&self, upload_id: &str) -> usize {
        self.counters.parts_sent_to(upload_id)
    }

    /// A Ferry site named `name` on `bucket` of this server (below the `ferry/` prefix),
    /// and the credentials that open it.
    pub fn site(
        &self,
        name: &str,
        bucket: &str,
        tier: ferry_proto::v1::Tier,
    ) -> (ferry_proto::v1::Site, HashMap<String, String>) {
        let site = ferry_proto::v1::Site {
            name: name.into(),
            uri: format!("s3://{bucket}/ferry"),
            tier: tier.into(),
            options: HashMap::from([
                ("endpoint".to_owned(), self.endpoint()),
                ("region".to_owned(), REGION.to_owned()),
                ("force_path_style".to_owned(), "true".to_owned()),
            ]),
            ..Default::default()
        };
        let credentials = HashMap::from([
            ("access_key_id".to_owned(), ACCESS_KEY.to_owned()),
            ("secret_access_key".to_owned(), SECRET_KEY.to_owned()),
        ]);
        (site, credentials)
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn access_key(&self) -> &str {
        ACCESS_KEY
    }

    pub fn secret_key(&self) -> &str {
        SECRET_KEY
    }

    pub fn region(&self) -> &str {
        REGION
    }

    /// The directory `s3s-fs` stores buckets in (one directory per bucket). Tests use
    /// the client, not this, to read objects; it is here for fault injection.
    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// Creates a bucket through the S3 API; panics if the server refuses.
    pub async fn create_bucket(&self, name: &str) {
        self.client()
            .create_bucket()
            .bucket(name)
            .send()
            .await
            .unwrap_or_else(|e| panic!("creating bucket {name}: {}", error_chain(&e)));
    }

    /// Writes `bytes` to `bucket`/`key` with an independent client, with the content
    /// type and user metadata given; panics if the server refuses.
    pub async fn put_object(
        &self,
        bucket: &str,
        key: &str,
        bytes: Vec<u8>,
        content_type: Option<&str>,
        metadata: &std::collections::BTreeMap<String, String>,
    ) {
        let mut put = self
            .client()
            .put_object()
            .bucket(bucket)
            .key(key)
            .set_content_type(content_type.map(str::to_owned))
            .body(aws_sdk_s3::primitives::ByteStream::from(bytes));
        for (k, v) in metadata {
            put = put.metadata(k, v);
        }
        put.send()
            .await
            .unwrap_or_else(|e| panic!("putting {bucket}/{key}: {}", error_chain(&e)));
    }

    /// A fresh client for this server, independent of anything under test: path-style,
    /// region `us-east-1`, the server's static credentials, and nothing read from the
    /// environment or `~/.aws` (no profile, no `AWS_*` variables, no CA bundle).
    pub fn client(&self) -> aws_sdk_s3::Client {
        let credentials = Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "ferry-tests");
        let config = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(REGION))
            .endpoint_url(self.endpoint())
            .credentials_provider(credentials)
            .force_path_style(true)
            .build();
        aws_sdk_s3::Client::from_conf(config)
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Accepts connections until `shutdown` fires (or its sender is dropped). Each
/// connection is served on its own task, HTTP/1.1 or HTTP/2 as the client speaks.
async fn serve(
    listener: StdTcpListener,
    service: FaultyService,
    ready: oneshot::Sender<()>,
    mut shutdown: oneshot::Receiver<()>,
) {
    let listener = tokio::net::TcpListener::from_std(listener)
        .expect("registering the S3 listener with the runtime");
    let http = ConnBuilder::new(TokioExecutor::new());
    let _ = ready.send(());
    loop {
        let socket = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((socket, _peer)) => socket,
                // Transient accept failures (e.g. EMFILE under load) must not end
                // the server; back off briefly and keep going.
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let conn = http
            .serve_connection(TokioIo::new(socket), service.clone())
            .into_owned();
        tokio::spawn(async move {
            let _ = conn.await;
        });
    }
}

/// The error and all its sources on one line; the SDK's top-level `Display` alone
/// often says only "service error".
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        out.push_str(": ");
        out.push_str(&e.to_string());
        source = e.source();
    }
    out
}
