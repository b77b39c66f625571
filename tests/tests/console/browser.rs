//! The console in headless Chromium, as operators use it: the scenarios in
//! `tests/console-e2e/` sign in, find a dataset, plan a filtered migration from its dry
//! run, watch it complete live, read its activity, approve a recommendation and follow
//! it to its job, and check what a viewer may not do; axe-core scans every page. Each
//! outcome is checked again here, through the API and the bytes at the destination.

use std::{collections::HashMap, path::Path, time::Duration};

use chrono::{TimeDelta, Utc};
use ferry_proto::time::to_timestamp;
use ferry_sdk::{pb, Client, JobFilter};
use ferry_tests::{
    browser::run_scenario,
    dataset::{advise, bytes, read_tree, wait_for_end, write_tree},
    Agent, ControlPlane,
};

/// The reads of `genome`: the files a `*.fastq` filter selects.
const READS: usize = 36;

struct Fixture {
    cp: ControlPlane,
    admin: Client,
    dirs: tempfile::TempDir,
    _agent: Agent,
}

async fn site(admin: &Client, root: &Path, name: &str, tier: pb::Tier, price: f64) {
    admin
        .create_site(
            pb::Site {
                name: name.into(),
                uri: format!("file://{}", root.join(name).display()),
                tier: tier.into(),
                latency_ms: if tier == pb::Tier::Hot { 2 } else { 180 },
                prices: Some(pb::Prices {
                    storage_per_gb_month: price,
                    egress_per_gb: 0.09,
                    ..Default::default()
                }),
                ..Default::default()
            },
            HashMap::new(),
        )
        .await
        .unwrap();
}

/// Sites `fast` (hot) and `archive` (cold); dataset `genome` on fast (36 reads and 4
/// other files) and dataset `scans` on fast, idle for two hours, so that the advice is
/// to move it to the archive; an agent of fast.
async fn fixture() -> Fixture {
    let cp = ControlPlane::start().await;
    let admin = cp.client().await;
    let dirs = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dirs.path().join("archive")).unwrap();
    site(&admin, dirs.path(), "fast", pb::Tier::Hot, 0.023).await;
    site(&admin, dirs.path(), "archive", pb::Tier::Cold, 0.004).await;
    // A bucket no test reaches, whose credentials the operator scenario sets.
    admin
        .create_site(
            pb::Site {
                name: "vault".into(),
                uri: "s3://vault/ferry".into(),
                options: HashMap::from([
                    ("endpoint".to_owned(), "http://127.0.0.1:9".to_owned()),
                    ("region".to_owned(), "us-east-1".to_owned()),
                ]),
                // Warm, so that the advice for cold data stays the archive.
                tier: pb::Tier::Warm.into(),
                ..Default::default()
            },
            HashMap::new(),
        )
        .await
        .unwrap();
    let mut genome = std::collections::BTreeMap::new();
    for i in 0..READS {
        genome.insert(
            format!("reads/sample-{i:02}.fastq"),
            bytes(i as u64, 2000 + 97 * i),
        );
    }
    for name in ["reference.bin", "index.bin", "notes.txt", "meta/run.json"] {
        genome.insert(name.to_owned(), bytes(name.len() as u64, 5000));
    }
    write_tree(&dirs.path().join("fast/genome"), &genome);
    let mut scans = std::collections::BTreeMap::new();
    for i in 0..8 {
        scans.insert(format!("scan-{i}.tif"), bytes(100 + i, 3000));
    }
    write_tree(&dirs.path().join("fast/scans"), &scans);
    for (name, labels, objects) in [
        ("genome", "genomics", &genome),
        ("scans", "imaging", &scans),
    ] {
        admin
            .create_dataset(pb::Dataset {
                name: name.into(),
                site: "fast".into(),
                path: name.into(),
                size_bytes: objects.values().map(|v| v.len() as u64).sum(),
                object_count: objects.len() as u64,
                owner: "research".into(),
                labels: HashMap::from([("team".to_owned(), labels.to_owned())]),
                ..Default::default()
            })
            .await
            .unwrap();
    }
    let now = Utc::now();
    admin
        .access_events()
        .record_access_events(pb::RecordAccessEventsRequest {
            events: (0..12)
                .map(|i| pb::AccessEvent {
                    dataset: "scans".into(),
                    op: pb::AccessOp::Read.into(),
                    // Little read, for its size: nothing keeps it warm.
                    bytes: 1000,
                    latency_ms: 3.0,
                    time: Some(to_timestamp(
                        now - TimeDelta::hours(2) - TimeDelta::minutes(i),
                    )),
                    ..Default::default()
                })
                .collect(),
        })
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while admin
        .get_dataset("scans")
        .await
        .unwrap()
        .dataset
        .last_access_time
        .is_none()
    {
        assert!(tokio::time::Instant::now() < deadline, "events not folded");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Advice recorded now, pending: to move the idle scans to the archive.
    let advice = advise(&admin, "scans").await;
    assert_eq!(advice.recommended_tier, pb::Tier::Cold as i32, "{advice:?}");
    let agent = Agent::start(&cp, "fast", &[]).await;
    Fixture {
        cp,
        admin,
        dirs,
        _agent: agent,
    }
}

