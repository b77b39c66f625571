//! What a forecast says about the days ahead, in the terms placement decides on: how
//! many reads the next week holds, when the busiest hour is, and when the next busy
//! period begins.

use chrono::{DateTime, TimeDelta, Utc};

use super::Forecast;
use crate::domain::access::hour_of;

/// An hour counts as busy when it is expected to see at least one read and at least half
/// the reads of the busiest hour ahead.
const BUSY_SHARE_OF_PEAK: f64 = 0.5;
const MIN_BUSY_READS: f64 = 1.0;
const WEEK_HOURS: usize = 168;

#[derive(Clone, Debug, PartialEq)]
pub struct Outlook {
    /// The model version the outlook comes from.
    pub version: String,
    /// Reads expected over the next seven days (or what is left of the forecast).
    pub reads_next_week: f64,
    /// Bytes expected to be read over the same hours.
    pub bytes_next_week: f64,
    /// Hours the figures above cover (168 unless the forecast ends sooner).
    pub hours: usize,
    /// The busiest hour ahead within the forecast, with its expected reads.
    pub peak: Option<(DateTime<Utc>, f64)>,
    /// The first busy hour from now on (now, when the current hour is busy).
    pub next_busy: Option<DateTime<Utc>>,
    /// The hour by whose end the forecast expects the next read (reads summed from now
    /// reach one).
    pub next_read: Option<DateTime<Utc>>,
}

impl Outlook {
    /// `None` when the forecast no longer reaches past `now` (the model is stale).
    pub fn from_forecast(version: &str, f: &Forecast, now: DateTime<Utc>) -> Option<Outlook> {
        let from = hour_of(now);
        let skip = usize::try_from((from - f.start).num_hours()).unwrap_or(0);
        let ahead = f.reads.get(skip..).filter(|a| !a.is_empty())?;
        let at = |i: usize| from + TimeDelta::hours(i as i64);
        let week = &ahead[..ahead.len().min(WEEK_HOURS)];
        let reads_next_week: f64 = week.iter().sum();
        let peak = ahead
            .iter()
            .enumerate()
            .filter(|(_, r)| **r >= MIN_BUSY_READS)
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(i, r)| (at(i), *r));
        let next_busy = peak.and_then(|(_, top)| {
            let busy = (top * BUSY_SHARE_OF_PEAK).max(MIN_BUSY_READS);
            ahead.iter().position(|r| *r >= busy).map(at)
        });
        let next_read = ahead
            .iter()
            .scan(0.0, |sum, r| {
                *sum += r;
                Some(*sum)
            })
            // Hundredths of a read are noise; 0.1 ten times is a read.
            .position(|sum| sum >= 1.0 - 1e-9)
            .map(at);
        Some(Outlook {
            version: version.to_owned(),
            reads_next_week,
            bytes_next_week: reads_next_week * f.bytes_per_read,
            hours: week.len(),
            peak,
            next_busy,
            next_read,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap_or_default().to_utc()
    }

    #[test]
    fn the_outlook_starts_at_the_current_hour() {
        // Busy at hours 30..34 of the forecast, peak at 32.
        let mut reads = vec![0.2; 336];
        for (h, r) in [(30, 10.0), (31, 30.0), (32, 40.0), (33, 10.0)] {
            reads[h] = r;
        }
        let f = Forecast {
            start: at("2026-03-02T00:00:00Z"),
            reads,
            bytes_per_read: 1000.0,
        };
        let o = Outlook::from_forecast("v", &f, at("2026-03-02T10:20:00Z"))
            .unwrap_or_else(|| panic!("the forecast reaches past now"));
        assert_eq!(o.hours, 168);
        assert_eq!(o.peak, Some((at("2026-03-03T08:00:00Z"), 40.0)));
        assert_eq!(o.next_busy, Some(at("2026-03-03T07:00:00Z")));
        // 0.2 reads an hour add up to one read in five hours.
        assert_eq!(o.next_read, Some(at("2026-03-02T14:00:00Z")));
        let expected = 0.2 * 164.0 + 90.0;
        assert!(
            (o.reads_next_week - expected).abs() < 1e-6,
            "{}",
            o.reads_next_week
        );
        assert!((o.bytes_next_week - expected * 1000.0).abs() < 1e-3);
        assert_eq!(
            Outlook::from_forecast("v", &f, at("2026-03-20T00:00:00Z")),
            None
        );
        // A quiet forecast has no peak and no busy hour.
        let quiet = Forecast {
            reads: vec![0.1; 336],
            ..f
        };
        let o = Outlook::from_forecast("v", &quiet, at("2026-03-02T00:00:00Z"))
            .unwrap_or_else(|| panic!("the forecast reaches past now"));
        assert_eq!((o.peak, o.next_busy), (None, None));
        assert_eq!(o.next_read, Some(at("2026-03-02T09:00:00Z")));
    }
}
