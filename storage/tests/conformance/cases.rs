//! The cases every backend must pass, each an `async fn(Fixture)`.

use std::{collections::BTreeMap, pin::pin};

use bytes::Bytes;
use ferry_storage::{
    list, list_sizes, Attributes, ErrorKind, FilterSpec, ObjectError, ObjectFilter, ObjectInfo,
    Operation, Store,
};
use ferry_tests::{
    dataset::noise,
    s3::{Answer, ServerSideOp},
};
use futures::{stream, StreamExt, TryStreamExt};
use opendal::Buffer;

use crate::fixture::{Fixture, Kind};

const MIB: usize = 1024 * 1024;
/// Chunks of a large write: above S3's 5 MiB minimum part and GCS's 256 KiB alignment.
const CHUNK: usize = 5 * MIB;

async fn listed(store: &Store) -> BTreeMap<String, ObjectInfo> {
    list(store.op())
        .map_ok(|o| (o.key.clone(), o))
        .try_collect()
        .await
        .unwrap_or_else(|e: ObjectError| panic!("listing: {e}"))
}

async fn read(store: &Store, key: &str) -> Vec<u8> {
    store
        .op()
        .read(key)
        .await
        .unwrap_or_else(|e| panic!("reading {key}: {e}"))
        .to_vec()
}

/// Writes `bytes` in pieces through a chunked writer, as a copy does.
async fn write_in_pieces(store: &Store, key: &str, bytes: &[u8], attributes: &Attributes) {
    let mut writer = store.writer(key, attributes, CHUNK, 2).await.unwrap();
    for piece in bytes.chunks(MIB + 7) {
        writer
            .write(Buffer::from(Bytes::copy_from_slice(piece)))
            .await
            .unwrap_or_else(|e| panic!("writing {key}: {e}"));
    }
    let written = writer
        .close()
        .await
        .unwrap_or_else(|e| panic!("closing {key}: {e}"));
    assert_eq!(written.size, bytes.len() as u64, "{key}");
}

/// More keys than three listing pages, under two prefixes, of many sizes: the listing
/// gives each exactly once with its size, a listing under a prefix only its keys, and a
/// filter exactly the keys it takes.
pub async fn listing_pages_through_thousands_of_keys(fx: Fixture) {
    let keys: Vec<(String, usize)> = (0..2600usize)
        .map(|i| {
            let folder = if i % 5 == 0 { "other" } else { "logs" };
            let kind = if i % 2 == 0 { "json" } else { "bin" };
            (format!("{folder}/part-{i:05}.{kind}"), i % 300)
        })
        .collect();
    stream::iter(keys.iter())
        .map(|(key, size)| {
            let store = &fx.store;
            async move {
                store
                    .write(key, noise(*size, *size as u64), &Attributes::default())
                    .await
                    .unwrap_or_else(|e| panic!("writing {key}: {e}"));
            }
        })
        .buffer_unordered(32)
        .collect::<Vec<()>>()
        .await;

    let all = listed(&fx.store).await;
    let expected: BTreeMap<&str, u64> = keys.iter().map(|(k, s)| (k.as_str(), *s as u64)).collect();
    assert_eq!(
        all.iter()
            .map(|(k, o)| (k.as_str(), o.size))
            .collect::<BTreeMap<_, _>>(),
        expected
    );

    let logs: Vec<String> = list_sizes(fx.store.op(), "logs/", None)
        .map_ok(|o| o.key)
        .try_collect()
        .await
        .unwrap();
    let mut logs = logs;
    logs.sort();
    let expected_logs: Vec<&str> = expected
        .keys()
        .copied()
        .filter(|k| k.starts_with("logs/"))
        .collect();
    assert_eq!(logs, expected_logs, "a listing under a prefix");

    let filter = ObjectFilter::new(&FilterSpec {
        prefix: "logs/".into(),
        include: vec!["**/*.json".into()],
        exclude: vec!["**/part-000*".into()],
        min_size: 100,
        max_size: Some(200),
        ..Default::default()
    })
    .unwrap();
    let taken: Vec<&str> = all
        .values()
        .filter(|o| filter.accepts(o))
        .map(|o| o.key.as_str())
        .collect();
    let expected_taken: Vec<&str> = keys
        .iter()
        .filter(|(k, s)| {
            k.starts_with("logs/")
                && k.ends_with(".json")
                && !k.starts_with("logs/part-000")
                && (100..=200).contains(s)
        })
        .map(|(k, _)| k.as_str())
        .collect();
    assert!(expected_taken.len() > 100, "the filter keeps a real share");
    assert_eq!(taken, expected_taken);
    // Every listed object has a modification time, which age filters need (the memory
    // store, for tests only, keeps none).
    if fx.kind != Kind::Memory {
        assert!(all.values().all(|o| o.last_modified.is_some()));
    }
}

