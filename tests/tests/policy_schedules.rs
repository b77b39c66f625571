//! A policy's automatic migrations on a cron, end to end, on an in-process control
//! plane whose clock the test moves (its own nats-server and SQLite) and a real agent:
//! migrations start only at the times the cron names in its time zone, each due time
//! starts at most the policy's cap, a due time while a migration it started is
//! unfinished is skipped, times missed while nothing checked make one run, and the
//! migrations list as the policy's history. The archive is read back with std::fs.

#![allow(clippy::unwrap_used)]

use std::{collections::BTreeMap, time::Duration};

use chrono::{DateTime, TimeZone, Utc};
use ferry_proto::{time::from_timestamp, v1 as pb};
use ferry_sdk::{Client, JobFilter};
use ferry_tests::{
    dataset::{bytes, file_sites, read_tree, wait_for_end, write_tree},
    embedded::EmbeddedControlPlane,
};

const TIMEOUT: Duration = Duration::from_secs(60);
const DATASETS: [&str; 2] = ["logs-a", "logs-b"];

fn utc(d: u32, h: u32, m: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, d, h, m, 0).unwrap()
}

fn team_ops() -> std::collections::HashMap<String, String> {
    [("team".to_string(), "ops".to_string())]
        .into_iter()
        .collect()
}

/// A policy over `team=ops` placing cold data on `archive`, migrating on its own.
fn ops_policy(cron: &str, time_zone: &str) -> pb::Policy {
    pb::Policy {
        name: "ops-nightly".into(),
        selector: team_ops(),
        placements: vec![pb::TierPlacement {
            tier: pb::Tier::Cold.into(),
            site: "archive".into(),
        }],
        auto_migrate: true,
        cron: cron.into(),
        time_zone: time_zone.into(),
        ..Default::default()
    }
}

/// Sites `fast` and `archive` below `root`, and the `team=ops` datasets on `fast`,
/// never read (so cold), each holding the returned files.
async fn cold_datasets_on_fast(
    client: &Client,
    root: &std::path::Path,
) -> BTreeMap<String, Vec<u8>> {
    file_sites(
        client,
        root,
        &[("fast", pb::Tier::Hot), ("archive", pb::Tier::Cold)],
    )
    .await;
    let files: BTreeMap<String, Vec<u8>> = (0..4u64)
        .map(|i| (format!("day/{i}.log"), bytes(70 + i, 3000 + i as usize)))
        .collect();
    for name in DATASETS {
        write_tree(&root.join("fast").join(name), &files);
        client
            .create_dataset(pb::Dataset {
                name: name.into(),
                site: "fast".into(),
                path: name.into(),
                labels: team_ops(),
                ..Default::default()
            })
            .await
            .unwrap();
    }
    files
}

async fn policy(client: &Client) -> pb::Policy {
    client.get_policy("ops-nightly").await.unwrap()
}

async fn history(client: &Client) -> Vec<pb::Job> {
    client
        .list_jobs(&JobFilter {
            policy: Some("ops-nightly".into()),
            ..Default::default()
        })
        .await
        .unwrap()
}

