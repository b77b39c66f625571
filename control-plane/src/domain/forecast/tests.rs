use chrono::{DateTime, TimeDelta, Utc};

use super::*;

fn monday() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-03-02T00:00:00Z")
        .unwrap_or_default()
        .to_utc()
}

/// A fixed pseudo-random generator, so every run sees the same series.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) as f64 / f64::from(u32::MAX)
    }
}

/// `days` of hourly aggregates ending at `end`, reads from `f(hour index)`.
fn history(
    end: DateTime<Utc>,
    days: i64,
    mut f: impl FnMut(usize) -> u64,
) -> Vec<(DateTime<Utc>, HourlyAccess)> {
    let start = end - TimeDelta::days(days);
    (0..days as usize * 24)
        .map(|h| {
            let reads = f(h);
            (
                start + TimeDelta::hours(h as i64),
                HourlyAccess {
                    reads,
                    bytes_read: reads.saturating_mul(1_000_000),
                    ..HourlyAccess::default()
                },
            )
        })
        .filter(|(_, a)| a.reads > 0)
        .collect()
}

/// Weekday working hours busy (about 40 reads an hour), nights and weekends quiet.
fn office(noise: &mut Lcg) -> impl FnMut(usize) -> u64 + '_ {
    move |h| {
        let (day, hour) = (h / 24 % 7, h % 24);
        let base = if day < 5 && (9..17).contains(&hour) {
            40.0
        } else {
            0.0
        };
        (base + noise.next() * 8.0).round() as u64
    }
}

#[test]
fn a_weekly_pattern_gets_a_model_that_beats_both_baselines() {
    let now = monday() + TimeDelta::minutes(10);
    let mut noise = Lcg(7);
    let h = history(monday(), 28, office(&mut noise));
    let m = train(DatasetId::new(), &h, now);
    assert_eq!(m.kind, ModelKind::MstlEts, "{}", m.note);
    assert_eq!(m.periods, vec![24, 168]);
    assert!(m.in_use, "{}", m.note);
    let e = m.errors.unwrap_or_else(|| panic!("errors are reported"));
    assert!(e.model < e.seasonal_naive && e.model < e.heuristic, "{e:?}");
    assert_eq!(m.history_hours, 28 * 24);
    assert_eq!(m.version, "mstl+ets/1@20260302T001000.000Z");
    let o = m.outlook(now).unwrap_or_else(|| panic!("in use"));
    // The next busy hour is Monday's first working hour; 40 working hours of about 44
    // reads and 128 quiet hours of about 4 make some 2,270 reads a week.
    assert_eq!(o.next_busy, Some(monday() + TimeDelta::hours(9)), "{o:?}");
    assert!(
        (1_700.0..2_800.0).contains(&o.reads_next_week),
        "{}",
        o.reads_next_week
    );
    assert!((o.bytes_next_week / o.reads_next_week - 1e6).abs() < 1.0);
}

#[test]
fn flat_sparse_and_empty_series_keep_the_recency_rules_and_say_why() {
    let now = monday();
    let flat = train(DatasetId::new(), &history(now, 28, |_| 5), now);
    assert!(!flat.in_use);
    assert!(
        flat.note.ends_with("the recency rules decide"),
        "{}",
        flat.note
    );
    let empty = train(DatasetId::new(), &[], now);
    assert_eq!((empty.kind, empty.in_use), (ModelKind::None, false));
    assert_eq!(
        empty.note,
        "no reads in the last 28 days: nothing to forecast, the recency rules decide"
    );
    let short = train(DatasetId::new(), &history(now, 10, |_| 3), now);
    assert_eq!(
        short.note,
        "10 days of access history, a forecast needs 21: the recency rules decide"
    );
    assert_eq!(short.history_hours, 240);
}

#[test]
fn odd_series_are_trained_without_failing() {
    let now = monday();
    // One spike in four weeks.
    let spike = train(
        DatasetId::new(),
        &history(now, 28, |h| u64::from(h == 300) * 5000),
        now,
    );
    assert!(!spike.note.is_empty());
    // A week of activity, a gap of two weeks, another week.
    let mut noise = Lcg(9);
    let mut office = office(&mut noise);
    let gap = history(now, 28, |h| {
        if (168..504).contains(&h) {
            0
        } else {
            office(h)
        }
    });
    let gapped = train(DatasetId::new(), &gap, now);
    assert!(!gapped.note.is_empty());
    // Reads in the future of `now` and long before the window do not count.
    let mut around = history(now + TimeDelta::days(3), 3, |_| 9);
    around.extend(history(now - TimeDelta::days(60), 3, |_| 9));
    let outside = train(DatasetId::new(), &around, now);
    assert_eq!(outside.history_hours, 0);
}

#[test]
fn an_absurd_count_is_trained_without_panicking() {
    let now = monday();
    let mut noise = Lcg(21);
    let mut office = office(&mut noise);
    // A corrupt aggregate: one hour claims u64::MAX reads.
    let corrupt = train(
        DatasetId::new(),
        &history(now, 28, |h| if h == 200 { u64::MAX } else { office(h) }),
        now,
    );
    assert!(!corrupt.note.is_empty());
    assert!(corrupt
        .forecast
        .iter()
        .all(|f| f.reads.iter().all(|r| r.is_finite())));
}
