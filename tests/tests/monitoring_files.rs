//! The monitoring files, checked offline: Ferry's alert rules pass `promtool check
//! rules` and their unit tests (`deploy/prometheus/alerts.test.yml`) pass `promtool test
//! rules`, with a case where each alert fires and one where it stays quiet, and a wrong
//! expectation or threshold failing them; the Prometheus configuration passes `promtool
//! check config` and scrapes the compose file's services; the Grafana dashboards are
//! well-formed, their queries parse, and every expression, in the rules and the
//! dashboards, names only metrics that `docs/metrics.md` documents. No Prometheus or
//! Grafana server runs.
//!
//! `promtool` comes from Debian's `prometheus` package and `docker-compose` from its
//! `docker-compose` package (`deploy/test.sh` installs both), or `FERRY_TEST_PROMTOOL` /
//! `FERRY_TEST_DOCKER_COMPOSE`; without them the tests fail, saying so.

#![allow(clippy::unwrap_used)]

use std::{
    collections::{BTreeMap, BTreeSet},
    ffi::OsStr,
    path::{Path, PathBuf},
    process::Command,
};

use ferry_tests::promql;
use serde_json::Value;

/// The metrics every Prometheus target has besides its own: `up`, and the standard
/// process collector's that `docs/metrics.md` sums up as `process_*`.
const STANDARD_METRICS: &[&str] = &[
    "up",
    "process_resident_memory_bytes",
    "process_cpu_seconds_total",
    "process_open_fds",
    "process_start_time_seconds",
];

/// The panel types the dashboards use; all of them ship with Grafana 11.
const PANEL_TYPES: &[&str] = &["timeseries", "stat", "bargauge"];

fn promtool() -> PathBuf {
    ferry_tests::tools::debian_program(
        "promtool",
        "prometheus",
        "FERRY_TEST_PROMTOOL",
        &["/usr/bin/promtool"],
    )
}

/// A path from the repository's root.
fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// Runs `program` with `args`: what it printed on success, or its status and
/// everything it printed on failure.
fn run(program: &Path, args: &[&OsStr]) -> Result<String, String> {
    let out = Command::new(program).args(args).output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        Ok(said)
    } else {
        Err(format!("{}: {said}", out.status))
    }
}

/// `promtool CHECK_OR_TEST WHAT FILE`.
fn promtool_on(command: [&str; 2], file: &Path) -> Result<String, String> {
    let [verb, noun] = command.map(OsStr::new);
    run(&promtool(), &[verb, noun, file.as_os_str()])
}

/// The names after `- alert:` in a rule file.
fn alert_names(rules: &str) -> Vec<String> {
    rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert:"))
        .map(|name| name.trim().to_owned())
        .collect()
}

/// The `expr` of every rule in a rule file: a scalar on the line, or a block (`>-`)
/// made of the more indented lines below it.
fn rule_exprs(rules: &str) -> Vec<String> {
    let lines: Vec<&str> = rules.lines().collect();
    let mut exprs = Vec::new();
    for (n, line) in lines.iter().enumerate() {
        let Some(value) = line.trim().strip_prefix("expr:") else {
            continue;
        };
        let value = value.trim();
        if !value.starts_with(['>', '|']) {
            exprs.push(value.to_owned());
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        let block: Vec<&str> = lines[n + 1..]
            .iter()
            .take_while(|l| l.trim().is_empty() || l.len() - l.trim_start().len() > indent)
            .map(|l| l.trim())
            .collect();
        exprs.push(block.join(" ").trim().to_owned());
    }
    exprs
}

/// The alert unit tests of a `promtool test rules` file, as (alertname, fires): fires
/// when `exp_alerts` lists an alert, not when it is `[]`.
fn alert_cases(tests: &str) -> Vec<(String, bool)> {
    let lines: Vec<&str> = tests.lines().map(str::trim).collect();
    let mut cases = Vec::new();
    let mut alertname = None;
    for (n, line) in lines.iter().enumerate() {
        if let Some(name) = line.strip_prefix("alertname:") {
            alertname = Some(name.trim().to_owned());
        } else if let Some(expected) = line.strip_prefix("exp_alerts:") {
            let name = alertname.take().unwrap_or_else(|| {
                panic!("line {}: exp_alerts without an alertname above it", n + 1)
            });
            let fires = match expected.trim() {
                "[]" => false,
                "" => lines[n + 1..]
                    .iter()
                    .find(|l| !l.is_empty() && !l.starts_with('#'))
                    .is_some_and(|l| l.starts_with("- exp_labels:")),
                other => panic!("line {}: exp_alerts: {other}", n + 1),
            };
            cases.push((name, fires));
        }
    }
    cases
}

/// The metrics `docs/metrics.md` documents, from the first cell of its tables' rows,
/// with their type (`gauge`, `counter`, `histogram`); `process_*` is
/// [`STANDARD_METRICS`], as is `up`.
fn documented_metrics() -> BTreeMap<String, String> {
    let doc = read(&repo("docs/metrics.md"));
    let mut metrics = BTreeMap::new();
    for row in doc.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let name = cells[1].trim_matches('`');
        if name == "process_*" {
            continue;
        }
        metrics.insert(name.to_owned(), cells[2].to_owned());
    }
    for name in STANDARD_METRICS {
        metrics.insert((*name).to_owned(), String::new());
    }
    metrics
}

