//! Sync schedules end to end, on an in-process control plane whose clock the test
//! moves (its own nats-server and SQLite) and a real agent: a run is planned at the
//! time the cron expression names in its time zone, a due time while the previous run
//! is unfinished is skipped, times missed while nothing checked make one run, and the
//! runs list as the schedule's history. The replica is read back with std::fs.

#![allow(clippy::unwrap_used)]

use std::{collections::BTreeMap, time::Duration};

use chrono::{DateTime, TimeZone, Utc};
use ferry_proto::{time::from_timestamp, v1 as pb};
use ferry_sdk::{Client, JobFilter};
use ferry_tests::{
    dataset::{genome_on_fast_and_dr, read_tree, wait_for_end, write_tree},
    embedded::EmbeddedControlPlane,
};

const TIMEOUT: Duration = Duration::from_secs(60);

fn utc(d: u32, h: u32, m: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, d, h, m, 0).unwrap()
}

async fn schedule(client: &Client) -> pb::SyncSchedule {
    let all = client.list_sync_schedules(Some("genome")).await.unwrap();
    assert_eq!(all.len(), 1, "{all:#?}");
    all.into_iter().next().unwrap()
}

async fn runs(client: &Client) -> Vec<pb::Job> {
    client
        .list_jobs(&JobFilter {
            schedule: Some("genome-nightly".into()),
            ..Default::default()
        })
        .await
        .unwrap()
}

/// Waits (the scheduler checks every second) until `check` holds for the schedule.
async fn until(client: &Client, what: &str, check: impl Fn(&pb::SyncSchedule) -> bool) {
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        let s = schedule(client).await;
        if check(&s) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} never happened: {s:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn next_run(s: &pb::SyncSchedule) -> DateTime<Utc> {
    from_timestamp(s.next_run_time.as_ref().unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_sync_runs_at_its_time_never_overlaps_and_coalesces_missed_times() {
    let cp = EmbeddedControlPlane::start(utc(5, 10, 2)).await;
    let client = cp.client().await;
    let dirs = tempfile::tempdir().unwrap();
    let source: BTreeMap<String, Vec<u8>> = (0..6u64)
        .map(|i| {
            let bytes = ferry_tests::dataset::bytes(40 + i, 5000 + i as usize);
            (format!("day/{i}.dat"), bytes)
        })
        .collect();
    write_tree(&dirs.path().join("fast/genome"), &source);
    genome_on_fast_and_dr(&client, dirs.path()).await;

    // 02:30 in Paris, every day: 01:30 UTC in December.
    let created = client
        .create_sync_schedule(pb::SyncSchedule {
            name: "genome-nightly".into(),
            cron: "30 2 * * *".into(),
            time_zone: "Europe/Paris".into(),
            sync: Some(pb::PlanSyncRequest {
                dataset: "genome".into(),
                destination_site: "dr".into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(next_run(&created), utc(6, 1, 30));
    assert_eq!(created.time_zone, "Europe/Paris");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(runs(&client).await.is_empty(), "nothing is due yet");

    // At its time, a run is planned; with no agent yet it stays queued.
    cp.clock().set(utc(6, 1, 30));
    until(&client, "the first run", |s| s.runs == 1).await;
    let first = runs(&client).await;
    assert_eq!(first.len(), 1, "{first:#?}");
    assert_eq!(first[0].kind, pb::JobKind::Sync as i32);
    assert_eq!(first[0].schedule, created.id);
    assert_eq!(first[0].state, pb::JobState::Queued as i32);
    assert_eq!(next_run(&schedule(&client).await), utc(7, 1, 30));

    // The next due time finds it unfinished: skipped, no second run.
    cp.clock().set(utc(7, 1, 31));
    until(&client, "a skipped time", |s| s.skipped == 1).await;
    assert_eq!(runs(&client).await.len(), 1);
    assert_eq!(next_run(&schedule(&client).await), utc(8, 1, 30));

    // An agent runs it: the replica holds the source.
    let _agent = cp.agent("fast").await;
    let done = wait_for_end(&client, &first[0].id, TIMEOUT).await;
    assert_eq!(done.state, pb::JobState::Completed as i32, "{done:#?}");
    assert_eq!(read_tree(&dirs.path().join("dr/genome")), source);

    // Three due times pass unchecked (the control plane was down): one run.
    cp.clock().set(utc(10, 9, 0));
    until(&client, "the coalesced run", |s| s.runs == 2).await;
    let s = schedule(&client).await;
    assert_eq!((s.runs, s.skipped), (2, 1), "{s:#?}");
    assert_eq!(next_run(&s), utc(11, 1, 30));
    let history = runs(&client).await;
    assert_eq!(history.len(), 2, "{history:#?}");
    let second = wait_for_end(&client, &history[0].id, TIMEOUT).await;
    assert_eq!(second.state, pb::JobState::Completed as i32, "{second:#?}");
    let figures = second.sync.unwrap();
    assert_eq!(
        figures.objects_unchanged,
        source.len() as u64,
        "nothing changed: nothing copied"
    );

    // Deleting the schedule keeps its runs.
    client.delete_sync_schedule("genome-nightly").await.unwrap();
    assert!(client.list_sync_schedules(None).await.unwrap().is_empty());
    assert_eq!(
        client.list_jobs(&JobFilter::default()).await.unwrap().len(),
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schedule_that_cannot_run_is_refused_naming_the_field() {
    let cp = EmbeddedControlPlane::start(utc(5, 10, 2)).await;
    let client = cp.client().await;
    let dirs = tempfile::tempdir().unwrap();
    genome_on_fast_and_dr(&client, dirs.path()).await;
    let request = |cron: &str, zone: &str, dataset: &str, max_delete: u64| pb::SyncSchedule {
        name: "s".into(),
        cron: cron.into(),
        time_zone: zone.into(),
        sync: Some(pb::PlanSyncRequest {
            dataset: dataset.into(),
            destination_site: "dr".into(),
            max_delete,
            ..Default::default()
        }),
        ..Default::default()
    };
    for (schedule, field) in [
        (request("0 2 * *", "UTC", "genome", 0), "schedule.cron"),
        (request("0 25 * * *", "UTC", "genome", 0), "schedule.cron"),
        (
            request("0 2 * * *", "Mars/Olympus", "genome", 0),
            "schedule.time_zone",
        ),
        (
            request("0 2 * * *", "UTC", "nope", 0),
            "schedule.sync.dataset",
        ),
        (
            request("0 2 * * *", "UTC", "genome", 3),
            "schedule.sync.max_delete",
        ),
    ] {
        let e = client.create_sync_schedule(schedule).await.unwrap_err();
        let status = e.status().cloned().unwrap();
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
        assert!(status.message().starts_with(field), "{field}: {status:?}");
    }
    client
        .create_sync_schedule(request("0 2 * * *", "", "genome", 0))
        .await
        .unwrap();
    let again = client
        .create_sync_schedule(request("0 3 * * *", "", "genome", 0))
        .await
        .unwrap_err();
    assert_eq!(again.code(), tonic::Code::AlreadyExists, "{again:?}");
    assert!(client
        .list_jobs(&JobFilter::default())
        .await
        .unwrap()
        .is_empty());
}
