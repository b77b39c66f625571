//! Server-side copies between S3 datasets (`S3Dataset::copy_from`), and the one-read
//! hash full verification uses, against the in-process S3 server: what lands at the destination is read back with an independent
//! client, and the server's write counters show that no bytes went through the agent.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, HashMap};

use ferry_agent::s3::{S3Dataset, ServerCopyOptions};
use ferry_storage::{ErrorKind, SiteAccess};
use ferry_tests::{dataset::bytes, s3::error_chain, S3Server};
use secrecy::SecretString;
use xxhash_rust::xxh3::xxh3_128;

const MIB: usize = 1024 * 1024;

/// A dataset on the test server, with the bucket and key prefix an independent client
/// needs to reach its objects.
struct Dataset {
    s3: S3Dataset,
    bucket: String,
    prefix: String,
}

impl Dataset {
    /// Dataset `path` on `bucket`, opened like a site the control plane hands the agent.
    fn open(server: &S3Server, bucket: &str, path: &str) -> Dataset {
        let access = common::s3_site_access(server, bucket, path);
        Dataset {
            s3: common::s3_dataset(&access),
            bucket: bucket.to_owned(),
            // `server.site` roots every site at `ferry/` in its bucket.
            prefix: format!("ferry/{path}/"),
        }
    }

    async fn put(&self, server: &S3Server, object: &Object) {
        server
            .put_object(
                &self.bucket,
                &format!("{}{}", self.prefix, object.key),
                object.bytes.clone(),
                object.content_type,
                &object.metadata,
            )
            .await;
    }

    /// The object as an independent client reads it: bytes, content type, metadata.
    async fn get(&self, server: &S3Server, key: &str) -> Stored {
        let out = server
            .client()
            .get_object()
            .bucket(&self.bucket)
            .key(format!("{}{key}", self.prefix))
            .send()
            .await
            .unwrap_or_else(|e| panic!("reading back {key}: {}", error_chain(&e)));
        let content_type = out.content_type().map(str::to_owned);
        let metadata = out.metadata().cloned().unwrap_or_default();
        let bytes = out.body.collect().await.unwrap().into_bytes();
        Stored {
            len: bytes.len(),
            xxh3: xxh3_128(&bytes),
            content_type,
            metadata: metadata.into_iter().collect(),
        }
    }
}

struct Object {
    key: &'static str,
    bytes: Vec<u8>,
    content_type: Option<&'static str>,
    metadata: BTreeMap<String, String>,
}