/// The names in `expr` that `docs/metrics.md` does not document.
fn undocumented(expr: &str, documented: &BTreeMap<String, String>) -> BTreeSet<String> {
    let histograms: BTreeSet<String> = documented
        .iter()
        .filter(|(_, kind)| kind.as_str() == "histogram")
        .map(|(name, _)| name.clone())
        .collect();
    promql::metric_names(expr)
        .into_iter()
        .filter(|name| !documented.contains_key(promql::family(name, &histograms)))
        .collect()
}

#[test]
fn alert_rules_check_and_their_unit_tests_pass() {
    let rules = repo("deploy/prometheus/alerts.yml");
    let checked = promtool_on(["check", "rules"], &rules).unwrap_or_else(|e| panic!("{e}"));
    // What this file's line scanners find is what promtool found.
    let text = read(&rules);
    let count = alert_names(&text).len();
    assert!(count > 0, "{text}");
    assert!(
        checked.contains(&format!("SUCCESS: {count} rules found")),
        "{checked}"
    );
    assert_eq!(rule_exprs(&text).len(), count);

    let tested = promtool_on(
        ["test", "rules"],
        &repo("deploy/prometheus/alerts.test.yml"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(tested.contains("SUCCESS"), "{tested}");
}

#[test]
fn every_alert_has_a_case_where_it_fires_and_one_where_it_does_not() {
    let alerts = alert_names(&read(&repo("deploy/prometheus/alerts.yml")));
    let tests = read(&repo("deploy/prometheus/alerts.test.yml"));
    let cases = alert_cases(&tests);
    assert_eq!(
        cases.len(),
        tests
            .lines()
            .filter(|l| l.trim().starts_with("alertname:"))
            .count(),
        "every alertname has its exp_alerts"
    );
    for (name, _) in &cases {
        // promtool passes a quiet case for an alert that does not exist.
        assert!(
            alerts.contains(name),
            "alerts.test.yml tests {name}, which alerts.yml lacks"
        );
    }
    for alert in &alerts {
        for fires in [true, false] {
            assert!(
                cases.contains(&(alert.clone(), fires)),
                "{alert} has no case where it {}",
                if fires { "fires" } else { "stays quiet" }
            );
        }
    }
}

/// The tests can fail: a wrong expected label fails them, and so does a rule whose
/// threshold changed; promtool names the alert.
#[test]
fn a_wrong_expectation_or_threshold_fails_the_alert_tests() {
    let shipped = repo("deploy/prometheus");
    let rules = read(&shipped.join("alerts.yml"));
    let tests = read(&shipped.join("alerts.test.yml"));
    let dir = tempfile::tempdir().unwrap();
    let test_file = dir.path().join("alerts.test.yml");
    let rule_file = dir.path().join("alerts.yml");
    let mutate = |text: &str, from: &str, to: &str| {
        assert_eq!(text.matches(from).count(), 1, "{from}");
        text.replace(from, to)
    };

    std::fs::write(&rule_file, &rules).unwrap();
    std::fs::write(&test_file, mutate(&tests, "agent_id: a2", "agent_id: a1")).unwrap();
    let e = promtool_on(["test", "rules"], &test_file).unwrap_err();
    assert!(e.contains("alertname: FerryAgentSilent"), "{e}");

    std::fs::write(&rule_file, mutate(&rules, "> 0.05", "> 0.5")).unwrap();
    std::fs::write(&test_file, &tests).unwrap();
    let e = promtool_on(["test", "rules"], &test_file).unwrap_err();
    assert!(e.contains("alertname: FerryObjectFailureRate"), "{e}");
}

/// The services of the compose file and its normalised form (`docker-compose config`).
fn compose() -> (Vec<String>, String) {
    let file = repo("deploy/docker/compose.yaml");
    let config = |extra: &[&str]| {
        let mut args = vec![OsStr::new("-f"), file.as_os_str(), OsStr::new("config")];
        args.extend(extra.iter().map(OsStr::new));
        run(&ferry_tests::tools::docker_compose(), &args).unwrap_or_else(|e| panic!("{e}"))
    };
    let services = config(&["--services"]).lines().map(str::to_owned).collect();
    (services, config(&[]))
}

/// One service's block in `docker-compose config`'s output: its name at two spaces,
/// then the lines indented further.
fn service_block<'a>(normalised: &'a str, service: &str) -> &'a str {
    let header = format!("\n  {service}:\n");
    let start = normalised
        .find(&header)
        .unwrap_or_else(|| panic!("no service {service} in:\n{normalised}"))
        + 1;
    let mut end = start + header.len() - 1;
    for line in normalised[end..].split_inclusive('\n') {
        if !line.starts_with("   ") {
            break;
        }
        end += line.len();
    }
    &normalised[start..end]
}

