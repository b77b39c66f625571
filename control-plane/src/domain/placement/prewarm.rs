//! Timing moves against the forecast: how long a move between two sites takes (from the
//! rate completed migrations between them reached), and so when a move back to a hot
//! site must start to be there before a predicted busy period.

use std::{collections::HashMap, time::Duration};

use chrono::{DateTime, Utc};

use crate::domain::{cost::MonthlyDemand, forecast::Outlook, ids::SiteId};

/// The rate assumed between two sites no migration has yet connected: a conservative
/// figure for a single agent copying across a wide-area link.
pub const ASSUMED_RATE: f64 = 50e6;
/// A move is started this much longer before a busy period than its estimated duration,
/// so that a slower run still finishes in time...
const DURATION_MARGIN: f64 = 1.5;
/// ...plus this, for the dispatch, verification and switch around the copy.
const FIXED_LEAD: Duration = Duration::from_secs(3600);
/// A demotion waits when a busy period is forecast within the minimum residency, and
/// never looks less than this far ahead.
pub const MIN_DEMOTION_LOOKAHEAD: Duration = Duration::from_secs(86_400);
const DAYS_PER_MONTH: f64 = 30.0;

/// Bytes per second moves between sites achieved, measured from completed migrations.
#[derive(Clone, Debug, Default)]
pub struct TransferRates {
    measured: HashMap<(SiteId, SiteId), f64>,
}

impl TransferRates {
    pub fn new(measured: HashMap<(SiteId, SiteId), f64>) -> Self {
        TransferRates { measured }
    }

    /// The rate from `from` to `to` and whether it was measured (else assumed).
    pub fn between(&self, from: SiteId, to: SiteId) -> (f64, bool) {
        match self.measured.get(&(from, to)) {
            Some(r) if r.is_finite() && *r > 0.0 => (*r, true),
            _ => (ASSUMED_RATE, false),
        }
    }
}

/// How long moving `bytes` at `rate` takes, and how far ahead of a busy period such a
/// move must start.
pub fn lead_time(bytes: u64, rate: f64) -> (Duration, Duration) {
    let copy = Duration::from_secs_f64(bytes as f64 / rate.max(1.0));
    (copy, copy.mul_f64(DURATION_MARGIN) + FIXED_LEAD)
}

/// Whether `at` falls within `window` of `now` (or already passed).
pub fn due_within(at: DateTime<Utc>, now: DateTime<Utc>, window: Duration) -> bool {
    (at - now).to_std().unwrap_or(Duration::ZERO) <= window
}

impl Outlook {
    /// The forecast's week projected to a month: reads as requests, bytes read.
    pub fn monthly_demand(&self) -> MonthlyDemand {
        let days = self.hours as f64 / 24.0;
        if days <= 0.0 {
            return MonthlyDemand::default();
        }
        let scale = DAYS_PER_MONTH / days;
        MonthlyDemand {
            bytes_read: self.bytes_next_week * scale,
            requests: self.reads_next_week * scale,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lead_time_covers_the_copy_with_a_margin() {
        // 90 GB at 100 MB/s: 15 minutes of copying, started 1h22m30s ahead.
        let (copy, lead) = lead_time(90_000_000_000, 100e6);
        assert_eq!(copy, Duration::from_secs(900));
        assert_eq!(lead, Duration::from_secs(1350 + 3600));
        let rates = TransferRates::new(HashMap::from([((SiteId::new(), SiteId::new()), 5.0)]));
        let (a, b) = (SiteId::new(), SiteId::new());
        assert_eq!(rates.between(a, b), (ASSUMED_RATE, false));
    }
}
