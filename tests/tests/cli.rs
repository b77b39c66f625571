//! The `ferry` command-line tool against a real control plane: what a person types, the
//! tables and JSON it prints, and the exit codes scripts branch on.

#![allow(clippy::unwrap_used)]

use std::process::{Command, Output};

use ferry_tests::{binaries, free_port, ControlPlane};

/// Where `ferry` calls, and with which token (`FERRY_TOKEN`).
#[derive(Clone)]
struct Target {
    endpoint: String,
    token: String,
}

impl Target {
    /// The control plane, as its admin.
    fn admin(cp: &ControlPlane) -> Self {
        Target {
            endpoint: cp.endpoint(),
            token: cp.admin_token().to_owned(),
        }
    }
}

fn ferry(target: &Target, args: &[&str]) -> Output {
    Command::new(binaries::path("ferry"))
        .arg("--server")
        .arg(&target.endpoint)
        .args(args)
        .env_remove("FERRY_SERVER")
        .env_remove("FERRY_TOKEN_FILE")
        .env("FERRY_TOKEN", &target.token)
        .output()
        .unwrap()
}

/// File-system sites `a` (hot) and `dr` (cold) below `root`, and dataset `d` at `a:d`,
/// created with the CLI.
fn hot_dataset_and_dr(target: &Target, root: &std::path::Path) {
    let uri = |s: &str| format!("file://{}", root.join(s).display());
    succeed(
        target,
        &["site", "create", "a", "--uri", &uri("a"), "--tier", "hot"],
    );
    succeed(
        target,
        &[
            "site",
            "create",
            "dr",
            "--uri",
            &uri("dr"),
            "--tier",
            "cold",
        ],
    );
    succeed(
        target,
        &["dataset", "create", "d", "--site", "a", "--path", "d"],
    );
}

/// Runs `ferry`, which must succeed, and returns what it printed.
fn succeed(target: &Target, args: &[&str]) -> String {
    let out = ferry(target, args);
    assert!(
        out.status.success(),
        "ferry {args:?} failed: {}",
        stderr(&out)
    );
    stdout(&out)
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[tokio::test]
async fn a_session_at_the_terminal() {
    let cp = ControlPlane::start().await;
    let ep = Target::admin(&cp);
    let run = |args: &[&str]| succeed(&ep, args);

    run(&[
        "site",
        "create",
        "fast",
        "--uri",
        "file:///srv/fast",
        "--tier",
        "hot",
        "--latency-ms",
        "2",
    ]);
    run(&[
        "site",
        "create",
        "vault",
        "--uri",
        "s3://ferry-vault/eu",
        "--tier",
        "cold",
        "--option",
        "endpoint=http://127.0.0.1:9000",
        "--credential",
        "access_key_id=AKIA1",
        "--credential",
        "secret_access_key=cli-canary-secret",
    ]);
    run(&[
        "dataset",
        "create",
        "genome",
        "--site",
        "fast",
        "--path",
        "projects/genome",
        "--label",
        "team=genomics",
        "--size-bytes",
        "2GiB",
        "--object-count",
        "10",
    ]);
    run(&[
        "policy",
        "create",
        "tiering",
        "--selector",
        "team=genomics",
        "--place",
        "cold=vault",
        "--warm-after",
        "1h",
    ]);

    let table = run(&["site", "list"]);
    let header = table.lines().next().unwrap();
    assert!(
        header.contains("NAME") && header.contains("TIER") && header.contains("URI"),
        "{table}"
    );
    assert!(table.contains("s3://ferry-vault/eu"), "{table}");
    assert!(!table.contains("cli-canary-secret"));

    let sites: serde_json::Value = serde_json::from_str(&run(&["--json", "site", "list"])).unwrap();
    let vault = sites
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "vault")
        .unwrap();
    assert_eq!(vault["tier"], "cold");
    assert_eq!(
        vault["credential_keys"],
        serde_json::json!(["access_key_id", "secret_access_key"])
    );
    assert!(!sites.to_string().contains("cli-canary-secret"));

    let details: serde_json::Value =
        serde_json::from_str(&run(&["--json", "dataset", "get", "genome"])).unwrap();
    assert_eq!(details["dataset"]["size_bytes"], 2u64 << 30);
    assert_eq!(details["effective_policy"]["name"], "tiering");
    assert_eq!(details["replicas"][0]["role"], "primary");

    run(&["dataset", "update", "genome", "--owner", "lab-7"]);
    let listed: serde_json::Value =
        serde_json::from_str(&run(&["--json", "dataset", "list", "--owner", "lab-7"])).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1);

    run(&["site", "update", "fast", "--price-egress-gb", "0.09"]);
    let fast: serde_json::Value =
        serde_json::from_str(&run(&["--json", "site", "get", "fast"])).unwrap();
    assert_eq!(fast["prices"]["egress_per_gb"], 0.09);
    assert_eq!(
        fast["latency_ms"], 2,
        "fields not named on the command line are kept"
    );

    // A dataset never read gets a model that says why it is not used.
    let trained = run(&["model", "train", "genome"]);
    assert!(
        trained.starts_with("trained 1 dataset(s) in ") && trained.contains("0 model(s) in use"),
        "{trained}"
    );
    assert!(trained.contains("nothing to forecast"), "{trained}");
    let models: serde_json::Value =
        serde_json::from_str(&run(&["--json", "model", "list", "genome"])).unwrap();
    assert_eq!(models[0]["kind"], "none");
    assert_eq!(models[0]["in_use"], false);
    assert!(models[0]["version"]
        .as_str()
        .unwrap()
        .starts_with("none/1@"));
}

