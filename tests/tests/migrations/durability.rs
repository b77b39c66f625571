//! Durability without a flush per file: small files written to a local destination
//! are synced to disk once per batch of results, before the batch is reported, so
//! nothing the control plane hears of as copied can be lost by a power cut after.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_destination_is_synced_before_each_batch_of_results_is_reported() {
    let cp = ControlPlane::start().await;
    let client = cp.client().await;
    let source: BTreeMap<String, Vec<u8>> = (0..300)
        .map(|i| {
            let key = format!("d{}/f{i:03}.txt", i % 7);
            (key, ferry_tests::dataset::bytes(900 + i, 2048 + i as usize))
        })
        .collect();
    let dirs = two_local_sites(&client, &source).await;
    let agent = Agent::start(&cp, "a", &[]).await;
    let job = plan(&client, "data", "b", pb::VerifyMode::Full, "synced").await;
    let done = wait_for_end(&client, &job.id, TIMEOUT).await;
    assert_eq!(done.state, pb::JobState::Completed as i32, "{done:#?}");
    assert_eq!(read_tree(&dirs.path().join("b/data")), source);

    // Per task, in the agent's log: every batch reported was synced just before, with
    // the same number of objects, and the batches cover every object.
    let log = agent.log();
    let mut synced: HashMap<String, Option<u64>> = HashMap::new();
    let mut reported = 0;
    for line in log.lines() {
        let is_sync = line.contains("destination synced");
        let is_report = line.contains("results reported");
        if !(is_sync || is_report) {
            continue;
        }
        let task = field(line, "task=").unwrap_or_else(|| panic!("no task in {line}"));
        let objects: u64 = field(line, "objects=")
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no count in {line}"));
        let last = synced.entry(task.to_owned()).or_default();
        if is_sync {
            *last = Some(objects);
        } else {
            assert_eq!(
                last.take(),
                Some(objects),
                "a batch reported without its sync before it: {line}\n{log}"
            );
            reported += objects;
        }
    }
    assert_eq!(reported, source.len() as u64, "{log}");
}

/// The value of `name` (`task=`, `objects=`) in a text log line.
fn field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let start = line.rfind(name)? + name.len();
    line[start..].split([' ', '}', ':']).next()
}
