//! Eight days of access history replayed in seconds: the control plane runs in-process
//! on a manual clock (its clock port), with its own nats-server and SQLite, and the test
//! moves time hour by hour while it records events. Recommendations at checkpoints follow
//! recency, minimum residency, read volume and the 7-day demand window, with costs that
//! match figures computed here by hand.

#![allow(clippy::unwrap_used)]

use std::{collections::HashMap, time::Duration};

use chrono::{DateTime, TimeDelta, Utc};
use ferry_proto::{
    time::{from_timestamp, to_duration, to_timestamp},
    v1 as pb,
};
use ferry_sdk::Client;
use ferry_tests::{
    access::{caught_up, record},
    dataset::advise,
    embedded::EmbeddedControlPlane,
};

const MB: i64 = 1_000_000;

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-03-02T08:00:00Z")
        .unwrap()
        .to_utc()
}

async fn setup(client: &Client, dirs: &std::path::Path) {
    let site = |name: &str, tier: pb::Tier, latency_ms: u32, prices: pb::Prices| pb::Site {
        name: name.into(),
        uri: format!("file://{}", dirs.join(name).display()),
        tier: tier.into(),
        latency_ms,
        prices: Some(prices),
        ..Default::default()
    };
    let fast = pb::Prices {
        storage_per_gb_month: 0.023,
        egress_per_gb: 0.09,
        per_1000_requests: 0.005,
        ..Default::default()
    };
    let nearline = pb::Prices {
        storage_per_gb_month: 0.0125,
        per_1000_requests: 0.005,
        ..Default::default()
    };
    let archive = pb::Prices {
        storage_per_gb_month: 0.004,
        retrieval_per_gb: 0.01,
        per_1000_requests: 0.01,
        ..Default::default()
    };
    for s in [
        site("fast", pb::Tier::Hot, 2, fast),
        site("nearline", pb::Tier::Warm, 20, nearline),
        site("archive", pb::Tier::Cold, 200, archive),
    ] {
        client.create_site(s, HashMap::new()).await.unwrap();
    }
    client
        .create_policy(pb::Policy {
            name: "replay".into(),
            selector: HashMap::from([("team".into(), "replay".into())]),
            min_residency: Some(to_duration(Duration::from_secs(2 * 86_400))),
            ..Default::default()
        })
        .await
        .unwrap();
    for (name, size_bytes, object_count) in [
        ("reads", 100_000_000_000, 1000),
        ("scan", 1_000_000_000, 10),
    ] {
        client
            .create_dataset(pb::Dataset {
                name: name.into(),
                site: "fast".into(),
                path: name.into(),
                size_bytes,
                object_count,
                labels: HashMap::from([("team".into(), "replay".into())]),
                ..Default::default()
            })
            .await
            .unwrap();
    }
}

fn read(dataset: &str, bytes: i64, at: DateTime<Utc>) -> pb::AccessEvent {
    pb::AccessEvent {
        dataset: dataset.into(),
        op: pb::AccessOp::Read.into(),
        bytes,
        latency_ms: 4.0,
        time: Some(to_timestamp(at)),
        client_id: "replay".into(),
        event_id: format!("{dataset}-{}", at.timestamp()),
    }
}

fn reason<'a>(r: &'a pb::Recommendation, code: &str) -> &'a str {
    r.reasons
        .iter()
        .find(|x| x.code == code)
        .map(|x| x.message.as_str())
        .unwrap_or_else(|| panic!("no {code} reason in {:#?}", r.reasons))
}

