//! Sync jobs end to end between two file-system sites: the first run copies
//! everything, later runs copy only what changed, extras are kept or deleted within
//! the cap, and the replica's last sync and lag show in GetDataset. The destination is
//! read back with std::fs, never through Ferry.

use std::{fs, time::SystemTime};

use ferry_storage::fs_write;
use ferry_tests::{control_plane::Options, postgres::TestDatabase};

use super::*;

/// Modification time of every file below `root`, by key.
fn mtimes(root: &Path) -> BTreeMap<String, SystemTime> {
    read_tree(root)
        .into_keys()
        .map(|key| {
            let modified = fs::metadata(root.join(&key)).unwrap().modified().unwrap();
            (key, modified)
        })
        .collect()
}

async fn sync(
    client: &Client,
    deletion: pb::DeletionRule,
    max_delete: u64,
) -> Result<pb::Job, ferry_sdk::Error> {
    let answer = client
        .plan_sync(pb::PlanSyncRequest {
            dataset: "genome".into(),
            destination_site: "dr".into(),
            deletion: deletion.into(),
            max_delete,
            ..Default::default()
        })
        .await?;
    assert!(answer.created);
    let job = answer.job.unwrap();
    assert_eq!(job.kind, pb::JobKind::Sync as i32, "{job:#?}");
    Ok(wait_for_end(client, &job.id, TIMEOUT).await)
}

/// The keys of the job's objects in `status`.
async fn keys_in(client: &Client, job: &pb::Job, status: pb::ObjectStatus) -> Vec<String> {
    let mut keys: Vec<String> = client
        .list_job_objects(&job.id, Some(status))
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .collect();
    keys.sort();
    keys
}

