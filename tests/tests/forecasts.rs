//! Forecast-driven placement, end to end: four weeks of access history recorded through
//! the API into an in-process control plane on a manual clock (its own nats-server and
//! SQLite), `TrainModels` fits each dataset's demand model, and recommendations use the
//! models that beat the baselines: a dataset read on weekday working hours is brought
//! back to the hot site before Monday morning, early enough for the move to finish,
//! while flat, sparse and odd series keep the recency rules and say why.

#![allow(clippy::unwrap_used)]

use std::{collections::HashMap, time::Duration};

use chrono::{DateTime, TimeDelta, Timelike, Utc};
use ferry_proto::{
    time::{from_timestamp, to_timestamp},
    v1 as pb,
};
use ferry_sdk::Client;
use ferry_tests::{
    access::{caught_up, fast_and_archive, record},
    dataset::advise,
    embedded::EmbeddedControlPlane,
};

/// A Monday: four weeks of history end here.
fn monday() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-03-30T00:00:00Z")
        .unwrap()
        .to_utc()
}

/// A fixed pseudo-random generator: every run records the same history.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

/// Reads per hour over the 28 days: weekday working hours only, between 10 and 40 an hour before `monday()`, hour 0 being four weeks earlier.
fn weekly(noise: &mut Lcg, h: usize) -> u64 {
    let (day, hour) = (h / 24 % 7, h % 24);
    if day < 5 && (9..17).contains(&hour) {
        10 + noise.below(31)
    } else {
        0
    }
}

async fn record_hours(client: &Client, dataset: &str, reads: impl Fn(usize) -> u64) {
    let start = monday() - TimeDelta::days(28);
    let mut events = Vec::new();
    for h in 0..28 * 24 {
        let hour = start + TimeDelta::hours(h as i64);
        for i in 0..reads(h) {
            let at = hour + TimeDelta::seconds(i as i64 * 60 + 7);
            events.push(pb::AccessEvent {
                dataset: dataset.into(),
                op: pb::AccessOp::Read.into(),
                bytes: 50_000_000,
                latency_ms: 5.0,
                time: Some(to_timestamp(at)),
                client_id: "forecast-test".into(),
                event_id: format!("{dataset}-{h}-{i}"),
            });
        }
    }
    let last = events
        .iter()
        .filter_map(|e| e.time.as_ref().and_then(from_timestamp))
        .max()
        .unwrap();
    record(client, events).await;
    caught_up(client, dataset, last).await;
}

async fn setup(client: &Client, dirs: &std::path::Path) {
    let fast = pb::Prices {
        storage_per_gb_month: 0.023,
        ..Default::default()
    };
    let archive = pb::Prices {
        storage_per_gb_month: 0.004,
        retrieval_per_gb: 0.01,
        ..Default::default()
    };
    fast_and_archive(client, dirs, fast, archive).await;
    client
        .create_policy(pb::Policy {
            name: "analytics".into(),
            selector: HashMap::from([("team".into(), "analytics".into())]),
            hot_after: Some(ferry_proto::time::to_duration(Duration::from_secs(3600))),
            warm_after: Some(ferry_proto::time::to_duration(Duration::from_secs(7200))),
            ..Default::default()
        })
        .await
        .unwrap();
    for (name, site) in [
        ("weekly", "archive"),
        ("flat", "fast"),
        ("sparse", "fast"),
        ("spike", "fast"),
        ("gap", "fast"),
    ] {
        client
            .create_dataset(pb::Dataset {
                name: name.into(),
                site: site.into(),
                path: name.into(),
                size_bytes: 10_000_000_000,
                object_count: 100,
                labels: HashMap::from([("team".into(), "analytics".into())]),
                ..Default::default()
            })
            .await
            .unwrap();
    }
}

