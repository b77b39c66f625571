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

fn fs_site(name: &str, root: &Path, tier: pb::Tier) -> pb::Site {
    pb::Site {
        name: name.into(),
        uri: format!("file://{}", root.display()),
        tier: tier.into(),
        ..Default::default()
    }
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
    client
        .plan_migration(pb::PlanMigrationRequest {
            dataset: dataset.into(),
            destination_site: to.into(),
            verify_mode: verify.into(),
            idempotency_key: key.into(),
            ..Default::default()
        })
        .await
        .expect("planning the migration")
        .job
        .expect("a planned job")
}

/// Objects below `bucket/prefix/` read back with aws-sdk-s3: key → (bytes, content type, metadata).
async fn read_bucket(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
) -> BTreeMap<String, (Vec<u8>, Option<String>, HashMap<String, String>)> {
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
    client
        .create_site(
            fs_site("fast", &root.join("fast"), pb::Tier::Hot),
            HashMap::new(),
        )
        .await
        .unwrap();
    s3_site(client, s3, "bucket", bucket, pb::Tier::Cold).await;
    dataset(client, path, "fast", path).await;
}

/// One `len`-byte file, a 1 MiB pattern repeated, so large sources are quick to make.
fn one_large_file(seed: u64, len: usize) -> BTreeMap<String, Vec<u8>> {
    let pattern = ferry_tests::dataset::bytes(seed, 1 << 20);
    let big = pattern.iter().copied().cycle().take(len).collect();
    BTreeMap::from([("big.bin".to_owned(), big)])
}

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
        let client = Client::connect(&cp.endpoint()).await.unwrap();
        let s3 = S3Server::start().await;
        let dirs = tempfile::tempdir().unwrap();
        file_system_dataset_and_bucket(&client, &s3, dirs.path(), dataset, bucket, &source).await;
        let agent = Agent::start(&cp.endpoint(), cp.nats_url(), "fast", settings);
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
        let done = wait_for_end(&self.client, &job.id, TIMEOUT).await;
        assert_eq!(
            done.state,
            pb::JobState::Completed as i32,
            "{done:#?}\n{}",
            self.agent.log()
        );
    }

    /// Checks, with an independent client, that the bucket holds the source's bytes.
    async fn holds_the_source(&self) {
        let prefix = format!("ferry/{}/", self.dataset);
        assert_eq!(
            bucket_bytes(&self.s3.client(), self.bucket, &prefix).await,
            self.source,
            "the object arrived intact"
        );
    }
}