#[tokio::test]
async fn exit_codes_tell_scripts_what_happened() {
    let cp = ControlPlane::start().await;
    let ep = Target::admin(&cp);
    assert!(ferry(
        &ep,
        &[
            "site",
            "create",
            "fast",
            "--uri",
            "file:///srv/fast",
            "--tier",
            "hot"
        ]
    )
    .status
    .success());
    assert!(ferry(
        &ep,
        &["dataset", "create", "d", "--site", "fast", "--path", "p"]
    )
    .status
    .success());

    let out = ferry(&ep, &["site", "get", "missing"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("site missing not found"),
        "{}",
        stderr(&out)
    );

    let out = ferry(&ep, &["site", "delete", "fast"]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("still holds 1 dataset"),
        "{}",
        stderr(&out)
    );

    let out = ferry(
        &ep,
        &["site", "create", "bad", "--uri", "nfs://x", "--tier", "hot"],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("site.uri"), "{}", stderr(&out));

    let nobody = Target {
        endpoint: format!("http://127.0.0.1:{}", free_port()),
        ..ep.clone()
    };
    let out = ferry(&nobody, &["site", "list"]);
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("cannot reach the Ferry control plane"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_migration_planned_and_watched_from_the_command_line() {
    let cp = ControlPlane::start().await;
    let ep = Target::admin(&cp);
    let dirs = tempfile::tempdir().unwrap();
    let source = ferry_tests::dataset::mixed(11, 3 << 20);
    ferry_tests::dataset::write_tree(&dirs.path().join("a/d"), &source);
    let run = |args: &[&str]| succeed(&ep, args);
    let root = |s: &str| format!("file://{}", dirs.path().join(s).display());
    run(&["site", "create", "a", "--uri", &root("a"), "--tier", "hot"]);
    run(&["site", "create", "b", "--uri", &root("b"), "--tier", "cold"]);
    run(&["dataset", "create", "d", "--site", "a", "--path", "d"]);
    let _agent = ferry_tests::Agent::start(&cp, "a", &[]).await;

    let dry: serde_json::Value = serde_json::from_str(&run(&[
        "--json",
        "job",
        "plan",
        "d",
        "--to",
        "b",
        "--dry-run",
    ]))
    .unwrap();
    assert_eq!(dry["dry_run"]["objects"], source.len());

    // `--watch` follows the job to its end and exits 0 only if it completed.
    let ep2 = ep.clone();
    let watched = tokio::task::spawn_blocking(move || {
        ferry(
            &ep2,
            &[
                "job", "plan", "d", "--to", "b", "--verify", "full", "--key", "cli", "--watch",
            ],
        )
    })
    .await
    .unwrap();
    assert_eq!(
        watched.status.code(),
        Some(0),
        "{}\n{}",
        stdout(&watched),
        stderr(&watched)
    );
    assert!(
        stdout(&watched).contains("completed"),
        "{}",
        stdout(&watched)
    );
    assert_eq!(
        ferry_tests::dataset::read_tree(&dirs.path().join("b/d")),
        source
    );

    let jobs: serde_json::Value =
        serde_json::from_str(&run(&["--json", "job", "list", "--dataset", "d"])).unwrap();
    let id = jobs[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(jobs[0]["state"], "completed");
    let objects = run(&["job", "objects", &id]);
    assert!(
        objects.contains("verified") && objects.contains("big/large.bin"),
        "{objects}"
    );
    // The report: one JSON line per object, checksums matching an independent hash.
    let report = run(&["job", "report", &id]);
    let lines: Vec<serde_json::Value> = report
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), source.len(), "{report}");
    for line in &lines {
        let key = line["key"].as_str().unwrap();
        let bytes = &source[key];
        let xxh3 = format!("{:032x}", xxhash_rust::xxh3::xxh3_128(bytes));
        assert_eq!(line["size"], bytes.len(), "{line}");
        assert_eq!(line["status"], "verified", "{line}");
        assert_eq!(line["source_xxh3"], xxh3.as_str(), "{line}");
        assert_eq!(line["destination_xxh3"], xxh3.as_str(), "{line}");
        assert_eq!(line["error"], "", "{line}");
    }
    assert_eq!(run(&["job", "report", &id, "--status", "failed"]), "");
    // The same key again returns the same job, saying so.
    let again = run(&["job", "plan", "d", "--to", "b", "--key", "cli"]);
    assert!(again.contains("created: no"), "{again}");
    let agents = run(&["agent", "list"]);
    assert!(agents.contains("alive"), "{agents}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_from_the_command_line_shows_its_figures_and_the_replica_lag() {
    let cp = ControlPlane::start().await;
    let ep = Target::admin(&cp);
    let dirs = tempfile::tempdir().unwrap();
    let source = ferry_tests::dataset::mixed(12, 64 << 10);
    ferry_tests::dataset::write_tree(&dirs.path().join("a/d"), &source);
    let run = |args: &[&str]| succeed(&ep, args);
    hot_dataset_and_dr(&ep, dirs.path());
    std::fs::create_dir_all(dirs.path().join("dr/d")).unwrap();
    std::fs::write(dirs.path().join("dr/d/stray.txt"), b"only at dr").unwrap();
    let _agent = ferry_tests::Agent::start(&cp, "a", &[]).await;

    // A cap without deletions is a usage error, before anything is called.
    let capped = ferry(
        &ep,
        &["job", "sync", "d", "--to", "dr", "--max-delete", "5"],
    );
    assert_eq!(capped.status.code(), Some(2), "{}", stderr(&capped));
    assert!(
        stderr(&capped).contains("--deletion delete"),
        "{}",
        stderr(&capped)
    );

    let sync = |args: &'static [&'static str]| {
        let ep = ep.clone();
        tokio::task::spawn_blocking(move || ferry(&ep, args))
    };
    let first = sync(&["job", "sync", "d", "--to", "dr", "--watch"])
        .await
        .unwrap();
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    let mut expected = source.clone();
    expected.insert("stray.txt".into(), b"only at dr".to_vec());
    assert_eq!(
        ferry_tests::dataset::read_tree(&dirs.path().join("dr/d")),
        expected,
        "the extra is kept"
    );
    let jobs: serde_json::Value =
        serde_json::from_str(&run(&["--json", "job", "list", "--dataset", "d"])).unwrap();
    let job = &jobs[0];
    assert_eq!(job["kind"], "sync", "{job}");
    assert_eq!(job["sync"]["deletion"], "keep", "{job}");
    assert_eq!(job["sync"]["extras_found"], 1, "{job}");
    let shown = run(&["job", "get", job["id"].as_str().unwrap()]);
    assert!(shown.contains("1 found, 0 deleted"), "{shown}");
    let extras = run(&[
        "job",
        "objects",
        job["id"].as_str().unwrap(),
        "--status",
        "extra",
    ]);
    assert!(extras.contains("stray.txt"), "{extras}");

    let second = sync(&[
        "--json",
        "job",
        "sync",
        "d",
        "--to",
        "dr",
        "--deletion",
        "delete",
        "--max-delete",
        "1",
        "--watch",
    ])
    .await
    .unwrap();
    assert_eq!(second.status.code(), Some(0), "{}", stderr(&second));
    let planned: serde_json::Value =
        serde_json::from_str(stdout(&second).lines().next().unwrap()).unwrap();
    assert_eq!(planned["created"], true, "{planned}");
    assert_eq!(planned["job"]["sync"]["max_delete"], 1, "{planned}");
    assert_eq!(
        ferry_tests::dataset::read_tree(&dirs.path().join("dr/d")),
        source,
        "the extra is deleted"
    );

    let details: serde_json::Value =
        serde_json::from_str(&run(&["--json", "dataset", "get", "d"])).unwrap();
    let replica = details["replicas"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["role"] == "secondary")
        .unwrap_or_else(|| panic!("a secondary replica: {details}"));
    assert!(replica["sync_time"].is_string(), "{replica}");
    assert!(
        replica["lag"].as_str().is_some_and(|l| l.ends_with('s')),
        "{replica}"
    );
    let table = run(&["dataset", "get", "d"]);
    assert!(table.contains("SYNCED") && table.contains("LAG"), "{table}");
}

#[tokio::test]
async fn a_sync_schedule_is_created_listed_and_deleted_from_the_command_line() {
    let cp = ControlPlane::start().await;
    let ep = Target::admin(&cp);
    let dirs = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| succeed(&ep, args);
    hot_dataset_and_dr(&ep, dirs.path());

    let bad = ferry(
        &ep,
        &[
            "schedule", "create", "s", "--cron", "0 2 * *", "d", "--to", "dr",
        ],
    );
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
    assert!(stderr(&bad).contains("schedule.cron"), "{}", stderr(&bad));

    let created = run(&[
        "schedule",
        "create",
        "nightly",
        "--cron",
        "30 2 * * *",
        "--time-zone",
        "Europe/Paris",
        "d",
        "--to",
        "dr",
        "--deletion",
        "delete",
        "--max-delete",
        "10",
    ]);
    assert!(
        created.contains("nightly") && created.contains("30 2 * * * (Europe/Paris)"),
        "{created}"
    );
    let listed: serde_json::Value =
        serde_json::from_str(&run(&["--json", "schedule", "list", "--dataset", "d"])).unwrap();
    assert_eq!(listed[0]["name"], "nightly", "{listed}");
    assert_eq!(listed[0]["deletion"], "delete", "{listed}");
    assert_eq!(listed[0]["max_delete"], 10, "{listed}");
    assert!(listed[0]["next_run_time"].is_string(), "{listed}");
    assert_eq!(listed[0]["continuous"], false, "{listed}");
    assert_eq!(run(&["schedule", "runs", "nightly"]), "no jobs\n");
    let live = run(&[
        "schedule",
        "create",
        "live",
        "--continuous",
        "--cron",
        "0 3 * * *",
        "d",
        "--to",
        "dr",
    ]);
    assert!(
        live.contains("CONTINUOUS") && live.contains("yes (0 pending)"),
        "{live}"
    );
    run(&["schedule", "delete", "nightly"]);
    run(&["schedule", "delete", "live"]);
    assert_eq!(run(&["schedule", "list"]), "no schedules\n");
}

#[tokio::test]
async fn a_policy_cron_is_set_shown_and_cleared_from_the_command_line() {
    let cp = ControlPlane::start().await;
    let ep = Target::admin(&cp);
    let dirs = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| succeed(&ep, args);
    hot_dataset_and_dr(&ep, dirs.path());
    let create = |extra: &[&str]| {
        let mut args = vec![
            "policy",
            "create",
            "nightly",
            "--selector",
            "team=ops",
            "--place",
            "cold=dr",
            "--auto-migrate",
        ];
        args.extend_from_slice(extra);
        ferry(&ep, &args)
    };
    let both = create(&["--cron", "0 2 * * *", "--window", "22:00-06:00"]);
    assert_eq!(both.status.code(), Some(2), "{}", stderr(&both));
    assert!(stderr(&both).contains("cron"), "{}", stderr(&both));
    let zone_alone = create(&["--time-zone", "Europe/Paris"]);
    assert!(!zone_alone.status.success());
    assert!(
        stderr(&zone_alone).contains("--cron"),
        "{}",
        stderr(&zone_alone)
    );

    let created = create(&["--cron", "0 3 * * *", "--time-zone", "Europe/Paris"]);
    assert!(created.status.success(), "{}", stderr(&created));
    let shown = run(&["policy", "get", "nightly"]);
    assert!(
        shown.contains("0 3 * * * (Europe/Paris), next ") && shown.contains("0 runs, 0 skipped"),
        "{shown}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&run(&["--json", "policy", "get", "nightly"])).unwrap();
    assert_eq!(json["cron"], "0 3 * * *", "{json}");
    assert_eq!(json["time_zone"], "Europe/Paris", "{json}");
    assert!(json["next_run_time"].is_string(), "{json}");
    assert_eq!(run(&["policy", "runs", "nightly"]), "no jobs\n");

    run(&["policy", "update", "nightly", "--cron", "none"]);
    let json: serde_json::Value =
        serde_json::from_str(&run(&["--json", "policy", "get", "nightly"])).unwrap();
    assert_eq!(
        (json["cron"].as_str(), json["time_zone"].as_str()),
        (Some(""), Some(""))
    );
    assert!(json["next_run_time"].is_null(), "{json}");
}
