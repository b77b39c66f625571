//! Recommending through the control plane, before and after training: an in-process
//! control plane on a manual clock (its own nats-server and SQLite), datasets with four
//! weeks of weekday working-hours reads recorded through the API, then
//! `GetRecommendations` for every dataset timed before `TrainModels` and after it,
//! when each recommendation also reads the dataset's model and its forecast.

use std::{collections::HashMap, time::Instant};

use chrono::{DateTime, Datelike, TimeDelta, Timelike, Utc};
use ferry_proto::{time::to_timestamp, v1 as pb};
use ferry_tests::{access::record, embedded::EmbeddedControlPlane};

use crate::traces::Rng;

fn monday() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-03-30T00:00:00Z")
        .map(|t| t.to_utc())
        .unwrap_or_default()
}

/// Every dataset's recommendation, one page of 1,000 at a time; the time taken.
async fn recommend_all(client: &ferry_sdk::Client) -> (std::time::Duration, usize) {
    let started = Instant::now();
    let all = client
        .recommendations_for(&ferry_sdk::RecommendationFilter::default())
        .await
        .unwrap_or_else(|e| panic!("recommendations: {e}"));
    (started.elapsed(), all.len())
}

pub async fn run(datasets: usize, seed: u64) {
    let now = monday() + TimeDelta::hours(6);
    let cp = EmbeddedControlPlane::start(monday() - TimeDelta::days(30)).await;
    let client = cp.client().await;
    let dirs = tempfile::tempdir().unwrap_or_else(|e| panic!("temp dir: {e}"));
    let prices = |storage| pb::Prices {
        storage_per_gb_month: storage,
        retrieval_per_gb: 0.01,
        ..Default::default()
    };
    ferry_tests::access::fast_and_archive(&client, dirs.path(), prices(0.023), prices(0.004)).await;
    let started = Instant::now();
    for i in 0..datasets {
        client
            .create_dataset(pb::Dataset {
                name: format!("d{i}"),
                site: if i % 2 == 0 { "fast" } else { "archive" }.into(),
                path: format!("d{i}"),
                size_bytes: 10_000_000_000,
                object_count: 100,
                labels: HashMap::from([("team".into(), "bench".into())]),
                ..Default::default()
            })
            .await
            .unwrap_or_else(|e| panic!("creating d{i}: {e}"));
    }
    cp.clock().set(now);
    // Weekday working hours, one or two reads an hour, for four weeks.
    let mut rng = Rng::new(seed);
    let mut events = Vec::new();
    let start = monday() - TimeDelta::days(28);
    for i in 0..datasets {
        for h in 0..28 * 24 {
            let at = start + TimeDelta::hours(h);
            if at.weekday().num_days_from_monday() >= 5 || !(9..17).contains(&at.hour()) {
                continue;
            }
            for k in 0..1 + rng.next_u64() % 2 {
                events.push(pb::AccessEvent {
                    dataset: format!("d{i}"),
                    op: pb::AccessOp::Read.into(),
                    bytes: 1_000_000,
                    latency_ms: 5.0,
                    time: Some(to_timestamp(at + TimeDelta::minutes(k as i64 * 20 + 1))),
                    client_id: "bench".into(),
                    event_id: format!("d{i}-{h}-{k}"),
                });
            }
        }
    }
    let n = events.len();
    record(&client, events).await;
    // Wait until the last dataset's reads are folded in.
    let last = format!("d{}", datasets - 1);
    loop {
        let stats = client
            .access_events()
            .get_access_stats(pb::GetAccessStatsRequest {
                dataset: last.clone(),
                ..Default::default()
            })
            .await
            .map(|r| r.into_inner().hours.iter().map(|h| h.reads).sum::<u64>())
            .unwrap_or(0);
        if stats > 0 {
            tokio::time::sleep(std::time::Duration::from_secs(2)).await;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    println!(
        "\nthrough the control plane: {datasets} datasets and {n} access events set up in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    recommend_all(&client).await;
    let (before, count) = recommend_all(&client).await;
    let trained = client
        .train_models(None)
        .await
        .unwrap_or_else(|e| panic!("training: {e}"));
    let (after, _) = recommend_all(&client).await;
    let ratio = after.as_secs_f64() / before.as_secs_f64();
    println!(
        "GetRecommendations for all {count}: {:.2} s before training, {:.2} s after ({} of {} \
         models in use): {ratio:.2}×; target ≤ 1.20×: {}",
        before.as_secs_f64(),
        after.as_secs_f64(),
        trained.models_in_use,
        trained.datasets_trained,
        if ratio <= 1.2 { "met" } else { "MISSED" }
    );
    if let Err(e) = cp.stop().await {
        eprintln!("stopping the control plane: {e}");
    }
}
