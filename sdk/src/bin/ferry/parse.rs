//! Parsers of command-line values other than enums and durations: `KEY=VALUE` pairs,
//! credentials files, schedule windows, tier placements, byte sizes, rates and prices.
//!
//! Each returns a plain `String` error that clap (or the caller) prefixes with the flag.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use ferry_sdk::pb;
use ferry_sdk::Error;

use crate::enums::parse_tier;

/// Parses `KEY=VALUE`, splitting at the first `=`. The key must not be empty; the value may
/// be, and may itself contain `=`.
pub fn parse_key_value(input: &str) -> Result<(String, String), String> {
    match input.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            Ok((key.trim().to_owned(), value.to_owned()))
        }
        _ => Err(format!("expected KEY=VALUE, got {input:?}")),
    }
}

/// Collects pairs into a map, refusing a key given twice (`what` names the flag's items in
/// the message, e.g. "label").
pub fn into_map(pairs: &[(String, String)], what: &str) -> Result<HashMap<String, String>, Error> {
    let mut map = HashMap::with_capacity(pairs.len());
    for (key, value) in pairs {
        if map.insert(key.clone(), value.clone()).is_some() {
            return Err(Error::InvalidInput(format!(
                "{what} {key:?} is given twice"
            )));
        }
    }
    Ok(map)
}

/// Reads credentials from `path` (`-` is standard input); see [`parse_credentials`].
pub fn read_credentials_file(path: &Path) -> Result<HashMap<String, String>, Error> {
    let shown = path.display();
    let text = if path == Path::new("-") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| Error::InvalidInput(format!("reading credentials from stdin: {e}")))?;
        text
    } else {
        std::fs::read_to_string(path)
            .map_err(|e| Error::InvalidInput(format!("reading credentials file {shown}: {e}")))?
    };
    parse_credentials(&text)
        .map_err(|e| Error::InvalidInput(format!("credentials file {shown}: {e}")))
}

/// Parses credentials: either a JSON object, or `KEY=VALUE` lines where blank lines and
/// lines starting with `#` are skipped and spaces around keys and values are trimmed.
///
/// In a JSON object, string values are taken as they are and any other value (a service
/// account object, say) as its compact JSON text.
pub fn parse_credentials(text: &str) -> Result<HashMap<String, String>, String> {
    if text.trim_start().starts_with('{') {
        let object: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(text).map_err(|e| format!("invalid JSON: {e}"))?;
        return object
            .into_iter()
            .map(|(key, value)| match value {
                serde_json::Value::String(s) => Ok((key, s)),
                serde_json::Value::Null => Err(format!("{key:?} is null")),
                other => Ok((key, other.to_string())),
            })
            .collect();
    }
    let mut credentials = HashMap::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line_no = index + 1;
        let Some((key, value)) = line.split_once('=') else {
            return Err(format!("line {line_no}: expected KEY=VALUE"));
        };
        let key = key.trim();
        if key.is_empty() {
            return Err(format!("line {line_no}: the key is empty"));
        }
        if credentials
            .insert(key.to_owned(), value.trim().to_owned())
            .is_some()
        {
            return Err(format!("line {line_no}: {key:?} is given twice"));
        }
    }
    Ok(credentials)
}

/// A `--window` value: a daily UTC window, or `any` for no restriction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Window {
    Anytime,
    Daily(pb::ScheduleWindow),
}

impl Window {
    pub fn into_proto(self) -> Option<pb::ScheduleWindow> {
        match self {
            Window::Anytime => None,
            Window::Daily(window) => Some(window),
        }
    }
}

/// Parses `HH:MM-HH:MM` (UTC; an end before the start spans midnight) or `any`/`none`.
/// Hours may have one digit; the result is always `HH:MM`.
pub fn parse_window(input: &str) -> Result<Window, String> {
    let text = input.trim();
    if text.eq_ignore_ascii_case("any") || text.eq_ignore_ascii_case("none") {
        return Ok(Window::Anytime);
    }
    let invalid = |why: &str| format!("invalid window {input:?}: {why} (e.g. 22:00-06:00, or any)");
    let Some((start, end)) = text.split_once('-') else {
        return Err(invalid("expected START-END"));
    };
    let start = parse_clock(start).map_err(|why| invalid(&why))?;
    let end = parse_clock(end).map_err(|why| invalid(&why))?;
    if start == end {
        return Err(invalid("start and end are the same"));
    }
    Ok(Window::Daily(pb::ScheduleWindow { start, end }))
}

