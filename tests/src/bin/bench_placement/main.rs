//! Placement benchmark: replays synthetic access traces of named shapes (see `traces`)
//! through the what-if replay — the same code as `WhatIf` and live recommendations —
//! and prints, per trace, the cost, the reads that missed a latency objective and the
//! moves of Ferry (the policy with demand forecasts), the recency rule (the same policy
//! without them) and an Intelligent-Tiering-style rule, against the targets:
//!
//! - `seasonal` and `month-end`: Ferry's total cost at least 20% below the
//!   Intelligent-Tiering rule's, with no more slow reads;
//! - `random`: Ferry no more than 5% above the better of the two baselines.
//!
//! With `--scale`, it instead measures training demand models for every dataset on 90
//! days of hourly history (time and peak memory), and how much longer a recommendation
//! for every dataset takes once forecasts are in use: in the placement code alone, and
//! through an in-process control plane (`GetRecommendations` before and after
//! `TrainModels`).
//!
//!     cargo run --release -p ferry-tests --bin ferry-bench-placement -- [--datasets N]

mod scale;
mod service;
mod traces;

use std::{collections::BTreeMap, time::Instant};

use chrono::{DateTime, TimeDelta, Utc};
use ferry_control_plane::domain::{
    access::HourlyAccess,
    dataset::{Dataset, DatasetPath},
    ids::{DatasetId, SiteId},
    labels::Labels,
    name::Name,
    placement::TransferRates,
    policy::PolicySpec,
    site::{Prices, Site},
    tier::Tier,
    whatif::{replay, Outcome, Scenario, Strategy, Subject, LOOKBACK_DAYS},
};
use traces::{Rng, Shape, Trace};

/// Replays synthetic access traces under Ferry's placement (with demand forecasts), the
/// recency rule and an Intelligent-Tiering-style rule, and prints cost, slow reads and
/// moves against the targets; or, with --scale, measures training at scale.
#[derive(clap::Parser)]
#[command(name = "ferry-bench-placement")]
struct Args {
    /// Datasets in each trace, their popularity Zipf-distributed
    #[arg(long, default_value_t = 10_000)]
    datasets: usize,
    /// Days replayed (after 28 days of history the rules and models start from)
    #[arg(long, default_value_t = 60)]
    days: i64,
    /// Reads an hour across all datasets, on average
    #[arg(long, default_value_t = 2_000.0)]
    reads_per_hour: f64,
    /// The traces to replay; all when not given
    #[arg(long = "trace", value_enum)]
    traces: Vec<Shape>,
    /// How often Ferry's demand models are retrained in the replay, in days
    #[arg(long, default_value_t = 7)]
    retrain_days: i64,
    /// Seed of every random draw: the same seed replays the same traces
    #[arg(long, default_value_t = 20_261_205)]
    seed: u64,
    /// Measure training and recommending at scale instead of replaying
    #[arg(long)]
    scale: bool,
    /// With --scale: datasets recommended through an in-process control plane, before
    /// and after training
    #[arg(long, default_value_t = 1_000)]
    service_datasets: usize,
}

/// The replay starts on a Monday.
fn start() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-03-02T00:00:00Z")
        .map(|t| t.to_utc())
        .unwrap_or_default()
}

/// Three storage classes of one cloud: no egress between them, retrieval fees and
/// minimum storage durations on the colder two, and an archive too slow for a 50 ms
/// objective.
pub fn sites() -> Vec<Site> {
    let site = |name: &str, tier, latency_ms, prices| Site {
        id: SiteId::new(),
        name: Name::parse("name", name).unwrap_or_else(|e| panic!("{e}")),
        uri: ferry_storage::SiteUri::parse("memory://").unwrap_or_else(|e| panic!("{e}")),
        options: BTreeMap::new(),
        tier,
        default_storage_class: String::new(),
        latency_ms,
        prices,
        bandwidth_limit: None,
        credential_keys: Vec::new(),
        created_at: start(),
        updated_at: start(),
    };
    vec![
        site(
            "standard",
            Tier::Hot,
            10,
            Prices {
                storage_per_gb_month: 0.023,
                per_1000_requests: 0.0004,
                ..Prices::default()
            },
        ),
        site(
            "infrequent",
            Tier::Warm,
            20,
            Prices {
                storage_per_gb_month: 0.0125,
                retrieval_per_gb: 0.01,
                per_1000_requests: 0.001,
                min_storage_days: 30,
                ..Prices::default()
            },
        ),
        site(
            "archive",
            Tier::Cold,
            150,
            Prices {
                storage_per_gb_month: 0.004,
                retrieval_per_gb: 0.03,
                per_1000_requests: 0.01,
                min_storage_days: 90,
                ..Prices::default()
            },
        ),
    ]
}