/// Ranged reads give exactly the bytes asked for.
pub async fn ranged_reads_give_exactly_the_range(fx: Fixture) {
    let bytes = noise(3 * MIB + 5, 11);
    fx.store
        .write("ranged.bin", bytes.clone(), &Attributes::default())
        .await
        .unwrap();
    let len = bytes.len() as u64;
    for range in [
        0..1,
        0..10,
        1000..2000,
        MIB as u64..2 * MIB as u64 + 3,
        len - 7..len,
        0..len,
    ] {
        let got = fx
            .store
            .op()
            .read_with("ranged.bin")
            .range(range.clone())
            .await
            .unwrap_or_else(|e| panic!("reading {range:?}: {e}"))
            .to_vec();
        assert!(
            got == bytes[range.start as usize..range.end as usize],
            "range {range:?}: {} bytes",
            got.len()
        );
    }
}

/// An empty object, and one several chunks long written in pieces (an S3 multipart
/// upload, Azure blocks, a GCS resumable session), read back whole with their
/// attributes, where the backend keeps them.
pub async fn empty_and_multi_chunk_objects_round_trip_with_their_attributes(fx: Fixture) {
    let attributes = Attributes {
        content_type: Some("application/x-ferry-test".into()),
        user_metadata: BTreeMap::from([
            ("owner".to_owned(), "team-a".to_owned()),
            ("schema".to_owned(), "v2".to_owned()),
        ]),
    };
    fx.store
        .write("empty.bin", Bytes::new(), &attributes)
        .await
        .unwrap();
    let large = noise(3 * CHUNK + 12_345, 12);
    write_in_pieces(&fx.store, "dir/large.bin", &large, &attributes).await;

    assert!(read(&fx.store, "empty.bin").await.is_empty());
    assert!(
        read(&fx.store, "dir/large.bin").await == large,
        "large bytes differ"
    );
    let (keeps_type, keeps_metadata) = fx.keeps();
    for key in ["empty.bin", "dir/large.bin"] {
        let stat = fx.store.op().stat(key).await.unwrap();
        let kept = Attributes::of(&stat);
        if keeps_type {
            assert_eq!(kept.content_type, attributes.content_type, "{key}");
        }
        if keeps_metadata {
            assert_eq!(kept.user_metadata, attributes.user_metadata, "{key}");
        }
    }
    // What the backend cannot keep is said, not silently lost.
    let (_, dropped) = fx.store.keepable(attributes.clone());
    assert_eq!(dropped, !(keeps_type && keeps_metadata));
    if fx.kind == Kind::S3 {
        let etag = fx.store.op().stat("dir/large.bin").await.unwrap();
        let etag = etag.etag().unwrap_or_default().trim_matches('"').to_owned();
        assert!(
            etag.ends_with("-4"),
            "an S3 multipart upload of 4 parts: {etag}"
        );
    }
}