/// A volume line of `block` that mounts `source` (relative to `deploy/`) at `target`.
fn mounts(block: &str, source: &str, target: &str) -> bool {
    block
        .lines()
        .any(|l| l.trim().ends_with(&format!("deploy/{source}:{target}:ro")))
}

#[test]
fn prometheus_config_checks_and_scrapes_every_ferry_service() {
    let config_file = repo("deploy/prometheus/prometheus.yml");
    let checked = promtool_on(["check", "config"], &config_file).unwrap_or_else(|e| panic!("{e}"));
    // promtool resolved rule_files relative to the configuration and checked them.
    assert!(checked.contains("SUCCESS: 1 rule files found"), "{checked}");
    assert!(checked.contains("alerts.yml"), "{checked}");
    let alerts = alert_names(&read(&repo("deploy/prometheus/alerts.yml")));
    let found = format!("SUCCESS: {} rules found", alerts.len());
    assert!(checked.contains(&found), "{checked}");

    let config = read(&config_file);
    let jobs: Vec<&str> = config
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- job_name:"))
        .map(str::trim)
        .collect();
    assert_eq!(jobs, ["ferry-control-plane", "ferry-agent"]);
    let targets: BTreeSet<&str> = config
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- targets:"))
        .flat_map(|list| list.trim().trim_matches(['[', ']']).split(','))
        .map(|t| t.trim().trim_matches('"'))
        .collect();

    let (services, normalised) = compose();
    let agents: Vec<&String> = services
        .iter()
        .filter(|s| s.starts_with("agent-"))
        .collect();
    assert!(agents.len() >= 2, "{services:?}");
    let mut expected = BTreeSet::from(["control-plane:50051".to_owned()]);
    for agent in &agents {
        expected.insert(format!("{agent}:9465"));
        let block = service_block(&normalised, agent);
        assert!(
            block.contains("FERRY_AGENT_METRICS__LISTEN: 0.0.0.0:9465"),
            "{agent} serves its metrics on 9465:\n{block}"
        );
    }
    let targets: BTreeSet<String> = targets.into_iter().map(str::to_owned).collect();
    assert_eq!(targets, expected, "one target per compose service");

    // alerts.yml sits beside prometheus.yml in the container, where rule_files looks.
    let prometheus = service_block(&normalised, "prometheus");
    assert!(mounts(
        prometheus,
        "prometheus/prometheus.yml",
        "/etc/prometheus/prometheus.yml"
    ));
    assert!(
        mounts(
            prometheus,
            "prometheus/alerts.yml",
            "/etc/prometheus/alerts.yml"
        ),
        "{prometheus}"
    );
}

