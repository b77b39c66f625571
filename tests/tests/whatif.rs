//! What-if replays through the API, on a trace small enough to work out by hand: three
//! datasets over three days, two sites with round prices, an in-process control plane on
//! a manual clock (its own nats-server and SQLite). Every figure `WhatIf` answers for
//! what happened, Ferry, the recency rule and the Intelligent-Tiering rule is computed
//! here from the rules, and the same request answers the same figures twice.

#![allow(clippy::unwrap_used)]

use std::{collections::HashMap, time::Duration};

use chrono::{DateTime, TimeDelta, Utc};
use ferry_proto::{
    time::{to_duration, to_timestamp},
    v1 as pb,
};
use ferry_sdk::Client;
use ferry_tests::{
    access::{caught_up, fast_and_archive, record},
    embedded::EmbeddedControlPlane,
};
use tonic::Code;

const GB: i64 = 1_000_000_000;

/// The replayed range starts here and lasts 72 hours.
fn start() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-05-04T00:00:00Z")
        .unwrap()
        .to_utc()
}

fn hours(h: i64) -> DateTime<Utc> {
    start() + TimeDelta::hours(h)
}

async fn dataset(client: &Client, name: &str, site: &str, size: u64, slo: u32) {
    client
        .create_dataset(pb::Dataset {
            name: name.into(),
            site: site.into(),
            path: name.into(),
            size_bytes: size,
            object_count: 10,
            latency_slo_ms: slo,
            labels: HashMap::from([("team".into(), "replay".into())]),
            ..Default::default()
        })
        .await
        .unwrap();
}

fn reads(dataset: &str, n: i64, bytes_each: i64, at: DateTime<Utc>) -> Vec<pb::AccessEvent> {
    (0..n)
        .map(|i| pb::AccessEvent {
            dataset: dataset.into(),
            op: pb::AccessOp::Read.into(),
            bytes: bytes_each,
            latency_ms: 5.0,
            time: Some(to_timestamp(at + TimeDelta::seconds(60 + i))),
            client_id: "whatif-test".into(),
            event_id: format!("{dataset}-{i}"),
        })
        .collect()
}

fn policy() -> pb::Policy {
    pb::Policy {
        name: "whatif".into(),
        selector: HashMap::from([("team".into(), "replay".into())]),
        hot_after: Some(to_duration(Duration::from_secs(3600))),
        warm_after: Some(to_duration(Duration::from_secs(7200))),
        placements: vec![
            pb::TierPlacement {
                tier: pb::Tier::Hot.into(),
                site: "fast".into(),
            },
            pb::TierPlacement {
                tier: pb::Tier::Cold.into(),
                site: "archive".into(),
            },
        ],
        ..Default::default()
    }
}

/// The catalogue and history of the trace:
/// - `a`: 1 GB on fast since ten days before the range, never read;
/// - `b`: 1 GB on the archive for 100 days, read ten times (1 GB in all) in hour 30;
/// - `c`: 2 GB on the archive for 100 days with a 50 ms objective the archive (200 ms)
///   misses, read four times (1 GB in all) in hour 10.
async fn trace(cp: &EmbeddedControlPlane, client: &Client, dirs: &std::path::Path) {
    // $0.72 a GB-month is $0.001 a GB-hour; the archive's is a tenth of that.
    let fast = pb::Prices {
        storage_per_gb_month: 0.72,
        ..Default::default()
    };
    let archive = pb::Prices {
        storage_per_gb_month: 0.072,
        retrieval_per_gb: 0.01,
        ..Default::default()
    };
    fast_and_archive(client, dirs, fast, archive).await;
    client.create_policy(policy()).await.unwrap();
    dataset(client, "b", "archive", GB as u64, 0).await;
    dataset(client, "c", "archive", 2 * GB as u64, 50).await;
    cp.clock().set(start() - TimeDelta::days(10));
    dataset(client, "a", "fast", GB as u64, 0).await;
    cp.clock().set(hours(80));
    record(client, reads("b", 10, GB / 10, hours(30))).await;
    record(client, reads("c", 4, GB / 4, hours(10))).await;
    caught_up(client, "b", hours(30) + TimeDelta::seconds(69)).await;
    caught_up(client, "c", hours(10) + TimeDelta::seconds(63)).await;
}

