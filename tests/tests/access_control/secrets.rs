//! Secrets never leave where they belong: after a migration to S3 over mutual TLS, with
//! tokens of every kind made, used and revoked, no token secret, no site credential, no
//! NATS password and no private key is in any log, in the broker's store, in the
//! catalogue's files or the agent's state, nor in any answer of the API.

use std::{collections::HashMap, path::Path};

use ferry_sdk::{pb, TlsFiles};
use ferry_tests::{
    control_plane::Options,
    dataset::{mixed, wait_for_end, write_tree},
    s3::S3Server,
    Agent, ControlPlane, Pki,
};

/// Every file below `dir`, recursively, but `skip`.
fn files(dir: &Path, skip: &[&Path], out: &mut Vec<std::path::PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if skip.contains(&path.as_path()) {
            continue;
        }
        if path.is_dir() {
            files(&path, skip, out);
        } else {
            out.push(path);
        }
    }
}

fn holds(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// A run of the base64 body of a PEM private key: what a leak of it would show.
fn key_canary(path: &Path) -> String {
    let pem = std::fs::read_to_string(path).unwrap();
    let body: String = pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<Vec<_>>()
        .concat();
    body[10..50].to_owned()
}

fn tls_env(files: &TlsFiles) -> Vec<(String, String)> {
    let path = |p: &Option<std::path::PathBuf>| p.as_ref().unwrap().display().to_string();
    vec![
        ("FERRY_AGENT_TLS__CA_FILE".into(), path(&files.ca_file)),
        ("FERRY_AGENT_TLS__CERT_FILE".into(), path(&files.cert_file)),
        ("FERRY_AGENT_TLS__KEY_FILE".into(), path(&files.key_file)),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_is_in_a_log_the_bus_the_catalogue_or_an_answer() {
    let pki = Pki::new("ferry");
    let (cert, key) = pki.server();
    let operator = pki.client("operator");
    let agent_tls = pki.client("agent-fast");
    let cp = ControlPlane::start_with(Options {
        extra_env: vec![
            ("FERRY_TLS__CERT_FILE".into(), cert.display().to_string()),
            ("FERRY_TLS__KEY_FILE".into(), key.display().to_string()),
            (
                "FERRY_TLS__CLIENT_CA_FILE".into(),
                pki.ca_file().display().to_string(),
            ),
        ],
        client_tls: Some(operator.clone()),
        ..Default::default()
    })
    .await;
    let admin = cp.client().await;

    let s3 = S3Server::start().await;
    s3.create_bucket("vault").await;
    let (bucket_site, credentials) = s3.site("vault", "vault", pb::Tier::Cold);
    admin.create_site(bucket_site, credentials).await.unwrap();
    let dirs = tempfile::tempdir().unwrap();
    let source = mixed(23, 6 << 20);
    write_tree(&dirs.path().join("fast/ledger"), &source);
    admin
        .create_site(
            pb::Site {
                name: "fast".into(),
                uri: format!("file://{}", dirs.path().join("fast").display()),
                tier: pb::Tier::Hot.into(),
                ..Default::default()
            },
            HashMap::new(),
        )
        .await
        .unwrap();
    admin
        .create_dataset(pb::Dataset {
            name: "ledger".into(),
            site: "fast".into(),
            path: "ledger".into(),
            ..Default::default()
        })
        .await
        .unwrap();

    let env = tls_env(&agent_tls);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let agent = Agent::start(&cp, "fast", &env).await;
    let viewer_secret = cp.token("dashboard", pb::Role::Viewer, None).await;
    let viewer = cp.client_with(&viewer_secret).await;
    let job = admin
        .plan_migration(pb::PlanMigrationRequest {
            dataset: "ledger".into(),
            destination_site: "vault".into(),
            verify_mode: pb::VerifyMode::Full.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .job
        .unwrap();
    let done = wait_for_end(&viewer, &job.id, std::time::Duration::from_secs(120)).await;
    assert_eq!(
        done.state,
        pb::JobState::Completed as i32,
        "{done:#?}\n{}",
        agent.log()
    );
    // The bytes arrived: read back with the S3 client, not through Ferry.
    let listed = s3
        .client()
        .list_objects_v2()
        .bucket("vault")
        .send()
        .await
        .unwrap();
    assert_eq!(listed.contents().len(), source.len());
    admin.revoke_token("dashboard").await.unwrap();

    // What the API answers, to each caller.
    let mut answers = vec![
        format!("{:?}", admin.list_sites(None).await.unwrap()),
        format!("{:?}", admin.get_job(&job.id).await.unwrap()),
        format!("{:?}", admin.list_job_objects(&job.id, None).await.unwrap()),
        format!("{:?}", admin.list_tokens(true).await.unwrap()),
        format!(
            "{:?}",
            admin
                .list_audit_events(&Default::default(), 1000)
                .await
                .unwrap()
        ),
        format!("{:?}", viewer.list_sites(None).await.unwrap_err()),
    ];
    answers.push(format!("{:?}", admin.list_agents(None).await.unwrap()));

    let canaries = [
        ("the S3 secret key", s3.secret_key().to_owned()),
        ("the admin token", cp.admin_token().to_owned()),
        ("the viewer token", viewer_secret.clone()),
        ("the agent token", agent_token(&agent)),
        (
            "the agent's NATS password",
            agent
                .env("FERRY_AGENT_NATS_PASSWORD")
                .expect("the harness gives the agent its NATS user")
                .to_owned(),
        ),
        (
            "the control plane's NATS password",
            std::fs::read_to_string(cp.nats_access().control_plane_password_file())
                .unwrap()
                .trim()
                .to_owned(),
        ),
        ("the server's private key", key_canary(&key)),
        (
            "the operator's private key",
            key_canary(operator.key_file.as_ref().unwrap()),
        ),
        (
            "the agent's private key",
            key_canary(agent_tls.key_file.as_ref().unwrap()),
        ),
    ];
    for answer in &answers {
        for (what, canary) in &canaries {
            assert!(
                !answer.contains(canary.as_str()),
                "{what} is in an answer: {answer}"
            );
        }
    }

    // Everything on disk and every log: the control plane's data directory (but the
    // admin token's own file), the broker's store, the agent's state, and the logs.
    let nats = cp.nats().expect("the control plane's own broker");
    let admin_file = cp.data_dir().join("admin.token");
    let mut scanned = Vec::new();
    files(cp.data_dir(), &[admin_file.as_path()], &mut scanned);
    files(nats.store_dir(), &[], &mut scanned);
    files(agent.state_dir(), &[], &mut scanned);
    assert!(
        scanned.iter().any(|p| p.ends_with("ferry.db"))
            && scanned.len() > 5
            && scanned.iter().any(|p| p.starts_with(nats.store_dir())),
        "{scanned:#?}"
    );
    let mut texts: Vec<(String, Vec<u8>)> = scanned
        .iter()
        .map(|p| (p.display().to_string(), std::fs::read(p).unwrap()))
        .collect();
    texts.push(("the control plane's log".into(), cp.log().into_bytes()));
    texts.push(("the agent's log".into(), agent.log().into_bytes()));
    texts.push(("the broker's log".into(), nats.log().into_bytes()));
    assert!(
        cp.log().contains("token created") && agent.log().contains("registered"),
        "the logs are captured"
    );
    for (place, bytes) in &texts {
        for (what, canary) in &canaries {
            assert!(!holds(bytes, canary), "{what} is in {place}");
        }
    }
    // The admin token is where the control plane said, readable by its owner only.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&admin_file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    assert!(cp.log().contains(&admin_file.display().to_string()));
}

/// The token the harness gave the agent.
fn agent_token(agent: &Agent) -> String {
    agent
        .env("FERRY_AGENT_TOKEN")
        .expect("the harness gives the agent its token")
        .to_owned()
}
