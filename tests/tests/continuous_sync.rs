//! Continuous syncs end to end, on a control plane (its own nats-server and SQLite)
//! and a real agent watching a real directory through inotify: the first
//! run lists everything, then files written, rewritten, deleted and a directory moved
//! in reach the replica within seconds through runs of those keys alone, and a full
//! run afterwards finds the replica's manifest in step; files the sync's filter leaves
//! out start no run. The replica is read back with std::fs.

#![allow(clippy::unwrap_used)]

use std::{
    collections::{BTreeMap, BTreeSet},
    path::Path,
    time::Duration,
};

use ferry_proto::v1 as pb;
use ferry_sdk::{Client, JobFilter};
use ferry_tests::{
    control_plane::Options,
    dataset::{bytes, genome_on_fast_and_dr, read_tree, wait_for_end, write_tree},
    postgres::TestDatabase,
    Agent, ControlPlane,
};

const TIMEOUT: Duration = Duration::from_secs(60);
/// How long a change may take to reach the replica: the watcher's settling second,
/// the control plane's one-second check, and the run.
const WITHIN: Duration = Duration::from_secs(20);

fn live_schedule(dataset: &str) -> pb::SyncSchedule {
    pb::SyncSchedule {
        name: "genome-live".into(),
        // Once a year: every run in this test comes from the watcher.
        cron: "0 3 1 1 *".into(),
        continuous: true,
        sync: Some(pb::PlanSyncRequest {
            dataset: dataset.into(),
            destination_site: "dr".into(),
            deletion: pb::DeletionRule::Delete.into(),
            max_delete: 10,
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The schedule's runs, oldest first.
async fn runs(client: &Client) -> Vec<pb::Job> {
    let mut runs = client
        .list_jobs(&JobFilter {
            schedule: Some("genome-live".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    runs.sort_by_key(|j| j.create_time.map(|t| (t.seconds, t.nanos)));
    runs
}

/// Waits until the replica holds `expected` and no run is unfinished; returns how
/// long that took.
async fn until_in_step(
    client: &Client,
    replica: &Path,
    expected: &BTreeMap<String, Vec<u8>>,
) -> Duration {
    let start = tokio::time::Instant::now();
    loop {
        let same = read_tree(replica) == *expected;
        if same {
            let runs = runs(client).await;
            if let Some(last) = runs.last() {
                let ended = wait_for_end(client, &last.id, TIMEOUT).await;
                assert_eq!(ended.state, pb::JobState::Completed as i32, "{ended:#?}");
            }
            return start.elapsed();
        }
        assert!(
            start.elapsed() < WITHIN,
            "the replica is not in step after {WITHIN:?}: {:?} vs {:?}; runs {:#?}",
            read_tree(replica).keys().collect::<Vec<_>>(),
            expected.keys().collect::<Vec<_>>(),
            runs(client).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Keys of the jobs' objects in `status`.
async fn keys_in(client: &Client, jobs: &[pb::Job], status: pb::ObjectStatus) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    for job in jobs {
        for o in client
            .list_job_objects(&job.id, Some(status))
            .await
            .unwrap()
        {
            keys.insert(o.key);
        }
    }
    keys
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_changed_while_a_continuous_sync_runs_reach_the_replica_within_seconds() {
    changes_reach_the_replica(ControlPlane::start().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: set FERRY_TEST_DATABASE_URL"]
async fn a_continuous_sync_over_postgresql_merges_its_manifest_the_same_way() {
    let db = TestDatabase::create();
    let cp = ControlPlane::start_with(Options {
        database_url: Some(db.url.clone()),
        ..Default::default()
    })
    .await;
    changes_reach_the_replica(cp).await;
}

/// The first run lists everything; later changes travel as runs of their keys; a full
/// run then finds the merged manifest in step.
async fn changes_reach_the_replica(cp: ControlPlane) {
    let client = cp.client().await;
    let dirs = tempfile::tempdir().unwrap();
    let source_dir = dirs.path().join("fast/genome");
    let replica_dir = dirs.path().join("dr/genome");
    let mut source: BTreeMap<String, Vec<u8>> = (0..6u64)
        .map(|i| (format!("day/{i}.dat"), bytes(70 + i, 3000 + i as usize)))
        .collect();
    write_tree(&source_dir, &source);
    genome_on_fast_and_dr(&client, dirs.path()).await;
    let created = client
        .create_sync_schedule(live_schedule("genome"))
        .await
        .unwrap();
    assert!(created.continuous, "{created:#?}");
    let _agent = Agent::start(&cp, "fast", &[]).await;

    // The watcher starts with a rescan: the first run lists everything.
    until_in_step(&client, &replica_dir, &source).await;
    let first = runs(&client).await;
    assert_eq!(first.len(), 1, "{first:#?}");
    let sync = first[0].sync.unwrap();
    assert_eq!(sync.changed_keys, 0, "a full run: {:#?}", first[0]);
    assert_eq!(first[0].objects_done, source.len() as u64);

    // Changes while it watches: a file written, one rewritten, one deleted, and a
    // directory of two files moved in from outside the tree.
    let added = bytes(90, 4000);
    std::fs::write(source_dir.join("day/new.dat"), &added).unwrap();
    source.insert("day/new.dat".into(), added);
    let rewritten = bytes(91, 3000);
    std::fs::write(source_dir.join("day/0.dat"), &rewritten).unwrap();
    source.insert("day/0.dat".into(), rewritten);
    std::fs::remove_file(source_dir.join("day/1.dat")).unwrap();
    source.remove("day/1.dat");
    let outside = dirs.path().join("staging");
    let moved: BTreeMap<String, Vec<u8>> = [("a.dat", 92), ("b.dat", 93)]
        .into_iter()
        .map(|(k, seed)| (k.to_owned(), bytes(seed, 2500)))
        .collect();
    write_tree(&outside, &moved);
    std::fs::rename(&outside, source_dir.join("moved")).unwrap();
    source.extend(moved.into_iter().map(|(k, v)| (format!("moved/{k}"), v)));

    let took = until_in_step(&client, &replica_dir, &source).await;
    eprintln!("changes reached the replica in {took:?}");
    let all = runs(&client).await;
    let later = &all[1..];
    assert!(!later.is_empty(), "{all:#?}");
    for run in later {
        assert_eq!(run.state, pb::JobState::Completed as i32, "{run:#?}");
        assert!(
            run.sync.unwrap().changed_keys > 0,
            "a run of changed keys, not a listing: {run:#?}"
        );
    }
    // Exactly what changed was copied or deleted; the untouched files were not looked at.
    assert_eq!(
        keys_in(&client, later, pb::ObjectStatus::Verified).await,
        ["day/0.dat", "day/new.dat", "moved/a.dat", "moved/b.dat"]
            .map(String::from)
            .into(),
    );
    assert_eq!(
        keys_in(&client, later, pb::ObjectStatus::Deleted).await,
        BTreeSet::from(["day/1.dat".to_owned()])
    );
    assert!(keys_in(&client, later, pb::ObjectStatus::Unchanged)
        .await
        .is_empty());

    // A full run now finds every object as the merged manifest recorded it.
    let full = client
        .plan_sync(pb::PlanSyncRequest {
            dataset: "genome".into(),
            destination_site: "dr".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .job
        .unwrap();
    let full = wait_for_end(&client, &full.id, TIMEOUT).await;
    assert_eq!(full.state, pb::JobState::Completed as i32, "{full:#?}");
    assert_eq!(
        full.sync.unwrap().objects_unchanged,
        source.len() as u64,
        "{full:#?}"
    );
    assert_eq!(read_tree(&replica_dir), source);
    let listed = client.list_sync_schedules(Some("genome")).await.unwrap();
    assert_eq!(listed[0].pending_changes, 0, "{listed:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_the_syncs_filter_leaves_out_start_no_run() {
    let cp = ControlPlane::start().await;
    let client = cp.client().await;
    let dirs = tempfile::tempdir().unwrap();
    let source_dir = dirs.path().join("fast/genome");
    let replica_dir = dirs.path().join("dr/genome");
    let mut source = BTreeMap::from([("day/0.dat".to_owned(), bytes(70, 3000))]);
    write_tree(&source_dir, &source);
    genome_on_fast_and_dr(&client, dirs.path()).await;
    let mut schedule = live_schedule("genome");
    if let Some(sync) = schedule.sync.as_mut() {
        sync.filter = Some(pb::ObjectFilter {
            exclude: vec!["**/*.swp".into()],
            ..Default::default()
        });
    }
    client.create_sync_schedule(schedule).await.unwrap();
    let _agent = Agent::start(&cp, "fast", &[]).await;
    until_in_step(&client, &replica_dir, &source).await;
    assert_eq!(runs(&client).await.len(), 1);

    // An editor's swap file, written and left for longer than a change takes to settle
    // and be planned: the watcher leaves it out, so it starts no run.
    let swap = source_dir.join("day/.0.dat.swp");
    std::fs::write(&swap, b"draft").unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(runs(&client).await.len(), 1, "{:#?}", runs(&client).await);
    // Then a file the sync takes is written and the swap file removed together.
    let added = bytes(90, 4000);
    std::fs::write(source_dir.join("day/new.dat"), &added).unwrap();
    std::fs::remove_file(&swap).unwrap();
    source.insert("day/new.dat".into(), added);
    until_in_step(&client, &replica_dir, &source).await;

    let all = runs(&client).await;
    assert_eq!(all.len(), 2, "one run, of the new file alone: {all:#?}");
    assert_eq!(all[1].sync.unwrap().changed_keys, 1, "{:#?}", all[1]);
    assert_eq!(
        keys_in(&client, &all[1..], pb::ObjectStatus::Verified).await,
        BTreeSet::from(["day/new.dat".to_owned()])
    );
    let listed = client.list_sync_schedules(Some("genome")).await.unwrap();
    assert_eq!(listed[0].pending_changes, 0, "{listed:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_are_taken_only_from_an_agent_of_the_datasets_site() {
    let cp = ControlPlane::start().await;
    let admin = cp.client().await;
    let dirs = tempfile::tempdir().unwrap();
    genome_on_fast_and_dr(&admin, dirs.path()).await;
    let schedule = admin
        .create_sync_schedule(live_schedule("genome"))
        .await
        .unwrap();
    let nightly = admin
        .create_sync_schedule(pb::SyncSchedule {
            name: "genome-nightly".into(),
            continuous: false,
            ..live_schedule("genome")
        })
        .await
        .unwrap();
    // A sync of the dataset's `reads/` only.
    let mut reads_only = pb::SyncSchedule {
        name: "genome-reads".into(),
        ..live_schedule("genome")
    };
    if let Some(sync) = reads_only.sync.as_mut() {
        sync.filter = Some(pb::ObjectFilter {
            prefix: "reads/".into(),
            ..Default::default()
        });
    }
    let reads_only = admin.create_sync_schedule(reads_only).await.unwrap();

    // An agent of each site, registered with a token bound to it.
    let agent_of = |site: &'static str| {
        let cp = &cp;
        async move {
            let client = cp.client_with(&cp.agent_token(site).await).await;
            let agent = client
                .agents()
                .register_agent(pb::RegisterAgentRequest {
                    site: site.into(),
                    version: "test".into(),
                    hostname: "test".into(),
                    concurrency: 1,
                    agent_id: String::new(),
                })
                .await
                .unwrap()
                .into_inner()
                .agent
                .unwrap();
            (client, agent.id)
        }
    };
    let (fast, fast_id) = agent_of("fast").await;
    let (dr, dr_id) = agent_of("dr").await;
    let report = |agent: &str, schedule: &str, keys: &[&str]| pb::ReportChangesRequest {
        agent_id: agent.into(),
        schedule: schedule.into(),
        keys: keys.iter().map(|k| (*k).to_owned()).collect(),
        rescan: false,
    };

    // The heartbeat names the watch to the dataset's site only.
    let heartbeat = |agent_id: &str| pb::HeartbeatRequest {
        agent_id: agent_id.into(),
        ..Default::default()
    };
    let mut watches = fast
        .agents()
        .heartbeat(heartbeat(&fast_id))
        .await
        .unwrap()
        .into_inner()
        .watches;
    watches.sort_by(|a, b| a.schedule.cmp(&b.schedule));
    // With each sync's filter, whose prefix and globs the watcher applies to files.
    let mut expected = [&schedule, &reads_only].map(|s| pb::Watch {
        schedule: s.id.clone(),
        path: "genome".into(),
        filter: s.sync.as_ref().and_then(|sync| sync.filter.clone()),
    });
    expected.sort_by(|a, b| a.schedule.cmp(&b.schedule));
    assert_eq!(watches, expected);
    let none = dr.agents().heartbeat(heartbeat(&dr_id)).await.unwrap();
    assert!(none.into_inner().watches.is_empty());

    let refused = dr
        .agents()
        .report_changes(report(&dr_id, &schedule.id, &["a"]))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused:?}");
    for (keys, field) in [
        (&["ok", "../etc/passwd"][..], "keys[1]"),
        (&["/abs"][..], "keys[0]"),
        (&["a//b"][..], "keys[0]"),
        (&[""][..], "keys[0]"),
    ] {
        let bad = fast
            .agents()
            .report_changes(report(&fast_id, &schedule.id, keys))
            .await
            .unwrap_err();
        assert_eq!(
            bad.code(),
            tonic::Code::InvalidArgument,
            "{keys:?}: {bad:?}"
        );
        assert!(bad.message().starts_with(field), "{keys:?}: {bad:?}");
    }
    let not_continuous = fast
        .agents()
        .report_changes(report(&fast_id, &nightly.id, &["a"]))
        .await
        .unwrap_err();
    assert_eq!(
        not_continuous.code(),
        tonic::Code::FailedPrecondition,
        "{not_continuous:?}"
    );

    // Changes reported before the replica's first full sync make a run that lists
    // everything: a run of keys alone builds on a manifest.
    fast.agents()
        .report_changes(report(&fast_id, &schedule.id, &["x/1", "x/2"]))
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    let planned = loop {
        if let Some(run) = runs(&admin).await.into_iter().next() {
            break run;
        }
        assert!(tokio::time::Instant::now() < deadline, "no run planned");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(planned.sync.unwrap().changed_keys, 0, "{planned:#?}");
    let listed = admin.list_sync_schedules(Some("genome")).await.unwrap();
    let live = listed.iter().find(|s| s.name == "genome-live").unwrap();
    assert_eq!(live.pending_changes, 0, "taken by the run: {live:#?}");
    assert_eq!(live.last_job, planned.id);

    // Churn outside `reads/` is dropped without a run. (A run could not be planned
    // anyway while the one above is unfinished: the changes would wait, with the
    // reason as the schedule's last error.)
    fast.agents()
        .report_changes(report(&fast_id, &reads_only.id, &["tmp/1", "re", "readsX"]))
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        let listed = admin.list_sync_schedules(Some("genome")).await.unwrap();
        let reads = listed.iter().find(|s| s.name == "genome-reads").unwrap();
        if reads.pending_changes == 0 {
            assert_eq!(
                (reads.runs, reads.last_error.as_str()),
                (0, ""),
                "{reads:#?}"
            );
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never dropped: {reads:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let reads_runs = admin
        .list_jobs(&ferry_sdk::JobFilter {
            schedule: Some("genome-reads".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(reads_runs.is_empty(), "{reads_runs:#?}");

    // A continuous sync needs a file system to watch.
    admin
        .create_site(
            pb::Site {
                name: "bucket".into(),
                uri: "memory:///bucket".into(),
                tier: pb::Tier::Warm.into(),
                ..Default::default()
            },
            Default::default(),
        )
        .await
        .unwrap();
    admin
        .create_dataset(pb::Dataset {
            name: "logs".into(),
            site: "bucket".into(),
            path: "logs".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let refused = admin
        .create_sync_schedule(pb::SyncSchedule {
            name: "logs-live".into(),
            ..live_schedule("logs")
        })
        .await
        .unwrap_err();
    let status = refused.status().cloned().unwrap();
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert!(
        status
            .message()
            .starts_with("schedule.continuous: dataset logs is on site bucket"),
        "{status:?}"
    );
}
