//! Migrations end to end: the real control plane, a real agent, a private nats-server
//! and an in-process S3 server. Every check reads the destination independently (std::fs
//! or aws-sdk-s3 directly), never through Ferry's own code.

#![allow(clippy::unwrap_used)]

use std::{collections::BTreeMap, collections::HashMap, path::Path, time::Duration};

use ferry_proto::v1 as pb;
use ferry_sdk::Client;
use ferry_tests::{
    dataset::{mixed, read_tree, wait_for_end, wait_for_objects, write_tree},
    s3::S3Server,
    Agent, ControlPlane,
};

const LARGE: usize = 20 << 20;
const TIMEOUT: Duration = Duration::from_secs(120);

mod backends;
mod bandwidth;
mod compat;
mod durability;
mod faults;
mod final_pass;
mod lifecycle;
mod server_side;
mod sync;
mod transfer;

/// Creates a file-system site `name` at `root`.
async fn fs_site(client: &Client, name: &str, root: &Path, tier: pb::Tier) {
    let site = pb::Site {
        name: name.into(),
        uri: format!("file://{}", root.display()),
        tier: tier.into(),
        ..Default::default()
    };
    client
        .create_site(site, HashMap::new())
        .await
        .expect("creating a file-system site");
}

async fn s3_site(client: &Client, s3: &S3Server, name: &str, bucket: &str, tier: pb::Tier) {
    s3_site_with_secret(client, s3, name, bucket, tier, s3.secret_key()).await;
}

/// An S3 site on the test server whose credentials carry `secret`.
async fn s3_site_with_secret(
    client: &Client,
    s3: &S3Server,
    name: &str,
    bucket: &str,
    tier: pb::Tier,
    secret: &str,
) {
    s3.create_bucket(bucket).await;
    let (site, mut credentials) = s3.site(name, bucket, tier);
    credentials.insert("secret_access_key".to_owned(), secret.to_owned());
    client
        .create_site(site, credentials)
        .await
        .expect("creating an s3 site");
}

async fn dataset(client: &Client, name: &str, site: &str, path: &str) {
    client
        .create_dataset(pb::Dataset {
            name: name.into(),
            site: site.into(),
            path: path.into(),
            ..Default::default()
        })
        .await
        .expect("creating the dataset");
}

async fn plan(
    client: &Client,
    dataset: &str,
    to: &str,
    verify: pb::VerifyMode,
    key: &str,
) -> pb::Job {
    plan_job(
        client,
        pb::PlanMigrationRequest {
            dataset: dataset.into(),
            destination_site: to.into(),
            verify_mode: verify.into(),
            idempotency_key: key.into(),
            ..Default::default()
        },
    )
    .await
}

/// Plans `request`, which must be accepted, and returns its job.
async fn plan_job(client: &Client, request: pb::PlanMigrationRequest) -> pb::Job {
    client
        .plan_migration(request)
        .await
        .expect("planning the migration")
        .job
        .expect("a planned job")
}

/// Objects read back with aws-sdk-s3: key → (bytes, content type, metadata).
type BucketObjects = BTreeMap<String, (Vec<u8>, Option<String>, HashMap<String, String>)>;

/// The objects below `bucket/prefix/`, read back with aws-sdk-s3.
async fn read_bucket(s3: &aws_sdk_s3::Client, bucket: &str, prefix: &str) -> BucketObjects {
    let mut out = BTreeMap::new();
    let listed = s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .send()
        .await
        .expect("listing the bucket");
    for object in listed.contents() {
        let key = object.key().expect("listed object has a key");
        let got = s3
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .expect("reading an object");
        let content_type = got.content_type().map(str::to_owned);
        let metadata = got.metadata().cloned().unwrap_or_default();
        let body = got
            .body
            .collect()
            .await
            .expect("object body")
            .into_bytes()
            .to_vec();
        out.insert(
            key.trim_start_matches(prefix).to_owned(),
            (body, content_type, metadata),
        );
    }
    out
}

/// Checks that every object [`read_bucket`] found in `original` is in `copied` with the
/// same bytes, content type and `origin` metadata, and nothing else is.
fn assert_copied_with_metadata(original: &BucketObjects, copied: &BucketObjects) {
    assert_eq!(copied.len(), original.len());
    for (key, (data, content_type, metadata)) in original {
        let (bytes, copied_type, copied_metadata) =
            copied.get(key).unwrap_or_else(|| panic!("{key} missing"));
        assert!(bytes == data, "{key}: bytes");
        assert_eq!(copied_type, content_type, "{key}: content type");
        assert_eq!(
            copied_metadata.get("origin"),
            metadata.get("origin"),
            "{key}: user metadata"
        );
    }
}

/// Only the bytes of what [`read_bucket`] returns.
async fn bucket_bytes(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
) -> BTreeMap<String, Vec<u8>> {
    read_bucket(s3, bucket, prefix)
        .await
        .into_iter()
        .map(|(k, v)| (k, v.0))
        .collect()
}

/// `source` under `fast/<path>` of a file-system site "fast", dataset `path` there, and
/// an S3 site "bucket" on `bucket` of the test server to migrate it to.
async fn file_system_dataset_and_bucket(
    client: &Client,
    s3: &S3Server,
    root: &Path,
    path: &str,
    bucket: &str,
    source: &BTreeMap<String, Vec<u8>>,
) {
    write_tree(&root.join("fast").join(path), source);
    fs_site(client, "fast", &root.join("fast"), pb::Tier::Hot).await;
    s3_site(client, s3, "bucket", bucket, pb::Tier::Cold).await;
    dataset(client, path, "fast", path).await;
}

