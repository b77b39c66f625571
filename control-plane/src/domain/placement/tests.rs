use std::collections::BTreeMap;

use chrono::TimeDelta;

use super::*;
use crate::domain::forecast::Outlook;
use crate::domain::{
    dataset::DatasetPath, ids::DatasetId, labels::Labels, name::Name, site::Prices,
};

fn site(name: &str, tier: Tier, latency_ms: u32, storage: f64) -> Site {
    let now = Utc::now();
    Site {
        id: SiteId::new(),
        name: Name::parse("name", name).unwrap(),
        uri: ferry_storage::SiteUri::parse("memory://").unwrap(),
        options: BTreeMap::new(),
        tier,
        default_storage_class: String::new(),
        latency_ms,
        prices: Prices {
            storage_per_gb_month: storage,
            ..Prices::default()
        },
        bandwidth_limit: None,
        credential_keys: Vec::new(),
        created_at: now,
        updated_at: now,
    }
}

fn dataset(on: &Site, last_access: Option<DateTime<Utc>>, slo: Option<u32>) -> Dataset {
    let now = Utc::now();
    Dataset {
        id: DatasetId::new(),
        name: Name::parse("name", "d").unwrap(),
        site_id: on.id,
        path: DatasetPath::parse("path", "d").unwrap(),
        current_tier: on.tier,
        latency_slo_ms: slo,
        size_bytes: 10_000_000_000,
        object_count: 100,
        owner: String::new(),
        labels: Labels::default(),
        last_access_at: last_access,
        created_at: now,
        updated_at: now,
    }
}

fn no_rates() -> &'static TransferRates {
    static RATES: std::sync::OnceLock<TransferRates> = std::sync::OnceLock::new();
    RATES.get_or_init(TransferRates::default)
}

/// No policy, no demand, on its site for 30 days.
fn inputs<'a>(d: &'a Dataset, sites: &'a [Site], now: DateTime<Utc>) -> Inputs<'a> {
    Inputs {
        dataset: d,
        sites,
        policy: None,
        demand: MonthlyDemand::default(),
        reads_last_hour: 0,
        bytes_read_last_day: 0,
        arrived_at: now - TimeDelta::days(30),
        now,
        outlook: None,
        rates: no_rates(),
        trained: false,
    }
}

fn advise(d: &Dataset, sites: &[Site], policy: Option<&PolicySpec>, now: DateTime<Utc>) -> Advice {
    recommend(&Inputs {
        policy,
        ..inputs(d, sites, now)
    })
    .unwrap()
}

#[test]
fn recency_picks_the_tier_and_the_cheapest_site_of_it() {
    let now = Utc::now();
    let sites = vec![
        site("fast", Tier::Hot, 2, 0.02),
        site("archive", Tier::Cold, 200, 0.004),
    ];
    let idle = dataset(&sites[0], Some(now - TimeDelta::hours(1)), None);
    let advice = advise(&idle, &sites, None, now);
    assert_eq!((advice.tier, advice.site_id), (Tier::Cold, sites[1].id));
    assert!(advice.cost.monthly_after < advice.cost.monthly_now);
    // Back to the hot site under a policy that places hot data there.
    let fresh = dataset(&sites[1], Some(now - TimeDelta::seconds(5)), None);
    let policy = PolicySpec {
        placements: BTreeMap::from([(Tier::Hot, sites[0].id)]),
        ..PolicySpec::default()
    };
    let advice = advise(&fresh, &sites, Some(&policy), now);
    assert_eq!((advice.tier, advice.site_id), (Tier::Hot, sites[0].id));
    assert!(
        advice.reasons[0]
            .message
            .starts_with("last accessed 5s ago: hot"),
        "{:?}",
        advice.reasons
    );
    assert!(
        advice.reasons.iter().any(|r| r.code == "policy_requires"
            && r.message
                == "$0.2000 a month on fast against $0.0400 on archive, but the policy places hot data there"),
        "{:?}",
        advice.reasons
    );
}

#[test]
fn a_costlier_site_needs_an_objective_or_a_policy() {
    let now = Utc::now();
    let sites = vec![
        site("fast", Tier::Hot, 2, 0.02),
        site("archive", Tier::Cold, 200, 0.004),
    ];
    // Recency alone says hot, but nothing asks for the speed that costs five times more.
    let fresh = dataset(&sites[1], Some(now - TimeDelta::seconds(5)), None);
    let advice = advise(&fresh, &sites, None, now);
    assert_eq!(advice.site_id, sites[1].id);
    assert!(
        advice.reasons.iter().any(|r| r.code == "cost_guard"
            && r.message
                == "$0.2000 a month on fast against $0.0400 on archive, and neither a latency \
                    objective nor a policy requires the move: staying"),
        "{:?}",
        advice.reasons
    );
    // A 50 ms objective the archive misses does.
    let strict = dataset(&sites[1], Some(now - TimeDelta::seconds(5)), Some(50));
    let advice = advise(&strict, &sites, None, now);
    assert_eq!(advice.site_id, sites[0].id);
    assert!(
        advice
            .reasons
            .iter()
            .any(|r| r.code == "latency_slo_requires"
                && r.message
                    .ends_with("but archive answers in 200 ms, slower than the 50 ms objective")),
        "{:?}",
        advice.reasons
    );
}