/// Checks that the job recorded `count` objects, every one verified (none skipped).
async fn assert_all_verified(client: &Client, job: &pb::Job, count: usize) {
    let objects = client.list_job_objects(&job.id, None).await.unwrap();
    assert_eq!(objects.len(), count);
    assert!(
        objects
            .iter()
            .all(|o| o.status == pb::ObjectStatus::Verified as i32),
        "every object verified, none skipped: {objects:#?}"
    );
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_system_to_s3_and_back() {
    let cp = ControlPlane::start().await;
    let client = Client::connect(&cp.endpoint()).await.unwrap();
    let s3 = S3Server::start().await;
    let dirs = tempfile::tempdir().unwrap();
    let source = mixed(1, LARGE);
    write_tree(&dirs.path().join("fast/projects/genome"), &source);
    client
        .create_site(
            fs_site("fast", &dirs.path().join("fast"), pb::Tier::Hot),
            HashMap::new(),
        )
        .await
        .unwrap();
    s3_site(&client, &s3, "bucket", "archive", pb::Tier::Cold).await;
    dataset(&client, "genome", "fast", "projects/genome").await;
    let _agent = Agent::start(&cp.endpoint(), cp.nats_url(), "fast", &[]);

    let job = plan(&client, "genome", "bucket", pb::VerifyMode::Full, "to-s3").await;
    let done = wait_for_end(&client, &job.id, TIMEOUT).await;
    assert_eq!(done.state, pb::JobState::Completed as i32, "{done:#?}");
    assert_eq!(done.objects_done, source.len() as u64);
    let bytes = bucket_bytes(&s3.client(), "archive", "ferry/projects/genome/").await;
    assert_eq!(bytes, source, "the bucket holds exactly the source's bytes");
    assert_switched(&client, "genome", "bucket").await;
    assert_eq!(
        read_tree(&dirs.path().join("fast/projects/genome")),
        source,
        "the source stays unless retired"
    );

    // And back to a new directory on the file system, retiring the bucket copy.
    client
        .create_site(
            fs_site("scratch", &dirs.path().join("scratch"), pb::Tier::Warm),
            HashMap::new(),
        )
        .await
        .unwrap();
    let _agent2 = Agent::start(&cp.endpoint(), cp.nats_url(), "scratch", &[]);
    let back = client
        .plan_migration(pb::PlanMigrationRequest {
            dataset: "genome".into(),
            destination_site: "scratch".into(),
            destination_path: "restored".into(),
            retire_source: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .job
        .unwrap();
    let done = wait_for_end(&client, &back.id, TIMEOUT).await;
    assert_eq!(done.state, pb::JobState::Completed as i32, "{done:#?}");
    assert!(done.source_retired, "{done:#?}");
    assert_eq!(read_tree(&dirs.path().join("scratch/restored")), source);
    assert!(
        read_bucket(&s3.client(), "archive", "ferry/projects/genome/")
            .await
            .is_empty(),
        "retired after the switch"
    );
    assert_switched(&client, "genome", "scratch").await;
    let replicas = client.get_dataset("genome").await.unwrap().replicas;
    let bucket = client.get_site("bucket").await.unwrap().id;
    let fast = client.get_site("fast").await.unwrap().id;
    assert!(
        replicas.iter().all(|r| r.site != bucket),
        "the retired replica is gone: {replicas:#?}"
    );
    let kept: Vec<_> = replicas.iter().filter(|r| r.site == fast).collect();
    assert_eq!(
        kept.len(),
        1,
        "the first source, not retired, stays a secondary: {replicas:#?}"
    );
    assert_eq!(kept[0].role, pb::ReplicaRole::Secondary as i32);
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_to_s3_keeps_content_type_and_metadata_and_s3_to_file_system() {
    let cp = ControlPlane::start().await;
    let client = Client::connect(&cp.endpoint()).await.unwrap();
    let s3 = S3Server::start().await;
    s3_site(&client, &s3, "primary", "primary-bucket", pb::Tier::Hot).await;
    s3_site(&client, &s3, "replica", "replica-bucket", pb::Tier::Warm).await;
    let source = mixed(7, LARGE);
    fill_bucket(&s3, "primary-bucket", "tables", &source).await;
    dataset(&client, "tables", "primary", "tables").await;
    let _agent = Agent::start(&cp.endpoint(), cp.nats_url(), "primary", &[]);

    let job = plan(
        &client,
        "tables",
        "replica",
        pb::VerifyMode::Quick,
        "s3-to-s3",
    )
    .await;
    let done = wait_for_end(&client, &job.id, TIMEOUT).await;
    assert_eq!(done.state, pb::JobState::Completed as i32, "{done:#?}");
    let before = read_bucket(&s3.client(), "primary-bucket", "ferry/tables/").await;
    let after = read_bucket(&s3.client(), "replica-bucket", "ferry/tables/").await;
    assert_eq!(after.len(), source.len());
    for (key, (data, content_type, metadata)) in &before {
        let (copied, copied_type, copied_metadata) =
            after.get(key).unwrap_or_else(|| panic!("{key} missing"));
        assert_eq!(copied, data, "{key}: bytes");
        assert_eq!(copied_type, content_type, "{key}: content type");
        assert_eq!(
            copied_metadata.get("origin"),
            metadata.get("origin"),
            "{key}: user metadata"
        );
    }
    assert_switched(&client, "tables", "replica").await;

    let dirs = tempfile::tempdir().unwrap();
    client
        .create_site(fs_site("local", dirs.path(), pb::Tier::Hot), HashMap::new())
        .await
        .unwrap();
    let _local_agent = Agent::start(&cp.endpoint(), cp.nats_url(), "local", &[]);
    let job = plan(&client, "tables", "local", pb::VerifyMode::Full, "s3-to-fs").await;
    let done = wait_for_end(&client, &job.id, TIMEOUT).await;
    assert_eq!(done.state, pb::JobState::Completed as i32, "{done:#?}");
    assert_eq!(read_tree(&dirs.path().join("tables")), source);
    let objects = client.list_job_objects(&job.id, None).await.unwrap();
    for o in &objects {
        let expected = xxhash_rust::xxh3::xxh3_128(&source[&o.key]);
        assert_eq!(
            o.source_xxh3,
            format!("{expected:032x}"),
            "{}: recorded source hash",
            o.key
        );
        assert_eq!(
            o.destination_xxh3, o.source_xxh3,
            "{}: full verify re-read the destination",
            o.key
        );
        assert_eq!(o.status, pb::ObjectStatus::Verified as i32);
    }
}

/// Two file-system sites and a dataset of `objects` on the first; returns the temp dir.
async fn two_local_sites(
    client: &Client,
    objects: &BTreeMap<String, Vec<u8>>,
) -> tempfile::TempDir {
    let dirs = tempfile::tempdir().unwrap();
    write_tree(&dirs.path().join("a/data"), objects);
    client
        .create_site(
            fs_site("a", &dirs.path().join("a"), pb::Tier::Hot),
            HashMap::new(),
        )
        .await
        .unwrap();
    client
        .create_site(
            fs_site("b", &dirs.path().join("b"), pb::Tier::Cold),
            HashMap::new(),
        )
        .await
        .unwrap();
    dataset(client, "data", "a", "data").await;
    dirs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_plans_with_one_key_give_one_job() {
    let cp = ControlPlane::start().await;
    let client = Client::connect(&cp.endpoint()).await.unwrap();
    let _dirs = two_local_sites(&client, &mixed(3, 1024)).await;
    let plans = (0..20).map(|_| {
        let client = client.clone();
        tokio::spawn(async move {
            client
                .plan_migration(pb::PlanMigrationRequest {
                    dataset: "data".into(),
                    destination_site: "b".into(),
                    idempotency_key: "nightly-2026-11-22".into(),
                    ..Default::default()
                })
                .await
        })
    });
    let answers: Vec<pb::PlanMigrationResponse> = futures::future::join_all(plans)
        .await
        .into_iter()
        .map(|r| r.unwrap().unwrap())
        .collect();
    let ids: std::collections::BTreeSet<_> = answers
        .iter()
        .map(|a| a.job.as_ref().unwrap().id.clone())
        .collect();
    assert_eq!(ids.len(), 1, "one job for one key: {ids:?}");
    assert_eq!(
        answers.iter().filter(|a| a.created).count(),
        1,
        "exactly one call created it"
    );
    let jobs = client.list_jobs(&Default::default()).await.unwrap();
    assert_eq!(jobs.len(), 1);

    // A different key while that job is unfinished is refused, naming the job.
    let err = client
        .plan_migration(pb::PlanMigrationRequest {
            dataset: "data".into(),
            destination_site: "b".into(),
            idempotency_key: "another".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
    assert!(err.to_string().contains(ids.first().unwrap()), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_from_an_old_attempt_changes_nothing() {
    use prost::Message;
    let cp = ControlPlane::start().await;
    let client = Client::connect(&cp.endpoint()).await.unwrap();
    let _dirs = two_local_sites(&client, &mixed(4, 1024)).await;
    // No agent: the job stays queued at attempt 1. Cancel and retry make attempt 2.
    let job = plan(&client, "data", "b", pb::VerifyMode::Quick, "fenced").await;
    client.cancel_job(&job.id).await.unwrap();
    let retried = client.retry_job(&job.id).await.unwrap();
    assert_eq!(retried.attempt, 2);

    let nats = async_nats::connect(cp.nats_url()).await.unwrap();
    let js = async_nats::jetstream::new(nats);
    let report = |event| pb::ProgressReport {
        job_id: job.id.clone(),
        attempt: 1,
        task_id: "copy".into(),
        agent_id: String::new(),
        time: None,
        event: Some(event),
    };
    for event in [
        pb::progress_report::Event::Started(pb::TaskStarted {}),
        pb::progress_report::Event::Finished(pb::TaskFinished {
            success: true,
            ..Default::default()
        }),
    ] {
        let payload = report(event).encode_to_vec();
        js.publish(format!("ferry.progress.{}", job.id), payload.into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    // A marker report of the current attempt proves the stale ones were consumed first.
    let marker = pb::ProgressReport {
        attempt: 2,
        event: Some(pb::progress_report::Event::Listed(pb::SourceListed {
            objects: 99,
            bytes: 1,
        })),
        ..report(pb::progress_report::Event::Started(pb::TaskStarted {}))
    };
    js.publish(
        format!("ferry.progress.{}", job.id),
        marker.encode_to_vec().into(),
    )
    .await
    .unwrap()
    .await
    .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let now = client.get_job(&job.id).await.unwrap();
        if now.objects_total == 99 {
            assert_eq!(
                now.state,
                pb::JobState::Queued as i32,
                "stale reports moved the job: {now:#?}"
            );
            assert_eq!(now.attempt, 2);
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the marker report was never applied"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let details = client.get_dataset("data").await.unwrap();
    assert_eq!(
        details.dataset.site,
        client.get_site("a").await.unwrap().id,
        "no switch happened"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_killed_mid_copy_resumes_without_copying_finished_objects_again() {
    let cp = ControlPlane::start().await;
    let client = Client::connect(&cp.endpoint()).await.unwrap();
    let source: BTreeMap<String, Vec<u8>> = (0..24)
        .map(|i| {
            (
                format!("part-{i:03}.bin"),
                ferry_tests::dataset::bytes(100 + i, 64 << 10),
            )
        })
        .collect();
    let dirs = two_local_sites(&client, &source).await;
    let slow = [
        ("FERRY_AGENT_CONCURRENCY", "1"),
        ("FERRY_AGENT_FAULTS__PAUSE_AFTER_OBJECT_MS", "150"),
    ];
    let mut agent = Agent::start(&cp.endpoint(), cp.nats_url(), "a", &slow);
    let job = plan(&client, "data", "b", pb::VerifyMode::Full, "crash").await;

    let copied = |o: &&pb::JobObject| {
        o.status == pb::ObjectStatus::Copied as i32 || o.status == pb::ObjectStatus::Verified as i32
    };
    let before = wait_for_objects(&client, &job.id, TIMEOUT, |objects| {
        objects.iter().filter(copied).count() >= 6
    })
    .await;
    agent.kill();
    let copied_before: Vec<String> = before
        .iter()
        .filter(copied)
        .map(|o| o.key.clone())
        .collect();
    assert!(copied_before.len() < source.len(), "the kill came mid-copy");

    agent.restart();
    let done = wait_for_end(&client, &job.id, TIMEOUT).await;
    assert_eq!(
        done.state,
        pb::JobState::Completed as i32,
        "{done:#?}\n{}",
        agent.log()
    );
    assert_eq!(
        read_tree(&dirs.path().join("b/data")),
        source,
        "every object arrived intact"
    );
    let objects = client.list_job_objects(&job.id, None).await.unwrap();
    assert_eq!(objects.len(), source.len());
    for o in objects.iter().filter(|o| copied_before.contains(&o.key)) {
        assert_eq!(
            o.attempts, 1,
            "{} was copied before the kill and must not be copied again",
            o.key
        );
    }
    assert_eq!(done.attempt, 1, "the same attempt finished the job");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flipped_destination_byte_is_detected_and_repaired() {
    let cp = ControlPlane::start().await;
    let client = Client::connect(&cp.endpoint()).await.unwrap();
    let source = mixed(5, 1 << 20);
    let dirs = two_local_sites(&client, &source).await;
    let _agent = Agent::start(
        &cp.endpoint(),
        cp.nats_url(),
        "a",
        &[("FERRY_AGENT_FAULTS__PAUSE_BEFORE_VERIFY_MS", "3000")],
    );
    let job = plan(&client, "data", "b", pb::VerifyMode::Full, "bitrot").await;

    wait_for_objects(&client, &job.id, TIMEOUT, |objects| {
        objects.len() == source.len()
            && objects
                .iter()
                .all(|o| o.status == pb::ObjectStatus::Copied as i32)
    })
    .await;
    let victim = dirs.path().join("b/data/big/large.bin");
    let mut bytes = std::fs::read(&victim).unwrap();
    bytes[12345] ^= 0x01;
    std::fs::write(&victim, &bytes).unwrap();

    let done = wait_for_end(&client, &job.id, TIMEOUT).await;
    assert_eq!(done.state, pb::JobState::Completed as i32, "{done:#?}");
    assert_eq!(
        read_tree(&dirs.path().join("b/data")),
        source,
        "the flipped byte was repaired"
    );
    let objects = client.list_job_objects(&job.id, None).await.unwrap();
    let repaired = objects.iter().find(|o| o.key == "big/large.bin").unwrap();
    assert_eq!(
        repaired.attempts, 2,
        "copied once, then once more after the mismatch"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_job_leaves_the_source_untouched_and_primary() {
    let cp = ControlPlane::start().await;
    let client = Client::connect(&cp.endpoint()).await.unwrap();
    let s3 = S3Server::start().await;
    let source = mixed(6, 1 << 20);
    let dirs = tempfile::tempdir().unwrap();
    write_tree(&dirs.path().join("a/data"), &source);
    client
        .create_site(
            fs_site("a", &dirs.path().join("a"), pb::Tier::Hot),
            HashMap::new(),
        )
        .await
        .unwrap();
    // Wrong credentials: every write is refused (403), a permanent failure.
    s3_site_with_secret(
        &client,
        &s3,
        "nowhere",
        "locked",
        pb::Tier::Cold,
        "not-the-secret",
    )
    .await;
    dataset(&client, "data", "a", "data").await;
    let _agent = Agent::start(&cp.endpoint(), cp.nats_url(), "a", &[]);

    let job = client
        .plan_migration(pb::PlanMigrationRequest {
            dataset: "data".into(),
            destination_site: "nowhere".into(),
            retire_source: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .job
        .unwrap();
    let done = wait_for_end(&client, &job.id, TIMEOUT).await;
    assert_eq!(done.state, pb::JobState::Failed as i32, "{done:#?}");
    assert!(
        done.error
            .contains(&format!("{0} of {0} objects failed", source.len()))
            && done.error.contains("not switching"),
        "{}",
        done.error
    );
    assert!(!done.source_retired);
    assert_eq!(
        read_tree(&dirs.path().join("a/data")),
        source,
        "the source is untouched"
    );
    let details = client.get_dataset("data").await.unwrap();
    assert_eq!(
        details.dataset.site,
        client.get_site("a").await.unwrap().id,
        "the source stays primary"
    );
    let failed = client
        .list_job_objects(&job.id, Some(pb::ObjectStatus::Failed))
        .await
        .unwrap();
    assert!(!failed.is_empty());
    assert!(
        failed.iter().all(|o| !o.error.is_empty()),
        "each failed object says why: {failed:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_never_travel_over_nats() {
    use futures::StreamExt;
    let cp = ControlPlane::start().await;
    let client = Client::connect(&cp.endpoint()).await.unwrap();
    let s3 = S3Server::start().await;
    let dirs = tempfile::tempdir().unwrap();
    write_tree(&dirs.path().join("a/data"), &mixed(8, 4096));
    client
        .create_site(
            fs_site("a", &dirs.path().join("a"), pb::Tier::Hot),
            HashMap::new(),
        )
        .await
        .unwrap();
    s3_site(&client, &s3, "vault", "vault", pb::Tier::Cold).await;
    dataset(&client, "data", "a", "data").await;
    let job = plan(&client, "data", "vault", pb::VerifyMode::Quick, "canary").await;

    let nats = async_nats::connect(cp.nats_url()).await.unwrap();
    let js = async_nats::jetstream::new(nats);
    let secret = s3.secret_key().to_owned();
    // Before any agent runs, the dispatch sits in the work queue: read it raw.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut jobs_stream = loop {
        if let Ok(mut stream) = js.get_stream("FERRY_JOBS").await {
            if stream.info().await.map(|i| i.state.messages).unwrap_or(0) > 0 {
                break stream;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the job was never dispatched"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let first = jobs_stream.info().await.unwrap().state.first_sequence;
    let dispatched = jobs_stream.get_raw_message(first).await.unwrap();
    assert!(!dispatched.payload.is_empty());
    assert!(
        !contains(&dispatched.payload, &secret),
        "the job command carries the secret"
    );
    assert!(
        !contains(&dispatched.payload, s3.access_key()),
        "the job command carries the key id"
    );

    let _agent = Agent::start(&cp.endpoint(), cp.nats_url(), "a", &[]);
    let done = wait_for_end(&client, &job.id, TIMEOUT).await;
    assert_eq!(done.state, pb::JobState::Completed as i32, "{done:#?}");
    let progress = js.get_stream("FERRY_PROGRESS").await.unwrap();
    let consumer = progress
        .create_consumer(async_nats::jetstream::consumer::pull::Config::default())
        .await
        .unwrap();
    let count = progress.get_info().await.unwrap().state.messages;
    assert!(count > 0);
    let mut messages = consumer
        .fetch()
        .max_messages(count as usize)
        .messages()
        .await
        .unwrap();
    let mut seen = 0;
    while let Some(message) = messages.next().await {
        let message = message.unwrap();
        assert!(
            !contains(&message.payload, &secret),
            "a progress report carries the secret"
        );
        seen += 1;
    }
    assert_eq!(seen, count);
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_lists_what_would_move_and_plans_nothing() {
    let cp = ControlPlane::start().await;
    let client = Client::connect(&cp.endpoint()).await.unwrap();
    let source = mixed(9, 1 << 20);
    let _dirs = two_local_sites(&client, &source).await;
    client
        .update_site(
            pb::Site {
                name: "a".into(),
                prices: Some(pb::Prices {
                    egress_per_gb: 0.09,
                    ..Default::default()
                }),
                ..Default::default()
            },
            ["prices.egress_per_gb"],
            None,
        )
        .await
        .unwrap();
    let answer = client
        .plan_migration(pb::PlanMigrationRequest {
            dataset: "data".into(),
            destination_site: "b".into(),
            dry_run: true,
            filter: Some(pb::ObjectFilter {
                include: vec!["reads/**".into()],
                min_size: 2000,
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(answer.job.is_none());
    let report = answer.dry_run.unwrap();
    let expected: Vec<_> = source
        .iter()
        .filter(|(k, v)| k.starts_with("reads/") && v.len() >= 2000)
        .collect();
    assert_eq!(report.objects, expected.len() as u64);
    let bytes: u64 = expected.iter().map(|(_, v)| v.len() as u64).sum();
    assert_eq!(report.bytes, bytes);
    let mut sampled: Vec<_> = report.sample.iter().map(|o| o.key.clone()).collect();
    sampled.sort();
    assert_eq!(
        sampled,
        expected
            .iter()
            .map(|(k, _)| k.to_string())
            .collect::<Vec<_>>()
    );
    let cost = bytes as f64 / 1e9 * 0.09;
    assert!(
        (report.estimated_cost - cost).abs() < 1e-12,
        "{} vs {cost}",
        report.estimated_cost
    );
    assert!(
        client
            .list_jobs(&Default::default())
            .await
            .unwrap()
            .is_empty(),
        "a dry run plans nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_answering_503_is_retried_and_the_job_completes() {
    let cp = ControlPlane::start().await;
    let client = Client::connect(&cp.endpoint()).await.unwrap();
    let s3 = S3Server::start().await;
    let dirs = tempfile::tempdir().unwrap();
    let source = mixed(9, 1 << 20);
    file_system_dataset_and_bucket(&client, &s3, dirs.path(), "logs", "flaky", &source).await;
    // The store throttles: its next five writes are answered 503 SlowDown.
    s3.faults().fail_next_puts(5);
    let agent = Agent::start(&cp.endpoint(), cp.nats_url(), "fast", &[]);

    let job = plan(&client, "logs", "bucket", pb::VerifyMode::Quick, "flaky").await;
    let done = wait_for_end(&client, &job.id, TIMEOUT).await;
    assert_eq!(done.state, pb::JobState::Completed as i32, "{done:#?}");
    assert_eq!(s3.faults().pending(), 0, "every injected failure was met");
    let bytes = bucket_bytes(&s3.client(), "flaky", "ferry/logs/").await;
    assert_eq!(bytes, source, "the bucket holds exactly the source's bytes");
    let objects = client.list_job_objects(&job.id, None).await.unwrap();
    assert!(
        objects
            .iter()
            .all(|o| o.status == pb::ObjectStatus::Verified as i32 && o.error.is_empty()),
        "no object failed: {objects:#?}"
    );
    let log = agent.log();
    assert!(
        log.matches("temporary storage error; retrying").count() >= 5,
        "each throttled write was retried:\n{log}"
    );
}

/// The time of the first line of an agent's log that contains `what`.
fn logged_at(log: &str, what: &str) -> chrono::DateTime<chrono::Utc> {
    let line = log
        .lines()
        .find(|l| l.contains(what))
        .unwrap_or_else(|| panic!("the agent never logged '{what}':\n{log}"));
    let stamp = line.split_whitespace().next().unwrap();
    chrono::DateTime::parse_from_rfc3339(stamp)
        .unwrap_or_else(|e| panic!("{stamp}: {e}"))
        .to_utc()
}

/// Plans the migration of `data` to site `b` at a bandwidth limit.
async fn plan_limited(client: &Client, limit: u64) -> pb::Job {
    let job = client
        .plan_migration(pb::PlanMigrationRequest {
            dataset: "data".into(),
            destination_site: "b".into(),
            bandwidth_limit_bytes_per_sec: limit,
            ..Default::default()
        })
        .await
        .unwrap()
        .job
        .unwrap();
    assert_eq!(job.bandwidth_limit_bytes_per_sec, limit);
    job
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bandwidth_limit_paces_the_copy_and_can_be_lowered_while_it_runs() {
    const TOTAL: usize = 200_000_000;
    const LIMIT: f64 = 20e6;
    const LOWER: f64 = 8e6;
    // Pacing slots are 1 MiB; one per read in flight reaches past a change, and 8 MiB
    // covers them all.
    const CHUNK: f64 = (8 << 20) as f64;
    let cp = ControlPlane::start().await;
    let client = Client::connect(&cp.endpoint()).await.unwrap();
    let source = one_large_file(5, TOTAL);
    let dirs = two_local_sites(&client, &source).await;
    let b = dirs.path().join("b");
    let agent = Agent::start(&cp.endpoint(), cp.nats_url(), "a", &[]);

    let planned_at = chrono::Utc::now();
    let started = std::time::Instant::now();
    let job = plan_limited(&client, LIMIT as u64).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let updated = client.update_job(&job.id, LOWER as u64).await.unwrap();
    assert_eq!(updated.bandwidth_limit_bytes_per_sec, LOWER as u64);
    let done = wait_for_end(&client, &job.id, TIMEOUT).await;
    let elapsed = started.elapsed().as_secs_f64();
    assert_eq!(done.state, pb::JobState::Completed as i32, "{done:#?}");
    assert_eq!(read_tree(&b.join("data")), source);

    // Never faster than the plan's limit allows...
    assert!(
        elapsed >= TOTAL as f64 / LIMIT,
        "{TOTAL} bytes in {elapsed:.1} s beat {LIMIT} bytes/s"
    );
    // ...and, from when the agent applied the lower limit, never faster than that: until
    // then at most LIMIT bytes a second (and one chunk) went, the rest at LOWER.
    let switch = (logged_at(&agent.log(), "bandwidth limit changed") - planned_at).as_seconds_f64();
    let before = (LIMIT * switch + CHUNK).min(TOTAL as f64);
    let bound = before / LIMIT + (TOTAL as f64 - before) / LOWER;
    assert!(
        elapsed >= bound,
        "done in {elapsed:.1} s, yet the lower limit applied after {switch:.1} s allows no \
         less than {bound:.1} s"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_site_limit_is_shared_among_the_sites_agents() {
    const TOTAL: usize = 100_000_000;
    const SITE_LIMIT: u64 = 20_000_000;
    let cp = ControlPlane::start().await;
    let client = Client::connect(&cp.endpoint()).await.unwrap();
    let source = one_large_file(8, TOTAL);
    let dirs = two_local_sites(&client, &source).await;
    let b = dirs.path().join("b");
    let limited = pb::Site {
        name: "a".into(),
        bandwidth_limit_bytes_per_sec: SITE_LIMIT,
        ..Default::default()
    };
    client
        .update_site(limited, ["bandwidth_limit_bytes_per_sec"], None)
        .await
        .unwrap();
    assert_eq!(
        client
            .get_site("a")
            .await
            .unwrap()
            .bandwidth_limit_bytes_per_sec,
        SITE_LIMIT
    );
    let agents = [
        Agent::start(&cp.endpoint(), cp.nats_url(), "a", &[]),
        Agent::start(&cp.endpoint(), cp.nats_url(), "a", &[]),
    ];
    // Each agent takes half of the site's limit once it sees the other, and the one
    // that found the other already there held off until it knew.
    let half = format!("agents=2 share={}", SITE_LIMIT / 2);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !agents.iter().all(|a| a.log().contains(&half)) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the agents never split the site's limit:\n{}\n{}",
            agents[0].log(),
            agents[1].log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        agents
            .iter()
            .any(|a| a.log().contains("holding off until they know of this one")),
        "neither agent held off for the other:\n{}\n{}",
        agents[0].log(),
        agents[1].log()
    );

    let started = std::time::Instant::now();
    let job = plan(&client, "data", "b", pb::VerifyMode::Quick, "shared").await;
    let done = wait_for_end(&client, &job.id, TIMEOUT).await;
    let elapsed = started.elapsed().as_secs_f64();
    assert_eq!(done.state, pb::JobState::Completed as i32, "{done:#?}");
    assert_eq!(read_tree(&b.join("data")), source);
    let share = (SITE_LIMIT / 2) as f64;
    assert!(
        elapsed >= TOTAL as f64 / share,
        "{TOTAL} bytes in {elapsed:.1} s beat one agent's share of {share} bytes/s"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jobs_limit_holds_for_all_its_tasks_on_all_its_agents() {
    const FILES: u64 = 10;
    const FILE: usize = 15_000_000;
    const TOTAL: f64 = (FILES as usize * FILE) as f64;
    const LIMIT: f64 = 10e6;
    // Pacing slots are 1 MiB: one per task in flight (four on each agent) may reach
    // past the moment an agent learns it shares the job.
    const LATE_SLOTS: f64 = (8 << 20) as f64;
    let cp = ControlPlane::start().await;
    let client = Client::connect(&cp.endpoint()).await.unwrap();
    let source: BTreeMap<String, Vec<u8>> = (0..FILES)
        .map(|i| {
            (
                format!("part-{i:02}.bin"),
                ferry_tests::dataset::bytes(700 + i, FILE),
            )
        })
        .collect();
    let dirs = two_local_sites(&client, &source).await;
    // One object per task: ten tasks, up to four at once on each agent.
    let settings = [("FERRY_AGENT_TASK_OBJECTS", "1")];
    let agents = [
        Agent::start(&cp.endpoint(), cp.nats_url(), "a", &settings),
        Agent::start(&cp.endpoint(), cp.nats_url(), "a", &settings),
    ];

    let planned_at = chrono::Utc::now();
    let started = std::time::Instant::now();
    let job = plan_limited(&client, LIMIT as u64).await;
    // Both agents tell the control plane they work on the job.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let working = client.list_agents(Some("a")).await.unwrap();
        let on_job = working.iter().filter(|a| a.jobs.contains(&job.id)).count();
        if on_job == 2 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "both agents never ran tasks of the job at once: {working:#?}\n{}\n{}",
            agents[0].log(),
            agents[1].log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let done = wait_for_end(&client, &job.id, TIMEOUT).await;
    let elapsed = started.elapsed().as_secs_f64();
    assert_eq!(done.state, pb::JobState::Completed as i32, "{done:#?}");
    assert_eq!(read_tree(&dirs.path().join("b/data")), source);

    // Each agent went at half the job's limit once it knew of the other: the first
    // from its next heartbeat, the second at once, after holding off until the first
    // knew.
    let halved = format!("agents=2 bytes_per_sec={}", LIMIT as u64 / 2);
    let halved_at =
        |agent: &Agent| (logged_at(&agent.log(), &halved) - planned_at).as_seconds_f64();
    // How long an agent held off, by its log: the one that joined the other on the job.
    let held_for = |agent: &Agent| {
        let log = agent.log();
        let line = log.lines().find(|l| l.contains(&halved)).unwrap();
        let ms = line.split("hold_ms=").nth(1).and_then(|v| {
            v.split_whitespace()
                .next()
                .and_then(|n| n.parse::<u64>().ok())
        });
        ms.unwrap_or_else(|| panic!("no hold_ms in '{line}'")) as f64 / 1e3
    };
    let held = [held_for(&agents[0]), held_for(&agents[1])];
    assert!(
        held.iter().any(|h| *h > 0.0),
        "the agent that joined the other on the job did not hold off:\n{}\n{}",
        agents[0].log(),
        agents[1].log()
    );
    let halved = [halved_at(&agents[0]), halved_at(&agents[1])];
    // Until it knew of the other, each agent went at no more than the whole limit; from
    // then on at half of it, after its hold if it held. So by `t` both together can
    // have sent LIMIT × (t + (halved₀ + halved₁ − held₀ − held₁) / 2) bytes, and one
    // slot more for each task in flight.
    let bound = (TOTAL - LATE_SLOTS) / LIMIT - (halved[0] + halved[1] - held[0] - held[1]) / 2.0;
    println!(
        "{TOTAL} bytes in {elapsed:.1} s (no less than {bound:.1} s); the agents shared \
         the limit after {halved:.1?} s, holding off for {held:?} s"
    );
    assert!(
        elapsed >= bound,
        "{TOTAL} bytes in {elapsed:.1} s, yet with the job's limit of {LIMIT} bytes/s, \
         split after {halved:.1?} s and held off for {held:?} s, no less than {bound:.1} s"
    );
    // Once both know, the agents leave the job at its end and its share behind.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while client
        .list_agents(Some("a"))
        .await
        .unwrap()
        .iter()
        .any(|a| a.jobs.contains(&job.id))
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "an agent still reports the finished job"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_up_to_the_part_size_go_in_one_request_larger_ones_in_parts() {
    const MIB: usize = 1 << 20;
    let source = BTreeMap::from([
        (
            "small.bin".to_owned(),
            ferry_tests::dataset::bytes(21, 4 * MIB),
        ),
        (
            "exact.bin".to_owned(),
            ferry_tests::dataset::bytes(22, 5 * MIB),
        ),
        (
            "large.bin".to_owned(),
            ferry_tests::dataset::bytes(23, 12 * MIB + 7),
        ),
    ]);
    let files = FilesToBucket::start(
        source,
        "parts",
        "parts",
        &[("FERRY_AGENT_PART_SIZE_MIB", "5")],
    )
    .await;

    let before = files.s3.writes();
    let job = files.plan(pb::VerifyMode::Full).await;
    files.completes(&job).await;
    let after = files.s3.writes();
    // 4 and 5 MiB: one request each; 12 MiB + 7 bytes: one upload of 5 + 5 + 2 MiB parts.
    assert_eq!(after.single_puts - before.single_puts, 2, "{after:?}");
    assert_eq!(
        after.multipart_uploads - before.multipart_uploads,
        1,
        "{after:?}"
    );
    assert_eq!(after.parts - before.parts, 3, "{after:?}");
    files.holds_the_source().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_destination_is_listed_once_before_the_copy_and_once_per_task_after() {
    let source: BTreeMap<String, Vec<u8>> = (0..20)
        .map(|i| {
            let bytes = ferry_tests::dataset::bytes(700 + i, 10_000);
            (format!("part-{i:02}.bin"), bytes)
        })
        .collect();
    let files = FilesToBucket::start(
        source,
        "fresh",
        "fresh",
        &[("FERRY_AGENT_TASK_OBJECTS", "4")],
    )
    .await;

    let lists = files.s3.lists();
    let job = files.plan(pb::VerifyMode::Quick).await;
    files.completes(&job).await;
    let listed = files.s3.lists() - lists;
    files.holds_the_source().await;
    // Five tasks of four. The listing task finds the destination empty, so no copy task
    // lists it before copying; each lists its range once to verify. Before, each task
    // also listed it first, to find objects to resume or skip: ten listings.
    assert!(
        (5..=6).contains(&listed),
        "{listed} ListObjects requests for 5 tasks on an empty destination"
    );
    assert_all_verified(&files.client, &job, files.source.len()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_already_at_the_destination_with_the_same_checksum_are_not_written_again() {
    let cp = ControlPlane::start().await;
    let client = Client::connect(&cp.endpoint()).await.unwrap();
    let s3 = S3Server::start().await;
    let dirs = tempfile::tempdir().unwrap();
    // Every key in one directory, one of them deeper: the destination is listed below
    // `day/` only, and that listing must still reach `day/sub/`.
    let source = BTreeMap::from([
        (
            "day/same.bin".to_owned(),
            ferry_tests::dataset::bytes(31, 300_000),
        ),
        (
            "day/changed.bin".to_owned(),
            ferry_tests::dataset::bytes(32, 300_000),
        ),
        (
            "day/new.bin".to_owned(),
            ferry_tests::dataset::bytes(33, 1000),
        ),
        (
            "day/sub/same.bin".to_owned(),
            ferry_tests::dataset::bytes(34, 2000),
        ),
    ]);
    file_system_dataset_and_bucket(&client, &s3, dirs.path(), "logs", "warm", &source).await;
    // An earlier copy left three objects of the right size there: two identical, one
    // not.
    let aws = s3.client();
    for (key, body) in [
        ("day/same.bin", source["day/same.bin"].clone()),
        ("day/sub/same.bin", source["day/sub/same.bin"].clone()),
        ("day/changed.bin", ferry_tests::dataset::bytes(99, 300_000)),
    ] {
        aws.put_object()
            .bucket("warm")
            .key(format!("ferry/logs/{key}"))
            .body(body.into())
            .send()
            .await
            .unwrap();
    }
    let _agent = Agent::start(&cp.endpoint(), cp.nats_url(), "fast", &[]);

    let before = s3.writes();
    let job = plan(&client, "logs", "bucket", pb::VerifyMode::Quick, "warm").await;
    let done = wait_for_end(&client, &job.id, TIMEOUT).await;
    assert_eq!(done.state, pb::JobState::Completed as i32, "{done:#?}");
    assert_eq!(
        s3.writes().single_puts - before.single_puts,
        2,
        "only the changed and the new object are written"
    );
    let bytes = bucket_bytes(&aws, "warm", "ferry/logs/").await;
    assert_eq!(bytes, source);
    let objects = client.list_job_objects(&job.id, None).await.unwrap();
    let by_key: HashMap<_, _> = objects.iter().map(|o| (o.key.as_str(), o)).collect();
    for key in ["day/same.bin", "day/sub/same.bin"] {
        let same = by_key[key];
        let xxh3 = format!("{:032x}", xxhash_rust::xxh3::xxh3_128(&source[key]));
        assert_eq!(same.status, pb::ObjectStatus::Skipped as i32, "{same:#?}");
        assert_eq!(
            (same.source_xxh3.as_str(), same.destination_xxh3.as_str()),
            (xxh3.as_str(), xxh3.as_str())
        );
    }
    for key in ["day/changed.bin", "day/new.bin"] {
        assert_eq!(
            by_key[key].status,
            pb::ObjectStatus::Verified as i32,
            "{:#?}",
            by_key[key]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_object_fails_alone_and_a_retry_without_it_completes() {
    let cp = ControlPlane::start().await;
    let client = Client::connect(&cp.endpoint()).await.unwrap();
    let s3 = S3Server::start().await;
    let dirs = tempfile::tempdir().unwrap();
    let source = mixed(12, 256 << 10);
    file_system_dataset_and_bucket(&client, &s3, dirs.path(), "logs", "guarded", &source).await;
    let refused = source.keys().nth(3).unwrap().clone();
    // A bucket policy refuses this one key: a permanent failure, never retried.
    s3.faults().deny_writes_to(&refused);
    let _agent = Agent::start(&cp.endpoint(), cp.nats_url(), "fast", &[]);

    let job = plan(&client, "logs", "bucket", pb::VerifyMode::Full, "refused").await;
    let done = wait_for_end(&client, &job.id, TIMEOUT).await;
    assert_eq!(done.state, pb::JobState::Failed as i32, "{done:#?}");
    let expected = format!("1 of {} objects failed", source.len());
    assert!(
        done.error.contains(&expected) && done.error.contains(&refused),
        "the job says which object failed: {}",
        done.error
    );
    assert_eq!(done.objects_done, source.len() as u64 - 1);

    let objects = client.list_job_objects(&job.id, None).await.unwrap();
    let failed = objects.iter().find(|o| o.key == refused).unwrap();
    assert_eq!(failed.status, pb::ObjectStatus::Failed as i32);
    assert_eq!(failed.attempts, 1, "a 403 is not retried: {failed:#?}");
    assert!(
        failed.error.contains("AccessDenied") && failed.error.contains(&refused),
        "the reason names the refusal and the object: {}",
        failed.error
    );
    let mut rest = source.clone();
    rest.remove(&refused);
    for o in objects.iter().filter(|o| o.key != refused) {
        assert_eq!(o.status, pb::ObjectStatus::Verified as i32, "{o:#?}");
    }
    assert_eq!(
        bucket_bytes(&s3.client(), "guarded", "ferry/logs/").await,
        rest,
        "every other object arrived intact"
    );
    let details = client.get_dataset("logs").await.unwrap();
    assert_eq!(
        details.dataset.site,
        client.get_site("fast").await.unwrap().id,
        "no switch: the source stays primary"
    );
    assert_eq!(read_tree(&dirs.path().join("fast/logs")), source);

    // The refused object leaves the source; a retry lists it no more, forgets its
    // failure, and completes with the rest, which are not copied again.
    std::fs::remove_file(dirs.path().join("fast/logs").join(&refused)).unwrap();
    let puts_before = s3.writes().single_puts;
    client.retry_job(&job.id).await.unwrap();
    let done = wait_for_end(&client, &job.id, TIMEOUT).await;
    assert_eq!(done.state, pb::JobState::Completed as i32, "{done:#?}");
    assert_eq!(
        (done.objects_total, done.objects_done, done.objects_failed),
        (rest.len() as u64, rest.len() as u64, 0)
    );
    let objects = client.list_job_objects(&job.id, None).await.unwrap();
    assert_eq!(
        objects.iter().map(|o| o.key.clone()).collect::<Vec<_>>(),
        rest.keys().cloned().collect::<Vec<_>>()
    );
    assert_eq!(
        s3.writes().single_puts,
        puts_before,
        "nothing is written again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_agents_of_a_site_share_the_tasks_of_one_job() {
    let cp = ControlPlane::start().await;
    let client = Client::connect(&cp.endpoint()).await.unwrap();
    let source: BTreeMap<String, Vec<u8>> = (0..40)
        .map(|i| {
            let bytes = ferry_tests::dataset::bytes(400 + i, 16 << 10);
            (format!("obj-{i:02}.bin"), bytes)
        })
        .collect();
    let dirs = two_local_sites(&client, &source).await;
    // Small tasks, and objects slow enough that one agent cannot drain the queue alone.
    let settings = [
        ("FERRY_AGENT_TASK_OBJECTS", "4"),
        ("FERRY_AGENT_TASK_SLOTS", "2"),
        ("FERRY_AGENT_FAULTS__PAUSE_AFTER_OBJECT_MS", "100"),
    ];
    let agents = [
        Agent::start(&cp.endpoint(), cp.nats_url(), "a", &settings),
        Agent::start(&cp.endpoint(), cp.nats_url(), "a", &settings),
    ];
    let job = plan(&client, "data", "b", pb::VerifyMode::Full, "shared-tasks").await;
    let done = wait_for_end(&client, &job.id, TIMEOUT).await;
    assert_eq!(done.state, pb::JobState::Completed as i32, "{done:#?}");
    assert_eq!(read_tree(&dirs.path().join("b/data")), source);

    let copy_tasks = |log: &str| {
        log.lines()
            .filter(|l| l.contains("task finished") && l.contains("task=copy-"))
            .count()
    };
    // An agent logs a task's end once its report is acknowledged, which can be after
    // the control plane has applied it and completed the job.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let (first, second) = loop {
        let counts = (copy_tasks(&agents[0].log()), copy_tasks(&agents[1].log()));
        if counts.0 + counts.1 >= 10 || tokio::time::Instant::now() > deadline {
            break counts;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(first + second, 10, "40 objects in tasks of 4");
    assert!(
        first > 0 && second > 0,
        "both agents took tasks: {first} and {second}"
    );
    let objects = client.list_job_objects(&job.id, None).await.unwrap();
    let mut tasks: Vec<&str> = objects.iter().map(|o| o.task.as_str()).collect();
    tasks.sort_unstable();
    tasks.dedup();
    assert_eq!(tasks.len(), 10, "each object records its task: {tasks:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_killed_mid_upload_resumes_with_the_missing_parts_only() {
    const MIB: usize = 1 << 20;
    const PART: usize = 8 * MIB;
    const SIZE: usize = 300 * MIB;
    const PARTS: usize = SIZE.div_ceil(PART);
    // One part at a time, with a pause after each is journalled, so the kill lands
    // between parts whose ids the control plane holds.
    let settings = [
        ("FERRY_AGENT_MEMORY_BUDGET_MIB", "24"),
        ("FERRY_AGENT_FAULTS__PAUSE_AFTER_PART_MS", "150"),
    ];
    let mut upload =
        FilesToBucket::start(one_large_file(21, SIZE), "video", "resume", &settings).await;
    let job = upload.plan(pb::VerifyMode::Quick).await;
    let (client, s3) = (&upload.client, &upload.s3);

    let journalled = |objects: &[pb::JobObject]| {
        objects
            .first()
            .and_then(|o| o.upload.as_ref())
            .map_or(0, |u| u.parts.len())
    };
    let before = wait_for_objects(client, &job.id, TIMEOUT, |o| journalled(o) >= 10).await;
    upload.agent.kill();
    let uploads_before = s3.writes().multipart_uploads;
    let parts_before = s3.writes().parts;
    // Parts stored before the kill, as the control plane recorded them by then; the
    // journal may have gained one or two more in the moment before the kill.
    let recorded_before = journalled(&before);
    assert!(recorded_before < PARTS, "the kill came mid-upload");

    upload.agent.restart();
    upload.completes(&job).await;
    upload.holds_the_source().await;
    let (client, s3) = (&upload.client, &upload.s3);
    let writes = s3.writes();
    assert_eq!(
        writes.multipart_uploads, uploads_before,
        "the restarted agent continued the same upload"
    );
    let uploaded_after = writes.parts - parts_before;
    assert!(
        uploaded_after <= PARTS - recorded_before,
        "after the restart {uploaded_after} parts were uploaded; {recorded_before} of {PARTS} were recorded before"
    );
    assert!(
        parts_before + uploaded_after >= PARTS,
        "every part was uploaded once at least"
    );
    let object = &client.list_job_objects(&job.id, None).await.unwrap()[0];
    assert_eq!(object.status, pb::ObjectStatus::Verified as i32);
    assert!(
        object.upload.is_none(),
        "a finished upload is no longer recorded"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_created_but_not_journalled_before_a_kill_is_aborted_after_the_restart() {
    // The agent pauses between creating the upload and journalling its id, and is
    // killed in that pause: only the service knows the upload.
    let settings = [(
        "FERRY_AGENT_FAULTS__PAUSE_BEFORE_UPLOAD_JOURNALLED_MS",
        "2000",
    )];
    let mut upload =
        FilesToBucket::start(one_large_file(23, 24 << 20), "scan", "orphan", &settings).await;
    let job = upload.plan(pb::VerifyMode::Quick).await;
    let s3 = &upload.s3;
    let in_progress = || async {
        let listed = s3
            .client()
            .list_multipart_uploads()
            .bucket("orphan")
            .send()
            .await
            .expect("listing multipart uploads");
        listed
            .uploads()
            .iter()
            .map(|u| u.upload_id().unwrap_or_default().to_owned())
            .collect::<Vec<_>>()
    };
    // The service counts the request when it arrives and lists the upload once it has
    // created it; the agent's pause begins when the answer reaches it.
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    let orphan = loop {
        let listed = in_progress().await;
        if !listed.is_empty() {
            break listed;
        }
        assert!(tokio::time::Instant::now() < deadline, "no upload started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    upload.agent.kill();
    assert_eq!(orphan.len(), 1, "the agent began one upload: {orphan:?}");
    assert_eq!(
        in_progress().await,
        orphan,
        "the killed agent left its upload"
    );
    let recorded = upload.client.list_job_objects(&job.id, None).await.unwrap();
    assert!(
        recorded.iter().all(|o| o.upload.is_none()),
        "the upload was never journalled: {recorded:#?}"
    );

    upload.agent.restart();
    upload.completes(&job).await;
    upload.holds_the_source().await;
    assert_eq!(
        s3.writes().multipart_uploads,
        2,
        "the restart began a new upload"
    );
    assert_eq!(
        in_progress().await,
        Vec::<String>::new(),
        "the unjournalled upload {orphan:?} was aborted, not left behind"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_to_s3_on_one_endpoint_copies_server_side() {
    let cp = ControlPlane::start().await;
    let client = Client::connect(&cp.endpoint()).await.unwrap();
    let s3 = S3Server::start().await;
    let source = mixed(30, 64 << 10);
    s3_site(&client, &s3, "hot", "hot-bucket", pb::Tier::Hot).await;
    s3_site(&client, &s3, "cold", "cold-bucket", pb::Tier::Cold).await;
    fill_bucket(&s3, "hot-bucket", "data", &source).await;
    dataset(&client, "data", "hot", "data").await;
    let _agent = Agent::start(&cp.endpoint(), cp.nats_url(), "hot", &[]);
    let written = s3.writes();
    let heads = s3.heads();

    let job = plan(
        &client,
        "data",
        "cold",
        pb::VerifyMode::Quick,
        "server-side",
    )
    .await;
    let done = wait_for_end(&client, &job.id, TIMEOUT).await;
    assert_eq!(done.state, pb::JobState::Completed as i32, "{done:#?}");
    assert_eq!(
        bucket_bytes(&s3.client(), "cold-bucket", "ferry/data/").await,
        source
    );
    assert_eq!(
        s3.writes(),
        written,
        "no bytes went through the agent: no PutObject, no upload, no part"
    );
    // s3s-fs lists no etags. The listed size is all one CopyObject needs, and the
    // destination's listing confirms each copy by its size: no HEAD of every object,
    // at either end.
    let looked_at = s3.heads() - heads;
    assert!(
        looked_at < source.len(),
        "{looked_at} HEAD requests for {} objects",
        source.len()
    );
    assert_all_verified(&client, &job, source.len()).await;
    assert_switched(&client, "data", "cold").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storage_class_change_in_place_copies_each_object_onto_itself() {
    const CLASS: &str = "REDUCED_REDUNDANCY";
    let cp = ControlPlane::start().await;
    let client = Client::connect(&cp.endpoint()).await.unwrap();
    let s3 = S3Server::start().await;
    let source = mixed(31, 64 << 10);
    s3_site(&client, &s3, "hot", "hot-bucket", pb::Tier::Hot).await;
    fill_bucket(&s3, "hot-bucket", "data", &source).await;
    dataset(&client, "data", "hot", "data").await;
    // A second name for the same bucket.
    let (alias, credentials) = s3.site("alias", "hot-bucket", pb::Tier::Cold);
    client.create_site(alias, credentials).await.unwrap();

    let in_place = |to: &str| pb::PlanMigrationRequest {
        dataset: "data".into(),
        destination_site: to.into(),
        storage_class: CLASS.into(),
        verify_mode: pb::VerifyMode::Full.into(),
        ..Default::default()
    };
    // Planning refuses it, and a dry run answers the same.
    let refused = |request: pb::PlanMigrationRequest| {
        let client = &client;
        async move {
            let e = client.plan_migration(request.clone()).await.unwrap_err();
            let status = e.status().cloned().unwrap();
            assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
            let dry = client
                .plan_migration(pb::PlanMigrationRequest {
                    dry_run: true,
                    ..request
                })
                .await
                .unwrap_err();
            let dry = dry.status().cloned().unwrap();
            assert_eq!(
                (dry.code(), dry.message()),
                (status.code(), status.message()),
                "the dry run answers what planning does"
            );
            status.message().to_owned()
        }
    };
    let message = refused(pb::PlanMigrationRequest {
        storage_class: String::new(),
        ..in_place("hot")
    })
    .await;
    assert_eq!(
        message,
        "destination_site: dataset data already lives at hot:data; name a storage_class \
         to change the objects' class in place"
    );
    let message = refused(pb::PlanMigrationRequest {
        retire_source: true,
        ..in_place("hot")
    })
    .await;
    assert!(
        message.starts_with("retire_source: dataset data already lives at hot:data; "),
        "{message}"
    );
    // Retiring the "source" of a copy between two names of one place would delete
    // the only copy.
    let message = refused(in_place("alias")).await;
    assert!(
        message.starts_with(
            "destination_site: dataset data already lives at hot:data, which site alias \
             names too"
        ),
        "{message}"
    );

    let preview = client
        .plan_migration(pb::PlanMigrationRequest {
            dry_run: true,
            ..in_place("hot")
        })
        .await
        .unwrap()
        .dry_run
        .unwrap();
    assert_eq!(preview.objects, source.len() as u64, "{preview:?}");

    let _agent = Agent::start(&cp.endpoint(), cp.nats_url(), "hot", &[]);
    let written = s3.writes();
    let job = client
        .plan_migration(in_place("hot"))
        .await
        .unwrap()
        .job
        .unwrap();
    assert_eq!(job.storage_class, CLASS);
    let done = wait_for_end(&client, &job.id, TIMEOUT).await;
    assert_eq!(done.state, pb::JobState::Completed as i32, "{done:#?}");
    assert_eq!(
        bucket_bytes(&s3.client(), "hot-bucket", "ferry/data/").await,
        source,
        "every object keeps its bytes"
    );
    assert_eq!(
        s3.writes(),
        written,
        "no bytes went through the agent: no PutObject, no upload, no part"
    );
    // Each object was copied onto itself once, with the new class.
    let mut copies = s3.server_copies();
    copies.sort_by(|a, b| a.path.cmp(&b.path));
    let expected: Vec<_> = source
        .keys()
        .map(|key| ferry_tests::s3::ServerCopy {
            path: format!("/hot-bucket/ferry/data/{key}"),
            source: format!("hot-bucket/ferry/data/{key}"),
            storage_class: Some(CLASS.to_owned()),
        })
        .collect();
    assert_eq!(copies, expected);
    assert_all_verified(&client, &job, source.len()).await;
    assert_switched(&client, "data", "hot").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_twenty_thousand_key_listing_through_filters_gives_exactly_the_expected_set() {
    // 20,000 small files in four folders, of four kinds and many sizes.
    let source: BTreeMap<String, Vec<u8>> = (0..20_000usize)
        .map(|i| {
            let folder = ["logs", "raw", "tmp", "logs/old"][i % 4];
            let kind = ["json", "csv", "bin", "json"][(i / 4) % 4];
            let name = if i % 7 == 0 { "skip" } else { "keep" };
            (
                format!("{folder}/{name}-{i:05}.{kind}"),
                vec![(i % 251) as u8; i % 1500],
            )
        })
        .collect();
    let filter = pb::ObjectFilter {
        prefix: "logs/".into(),
        include: vec!["**/*.json".into(), "**/*.csv".into()],
        exclude: vec!["**/skip-*".into()],
        min_size: 100,
        max_size: 1000,
        ..Default::default()
    };
    let expected: BTreeMap<String, Vec<u8>> = source
        .iter()
        .filter(|(k, v)| {
            k.starts_with("logs/")
                && (k.ends_with(".json") || k.ends_with(".csv"))
                && !k.rsplit('/').next().unwrap().starts_with("skip-")
                && (100..=1000).contains(&v.len())
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    assert!(expected.len() > 2000, "the filters keep a real share");

    let cp = ControlPlane::start().await;
    let client = Client::connect(&cp.endpoint()).await.unwrap();
    let dirs = two_local_sites(&client, &source).await;
    let request = pb::PlanMigrationRequest {
        dataset: "data".into(),
        destination_site: "b".into(),
        filter: Some(filter),
        idempotency_key: "filtered".into(),
        ..Default::default()
    };
    let dry = client
        .plan_migration(pb::PlanMigrationRequest {
            dry_run: true,
            ..request.clone()
        })
        .await
        .unwrap()
        .dry_run
        .unwrap();
    assert_eq!(
        dry.objects,
        expected.len() as u64,
        "the dry run filters alike"
    );

    let _agent = Agent::start(
        &cp.endpoint(),
        cp.nats_url(),
        "a",
        &[("FERRY_AGENT_TASK_OBJECTS", "500")],
    );
    let job = client.plan_migration(request).await.unwrap().job.unwrap();
    let done = wait_for_end(&client, &job.id, TIMEOUT).await;
    assert_eq!(done.state, pb::JobState::Completed as i32, "{done:#?}");
    assert_eq!(done.objects_total, expected.len() as u64);
    let listed: Vec<String> = client
        .list_job_objects(&job.id, None)
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .collect();
    assert_eq!(listed, expected.keys().cloned().collect::<Vec<_>>());
    assert_eq!(read_tree(&dirs.path().join("b/data")), expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_job_aborts_its_unfinished_upload() {
    cancel_mid_upload(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_job_whose_agent_died_aborts_its_upload_too() {
    cancel_mid_upload(true).await;
}

/// Cancels a job mid-upload, with its agent running or killed first (then started
/// again), and checks that the upload is aborted: no parts stay at the destination.
async fn cancel_mid_upload(kill_agent_first: bool) {
    let settings = [
        ("FERRY_AGENT_MEMORY_BUDGET_MIB", "24"),
        ("FERRY_AGENT_FAULTS__PAUSE_AFTER_PART_MS", "500"),
    ];
    let mut upload =
        FilesToBucket::start(one_large_file(33, 64 << 20), "video", "abandon", &settings).await;
    let job = upload.plan(pb::VerifyMode::Quick).await;
    let (client, s3) = (&upload.client, &upload.s3);
    let objects = wait_for_objects(client, &job.id, TIMEOUT, |objects| {
        objects
            .first()
            .and_then(|o| o.upload.as_ref())
            .is_some_and(|u| u.parts.len() >= 2)
    })
    .await;
    let upload_id = objects[0].upload.as_ref().unwrap().upload_id.clone();
    let stored_parts = || async {
        s3.client()
            .list_parts()
            .bucket("abandon")
            .key("ferry/video/big.bin")
            .upload_id(&upload_id)
            .send()
            .await
            .map_or(0, |parts| parts.parts().len())
    };
    assert!(stored_parts().await >= 2, "the upload holds parts");

    if kill_agent_first {
        upload.agent.kill();
    }
    client.cancel_job(&job.id).await.unwrap();
    if kill_agent_first {
        upload.agent.restart();
    }
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    while !upload.agent.log().contains("unfinished upload aborted") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the agent never aborted the upload:\n{}",
            upload.agent.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(stored_parts().await, 0, "no orphaned parts remain");
    assert!(
        bucket_bytes(&s3.client(), "abandon", "ferry/video/")
            .await
            .is_empty(),
        "no object was completed"
    );
}