#[test]
fn grafana_provisions_the_data_source_and_the_mounted_dashboards() {
    let (services, normalised) = compose();
    let grafana = service_block(&normalised, "grafana");
    for kind in ["datasources", "dashboards"] {
        let target = format!("/etc/grafana/provisioning/{kind}");
        assert!(
            mounts(grafana, &format!("grafana/provisioning/{kind}"), &target),
            "{grafana}"
        );
    }
    let provider = read(&repo("deploy/grafana/provisioning/dashboards/ferry.yml"));
    let path = provider
        .lines()
        .find_map(|l| l.trim().strip_prefix("path:"))
        .unwrap()
        .trim();
    assert!(mounts(grafana, "grafana/dashboards", path), "{grafana}");

    let datasource = read(&repo(
        "deploy/grafana/provisioning/datasources/prometheus.yml",
    ));
    assert!(datasource.contains("type: prometheus"));
    let url = datasource
        .lines()
        .find_map(|l| l.trim().strip_prefix("url:"))
        .unwrap()
        .trim();
    let host = url.trim_start_matches("http://").split(':').next().unwrap();
    assert!(services.iter().any(|s| s == host), "{url}: {services:?}");
}

/// Every dashboard, by file name.
fn dashboards() -> BTreeMap<String, Value> {
    let dir = repo("deploy/grafana/dashboards");
    std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.extension() == Some(OsStr::new("json")))
        .map(|p| {
            let json =
                serde_json::from_str(&read(&p)).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p.file_name().unwrap().to_string_lossy().into_owned(), json)
        })
        .collect()
}

/// Every PromQL query of `dashboard`, as (panel title, expr).
fn dashboard_exprs(dashboard: &Value) -> Vec<(String, String)> {
    let mut exprs = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let title = panel["title"].as_str().unwrap().to_owned();
            exprs.push((title, target["expr"].as_str().unwrap().to_owned()));
        }
    }
    exprs
}

#[test]
fn dashboards_are_well_formed() {
    let dashboards = dashboards();
    let files: Vec<&str> = dashboards.keys().map(String::as_str).collect();
    assert_eq!(
        files,
        [
            "ferry-agents.json",
            "ferry-migrations.json",
            "ferry-overview.json"
        ]
    );
    let mut uids = BTreeSet::new();
    for (file, d) in &dashboards {
        let uid = d["uid"].as_str().unwrap_or_default();
        assert!(!uid.is_empty() && uids.insert(uid), "{file}: uid {uid:?}");
        assert!(d["title"].as_str().is_some_and(|t| !t.is_empty()), "{file}");
        assert_eq!(d["schemaVersion"], 39, "{file}");
        let variables = d["templating"]["list"].as_array().unwrap();
        assert!(
            variables.iter().any(|v| v["name"] == "datasource"
                && v["type"] == "datasource"
                && v["query"] == "prometheus"),
            "{file}: a Prometheus data source variable"
        );

        let panels = d["panels"].as_array().unwrap();
        assert!(!panels.is_empty(), "{file}");
        let mut ids = BTreeSet::new();
        let mut boxes: Vec<(String, [u64; 4])> = Vec::new();
        for panel in panels {
            let title = panel["title"].as_str().unwrap_or_default();
            let at = format!("{file}: panel {title:?}");
            assert!(!title.is_empty(), "{at}");
            assert!(ids.insert(panel["id"].as_u64().unwrap()), "{at}: id");
            let kind = panel["type"].as_str().unwrap();
            assert!(PANEL_TYPES.contains(&kind), "{at}: type {kind}");
            assert!(
                panel["description"].as_str().is_some_and(|t| !t.is_empty()),
                "{at}: says what it shows"
            );
            assert_eq!(panel["datasource"]["uid"], "${datasource}", "{at}");
            let targets = panel["targets"].as_array().unwrap();
            assert!(!targets.is_empty(), "{at}");
            let mut refs = BTreeSet::new();
            for target in targets {
                assert!(refs.insert(target["refId"].as_str().unwrap()), "{at}");
                assert_eq!(target["datasource"]["uid"], "${datasource}", "{at}");
                assert!(target["expr"].as_str().is_some_and(|e| !e.is_empty()));
            }
            let grid = &panel["gridPos"];
            let [x, y, w, h] = ["x", "y", "w", "h"].map(|k| grid[k].as_u64().unwrap());
            assert!(w > 0 && h > 0 && x + w <= 24, "{at}: {grid}");
            for (other, [ox, oy, ow, oh]) in &boxes {
                let apart = x + w <= *ox || *ox + ow <= x || y + h <= *oy || *oy + oh <= y;
                assert!(apart, "{at} overlaps {other:?}");
            }
            boxes.push((title.to_owned(), [x, y, w, h]));
        }
    }
}

