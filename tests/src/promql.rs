//! The metric names a PromQL expression reads, so that Ferry's alert rules and
//! dashboards, and what its processes export, can be held against the names
//! `docs/metrics.md` documents.
//!
//! This is a scanner, not a parser: it assumes the expression parses (promtool checks
//! that) and finds the identifiers that select series. It skips string literals, label
//! matchers (`{…}`), ranges and subqueries (`[…]`), numbers and durations, Grafana
//! variables (`$__rate_interval`, `${datasource}`), keywords and aggregation operators,
//! function names (an identifier followed by `(`), and the label lists of `by`,
//! `without`, `on`, `ignoring`, `group_left` and `group_right`. Every other identifier
//! is a metric name. A selector by `{__name__="…"}` alone is not seen.

use std::collections::BTreeSet;

/// Keywords, binary set operators and aggregation operators: identifiers that never
/// name a metric (PromQL matches them in any case).
const KEYWORDS: &[&str] = &[
    "and",
    "or",
    "unless",
    "atan2",
    "bool",
    "offset",
    "inf",
    "nan",
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
    "limit_ratio",
];

/// Keywords followed by a parenthesised list of label names.
const LABEL_LISTS: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

/// Suffixes of the series a histogram exposes.
const HISTOGRAM_SUFFIXES: &[&str] = &["_bucket", "_sum", "_count"];

/// The metric names `expr` selects, as written: a histogram's series keep their
/// `_bucket`, `_sum` or `_count` suffix (see [`family`]).
pub fn metric_names(expr: &str) -> BTreeSet<String> {
    let bytes = expr.as_bytes();
    let mut names = BTreeSet::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        i = match c {
            b'"' | b'\'' | b'`' => skip_string(bytes, i),
            b'#' => skip_while(bytes, i, |b| b != b'\n'),
            b'{' => skip_group(bytes, i, b'{', b'}'),
            b'[' => skip_group(bytes, i, b'[', b']'),
            b'$' if bytes.get(i + 1) == Some(&b'{') => skip_group(bytes, i + 1, b'{', b'}'),
            b'$' => skip_while(bytes, i + 1, is_ident),
            b'0'..=b'9' | b'.' => skip_number(bytes, i),
            c if is_ident_start(c) => {
                let end = skip_while(bytes, i, is_ident);
                let word = &expr[i..end];
                let lower = word.to_ascii_lowercase();
                let next = skip_while(bytes, end, |b| b.is_ascii_whitespace());
                let opens = bytes.get(next) == Some(&b'(');
                if LABEL_LISTS.contains(&lower.as_str()) {
                    if opens {
                        skip_group(bytes, next, b'(', b')')
                    } else {
                        end
                    }
                } else {
                    if !opens && !KEYWORDS.contains(&lower.as_str()) {
                        names.insert(word.to_owned());
                    }
                    end
                }
            }
            _ => i + 1,
        };
    }
    names
}

/// The metric a series name belongs to: `name` without its `_bucket`, `_sum` or
/// `_count` suffix when what is left is one of `histograms`, else `name` itself.
pub fn family<'a>(name: &'a str, histograms: &BTreeSet<String>) -> &'a str {
    HISTOGRAM_SUFFIXES
        .iter()
        .filter_map(|suffix| name.strip_suffix(suffix))
        .find(|base| histograms.contains(*base))
        .unwrap_or(name)
}

fn is_ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b == b':'
}

fn is_ident(b: u8) -> bool {
    is_ident_start(b) || b.is_ascii_digit()
}

fn skip_while(bytes: &[u8], mut i: usize, keep: impl Fn(u8) -> bool) -> usize {
    while i < bytes.len() && keep(bytes[i]) {
        i += 1;
    }
    i
}

/// Past the string opening at `start`; backslash escapes except in raw (backtick)
/// strings. An unterminated string runs to the end.
fn skip_string(bytes: &[u8], start: usize) -> usize {
    let quote = bytes[start];
    let mut i = start + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if quote != b'`' => i += 2,
            b if b == quote => return i + 1,
            _ => i += 1,
        }
    }
    bytes.len()
}