/// Deleting removes an object; deleting it again succeeds.
pub async fn delete_removes_and_is_idempotent(fx: Fixture) {
    fx.store
        .write("gone.txt", b"bye".to_vec(), &Attributes::default())
        .await
        .unwrap();
    fx.store
        .write("kept.txt", b"hi".to_vec(), &Attributes::default())
        .await
        .unwrap();
    for _ in 0..2 {
        fx.store.op().delete("gone.txt").await.unwrap();
    }
    let keys: Vec<String> = listed(&fx.store).await.into_keys().collect();
    assert_eq!(keys, ["kept.txt"]);
}

/// A missing object is not found, permanently, and the error names the object and the
/// operation.
pub async fn a_missing_object_is_not_found(fx: Fixture) {
    let key = "no such/ключ.bin";
    let stat = fx.store.op().stat(key).await.unwrap_err();
    let read = fx.store.op().read(key).await.unwrap_err();
    for (operation, err) in [(Operation::Stat, stat), (Operation::Read, read)] {
        let e = ObjectError::from_opendal(fx.store.op(), key, operation, err);
        assert_eq!(e.kind, ErrorKind::NotFound, "{e}");
        assert!(!e.is_temporary());
        assert!(e.message.starts_with(operation.verb()), "{e}");
        assert!(e.message.contains(key), "{e}");
    }
}

/// A wrong key is refused as permission denied, at once: never retried.
pub async fn a_wrong_key_is_permission_denied_and_never_retried(fx: Fixture) {
    fx.store
        .write("k.txt", b"v".to_vec(), &Attributes::default())
        .await
        .unwrap();
    let wrong = fx.with_wrong_key();
    let listing = pin!(list(wrong.op())).try_next().await.unwrap_err();
    assert_eq!(listing.kind, ErrorKind::PermissionDenied, "{listing}");
    assert_eq!(listing.operation, Operation::List);
    let write = wrong
        .write("k.txt", b"w".to_vec(), &Attributes::default())
        .await
        .unwrap_err();
    assert_eq!(write.kind, ErrorKind::PermissionDenied, "{write}");
    assert_eq!(wrong.retries(), 0, "a refusal is not retried");
    assert_eq!(read(&fx.store, "k.txt").await, b"v", "nothing was written");
}

/// An S3-compatible service that completes a multipart upload but answers with another
/// root element than AWS's: the write stands. One that answers 200 with an `<Error>`
/// document: the write fails, temporarily for `InternalError` (and is retried, so one
/// such answer is absorbed), for good otherwise, and nothing is stored.
pub async fn s3_answers_unlike_aws_end_as_they_should(fx: Fixture) {
    let faults = fx.s3_server().faults();
    let large = noise(2 * CHUNK + 1, 13);
    let attributes = Attributes::default();

    faults.answer(ServerSideOp::CompleteMultipartUpload, Answer::ForeignRoot);
    write_in_pieces(&fx.store, "foreign.bin", &large, &attributes).await;
    assert!(faults.foreign_roots() >= 1);
    assert!(read(&fx.store, "foreign.bin").await == large);

    faults.answer_next(
        ServerSideOp::CompleteMultipartUpload,
        1,
        Answer::EmbeddedError("InternalError"),
    );
    write_in_pieces(&fx.store, "retried.bin", &large, &attributes).await;
    assert_eq!(faults.embedded_errors(), 1);
    assert!(fx.store.retries() >= 1, "the temporary error was retried");
    assert!(read(&fx.store, "retried.bin").await == large);

    faults.answer(
        ServerSideOp::CompleteMultipartUpload,
        Answer::EmbeddedError("AccessDenied"),
    );
    let mut writer = fx
        .store
        .writer("refused.bin", &attributes, CHUNK, 2)
        .await
        .unwrap();
    writer
        .write(Buffer::from(Bytes::from(large.clone())))
        .await
        .unwrap();
    let refused = writer.close().await.unwrap_err();
    assert!(!refused.is_temporary(), "{refused}");
    assert!(refused.message.contains("AccessDenied"), "{refused}");
    writer.abort().await;
    let missing = fx.store.op().stat("refused.bin").await.unwrap_err();
    assert_eq!(missing.kind(), opendal::ErrorKind::NotFound);
}