/// Every dashboard query, its Grafana variables given values, as a recording rule:
/// `promtool check rules` then parses them all.
#[test]
fn dashboard_queries_parse() {
    let mut rules = String::from("groups:\n  - name: dashboards\n    rules:\n");
    let mut count = 0;
    for d in dashboards().values() {
        for (_, expr) in dashboard_exprs(d) {
            let expr = expr
                .replace("$__rate_interval", "1m")
                .replace("$__interval", "15s")
                .replace("$__range", "6h");
            let quoted = serde_json::to_string(&expr).unwrap();
            rules.push_str(&format!(
                "      - record: dashboard_query_{count}\n        expr: {quoted}\n"
            ));
            count += 1;
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dashboards.yml");
    std::fs::write(&file, &rules).unwrap();
    let checked = promtool_on(["check", "rules"], &file).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        checked.contains(&format!("SUCCESS: {count} rules found")),
        "{checked}"
    );

    // The check can fail: an unclosed parenthesis is refused.
    std::fs::write(&file, rules.replace("(ferry_jobs)", "(ferry_jobs")).unwrap();
    let e = promtool_on(["check", "rules"], &file).unwrap_err();
    assert!(e.contains("unclosed left parenthesis"), "{e}");
}

#[test]
fn expressions_name_only_documented_metrics() {
    let documented = documented_metrics();
    assert!(
        documented.get("ferry_agent_task_duration_seconds") == Some(&"histogram".to_owned()),
        "docs/metrics.md's tables read: {documented:?}"
    );
    let mut exprs: Vec<(String, String)> = rule_exprs(&read(&repo("deploy/prometheus/alerts.yml")))
        .into_iter()
        .map(|e| ("alerts.yml".to_owned(), e))
        .collect();
    for (file, d) in dashboards() {
        exprs.extend(
            dashboard_exprs(&d)
                .into_iter()
                .map(|(panel, e)| (format!("{file}: {panel}"), e)),
        );
    }

    let mut used = BTreeSet::new();
    let mut unknown = Vec::new();
    for (at, expr) in &exprs {
        used.extend(promql::metric_names(expr));
        for name in undocumented(expr, &documented) {
            unknown.push(format!("{at}: {name}"));
        }
    }
    assert!(
        unknown.is_empty(),
        "names docs/metrics.md does not document:\n{}",
        unknown.join("\n")
    );
    // The scan saw the expressions: the alerts' and dashboards' names are there.
    for name in [
        "ferry_agent_heartbeat_deadline_seconds",
        "ferry_job_stall_threshold_seconds",
        "ferry_agent_task_duration_seconds_bucket",
        "ferry_site_monthly_cost_dollars",
        "process_resident_memory_bytes",
    ] {
        assert!(used.contains(name), "{name} in {used:?}");
    }

    // The check can fail: a misspelt name is reported.
    let misspelt = "rate(ferry_agent_bytes_copy_total[5m])";
    assert_eq!(
        undocumented(misspelt, &documented),
        BTreeSet::from(["ferry_agent_bytes_copy_total".to_owned()])
    );
}
