//! The bucket-scale transfer engine: single requests and multipart, destination
//! listings, skipped objects, tasks shared by agents, and filtered listings.

use super::*;

/// Checks that the job recorded `count` objects, every one verified (none skipped).
pub(super) async fn assert_all_verified(client: &Client, job: &pb::Job, count: usize) {
    let objects = client.list_job_objects(&job.id, None).await.unwrap();
    assert_eq!(objects.len(), count);
    assert!(
        objects
            .iter()
            .all(|o| o.status == pb::ObjectStatus::Verified as i32),
        "every object verified, none skipped: {objects:#?}"
    );
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
async fn objects_up_to_the_multipart_threshold_go_in_one_streamed_request() {
    const MIB: usize = 1 << 20;
    let source = BTreeMap::from([
        (
            "small.bin".to_owned(),
            ferry_tests::dataset::bytes(41, 4 * MIB),
        ),
        (
            "mid.bin".to_owned(),
            ferry_tests::dataset::bytes(42, 12 * MIB + 7),
        ),
        (
            "edge.bin".to_owned(),
            ferry_tests::dataset::bytes(43, 16 * MIB),
        ),
        (
            "large.bin".to_owned(),
            ferry_tests::dataset::bytes(44, 16 * MIB + 1),
        ),
    ]);
    let files = FilesToBucket::start(source, "streamed", "streamed", &STREAMED_UP_TO_16_MIB).await;

    let before = files.s3.writes();
    let job = files.plan(pb::VerifyMode::Full).await;
    files.completes(&job).await;
    let after = files.s3.writes();
    // 4 MiB read whole, 12 MiB + 7 bytes and 16 MiB streamed: one request each. 16 MiB
    // + 1 byte, above the threshold: one upload of 5 + 5 + 5 MiB + 1 byte.
    assert_eq!(after.single_puts - before.single_puts, 3, "{after:?}");
    assert_eq!(
        after.multipart_uploads - before.multipart_uploads,
        1,
        "{after:?}"
    );
    assert_eq!(after.parts - before.parts, 4, "{after:?}");
    files.holds_the_source().await;
    assert_all_verified(&files.client, &job, files.source.len()).await;
    let objects = files.client.list_job_objects(&job.id, None).await.unwrap();
    for o in &objects {
        let expected = format!(
            "{:032x}",
            xxhash_rust::xxh3::xxh3_128(&files.source[&o.key])
        );
        assert_eq!(o.source_xxh3, expected, "{}: hashed on the way", o.key);
        assert_eq!(o.destination_xxh3, expected, "{}: read back", o.key);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bucket_on_another_service_streams_into_one_request_with_its_metadata() {
    const MIB: usize = 1 << 20;
    let cp = ControlPlane::start().await;
    let client = cp.client().await;
    // Two services: no server-side copy between them, every byte passes the agent.
    let (from, to) = (S3Server::start().await, S3Server::start().await);
    s3_site(&client, &from, "primary", "primary-bucket", pb::Tier::Hot).await;
    s3_site(&client, &to, "replica", "replica-bucket", pb::Tier::Warm).await;
    let source = BTreeMap::from([
        (
            "a.bin".to_owned(),
            ferry_tests::dataset::bytes(51, 7 * MIB + 3),
        ),
        (
            "b.bin".to_owned(),
            ferry_tests::dataset::bytes(52, 11 * MIB),
        ),
    ]);
    fill_bucket(&from, "primary-bucket", "tables", &source).await;
    dataset(&client, "tables", "primary", "tables").await;
    let _agent = Agent::start(&cp, "primary", &STREAMED_UP_TO_16_MIB).await;

    let before = to.writes();
    let job = plan(
        &client,
        "tables",
        "replica",
        pb::VerifyMode::Full,
        "streamed",
    )
    .await;
    let done = wait_for_end(&client, &job.id, TIMEOUT).await;
    assert_eq!(done.state, pb::JobState::Completed as i32, "{done:#?}");
    let after = to.writes();
    assert_eq!(after.single_puts - before.single_puts, 2, "{after:?}");
    assert_eq!(
        after.multipart_uploads - before.multipart_uploads,
        0,
        "{after:?}"
    );
    let original = read_bucket(&from.client(), "primary-bucket", "ferry/tables/").await;
    let copied = read_bucket(&to.client(), "replica-bucket", "ferry/tables/").await;
    assert_eq!(copied.len(), source.len());
    assert_copied_with_metadata(&original, &copied);
    assert_switched(&client, "tables", "replica").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_request_refused_before_its_body_is_read_fails_its_object_alone() {
    const MIB: usize = 1 << 20;
    let source = BTreeMap::from([
        (
            "kept.bin".to_owned(),
            ferry_tests::dataset::bytes(61, 9 * MIB),
        ),
        (
            "refused.bin".to_owned(),
            ferry_tests::dataset::bytes(62, 14 * MIB),
        ),
    ]);
    let files = FilesToBucket::start(source, "guarded", "guarded", &STREAMED_UP_TO_16_MIB).await;
    // Answered 403 as soon as the request arrives, with most of its body unsent.
    files.s3.faults().deny_writes_to("refused.bin");

    let job = files.plan(pb::VerifyMode::Quick).await;
    let done = wait_for_end(&files.client, &job.id, TIMEOUT).await;
    assert_eq!(done.state, pb::JobState::Failed as i32, "{done:#?}");
    let objects = files.client.list_job_objects(&job.id, None).await.unwrap();
    let by_key: HashMap<_, _> = objects.iter().map(|o| (o.key.as_str(), o)).collect();
    let refused = by_key["refused.bin"];
    assert_eq!(
        refused.status,
        pb::ObjectStatus::Failed as i32,
        "{refused:#?}"
    );
    assert!(
        refused.error.contains("AccessDenied") && refused.attempts == 1,
        "the refusal is the reason, not a broken connection, and is not retried: {refused:#?}"
    );
    assert_eq!(by_key["kept.bin"].status, pb::ObjectStatus::Verified as i32);
    let arrived = bucket_bytes(&files.s3.client(), "guarded", "ferry/guarded/").await;
    assert_eq!(arrived.keys().collect::<Vec<_>>(), ["kept.bin"]);
    assert!(arrived["kept.bin"] == files.source["kept.bin"]);
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
    // also listed it first, to find objects to resume or skip: ten listings. The final
    // pass lists it once more, for copies of objects deleted at the source meanwhile.
    assert!(
        (6..=7).contains(&listed),
        "{listed} ListObjects requests for 5 tasks on an empty destination"
    );
    assert_all_verified(&files.client, &job, files.source.len()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_already_at_the_destination_with_the_same_checksum_are_not_written_again() {
    let cp = ControlPlane::start().await;
    let client = cp.client().await;
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
    let _agent = Agent::start(&cp, "fast", &[]).await;

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
async fn two_agents_of_a_site_share_the_tasks_of_one_job() {
    let cp = ControlPlane::start().await;
    let client = cp.client().await;
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
        Agent::start(&cp, "a", &settings).await,
        Agent::start(&cp, "a", &settings).await,
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
    let client = cp.client().await;
    let dirs = two_local_sites(&client, &source).await;
    let request = pb::PlanMigrationRequest {
        dataset: "data".into(),
        destination_site: "b".into(),
        filter: Some(filter),
        idempotency_key: "filtered".into(),
        ..Default::default()
    };
    let _agent = Agent::start(&cp, "a", &[("FERRY_AGENT_TASK_OBJECTS", "500")]).await;
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
