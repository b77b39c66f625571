//! Recommendations from real access events through the real control plane: recency
//! decides the tier, a latency objective overrides it, every piece of advice is recorded,
//! and approving one plans (idempotently) the migration that an agent then completes.

#![allow(clippy::unwrap_used)]

use std::{collections::HashMap, time::Duration};

use chrono::{TimeDelta, Utc};
use ferry_proto::{time::to_timestamp, v1 as pb};
use ferry_sdk::Client;
use ferry_tests::{
    dataset::{advise, mixed, read_tree, wait_for_end, write_tree},
    Agent, ControlPlane,
};

async fn dataset(client: &Client, name: &str, site: &str, slo: u32) {
    let d = pb::Dataset {
        name: name.into(),
        site: site.into(),
        path: name.into(),
        latency_slo_ms: slo,
        size_bytes: 50_000_000_000,
        object_count: 100,
        ..Default::default()
    };
    client.create_dataset(d).await.unwrap();
}

async fn reads(client: &Client, name: &str, ages: &[TimeDelta]) {
    let now = Utc::now();
    let events = ages
        .iter()
        .map(|age| pb::AccessEvent {
            dataset: name.into(),
            op: pb::AccessOp::Read.into(),
            bytes: 1 << 20,
            latency_ms: 3.0,
            time: Some(to_timestamp(now - *age)),
            ..Default::default()
        })
        .collect();
    client
        .access_events()
        .record_access_events(pb::RecordAccessEventsRequest { events })
        .await
        .unwrap();
}

