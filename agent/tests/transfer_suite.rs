//! One transfer suite, run for each pair of backends: a mixed dataset (empty object,
//! spaces and unicode in keys, nested prefixes, an object above the multipart
//! threshold) is listed, copied, checked byte for byte with an independent reader
//! (std::fs for file sites, aws-sdk-s3 for S3 sites), verified, corrupted and verified
//! again.

#![allow(clippy::unwrap_used)]

use std::{
    collections::BTreeMap,
    path::PathBuf,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
};

use aws_sdk_s3::primitives::ByteStream;
use ferry_agent::{
    copy_object, delete_object, hash_object, hash_streamed, list, operator, verify_object,
    xxh3_hex, CopyOptions, ObjectInfo, SiteAccess, TransferError, VerifyMode,
};
use ferry_tests::{dataset::noise, s3::error_chain, S3Server};
use futures::TryStreamExt;
use opendal::{ErrorKind, Operator};
use secrecy::SecretString;
use xxhash_rust::xxh3::xxh3_128;

const MIB: usize = 1024 * 1024;
/// Above the 8 MiB chunk size, so it goes as a 3-part multipart upload.
const LARGE: usize = 20 * MIB;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Fs,
    Memory,
    S3,
}

struct TestObject {
    key: &'static str,
    bytes: Vec<u8>,
    content_type: Option<&'static str>,
    metadata: BTreeMap<String, String>,
}

fn meta(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn dataset() -> Vec<TestObject> {
    vec![
        TestObject {
            key: "empty.bin",
            bytes: Vec::new(),
            content_type: None,
            metadata: BTreeMap::new(),
        },
        TestObject {
            key: "dir with space/naïve 文件.txt",
            bytes: "grüße, 世界\n".repeat(1000).into_bytes(),
            content_type: Some("text/plain; charset=utf-8"),
            metadata: meta(&[("owner", "team-a")]),
        },
        TestObject {
            key: "a/b/c/deep.json",
            bytes: br#"{"nested": true}"#.to_vec(),
            content_type: Some("application/json"),
            metadata: meta(&[("origin", "suite"), ("schema", "v2")]),
        },
        TestObject {
            key: "top.txt",
            bytes: noise(4097, 1),
            content_type: None,
            metadata: BTreeMap::new(),
        },
        TestObject {
            key: "large/blob.bin",
            bytes: noise(LARGE, 2),
            content_type: Some("application/octet-stream"),
            metadata: meta(&[("kind", "large")]),
        },
    ]
}

static UNIQUE: AtomicUsize = AtomicUsize::new(0);

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", UNIQUE.fetch_add(1, Ordering::Relaxed))
}

/// A dataset `ds` on a fresh site of one kind, with an independent way in.
struct Site {
    kind: Kind,
    access: SiteAccess,
    op: Operator,
    /// File sites: the dataset directory.
    dir: Option<PathBuf>,
    /// S3 sites: the server, bucket and the key prefix of the dataset.
    s3: Option<(Arc<S3Server>, String, String)>,
    _temp: Option<tempfile::TempDir>,
}

impl Site {
    async fn new(kind: Kind, server: Option<&Arc<S3Server>>) -> Site {
        Site::with_options(kind, server, BTreeMap::new()).await
    }