/// Past the bracket matching the `open` at `start`, stepping over strings inside.
fn skip_group(bytes: &[u8], start: usize, open: u8, close: u8) -> usize {
    let mut depth = 0usize;
    let mut i = start;
    while i < bytes.len() {
        match bytes[i] {
            b'"' | b'\'' | b'`' => {
                i = skip_string(bytes, i);
                continue;
            }
            b if b == open => depth += 1,
            b if b == close => {
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    bytes.len()
}

/// Past a number or a duration: `0.95`, `1e-3`, `0x1f`, `7`, `5m`, `1h30m`.
fn skip_number(bytes: &[u8], start: usize) -> usize {
    let mut i = start;
    while i < bytes.len() {
        let b = bytes[i];
        let exponent_sign = (b == b'+' || b == b'-')
            && matches!(bytes.get(i.wrapping_sub(1)), Some(b'e' | b'E'))
            && !bytes[start..i].starts_with(b"0x");
        if b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || exponent_sign {
            i += 1;
        } else {
            break;
        }
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(expr: &str) -> Vec<String> {
        metric_names(expr).into_iter().collect()
    }

    #[test]
    fn selectors_with_matchers_ranges_and_offsets() {
        assert_eq!(names("up"), ["up"]);
        assert_eq!(names(r#"up{job="ferry-agent"} == 0"#), ["up"]);
        assert_eq!(
            names("rate(ferry_agent_bytes_copied_total[5m] offset 1h)"),
            ["ferry_agent_bytes_copied_total"]
        );
        assert_eq!(names("a+b/c"), ["a", "b", "c"]);
        assert_eq!(names("ns:metric:rate5m > 1e-3"), ["ns:metric:rate5m"]);
    }

    #[test]
    fn functions_aggregations_and_label_lists_are_not_metrics() {
        let expr = "histogram_quantile(0.95, sum by (le, method) \
                    (rate(ferry_grpc_server_handling_seconds_bucket[$__rate_interval])))";
        assert_eq!(names(expr), ["ferry_grpc_server_handling_seconds_bucket"]);
        let expr = "timestamp(hb) - hb > on() group_left(site) deadline";
        assert_eq!(names(expr), ["deadline", "hb"]);
        let expr =
            "SUM(x) WITHOUT (instance) AND ignoring (code) y unless z * on (a) group_right w";
        assert_eq!(names(expr), ["w", "x", "y", "z"]);
        assert_eq!(
            names("count_values(\"version\", build_info)"),
            ["build_info"]
        );
        assert_eq!(names("sum(rate(x[5m])) or vector(0)"), ["x"]);
    }

    #[test]
    fn strings_numbers_and_grafana_variables_are_skipped() {
        let expr = r#"label_replace(up{instance=~"a|b}"}, "host", "$1", "instance", "(.*):.*")"#;
        assert_eq!(names(expr), ["up"]);
        assert_eq!(names("x - time() < 7 * 24 * 3600 + 0x1F + Inf"), ["x"]);
        assert_eq!(names("max_over_time(y[1h:5m]) * ${factor} / $scale"), ["y"]);
        assert_eq!(names("z @ 1609746000"), ["z"]);
        assert!(names("vector(1)").is_empty());
    }

    #[test]
    fn histogram_series_belong_to_their_histogram() {
        let histograms = BTreeSet::from(["ferry_agent_object_size_bytes".to_owned()]);
        for series in ["_bucket", "_sum", "_count", ""] {
            let name = format!("ferry_agent_object_size_bytes{series}");
            assert_eq!(family(&name, &histograms), "ferry_agent_object_size_bytes");
        }
        // Only a histogram loses its suffix.
        assert_eq!(family("ferry_jobs_count", &histograms), "ferry_jobs_count");
    }
}