async fn wait_for_last_access(client: &Client, name: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while client
        .get_dataset(name)
        .await
        .unwrap()
        .dataset
        .last_access_time
        .is_none()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{name}'s events were never aggregated"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recency_and_latency_objectives_decide_and_approval_migrates() {
    let cp = ControlPlane::start().await;
    let client = cp.client().await;
    let dirs = tempfile::tempdir().unwrap();
    let site = |name: &str, tier: pb::Tier, latency_ms: u32, storage: f64| pb::Site {
        name: name.into(),
        uri: format!("file://{}", dirs.path().join(name).display()),
        tier: tier.into(),
        latency_ms,
        prices: Some(pb::Prices {
            storage_per_gb_month: storage,
            egress_per_gb: 0.09,
            ..Default::default()
        }),
        ..Default::default()
    };
    client
        .create_site(site("fast", pb::Tier::Hot, 2, 0.023), HashMap::new())
        .await
        .unwrap();
    client
        .create_site(site("archive", pb::Tier::Cold, 200, 0.004), HashMap::new())
        .await
        .unwrap();
    // Moving to the costlier fast site needs a reason beyond recency: a 100 ms objective
    // the archive misses.
    dataset(&client, "busy", "archive", 100).await;
    dataset(&client, "idle", "fast", 0).await;
    dataset(&client, "strict", "fast", 20).await;
    let every_few_seconds: Vec<_> = (0..10).map(|i| TimeDelta::seconds(3 * i)).collect();
    reads(&client, "busy", &every_few_seconds).await;
    reads(&client, "idle", &[TimeDelta::hours(1)]).await;
    reads(&client, "strict", &[TimeDelta::hours(1)]).await;
    for name in ["busy", "idle", "strict"] {
        wait_for_last_access(&client, name).await;
    }
    let fast = client.get_site("fast").await.unwrap().id;
    let archive = client.get_site("archive").await.unwrap().id;

    let busy = advise(&client, "busy").await;
    assert_eq!(
        (busy.recommended_tier, busy.recommended_site.as_str()),
        (pb::Tier::Hot as i32, fast.as_str())
    );
    assert_eq!(busy.reasons[0].code, "recency");
    assert!(
        busy.reasons[0].message.starts_with("last accessed "),
        "{:?}",
        busy.reasons
    );
    assert!(
        busy.reasons[0].message.contains(": hot"),
        "{:?}",
        busy.reasons
    );
    assert_eq!(busy.state, pb::RecommendationState::Pending as i32);
    assert_eq!(busy.model_version, "recency-rules/3");
    assert!(
        busy.reasons.iter().any(|r| r.code == "latency_slo_requires"
            && r.message
                .ends_with("but archive answers in 200 ms, slower than the 100 ms objective")),
        "{:?}",
        busy.reasons
    );

    let idle = advise(&client, "idle").await;
    assert_eq!(
        (idle.recommended_tier, idle.recommended_site.as_str()),
        (pb::Tier::Cold as i32, archive.as_str())
    );
    assert!(
        idle.reasons[0]
            .message
            .starts_with("last accessed 60m ago: cold"),
        "{:?}",
        idle.reasons
    );
    let cost = idle.cost.unwrap();
    // 50 GB: $1.15 a month on fast, $0.20 on the archive, $4.50 of egress to move.
    assert!((cost.monthly_cost_now - 1.15).abs() < 1e-9, "{cost:?}");
    assert!((cost.monthly_cost_after - 0.2).abs() < 1e-9, "{cost:?}");
    assert!((cost.move_cost - 4.5 - 0.0).abs() < 1e-9, "{cost:?}");
    assert!(
        (cost.payback_days - 4.5 / 0.95 * 30.0).abs() < 1e-6,
        "{cost:?}"
    );

    let strict = advise(&client, "strict").await;
    assert_eq!(
        strict.recommended_site, fast,
        "the 20 ms objective keeps it off the 200 ms archive"
    );
    assert_eq!(strict.state, pb::RecommendationState::NoAction as i32);
    assert!(strict.reasons.iter().any(|r| r.code == "latency_slo"
        && r.message
            == "archive answers in 200 ms, slower than the 20 ms objective: not a candidate"));

    // The audit trail keeps every computation; a newer pending one supersedes the older.
    let again = advise(&client, "idle").await;
    let mut recommendations = client.recommendations();
    let history = recommendations
        .list_recommendations(pb::ListRecommendationsRequest {
            dataset: "idle".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .recommendations;
    assert_eq!(history.len(), 2);
    assert_eq!(history[0].id, again.id, "newest first");
    assert_eq!(history[1].state, pb::RecommendationState::Superseded as i32);
    let stale = recommendations
        .approve_recommendation(pb::ApproveRecommendationRequest {
            recommendation: idle.id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(stale.code(), tonic::Code::FailedPrecondition);

    // Approving plans the migration, idempotently; an agent completes it.
    write_tree(&dirs.path().join("fast/idle"), &mixed(21, 64 << 10));
    let _agent = Agent::start(&cp, "fast", &[]).await;
    let approve = || {
        let mut r = recommendations.clone();
        let id = again.id.clone();
        async move {
            r.approve_recommendation(pb::ApproveRecommendationRequest { recommendation: id })
                .await
                .unwrap()
                .into_inner()
        }
    };
    let first = approve().await;
    let second = approve().await;
    let job = first.job.unwrap();
    assert_eq!(
        job.id,
        second.job.unwrap().id,
        "approving twice plans one job"
    );
    assert_eq!(
        first.recommendation.unwrap().state,
        pb::RecommendationState::Approved as i32
    );
    let done = wait_for_end(&client, &job.id, Duration::from_secs(120)).await;
    assert_eq!(done.state, pb::JobState::Completed as i32, "{done:#?}");
    assert_eq!(
        read_tree(&dirs.path().join("archive/idle")),
        mixed(21, 64 << 10)
    );
    assert_eq!(
        client.get_dataset("idle").await.unwrap().dataset.site,
        archive
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_auto_migrate_policy_moves_each_dataset_exactly_once_across_restarts() {
    let nats = ferry_tests::NatsServer::start().await;
    let dirs = tempfile::tempdir().unwrap();
    let options = ferry_tests::control_plane::Options {
        nats: Some(nats.access()),
        data_dir: Some(dirs.path().join("cp")),
        extra_env: vec![("FERRY_AUTOPILOT__INTERVAL_SECS".into(), "1".into())],
        ..Default::default()
    };
    let cp = ControlPlane::start_with(options.clone()).await;
    let client = cp.client().await;
    for (name, tier, latency) in [("fast", pb::Tier::Hot, 2), ("archive", pb::Tier::Cold, 200)] {
        let site = pb::Site {
            name: name.into(),
            uri: format!("file://{}", dirs.path().join(name).display()),
            tier: tier.into(),
            latency_ms: latency,
            ..Default::default()
        };
        client.create_site(site, HashMap::new()).await.unwrap();
    }
    let data = mixed(31, 32 << 10);
    for name in ["logs-a", "logs-b"] {
        write_tree(&dirs.path().join("fast").join(name), &data);
        let d = pb::Dataset {
            name: name.into(),
            site: "fast".into(),
            path: name.into(),
            labels: [("team".to_string(), "ops".to_string())]
                .into_iter()
                .collect(),
            ..Default::default()
        };
        client.create_dataset(d).await.unwrap();
        reads(&client, name, &[TimeDelta::hours(2)]).await;
        wait_for_last_access(&client, name).await;
    }
    let _agent = Agent::start(&cp, "fast", &[]).await;
    client
        .create_policy(pb::Policy {
            name: "ops-autopilot".into(),
            selector: [("team".to_string(), "ops".to_string())]
                .into_iter()
                .collect(),
            placements: vec![pb::TierPlacement {
                tier: pb::Tier::Cold.into(),
                site: "archive".into(),
            }],
            auto_migrate: true,
            verify_mode: pb::VerifyMode::Full.into(),
            ..Default::default()
        })
        .await
        .unwrap();
    // One migration at a time (the default cap), each dataset once.
    let archive = client.get_site("archive").await.unwrap().id;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let jobs = client.list_jobs(&Default::default()).await.unwrap();
        let running = jobs
            .iter()
            .filter(|j| {
                !matches!(
                    pb::JobState::try_from(j.state),
                    Ok(pb::JobState::Completed | pb::JobState::Failed)
                )
            })
            .count();
        let moved = [
            client.get_dataset("logs-a").await.unwrap(),
            client.get_dataset("logs-b").await.unwrap(),
        ]
        .iter()
        .all(|d| d.dataset.site == archive);
        if moved && running == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the autopilot did not move both datasets: {jobs:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The cap of one: the second job was planned only after the first one ended.
    let mut jobs = client.list_jobs(&Default::default()).await.unwrap();
    assert_eq!(jobs.len(), 2, "{jobs:#?}");
    jobs.sort_by_key(|j| j.create_time.map(|t| (t.seconds, t.nanos)));
    let first_end = jobs[0].end_time.map(|t| (t.seconds, t.nanos)).unwrap();
    let second_start = jobs[1].create_time.map(|t| (t.seconds, t.nanos)).unwrap();
    assert!(
        second_start >= first_end,
        "two migrations of the policy overlapped: {jobs:#?}"
    );
    for name in ["logs-a", "logs-b"] {
        assert_eq!(read_tree(&dirs.path().join("archive").join(name)), data);
    }
    // What the autopilot did is in the audit log as its own.
    let by_autopilot = client
        .list_audit_events(
            &ferry_sdk::AuditFilter {
                principal: Some("system:autopilot".into()),
                ..Default::default()
            },
            100,
        )
        .await
        .unwrap();
    for job in &jobs {
        assert!(
            by_autopilot
                .iter()
                .any(|e| e.resource == format!("job:{}", job.id)
                    && e.summary.starts_with("planned: ")
                    && e.method == "autopilot"),
            "{by_autopilot:#?}"
        );
    }

    // A restarted control plane keeps its autopilot running and plans nothing again.
    drop(cp);
    let cp = ControlPlane::start_with(options).await;
    let client = cp.client().await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let jobs = client.list_jobs(&Default::default()).await.unwrap();
    assert_eq!(jobs.len(), 2, "exactly one job per dataset: {jobs:#?}");
    assert!(jobs
        .iter()
        .all(|j| j.state == pb::JobState::Completed as i32));
}
