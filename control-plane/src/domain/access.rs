//! Access telemetry: validated events and their hourly aggregates.

use std::collections::BTreeMap;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};

use super::ids::DatasetId;
use crate::error::{Error, Result};

/// Events stamped further ahead than this are refused: a clock that far off would make
/// data look hot for hours.
pub const MAX_CLOCK_SKEW: TimeDelta = TimeDelta::minutes(5);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccessOp {
    Read,
    Write,
}

#[derive(Clone, Debug, PartialEq)]
pub struct AccessEvent {
    pub dataset_id: DatasetId,
    pub op: AccessOp,
    pub bytes: u64,
    pub latency_ms: f64,
    pub time: DateTime<Utc>,
    pub client_id: String,
    pub event_id: String,
}

/// Checks an event's figures; `field` prefixes the names in errors (`events[3]`).
pub fn validate(
    field: &str,
    bytes: i64,
    latency_ms: f64,
    time: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<u64> {
    let bytes = u64::try_from(bytes).map_err(|_| {
        Error::invalid(
            format!("{field}.bytes"),
            format!("must not be negative, got {bytes}"),
        )
    })?;
    if !latency_ms.is_finite() || latency_ms < 0.0 {
        return Err(Error::invalid(
            format!("{field}.latency_ms"),
            format!("must be a non-negative number, got {latency_ms}"),
        ));
    }
    if time > now + MAX_CLOCK_SKEW {
        return Err(Error::invalid(
            format!("{field}.time"),
            format!(
                "{time} is more than {} minutes in the future",
                MAX_CLOCK_SKEW.num_minutes()
            ),
        ));
    }
    Ok(bytes)
}

/// One dataset's accesses in one hour.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct HourlyAccess {
    pub reads: u64,
    pub writes: u64,
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub latency_ms_sum: f64,
}

pub fn hour_of(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_trunc(TimeDelta::hours(1)).unwrap_or(t)
}

/// Folds events into per-(dataset, hour) aggregates and each dataset's latest access.
#[derive(Debug, Default)]
pub struct Fold {
    pub hours: BTreeMap<(DatasetId, DateTime<Utc>), HourlyAccess>,
    pub last_access: BTreeMap<DatasetId, DateTime<Utc>>,
}

impl Fold {
    pub fn add(&mut self, e: &AccessEvent) {
        let h = self
            .hours
            .entry((e.dataset_id, hour_of(e.time)))
            .or_default();
        match e.op {
            AccessOp::Read => {
                h.reads += 1;
                h.bytes_read += e.bytes;
            }
            AccessOp::Write => {
                h.writes += 1;
                h.bytes_written += e.bytes;
            }
        }
        h.latency_ms_sum += e.latency_ms;
        let last = self.last_access.entry(e.dataset_id).or_insert(e.time);
        if e.time > *last {
            *last = e.time;
        }
    }

    pub fn is_empty(&self) -> bool {
        self.hours.is_empty()
    }

    /// Keeps only the datasets `keep` accepts; returns how many events were let go.
    pub fn retain_datasets(&mut self, keep: impl Fn(&DatasetId) -> bool) -> u64 {
        let mut dropped = 0;
        self.hours.retain(|(d, _), h| {
            let kept = keep(d);
            if !kept {
                dropped += h.reads + h.writes;
            }
            kept
        });
        self.last_access.retain(|d, _| keep(d));
        dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_fold_into_hours() {
        let d = DatasetId::new();
        let t = DateTime::parse_from_rfc3339("2026-11-22T10:15:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let event = |op, bytes, minutes| AccessEvent {
            dataset_id: d,
            op,
            bytes,
            latency_ms: 2.0,
            time: t + TimeDelta::minutes(minutes),
            client_id: "c".into(),
            event_id: "e".into(),
        };
        let mut fold = Fold::default();
        fold.add(&event(AccessOp::Read, 100, 0));
        fold.add(&event(AccessOp::Write, 50, 10));
        fold.add(&event(AccessOp::Read, 7, 60));
        let ten = hour_of(t);
        assert_eq!(
            fold.hours[&(d, ten)],
            HourlyAccess {
                reads: 1,
                writes: 1,
                bytes_read: 100,
                bytes_written: 50,
                latency_ms_sum: 4.0
            }
        );
        assert_eq!(fold.hours[&(d, ten + TimeDelta::hours(1))].reads, 1);
        assert_eq!(fold.last_access[&d], t + TimeDelta::minutes(60));
    }

    #[test]
    fn bad_figures_name_the_field() {
        let now = Utc::now();
        let err = validate("events[2]", -1, 0.0, now, now)
            .unwrap_err()
            .to_string();
        assert_eq!(err, "events[2].bytes: must not be negative, got -1");
        assert!(validate("e", 1, f64::NAN, now, now).is_err());
        let err = validate("e", 1, 0.0, now + TimeDelta::hours(1), now)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("e.time: "), "{err}");
    }
}
