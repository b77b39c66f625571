//! Demand models: per dataset, a forecast of hourly reads fitted on its recent access
//! history, back-tested against two baselines before it may be used. A model whose
//! forecast is not better than both on the held-out hours is kept on record (with its
//! errors and the reason) but not used; the recency rules decide for that dataset.
//!
//! Guarantees: training never panics on any series (all zeros, weeks of gaps, a single
//! spike, too little history); the outcome is always a [`Model`] whose `note` says, in
//! plain words, why it is or is not in use.

pub mod fit;
mod outlook;

use chrono::{DateTime, TimeDelta, Utc};

pub use outlook::Outlook;

use super::{
    access::{hour_of, HourlyAccess},
    ids::DatasetId,
};

/// History a model is fitted on. Four weeks hold four weekly cycles; more adds little
/// to an hourly forecast and costs fitting time across thousands of datasets.
pub const TRAIN_DAYS: i64 = 28;
/// History below which no model is fitted: two weekly cycles to learn the week from, plus
/// the held-out days of the back-test.
pub const MIN_HISTORY_DAYS: i64 = 21;
/// Reads below which a history is too sparse to forecast by the hour: one a day.
pub const MIN_READS: f64 = TRAIN_DAYS as f64;
/// How far a forecast reaches.
pub const HORIZON_HOURS: usize = 14 * 24;
/// Back-test origins, in hours before the end of the history; each forecasts the next
/// [`BACKTEST_HORIZON`] hours from what came before it, so together they hold out the
/// last six days. Two fits of three days each cost a third less than three of two, which
/// training 10,000 datasets needs.
const BACKTEST_ORIGINS: [usize; 2] = [144, 72];
const BACKTEST_HORIZON: usize = 72;
/// The seasonal-naive baseline repeats the same hour one week earlier.
const SEASON: usize = 168;
/// The recency baseline carries the mean of the last day forward.
const RECENT: usize = 24;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelKind {
    /// MSTL over the detected seasons, ETS on the trend.
    MstlEts,
    /// ETS alone: no season shows in the history.
    Ets,
    /// Nothing fitted (no history, or too little).
    None,
}

impl ModelKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ModelKind::MstlEts => "mstl+ets",
            ModelKind::Ets => "ets",
            ModelKind::None => "none",
        }
    }

    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "mstl+ets" => Ok(ModelKind::MstlEts),
            "ets" => Ok(ModelKind::Ets),
            "none" => Ok(ModelKind::None),
            other => Err(format!("unknown model kind {other:?}")),
        }
    }
}

/// Mean absolute errors, in reads per hour, over the same held-out hours.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Errors {
    pub model: f64,
    pub seasonal_naive: f64,
    pub heuristic: f64,
}

