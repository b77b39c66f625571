//! Migrations end to end: the real control plane, a real agent, a private nats-server
//! and an in-process S3 server. Every check reads the destination independently (std::fs
//! or aws-sdk-s3 directly), never through Ferry's own code.

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
    s3.create_bucket(bucket).await;
    let site = pb::Site {
        name: name.into(),
        uri: format!("s3://{bucket}/ferry"),
        tier: tier.into(),
        options: [
            ("endpoint".to_string(), s3.endpoint()),
            ("region".to_string(), s3.region().to_string()),
            ("force_path_style".to_string(), "true".to_string()),
        ]
        .into_iter()
        .collect(),
        ..Default::default()
    };
    let credentials: HashMap<String, String> = [
        ("access_key_id".to_string(), s3.access_key().to_string()),
        ("secret_access_key".to_string(), s3.secret_key().to_string()),
    ]
    .into_iter()
    .collect();
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
    let in_bucket = read_bucket(&s3.client(), "archive", "ferry/projects/genome/").await;
    let bytes: BTreeMap<_, _> = in_bucket
        .iter()
        .map(|(k, v)| (k.clone(), v.0.clone()))
        .collect();
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