fn close(actual: f64, expected: f64) {
    assert!(
        (actual - expected).abs() < 1e-9,
        "{actual} differs from the hand-computed {expected}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_week_of_history_replays_in_seconds() {
    let t0 = t0();
    let cp = EmbeddedControlPlane::start(t0).await;
    let client = cp.client().await;
    let dirs = tempfile::tempdir().unwrap();
    setup(&client, dirs.path()).await;
    let ids: HashMap<&str, String> = {
        let mut ids = HashMap::new();
        for s in ["fast", "nearline", "archive"] {
            ids.insert(s, client.get_site(s).await.unwrap().id);
        }
        ids
    };

    // Day 0, first ten minutes: "reads" is read every 5 s, 10 MB a time.
    cp.clock().set(t0 + TimeDelta::minutes(10));
    let burst: Vec<_> = (1..=120)
        .map(|i| read("reads", 10 * MB, t0 + TimeDelta::seconds(5 * i)))
        .collect();
    record(&client, burst).await;
    caught_up(&client, "reads", t0 + TimeDelta::minutes(10)).await;
    let a = advise(&client, "reads").await;
    assert_eq!(
        (a.recommended_tier, a.recommended_site.as_str()),
        (pb::Tier::Hot as i32, ids["fast"].as_str())
    );
    assert_eq!(a.state, pb::RecommendationState::NoAction as i32);
    assert_eq!(
        reason(&a, "recency"),
        "last accessed 0s ago: hot (hot within 60s, warm within 10m)"
    );

    // An hour later it is cold, but it has been on fast for an hour only.
    cp.clock().set(t0 + TimeDelta::minutes(70));
    let b = advise(&client, "reads").await;
    assert!(reason(&b, "recency").starts_with("last accessed 60m ago: cold"));
    assert_eq!(
        reason(&b, "min_residency"),
        "on fast for 70m only, less than the minimum residency of 2d: not moving yet"
    );
    assert_eq!(b.recommended_site, ids["fast"]);

    // Three days, hour by hour: "scan" reads 62.5 MB every hour, 1.5 GB a day against
    // its 1 GB size.
    for hour in 1..72 {
        let at = t0 + TimeDelta::hours(hour);
        cp.clock().set(at);
        record(&client, vec![read("scan", 62_500_000, at)]).await;
    }
    caught_up(&client, "scan", t0 + TimeDelta::hours(71)).await;
    cp.clock().set(t0 + TimeDelta::days(3));

    let c = advise(&client, "reads").await;
    assert_eq!(
        (c.recommended_tier, c.recommended_site.as_str()),
        (pb::Tier::Cold as i32, ids["archive"].as_str())
    );
    assert_eq!(c.state, pb::RecommendationState::Pending as i32);
    // The week's demand, 120 reads of 1.2 GB in all, projected from 7 to 30 days.
    let requests = 120.0 * 30.0 / 7.0;
    let read_gb = 1.2 * 30.0 / 7.0;
    let now = 100.0 * 0.023 + requests / 1000.0 * 0.005;
    let after = 100.0 * 0.004 + read_gb * 0.01 + requests / 1000.0 * 0.01;
    let move_cost = 100.0 * 0.09 + 1000.0 / 1000.0 * (0.005 + 0.01);
    let cost = c.cost.unwrap();
    close(cost.monthly_cost_now, now);
    close(cost.monthly_cost_after, after);
    close(cost.move_cost, move_cost);
    close(cost.payback_days, move_cost / (now - after) * 30.0);

    let scan = advise(&client, "scan").await;
    assert!(reason(&scan, "recency").starts_with("last accessed 60m ago: cold"));
    assert_eq!(
        reason(&scan, "read_volume"),
        "1.5 GB read in the last day, 1.5× its size: keeps it at least warm"
    );
    assert_eq!(
        (scan.recommended_tier, scan.recommended_site.as_str()),
        (pb::Tier::Warm as i32, ids["nearline"].as_str())
    );

    // Eight days in: day 0's reads have left the 7-day window; only storage is left.
    cp.clock().set(t0 + TimeDelta::days(8));
    let d = advise(&client, "reads").await;
    let cost = d.cost.unwrap();
    close(cost.monthly_cost_now, 100.0 * 0.023);
    close(cost.monthly_cost_after, 100.0 * 0.004);
    close(cost.payback_days, move_cost / (2.3 - 0.4) * 30.0);
    // "scan" is cold now, but the week's 48 reads (3 GB) would cost more in archive
    // retrieval fees than fast charges: it stays.
    let scan = advise(&client, "scan").await;
    assert!(
        !scan.reasons.iter().any(|r| r.code == "read_volume"),
        "{:#?}",
        scan.reasons
    );
    assert_eq!(
        reason(&scan, "retrieval_cost"),
        "reading 12.9 GB a month would cost $0.1346 a month on archive against $0.0240 on fast: staying"
    );
    assert_eq!(scan.recommended_site, ids["fast"]);

    // Every recommendation is on record, stamped with the replayed time.
    let history = client
        .recommendations()
        .list_recommendations(pb::ListRecommendationsRequest {
            dataset: "reads".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .recommendations;
    let stamps: Vec<_> = history
        .iter()
        .map(|r| from_timestamp(r.create_time.as_ref().unwrap()).unwrap())
        .collect();
    assert_eq!(
        stamps,
        vec![
            t0 + TimeDelta::days(8),
            t0 + TimeDelta::days(3),
            t0 + TimeDelta::minutes(70),
            t0 + TimeDelta::minutes(10),
        ]
    );

    // The hourly aggregates hold the replayed hours.
    let hours = client
        .access_events()
        .get_access_stats(pb::GetAccessStatsRequest {
            dataset: "scan".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .hours;
    assert_eq!(hours.len(), 71);
    assert!(hours
        .iter()
        .all(|h| h.reads == 1 && h.bytes_read == 62_500_000));
    cp.stop().await.unwrap();
}
