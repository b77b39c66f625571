//! Copies the S3 service makes itself, between two buckets of one endpoint or of an
//! object onto itself (a storage-class change in place), and how they are verified.

use super::{transfer::assert_all_verified, *};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_to_s3_on_one_endpoint_copies_server_side() {
    // s3s-fs lists no etags: the listed size is all one CopyObject needs, and the
    // destination's listing confirms each copy by its size.
    server_side_copy(30, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_etags_in_listings_server_side_copies_are_conditional_and_confirmed_by_etag() {
    // As on AWS: each CopyObject is conditional on the source's listed etag, and the
    // destination's listing confirms each copy by the etag CopyObject answered.
    server_side_copy(32, true).await;
}

/// Migrates a bucket's dataset to another bucket of the same server, quick verify, and
/// checks that the service copied every object (no bytes through the agent) and that
/// no object needed a HEAD of its own, at either end.
async fn server_side_copy(seed: u64, list_etags: bool) {
    let buckets = TwoBuckets::start(seed, list_etags).await;
    let (client, s3, source) = (&buckets.client, &buckets.s3, &buckets.source);
    let written = s3.writes();
    let heads = s3.heads();
    let job = buckets.migrate(pb::VerifyMode::Quick).await;
    assert_eq!(
        bucket_bytes(&s3.client(), "cold-bucket", "ferry/data/").await,
        *source
    );
    assert_eq!(
        s3.writes(),
        written,
        "no bytes went through the agent: no PutObject, no upload, no part"
    );
    let copies = s3.server_copies();
    assert_eq!(copies.len(), source.len(), "one CopyObject per object");
    assert!(
        copies.iter().all(|c| c.if_match.is_some() == list_etags),
        "conditional on the listed etag exactly when the listing had one: {copies:#?}"
    );
    let looked_at = s3.heads() - heads;
    assert!(
        looked_at < source.len(),
        "{looked_at} HEAD requests for {} objects",
        source.len()
    );
    assert_all_verified(client, &job, source.len()).await;
    assert_switched(client, "data", "cold").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_verification_reads_the_copy_back_and_not_the_source_its_etag_names() {
    // As on AWS: the listing's etags make each CopyObject conditional on the version
    // listed, and that etag is the MD5 of its bytes, so the copy read back and hashed
    // is proved against it without reading the source.
    server_side_copy_verified_in_full(34, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_etags_a_full_verification_reads_both_ends_of_a_server_side_copy() {
    // s3s-fs lists no etags: nothing names the version copied, so the source is read
    // and hashed too.
    server_side_copy_verified_in_full(35, false).await;
}

/// Migrates a bucket's dataset to another bucket of the same server, full verify, and
/// checks which ends were read back (the destination's copies once each, with no HEAD;
/// the source only when its listing gave no etags) and the xxh3s recorded for each
/// object.
async fn server_side_copy_verified_in_full(seed: u64, list_etags: bool) {
    let buckets = TwoBuckets::start(seed, list_etags).await;
    let (client, s3, source) = (&buckets.client, &buckets.s3, &buckets.source);
    let heads = s3.heads();
    let job = buckets.migrate(pb::VerifyMode::Full).await;
    assert_eq!(
        s3.heads() - heads,
        0,
        "no object looked at with a HEAD of its own"
    );
    let (source_reads, copy_reads) = (
        s3.object_reads("hot-bucket"),
        s3.object_reads("cold-bucket"),
    );
    assert_eq!(s3.server_copies().len(), source.len(), "copied server-side");
    assert_eq!(copy_reads, source.len(), "every copy read back once");
    let expected_source_reads = if list_etags { 0 } else { source.len() };
    assert_eq!(source_reads, expected_source_reads, "source objects read");
    assert_eq!(
        bucket_bytes(&s3.client(), "cold-bucket", "ferry/data/").await,
        *source
    );
    assert_all_verified(client, &job, source.len()).await;
    for o in client.list_job_objects(&job.id, None).await.unwrap() {
        let expected = format!("{:032x}", xxhash_rust::xxh3::xxh3_128(&source[&o.key]));
        assert_eq!(o.source_xxh3, expected, "{}: the source's bytes", o.key);
        assert_eq!(o.destination_xxh3, expected, "{}: read back", o.key);
    }
    assert_switched(client, "data", "cold").await;
}

/// A control plane, an S3 server with the dataset `data` in `hot-bucket` (site `hot`,
/// its objects `source`) and an empty `cold-bucket` (site `cold`), and an agent of
/// `hot`.
struct TwoBuckets {
    _cp: ControlPlane,
    client: Client,
    s3: S3Server,
    source: BTreeMap<String, Vec<u8>>,
    agent: Agent,
}

impl TwoBuckets {
    async fn start(seed: u64, list_etags: bool) -> TwoBuckets {
        let cp = ControlPlane::start().await;
        let client = cp.client().await;
        let s3 = S3Server::start().await;
        if list_etags {
            s3.list_etags();
        }
        let source = mixed(seed, 64 << 10);
        s3_site(&client, &s3, "hot", "hot-bucket", pb::Tier::Hot).await;
        s3_site(&client, &s3, "cold", "cold-bucket", pb::Tier::Cold).await;
        fill_bucket(&s3, "hot-bucket", "data", &source).await;
        dataset(&client, "data", "hot", "data").await;
        let agent = Agent::start(&cp, "hot", &[]).await;
        TwoBuckets {
            _cp: cp,
            client,
            s3,
            source,
            agent,
        }
    }

    /// Migrates `data` to `cold`, verified as `mode` says; the job, completed.
    async fn migrate(&self, mode: pb::VerifyMode) -> pb::Job {
        let job = plan(&self.client, "data", "cold", mode, "server-side").await;
        assert_completed(&self.client, &job, &self.agent).await;
        job
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storage_class_change_in_place_copies_each_object_onto_itself() {
    const CLASS: &str = "REDUCED_REDUNDANCY";
    let cp = ControlPlane::start().await;
    let client = cp.client().await;
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
    let _agent = Agent::start(&cp, "hot", &[]).await;
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
            // s3s-fs lists no etags, so nothing to make the copy conditional on.
            if_match: None,
        })
        .collect();
    assert_eq!(copies, expected);
    assert_all_verified(&client, &job, source.len()).await;
    assert_switched(&client, "data", "hot").await;
}
