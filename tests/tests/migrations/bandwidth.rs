//! Bandwidth limits per job and per site, shared by all the agents that run the job.

use super::*;

/// The time of the first line of an agent's log that contains `what`.
fn logged_at(log: &str, what: &str) -> chrono::DateTime<chrono::Utc> {
    let line = log
        .lines()
        .find(|l| l.contains(what))
        .unwrap_or_else(|| panic!("the agent never logged '{what}':\n{log}"));
    let stamp = line.split_whitespace().next().unwrap();
    chrono::DateTime::parse_from_rfc3339(stamp)
        .unwrap_or_else(|e| panic!("{stamp}: {e}"))
        .to_utc()
}

/// Plans the migration of `data` to site `b` at a bandwidth limit.
async fn plan_limited(client: &Client, limit: u64) -> pb::Job {
    let job = plan_job(
        client,
        pb::PlanMigrationRequest {
            dataset: "data".into(),
            destination_site: "b".into(),
            bandwidth_limit_bytes_per_sec: limit,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(job.bandwidth_limit_bytes_per_sec, limit);
    job
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bandwidth_limit_paces_the_copy_and_can_be_lowered_while_it_runs() {
    const TOTAL: usize = 200_000_000;
    const LIMIT: f64 = 20e6;
    const LOWER: f64 = 8e6;
    // Pacing slots are 1 MiB; one per read in flight reaches past a change, and 8 MiB
    // covers them all.
    const CHUNK: f64 = (8 << 20) as f64;
    let cp = ControlPlane::start().await;
    let client = cp.client().await;
    let source = one_large_file(5, TOTAL);
    let dirs = two_local_sites(&client, &source).await;
    let b = dirs.path().join("b");
    let agent = Agent::start(&cp, "a", &[]).await;

    let planned_at = chrono::Utc::now();
    let started = std::time::Instant::now();
    let job = plan_limited(&client, LIMIT as u64).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let updated = client.update_job(&job.id, LOWER as u64).await.unwrap();
    assert_eq!(updated.bandwidth_limit_bytes_per_sec, LOWER as u64);
    let done = wait_for_end(&client, &job.id, TIMEOUT).await;
    let elapsed = started.elapsed().as_secs_f64();
    assert_eq!(done.state, pb::JobState::Completed as i32, "{done:#?}");
    assert_eq!(read_tree(&b.join("data")), source);

    // Never faster than the plan's limit allows...
    assert!(
        elapsed >= TOTAL as f64 / LIMIT,
        "{TOTAL} bytes in {elapsed:.1} s beat {LIMIT} bytes/s"
    );
    // ...and, from when the agent applied the lower limit, never faster than that: until
    // then at most LIMIT bytes a second (and one chunk) went, the rest at LOWER.
    let switch = (logged_at(&agent.log(), "bandwidth limit changed") - planned_at).as_seconds_f64();
    let before = (LIMIT * switch + CHUNK).min(TOTAL as f64);
    let bound = before / LIMIT + (TOTAL as f64 - before) / LOWER;
    assert!(
        elapsed >= bound,
        "done in {elapsed:.1} s, yet the lower limit applied after {switch:.1} s allows no \
         less than {bound:.1} s"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_request_is_paced_by_the_jobs_limit() {
    const MIB: usize = 1 << 20;
    const LIMIT: f64 = 8e6;
    let source = BTreeMap::from([
        (
            "a.bin".to_owned(),
            ferry_tests::dataset::bytes(71, 12 * MIB),
        ),
        (
            "b.bin".to_owned(),
            ferry_tests::dataset::bytes(72, 12 * MIB + 5),
        ),
    ]);
    let total: usize = source.values().map(Vec::len).sum();
    let files = FilesToBucket::start(source, "paced", "paced", &STREAMED_UP_TO_16_MIB).await;

    let before = files.s3.writes();
    let started = std::time::Instant::now();
    let job = plan_job(
        &files.client,
        pb::PlanMigrationRequest {
            dataset: "paced".into(),
            destination_site: "bucket".into(),
            bandwidth_limit_bytes_per_sec: LIMIT as u64,
            ..Default::default()
        },
    )
    .await;
    files.completes(&job).await;
    let elapsed = started.elapsed().as_secs_f64();
    let after = files.s3.writes();
    assert_eq!(
        (
            after.single_puts - before.single_puts,
            after.multipart_uploads - before.multipart_uploads
        ),
        (2, 0),
        "each object in one streamed request: {after:?}"
    );
    files.holds_the_source().await;
    assert!(
        elapsed >= total as f64 / LIMIT,
        "{total} bytes in {elapsed:.1} s beat {LIMIT} bytes/s"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_site_limit_is_shared_among_the_sites_agents() {
    const TOTAL: usize = 100_000_000;
    const SITE_LIMIT: u64 = 20_000_000;
    let cp = ControlPlane::start().await;
    let client = cp.client().await;
    let source = one_large_file(8, TOTAL);
    let dirs = two_local_sites(&client, &source).await;
    let b = dirs.path().join("b");
    let limited = pb::Site {
        name: "a".into(),
        bandwidth_limit_bytes_per_sec: SITE_LIMIT,
        ..Default::default()
    };
    client
        .update_site(limited, ["bandwidth_limit_bytes_per_sec"], None)
        .await
        .unwrap();
    assert_eq!(
        client
            .get_site("a")
            .await
            .unwrap()
            .bandwidth_limit_bytes_per_sec,
        SITE_LIMIT
    );
    let agents = [
        Agent::start(&cp, "a", &[]).await,
        Agent::start(&cp, "a", &[]).await,
    ];
    // Each agent takes half of the site's limit once it sees the other, and the one
    // that found the other already there held off until it knew.
    let half = format!("agents=2 share={}", SITE_LIMIT / 2);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !agents.iter().all(|a| a.log().contains(&half)) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the agents never split the site's limit:\n{}\n{}",
            agents[0].log(),
            agents[1].log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        agents
            .iter()
            .any(|a| a.log().contains("holding off until they know of this one")),
        "neither agent held off for the other:\n{}\n{}",
        agents[0].log(),
        agents[1].log()
    );

    let started = std::time::Instant::now();
    let job = plan(&client, "data", "b", pb::VerifyMode::Quick, "shared").await;
    let done = wait_for_end(&client, &job.id, TIMEOUT).await;
    let elapsed = started.elapsed().as_secs_f64();
    assert_eq!(done.state, pb::JobState::Completed as i32, "{done:#?}");
    assert_eq!(read_tree(&b.join("data")), source);
    let share = (SITE_LIMIT / 2) as f64;
    assert!(
        elapsed >= TOTAL as f64 / share,
        "{TOTAL} bytes in {elapsed:.1} s beat one agent's share of {share} bytes/s"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jobs_limit_holds_for_all_its_tasks_on_all_its_agents() {
    const FILES: u64 = 10;
    const FILE: usize = 15_000_000;
    const TOTAL: f64 = (FILES as usize * FILE) as f64;
    const LIMIT: f64 = 10e6;
    // Pacing slots are 1 MiB: one per task in flight (four on each agent) may reach
    // past the moment an agent learns it shares the job.
    const LATE_SLOTS: f64 = (8 << 20) as f64;
    let cp = ControlPlane::start().await;
    let client = cp.client().await;
    let source: BTreeMap<String, Vec<u8>> = (0..FILES)
        .map(|i| {
            (
                format!("part-{i:02}.bin"),
                ferry_tests::dataset::bytes(700 + i, FILE),
            )
        })
        .collect();
    let dirs = two_local_sites(&client, &source).await;
    // One object per task: ten tasks, up to four at once on each agent.
    let settings = [("FERRY_AGENT_TASK_OBJECTS", "1")];
    let agents = [
        Agent::start(&cp, "a", &settings).await,
        Agent::start(&cp, "a", &settings).await,
    ];

    let planned_at = chrono::Utc::now();
    let started = std::time::Instant::now();
    let job = plan_limited(&client, LIMIT as u64).await;
    // Both agents tell the control plane they work on the job.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let working = client.list_agents(Some("a")).await.unwrap();
        let on_job = working.iter().filter(|a| a.jobs.contains(&job.id)).count();
        if on_job == 2 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "both agents never ran tasks of the job at once: {working:#?}\n{}\n{}",
            agents[0].log(),
            agents[1].log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let done = wait_for_end(&client, &job.id, TIMEOUT).await;
    let elapsed = started.elapsed().as_secs_f64();
    assert_eq!(done.state, pb::JobState::Completed as i32, "{done:#?}");
    assert_eq!(read_tree(&dirs.path().join("b/data")), source);

    // Each agent went at half the job's limit once it knew of the other: the first
    // from its next heartbeat, the second at once, after holding off until the first
    // knew.
    let halved = format!("agents=2 bytes_per_sec={}", LIMIT as u64 / 2);
    let halved_at =
        |agent: &Agent| (logged_at(&agent.log(), &halved) - planned_at).as_seconds_f64();
    // How long an agent held off, by its log: the one that joined the other on the job.
    let held_for = |agent: &Agent| {
        let log = agent.log();
        let line = log.lines().find(|l| l.contains(&halved)).unwrap();
        let ms = line.split("hold_ms=").nth(1).and_then(|v| {
            v.split_whitespace()
                .next()
                .and_then(|n| n.parse::<u64>().ok())
        });
        ms.unwrap_or_else(|| panic!("no hold_ms in '{line}'")) as f64 / 1e3
    };
    let held = [held_for(&agents[0]), held_for(&agents[1])];
    assert!(
        held.iter().any(|h| *h > 0.0),
        "the agent that joined the other on the job did not hold off:\n{}\n{}",
        agents[0].log(),
        agents[1].log()
    );
    let halved = [halved_at(&agents[0]), halved_at(&agents[1])];
    // Until it knew of the other, each agent went at no more than the whole limit; from
    // then on at half of it, after its hold if it held. So by `t` both together can
    // have sent LIMIT × (t + (halved₀ + halved₁ − held₀ − held₁) / 2) bytes, and one
    // slot more for each task in flight.
    let bound = (TOTAL - LATE_SLOTS) / LIMIT - (halved[0] + halved[1] - held[0] - held[1]) / 2.0;
    println!(
        "{TOTAL} bytes in {elapsed:.1} s (no less than {bound:.1} s); the agents shared \
         the limit after {halved:.1?} s, holding off for {held:?} s"
    );
    assert!(
        elapsed >= bound,
        "{TOTAL} bytes in {elapsed:.1} s, yet with the job's limit of {LIMIT} bytes/s, \
         split after {halved:.1?} s and held off for {held:?} s, no less than {bound:.1} s"
    );
    // Once both know, the agents leave the job at its end and its share behind.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while client
        .list_agents(Some("a"))
        .await
        .unwrap()
        .iter()
        .any(|a| a.jobs.contains(&job.id))
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "an agent still reports the finished job"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
