//! A migration whose source changes while it copies: the final pass before the switch
//! copies what changed, so the new primary holds the source as it is at the switch, and
//! reports the objects that changed. The destination is read back with std::fs.

use std::fs;

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_changed_during_the_copy_is_caught_before_the_switch() {
    let cp = ControlPlane::start().await;
    let client = cp.client().await;
    let dirs = tempfile::tempdir().unwrap();
    let source_dir = dirs.path().join("fast/data");
    let mut source: BTreeMap<String, Vec<u8>> = (0..4u64)
        .map(|i| {
            let bytes = ferry_tests::dataset::bytes(900 + i, 2 << 20);
            (format!("part-{i}.bin"), bytes)
        })
        .collect();
    write_tree(&source_dir, &source);
    fs_site(&client, "fast", &dirs.path().join("fast"), pb::Tier::Hot).await;
    fs_site(&client, "slow", &dirs.path().join("slow"), pb::Tier::Cold).await;
    dataset(&client, "data", "fast", "data").await;
    // One object per task, one task at a time, at 2 MiB/s: about a second per object.
    let settings = [
        ("FERRY_AGENT_TASK_OBJECTS", "1"),
        ("FERRY_AGENT_TASK_SLOTS", "1"),
    ];
    let _agent = Agent::start(&cp, "fast", &settings).await;
    let job = plan_job(
        &client,
        pb::PlanMigrationRequest {
            dataset: "data".into(),
            destination_site: "slow".into(),
            bandwidth_limit_bytes_per_sec: 2 << 20,
            ..Default::default()
        },
    )
    .await;

    // Once one object is copied and verified, it changes at the source (same size, new
    // bytes), and a new object appears.
    let objects = wait_for_objects(&client, &job.id, TIMEOUT, |objects| {
        objects
            .iter()
            .any(|o| o.status == pb::ObjectStatus::Verified as i32)
    })
    .await;
    let copied = objects
        .iter()
        .find(|o| o.status == pb::ObjectStatus::Verified as i32)
        .unwrap()
        .key
        .clone();
    let rewritten: Vec<u8> = source[&copied].iter().map(|b| !b).collect();
    fs::write(source_dir.join(&copied), &rewritten).unwrap();
    fs::File::options()
        .write(true)
        .open(source_dir.join(&copied))
        .unwrap()
        .set_modified(std::time::SystemTime::now() + Duration::from_secs(3600))
        .unwrap();
    source.insert(copied.clone(), rewritten);
    source.insert("late.txt".into(), b"written during the copy".to_vec());
    fs::write(source_dir.join("late.txt"), b"written during the copy").unwrap();
    let before_end = client.get_job(&job.id).await.unwrap();
    assert!(
        !before_end.final_pass,
        "the change must land before the final pass: {before_end:#?}"
    );

    let done = wait_for_end(&client, &job.id, TIMEOUT).await;
    assert_eq!(done.state, pb::JobState::Completed as i32, "{done:#?}");
    assert!(done.final_pass, "{done:#?}");
    assert_eq!(done.source_changes, 1, "{done:#?}");
    assert_eq!(done.objects_total, 5, "{done:#?}");
    assert_eq!(
        read_tree(&dirs.path().join("slow/data")),
        source,
        "the new primary holds the source as it was at the switch"
    );
    assert_switched(&client, "data", "slow").await;
    let objects = client.list_job_objects(&job.id, None).await.unwrap();
    let changed: Vec<&str> = objects
        .iter()
        .filter(|o| o.source_changed)
        .map(|o| o.key.as_str())
        .collect();
    assert_eq!(changed, [copied.as_str()]);
    assert!(
        objects
            .iter()
            .all(|o| o.status == pb::ObjectStatus::Verified as i32),
        "{objects:#?}"
    );
}