#[test]
fn a_latency_objective_keeps_data_off_slow_sites() {
    let now = Utc::now();
    let sites = vec![
        site("fast", Tier::Hot, 2, 0.02),
        site("archive", Tier::Cold, 200, 0.004),
    ];
    let idle = dataset(&sites[0], Some(now - TimeDelta::hours(5)), Some(20));
    let advice = advise(&idle, &sites, None, now);
    assert_eq!(
        advice.site_id, sites[0].id,
        "the 200 ms archive breaks the 20 ms objective"
    );
    assert!(advice.reasons.iter().any(|r| r.code == "latency_slo"
        && r.message
            == "archive answers in 200 ms, slower than the 20 ms objective: not a candidate"));
}

#[test]
fn a_dataset_read_through_daily_stays_warm() {
    let now = Utc::now();
    let sites = vec![
        site("fast", Tier::Hot, 2, 0.02),
        site("nearline", Tier::Warm, 20, 0.01),
        site("archive", Tier::Cold, 200, 0.004),
    ];
    let scanned = dataset(&sites[0], Some(now - TimeDelta::hours(2)), None);
    let advice = recommend(&Inputs {
        bytes_read_last_day: 15_000_000_000,
        ..inputs(&scanned, &sites, now)
    })
    .unwrap();
    assert_eq!((advice.tier, advice.site_id), (Tier::Warm, sites[1].id));
    assert!(
        advice.reasons.iter().any(|r| r.code == "read_volume"
            && r.message == "15.0 GB read in the last day, 1.5× its size: keeps it at least warm"),
        "{:?}",
        advice.reasons
    );
}

#[test]
fn retrieval_fees_can_make_a_colder_site_no_saving() {
    let now = Utc::now();
    let mut archive = site("archive", Tier::Cold, 200, 0.004);
    archive.prices.retrieval_per_gb = 0.03;
    let sites = vec![site("fast", Tier::Hot, 2, 0.02), archive];
    let idle = dataset(&sites[0], Some(now - TimeDelta::hours(2)), None);
    // 10 GB at 0.02 = $0.20 on fast; 10 GB at 0.004 + 100 GB read at 0.03 = $3.04.
    let advice = recommend(&Inputs {
        demand: MonthlyDemand {
            bytes_read: 100e9,
            requests: 0.0,
        },
        ..inputs(&idle, &sites, now)
    })
    .unwrap();
    assert_eq!(advice.site_id, sites[0].id);
    assert!(
        advice.reasons.iter().any(|r| r.code == "retrieval_cost"
            && r.message
                == "reading 100.0 GB a month would cost $3.04 a month on archive against $0.2000 on fast: staying"),
        "{:?}",
        advice.reasons
    );
    assert!((advice.cost.monthly_now - 0.2).abs() < 1e-9);
}

#[test]
fn minimum_residency_prevents_flapping() {
    let now = Utc::now();
    let sites = vec![
        site("fast", Tier::Hot, 2, 0.02),
        site("archive", Tier::Cold, 200, 0.004),
    ];
    let idle = dataset(&sites[0], Some(now - TimeDelta::hours(1)), None);
    let policy = PolicySpec {
        min_residency: Duration::from_secs(7 * 86_400),
        ..PolicySpec::default()
    };
    let advice = recommend(&Inputs {
        policy: Some(&policy),
        arrived_at: now - TimeDelta::days(1),
        ..inputs(&idle, &sites, now)
    })
    .unwrap();
    assert_eq!(advice.site_id, sites[0].id);
    assert!(
        advice.reasons.iter().any(|r| r.code == "min_residency"),
        "{:?}",
        advice.reasons
    );
}

fn outlook(now: DateTime<Utc>, busy_in: TimeDelta) -> Outlook {
    let busy = now + busy_in;
    Outlook {
        version: "mstl+ets/1@20260302T000000.000Z".into(),
        reads_next_week: 1240.0,
        bytes_next_week: 1240.0 * 1e6,
        hours: 168,
        peak: Some((busy + TimeDelta::hours(1), 58.0)),
        next_busy: Some(busy),
        next_read: Some(busy),
    }
}