/// Hourly reads expected from `start` on.
#[derive(Clone, Debug, PartialEq)]
pub struct Forecast {
    pub start: DateTime<Utc>,
    pub reads: Vec<f64>,
    /// Bytes each read transfers, on average over the history: bytes read are forecast
    /// as reads times this.
    pub bytes_per_read: f64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Model {
    pub dataset_id: DatasetId,
    pub version: String,
    pub kind: ModelKind,
    pub periods: Vec<usize>,
    pub errors: Option<Errors>,
    pub in_use: bool,
    pub note: String,
    pub history_hours: u32,
    pub trained_at: DateTime<Utc>,
    /// Present when the model is in use.
    pub forecast: Option<Forecast>,
}

impl Model {
    /// What the model expects from `now` on, when it is in use and its forecast still
    /// reaches past `now`.
    pub fn outlook(&self, now: DateTime<Utc>) -> Option<Outlook> {
        let forecast = self.forecast.as_ref().filter(|_| self.in_use)?;
        Outlook::from_forecast(&self.version, forecast, now)
    }
}

/// The version a model trained at `at` carries; recommendations name it.
pub fn version(kind: ModelKind, at: DateTime<Utc>) -> String {
    format!("{}/1@{}", kind.as_str(), at.format("%Y%m%dT%H%M%S%.3fZ"))
}

/// Trains a model on `history` (hourly aggregates, any order, any range: only the last
/// [`TRAIN_DAYS`] before the current hour count).
pub fn train(
    dataset_id: DatasetId,
    history: &[(DateTime<Utc>, HourlyAccess)],
    now: DateTime<Utc>,
) -> Model {
    let end = hour_of(now);
    let start = end - TimeDelta::days(TRAIN_DAYS);
    let hours: Vec<_> = history
        .iter()
        .filter(|(h, _)| *h >= start && *h < end)
        .collect();
    let first = hours.iter().map(|(h, _)| *h).min();
    let history_hours = first.map_or(0, |f| (end - f).num_hours().max(0) as usize);
    let mut model = Model {
        dataset_id,
        version: version(ModelKind::None, now),
        kind: ModelKind::None,
        periods: Vec::new(),
        errors: None,
        in_use: false,
        note: String::new(),
        history_hours: u32::try_from(history_hours).unwrap_or(u32::MAX),
        trained_at: now,
        forecast: None,
    };
    let mut y = vec![0.0; history_hours];
    let (mut reads, mut bytes) = (0.0, 0.0);
    if let Some(first) = first {
        for (h, a) in &hours {
            let i = (*h - first).num_hours() as usize;
            y[i] += a.reads as f64;
            reads += a.reads as f64;
            bytes += a.bytes_read as f64;
        }
    }
    if reads == 0.0 {
        model.note = format!(
            "no reads in the last {TRAIN_DAYS} days: nothing to forecast, the recency rules decide"
        );
        return model;
    }
    if history_hours < (MIN_HISTORY_DAYS * 24) as usize {
        model.note = format!(
            "{} days of access history, a forecast needs {MIN_HISTORY_DAYS}: the recency rules decide",
            history_hours / 24
        );
        return model;
    }
    if reads < MIN_READS {
        model.note = format!(
            "{reads} reads in {TRAIN_DAYS} days, fewer than one a day: too sparse to forecast by \
             the hour, the recency rules decide"
        );
        return model;
    }
    let fitted = fit::detect_periods(&y).and_then(|periods| {
        let errors = backtest(&y, &periods)?;
        Ok((periods, errors))
    });
    let (periods, errors) = match fitted {
        Ok(fitted) => fitted,
        Err(e) => {
            model.note = format!("fitting failed ({e}): the recency rules decide");
            return model;
        }
    };
    model.kind = if periods.is_empty() {
        ModelKind::Ets
    } else {
        ModelKind::MstlEts
    };
    model.version = version(model.kind, now);
    model.periods = periods;
    model.errors = Some(errors);
    let held_out = BACKTEST_ORIGINS[0] / 24;
    if errors.model >= errors.seasonal_naive || errors.model >= errors.heuristic {
        model.note = format!(
            "on the last {held_out} days held out, the forecast missed by {:.2} reads/h against \
             {:.2} for the same hour a week earlier and {:.2} for the last day's mean: the \
             recency rules decide",
            errors.model, errors.seasonal_naive, errors.heuristic
        );
        return model;
    }
    match fit::fit_predict(&y, &model.periods, HORIZON_HOURS) {
        Ok(reads_ahead) => {
            model.in_use = true;
            model.note = format!(
                "on the last {held_out} days held out, the forecast missed by {:.2} reads/h \
                 against {:.2} for the same hour a week earlier and {:.2} for the last day's mean",
                errors.model, errors.seasonal_naive, errors.heuristic
            );
            model.forecast = Some(Forecast {
                start: end,
                reads: reads_ahead,
                bytes_per_read: bytes / reads,
            });
        }
        Err(e) => model.note = format!("fitting failed ({e}): the recency rules decide"),
    }
    model
}

/// Rolling-origin back-test: from each origin, the model (refitted on what came before),
/// the seasonal-naive forecast and the recency heuristic each forecast the next hours;
/// their mean absolute errors over all those hours.
fn backtest(y: &[f64], periods: &[usize]) -> Result<Errors, String> {
    let (mut model, mut naive, mut recent, mut n) = (0.0, 0.0, 0.0, 0.0);
    for origin in BACKTEST_ORIGINS {
        let cut = y.len() - origin;
        let (train, actual) = (&y[..cut], &y[cut..cut + BACKTEST_HORIZON]);
        let usable: Vec<usize> = periods
            .iter()
            .copied()
            .filter(|p| train.len() > 2 * p)
            .collect();
        let forecast = fit::fit_predict(train, &usable, BACKTEST_HORIZON)?;
        let last_day = train[cut - RECENT..].iter().sum::<f64>() / RECENT as f64;
        for (h, a) in actual.iter().enumerate() {
            model += (forecast[h] - a).abs();
            naive += (train[cut - SEASON + h] - a).abs();
            recent += (last_day - a).abs();
            n += 1.0;
        }
    }
    Ok(Errors {
        model: model / n,
        seasonal_naive: naive / n,
        heuristic: recent / n,
    })
}

#[cfg(test)]
mod tests;
