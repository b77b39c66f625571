//! The Azure Blob and GCS emulator fixtures work: each starts, and the services' own
//! SDKs write and read back bytes, content types and user metadata through them.
//! `gcs_json_api` and `azure_blob_api` pin, over plain HTTP, the emulator behaviours
//! Ferry's GCS and Azure code is written against, quirks included.

#![allow(clippy::unwrap_used)]

mod azure_blob_api;
mod gcs_json_api;

use std::collections::BTreeMap;

use ferry_proto::v1::Tier;
use ferry_tests::{clients::SdkClient, Azurite, GcsEmulator, Object};

const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;

/// Deterministic, non-repeating-looking bytes so a misplaced chunk shows up as a diff.
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i.wrapping_mul(31) ^ (i >> 11)) as u8 ^ seed)
        .collect()
}

fn metadata(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// A plain HTTP client that shows every answer as it came: no redirects followed
/// (resumable uploads answer 308 without a Location).
fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The objects the smoke tests write: an empty one and a 3 MiB one, each with a
/// content type and user metadata, under keys with a space and non-ASCII letters.
fn smoke_objects() -> BTreeMap<String, Object> {
    BTreeMap::from([
        (
            "smoke/empty.txt".to_owned(),
            Object {
                bytes: Vec::new(),
                content_type: Some("text/plain".to_owned()),
                metadata: metadata(&[("owner", "team-a")]),
            },
        ),
        (
            "smoke/dir with space/big 文件.bin".to_owned(),
            Object {
                bytes: pattern(3 * MIB, 7),
                content_type: Some("application/x-ferry-test".to_owned()),
                metadata: metadata(&[("origin", "emulator-smoke"), ("part", "2")]),
            },
        ),
    ])
}

/// Writes [`smoke_objects`] and one object outside their prefix with `client`, reads
/// the prefix back, deletes one and reads again.
async fn round_trip(client: &SdkClient, bucket: &str, log: impl Fn() -> String) {
    client.create_bucket(bucket).await;
    let written = smoke_objects();
    for (key, object) in &written {
        let content_type = object.content_type.as_deref();
        client
            .put_object(bucket, key, &object.bytes, content_type, &object.metadata)
            .await;
    }
    client
        .put_object(bucket, "elsewhere/other", b"x", None, &BTreeMap::new())
        .await;

    let read = client.read_back(bucket, "smoke/").await;
    assert_eq!(read, written, "emulator log:\n{}", log());

    client.delete(bucket, "smoke/empty.txt").await;
    let read = client.read_back(bucket, "smoke/").await;
    let keys: Vec<&String> = read.keys().collect();
    assert_eq!(keys, ["smoke/dir with space/big 文件.bin"]);
}

#[tokio::test]
async fn azurite_round_trips_objects_through_the_azure_sdk() {
    let azurite = Azurite::start().await;
    round_trip(&azurite.client(), "smoke", || azurite.log()).await;
    let read = azurite.read_back("smoke", "").await;
    assert_eq!(read.len(), 2, "the fixture's read_back is the client's");

    let (site, credentials) = azurite.site("azure", "smoke", "ferry/", Tier::Hot);
    assert_eq!(site.uri, "azblob://smoke/ferry");
    assert_eq!(site.options["endpoint"], azurite.endpoint());
    assert_eq!(site.options["account_name"], "devstoreaccount1");
    assert_eq!(credentials["account_key"], azurite.account_key());
}

#[tokio::test]
async fn fake_gcs_round_trips_objects_through_the_google_sdk() {
    let gcs = GcsEmulator::start().await;
    round_trip(&gcs.client(), "smoke", || gcs.log()).await;
    let read = gcs.read_back("smoke", "").await;
    assert_eq!(read.len(), 2, "the fixture's read_back is the client's");

    let (site, credentials) = gcs.site("gcs", "smoke", "", Tier::Cold);
    assert_eq!(site.uri, "gs://smoke");
    assert_eq!(site.options["endpoint"], gcs.endpoint());
    assert!(credentials.is_empty(), "the emulator is anonymous");
}

#[tokio::test]
async fn download_all_writes_files_and_a_manifest() {
    let gcs = GcsEmulator::start().await;
    let client = gcs.client();
    client.create_bucket("dl").await;
    let md = metadata(&[("k", "v")]);
    client
        .put_object("dl", "a/1", b"one", Some("text/plain"), &md)
        .await;
    client
        .put_object("dl", "a/2", b"", None, &BTreeMap::new())
        .await;

    let into = tempfile::tempdir().unwrap();
    let listed = client.download_all("dl", "a/", into.path()).await;
    let summary: Vec<_> = listed
        .iter()
        .map(|d| {
            let bytes = std::fs::read(&d.path).unwrap();
            (d.key.as_str(), d.size, d.content_type.as_deref(), bytes)
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("a/1", 3, Some("text/plain"), b"one".to_vec()),
            // The SDK sends its own default when none is given.
            ("a/2", 0, Some("application/octet-stream"), Vec::new()),
        ]
    );
    assert_eq!(listed[0].metadata, md);
    assert!(into.path().join("manifest.json").is_file());
}