#[test]
fn a_forecast_busy_period_brings_data_back_in_time() {
    let now = DateTime::parse_from_rfc3339("2026-03-02T06:30:00Z")
        .unwrap()
        .to_utc();
    let sites = vec![
        site("fast", Tier::Hot, 2, 0.02),
        site("archive", Tier::Cold, 200, 0.004),
    ];
    // The policy places hot data on fast: a move there is worth its higher price.
    let policy = PolicySpec {
        placements: BTreeMap::from([(Tier::Hot, sites[0].id)]),
        ..PolicySpec::default()
    };
    let idle = dataset(&sites[1], Some(now - TimeDelta::days(6)), None);
    // 10 GB at the assumed 50 MB/s: 200 s of copying, so the move starts 1h05m ahead.
    let later = outlook(now, TimeDelta::hours(2) + TimeDelta::minutes(30));
    let advice = recommend(&Inputs {
        policy: Some(&policy),
        outlook: Some(&later),
        ..inputs(&idle, &sites, now)
    })
    .unwrap();
    assert_eq!(advice.site_id, sites[1].id, "{:?}", advice.reasons);
    let forecast = advice
        .reasons
        .iter()
        .find(|r| r.code == "forecast")
        .unwrap();
    assert_eq!(
        forecast.message,
        "expected 1,240 reads over the next 7 days, peak Monday 10:00 UTC (58 reads/h) \
         (model mstl+ets/1@20260302T000000.000Z)"
    );
    assert!(
        advice.reasons.iter().any(|r| r.code == "prewarm_planned"
            && r.message
                == "a busy period is forecast from Monday 09:00 UTC; moving 10.0 GB to fast at \
                    the assumed 50.0 MB/s takes about 3m: the move back is due from Monday \
                    07:55 UTC"),
        "{:?}",
        advice.reasons
    );
    // Within the lead time the move is advised, timed by the measured rate.
    let soon = outlook(now, TimeDelta::minutes(50));
    let rates = TransferRates::new(std::collections::HashMap::from([(
        (sites[1].id, sites[0].id),
        20e6,
    )]));
    let advice = recommend(&Inputs {
        policy: Some(&policy),
        outlook: Some(&soon),
        rates: &rates,
        ..inputs(&idle, &sites, now)
    })
    .unwrap();
    assert_eq!((advice.tier, advice.site_id), (Tier::Hot, sites[0].id));
    assert!(
        advice.reasons.iter().any(|r| r.code == "prewarm"
            && r.message
                == "a busy period is forecast from Monday 07:20 UTC, in 50m; moving 10.0 GB to \
                    fast at the measured 20.0 MB/s takes about 8m: moving now so it is there in \
                    time"),
        "{:?}",
        advice.reasons
    );
}

#[test]
fn demotion_waits_for_a_forecast_busy_period() {
    let now = Utc::now();
    let sites = vec![
        site("fast", Tier::Hot, 2, 0.02),
        site("archive", Tier::Cold, 200, 0.004),
    ];
    let idle = dataset(&sites[0], Some(now - TimeDelta::hours(3)), None);
    let tomorrow = outlook(now, TimeDelta::hours(20));
    let advice = recommend(&Inputs {
        outlook: Some(&tomorrow),
        ..inputs(&idle, &sites, now)
    })
    .unwrap();
    assert_eq!(advice.site_id, sites[0].id);
    assert!(
        advice
            .reasons
            .iter()
            .any(|r| r.code == "forecast_peak" && r.message.contains("within the 24h a demotion")),
        "{:?}",
        advice.reasons
    );
    // A busy period next week does not hold it back.
    let next_week = outlook(now, TimeDelta::days(6));
    let advice = recommend(&Inputs {
        outlook: Some(&next_week),
        ..inputs(&idle, &sites, now)
    })
    .unwrap();
    assert_eq!(advice.site_id, sites[1].id, "{:?}", advice.reasons);
}

#[test]
fn a_demotion_must_pay_for_the_round_trip_before_the_busy_period() {
    let now = Utc::now();
    let mut archive = site("archive", Tier::Cold, 200, 0.004);
    archive.prices.retrieval_per_gb = 0.03;
    let sites = vec![site("fast", Tier::Hot, 2, 0.02), archive];
    let idle = dataset(&sites[0], Some(now - TimeDelta::days(3)), None);
    // 10 GB: $0.20 a month on fast, $0.04 on the archive, no forecast reads priced in
    // (the outlook's bytes are tiny): $0.16 a month saved, about $0.016 in three days;
    // coming back retrieves 10 GB at $0.03, $0.30.
    let mut soon = outlook(now, TimeDelta::days(3));
    soon.bytes_next_week = 0.0;
    // The policy places hot data on fast: a read brings the data back.
    let policy = PolicySpec {
        placements: BTreeMap::from([(Tier::Hot, sites[0].id)]),
        ..PolicySpec::default()
    };
    let advice = recommend(&Inputs {
        policy: Some(&policy),
        outlook: Some(&soon),
        trained: true,
        ..inputs(&idle, &sites, now)
    })
    .unwrap();
    assert_eq!(advice.site_id, sites[0].id, "{:?}", advice.reasons);
    let reason = advice
        .reasons
        .iter()
        .find(|r| r.code == "forecast_payback")
        .unwrap();
    assert!(
        reason
            .message
            .starts_with("archive would save $0.0160 until the next read forecast")
            && reason
                .message
                .ends_with("less than the $0.3000 of moving there and back: staying on fast"),
        "{}",
        reason.message
    );
}