    async fn with_options(
        kind: Kind,
        server: Option<&Arc<S3Server>>,
        extra_options: BTreeMap<String, String>,
    ) -> Site {
        let path = "datasets/ds".to_owned();
        match kind {
            Kind::Fs => {
                let temp = tempfile::tempdir().unwrap();
                let root = std::fs::canonicalize(temp.path()).unwrap();
                let access = SiteAccess {
                    uri: format!("file://{}/site root", root.display()),
                    options: extra_options,
                    credentials: BTreeMap::new(),
                    path,
                };
                let op = operator(&access).unwrap();
                Site {
                    kind,
                    dir: Some(root.join("site root/datasets/ds")),
                    access,
                    op,
                    s3: None,
                    _temp: Some(temp),
                }
            }
            Kind::Memory => {
                let access = SiteAccess {
                    uri: format!("memory://{}", unique("suite")),
                    options: extra_options,
                    credentials: BTreeMap::new(),
                    path,
                };
                let op = operator(&access).unwrap();
                Site {
                    kind,
                    access,
                    op,
                    dir: None,
                    s3: None,
                    _temp: None,
                }
            }
            Kind::S3 => {
                let server = server.expect("an S3 site needs the server").clone();
                let bucket = unique("bucket");
                server.create_bucket(&bucket).await;
                let mut options = extra_options;
                options.insert("endpoint".into(), server.endpoint());
                options.insert("region".into(), server.region().into());
                options.insert("force_path_style".into(), "true".into());
                let credentials = [
                    ("access_key_id", server.access_key()),
                    ("secret_access_key", server.secret_key()),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), SecretString::from(v.to_owned())))
                .collect();
                let access = SiteAccess {
                    uri: format!("s3://{bucket}/site-prefix"),
                    options,
                    credentials,
                    path,
                };
                let op = operator(&access).unwrap();
                Site {
                    kind,
                    access,
                    op,
                    dir: None,
                    s3: Some((server, bucket, "site-prefix/datasets/ds/".to_owned())),
                    _temp: None,
                }
            }
        }
    }

    fn file(&self, key: &str) -> PathBuf {
        self.dir.as_deref().unwrap().join(key)
    }

    /// Writes an object without going through the code under test where the backend
    /// allows it (memory has no other way in). Stores what the backend can hold: S3
    /// content type and user metadata, memory the content type, files neither.
    async fn seed(&self, object: &TestObject) {
        match self.kind {
            Kind::Fs => {
                let path = self.file(object.key);
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(path, &object.bytes).unwrap();
            }
            Kind::Memory => {
                let mut write = self.op.write_with(object.key, object.bytes.clone());
                if let Some(content_type) = object.content_type {
                    write = write.content_type(content_type);
                }
                write.await.unwrap();
            }
            Kind::S3 => {
                let (server, bucket, prefix) = self.s3.as_ref().unwrap();
                server
                    .put_object(
                        bucket,
                        &format!("{prefix}{}", object.key),
                        object.bytes.clone(),
                        object.content_type,
                        &object.metadata,
                    )
                    .await;
            }
        }
    }

    /// Reads an object back independently of the code under test (except memory).
    async fn read_back(&self, key: &str) -> Vec<u8> {
        match self.kind {
            Kind::Fs => std::fs::read(self.file(key)).unwrap(),
            Kind::Memory => self.op.read(key).await.unwrap().to_vec(),
            Kind::S3 => {
                let (server, bucket, prefix) = self.s3.as_ref().unwrap();
                let out = server
                    .client()
                    .get_object()
                    .bucket(bucket)
                    .key(format!("{prefix}{key}"))
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("reading back {key}: {}", error_chain(&e)));
                out.body.collect().await.unwrap().into_bytes().to_vec()
            }
        }
    }

    /// Flips one byte in the middle of the object, keeping its size.
    async fn corrupt(&self, key: &str) {
        let mut bytes = self.read_back(key).await;
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x01;
        match self.kind {
            Kind::Fs => std::fs::write(self.file(key), &bytes).unwrap(),
            Kind::Memory => self.op.write(key, bytes).await.map(|_| ()).unwrap(),
            Kind::S3 => {
                let (server, bucket, prefix) = self.s3.as_ref().unwrap();
                server
                    .client()
                    .put_object()
                    .bucket(bucket)
                    .key(format!("{prefix}{key}"))
                    .body(ByteStream::from(bytes))
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("corrupting {key}: {}", error_chain(&e)));
            }
        }
    }
}

async fn listed(op: &Operator) -> BTreeMap<String, ObjectInfo> {
    list(op)
        .map_ok(|info| (info.key.clone(), info))
        .try_collect()
        .await
        .unwrap_or_else(|e: TransferError| panic!("listing: {e}"))
}

fn assert_missing_key_error(err: &TransferError, key: &str, operation: &str) {
    assert_eq!(err.key, key);
    assert_eq!(err.operation, operation);
    assert_eq!(err.kind, ErrorKind::NotFound, "{err}");
    assert!(!err.temporary, "not-found must be permanent: {err}");
    assert!(err.message.contains(key), "{err}");
    // "stat s3://…", "reading s3://…": the operation, or its verb, comes first.
    assert!(
        err.message.starts_with(operation),
        "the operation leads the message: {err}"
    );
}