fn figures(job: &pb::Job) -> (u64, u64, u64) {
    let sync = job.sync.unwrap_or_default();
    (
        sync.objects_unchanged,
        sync.extras_found,
        sync.extras_deleted,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_copies_only_what_changed_and_deletes_extras_within_the_cap() {
    syncs_in_turn(ControlPlane::start().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: set FERRY_TEST_DATABASE_URL"]
async fn a_sync_over_postgresql_keeps_its_manifest_the_same_way() {
    let db = TestDatabase::create();
    let cp = ControlPlane::start_with(Options {
        database_url: Some(db.url.clone()),
        ..Default::default()
    })
    .await;
    syncs_in_turn(cp).await;
}

/// Six runs in turn: the first copies everything, the second nothing; after changes
/// at both ends the third copies exactly what changed and keeps the extras, the fourth
/// is refused by the cap, and the fifth deletes them; the sixth repairs what was
/// changed at the destination behind Ferry's back.
async fn syncs_in_turn(cp: ControlPlane) {
    let client = cp.client().await;
    let dirs = tempfile::tempdir().unwrap();
    let source_dir = dirs.path().join("fast/projects/genome");
    let replica_dir = dirs.path().join("dr/projects/genome");
    let mut source = mixed(7, 256 << 10);
    write_tree(&source_dir, &source);
    fs_site(&client, "fast", &dirs.path().join("fast"), pb::Tier::Hot).await;
    fs_site(&client, "dr", &dirs.path().join("dr"), pb::Tier::Cold).await;
    dataset(&client, "genome", "fast", "projects/genome").await;
    let _agent = Agent::start(&cp, "fast", &[]).await;

    // The first run copies everything.
    let first = sync(&client, pb::DeletionRule::Keep, 0).await.unwrap();
    assert_eq!(first.state, pb::JobState::Completed as i32, "{first:#?}");
    assert_eq!(first.objects_done, source.len() as u64);
    assert_eq!(figures(&first), (0, 0, 0));
    assert_eq!(read_tree(&replica_dir), source);
    let details = client.get_dataset("genome").await.unwrap();
    let fast = client.get_site("fast").await.unwrap().id;
    let dr = client.get_site("dr").await.unwrap().id;
    assert_eq!(details.dataset.site, fast, "a sync switches nothing");
    let replica = details.replicas.iter().find(|r| r.site == dr).unwrap();
    assert_eq!(replica.role, pb::ReplicaRole::Secondary as i32);
    assert_eq!(replica.state, pb::ReplicaState::Ready as i32);
    let synced = replica.sync_time.expect("a sync time");
    assert!(synced.seconds >= first.create_time.unwrap().seconds);
    assert!(synced.seconds <= first.end_time.unwrap().seconds);
    assert!(replica.lag.is_some(), "{replica:#?}");
    let primary = details.replicas.iter().find(|r| r.site == fast).unwrap();
    assert_eq!(primary.sync_time, None, "the primary is not synced");

    // Nothing changed: nothing is copied, and no destination file is rewritten.
    let before = mtimes(&replica_dir);
    let second = sync(&client, pb::DeletionRule::Keep, 0).await.unwrap();
    assert_eq!(second.state, pb::JobState::Completed as i32, "{second:#?}");
    assert_eq!(figures(&second), (source.len() as u64, 0, 0));
    assert!(keys_in(&client, &second, pb::ObjectStatus::Verified)
        .await
        .is_empty());
    assert_eq!(mtimes(&replica_dir), before);

    // Two new, three changed (one at the same size), one deleted at the source, and
    // one stray file at the destination; the other files are left alone.
    let changed = ["a/b/c/deep.dat", "empty.bin", "reads/sample-03.fastq"];
    let same_size = source[changed[0]].iter().map(|b| b ^ 0xff).collect();
    let written = BTreeMap::from([
        ("new/one.txt".to_owned(), b"first new object".to_vec()),
        ("new/two.txt".to_owned(), b"second new object".to_vec()),
        (changed[0].to_owned(), same_size),
        (changed[1].to_owned(), b"no longer empty".to_vec()),
        (changed[2].to_owned(), b"shorter".to_vec()),
    ]);
    write_tree(&source_dir, &written);
    source.extend(written);
    let gone = "reads/sample-07.fastq";
    source.remove(gone);
    fs::remove_file(source_dir.join(gone)).unwrap();
    // The same-size rewrite must not hide behind a modification time in the same tick.
    let later = SystemTime::now() + Duration::from_secs(3600);
    fs::File::options()
        .write(true)
        .open(source_dir.join(changed[0]))
        .unwrap()
        .set_modified(later)
        .unwrap();
    fs::write(replica_dir.join("stray.txt"), b"only at the replica").unwrap();
    let before = mtimes(&replica_dir);
    // Temporary files of writes at the replica, never objects: one that no write has
    // touched for twice the hour after which it counts as stale (left by an agent
    // killed mid-write whose job never ran again) is removed by the next listing of
    // the replica; a recent one, which may be a write in progress, stays.
    let stale = fs_write::partial_path(&replica_dir.join("reads/sample-01.fastq"), "killed");
    let recent = fs_write::partial_path(&replica_dir.join("new.bin"), "running");
    fs::write(&stale, b"half a file").unwrap();
    fs::write(&recent, b"half a file").unwrap();
    fs::File::options()
        .write(true)
        .open(&stale)
        .unwrap()
        .set_modified(SystemTime::now() - fs_write::STALE_AFTER * 2)
        .unwrap();

    let third = sync(&client, pb::DeletionRule::Keep, 0).await.unwrap();
    assert_eq!(third.state, pb::JobState::Completed as i32, "{third:#?}");
    assert!(!stale.exists(), "the stale temporary file is removed");
    assert!(recent.exists(), "a recent temporary file is left alone");
    fs::remove_file(&recent).unwrap();
    // The files the run replaced were kept aside until its results were stored, then
    // removed: none stays.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !partials(&replica_dir).is_empty() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(partials(&replica_dir), Vec::<String>::new());
    let mut copied: Vec<String> = changed.iter().map(|k| (*k).to_owned()).collect();
    copied.extend(["new/one.txt".to_owned(), "new/two.txt".to_owned()]);
    copied.sort();
    assert_eq!(
        keys_in(&client, &third, pb::ObjectStatus::Verified).await,
        copied
    );
    let extras = vec![gone.to_owned(), "stray.txt".to_owned()];
    assert_eq!(
        keys_in(&client, &third, pb::ObjectStatus::Extra).await,
        extras
    );
    assert_eq!(figures(&third), (source.len() as u64 - 5, 2, 0));
    let mut expected = source.clone();
    expected.insert(gone.into(), read_tree(&replica_dir)[gone].clone());
    expected.insert("stray.txt".into(), b"only at the replica".to_vec());
    assert_eq!(read_tree(&replica_dir), expected, "extras are kept");
    let after = mtimes(&replica_dir);
    for (key, modified) in &before {
        if !copied.contains(key) {
            assert_eq!(after.get(key), Some(modified), "{key} was rewritten");
        }
    }

    // Deleting is refused whole beyond the cap.
    let capped = sync(&client, pb::DeletionRule::Delete, 1).await.unwrap();
    assert_eq!(capped.state, pb::JobState::Failed as i32, "{capped:#?}");
    assert!(
        capped.error.contains("max_delete (1)") && capped.error.contains("nothing was deleted"),
        "{}",
        capped.error
    );
    assert_eq!(figures(&capped), (source.len() as u64, 2, 0));
    assert_eq!(read_tree(&replica_dir), expected, "nothing was deleted");
    // A retry lists both ends again and counts what it finds once.
    client.retry_job(&capped.id).await.unwrap();
    let again = wait_for_end(&client, &capped.id, TIMEOUT).await;
    assert_eq!(again.state, pb::JobState::Failed as i32, "{again:#?}");
    assert_eq!(
        (again.attempt, figures(&again)),
        (2, (source.len() as u64, 2, 0))
    );
    assert_eq!(read_tree(&replica_dir), expected, "nothing was deleted");

    // Within the cap, the extras go and the replica is the source exactly.
    let pruned = sync(&client, pb::DeletionRule::Delete, 2).await.unwrap();
    assert_eq!(pruned.state, pb::JobState::Completed as i32, "{pruned:#?}");
    assert_eq!(figures(&pruned), (source.len() as u64, 2, 2));
    assert_eq!(
        keys_in(&client, &pruned, pb::ObjectStatus::Deleted).await,
        extras
    );
    assert_eq!(read_tree(&replica_dir), source);
    assert_eq!(
        read_tree(&source_dir),
        source,
        "the source is never written"
    );

    // The manifest is not trusted for the destination: a replica file deleted and
    // one truncated behind Ferry's back are copied again. One deleted at both sides
    // is neither copied nor an extra.
    let (lost, truncated, both) = ("new/one.txt", "a/b/c/deep.dat", "new/two.txt");
    fs::remove_file(replica_dir.join(lost)).unwrap();
    fs::write(replica_dir.join(truncated), b"cut").unwrap();
    fs::remove_file(replica_dir.join(both)).unwrap();
    fs::remove_file(source_dir.join(both)).unwrap();
    source.remove(both);
    let repaired = sync(&client, pb::DeletionRule::Delete, 2).await.unwrap();
    assert_eq!(
        repaired.state,
        pb::JobState::Completed as i32,
        "{repaired:#?}"
    );
    assert_eq!(
        keys_in(&client, &repaired, pb::ObjectStatus::Verified).await,
        vec![truncated.to_owned(), lost.to_owned()]
    );
    assert_eq!(figures(&repaired), (source.len() as u64 - 2, 0, 0));
    assert_eq!(repaired.objects_total, source.len() as u64);
    assert_eq!(read_tree(&replica_dir), source);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_that_cannot_be_planned_is_refused_naming_the_field() {
    let cp = ControlPlane::start().await;
    let client = cp.client().await;
    let dirs = tempfile::tempdir().unwrap();
    write_tree(
        &dirs.path().join("fast/projects/genome"),
        &BTreeMap::from([("a.txt".to_owned(), b"a".to_vec())]),
    );
    fs_site(&client, "fast", &dirs.path().join("fast"), pb::Tier::Hot).await;
    fs_site(&client, "dr", &dirs.path().join("dr"), pb::Tier::Cold).await;
    dataset(&client, "genome", "fast", "projects/genome").await;

    let refused = |request: pb::PlanSyncRequest| {
        let client = &client;
        async move {
            let e = client.plan_sync(request).await.unwrap_err();
            let status = e.status().cloned().unwrap();
            assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
            status.message().to_owned()
        }
    };
    let onto_itself = refused(pb::PlanSyncRequest {
        dataset: "genome".into(),
        destination_site: "fast".into(),
        destination_path: "projects/genome/mirror".into(),
        ..Default::default()
    })
    .await;
    assert!(onto_itself.contains("destination_path"), "{onto_itself}");
    let cap_without_deletion = refused(pb::PlanSyncRequest {
        dataset: "genome".into(),
        destination_site: "dr".into(),
        max_delete: 3,
        ..Default::default()
    })
    .await;
    assert!(
        cap_without_deletion.contains("max_delete"),
        "{cap_without_deletion}"
    );
    assert!(client
        .list_jobs(&Default::default())
        .await
        .unwrap()
        .is_empty());
}

/// The hidden temporary files of writes to a file system below `dir`, at any depth.
fn partials(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        match entry.file_type() {
            Ok(t) if t.is_dir() => found.extend(partials(&entry.path())),
            _ if fs_write::is_partial(&name) => found.push(name),
            _ => {}
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_file_being_replaced_stays_whole_even_when_the_agent_dies() {
    const SIZE: usize = 24 << 20;
    let cp = ControlPlane::start().await;
    let client = cp.client().await;
    let dirs = tempfile::tempdir().unwrap();
    let source_dir = dirs.path().join("fast/projects/genome");
    let replica_dir = dirs.path().join("dr/projects/genome");
    let old = ferry_tests::dataset::bytes(1, SIZE);
    let new = ferry_tests::dataset::bytes(2, SIZE);
    write_tree(
        &source_dir,
        &BTreeMap::from([("big.bin".to_owned(), old.clone())]),
    );
    fs_site(&client, "fast", &dirs.path().join("fast"), pb::Tier::Hot).await;
    fs_site(&client, "dr", &dirs.path().join("dr"), pb::Tier::Cold).await;
    dataset(&client, "genome", "fast", "projects/genome").await;
    let mut agent = Agent::start(&cp, "fast", &[]).await;
    let first = sync(&client, pb::DeletionRule::Keep, 0).await.unwrap();
    assert_eq!(first.state, pb::JobState::Completed as i32, "{first:#?}");
    assert_eq!(fs::read(replica_dir.join("big.bin")).unwrap(), old);

    // The source changes; the sync that replaces the replica's copy runs at 8 MB/s, so
    // for about three seconds, while a reader reads the replica's file over and over.
    fs::write(source_dir.join("big.bin"), &new).unwrap();
    let reading = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let reader = {
        let (reading, path) = (reading.clone(), replica_dir.join("big.bin"));
        let (old, new) = (old.clone(), new.clone());
        std::thread::spawn(move || {
            let mut reads = 0;
            while reading.load(std::sync::atomic::Ordering::Relaxed) {
                let read = fs::read(&path).unwrap();
                assert!(
                    read == old || read == new,
                    "a reader found {} bytes that are neither version",
                    read.len()
                );
                reads += 1;
                std::thread::sleep(Duration::from_millis(5));
            }
            reads
        })
    };
    let job = client
        .plan_sync(pb::PlanSyncRequest {
            dataset: "genome".into(),
            destination_site: "dr".into(),
            bandwidth_limit_bytes_per_sec: 8_000_000,
            ..Default::default()
        })
        .await
        .unwrap()
        .job
        .unwrap();

    // Killed mid-copy, the agent leaves its temporary file and the old copy whole.
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    while partials(&replica_dir).is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "no copy began");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    agent.kill();
    assert_eq!(fs::read(replica_dir.join("big.bin")).unwrap(), old);
    assert_eq!(partials(&replica_dir).len(), 1, "the killed write's file");

    // The next attempt writes over that file and renames it into place.
    agent.restart().await;
    let done = wait_for_end(&client, &job.id, TIMEOUT).await;
    reading.store(false, std::sync::atomic::Ordering::Relaxed);
    let reads = reader.join().expect("every read found one version whole");
    assert_eq!(done.state, pb::JobState::Completed as i32, "{done:#?}");
    assert_eq!(fs::read(replica_dir.join("big.bin")).unwrap(), new);
    assert_eq!(partials(&replica_dir), Vec::<String>::new());
    assert_eq!(figures(&done), (0, 0, 0), "{done:#?}");
    assert!(reads > 10, "the replica was read {reads} times");
}