fn reads_bytes() -> u64 {
    (0..READS).map(|i| 2000 + 97 * i as u64).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_plans_watches_and_audits_migrations_in_the_browser() {
    let f = fixture().await;
    let out = run_scenario(
        "operator.mjs",
        &[
            ("FERRY_E2E_URL", f.cp.endpoint()),
            ("FERRY_E2E_TOKEN", f.cp.admin_token().to_owned()),
            ("FERRY_E2E_READS", READS.to_string()),
            ("FERRY_E2E_READS_BYTES", reads_bytes().to_string()),
        ],
    )
    .await;
    println!("{out}");

    // The filtered migration the browser started ran to completion, and moved exactly
    // the reads, byte for byte.
    let jobs = f
        .admin
        .list_jobs(&JobFilter {
            dataset: Some("genome".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(jobs.len(), 1, "{jobs:#?}");
    let job = wait_for_end(&f.admin, &jobs[0].id, Duration::from_secs(60)).await;
    assert_eq!(job.state, pb::JobState::Completed as i32, "{job:#?}");
    assert_eq!(job.objects_done, READS as u64);
    let moved = read_tree(&f.dirs.path().join("archive/genome"));
    let source = read_tree(&f.dirs.path().join("fast/genome"));
    assert_eq!(moved.len(), READS);
    for (key, content) in &moved {
        assert!(key.ends_with(".fastq"), "{key} was not selected");
        assert_eq!(Some(content), source.get(key), "{key} differs");
    }
    // The recommendation approved in the browser became the job it linked to.
    let scans = f
        .admin
        .list_jobs(&JobFilter {
            dataset: Some("scans".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(scans.len(), 1, "{scans:#?}");
    assert!(
        out.contains(&format!("followed to job {}", scans[0].id)),
        "{out}"
    );
    // The credentials typed in the browser are stored, and only their names come back.
    let vault = f.admin.get_site("vault").await.unwrap();
    assert_eq!(
        vault.credential_keys,
        ["access_key_id", "secret_access_key"],
        "{vault:?}"
    );
    assert!(!format!("{vault:?}").contains("console-typed-secret"));
    // Both datasets now live on the archive, and their sources stay on fast as
    // secondary replicas: each site holds both, and says so.
    wait_for_end(&f.admin, &scans[0].id, Duration::from_secs(60)).await;
    for name in ["fast", "archive"] {
        let site = f.admin.get_site(name).await.unwrap();
        assert_eq!(site.dataset_count, 2, "{site:?}");
        assert!(site.bytes_stored > reads_bytes(), "{site:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_sees_no_button_it_may_not_press_and_a_revoked_token_signs_out() {
    let f = fixture().await;
    let viewer = f.cp.token("wall", pb::Role::Viewer, None).await;
    let job = f
        .admin
        .plan_migration(pb::PlanMigrationRequest {
            dataset: "genome".into(),
            destination_site: "archive".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .job
        .unwrap();
    wait_for_end(&f.admin, &job.id, Duration::from_secs(60)).await;
    run_scenario(
        "viewer.mjs",
        &[
            ("FERRY_E2E_URL", f.cp.endpoint()),
            ("FERRY_E2E_TOKEN", viewer),
            ("FERRY_E2E_ADMIN_TOKEN", f.cp.admin_token().to_owned()),
            ("FERRY_E2E_TOKEN_NAME", "wall".to_owned()),
            ("FERRY_E2E_JOB", job.id.clone()),
        ],
    )
    .await;
    // The revocation the scenario made is the admin's, on record.
    let tokens = f.admin.list_tokens(true).await.unwrap();
    let wall = tokens.iter().find(|t| t.name == "wall").unwrap();
    assert!(wall.revoke_time.is_some(), "{wall:?}");
}