async fn run_suite(from: Kind, to: Kind) {
    let server = if from == Kind::S3 || to == Kind::S3 {
        Some(Arc::new(S3Server::start().await))
    } else {
        None
    };
    let src = Site::new(from, server.as_ref()).await;
    let dst = Site::new(to, server.as_ref()).await;
    let objects = dataset();
    for object in &objects {
        src.seed(object).await;
    }

    // The listing is exactly the dataset: keys, sizes, and the attributes the source
    // backend holds.
    let source_listing = listed(&src.op).await;
    assert_eq!(
        source_listing
            .keys()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        {
            let mut keys: Vec<_> = objects.iter().map(|o| o.key).collect();
            keys.sort();
            keys
        }
    );
    for object in &objects {
        let info = &source_listing[object.key];
        assert_eq!(info.size, object.bytes.len() as u64, "{}", object.key);
        // S3 gives an object stored without a content type a default one.
        if from != Kind::Fs && object.content_type.is_some() {
            assert_eq!(
                info.content_type.as_deref(),
                object.content_type,
                "{}",
                object.key
            );
        }
        if from == Kind::S3 {
            assert_eq!(info.user_metadata, object.metadata, "{}", object.key);
            assert!(info.last_modified.is_some(), "{}", object.key);
        }
    }

    // Copy every object; the hash is that of the source bytes.
    let options = CopyOptions::default();
    let mut etags = BTreeMap::new();
    for object in &objects {
        let copied = copy_object(&src.op, &dst.op, object.key, &options)
            .await
            .unwrap_or_else(|e| panic!("copying {}: {e}", object.key));
        // S3 gives each object an etag, and the copy notes it; others are left to sizes.
        assert_eq!(copied.etag.is_some(), to == Kind::S3, "{}", object.key);
        etags.insert(object.key, copied.etag);
        assert_eq!(copied.size, object.bytes.len() as u64, "{}", object.key);
        assert_eq!(
            xxh3_hex(copied.source_xxh3),
            xxh3_hex(xxh3_128(&object.bytes)),
            "{}",
            object.key
        );
        let source = &source_listing[object.key];
        let keeps_content_type = matches!(to, Kind::S3 | Kind::Memory);
        let keeps_user_metadata = matches!(to, Kind::S3 | Kind::Fs);
        assert_eq!(
            copied.metadata_dropped,
            (source.content_type.is_some() && !keeps_content_type)
                || (!source.user_metadata.is_empty() && !keeps_user_metadata),
            "{from:?}->{to:?} {}",
            object.key
        );
    }

    // The destination lists the same keys and sizes and holds the same bytes.
    let destination_listing = listed(&dst.op).await;
    assert_eq!(
        destination_listing
            .values()
            .map(|i| (i.key.clone(), i.size))
            .collect::<Vec<_>>(),
        source_listing
            .values()
            .map(|i| (i.key.clone(), i.size))
            .collect::<Vec<_>>()
    );
    for object in &objects {
        let bytes = dst.read_back(object.key).await;
        assert!(
            bytes == object.bytes,
            "{from:?}->{to:?}: bytes of {} differ at the destination ({} vs {} bytes)",
            object.key,
            bytes.len(),
            object.bytes.len()
        );
    }

    // Attributes survive where both sides hold them.
    if from == Kind::S3 && to == Kind::S3 {
        let (server, bucket, prefix) = dst.s3.as_ref().unwrap();
        for object in &objects {
            let head = server
                .client()
                .head_object()
                .bucket(bucket)
                .key(format!("{prefix}{}", object.key))
                .send()
                .await
                .unwrap();
            if let Some(content_type) = object.content_type {
                assert_eq!(head.content_type(), Some(content_type), "{}", object.key);
            }
            let metadata: BTreeMap<String, String> = head
                .metadata()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .collect();
            assert_eq!(metadata, object.metadata, "{}", object.key);
        }
    }
    for object in &objects {
        let (source, destination) = (
            &source_listing[object.key],
            &destination_listing[object.key],
        );
        if matches!(to, Kind::S3 | Kind::Memory) && source.content_type.is_some() {
            assert_eq!(
                destination.content_type, source.content_type,
                "{}",
                object.key
            );
        }
        if matches!(to, Kind::S3 | Kind::Fs) {
            assert_eq!(
                destination.user_metadata, source.user_metadata,
                "{}",
                object.key
            );
        }
    }
    if to == Kind::S3 {
        // 20 MiB at 8 MiB chunks went as a 3-part multipart upload.
        let (server, bucket, prefix) = dst.s3.as_ref().unwrap();
        let head = server
            .client()
            .head_object()
            .bucket(bucket)
            .key(format!("{prefix}large/blob.bin"))
            .send()
            .await
            .unwrap();
        let etag = head
            .e_tag()
            .unwrap_or_default()
            .trim_matches('"')
            .to_owned();
        assert!(etag.ends_with("-3"), "multipart etag expected, got {etag}");
    }

    // Verification: both modes pass on a faithful copy; after one flipped byte only
    // the full mode notices.
    let large = objects.iter().find(|o| o.key == "large/blob.bin").unwrap();
    let small = objects
        .iter()
        .find(|o| o.key == "dir with space/naïve 文件.txt")
        .unwrap();
    for object in [large, small] {
        let expected = xxh3_128(&object.bytes);
        let size = object.bytes.len() as u64;
        let etag = etags[object.key].as_deref();
        let full = verify_object(&dst.op, object.key, size, expected, None, VerifyMode::Full)
            .await
            .unwrap();
        assert!(full.matches, "{}", object.key);
        assert_eq!(full.destination_xxh3, Some(expected));
        let quick = verify_object(&dst.op, object.key, size, expected, etag, VerifyMode::Quick)
            .await
            .unwrap();
        assert!(quick.matches, "{}: {quick:?}", object.key);
        assert_eq!(
            hash_object(&dst.op, object.key).await.unwrap(),
            (size, expected)
        );
        assert_eq!(
            hash_streamed(&dst.op, object.key).await.unwrap(),
            (size, expected)
        );

        dst.corrupt(object.key).await;
        // Rewritten with the same size: quick mode tells by the etag where the store
        // has etags, and cannot tell elsewhere.
        let quick = verify_object(&dst.op, object.key, size, expected, etag, VerifyMode::Quick)
            .await
            .unwrap();
        assert_eq!(quick.matches, to != Kind::S3, "{}: {quick:?}", object.key);
        assert_eq!(quick.destination_xxh3, None);
        assert_eq!(quick.destination_size, size);
        let sizes_only =
            verify_object(&dst.op, object.key, size, expected, None, VerifyMode::Quick)
                .await
                .unwrap();
        assert!(
            sizes_only.matches,
            "without an etag, quick compares sizes only"
        );
        let full = verify_object(&dst.op, object.key, size, expected, None, VerifyMode::Full)
            .await
            .unwrap();
        assert!(
            !full.matches,
            "a flipped byte in {} went unnoticed",
            object.key
        );
        assert_ne!(full.destination_xxh3, Some(expected));

        // A re-copy repairs it.
        copy_object(&src.op, &dst.op, object.key, &options)
            .await
            .unwrap();
        assert!(
            verify_object(&dst.op, object.key, size, expected, None, VerifyMode::Full)
                .await
                .unwrap()
                .matches
        );
    }

    let wrong_size = verify_object(
        &dst.op,
        "top.txt",
        4096,
        xxh3_128(&noise(4097, 1)),
        None,
        VerifyMode::Quick,
    )
    .await
    .unwrap();
    assert!(!wrong_size.matches);

    // A missing key is a permanent error that names the key and the operation.
    let missing = "no such/ключ.bin";
    let err = copy_object(&src.op, &dst.op, missing, &options)
        .await
        .unwrap_err();
    assert_missing_key_error(&err, missing, "stat");
    assert!(
        err.message.contains(&format!("datasets/ds/{missing}")),
        "the message locates the object: {err}"
    );
    let err = hash_object(&dst.op, missing).await.unwrap_err();
    assert_missing_key_error(&err, missing, "stat");
    let err = hash_streamed(&dst.op, missing).await.unwrap_err();
    assert_missing_key_error(&err, missing, "read");
    let err = verify_object(&dst.op, missing, 1, 1, None, VerifyMode::Full)
        .await
        .unwrap_err();
    assert_missing_key_error(&err, missing, "read");

    // Retiring a source object removes it, and retiring it again is harmless.
    delete_object(&src.op, "top.txt").await.unwrap();
    delete_object(&src.op, "top.txt").await.unwrap();
    assert!(!listed(&src.op).await.contains_key("top.txt"));
    assert!(listed(&dst.op).await.contains_key("top.txt"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fs_to_s3() {
    run_suite(Kind::Fs, Kind::S3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_to_fs() {
    run_suite(Kind::S3, Kind::Fs).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_to_s3() {
    run_suite(Kind::S3, Kind::S3).await;
}

#[tokio::test]
async fn memory_to_fs() {
    run_suite(Kind::Memory, Kind::Fs).await;
}

#[tokio::test]
async fn s3_to_memory() {
    run_suite(Kind::S3, Kind::Memory).await;
}

#[tokio::test]
async fn fs_to_fs() {
    run_suite(Kind::Fs, Kind::Fs).await;
}

/// Two operators built from the same memory site see the same objects.
#[tokio::test]
async fn memory_sites_are_shared_between_operators() {
    let site = Site::new(Kind::Memory, None).await;
    site.op
        .write("shared/key", b"hello".to_vec())
        .await
        .unwrap();
    let again = operator(&site.access).unwrap();
    let info: Vec<ObjectInfo> = list(&again).try_collect().await.unwrap();
    assert_eq!(info.len(), 1);
    assert_eq!(info[0].key, "shared/key");
    assert_eq!(again.read("shared/key").await.unwrap().to_vec(), b"hello");
}

/// The site's storage class reaches the S3 server: s3s-fs accepts only STANDARD and
/// REDUCED_REDUNDANCY, so a valid class succeeds and an invalid one is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_storage_class_is_sent() {
    let server = Arc::new(S3Server::start().await);
    let src = Site::new(Kind::Fs, None).await;
    src.seed(&TestObject {
        key: "k.bin",
        bytes: noise(1000, 3),
        content_type: None,
        metadata: BTreeMap::new(),
    })
    .await;

    let class = |c: &str| [("storage_class".to_owned(), c.to_owned())].into();
    let accepted = Site::with_options(Kind::S3, Some(&server), class("REDUCED_REDUNDANCY")).await;
    copy_object(&src.op, &accepted.op, "k.bin", &CopyOptions::default())
        .await
        .unwrap();
    assert_eq!(accepted.read_back("k.bin").await, noise(1000, 3));

    let refused = Site::with_options(Kind::S3, Some(&server), class("NO_SUCH_CLASS")).await;
    let err = copy_object(&src.op, &refused.op, "k.bin", &CopyOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.operation, "write", "{err}");
    assert!(!err.temporary, "{err}");
    assert!(err.message.starts_with("writing s3://"), "{err}");
}

/// Wrong credentials are a permanent permission error on the listing.
#[tokio::test]
async fn s3_wrong_secret_is_permission_denied() {
    let server = Arc::new(S3Server::start().await);
    let site = Site::new(Kind::S3, Some(&server)).await;
    let mut access = site.access.clone();
    access.credentials.insert(
        "secret_access_key".into(),
        SecretString::from("wrong".to_owned()),
    );
    let op = operator(&access).unwrap();
    let err = list(&op).try_collect::<Vec<_>>().await.unwrap_err();
    assert_eq!(err.operation, "list");
    assert_eq!(err.kind, ErrorKind::PermissionDenied, "{err}");
    assert!(!err.temporary);
    assert!(err.message.starts_with("listing s3://"), "{err}");
}

/// A copy into a file system keeps the source's user metadata as extended attributes
/// when asked to, and writes none when not.
#[tokio::test]
async fn fs_destination_metadata_follows_the_option() {
    let server = Arc::new(S3Server::start().await);
    let src = Site::new(Kind::S3, Some(&server)).await;
    src.seed(&TestObject {
        key: "m.txt",
        bytes: b"with metadata".to_vec(),
        content_type: Some("text/plain"),
        metadata: meta(&[("owner", "team-b")]),
    })
    .await;
    let dst = Site::new(Kind::Fs, None).await;

    let kept = copy_object(&src.op, &dst.op, "m.txt", &CopyOptions::default())
        .await
        .unwrap();
    assert!(kept.metadata_dropped, "a file system has no content type");
    let listing = listed(&dst.op).await;
    assert_eq!(listing["m.txt"].user_metadata, meta(&[("owner", "team-b")]));

    let plain = CopyOptions {
        preserve_metadata: false,
        ..CopyOptions::default()
    };
    std::fs::remove_file(dst.file("m.txt")).unwrap();
    copy_object(&src.op, &dst.op, "m.txt", &plain)
        .await
        .unwrap();
    assert!(listed(&dst.op).await["m.txt"].user_metadata.is_empty());
    assert_eq!(std::fs::read(dst.file("m.txt")).unwrap(), b"with metadata");
}
