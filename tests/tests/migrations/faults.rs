//! Faults: agents killed mid-copy and mid-upload, flipped bytes, a store answering 503,
//! a refused object, and cancelled jobs: nothing is lost, nothing is left behind.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_killed_mid_copy_resumes_without_copying_finished_objects_again() {
    let cp = ControlPlane::start().await;
    let client = cp.client().await;
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
    let mut agent = Agent::start(&cp, "a", &slow).await;
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

    agent.restart().await;
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
    let client = cp.client().await;
    let source = mixed(5, 1 << 20);
    let dirs = two_local_sites(&client, &source).await;
    let gate = dirs.path().join("verify");
    let _agent = Agent::start(
        &cp,
        "a",
        &[
            ("FERRY_AGENT_FAULTS__PAUSE_BEFORE_VERIFY_MS", "60000"),
            ("FERRY_AGENT_FAULTS__VERIFY_GATE", gate.to_str().unwrap()),
        ],
    )
    .await;
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
    std::fs::write(&gate, b"").unwrap();

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
async fn an_object_written_over_before_a_quick_verify_is_told_by_its_etag_and_copied_again() {
    const MIB: usize = 1 << 20;
    // One object for each way to S3 (5 MiB parts, one request up to 16 MiB): read whole
    // in one request, streamed in one request, and sent in parts; and two left alone.
    let sizes = [
        ("whole.bin", 64 << 10),
        ("streamed.bin", 6 * MIB),
        ("parts.bin", 17 * MIB + 3),
        ("alone-1.bin", 1000),
        ("alone-2.bin", 2 * MIB),
    ];
    let source: BTreeMap<String, Vec<u8>> = sizes
        .iter()
        .zip(60..)
        .map(|((key, size), seed)| (key.to_string(), ferry_tests::dataset::bytes(seed, *size)))
        .collect();
    // The agent verifies once the test has written over the copies (the gate opens),
    // however slow the machine.
    let gate_dir = tempfile::tempdir().unwrap();
    let gate = gate_dir.path().join("verify");
    let mut settings = STREAMED_UP_TO_16_MIB.to_vec();
    settings.push(("FERRY_AGENT_FAULTS__PAUSE_BEFORE_VERIFY_MS", "60000"));
    settings.push(("FERRY_AGENT_FAULTS__VERIFY_GATE", gate.to_str().unwrap()));
    let files = FilesToBucket::start(source, "logs", "overwritten", &settings).await;
    // Quick verification confirms copies with one listing, and on S3 that listing
    // carries each object's etag.
    files.s3.list_etags();

    let job = copied_not_verified(&files).await;
    let writes = files.s3.writes();
    assert_eq!(
        (writes.single_puts, writes.multipart_uploads),
        (4, 1),
        "each way to S3 was taken: {writes:?}"
    );
    // Between the copy and its verification, another writer puts objects of the same
    // sizes over three of them: sizes alone cannot tell.
    let overwritten = ["whole.bin", "streamed.bin", "parts.bin"];
    write_over(&files, &overwritten).await;
    std::fs::write(&gate, b"").unwrap();

    files.completes(&job).await;
    // Each repair went the way its first copy did: the two smaller ones in one request
    // each, the large one as a multipart upload again (journalled, so resumable). The
    // three writes over them were single requests too.
    let after = files.s3.writes();
    assert_eq!(
        (
            after.single_puts - writes.single_puts,
            after.multipart_uploads - writes.multipart_uploads
        ),
        (overwritten.len() + 2, 1),
        "the writes over and the repairs: {writes:?} then {after:?}"
    );
    files.holds_the_source().await;
    let objects = files.client.list_job_objects(&job.id, None).await.unwrap();
    for o in &objects {
        assert_eq!(o.status, pb::ObjectStatus::Verified as i32, "{o:#?}");
        let expected = if overwritten.contains(&o.key.as_str()) {
            2
        } else {
            1
        };
        assert_eq!(
            o.attempts, expected,
            "{}: copied again only if written over",
            o.key
        );
    }
    let log = files.agent.log();
    assert_eq!(
        log.matches("destination differs from the source; copying again")
            .count(),
        overwritten.len(),
        "{log}"
    );
    let in_parts = log
        .lines()
        .filter(|l| l.contains("object uploaded in parts") && l.contains("key=parts.bin"))
        .count();
    assert_eq!(in_parts, 2, "copied and repaired in parts: {log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_written_over_while_its_agent_was_down_is_read_back_and_copied_again() {
    let source: BTreeMap<String, Vec<u8>> = (0..4)
        .map(|i| {
            (
                format!("obj-{i}.bin"),
                ferry_tests::dataset::bytes(70 + i, 256 << 10),
            )
        })
        .collect();
    let gate_dir = tempfile::tempdir().unwrap();
    let gate = gate_dir.path().join("verify");
    let pause = [
        ("FERRY_AGENT_FAULTS__PAUSE_BEFORE_VERIFY_MS", "60000"),
        ("FERRY_AGENT_FAULTS__VERIFY_GATE", gate.to_str().unwrap()),
    ];
    let mut files = FilesToBucket::start(source, "logs", "resumed", &pause).await;
    files.s3.list_etags();

    let job = copied_not_verified(&files).await;
    // The agent dies before verifying, and with it the etags its writes got; while it
    // is down, another writer puts an object of the same size over one of them.
    files.agent.kill();
    write_over(&files, &["obj-1.bin"]).await;
    std::fs::write(&gate, b"").unwrap();
    files.agent.restart().await;

    files.completes(&job).await;
    files.holds_the_source().await;
    let objects = files.client.list_job_objects(&job.id, None).await.unwrap();
    for o in &objects {
        assert_eq!(o.status, pb::ObjectStatus::Verified as i32, "{o:#?}");
        // The others were read back and hashed; the one copied again was then checked
        // by the etag its new copy got.
        if o.key == "obj-1.bin" {
            assert_eq!(o.attempts, 2, "copied, then copied again: {o:#?}");
        } else {
            assert_eq!(o.destination_xxh3, o.source_xxh3, "{}: read back", o.key);
            assert_eq!(o.attempts, 1, "{o:#?}");
        }
    }
    let log = files.agent.log();
    assert_eq!(
        log.matches("destination differs from the source; copying again")
            .count(),
        1,
        "{log}"
    );
}

/// Plans a quick migration of the files to the bucket, and waits until every object is
/// copied and none verified yet (the agent pauses before verifying).
async fn copied_not_verified(files: &FilesToBucket) -> pb::Job {
    let job = files.plan(pb::VerifyMode::Quick).await;
    wait_for_objects(&files.client, &job.id, TIMEOUT, |objects| {
        objects.len() == files.source.len()
            && objects
                .iter()
                .all(|o| o.status == pb::ObjectStatus::Copied as i32)
    })
    .await;
    job
}

/// Puts objects of the same sizes as the source's over `keys` in the bucket, as another
/// writer would. It sends no CRC: s3s-fs 0.14 would keep one through the multipart
/// upload that later replaces the object, and serve the new bytes with the old CRC.
async fn write_over(files: &FilesToBucket, keys: &[&str]) {
    let writer = aws_sdk_s3::Client::from_conf(
        files
            .s3
            .client()
            .config()
            .to_builder()
            .request_checksum_calculation(
                aws_sdk_s3::config::RequestChecksumCalculation::WhenRequired,
            )
            .build(),
    );
    for (key, seed) in keys.iter().zip(90..) {
        let size = files.source[*key].len();
        writer
            .put_object()
            .bucket(files.bucket)
            .key(format!("ferry/{}/{key}", files.dataset))
            .body(ferry_tests::dataset::bytes(seed, size).into())
            .send()
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_answering_503_is_retried_and_the_job_completes() {
    let cp = ControlPlane::start().await;
    let client = cp.client().await;
    let s3 = S3Server::start().await;
    let dirs = tempfile::tempdir().unwrap();
    let source = mixed(9, 1 << 20);
    file_system_dataset_and_bucket(&client, &s3, dirs.path(), "logs", "flaky", &source).await;
    // The store throttles: its next five writes are answered 503 SlowDown.
    s3.faults().fail_next_puts(5);
    let agent = Agent::start(&cp, "fast", &[]).await;

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_object_fails_alone_and_a_retry_without_it_completes() {
    let cp = ControlPlane::start().await;
    let client = cp.client().await;
    let s3 = S3Server::start().await;
    let dirs = tempfile::tempdir().unwrap();
    let source = mixed(12, 256 << 10);
    file_system_dataset_and_bucket(&client, &s3, dirs.path(), "logs", "guarded", &source).await;
    let refused = source.keys().nth(3).unwrap().clone();
    // A bucket policy refuses this one key: a permanent failure, never retried.
    s3.faults().deny_writes_to(&refused);
    let _agent = Agent::start(&cp, "fast", &[]).await;

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

    upload.agent.restart().await;
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

    upload.agent.restart().await;
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
        upload.agent.restart().await;
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