/// The policy Ferry and the recency rule replay: hot for a day after a read, warm for
/// two weeks, at least a week on a site.
pub fn policy() -> PolicySpec {
    PolicySpec {
        hot_after: std::time::Duration::from_secs(86_400),
        warm_after: std::time::Duration::from_secs(14 * 86_400),
        min_residency: std::time::Duration::from_secs(7 * 86_400),
        ..PolicySpec::default()
    }
}

/// Dataset `index` of a trace: 1 GB to 1 TB (log-uniform), one in four with a 50 ms
/// latency objective, on the standard class for four months.
pub fn dataset(index: usize, seed: u64, site: SiteId) -> Dataset {
    let mut rng = Rng::new(
        seed.wrapping_add(index as u64)
            .wrapping_mul(0x2545_F491_4F6C_DD1D),
    );
    let size_bytes = 10f64.powf(9.0 + 3.0 * rng.unit()) as u64;
    let at = start() - TimeDelta::days(120);
    Dataset {
        id: DatasetId::new(),
        name: Name::parse("name", &format!("d{index}")).unwrap_or_else(|e| panic!("{e}")),
        site_id: site,
        path: DatasetPath::parse("path", &format!("d{index}")).unwrap_or_else(|e| panic!("{e}")),
        current_tier: Tier::Hot,
        latency_slo_ms: (rng.unit() < 0.25).then_some(50),
        size_bytes,
        object_count: (size_bytes / 64_000_000).max(1),
        owner: String::new(),
        labels: Labels::default(),
        last_access_at: None,
        created_at: at,
        updated_at: at,
    }
}

/// Bytes one read transfers: a 256 MB slice, or the whole of a smaller dataset.
pub fn read_bytes(d: &Dataset) -> u64 {
    d.size_bytes.min(256_000_000)
}

/// Hourly aggregates from a trace's reads, as the catalogue stores them.
pub fn history(
    reads: &[u64],
    origin: DateTime<Utc>,
    bytes_each: u64,
) -> Vec<(DateTime<Utc>, HourlyAccess)> {
    reads
        .iter()
        .enumerate()
        .filter(|(_, r)| **r > 0)
        .map(|(h, r)| {
            (
                origin + TimeDelta::hours(h as i64),
                HourlyAccess {
                    reads: *r,
                    bytes_read: r * bytes_each,
                    ..HourlyAccess::default()
                },
            )
        })
        .collect()
}

fn run_trace(args: &Args, shape: Shape, sites: &[Site]) -> (Vec<Outcome>, u64) {
    let trace = Trace::new(
        shape,
        args.datasets,
        args.seed,
        args.reads_per_hour,
        start(),
        args.days,
    );
    let end = start() + TimeDelta::days(args.days);
    let origin = start() - TimeDelta::days(LOOKBACK_DAYS);
    let hours = usize::try_from((end - origin).num_hours()).unwrap_or(0);
    let rates = TransferRates::default();
    let scenario = Scenario {
        sites,
        start: start(),
        end,
        step_hours: 1,
        retrain_every: TimeDelta::days(args.retrain_days),
        rates: &rates,
    };
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let policy = policy();
    let results: Vec<(Vec<Outcome>, u64)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|w| {
                let (trace, scenario, policy) = (&trace, &scenario, &policy);
                scope.spawn(move || {
                    let mut totals: Vec<Outcome> =
                        Strategy::ALL.into_iter().map(Outcome::new).collect();
                    let mut reads = 0;
                    for index in (w..trace.datasets).step_by(workers) {
                        let d = dataset(index, trace.seed, sites[0].id);
                        let hourly = trace.reads(index, origin, hours);
                        let lookback = (LOOKBACK_DAYS * 24) as usize;
                        reads += hourly[lookback..].iter().sum::<u64>();
                        let subject = Subject {
                            history: history(&hourly, origin, read_bytes(&d)),
                            policy: Some(policy.clone()),
                            start_site: sites[0].id,
                            arrived_at: d.created_at,
                            actual_moves: Vec::new(),
                            dataset: d,
                        };
                        if let Some(outcomes) = replay(scenario, &subject) {
                            for (t, o) in totals.iter_mut().zip(&outcomes) {
                                t.add(o);
                            }
                        }
                    }
                    (totals, reads)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| panic!("a replay worker panicked"))
            })
            .collect()
    });
    let mut totals: Vec<Outcome> = Strategy::ALL.into_iter().map(Outcome::new).collect();
    let mut reads = 0;
    for (outcomes, r) in results {
        reads += r;
        for (t, o) in totals.iter_mut().zip(&outcomes) {
            t.add(o);
        }
    }
    (totals, reads)
}