fn request(policy: &str, draft: Option<pb::Policy>) -> pb::WhatIfRequest {
    pb::WhatIfRequest {
        datasets: vec!["a".into(), "b".into(), "c".into()],
        start_time: Some(to_timestamp(start())),
        end_time: Some(to_timestamp(hours(72))),
        policy: policy.into(),
        draft_policy: draft,
        ..Default::default()
    }
}

async fn what_if(client: &Client, req: pb::WhatIfRequest) -> pb::WhatIfResponse {
    client
        .recommendations()
        .what_if(req)
        .await
        .unwrap()
        .into_inner()
}

fn close(what: &str, actual: f64, expected: f64) {
    assert!(
        (actual - expected).abs() < 1e-9,
        "{what}: {actual} differs from the hand-computed {expected}"
    );
}

/// Storage, retrieval, moves' cost, number of moves and slow reads, by strategy.
struct Expected {
    storage: f64,
    retrieval: f64,
    moves_cost: f64,
    moves: u32,
    slow_reads: u64,
}

fn check(answer: &pb::WhatIfResponse, strategy: &str, e: Expected) {
    let o = answer
        .outcomes
        .iter()
        .find(|o| o.strategy == strategy)
        .unwrap_or_else(|| panic!("no {strategy} outcome in {answer:#?}"));
    close(&format!("{strategy} storage"), o.storage_cost, e.storage);
    close(
        &format!("{strategy} retrieval"),
        o.retrieval_cost,
        e.retrieval,
    );
    close(&format!("{strategy} requests"), o.request_cost, 0.0);
    close(&format!("{strategy} moves"), o.move_cost, e.moves_cost);
    close(
        &format!("{strategy} total"),
        o.total_cost,
        e.storage + e.retrieval + e.moves_cost,
    );
    assert_eq!(
        (o.moves, o.slow_reads),
        (e.moves, e.slow_reads),
        "{strategy}"
    );
    let by_site: f64 = o
        .sites
        .iter()
        .map(|s| s.storage_cost + s.retrieval_cost + s.request_cost)
        .sum();
    close(
        &format!("{strategy} by site"),
        by_site,
        e.storage + e.retrieval,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hand_computed_trace_replays_to_the_same_figures() {
    let cp = EmbeddedControlPlane::start(start() - TimeDelta::days(100)).await;
    let client = cp.client().await;
    let dirs = tempfile::tempdir().unwrap();
    trace(&cp, &client, dirs.path()).await;

    let answer = what_if(&client, request("whatif", None)).await;
    assert_eq!((answer.datasets, answer.reads), (3, 14));
    assert_eq!(
        answer
            .outcomes
            .iter()
            .map(|o| o.strategy.as_str())
            .collect::<Vec<_>>(),
        ["actual", "ferry", "recency", "intelligent_tiering"]
    );

    // What happened: nothing moved. a: 72 h × 1 GB × $0.001 = $0.072; b: 72 h ×
    // $0.0001 = $0.0072 and 1 GB retrieved at $0.01; c: 72 h × 2 GB × $0.0001 = $0.0144
    // and 1 GB retrieved, its four reads from the 200 ms archive all slow.
    check(
        &answer,
        "actual",
        Expected {
            storage: 0.072 + 0.0072 + 0.0144,
            retrieval: 0.02,
            moves_cost: 0.0,
            moves: 0,
            slow_reads: 4,
        },
    );
    // The recency rule (and Ferry, whose models need 21 days of history these datasets
    // do not have), deciding every hour; a move of 1 or 2 GB at the assumed 50 MB/s
    // arrives the next hour:
    // - a, never read, goes to the archive at hour 0: 1 h on fast, 71 on the archive;
    // - b, read in hour 30, is hot at hour 31 (the policy places hot data on fast, so the
    //   costlier site is allowed) and arrives at 32; its own size read within the last
    //   day keeps it at least warm (no warm site: hot) until that read leaves the window
    //   at hour 55, and it is back on the archive at 56: 32 + 16 h on the archive, 24 on
    //   fast, and 1 GB retrieved once by the read and once by the move;
    // - c, whose objective the archive misses, goes to fast at hour 0 (2 GB retrieved
    //   by the move) and stays: 1 h on the archive, 71 on fast; its reads are fast.
    let rules = || Expected {
        storage: (0.001 + 71.0 * 0.0001)
            + (48.0 * 0.0001 + 24.0 * 0.001)
            + (2.0 * 0.0001 + 71.0 * 0.002),
        retrieval: 0.01,
        moves_cost: 0.0 + (0.01 + 0.0) + 0.02,
        moves: 4,
        slow_reads: 0,
    };
    check(&answer, "recency", rules());
    check(&answer, "ferry", rules());
    // Intelligent-Tiering: a, read within 30 days of arriving... never read, but only
    // 10 days on fast: stays hot. b and c, 100 days idle, stay cold until read, then go
    // hot the hour after and stay: b 32 h on the archive and 40 on fast, c 12 and 60;
    // c's reads, served from the archive, are slow.
    check(
        &answer,
        "intelligent_tiering",
        Expected {
            storage: 0.072 + (32.0 * 0.0001 + 40.0 * 0.001) + (12.0 * 0.0002 + 60.0 * 0.002),
            retrieval: 0.02,
            moves_cost: 0.01 + 0.02,
            moves: 2,
            slow_reads: 4,
        },
    );

    // The same request, and the same policy as a draft, replay to identical figures.
    let again = what_if(&client, request("whatif", None)).await;
    let mut draft = policy();
    draft.name.clear();
    draft.selector.clear();
    let drafted = what_if(&client, request("", Some(draft))).await;
    for other in [&again, &drafted] {
        assert_eq!(other.outcomes, answer.outcomes);
    }

    // `ferry whatif` asks the same and prints the same figures.
    let out = std::process::Command::new(ferry_tests::binaries::path("ferry"))
        .args([
            "--server",
            &cp.endpoint(),
            "--json",
            "whatif",
            "a",
            "b",
            "c",
        ])
        .args([
            "--from",
            "2026-05-04T00:00:00Z",
            "--to",
            "2026-05-07T00:00:00Z",
        ])
        .args(["--policy", "whatif"])
        .env_remove("FERRY_TOKEN")
        .env("FERRY_TOKEN_FILE", cp.admin_token_file())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for (json, o) in printed["outcomes"]
        .as_array()
        .unwrap()
        .iter()
        .zip(&answer.outcomes)
    {
        assert_eq!(json["strategy"], o.strategy.as_str());
        assert_eq!(json["total_cost"].as_f64(), Some(o.total_cost));
        assert_eq!(json["moves"], o.moves);
    }

    cp.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_what_if_requests_name_the_field() {
    let cp = EmbeddedControlPlane::start(start() - TimeDelta::days(100)).await;
    let client = cp.client().await;
    let dirs = tempfile::tempdir().unwrap();
    trace(&cp, &client, dirs.path()).await;
    let refused = |req: pb::WhatIfRequest| {
        let client = client.clone();
        async move { client.recommendations().what_if(req).await.unwrap_err() }
    };

    let future = pb::WhatIfRequest {
        end_time: Some(to_timestamp(hours(100))),
        ..request("whatif", None)
    };
    let e = refused(future).await;
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(
        e.message()
            .starts_with("end_time: 2026-05-08 04:00:00 UTC is in the future"),
        "{}",
        e.message()
    );

    let step = pb::WhatIfRequest {
        step: Some(to_duration(Duration::from_secs(5400))),
        ..request("whatif", None)
    };
    let e = refused(step).await;
    assert_eq!(
        (e.code(), e.message()),
        (
            Code::InvalidArgument,
            "step: must be a whole number of hours, got 5400s"
        )
    );

    let both = refused(request("whatif", Some(policy()))).await;
    assert_eq!(
        (both.code(), both.message()),
        (
            Code::InvalidArgument,
            "draft_policy: give either policy or draft_policy, not both"
        )
    );

    let mut bad_draft = policy();
    bad_draft.warm_after = Some(to_duration(Duration::from_secs(60)));
    let e = refused(request("", Some(bad_draft))).await;
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(
        e.message()
            .starts_with("draft_policy.warm_after: must be longer than hot_after"),
        "{}",
        e.message()
    );

    let missing = pb::WhatIfRequest {
        datasets: vec!["nope".into()],
        ..request("whatif", None)
    };
    let e = refused(missing).await;
    assert_eq!(
        (e.code(), e.message()),
        (Code::NotFound, "dataset nope not found")
    );
    cp.stop().await.unwrap();
}