fn reason<'a>(r: &'a pb::Recommendation, code: &str) -> Option<&'a str> {
    r.reasons
        .iter()
        .find(|x| x.code == code)
        .map(|x| x.message.as_str())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_weekly_dataset_is_forecast_and_prewarmed_before_its_peak() {
    let cp = EmbeddedControlPlane::start(monday() - TimeDelta::days(29)).await;
    let client = cp.client().await;
    let dirs = tempfile::tempdir().unwrap();
    setup(&client, dirs.path()).await;
    // Monday, 06:30: the history is in the past.
    let now = monday() + TimeDelta::minutes(390);
    cp.clock().set(now);
    let mut noise = Lcg(17);
    let weekly_reads: Vec<u64> = (0..28 * 24).map(|h| weekly(&mut noise, h)).collect();
    record_hours(&client, "weekly", |h| weekly_reads[h]).await;
    record_hours(&client, "flat", |_| 3).await;
    // Reads on three days of the last week only.
    record_hours(&client, "sparse", |h| {
        u64::from(h >= 21 * 24 && h % 48 == 10) * 4
    })
    .await;
    // A single burst in four weeks.
    record_hours(&client, "spike", |h| u64::from(h == 400) * 300).await;
    // A week of the weekly pattern, two weeks of nothing, then the pattern again.
    record_hours(&client, "gap", |h| {
        if (168..504).contains(&h) {
            0
        } else {
            weekly_reads[h]
        }
    })
    .await;

    let trained = client.train_models(None).await.unwrap();
    assert_eq!(trained.datasets_trained, 5, "{trained:#?}");
    assert_eq!(trained.models_in_use, 2, "weekly and gap: {trained:#?}");
    // The run is in the audit log, recorded with the models.
    let audit = client
        .list_audit_events(
            &ferry_sdk::AuditFilter {
                method: Some("ferry.v1.RecommendationService/TrainModels".into()),
                ..Default::default()
            },
            10,
        )
        .await
        .unwrap();
    assert_eq!(audit.len(), 1, "{audit:#?}");
    assert_eq!(
        (audit[0].resource.as_str(), audit[0].summary.as_str()),
        ("demand_models", "trained 5 model(s), 2 in use")
    );
    let by_name = |name: &str, models: &[pb::ModelInfo], ids: &HashMap<String, String>| {
        models
            .iter()
            .find(|m| ids.get(&m.dataset).map(String::as_str) == Some(name))
            .cloned()
            .unwrap_or_else(|| panic!("no model for {name} in {models:#?}"))
    };
    let ids: HashMap<String, String> = client
        .list_datasets(&Default::default())
        .await
        .unwrap()
        .into_iter()
        .map(|d| (d.id, d.name))
        .collect();

    // The weekly dataset: both seasons found, and the forecast beats both baselines.
    let weekly = by_name("weekly", &trained.models, &ids);
    assert_eq!(weekly.kind, "mstl+ets", "{weekly:#?}");
    assert_eq!(weekly.periods, vec![24, 168], "{weekly:#?}");
    assert!(weekly.in_use, "{weekly:#?}");
    assert!(
        weekly.backtest_error < weekly.seasonal_naive_error
            && weekly.backtest_error < weekly.heuristic_error,
        "{weekly:#?}"
    );
    // The window reaches back 28 days from 06:00; the first read in it came at 09:00.
    assert_eq!(weekly.history_hours, 28 * 24 - 3);
    // About 40 working hours of 25 reads a week.
    assert!(
        (700.0..1300.0).contains(&weekly.expected_reads_7d),
        "{weekly:#?}"
    );
    let peak = weekly.peak_time.as_ref().and_then(from_timestamp).unwrap();
    assert!(
        peak > now && peak < now + TimeDelta::days(7) && (8..18).contains(&peak.hour()),
        "peak at {peak}"
    );

    // Flat, sparse and spiky series keep the recency rules, each saying why.
    for name in ["flat", "sparse", "spike"] {
        let m = by_name(name, &trained.models, &ids);
        assert!(!m.in_use, "{name}: {m:#?}");
        assert!(
            m.note.ends_with("the recency rules decide"),
            "{name}: {m:#?}"
        );
    }
    // Weeks of silence do not fail the run; whether the model is used depends, as for
    // every dataset, on its back-test.
    let gap = by_name("gap", &trained.models, &ids);
    assert_eq!(gap.kind, "mstl+ets", "{gap:#?}");
    assert!(!gap.note.is_empty());
    let sparse = by_name("sparse", &trained.models, &ids);
    assert!(
        sparse
            .note
            .starts_with("5 days of access history, a forecast needs 21"),
        "{sparse:#?}"
    );
    let flat = by_name("flat", &trained.models, &ids);
    assert!(
        flat.note.starts_with("on the last 6 days held out"),
        "{flat:#?}"
    );

    // At 06:30 the busy period is hours away: the move back is planned, not yet due.
    let early = advise(&client, "weekly").await;
    assert_eq!(early.model_version, weekly.version);
    assert_eq!(
        early.state,
        pb::RecommendationState::NoAction as i32,
        "{early:#?}"
    );
    let forecast = reason(&early, "forecast").unwrap();
    assert!(
        forecast.starts_with("expected ")
            && forecast.contains(" reads over the next 7 days, peak "),
        "{forecast}"
    );
    let planned = reason(&early, "prewarm_planned").unwrap();
    assert!(
        planned.contains("moving 10.0 GB to fast at the assumed 50.0 MB/s takes about 3m"),
        "{planned}"
    );

    // Within the lead time of the move before the busy period, the move is advised.
    cp.clock().set(monday() + TimeDelta::hours(8));
    let due = advise(&client, "weekly").await;
    let fast = client.get_site("fast").await.unwrap().id;
    assert_eq!(
        (due.recommended_tier, due.recommended_site.as_str()),
        (pb::Tier::Hot as i32, fast.as_str()),
        "{due:#?}"
    );
    assert_eq!(due.state, pb::RecommendationState::Pending as i32);
    assert_eq!(due.model_version, weekly.version);
    assert!(
        reason(&due, "prewarm")
            .unwrap()
            .ends_with("moving now so it is there in time"),
        "{due:#?}"
    );
    // With the forecast reads priced in (the archive charges for retrieval), the hot
    // site is also the cheaper one: 50 MB a read, about 935 reads a week.
    let cost = due.cost.unwrap();
    assert!(cost.monthly_cost_after < cost.monthly_cost_now, "{cost:?}");
    assert!(reason(&due, "cost_guard").is_none(), "{due:#?}");

    // A flat dataset's advice still comes from the recency rules.
    let flat_advice = advise(&client, "flat").await;
    assert_eq!(flat_advice.model_version, "recency-rules/3");
    assert!(reason(&flat_advice, "forecast").is_none());

    // Training again keeps the earlier version, newest first; only the latest is used.
    cp.clock()
        .set(monday() + TimeDelta::hours(8) + TimeDelta::minutes(1));
    let again = client.train_models(Some("weekly")).await.unwrap();
    assert_eq!(again.datasets_trained, 1);
    let versions = client.list_models(Some("weekly")).await.unwrap();
    assert_eq!(
        versions
            .iter()
            .map(|m| m.version.as_str())
            .collect::<Vec<_>>(),
        vec![again.models[0].version.as_str(), weekly.version.as_str()]
    );
    assert!(versions[0]
        .version
        .starts_with("mstl+ets/1@20260330T080100"));
    let latest = client.list_models(None).await.unwrap();
    assert_eq!(latest.len(), 5, "one latest model per dataset: {latest:#?}");
    assert_eq!(
        by_name("weekly", &latest, &ids).version,
        again.models[0].version
    );

    cp.stop().await.unwrap();
}
