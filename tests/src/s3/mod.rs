//! An in-process S3 server (`s3s` over `s3s-fs`) for tests, and an independent
//! `aws-sdk-s3` client to check what landed in it. The server can inject faults and
//! answer like S3-compatible servers that are not AWS ([`Faults`]).
//!
//! The server runs on its own thread with its own multi-thread Tokio runtime, so it
//! keeps answering whatever runtime the test uses (current-thread `#[tokio::test]`
//! included), and even while the test thread blocks.

use std::{
    collections::HashMap,
    net::{SocketAddr, TcpListener as StdTcpListener},
    path::Path,
    sync::{
        atomic::{AtomicBool, Ordering},
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

mod counters;
mod faults;
mod listing;
mod service;

pub use counters::{ServerCopy, WriteCounts};
pub use faults::{Answer, Faults, ServerSideOp};

use counters::Counters;
use service::FaultyService;

/// Access key the server accepts (SigV4 and SigV2).
pub const ACCESS_KEY: &str = "FERRYTESTACCESSKEY";
/// Secret key that goes with [`ACCESS_KEY`].
pub const SECRET_KEY: &str = "ferry-test-secret-key-0123456789abcdef";
/// Region the client signs for; `s3s` accepts any region, this is the conventional one.
pub const REGION: &str = "us-east-1";

/// A running S3 server with a private temporary directory as its storage. Stopped
/// when dropped: the accept loop ends, open connections are aborted with the runtime,
/// and the directory is removed.
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

    /// The faults to inject and the answers to give, for this server's requests.
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

    /// `GetObject` requests received so far for objects of `bucket` (path-style).
    pub fn object_reads(&self, bucket: &str) -> usize {
        self.counters
            .gets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(bucket)
            .copied()
            .unwrap_or(0)
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
        path_style_site(
            name,
            bucket,
            tier,
            &self.endpoint(),
            REGION,
            (ACCESS_KEY, SECRET_KEY),
        )
    }

    /// `http://127.0.0.1:PORT`, the endpoint for path-style requests.
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

/// A Ferry site named `name` on `bucket` (below the `ferry/` prefix) of the S3 server
/// at `endpoint`, addressed path-style, and the credentials (key id, secret) that open
/// it.
pub fn path_style_site(
    name: &str,
    bucket: &str,
    tier: ferry_proto::v1::Tier,
    endpoint: &str,
    region: &str,
    (access_key, secret_key): (&str, &str),
) -> (ferry_proto::v1::Site, HashMap<String, String>) {
    let site = ferry_proto::v1::Site {
        name: name.into(),
        uri: format!("s3://{bucket}/ferry"),
        tier: tier.into(),
        options: HashMap::from([
            ("endpoint".to_owned(), endpoint.to_owned()),
            ("region".to_owned(), region.to_owned()),
            ("force_path_style".to_owned(), "true".to_owned()),
        ]),
        ..Default::default()
    };
    let credentials = HashMap::from([
        ("access_key_id".to_owned(), access_key.to_owned()),
        ("secret_access_key".to_owned(), secret_key.to_owned()),
    ]);
    (site, credentials)
}
