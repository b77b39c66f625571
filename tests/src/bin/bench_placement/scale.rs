//! Training at scale: demand models for every dataset of a seasonal trace with 90 days
//! of hourly history, fitted in parallel on every core as the control plane's training
//! does; then a recommendation for every dataset without forecasts (as before models
//! existed) and with them. Prints the times and the process's peak resident memory.

use std::time::Instant;

use chrono::{DateTime, TimeDelta, Utc};
use ferry_control_plane::domain::{
    cost::MonthlyDemand,
    forecast::{self, Model},
    placement::{recommend, Inputs, TransferRates},
};

use crate::traces::{Shape, Trace};
use crate::{dataset, history, policy, read_bytes, sites};

const HISTORY_DAYS: i64 = 90;
/// Datasets trained together, as the control plane pages through the catalogue.
const PAGE: usize = 1000;
/// Reads an hour across all datasets: enough that most datasets are fitted rather
/// than found too sparse.
const READS_PER_HOUR: f64 = 50_000.0;

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-06-01T06:00:00Z")
        .map(|t| t.to_utc())
        .unwrap_or_default()
}

/// Peak resident set size of this process, from /proc (Linux).
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

pub fn run(datasets: usize, seed: u64) {
    let sites = sites();
    let policy = policy();
    let origin = now() - TimeDelta::days(HISTORY_DAYS);
    let hours = (HISTORY_DAYS * 24) as usize;
    let trace = Trace::new(
        Shape::Seasonal,
        datasets,
        seed,
        READS_PER_HOUR,
        origin,
        HISTORY_DAYS,
    );
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "{datasets} datasets, {HISTORY_DAYS} days of hourly history each (seasonal trace, \
         {READS_PER_HOUR} reads/h in all), {workers} workers"
    );

    // As the control plane trains: a page of datasets at a time, each one's history
    // read from 28 days back (the catalogue holds all 90), fitted on every core.
    let started = Instant::now();
    let mut models: Vec<Model> = Vec::with_capacity(datasets);
    let mut subjects = Vec::with_capacity(datasets);
    let mut fitting = std::time::Duration::ZERO;
    let window = now() - TimeDelta::days(forecast::TRAIN_DAYS);
    for page in (0..datasets).collect::<Vec<_>>().chunks(PAGE) {
        let batch: Vec<_> = page
            .iter()
            .map(|&i| {
                let d = dataset(i, seed, sites[0].id);
                let reads = trace.reads(i, origin, hours);
                let mut h = history(&reads, origin, read_bytes(&d));
                h.retain(|(t, _)| *t >= window);
                (d, h)
            })
            .collect();
        let fit_started = Instant::now();
        let trained: Vec<Model> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..workers)
                .map(|w| {
                    let batch = &batch;
                    scope.spawn(move || {
                        (w..batch.len())
                            .step_by(workers)
                            .map(|i| (i, forecast::train(batch[i].0.id, &batch[i].1, now())))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            let mut all: Vec<(usize, Model)> = handles
                .into_iter()
                .flat_map(|h| {
                    h.join()
                        .unwrap_or_else(|_| panic!("a training worker panicked"))
                })
                .collect();
            all.sort_by_key(|(i, _)| *i);
            all.into_iter().map(|(_, m)| m).collect()
        });
        fitting += fit_started.elapsed();
        models.extend(trained);
        // What a recommendation reads besides the model: the last week.
        for (d, mut h) in batch {
            h.retain(|(t, _)| *t >= now() - TimeDelta::days(7));
            subjects.push((d, h));
        }
    }
    let trained = started.elapsed();
    let in_use = models.iter().filter(|m| m.in_use).count();
    let fitted = models.iter().filter(|m| m.errors.is_some()).count();
    let peak = peak_rss_mib().unwrap_or(f64::NAN);
    println!(
        "trained {datasets} models in {:.1} s, {:.1} s of it fitting, the rest generating \
         their history ({fitted} fitted and back-tested, {in_use} in use); peak RSS {peak:.0} MiB",
        trained.as_secs_f64(),
        fitting.as_secs_f64(),
    );
    println!(
        "target: 10,000 datasets in 2 minutes and 1 GiB: {}",
        if trained.as_secs_f64() <= 120.0 && peak <= 1024.0 {
            "met"
        } else {
            "MISSED"
        }
    );

    // A recommendation for every dataset, without and then with forecasts.
    let rates = TransferRates::default();
    let advise = |with_models: bool| {
        let started = Instant::now();
        let mut moving = 0;
        for (i, (d, h)) in subjects.iter().enumerate() {
            let outlook = if with_models {
                models[i].outlook(now())
            } else {
                None
            };
            let week = h;
            let reads: u64 = week.iter().map(|(_, a)| a.reads).sum();
            let bytes: u64 = week.iter().map(|(_, a)| a.bytes_read).sum();
            let mut d = d.clone();
            d.last_access_at = h.last().map(|(t, _)| *t + TimeDelta::hours(1));
            let advice = recommend(&Inputs {
                dataset: &d,
                sites: &sites,
                policy: Some(&policy),
                demand: MonthlyDemand::project(reads, bytes, 7.0),
                reads_last_hour: 0,
                bytes_read_last_day: 0,
                arrived_at: d.created_at,
                now: now(),
                outlook: outlook.as_ref(),
                rates: &rates,
                trained: with_models,
            });
            moving += usize::from(advice.is_some_and(|a| a.site_id != d.site_id));
        }
        (started.elapsed(), moving)
    };
    // Once to warm caches, then measured: each the best of three.
    advise(false);
    let best = |with_models: bool| {
        (0..3)
            .map(|_| advise(with_models))
            .min_by_key(|(elapsed, _)| *elapsed)
            .unwrap_or_default()
    };
    let (before, moving_before) = best(false);
    let (after, moving_after) = best(true);
    let extra_us = (after.as_secs_f64() - before.as_secs_f64()) * 1e6 / datasets.max(1) as f64;
    println!(
        "the placement code alone, for all {datasets}: {:.0} ms without forecasts \
         ({moving_before} moves), {:.0} ms with them ({moving_after} moves): {extra_us:.1} µs \
         more a dataset (the target is judged through the control plane, below)",
        before.as_secs_f64() * 1000.0,
        after.as_secs_f64() * 1000.0,
    );
}