impl Object {
    /// What an independent client should read back for this object. Seeded without a
    /// content type, it has `aws-sdk-s3`'s PutObject default.
    fn stored(&self) -> Stored {
        Stored {
            len: self.bytes.len(),
            xxh3: xxh3_128(&self.bytes),
            content_type: Some(
                self.content_type
                    .unwrap_or("application/octet-stream")
                    .to_owned(),
            ),
            metadata: self.metadata.clone(),
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
struct Stored {
    len: usize,
    xxh3: u128,
    content_type: Option<String>,
    metadata: BTreeMap<String, String>,
}

fn objects() -> Vec<Object> {
    vec![
        Object {
            key: "empty.bin",
            bytes: Vec::new(),
            content_type: None,
            metadata: BTreeMap::new(),
        },
        Object {
            // Space, `+` and non-ASCII: the copy source must be percent-encoded.
            key: "docs/naïve café+1.txt",
            bytes: bytes(1, 1024),
            content_type: Some("text/plain; charset=utf-8"),
            metadata: BTreeMap::from([
                ("owner".to_owned(), "team-a".to_owned()),
                ("origin".to_owned(), "ferry-test".to_owned()),
            ]),
        },
        Object {
            key: "big/blob.bin",
            bytes: bytes(2, 3 * MIB),
            content_type: Some("application/octet-stream"),
            metadata: BTreeMap::from([("kind".to_owned(), "large".to_owned())]),
        },
    ]
}

/// Copies within a bucket and across buckets of one endpoint are made by the server:
/// bytes, content type and user metadata arrive, and nothing is written with PutObject
/// or a multipart upload.
#[tokio::test]
async fn same_endpoint_copies_bytes_and_metadata() {
    let server = S3Server::start().await;
    server.create_bucket("copy-source").await;
    server.create_bucket("copy-other").await;
    let a = Dataset::open(&server, "copy-source", "datasets/a");
    let b = Dataset::open(&server, "copy-source", "datasets/b");
    let other = Dataset::open(&server, "copy-other", "datasets/c");
    assert!(b.s3.can_copy_from(&a.s3));
    assert!(other.s3.can_copy_from(&a.s3));

    let objects = objects();
    for object in &objects {
        a.put(&server, object).await;
    }
    let seeded = server.writes();

    for destination in [&b, &other] {
        for object in &objects {
            let copied = destination
                .s3
                .copy_from(&a.s3, object.key, None, &ServerCopyOptions::default())
                .await
                .unwrap_or_else(|e| panic!("copying {}: {e}", object.key));
            assert_eq!(copied.size, object.bytes.len() as u64, "{}", object.key);
            let (size, etag) = destination.s3.head(object.key).await.unwrap();
            assert_eq!(size, copied.size, "{}", object.key);
            assert_eq!(etag, copied.etag, "{}", object.key);
            assert!(etag.is_some(), "{}", object.key);
            assert_eq!(
                destination.get(&server, object.key).await,
                object.stored(),
                "{} in {}",
                object.key,
                destination.bucket
            );
        }
    }
    assert_eq!(
        server.writes(),
        seeded,
        "a server-side copy makes no PutObject, CreateMultipartUpload or UploadPart"
    );
    // The source is untouched.
    for object in &objects {
        assert_eq!(a.get(&server, object.key).await, object.stored());
    }
}

/// Above the single-copy limit the object is copied in ranges with UploadPartCopy
/// into a multipart upload that carries the content type and user metadata.
#[tokio::test]
async fn large_object_is_copied_part_by_part() {
    let server = S3Server::start().await;
    server.create_bucket("parts-source").await;
    server.create_bucket("parts-dest").await;
    let source = Dataset::open(&server, "parts-source", "datasets/a");
    let destination = Dataset::open(&server, "parts-dest", "datasets/a");
    let object = Object {
        key: "large/random.bin",
        bytes: bytes(3, 12 * MIB),
        content_type: Some("application/x-ferry-test"),
        metadata: BTreeMap::from([("kind".to_owned(), "parts".to_owned())]),
    };
    source.put(&server, &object).await;
    let before = server.writes();

    let options = ServerCopyOptions {
        single_copy_limit: MIB as u64,
        // S3's (and s3s-fs's) smallest part but the last: 12 MiB is 5 + 5 + 2.
        part_size: 5 * MIB as u64,
        concurrency: 2,
        storage_class: None,
    };
    let copied = destination
        .s3
        .copy_from(&source.s3, object.key, None, &options)
        .await
        .unwrap();
    assert_eq!(copied.size, object.bytes.len() as u64);
    assert_eq!(destination.get(&server, object.key).await, object.stored());
    assert_eq!(
        destination.s3.head(object.key).await.unwrap().1,
        copied.etag
    );

    let after = server.writes();
    assert_eq!(after.multipart_uploads - before.multipart_uploads, 1);
    // Three parts copied by the server, none sent through the client.
    assert_eq!(after.part_copies - before.part_copies, 3);
    assert_eq!(after.parts, before.parts);
    assert_eq!(after.single_puts, before.single_puts);
}

/// A service whose answers to UploadPartCopy and CompleteMultipartUpload have another
/// root element than AWS's (the SDK cannot read them): the parts are confirmed from the
/// upload's part list, the object with a HEAD, and the copy holds the source's bytes.
#[tokio::test]
async fn a_part_by_part_copy_is_confirmed_when_the_answers_cannot_be_read() {
    let server = S3Server::start().await;
    server.create_bucket("odd-source").await;
    server.create_bucket("odd-dest").await;
    let source = Dataset::open(&server, "odd-source", "datasets/a");
    let destination = Dataset::open(&server, "odd-dest", "datasets/a");
    let object = Object {
        key: "large/random.bin",
        bytes: bytes(4, 12 * MIB),
        content_type: Some("application/x-ferry-test"),
        metadata: BTreeMap::from([("kind".to_owned(), "odd".to_owned())]),
    };
    source.put(&server, &object).await;
    server.faults().answer(
        ferry_tests::s3::ServerSideOp::UploadPartCopy,
        ferry_tests::s3::Answer::ForeignRoot,
    );
    server.faults().answer(
        ferry_tests::s3::ServerSideOp::CompleteMultipartUpload,
        ferry_tests::s3::Answer::ForeignRoot,
    );
    let options = ServerCopyOptions {
        single_copy_limit: MIB as u64,
        part_size: 5 * MIB as u64,
        concurrency: 2,
        storage_class: None,
    };
    let copied = destination
        .s3
        .copy_from(&source.s3, object.key, None, &options)
        .await
        .unwrap();
    assert_eq!(
        server.faults().foreign_roots(),
        4,
        "three parts and the completion"
    );
    assert_eq!(copied.size, object.bytes.len() as u64);
    assert_eq!(destination.get(&server, object.key).await, object.stored());
    assert_eq!(
        destination.s3.head(object.key).await.unwrap().1,
        copied.etag,
        "the etag a HEAD found is the copy's"
    );
}

/// With the size from a listing, a copy is one CopyObject and no HEAD: conditional on
/// the listed etag where the listing had one (a stale one fails the copy, temporarily,
/// so a retry takes the new version), unconditional where it had none (s3s-fs lists
/// no etags).
#[tokio::test]
async fn a_listed_object_is_copied_with_one_request() {
    let server = S3Server::start().await;
    server.create_bucket("listed").await;
    let source = Dataset::open(&server, "listed", "datasets/a");
    let destination = Dataset::open(&server, "listed", "datasets/b");
    let object = Object {
        key: "docs/listed.txt",
        bytes: bytes(9, 200 * 1024),
        content_type: Some("text/plain"),
        metadata: BTreeMap::from([("owner".to_owned(), "team-b".to_owned())]),
    };
    source.put(&server, &object).await;
    let size = object.bytes.len() as u64;
    let options = ServerCopyOptions::default();
    let heads = server.heads();

    let copied = destination
        .s3
        .copy_from(&source.s3, object.key, Some((size, None)), &options)
        .await
        .unwrap();
    assert_eq!(copied.size, size);
    assert_eq!(server.heads(), heads, "the listed size needs no HEAD");
    assert_eq!(destination.get(&server, object.key).await, object.stored());

    let stale = destination
        .s3
        .copy_from(
            &source.s3,
            object.key,
            Some((size, Some("\"0123456789abcdef0123456789abcdef\""))),
            &options,
        )
        .await
        .unwrap_err();
    assert_eq!(
        stale.kind,
        ErrorKind::Temporary,
        "a source changed since its listing: {stale}"
    );
    assert_eq!(stale.cause, "PreconditionFailed", "{stale}");
    assert_eq!(stale.key, object.key);

    let etag = source.s3.head(object.key).await.unwrap().1;
    let heads = server.heads();
    destination
        .s3
        .copy_from(
            &source.s3,
            object.key,
            Some((size, etag.as_deref())),
            &options,
        )
        .await
        .unwrap();
    assert_eq!(
        server.heads(),
        heads,
        "the listed etag needs no HEAD either"
    );
    assert_eq!(destination.get(&server, object.key).await, object.stored());
}

/// A missing source fails the copy at once, permanently, naming the object.
#[tokio::test]
async fn missing_source_is_a_permanent_not_found() {
    let server = S3Server::start().await;
    server.create_bucket("missing-source").await;
    let source = Dataset::open(&server, "missing-source", "datasets/a");
    let destination = Dataset::open(&server, "missing-source", "datasets/b");

    let err = destination
        .s3
        .copy_from(
            &source.s3,
            "no/such.bin",
            None,
            &ServerCopyOptions::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.key, "no/such.bin");
    assert_eq!(err.kind, ErrorKind::NotFound, "{err}");
    assert!(!err.is_temporary(), "not-found must be permanent: {err}");
    assert!(
        err.message
            .contains("s3://missing-source/ferry/datasets/a/no/such.bin"),
        "{err}"
    );
    assert_eq!(
        server.writes().multipart_uploads,
        0,
        "nothing is started for a missing source"
    );
}

/// A site on the test server's endpoint that needs no server: building a dataset makes
/// no request.
fn offline(endpoint: &str, access_key: &str, secret: &str, bucket: &str) -> S3Dataset {
    let access = SiteAccess {
        uri: format!("s3://{bucket}/ferry"),
        options: BTreeMap::from([
            ("endpoint".to_owned(), endpoint.to_owned()),
            ("region".to_owned(), "us-east-1".to_owned()),
        ]),
        credentials: HashMap::from([("access_key_id", access_key), ("secret_access_key", secret)])
            .into_iter()
            .map(|(k, v)| (k.to_owned(), SecretString::from(v.to_owned())))
            .collect(),
        path: "datasets/ds".to_owned(),
    };
    common::s3_dataset(&access)
}

/// One request can copy only when one endpoint serves both datasets and one set of
/// credentials can read the source and write the destination.
#[test]
fn can_copy_from_needs_same_endpoint_and_credentials() {
    let here = "http://127.0.0.1:9000";
    let destination = offline(here, "AK", "secret", "dest");
    assert!(destination.can_copy_from(&offline(here, "AK", "secret", "src")));
    assert!(!destination.can_copy_from(&offline(here, "AK", "other secret", "src")));
    assert!(!destination.can_copy_from(&offline(here, "OTHER", "secret", "src")));
    assert!(!destination.can_copy_from(&offline("http://127.0.0.1:9001", "AK", "secret", "src")));
}
