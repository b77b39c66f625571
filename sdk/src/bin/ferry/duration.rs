//! The duration syntax of the command line: `90s`, `10m`, `2h`, `7d`, `1h30m`, `500ms`.
//! Parsed for policy flags and printed the same way, so what is shown can be typed back.

use std::time::Duration;

const UNITS: &[(&str, u64)] = &[
    ("d", 86_400_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1_000),
    ("ms", 1),
];

/// Parses a sequence of `<integer><unit>` parts, units `d`, `h`, `m`, `s` and `ms`, each
/// at most once and largest first (`1h30m`, not `30m1h`). A bare `0` is zero.
pub fn parse_duration(input: &str) -> Result<Duration, String> {
    let text = input.trim();
    let invalid = |why: &str| format!("invalid duration {input:?}: {why} (e.g. 90s, 10m, 1h30m)");
    if text.is_empty() {
        return Err(invalid("empty"));
    }
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let mut total_ms: u64 = 0;
    // Index into UNITS of the last unit seen; the next one must come strictly later.
    let mut last_unit: Option<usize> = None;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if digits == 0 {
            return Err(invalid("expected a number"));
        }
        let (number, after) = rest.split_at(digits);
        let unit_len = after.len()
            - after
                .trim_start_matches(|c: char| c.is_ascii_alphabetic())
                .len();
        let (unit, after) = after.split_at(unit_len);
        if unit.is_empty() {
            return Err(invalid("missing unit"));
        }
        let Some(index) = UNITS.iter().position(|(name, _)| *name == unit) else {
            return Err(invalid(&format!("unknown unit {unit:?}")));
        };
        if last_unit.is_some_and(|last| index <= last) {
            return Err(invalid("units must go from largest to smallest, each once"));
        }
        last_unit = Some(index);
        let value: u64 = number.parse().map_err(|_| invalid("number too large"))?;
        let part = value
            .checked_mul(UNITS[index].1)
            .ok_or_else(|| invalid("too long"))?;
        total_ms = total_ms
            .checked_add(part)
            .ok_or_else(|| invalid("too long"))?;
        rest = after;
    }
    Ok(Duration::from_millis(total_ms))
}

/// Prints a duration in the syntax [`parse_duration`] reads, largest units first and
/// zero parts left out: 5400 seconds is `1h30m`. Below a millisecond is dropped.
pub fn format_duration(duration: Duration) -> String {
    let mut remaining = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
    if remaining == 0 {
        return "0s".to_owned();
    }
    let mut out = String::new();
    for (name, ms) in UNITS {
        let count = remaining / ms;
        if count > 0 {
            out.push_str(&format!("{count}{name}"));
            remaining %= ms;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(n: u64) -> Result<Duration, String> {
        Ok(Duration::from_secs(n))
    }

    #[test]
    fn single_units_parse() {
        assert_eq!(parse_duration("90s"), secs(90));
        assert_eq!(parse_duration("10m"), secs(600));
        assert_eq!(parse_duration("2h"), secs(7_200));
        assert_eq!(parse_duration("7d"), secs(604_800));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("0"), secs(0));
        assert_eq!(parse_duration("0s"), secs(0));
    }

    #[test]
    fn compound_durations_parse() {
        assert_eq!(parse_duration("1h30m"), secs(5_400));
        assert_eq!(parse_duration("1d2h3m4s"), secs(93_784));
        assert_eq!(parse_duration("1s500ms"), Ok(Duration::from_millis(1_500)));
    }

    #[test]
    fn malformed_durations_are_refused() {
        for bad in [
            "", "90", "s", "1x", "1h1h", "30m1h", "1.5h", "-5s", "1 h", "h1",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should be refused");
        }
        let message = parse_duration("5y").err().unwrap_or_default();
        assert!(message.contains("unknown unit \"y\""), "{message}");
        assert!(parse_duration("99999999999999999999d").is_err());
        assert!(parse_duration("999999999999999d").is_err());
    }

    #[test]
    fn formatting_round_trips() {
        assert_eq!(format_duration(Duration::from_secs(5_400)), "1h30m");
        assert_eq!(format_duration(Duration::from_secs(60)), "1m");
        assert_eq!(format_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(format_duration(Duration::ZERO), "0s");
        assert_eq!(format_duration(Duration::from_millis(1_500)), "1s500ms");
        for text in ["7d", "1d2h3m4s", "45s", "250ms"] {
            let parsed = parse_duration(text);
            assert_eq!(parsed.map(format_duration).as_deref(), Ok(text));
        }
    }
}

/// Durations are typed by people: any text is a duration or an error quoting it, never a
/// panic; what is printed parses back, and what parses prints in the canonical form.
#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    fn duration_like() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<String>(),
            "[0-9]{0,25}(d|h|m|s|ms|y|µs)?([0-9]{0,3}(d|h|m|s|ms))*",
            " ?-?[0-9 .]{0,5}[a-z]{0,3} ?",
        ]
    }

    proptest! {
        #[test]
        fn any_text_is_a_duration_or_an_error_quoting_it(s in duration_like()) {
            match parse_duration(&s) {
                Ok(d) => {
                    prop_assert_eq!(parse_duration(&format_duration(d)), Ok(d));
                    prop_assert_eq!(d.subsec_nanos() % 1_000_000, 0);
                }
                Err(e) => prop_assert!(e.starts_with(&format!("invalid duration {s:?}")), "{e}"),
            }
        }

        #[test]
        fn printed_durations_parse_back_to_the_millisecond(ms in any::<u64>()) {
            let d = Duration::from_millis(ms);
            prop_assert_eq!(parse_duration(&format_duration(d)), Ok(d));
        }

        #[test]
        fn units_from_largest_to_smallest_are_accepted(
            parts in prop::collection::vec(prop::option::of(0..1000u64), UNITS.len()),
        ) {
            let text: String = parts
                .iter()
                .zip(UNITS)
                .filter_map(|(n, (unit, _))| n.map(|n| format!("{n}{unit}")))
                .collect();
            prop_assume!(!text.is_empty());
            let total: u64 = parts.iter().zip(UNITS).map(|(n, (_, ms))| n.unwrap_or(0) * ms).sum();
            prop_assert_eq!(parse_duration(&text), Ok(Duration::from_millis(total)));
        }
    }
}
