//! A migration whose source changes while it copies: the final pass before the switch
//! copies what changed and deletes the copies of what was deleted, so the new primary
//! holds the source as it is at the switch, and reports the objects that changed. The
//! destination is read back with std::fs.

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
    // The destination holds a file of its own already: the migration did not write it,
    // so it never deletes it.
    let own: BTreeMap<String, Vec<u8>> =
        [("own.txt".to_string(), b"the destination's own".to_vec())].into();
    write_tree(&dirs.path().join("slow/data"), &own);
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

    // Once two objects are copied and verified, one changes at the source (same size,
    // new bytes), the other is deleted there, and a new object appears.
    let objects = wait_for_objects(&client, &job.id, TIMEOUT, |objects| {
        objects
            .iter()
            .filter(|o| o.status == pb::ObjectStatus::Verified as i32)
            .count()
            >= 2
    })
    .await;
    let mut verified = objects
        .iter()
        .filter(|o| o.status == pb::ObjectStatus::Verified as i32)
        .map(|o| o.key.clone());
    let (copied, deleted) = (verified.next().unwrap(), verified.next().unwrap());
    fs::remove_file(source_dir.join(&deleted)).unwrap();
    source.remove(&deleted);
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
    assert_eq!(done.source_changes, 2, "{done:#?}");
    assert_eq!(done.objects_total, 4, "{done:#?}");
    let mut expected = source.clone();
    expected.extend(own);
    assert_eq!(
        read_tree(&dirs.path().join("slow/data")),
        expected,
        "the new primary holds the source as it was at the switch, and its own file"
    );
    assert_switched(&client, "data", "slow").await;
    let objects = client.list_job_objects(&job.id, None).await.unwrap();
    let mut changed: Vec<&str> = objects
        .iter()
        .filter(|o| o.source_changed)
        .map(|o| o.key.as_str())
        .collect();
    changed.sort();
    let mut expected_changed = [copied.as_str(), deleted.as_str()];
    expected_changed.sort();
    assert_eq!(changed, expected_changed);
    for o in &objects {
        let status = if o.key == deleted {
            pb::ObjectStatus::Deleted
        } else {
            pb::ObjectStatus::Verified
        };
        assert_eq!(o.status, status as i32, "{o:#?}");
    }
    assert!(!objects.iter().any(|o| o.key == "own.txt"), "{objects:#?}");
}