fn parse_clock(input: &str) -> Result<String, String> {
    let text = input.trim();
    let bad = || format!("{text:?} is not a time of day HH:MM");
    let (hours, minutes) = text.split_once(':').ok_or_else(bad)?;
    let digits = |s: &str, max_len: usize| {
        !s.is_empty() && s.len() <= max_len && s.bytes().all(|b| b.is_ascii_digit())
    };
    if !digits(hours, 2) || minutes.len() != 2 || !digits(minutes, 2) {
        return Err(bad());
    }
    let hours: u8 = hours.parse().map_err(|_| bad())?;
    let minutes: u8 = minutes.parse().map_err(|_| bad())?;
    if hours > 23 || minutes > 59 {
        return Err(bad());
    }
    Ok(format!("{hours:02}:{minutes:02}"))
}

/// Parses a `--place TIER=SITE` value.
pub fn parse_placement(input: &str) -> Result<pb::TierPlacement, String> {
    let (tier, site) = parse_key_value(input)
        .map_err(|_| format!("expected TIER=SITE (e.g. hot=nvme-a), got {input:?}"))?;
    let tier = parse_tier(&tier)?;
    if site.trim().is_empty() {
        return Err(format!("no site given for tier {input:?}"));
    }
    Ok(pb::TierPlacement {
        tier: tier.into(),
        site: site.trim().to_owned(),
    })
}

const BYTE_UNITS: &[(&str, u64)] = &[
    ("", 1),
    ("b", 1),
    ("kb", 1_000),
    ("mb", 1_000_000),
    ("gb", 1_000_000_000),
    ("tb", 1_000_000_000_000),
    ("kib", 1 << 10),
    ("mib", 1 << 20),
    ("gib", 1 << 30),
    ("tib", 1 << 40),
];

/// Parses a whole number of bytes with an optional unit: `1048576`, `100MB`, `1GiB`
/// (units in any case; decimal kB/MB/GB/TB and binary KiB/MiB/GiB/TiB).
pub fn parse_bytes(input: &str) -> Result<u64, String> {
    let text = input.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let invalid = || {
        format!("invalid size {input:?}: expected a whole number of bytes, optionally with a unit (e.g. 500MB, 1GiB)")
    };
    if number.is_empty() {
        return Err(invalid());
    }
    let unit = unit.trim().to_ascii_lowercase();
    let (_, factor) = BYTE_UNITS
        .iter()
        .find(|(name, _)| *name == unit)
        .ok_or_else(invalid)?;
    let value: u64 = number.parse().map_err(|_| invalid())?;
    value
        .checked_mul(*factor)
        .ok_or_else(|| format!("invalid size {input:?}: too large"))
}

/// Parses a rate in bytes per second: a size as [`parse_bytes`] reads it, optionally
/// followed by `/s` (`20MB`, `20MB/s`, `512KiB/s`). 0 means unlimited where a limit is
/// asked for.
pub fn parse_rate(input: &str) -> Result<u64, String> {
    let text = input.trim();
    let size = text
        .strip_suffix("/s")
        .or_else(|| text.strip_suffix("/S"))
        .unwrap_or(text);
    parse_bytes(size).map_err(|_| {
        format!(
            "invalid rate {input:?}: expected bytes per second, optionally with a unit \
             (e.g. 20MB, 512KiB/s, 0 for unlimited)"
        )
    })
}