/// The policy's history once it holds `n` migrations: a run is counted as it begins,
/// and plans its migrations just after.
async fn history_of(client: &Client, n: usize) -> Vec<pb::Job> {
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        let jobs = history(client).await;
        if jobs.len() >= n {
            assert_eq!(jobs.len(), n, "{jobs:#?}");
            return jobs;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{n} migrations never started: {jobs:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits (the autopilot checks every second) until `check` holds for the policy.
async fn until(client: &Client, what: &str, check: impl Fn(&pb::Policy) -> bool) {
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        let p = policy(client).await;
        if check(&p) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} never happened: {p:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn next_run(p: &pb::Policy) -> DateTime<Utc> {
    from_timestamp(p.next_run_time.as_ref().unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_migrates_at_its_cron_times_one_run_at_a_time() {
    let cp = EmbeddedControlPlane::start(utc(5, 10, 2)).await;
    let client = cp.client().await;
    let dirs = tempfile::tempdir().unwrap();
    let files = cold_datasets_on_fast(&client, dirs.path()).await;

    // 03:00 in Paris, every day: 02:00 UTC in December.
    let created = client
        .create_policy(ops_policy("0 3 * * *", "Europe/Paris"))
        .await
        .unwrap();
    assert_eq!(next_run(&created), utc(6, 2, 0));
    assert_eq!((created.runs, created.skipped_runs), (0, 0));
    // Both datasets are cold and belong on the archive, but nothing is due yet.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(history(&client).await.is_empty());
    assert!(client
        .list_jobs(&JobFilter::default())
        .await
        .unwrap()
        .is_empty());

    // At its time, one migration (the cap of one), tagged with the policy; with no
    // agent yet it stays queued.
    cp.clock().set(utc(6, 2, 0));
    until(&client, "the first run", |p| p.runs == 1).await;
    let first = history_of(&client, 1).await;
    assert_eq!(first[0].policy, created.id);
    assert_eq!(first[0].kind, pb::JobKind::Migration as i32);
    assert_eq!(first[0].state, pb::JobState::Queued as i32);
    assert_eq!(next_run(&policy(&client).await), utc(7, 2, 0));

    // The next due time finds that migration unfinished: skipped, nothing started.
    cp.clock().set(utc(7, 2, 1));
    until(&client, "a skipped time", |p| p.skipped_runs == 1).await;
    assert_eq!(history(&client).await.len(), 1);
    assert_eq!(next_run(&policy(&client).await), utc(8, 2, 0));

    // An agent runs it: the dataset is on the archive, byte for byte.
    let _agent = cp.agent("fast").await;
    let done = wait_for_end(&client, &first[0].id, TIMEOUT).await;
    assert_eq!(done.state, pb::JobState::Completed as i32, "{done:#?}");
    let moved = client.get_dataset(&first[0].dataset).await.unwrap().dataset;
    assert_eq!(
        read_tree(&dirs.path().join("archive").join(&moved.name)),
        files
    );

    // Three due times pass unchecked (the control plane was down): one run, which
    // moves the other dataset.
    cp.clock().set(utc(10, 9, 0));
    until(&client, "the coalesced run", |p| p.runs == 2).await;
    let p = policy(&client).await;
    assert_eq!((p.runs, p.skipped_runs), (2, 1), "{p:#?}");
    assert_eq!(next_run(&p), utc(11, 2, 0));
    assert_eq!(p.last_error, "");
    let runs = history_of(&client, 2).await;
    assert_ne!(runs[0].dataset, runs[1].dataset);
    let second = wait_for_end(&client, &runs[0].id, TIMEOUT).await;
    assert_eq!(second.state, pb::JobState::Completed as i32, "{second:#?}");
    for name in DATASETS {
        assert_eq!(read_tree(&dirs.path().join("archive").join(name)), files);
    }
    // Nothing else was planned: the policy's history is every job.
    assert_eq!(
        client.list_jobs(&JobFilter::default()).await.unwrap().len(),
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_cron_that_cannot_be_read_is_refused_naming_the_field() {
    let cp = EmbeddedControlPlane::start(utc(5, 10, 2)).await;
    let client = cp.client().await;
    let dirs = tempfile::tempdir().unwrap();
    cold_datasets_on_fast(&client, dirs.path()).await;
    let windowed = pb::Policy {
        schedule_window: Some(pb::ScheduleWindow {
            start: "22:00".into(),
            end: "06:00".into(),
        }),
        ..ops_policy("0 3 * * *", "")
    };
    for (policy, field, says) in [
        (
            ops_policy("0 3 * *", ""),
            "policy.cron",
            "expected five fields",
        ),
        (
            ops_policy("0 3 * * *", "Mars/Olympus"),
            "policy.time_zone",
            "unknown time zone",
        ),
        (
            ops_policy("", "Europe/Paris"),
            "policy.time_zone",
            "set policy.cron too",
        ),
        (windowed, "policy.cron", "not both"),
    ] {
        let e = client.create_policy(policy).await.unwrap_err();
        let status = e.status().cloned().unwrap();
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
        assert!(
            status.message().starts_with(field) && status.message().contains(says),
            "{field}: {status:?}"
        );
    }
    // An unknown policy in a job listing is the caller's mistake, not an empty list.
    let e = client
        .list_jobs(&JobFilter {
            policy: Some("nope".into()),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");

    // Without auto-migrate, a cron is kept but has no due time.
    let manual = client
        .create_policy(pb::Policy {
            auto_migrate: false,
            ..ops_policy("0 3 * * *", "UTC")
        })
        .await
        .unwrap();
    assert_eq!(
        (manual.cron.as_str(), manual.time_zone.as_str()),
        ("0 3 * * *", "UTC")
    );
    assert_eq!(manual.next_run_time, None);
}
