//! Metrics as a scraper sees them: after a real migration, both endpoints (the control
//! plane's and the agent's) pass `promtool check metrics` and count what happened;
//! every name the shipped alert rules and dashboards query is exported; and a real
//! Prometheus, started from the shipped configuration, scrapes both, loads the rules
//! and answers Ferry's series from its query API.
//!
//! `promtool` and `prometheus` come from Debian's `prometheus` package (deploy/test.sh
//! installs it) or `FERRY_TEST_PROMTOOL` / `FERRY_TEST_PROMETHEUS`; without them the
//! tests fail, saying so.

#![allow(clippy::unwrap_used)]

use std::{
    collections::{BTreeMap, BTreeSet},
    io::Write,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

use ferry_proto::v1 as pb;
use ferry_tests::{
    agent::Agent,
    control_plane::ControlPlane,
    dataset::{wait_for_end, write_tree},
    http, promql,
    tools::debian_program,
};

const TIMEOUT: Duration = Duration::from_secs(60);

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

/// A control plane and an agent of site `fast` that migrated a dataset of three files
/// to site `slow`; the bytes it moved.
struct Migrated {
    cp: ControlPlane,
    agent: Agent,
    bytes: u64,
    _dirs: tempfile::TempDir,
}

async fn migrated() -> Migrated {
    let cp = ControlPlane::start().await;
    let client = cp.client().await;
    let dirs = tempfile::tempdir().unwrap();
    let source: BTreeMap<String, Vec<u8>> = (0..3)
        .map(|i| {
            (
                format!("f{i}"),
                ferry_tests::dataset::bytes(i, 1000 * (i as usize + 1)),
            )
        })
        .collect();
    write_tree(&dirs.path().join("fast/data"), &source);
    let tiers = [("fast", pb::Tier::Hot), ("slow", pb::Tier::Cold)];
    ferry_tests::dataset::file_sites(&client, dirs.path(), &tiers).await;
    client
        .create_dataset(pb::Dataset {
            name: "d".into(),
            site: "fast".into(),
            path: "data".into(),
            size_bytes: source.values().map(|b| b.len() as u64).sum(),
            ..Default::default()
        })
        .await
        .unwrap();
    // A pause between copying and verifying, so the job is caught with objects pending.
    let agent = Agent::start(
        &cp,
        "fast",
        &[("FERRY_AGENT_FAULTS__PAUSE_BEFORE_VERIFY_MS", "1500")],
    )
    .await;
    let job = client
        .plan_migration(pb::PlanMigrationRequest {
            dataset: "d".into(),
            destination_site: "slow".into(),
            verify_mode: pb::VerifyMode::Full.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .job
        .unwrap();
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        let text = cp.metrics().await;
        let pending = sample(&text, r#"ferry_active_job_objects{state="pending"}"#);
        if pending > 0.0 {
            let done = sample(&text, r#"ferry_active_job_objects{state="done"}"#);
            assert_eq!(
                pending + done,
                3.0,
                "the listed objects, done or not:\n{text}"
            );
            let bytes = sample(&text, r#"ferry_active_job_bytes{state="pending"}"#)
                + sample(&text, r#"ferry_active_job_bytes{state="done"}"#);
            let total: usize = source.values().map(Vec::len).sum();
            assert_eq!(
                bytes, total as f64,
                "copied or not, every listed byte:\n{text}"
            );
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never pending:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let done = wait_for_end(&client, &job.id, TIMEOUT).await;
    assert_eq!(done.state, pb::JobState::Completed as i32, "{done:#?}");
    // A token that expires, for the expiry gauge.
    let expires = chrono::Utc::now() + chrono::TimeDelta::days(30);
    client
        .create_token("expiring", pb::Role::Viewer, None, Some(expires))
        .await
        .unwrap();
    // One refusal, so that a non-OK code is counted too.
    let missing = client.get_site("nowhere").await.unwrap_err();
    assert_eq!(missing.code(), tonic::Code::NotFound);
    Migrated {
        cp,
        agent,
        bytes: source.values().map(|b| b.len() as u64).sum(),
        _dirs: dirs,
    }
}

/// The value of the sample whose line starts with `series` (name and labels as
/// printed, labels in the order the exposition gives them).
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no sample {series} in:\n{text}"))
}

/// The first sample of `name` whose labels include every one of `labels`.
fn labelled(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .find(|l| labels.iter().all(|label| l.contains(label)))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no sample {name} with {labels:?} in:\n{text}"))
}

/// `promtool check metrics` on an exposition: success and no lint complaint.
fn promtool_check(text: &str, what: &str) {
    let mut child = Command::new(debian_program(
        "promtool",
        "prometheus",
        "FERRY_TEST_PROMTOOL",
        &["/usr/bin/promtool"],
    ))
    .args(["check", "metrics"])
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool check metrics on the {what}'s /metrics: {said}\n{text}"
    );
}

/// The metric families an exposition declares (`# TYPE` lines), histograms apart.
fn families(text: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut all = BTreeSet::new();
    let mut histograms = BTreeSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split(' ');
            let (name, kind) = (parts.next().unwrap(), parts.next().unwrap_or(""));
            all.insert(name.to_owned());
            if kind == "histogram" {
                histograms.insert(name.to_owned());
            }
        }
    }
    (all, histograms)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_endpoints_pass_promtool_and_count_a_migration() {
    let m = migrated().await;
    let agent = m.agent.metrics().await;
    let cp = m.cp.metrics().await;
    promtool_check(&agent, "agent");
    promtool_check(&cp, "control plane");

    assert_eq!(sample(&agent, "ferry_agent_objects_copied_total"), 3.0);
    assert_eq!(
        sample(&agent, "ferry_agent_bytes_copied_total"),
        m.bytes as f64
    );
    assert_eq!(sample(&agent, "ferry_agent_objects_verified_total"), 3.0);
    assert_eq!(
        sample(&agent, "ferry_agent_bytes_verified_total"),
        m.bytes as f64
    );
    assert_eq!(sample(&agent, "ferry_agent_object_size_bytes_count"), 3.0);
    assert_eq!(sample(&agent, "ferry_agent_bytes_in_flight"), 0.0);
    assert_eq!(sample(&agent, "ferry_agent_tasks_running"), 0.0);
    assert!(
        labelled(
            &agent,
            "ferry_agent_task_duration_seconds_count",
            &[r#"kind="copy""#, r#"outcome="ok""#]
        ) >= 1.0
    );
    assert_eq!(
        labelled(&agent, "ferry_agent_info", &[r#"site="fast""#]),
        1.0
    );
    assert!(sample(&agent, "process_resident_memory_bytes") > 0.0);

    assert_eq!(sample(&cp, r#"ferry_jobs{state="completed"}"#), 1.0);
    for state in ["done", "failed", "pending"] {
        let series = format!(r#"ferry_active_job_objects{{state="{state}"}}"#);
        assert_eq!(sample(&cp, &series), 0.0, "no job is running: {series}");
    }
    assert_eq!(sample(&cp, r#"ferry_jobs{state="copying"}"#), 0.0);
    let plan = [
        r#"method="PlanMigration""#,
        r#"code="Ok""#,
        r#"service="ferry.v1.JobService""#,
    ];
    assert_eq!(labelled(&cp, "ferry_grpc_server_handled_total", &plan), 1.0);
    assert_eq!(
        labelled(&cp, "ferry_grpc_server_handling_seconds_count", &plan),
        1.0
    );
    assert_eq!(
        labelled(
            &cp,
            "ferry_grpc_server_handled_total",
            &[r#"method="GetSite""#, r#"code="NotFound""#]
        ),
        1.0
    );
    let heartbeat = labelled(
        &cp,
        "ferry_agent_last_heartbeat_timestamp_seconds",
        &[r#"site="fast""#],
    );
    let now = chrono::Utc::now().timestamp() as f64;
    assert!((now - heartbeat).abs() < 30.0, "{heartbeat} vs {now}");
    assert_eq!(sample(&cp, "ferry_agent_heartbeat_deadline_seconds"), 15.0);
    assert_eq!(sample(&cp, "ferry_job_stall_threshold_seconds"), 1800.0);
    assert_eq!(sample(&cp, "ferry_outbox_messages"), 0.0);
    assert_eq!(
        labelled(&cp, "ferry_sites", &[r#"tier="hot""#, r#"backend="file""#]),
        1.0
    );
    assert_eq!(
        labelled(&cp, "ferry_site_stored_bytes", &[r#"site="slow""#]),
        m.bytes as f64
    );
    assert_eq!(
        labelled(
            &cp,
            "ferry_work_queue_pending_messages",
            &[r#"site="fast""#]
        ),
        0.0
    );

    // Every metric the alert rules and dashboards query is one of these.
    let (mut exported, histograms) = families(&agent);
    let (cp_families, cp_histograms) = families(&cp);
    exported.extend(cp_families);
    let histograms: BTreeSet<String> = histograms.into_iter().chain(cp_histograms).collect();
    exported.insert("up".into());
    // Exported only with TLS on: tests/tls.rs reads it.
    exported.insert("ferry_tls_certificate_expiry_timestamp_seconds".into());
    let token_expiry = labelled(
        &cp,
        "ferry_token_expiry_timestamp_seconds",
        &[r#"role="viewer""#],
    );
    assert!(
        (token_expiry - (now + 30.0 * 86400.0)).abs() < 60.0,
        "{token_expiry}"
    );
    let mut queried = Vec::new();
    let rules = std::fs::read_to_string(repo("deploy/prometheus/alerts.yml")).unwrap();
    for line in rules.lines() {
        if let Some(expr) = line.trim().strip_prefix("expr:") {
            queried.push(("alerts.yml".to_owned(), expr.trim().to_owned()));
        }
    }
    for entry in std::fs::read_dir(repo("deploy/grafana/dashboards")).unwrap() {
        let path = entry.unwrap().path();
        let dashboard: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        for panel in dashboard["panels"].as_array().unwrap() {
            for target in panel["targets"].as_array().into_iter().flatten() {
                if let Some(expr) = target["expr"].as_str() {
                    queried.push((path.display().to_string(), expr.to_owned()));
                }
            }
        }
    }
    assert!(queried.len() > 20, "{queried:?}");
    for (file, expr) in &queried {
        for name in promql::metric_names(expr) {
            let family = promql::family(&name, &histograms);
            assert!(
                exported.contains(family),
                "{file} queries {name}, which neither process exports: {expr}"
            );
        }
    }
}

/// Waits for Prometheus's answer to `query` to hold a sample, and returns the result.
async fn query(prometheus: SocketAddr, query: &str) -> serde_json::Value {
    let path = format!("/api/v1/query?query={}", percent_encode(query));
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        let (status, body) = http::try_get(prometheus, &path)
            .await
            .unwrap_or((0, "not listening yet".into()));
        if status == 200 {
            let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
            let result = &answer["data"]["result"];
            if result.as_array().is_some_and(|r| !r.is_empty()) {
                return result.clone();
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "Prometheus has no {query}: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'-' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn value(result: &serde_json::Value) -> f64 {
    result[0]["value"][1].as_str().unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_both_with_the_shipped_configuration() {
    let m = migrated().await;
    let dir = tempfile::tempdir().unwrap();
    // The shipped file, pointed at this test's processes and scraping every second;
    // everything else (jobs, paths, rule files) as shipped.
    let shipped = std::fs::read_to_string(repo("deploy/prometheus/prometheus.yml")).unwrap();
    assert!(shipped.contains(r#"["control-plane:50051"]"#), "{shipped}");
    assert!(
        shipped.contains(r#"["agent-fast:9465", "agent-archive:9465"]"#),
        "{shipped}"
    );
    let config = shipped
        .replace(
            r#"["control-plane:50051"]"#,
            &format!(r#"["127.0.0.1:{}"]"#, m.cp.port()),
        )
        .replace(
            r#"["agent-fast:9465", "agent-archive:9465"]"#,
            &format!(r#"["{}"]"#, m.agent.metrics_addr()),
        )
        .replace("scrape_interval: 15s", "scrape_interval: 1s")
        .replace("evaluation_interval: 15s", "evaluation_interval: 1s");
    std::fs::write(dir.path().join("prometheus.yml"), config).unwrap();
    std::fs::copy(
        repo("deploy/prometheus/alerts.yml"),
        dir.path().join("alerts.yml"),
    )
    .unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
    let mut prometheus = Command::new(debian_program(
        "prometheus",
        "prometheus",
        "FERRY_TEST_PROMETHEUS",
        &["/usr/bin/prometheus"],
    ))
    .arg(format!(
        "--config.file={}",
        dir.path().join("prometheus.yml").display()
    ))
    .arg(format!(
        "--storage.tsdb.path={}",
        dir.path().join("data").display()
    ))
    .arg(format!("--web.listen-address={addr}"))
    .stdout(log.try_clone().unwrap())
    .stderr(log)
    .spawn()
    .unwrap();
    let killed = scopeguard(move || {
        let _ = prometheus.kill();
        let _ = prometheus.wait();
    });

    let up = query(addr, r#"up{job="ferry-control-plane"} == 1"#).await;
    assert_eq!(value(&up), 1.0);
    let up = query(addr, r#"up{job="ferry-agent"} == 1"#).await;
    assert_eq!(value(&up), 1.0);
    let copied = query(addr, "ferry_agent_objects_copied_total").await;
    assert_eq!(value(&copied), 3.0, "{copied}");
    assert_eq!(copied[0]["metric"]["job"], "ferry-agent");
    let completed = query(addr, r#"ferry_jobs{state="completed"}"#).await;
    assert_eq!(value(&completed), 1.0, "{completed}");
    let bytes = query(addr, "sum(ferry_site_stored_bytes)").await;
    assert_eq!(
        value(&bytes),
        2.0 * m.bytes as f64,
        "source and destination: {bytes}"
    );

    // The shipped rules loaded and evaluate without error; none fires on a healthy pair.
    let (status, body) = http::get(addr, "/api/v1/rules").await;
    assert_eq!(status, 200, "{body}");
    let rules: serde_json::Value = serde_json::from_str(&body).unwrap();
    let loaded: Vec<&serde_json::Value> = rules["data"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap())
        .collect();
    let shipped_alerts = std::fs::read_to_string(repo("deploy/prometheus/alerts.yml"))
        .unwrap()
        .matches("- alert:")
        .count();
    assert_eq!(loaded.len(), shipped_alerts, "{body}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (_, body) = http::get(addr, "/api/v1/rules").await;
    let rules: serde_json::Value = serde_json::from_str(&body).unwrap();
    for rule in rules["data"]["groups"][0]["rules"].as_array().unwrap() {
        assert_eq!(rule["health"], "ok", "{rule}");
        assert_eq!(rule["state"], "inactive", "{rule}");
    }
    drop(killed);
}

/// Runs `f` when dropped: the Prometheus process is stopped however the test ends.
fn scopeguard(f: impl FnOnce()) -> impl Drop {
    struct Guard<F: FnOnce()>(Option<F>);
    impl<F: FnOnce()> Drop for Guard<F> {
        fn drop(&mut self) {
            if let Some(f) = self.0.take() {
                f();
            }
        }
    }
    Guard(Some(f))
}