/// Parses a price in US dollars: a finite, non-negative number.
pub fn parse_price(input: &str) -> Result<f64, String> {
    let value: f64 = input
        .trim()
        .parse()
        .map_err(|_| format!("invalid amount {input:?}: expected a number of US dollars"))?;
    if !value.is_finite() || value < 0.0 {
        return Err(format!("invalid amount {input:?}: must be zero or more"));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(k: &str, v: &str) -> Result<(String, String), String> {
        Ok((k.to_owned(), v.to_owned()))
    }

    #[test]
    fn key_values_split_at_the_first_equals() {
        assert_eq!(parse_key_value("team=genomics"), pair("team", "genomics"));
        assert_eq!(parse_key_value("expr=a=b"), pair("expr", "a=b"));
        assert_eq!(parse_key_value("empty="), pair("empty", ""));
        assert_eq!(parse_key_value(" region =eu"), pair("region", "eu"));
        assert!(parse_key_value("novalue").is_err());
        assert!(parse_key_value("=value").is_err());
    }

    #[test]
    fn repeated_keys_are_refused() {
        let pairs = vec![
            ("a".to_owned(), "1".to_owned()),
            ("a".to_owned(), "2".to_owned()),
        ];
        let err = into_map(&pairs, "label").err().map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("invalid argument: label \"a\" is given twice")
        );
        let ok = into_map(&pairs[..1], "label").ok();
        assert_eq!(ok.and_then(|m| m.get("a").cloned()).as_deref(), Some("1"));
    }

    #[test]
    fn credentials_parse_from_lines() {
        let text = "# s3 keys\naccess_key_id = AKIA\n\nsecret_access_key=abc=def\n";
        let parsed = parse_credentials(text);
        let expected = HashMap::from([
            ("access_key_id".to_owned(), "AKIA".to_owned()),
            ("secret_access_key".to_owned(), "abc=def".to_owned()),
        ]);
        assert_eq!(parsed, Ok(expected));
        assert_eq!(
            parse_credentials("a=1\nbroken\n"),
            Err("line 2: expected KEY=VALUE".to_owned())
        );
        assert!(parse_credentials("a=1\na=2").is_err());
    }

    #[test]
    fn credentials_parse_from_json() {
        let text = r#"{"account_key": "xyz", "credential": {"type": "service_account"}}"#;
        let parsed = parse_credentials(text);
        let expected = HashMap::from([
            ("account_key".to_owned(), "xyz".to_owned()),
            (
                "credential".to_owned(),
                r#"{"type":"service_account"}"#.to_owned(),
            ),
        ]);
        assert_eq!(parsed, Ok(expected));
        assert!(parse_credentials("{\"a\": null}").is_err());
        assert!(parse_credentials("{not json").is_err());
    }

    #[test]
    fn windows_parse_and_normalise() {
        let daily = |start: &str, end: &str| {
            Ok(Window::Daily(pb::ScheduleWindow {
                start: start.into(),
                end: end.into(),
            }))
        };
        assert_eq!(parse_window("22:00-06:00"), daily("22:00", "06:00"));
        assert_eq!(parse_window("9:30-17:00"), daily("09:30", "17:00"));
        assert_eq!(parse_window("any"), Ok(Window::Anytime));
        assert_eq!(parse_window("NONE"), Ok(Window::Anytime));
        for bad in [
            "",
            "22:00",
            "24:00-01:00",
            "10:60-11:00",
            "10:00-10:00",
            "1000-1100",
            "10:5-11:00",
            "a:00-b:00",
        ] {
            assert!(parse_window(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn placements_parse() {
        let placed = parse_placement("cold=archive-s3");
        assert_eq!(
            placed,
            Ok(pb::TierPlacement {
                tier: pb::Tier::Cold.into(),
                site: "archive-s3".into(),
            })
        );
        assert!(parse_placement("tepid=x").is_err());
        assert!(parse_placement("hot=").is_err());
        assert!(parse_placement("hot").is_err());
    }

    #[test]
    fn byte_sizes_parse_with_units() {
        assert_eq!(parse_bytes("1048576"), Ok(1_048_576));
        assert_eq!(parse_bytes("100MB"), Ok(100_000_000));
        assert_eq!(parse_bytes("1GiB"), Ok(1 << 30));
        assert_eq!(parse_bytes("2 kib"), Ok(2048));
        assert_eq!(parse_bytes("0"), Ok(0));
        for bad in ["", "MB", "1.5GB", "-1", "10XB", "99999999999TiB"] {
            assert!(parse_bytes(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn rates_are_sizes_per_second() {
        assert_eq!(parse_rate("20MB"), Ok(20_000_000));
        assert_eq!(parse_rate("20MB/s"), Ok(20_000_000));
        assert_eq!(parse_rate(" 512KiB/s "), Ok(512 * 1024));
        assert_eq!(parse_rate("0"), Ok(0));
        assert_eq!(parse_rate("1000"), Ok(1000));
        for bad in ["", "/s", "fast", "20MB/h", "1.5MB", "-1"] {
            assert!(parse_rate(bad).is_err(), "{bad:?} should be refused");
        }
        let message = parse_rate("fast").err().unwrap_or_default();
        assert!(message.starts_with("invalid rate \"fast\""), "{message}");
    }

    #[test]
    fn sizes_take_binary_and_decimal_units() {
        assert_eq!(parse_bytes("64KiB"), Ok(64 * 1024));
        assert_eq!(parse_bytes("128MiB"), Ok(128 << 20));
        assert_eq!(parse_bytes("2GB"), Ok(2_000_000_000));
    }

    #[test]
    fn prices_must_be_finite_and_non_negative() {
        assert_eq!(parse_price("0.023"), Ok(0.023));
        assert_eq!(parse_price("0"), Ok(0.0));
        for bad in ["-1", "NaN", "inf", "cheap"] {
            assert!(parse_price(bad).is_err(), "{bad:?} should be refused");
        }
    }
}

/// Flag values and credentials files are typed by people: any text is a value or an
/// error, never a panic; sizes, windows and credentials written out parse back.
#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn any_size_or_rate_is_a_number_or_an_error_quoting_it(
            s in prop_oneof![any::<String>(), "[0-9]{0,22} ?[kKmMgGtTiIbB]{0,3}(/[sS])?"],
        ) {
            match parse_bytes(&s) {
                Ok(n) => prop_assert_eq!(parse_rate(&s), Ok(n)),
                Err(e) => prop_assert!(e.starts_with(&format!("invalid size {s:?}")), "{e}"),
            }
            if let Err(e) = parse_rate(&s) {
                prop_assert!(e.starts_with(&format!("invalid rate {s:?}")), "{e}");
            }
        }

        #[test]
        fn sizes_with_units_are_their_product_or_too_large(
            n in any::<u64>(),
            (unit, factor) in prop::sample::select(BYTE_UNITS),
            upper in any::<bool>(),
        ) {
            let unit = if upper { unit.to_ascii_uppercase() } else { unit.to_string() };
            let parsed = parse_bytes(&format!("{n}{unit}"));
            match n.checked_mul(factor) {
                Some(bytes) => prop_assert_eq!(parsed, Ok(bytes)),
                None => prop_assert!(parsed.is_err_and(|e| e.ends_with("too large"))),
            }
        }

        #[test]
        fn key_values_split_at_the_first_equals(
            key in "[^=\\s][^=]{0,10}",
            value in "\\PC{0,20}",
            junk in any::<String>(),
        ) {
            let _ = parse_key_value(&junk);
            let parsed = parse_key_value(&format!("{key}={value}"));
            prop_assert_eq!(parsed, Ok((key.trim().to_owned(), value)));
        }

        #[test]
        fn credentials_written_as_lines_or_json_parse_back(
            map in prop::collection::hash_map("[a-z_][a-z0-9_]{0,15}", "[^\\s#=][^\\r\\n]{0,30}[^\\s]|[^\\s#=]", 0..6),
            junk in any::<String>(),
        ) {
            let _ = parse_credentials(&junk);
            let lines: String = map.iter().map(|(k, v)| format!("{k} = {v}\n")).collect();
            prop_assert_eq!(parse_credentials(&lines), Ok(map.clone()));
            let json = serde_json::to_string(&map).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(parse_credentials(&json), Ok(map));
        }

        #[test]
        fn windows_are_two_clock_times_and_print_back(
            s in prop_oneof![any::<String>(), "[0-9+ ]{1,3}:[0-9+ ]{1,3}-[0-9+ ]{1,3}:[0-9+ ]{1,3}"],
            start in 0..1440u32,
            end in 0..1440u32,
        ) {
            if let Ok(Window::Daily(w)) = parse_window(&s) {
                let again = parse_window(&format!("{}-{}", w.start, w.end));
                prop_assert_eq!(again, Ok(Window::Daily(w)));
            }
            let clock = |m: u32| format!("{}:{:02}", m / 60, m % 60);
            let parsed = parse_window(&format!("{}-{}", clock(start), clock(end)));
            if start == end {
                prop_assert!(parsed.is_err());
            } else {
                let expected = pb::ScheduleWindow {
                    start: format!("{:02}:{:02}", start / 60, start % 60),
                    end: format!("{:02}:{:02}", end / 60, end % 60),
                };
                prop_assert_eq!(parsed, Ok(Window::Daily(expected)));
            }
        }

        #[test]
        fn prices_are_finite_and_non_negative(s in prop_oneof![any::<String>(), "-?[0-9.eE+-]{0,8}|[iI]nf|NaN"]) {
            if let Ok(price) = parse_price(&s) {
                prop_assert!(price.is_finite() && price >= 0.0);
            }
            let _ = parse_placement(&s);
        }
    }
}