/// One `len`-byte file, a 1 MiB pattern repeated, so large sources are quick to make.
fn one_large_file(seed: u64, len: usize) -> BTreeMap<String, Vec<u8>> {
    let pattern = ferry_tests::dataset::bytes(seed, 1 << 20);
    let big = pattern.iter().copied().cycle().take(len).collect();
    BTreeMap::from([("big.bin".to_owned(), big)])
}

/// The agent settings of the streamed-request tests: 5 MiB parts, one request up to
/// 16 MiB.
const STREAMED_UP_TO_16_MIB: [(&str, &str); 2] = [
    ("FERRY_AGENT_PART_SIZE_MIB", "5"),
    ("FERRY_AGENT_MULTIPART_THRESHOLD_MIB", "16"),
];

/// Files of a dataset on the file-system site `fast`, a bucket site `bucket`, and one
/// agent of `fast` started with `settings`: the set-up of the tests that migrate files
/// to S3.
struct FilesToBucket {
    // Declared in drop order: the agent stops before the servers it talks to.
    agent: Agent,
    client: Client,
    s3: S3Server,
    source: BTreeMap<String, Vec<u8>>,
    dataset: &'static str,
    bucket: &'static str,
    _dirs: tempfile::TempDir,
    _cp: ControlPlane,
}

impl FilesToBucket {
    async fn start(
        source: BTreeMap<String, Vec<u8>>,
        dataset: &'static str,
        bucket: &'static str,
        settings: &[(&str, &str)],
    ) -> FilesToBucket {
        let cp = ControlPlane::start().await;
        let client = cp.client().await;
        let s3 = S3Server::start().await;
        let dirs = tempfile::tempdir().unwrap();
        file_system_dataset_and_bucket(&client, &s3, dirs.path(), dataset, bucket, &source).await;
        let agent = Agent::start(&cp, "fast", settings).await;
        FilesToBucket {
            agent,
            client,
            s3,
            source,
            dataset,
            bucket,
            _dirs: dirs,
            _cp: cp,
        }
    }

    /// Plans the dataset's migration to the bucket.
    async fn plan(&self, verify: pb::VerifyMode) -> pb::Job {
        plan(&self.client, self.dataset, "bucket", verify, self.bucket).await
    }

    /// Waits for `job` to end and checks that it completed.
    async fn completes(&self, job: &pb::Job) {
        assert_completed(&self.client, job, &self.agent).await;
    }

    /// Checks, with an independent client, that the bucket holds the source's bytes.
    /// A difference is shown by each side's xxh3s, which name the objects that differ,
    /// with the agent's log.
    async fn holds_the_source(&self) {
        let prefix = format!("ferry/{}/", self.dataset);
        let held = bucket_bytes(&self.s3.client(), self.bucket, &prefix).await;
        if held != self.source {
            let digests = |objects: &BTreeMap<String, Vec<u8>>| -> BTreeMap<String, String> {
                objects
                    .iter()
                    .map(|(k, v)| {
                        (
                            k.clone(),
                            format!("{:032x}", xxhash_rust::xxh3::xxh3_128(v)),
                        )
                    })
                    .collect()
            };
            panic!(
                "the bucket does not hold the source's bytes\nheld:   {:?}\nsource: {:?}\n{}",
                digests(&held),
                digests(&self.source),
                self.agent.log()
            );
        }
    }
}

async fn assert_switched(client: &Client, dataset: &str, to: &str) {
    let details = client
        .get_dataset(dataset)
        .await
        .expect("reading the dataset");
    let site = client
        .get_site(to)
        .await
        .expect("reading the destination site");
    assert_eq!(
        details.dataset.site, site.id,
        "the dataset's primary moved to the destination"
    );
    assert_eq!(
        details.dataset.current_tier, site.tier,
        "the dataset took the destination's tier"
    );
    let primary: Vec<_> = details
        .replicas
        .iter()
        .filter(|r| r.role == pb::ReplicaRole::Primary as i32)
        .collect();
    assert_eq!(primary.len(), 1);
    assert_eq!(primary[0].site, site.id);
}

/// Puts the mixed dataset into `bucket/ferry/<path>/` with content types and metadata.
async fn fill_bucket(s3: &S3Server, bucket: &str, path: &str, objects: &BTreeMap<String, Vec<u8>>) {
    let client = s3.client();
    for (i, (key, data)) in objects.iter().enumerate() {
        client
            .put_object()
            .bucket(bucket)
            .key(format!("ferry/{path}/{key}"))
            .content_type(if i % 2 == 0 {
                "application/octet-stream"
            } else {
                "text/plain; charset=utf-8"
            })
            .metadata("origin", format!("sample-{i}"))
            .body(aws_sdk_s3::primitives::ByteStream::from(data.clone()))
            .send()
            .await
            .expect("putting a source object");
    }
}

/// Waits for `job` to end and checks that it completed; the agent's log says why not.
async fn assert_completed(client: &Client, job: &pb::Job, agent: &Agent) {
    let done = wait_for_end(client, &job.id, TIMEOUT).await;
    assert_eq!(
        done.state,
        pb::JobState::Completed as i32,
        "{done:#?}\n{}",
        agent.log()
    );
}

/// Two file-system sites and a dataset of `objects` on the first; returns the temp dir.
async fn two_local_sites(
    client: &Client,
    objects: &BTreeMap<String, Vec<u8>>,
) -> tempfile::TempDir {
    let dirs = tempfile::tempdir().unwrap();
    write_tree(&dirs.path().join("a/data"), objects);
    fs_site(client, "a", &dirs.path().join("a"), pb::Tier::Hot).await;
    fs_site(client, "b", &dirs.path().join("b"), pb::Tier::Cold).await;
    dataset(client, "data", "a", "data").await;
    dirs
}
