//! One migration is one trace: the CLI's command, the control plane's RPC and plan, each
//! dispatch, every task an agent runs with each object's copy and verification, the
//! reports applied and the switch, all sent to an in-process OTLP receiver by the real
//! binaries, each span a child of the one that caused it. The same run logs JSON lines
//! that carry the job id and that trace's ids.

#![allow(clippy::unwrap_used)]

use std::{process::Command, time::Duration};

use ferry_proto::v1 as pb;
use ferry_tests::{
    agent::Agent,
    binaries,
    control_plane::{ControlPlane, Options},
    dataset::{read_tree, wait_for_end, write_tree},
    otlp::{OtlpReceiver, ReceivedSpan},
};

const OBJECTS: usize = 5;
const TIMEOUT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_migration_is_one_trace_from_the_cli_to_each_object() {
    let otlp = OtlpReceiver::start().await;
    let mut cp_env = otlp.env();
    cp_env.push(("FERRY_LOG__FORMAT".into(), "json".into()));
    let cp = ControlPlane::start_with(Options {
        extra_env: cp_env,
        ..Default::default()
    })
    .await;
    let client = cp.client().await;
    let dirs = tempfile::tempdir().unwrap();
    let source: std::collections::BTreeMap<String, Vec<u8>> = (0..OBJECTS)
        .map(|i| {
            (
                format!("part-{i}.bin"),
                ferry_tests::dataset::bytes(i as u64, 4096 + i),
            )
        })
        .collect();
    write_tree(&dirs.path().join("fast/data"), &source);
    let tiers = [("fast", pb::Tier::Hot), ("slow", pb::Tier::Cold)];
    ferry_tests::dataset::file_sites(&client, dirs.path(), &tiers).await;
    client
        .create_dataset(pb::Dataset {
            name: "traced".into(),
            site: "fast".into(),
            path: "data".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut agent_env = otlp.env();
    agent_env.push(("FERRY_AGENT_LOG__FORMAT".into(), "json".into()));
    let agent_env: Vec<(&str, &str)> = agent_env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let agent = Agent::start(&cp, "fast", &agent_env).await;

    let out = Command::new(binaries::path("ferry"))
        .args([
            "--server",
            &cp.endpoint(),
            "--json",
            "job",
            "plan",
            "traced",
        ])
        .args(["--to", "slow", "--verify", "full"])
        .env("FERRY_TOKEN", cp.admin_token())
        .env_remove("FERRY_TOKEN_FILE")
        .envs(otlp.env())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "ferry job plan: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let planned: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let job_id = planned["id"]
        .as_str()
        .or(planned["job"]["id"].as_str())
        .unwrap_or_else(|| panic!("no job id in {stdout}"))
        .to_owned();
    let done = wait_for_end(&client, &job_id, TIMEOUT).await;
    assert_eq!(done.state, pb::JobState::Completed as i32, "{done:#?}");
    assert_eq!(read_tree(&dirs.path().join("slow/data")), source);

    // Every span of the trace, once the switch and each object's verification arrived
    // and no span names a parent that has not.
    let root_name = "ferry job plan";
    let spans = otlp
        .wait_for(TIMEOUT, "complete trace of the migration", |spans| {
            let Some(root) = spans.iter().find(|s| s.name == root_name) else {
                return false;
            };
            let trace = in_trace(spans, &root.trace_id);
            named(&trace, "switch").len() == 1
                && named(&trace, "verify_object").len() >= OBJECTS
                && trace
                    .iter()
                    .all(|s| s.parent_span_id.is_empty() || parent(&trace, s).is_some())
        })
        .await;
    let root = spans.iter().find(|s| s.name == root_name).unwrap();
    assert_eq!(root.service, "ferry");
    assert_eq!(root.parent_span_id, "", "the CLI's command is the root");
    let trace = in_trace(&spans, &root.trace_id);

    let rpc = only(&trace, "ferry.v1.JobService/PlanMigration");
    assert_eq!(rpc.service, "ferry-control-plane");
    assert_eq!(
        rpc.parent_span_id, root.span_id,
        "the RPC is the CLI call's child"
    );
    assert_eq!(rpc.attribute("rpc.grpc.status_code"), Some("0"));
    let plan = only(&trace, "plan");
    assert_eq!(plan.parent_span_id, rpc.span_id);
    assert_eq!(plan.attribute("dataset"), Some("traced"));

    let dispatches = named(&trace, "dispatch");
    assert!(
        dispatches.iter().any(|d| d.parent_span_id == plan.span_id),
        "the listing's dispatch is the plan's child: {dispatches:#?}"
    );
    let tasks = named(&trace, "task");
    assert!(tasks.len() >= 2, "a listing and a copy task: {tasks:#?}");
    for task in &tasks {
        assert_eq!(task.service, "ferry-agent");
        assert_eq!(task.attribute("job_id"), Some(job_id.as_str()));
        assert_eq!(
            parent(&trace, task).map(|p| p.name.as_str()),
            Some("dispatch"),
            "each task is its dispatch's child"
        );
    }
    // Small local files are copied in batches, each object still in a span of its own.
    for batch in named(&trace, "copy_batch") {
        assert_eq!(parent(&trace, batch).map(|p| p.name.as_str()), Some("task"));
    }
    for (phase, parents) in [
        ("copy_object", &["task", "copy_batch"][..]),
        ("verify_object", &["task", "copy_object"][..]),
    ] {
        let mut keys: Vec<&str> = named(&trace, phase)
            .iter()
            .map(|s| {
                let up = parent(&trace, s).unwrap();
                assert!(
                    parents.contains(&up.name.as_str()),
                    "{phase} under {}",
                    up.name
                );
                s.attribute("key").unwrap()
            })
            .collect();
        keys.sort_unstable();
        keys.dedup();
        let expected: Vec<&str> = source.keys().map(String::as_str).collect();
        assert_eq!(keys, expected, "one {phase} span per object");
    }
    let reports = named(&trace, "apply_report");
    assert!(!reports.is_empty());
    for report in &reports {
        assert_eq!(report.service, "ferry-control-plane");
        assert_eq!(
            parent(&trace, report).map(|p| p.service.as_str()),
            Some("ferry-agent"),
            "a report is applied as a child of the agent's span that sent it"
        );
    }
    let switch = only(&trace, "switch");
    assert_eq!(switch.attribute("job_id"), Some(job_id.as_str()));
    let mut up = parent(&trace, switch);
    while let Some(span) = up.filter(|s| s.name != "apply_report") {
        up = parent(&trace, span);
    }
    assert!(up.is_some(), "the last verification's report switches");

    // JSON logs: every line the agent wrote while running the job's tasks names the job
    // and the trace.
    let lines: Vec<serde_json::Value> = agent
        .log()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert!(!lines.is_empty(), "the agent logs JSON:\n{}", agent.log());
    let task_lines: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|l| {
            ["task", "copy_object", "verify_object", "copy"]
                .contains(&l["span"].as_str().unwrap_or(""))
        })
        .collect();
    assert!(task_lines.len() >= OBJECTS, "{lines:#?}");
    for line in task_lines {
        assert_eq!(line["job_id"], job_id.as_str(), "{line}");
        assert_eq!(line["trace_id"], root.trace_id.as_str(), "{line}");
        assert_eq!(line["span_id"].as_str().map(str::len), Some(16), "{line}");
    }
    let switched = cp
        .log()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|l| l["span"] == "switch" && l["level"] == "INFO")
        .unwrap_or_else(|| panic!("no JSON line from the switch:\n{}", cp.log()));
    assert_eq!(switched["job_id"], job_id.as_str(), "{switched}");
    assert_eq!(switched["trace_id"], root.trace_id.as_str(), "{switched}");
}

fn in_trace<'a>(spans: &'a [ReceivedSpan], trace_id: &str) -> Vec<&'a ReceivedSpan> {
    spans.iter().filter(|s| s.trace_id == trace_id).collect()
}

fn named<'a>(trace: &[&'a ReceivedSpan], name: &str) -> Vec<&'a ReceivedSpan> {
    trace.iter().copied().filter(|s| s.name == name).collect()
}

fn only<'a>(trace: &[&'a ReceivedSpan], name: &str) -> &'a ReceivedSpan {
    let found = named(trace, name);
    assert_eq!(found.len(), 1, "one {name} span: {trace:#?}");
    found[0]
}

fn parent<'a>(trace: &[&'a ReceivedSpan], span: &ReceivedSpan) -> Option<&'a ReceivedSpan> {
    trace
        .iter()
        .copied()
        .find(|s| s.span_id == span.parent_span_id)
}
