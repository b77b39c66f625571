//! One transfer suite, run for each pair of backends: a mixed dataset (empty object,
//! spaces and unicode in keys, nested prefixes, an object above the multipart
//! threshold) is listed, copied, checked byte for byte with an independent reader
//! (std::fs for file sites, aws-sdk-s3 for S3 sites), verified, corrupted and verified
//! again.

#![allow(clippy::unwrap_used)]

mod site;

use std::{collections::BTreeMap, sync::Arc};

use ferry_agent::{
    copy_object, delete_object, hash_object, hash_streamed, verify_object, xxh3_hex, CopyOptions,
    VerifyMode,
};
use ferry_storage::{list, ErrorKind, ObjectError, ObjectInfo, Operation};
use ferry_tests::{dataset::noise, S3Server};
use futures::TryStreamExt;
use opendal::Operator;
use site::{dataset, meta, Kind, Site, TestObject};
use xxhash_rust::xxh3::xxh3_128;

async fn listed(op: &Operator) -> BTreeMap<String, ObjectInfo> {
    list(op)
        .map_ok(|info| (info.key.clone(), info))
        .try_collect()
        .await
        .unwrap_or_else(|e: ObjectError| panic!("listing: {e}"))
}

fn assert_missing_key_error(err: &ObjectError, key: &str, operation: Operation) {
    assert_eq!(err.key, key);
    assert_eq!(err.operation, operation);
    assert_eq!(err.kind, ErrorKind::NotFound, "{err}");
    assert!(!err.is_temporary(), "not-found must be permanent: {err}");
    assert!(err.message.contains(key), "{err}");
    // "stat s3://…", "reading s3://…": the operation's verb comes first.
    assert!(
        err.message.starts_with(operation.verb()),
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
    let source_listing = listed(src.store.op()).await;
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
        let copied = copy_object(&src.store, &dst.store, object.key, &options)
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
    let destination_listing = listed(dst.store.op()).await;
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
        let full = verify_object(
            dst.store.op(),
            object.key,
            size,
            expected,
            None,
            VerifyMode::Full,
        )
        .await
        .unwrap();
        assert!(full.matches, "{}", object.key);
        assert_eq!(full.destination_xxh3, Some(expected));
        let quick = verify_object(
            dst.store.op(),
            object.key,
            size,
            expected,
            etag,
            VerifyMode::Quick,
        )
        .await
        .unwrap();
        assert!(quick.matches, "{}: {quick:?}", object.key);
        assert_eq!(
            hash_object(dst.store.op(), object.key).await.unwrap(),
            (size, expected)
        );
        assert_eq!(
            hash_streamed(dst.store.op(), object.key).await.unwrap(),
            (size, expected)
        );

        dst.corrupt(object.key).await;
        // Rewritten with the same size: quick mode tells by the etag where the store
        // has etags, and cannot tell elsewhere.
        let quick = verify_object(
            dst.store.op(),
            object.key,
            size,
            expected,
            etag,
            VerifyMode::Quick,
        )
        .await
        .unwrap();
        assert_eq!(quick.matches, to != Kind::S3, "{}: {quick:?}", object.key);
        assert_eq!(quick.destination_xxh3, None);
        assert_eq!(quick.destination_size, size);
        let sizes_only = verify_object(
            dst.store.op(),
            object.key,
            size,
            expected,
            None,
            VerifyMode::Quick,
        )
        .await
        .unwrap();
        assert!(
            sizes_only.matches,
            "without an etag, quick compares sizes only"
        );
        let full = verify_object(
            dst.store.op(),
            object.key,
            size,
            expected,
            None,
            VerifyMode::Full,
        )
        .await
        .unwrap();
        assert!(
            !full.matches,
            "a flipped byte in {} went unnoticed",
            object.key
        );
        assert_ne!(full.destination_xxh3, Some(expected));

        // A re-copy repairs it.
        copy_object(&src.store, &dst.store, object.key, &options)
            .await
            .unwrap();
        assert!(
            verify_object(
                dst.store.op(),
                object.key,
                size,
                expected,
                None,
                VerifyMode::Full
            )
            .await
            .unwrap()
            .matches
        );
    }

    let wrong_size = verify_object(
        dst.store.op(),
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
    let err = copy_object(&src.store, &dst.store, missing, &options)
        .await
        .unwrap_err();
    assert_missing_key_error(&err, missing, Operation::Stat);
    assert!(
        err.message.contains(&format!("datasets/ds/{missing}")),
        "the message locates the object: {err}"
    );
    let err = hash_object(dst.store.op(), missing).await.unwrap_err();
    assert_missing_key_error(&err, missing, Operation::Stat);
    let err = hash_streamed(dst.store.op(), missing).await.unwrap_err();
    assert_missing_key_error(&err, missing, Operation::Read);
    let err = verify_object(dst.store.op(), missing, 1, 1, None, VerifyMode::Full)
        .await
        .unwrap_err();
    assert_missing_key_error(&err, missing, Operation::Read);

    // Retiring a source object removes it, and retiring it again is harmless.
    delete_object(src.store.op(), "top.txt").await.unwrap();
    delete_object(src.store.op(), "top.txt").await.unwrap();
    assert!(!listed(src.store.op()).await.contains_key("top.txt"));
    assert!(listed(dst.store.op()).await.contains_key("top.txt"));
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

/// The job's storage class reaches the S3 server: s3s-fs accepts only STANDARD and
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

    let accepted = Site::with_class(Kind::S3, Some(&server), Some("REDUCED_REDUNDANCY")).await;
    copy_object(
        &src.store,
        &accepted.store,
        "k.bin",
        &CopyOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(accepted.read_back("k.bin").await, noise(1000, 3));

    let refused = Site::with_class(Kind::S3, Some(&server), Some("NO_SUCH_CLASS")).await;
    let err = copy_object(&src.store, &refused.store, "k.bin", &CopyOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.operation, Operation::Write, "{err}");
    assert!(!err.is_temporary(), "{err}");
    assert!(err.message.starts_with("writing s3://"), "{err}");
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

    let kept = copy_object(&src.store, &dst.store, "m.txt", &CopyOptions::default())
        .await
        .unwrap();
    assert!(kept.metadata_dropped, "a file system has no content type");
    let listing = listed(dst.store.op()).await;
    assert_eq!(listing["m.txt"].user_metadata, meta(&[("owner", "team-b")]));

    let plain = CopyOptions {
        preserve_metadata: false,
        ..CopyOptions::default()
    };
    std::fs::remove_file(dst.file("m.txt")).unwrap();
    copy_object(&src.store, &dst.store, "m.txt", &plain)
        .await
        .unwrap();
    assert!(listed(dst.store.op()).await["m.txt"]
        .user_metadata
        .is_empty());
    assert_eq!(std::fs::read(dst.file("m.txt")).unwrap(), b"with metadata");
}