fn label(s: Strategy) -> &'static str {
    match s {
        Strategy::Actual => "static (all standard)",
        Strategy::Ferry => "ferry",
        Strategy::Recency => "recency rule",
        Strategy::IntelligentTiering => "intelligent-tiering",
    }
}

fn report(shape: Shape, outcomes: &[Outcome]) -> String {
    let get = |s: Strategy| outcomes.iter().find(|o| o.strategy == s);
    let (Some(ferry), Some(recency), Some(it)) = (
        get(Strategy::Ferry),
        get(Strategy::Recency),
        get(Strategy::IntelligentTiering),
    ) else {
        return "target: no outcome".into();
    };
    match shape {
        Shape::Seasonal | Shape::MonthEnd => {
            let ratio = ferry.total() / it.total();
            let met = ratio <= 0.8 && ferry.slow_reads <= it.slow_reads;
            format!(
                "target: ferry ≤ 0.80 × intelligent-tiering and no more slow reads: \
                 {ratio:.3}×, {} vs {} slow reads: {}",
                ferry.slow_reads,
                it.slow_reads,
                if met { "met" } else { "MISSED" }
            )
        }
        Shape::Random => {
            let better = recency.total().min(it.total());
            let ratio = ferry.total() / better;
            format!(
                "target: ferry ≤ 1.05 × the better baseline (${better:.2}): {ratio:.3}×: {}",
                if ratio <= 1.05 { "met" } else { "MISSED" }
            )
        }
        Shape::Shifts => "no target: shown for how each rule follows sudden shifts".into(),
    }
}

fn main() {
    let args: Args = clap::Parser::parse();
    if args.scale {
        scale::run(args.datasets, args.seed);
        let runtime = tokio::runtime::Runtime::new().unwrap_or_else(|e| panic!("runtime: {e}"));
        runtime.block_on(service::run(args.service_datasets, args.seed));
        return;
    }
    let sites = sites();
    let shapes = if args.traces.is_empty() {
        Shape::ALL.to_vec()
    } else {
        args.traces.clone()
    };
    println!(
        "{} datasets, {} days replayed after {LOOKBACK_DAYS} of history, {} reads/h on \
         average, models retrained every {} days, seed {}",
        args.datasets, args.days, args.reads_per_hour, args.retrain_days, args.seed
    );
    for shape in shapes {
        let started = Instant::now();
        let (outcomes, reads) = run_trace(&args, shape, &sites);
        println!(
            "\n{} — {reads} reads, replayed in {:.1} s",
            shape.name(),
            started.elapsed().as_secs_f64()
        );
        println!(
            "{:<22} {:>12} {:>12} {:>12} {:>10} {:>10} {:>7} {:>11}",
            "STRATEGY",
            "TOTAL",
            "STORAGE",
            "RETRIEVAL",
            "REQUESTS",
            "MOVES ($)",
            "MOVES",
            "SLOW READS"
        );
        for o in &outcomes {
            println!(
                "{:<22} {:>12.2} {:>12.2} {:>12.2} {:>10.2} {:>10.2} {:>7} {:>11}",
                label(o.strategy),
                o.total(),
                o.storage,
                o.retrieval,
                o.requests,
                o.move_cost,
                o.moves,
                o.slow_reads
            );
        }
        println!("{}", report(shape, &outcomes));
    }
}
