//! The migration lifecycle end to end: copy, verify, switch and retire between file
//! systems and buckets, idempotent plans, stale reports, dry runs, and credentials kept
//! off the bus.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_system_to_s3_and_back() {
    let cp = ControlPlane::start().await;
    let client = cp.client().await;
    let s3 = S3Server::start().await;
    let dirs = tempfile::tempdir().unwrap();
    let source = mixed(1, LARGE);
    write_tree(&dirs.path().join("fast/projects/genome"), &source);
    fs_site(&client, "fast", &dirs.path().join("fast"), pb::Tier::Hot).await;
    s3_site(&client, &s3, "bucket", "archive", pb::Tier::Cold).await;
    dataset(&client, "genome", "fast", "projects/genome").await;
    let _agent = Agent::start(&cp, "fast", &[]).await;

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
    fs_site(
        &client,
        "scratch",
        &dirs.path().join("scratch"),
        pb::Tier::Warm,
    )
    .await;
    let _agent2 = Agent::start(&cp, "scratch", &[]).await;
    let back = plan_job(
        &client,
        pb::PlanMigrationRequest {
            dataset: "genome".into(),
            destination_site: "scratch".into(),
            destination_path: "restored".into(),
            retire_source: true,
            ..Default::default()
        },
    )
    .await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_to_s3_keeps_content_type_and_metadata_and_s3_to_file_system() {
    let cp = ControlPlane::start().await;
    let client = cp.client().await;
    let s3 = S3Server::start().await;
    s3_site(&client, &s3, "primary", "primary-bucket", pb::Tier::Hot).await;
    s3_site(&client, &s3, "replica", "replica-bucket", pb::Tier::Warm).await;
    let source = mixed(7, LARGE);
    fill_bucket(&s3, "primary-bucket", "tables", &source).await;
    dataset(&client, "tables", "primary", "tables").await;
    let _agent = Agent::start(&cp, "primary", &[]).await;

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
    assert_copied_with_metadata(&before, &after);
    assert_switched(&client, "tables", "replica").await;

    let dirs = tempfile::tempdir().unwrap();
    fs_site(&client, "local", dirs.path(), pb::Tier::Hot).await;
    let _local_agent = Agent::start(&cp, "local", &[]).await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_plans_with_one_key_give_one_job() {
    let cp = ControlPlane::start().await;
    let client = cp.client().await;
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
    use ferry_proto::bus::progress_subject;
    use prost::Message;
    let cp = ControlPlane::start().await;
    let client = cp.client().await;
    let _dirs = two_local_sites(&client, &mixed(4, 1024)).await;
    // No agent: the job stays queued at attempt 1. Cancel and retry make attempt 2.
    let job = plan(&client, "data", "b", pb::VerifyMode::Quick, "fenced").await;
    client.cancel_job(&job.id).await.unwrap();
    let retried = client.retry_job(&job.id).await.unwrap();
    assert_eq!(retried.attempt, 2);

    let nats = cp.nats_access().connect().await;
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
        js.publish(
            progress_subject(&job.executing_site, &job.id),
            payload.into(),
        )
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
        progress_subject(&job.executing_site, &job.id),
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
async fn a_failed_job_leaves_the_source_untouched_and_primary() {
    let cp = ControlPlane::start().await;
    let client = cp.client().await;
    let s3 = S3Server::start().await;
    let source = mixed(6, 1 << 20);
    let dirs = tempfile::tempdir().unwrap();
    write_tree(&dirs.path().join("a/data"), &source);
    fs_site(&client, "a", &dirs.path().join("a"), pb::Tier::Hot).await;
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
    let _agent = Agent::start(&cp, "a", &[]).await;

    let job = plan_job(
        &client,
        pb::PlanMigrationRequest {
            dataset: "data".into(),
            destination_site: "nowhere".into(),
            retire_source: true,
            ..Default::default()
        },
    )
    .await;
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
    let client = cp.client().await;
    let s3 = S3Server::start().await;
    let dirs = tempfile::tempdir().unwrap();
    write_tree(&dirs.path().join("a/data"), &mixed(8, 4096));
    fs_site(&client, "a", &dirs.path().join("a"), pb::Tier::Hot).await;
    s3_site(&client, &s3, "vault", "vault", pb::Tier::Cold).await;
    dataset(&client, "data", "a", "data").await;
    let job = plan(&client, "data", "vault", pb::VerifyMode::Quick, "canary").await;

    let nats = cp.nats_access().connect().await;
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

    let _agent = Agent::start(&cp, "a", &[]).await;
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

/// A dry run is listed by an agent of the source site, which alone can see it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_lists_what_would_move_and_plans_nothing() {
    let cp = ControlPlane::start().await;
    let client = cp.client().await;
    let source = mixed(9, 1 << 20);
    let _dirs = two_local_sites(&client, &source).await;
    let agent = Agent::start(&cp, "a", &[]).await;
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
    assert!(
        agent.log().contains("dry run answered"),
        "the agent listed the source:\n{}",
        agent.log()
    );
}

/// With no agent of the source site online, a dry run says so, naming the site.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_without_an_agent_of_the_source_site_names_the_site() {
    let cp = ControlPlane::start().await;
    let client = cp.client().await;
    let _dirs = two_local_sites(&client, &mixed(10, 1 << 10)).await;
    // An agent of the destination site lists nothing: the source's is asked.
    let _other = Agent::start(&cp, "b", &[]).await;
    let e = client
        .plan_migration(pb::PlanMigrationRequest {
            dataset: "data".into(),
            destination_site: "b".into(),
            dry_run: true,
            ..Default::default()
        })
        .await
        .unwrap_err();
    let status = e.status().cloned().unwrap();
    assert_eq!(status.code(), tonic::Code::FailedPrecondition, "{status:?}");
    assert_eq!(
        status.message(),
        "no agent of site a is online to list the source; start one with \
         `ferry-agent --site a`"
    );
}

/// Every line an agent logs about a job carries the job's id (the task's span), so
/// filtering its log by the id tells the job's whole story, object by object; the
/// control plane's lines about a call carry the RPC's span, and those about a job's
/// progress the job's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_job_id_pulls_its_whole_story_out_of_the_logs() {
    let cp = ControlPlane::start().await;
    let client = cp.client().await;
    let source = mixed(12, 1 << 20);
    let _dirs = two_local_sites(&client, &source).await;
    let agent = Agent::start(&cp, "a", &[]).await;
    let first = plan(&client, "data", "b", pb::VerifyMode::Full, "story").await;
    let done = wait_for_end(&client, &first.id, TIMEOUT).await;
    assert_eq!(done.state, pb::JobState::Completed as i32, "{done:#?}");

    let log = agent.log();
    let story: Vec<&str> = log.lines().filter(|l| l.contains(&first.id)).collect();
    for step in [
        "task received",
        "source listed into copy tasks",
        "copying",
        "task finished",
    ] {
        assert!(
            story.iter().any(|l| l.contains(step)),
            "`{step}` is in the job's story:\n{}",
            story.join("\n")
        );
    }
    for key in source.keys() {
        assert!(
            story
                .iter()
                .any(|l| l.contains("object copied") && l.contains(&format!("key={key}"))),
            "{key}'s copy is in the job's story:\n{}",
            story.join("\n")
        );
    }
    // No line about one of the job's objects escapes its span.
    let object_lines: Vec<&str> = log
        .lines()
        .filter(|l| source.keys().any(|k| l.contains(&format!("key={k}"))))
        .collect();
    assert!(
        object_lines.iter().all(|l| l.contains(&first.id)),
        "every object line names the job:\n{}",
        object_lines.join("\n")
    );

    let cp_log = cp.log();
    assert!(
        cp_log
            .lines()
            .any(|l| l
                .contains("rpc{service=ferry.v1.JobService method=PlanMigration peer=127.0.0.1:")),
        "the plan's lines carry its RPC's span:\n{cp_log}"
    );
    assert!(
        cp_log
            .lines()
            .any(|l| l.contains(&format!("job{{job_id={}", first.id))
                && l.contains("copy task recorded")),
        "the job's progress is logged in its span:\n{cp_log}"
    );
}
