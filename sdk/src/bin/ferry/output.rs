//! Human output: tables for lists, aligned key/value blocks for single objects, and the
//! way values (sizes, times, maps) read in them. `--json` output lives in `json.rs`.

use std::collections::HashMap;

use chrono::{DateTime, SecondsFormat, Utc};
use comfy_table::{presets, CellAlignment, ContentArrangement, Table};

use crate::duration::format_duration;

/// Shown for a field that is unset.
pub const NONE: &str = "-";

/// A table with a header row and no borders, columns separated by spaces, so it reads
/// like `kubectl get` and stays easy to `grep`/`awk`.
pub fn table(header: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut table = Table::new();
    table
        .load_preset(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(header.iter().copied());
    for row in rows {
        table.add_row(row);
    }
    for column in table.column_iter_mut() {
        column.set_padding((0, 3));
        column.set_cell_alignment(CellAlignment::Left);
    }
    table
        .lines()
        .map(|line| line.trim_end().to_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

/// An aligned `key  value` block for one object.
#[derive(Default)]
pub struct Fields {
    rows: Vec<(String, String)>,
}

impl Fields {
    pub fn new() -> Self {
        Fields::default()
    }

    pub fn add(&mut self, key: &str, value: impl Into<String>) -> &mut Self {
        self.rows.push((key.to_owned(), value.into()));
        self
    }

    pub fn render(&self) -> String {
        let width = self.rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        self.rows
            .iter()
            .map(|(key, value)| format!("{key:width$}   {value}").trim_end().to_owned())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// A timestamp in RFC 3339 to the second, UTC; `-` when unset.
pub fn timestamp(value: Option<&prost_types::Timestamp>) -> String {
    let Some(ts) = value else {
        return NONE.to_owned();
    };
    match ferry_sdk::time::from_timestamp(ts) {
        Some(t) => t.to_rfc3339_opts(SecondsFormat::Secs, true),
        None => format!("{}s since the epoch", ts.seconds),
    }
}

/// A duration in the syntax the flags take (`1h30m`); `-` when unset.
pub fn duration(value: Option<&prost_types::Duration>) -> String {
    match value {
        None => NONE.to_owned(),
        Some(d) => match ferry_sdk::time::from_duration(d) {
            Some(d) => format_duration(d),
            None => format!("{}s", d.seconds),
        },
    }
}

/// A size in binary units with one decimal (`1.5 GiB`); exact below 1 KiB.
pub fn bytes(value: u64) -> String {
    const UNITS: &[&str] = &["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if value < 1024 {
        return format!("{value} B");
    }
    // Precision loss above 2^53 bytes is invisible at one decimal.
    let mut scaled = value as f64 / 1024.0;
    let mut unit = 0;
    while scaled >= 1024.0 && unit + 1 < UNITS.len() {
        scaled /= 1024.0;
        unit += 1;
    }
    format!("{scaled:.1} {}", UNITS[unit])
}

/// A bandwidth limit in bytes per second, where 0 means there is none.
pub fn bandwidth(bytes_per_sec: u64) -> String {
    if bytes_per_sec == 0 {
        "unlimited".to_owned()
    } else {
        format!("{}/s ({bytes_per_sec} bytes/s)", bytes(bytes_per_sec))
    }
}

/// A measured transfer rate (`52.3 MiB/s`); `-` when there is nothing to show (zero, or
/// not a number).
pub fn rate(bytes_per_sec: f64) -> String {
    if !bytes_per_sec.is_finite() || bytes_per_sec < 1.0 {
        return NONE.to_owned();
    }
    // Saturating conversion; a fraction of a byte per second does not show anyway.
    format!("{}/s", bytes(bytes_per_sec as u64))
}

/// How long before `now` the instant `then` was, in its largest whole unit: `3s ago`,
/// `5m ago`, `2h ago`, `4d ago`. Under a second, or ahead of `now` (clocks differ), is
/// `just now`; unset is `never`.
pub fn ago(then: Option<&prost_types::Timestamp>, now: DateTime<Utc>) -> String {
    let Some(ts) = then else {
        return "never".to_owned();
    };
    let Some(then) = ferry_sdk::time::from_timestamp(ts) else {
        return timestamp(Some(ts));
    };
    let seconds = (now - then).num_seconds();
    let (count, unit) = match seconds {
        ..=0 => return "just now".to_owned(),
        1..=59 => (seconds, "s"),
        60..=3_599 => (seconds / 60, "m"),
        3_600..=86_399 => (seconds / 3_600, "h"),
        _ => (seconds / 86_400, "d"),
    };
    format!("{count}{unit} ago")
}

/// `k=v` pairs sorted by key, comma-separated; `-` when empty.
pub fn pairs(map: &HashMap<String, String>) -> String {
    if map.is_empty() {
        return NONE.to_owned();
    }
    let mut entries: Vec<_> = map.iter().collect();
    entries.sort();
    entries
        .into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A US dollar amount with as many decimals as it needs, at least two.
pub fn dollars(amount: f64) -> String {
    let text = format!("{amount:.6}");
    let trimmed = text.trim_end_matches('0');
    let decimals = trimmed.split_once('.').map_or(0, |(_, d)| d.len());
    if decimals < 2 {
        format!("${amount:.2}")
    } else {
        format!("${trimmed}")
    }
}

pub fn yes_no(value: bool) -> &'static str {
    if value {
        "yes"
    } else {
        "no"
    }
}

/// `text`, or `-` when it is empty.
pub fn or_none(text: &str) -> String {
    if text.is_empty() {
        NONE.to_owned()
    } else {
        text.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_have_a_header_and_aligned_columns() {
        let rendered = table(
            &["NAME", "TIER"],
            vec![
                vec!["a-long-name".into(), "hot".into()],
                vec!["b".into(), "cold".into()],
            ],
        );
        let lines: Vec<&str> = rendered.lines().collect();
        assert_eq!(lines.len(), 3, "{rendered}");
        assert!(lines[0].starts_with("NAME"), "{rendered}");
        let tier_column = lines[0].find("TIER");
        assert_eq!(lines[1].find("hot"), tier_column, "{rendered}");
        assert_eq!(lines[2].find("cold"), tier_column, "{rendered}");
    }

    #[test]
    fn fields_align_values() {
        let mut fields = Fields::new();
        fields.add("name", "genome").add("storage class", "");
        assert_eq!(fields.render(), "name            genome\nstorage class");
    }

    #[test]
    fn values_read_naturally() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(5 << 30), "5.0 GiB");
        assert_eq!(dollars(0.0), "$0.00");
        assert_eq!(dollars(12.5), "$12.50");
        assert_eq!(dollars(0.0004), "$0.0004");
        let map = HashMap::from([
            ("b".to_owned(), "2".to_owned()),
            ("a".to_owned(), "1".to_owned()),
        ]);
        assert_eq!(pairs(&map), "a=1, b=2");
        assert_eq!(pairs(&HashMap::new()), "-");
        let ts = prost_types::Timestamp {
            seconds: 1_700_000_000,
            nanos: 5,
        };
        assert_eq!(timestamp(Some(&ts)), "2023-11-14T22:13:20Z");
        let d = prost_types::Duration {
            seconds: 5_400,
            nanos: 0,
        };
        assert_eq!(duration(Some(&d)), "1h30m");
        assert_eq!(duration(None), "-");
    }

    #[test]
    fn rates_and_limits_read_per_second() {
        assert_eq!(bandwidth(0), "unlimited");
        assert_eq!(bandwidth(20_000_000), "19.1 MiB/s (20000000 bytes/s)");
        assert_eq!(rate(52.3 * 1024.0 * 1024.0), "52.3 MiB/s");
        assert_eq!(rate(512.0), "512 B/s");
        assert_eq!(rate(0.0), "-");
        assert_eq!(rate(f64::NAN), "-");
        assert_eq!(rate(f64::INFINITY), "-");
    }

    #[test]
    fn ages_use_the_largest_whole_unit() {
        let now = DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default();
        let before = |seconds: i64| {
            Some(prost_types::Timestamp {
                seconds: 1_700_000_000 - seconds,
                nanos: 0,
            })
        };
        assert_eq!(ago(before(3).as_ref(), now), "3s ago");
        assert_eq!(ago(before(59).as_ref(), now), "59s ago");
        assert_eq!(ago(before(60).as_ref(), now), "1m ago");
        assert_eq!(ago(before(7_199).as_ref(), now), "1h ago");
        assert_eq!(ago(before(3 * 86_400 + 5).as_ref(), now), "3d ago");
        assert_eq!(ago(before(0).as_ref(), now), "just now");
        assert_eq!(ago(before(-30).as_ref(), now), "just now");
        assert_eq!(ago(None, now), "never");
    }
}
