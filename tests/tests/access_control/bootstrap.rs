//! The first admin token seeded from a file (a mounted Kubernetes Secret): adopted on
//! the first start instead of a generated one, nothing written to the data directory;
//! a seed too short to be a secret stops start-up naming the setting.

use std::process::Command;

use ferry_sdk::pb;
use ferry_tests::{binaries, control_plane::Options, ControlPlane};

#[tokio::test]
async fn the_first_admin_token_can_come_from_a_mounted_secret() {
    let secrets = tempfile::tempdir().unwrap();
    let seed = secrets.path().join("admin-token");
    let secret = "fy_s3cr3t-from-the-cluster-0123456789abcdef";
    std::fs::write(&seed, format!("{secret}\n")).unwrap();
    let cp = ControlPlane::start_with(Options {
        extra_env: vec![(
            "FERRY_AUTH__ADMIN_TOKEN_FILE".into(),
            seed.display().to_string(),
        )],
        ..Default::default()
    })
    .await;
    assert!(
        !cp.data_dir().join("admin.token").exists(),
        "no generated token is written"
    );
    let client = cp.client_with(secret).await;
    let me = client.who_am_i().await.unwrap();
    assert_eq!(me.role, pb::Role::Admin as i32, "{me:?}");
    assert!(
        cp.log()
            .contains("the admin token is the one this file holds"),
        "{}",
        cp.log()
    );
    // A wrong token is still refused.
    let outsider = cp
        .client_with("fy_s3cr3t-from-the-cluster-0123456789abcdeX")
        .await;
    assert_eq!(
        outsider.who_am_i().await.unwrap_err().code(),
        tonic::Code::Unauthenticated
    );
}

#[test]
fn a_seed_too_short_to_be_a_secret_stops_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let seed = dir.path().join("admin-token");
    std::fs::write(&seed, "fy_hunter2\n").unwrap();
    let output = Command::new(binaries::path("ferry-control-plane"))
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .env("FERRY_AUTH__ADMIN_TOKEN_FILE", &seed)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.starts_with("error: invalid configuration: auth.admin_token_file: "),
        "{stderr}"
    );
    assert!(
        stderr.contains("fy_ then at least 32 characters"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("hunter2"),
        "the seed is never printed: {stderr}"
    );
}
