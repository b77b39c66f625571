//! Tokens and the audit log from the `ferry` command line, the admin token the control
//! plane writes on its first start, and authentication turned off for development.

use std::process::{Command, Output};

use ferry_tests::{binaries, control_plane::Options, ControlPlane};

/// `ferry --server <cp> ARGS` with `FERRY_TOKEN` set to `token` (unset when empty).
pub(crate) fn ferry(cp: &ControlPlane, token: &str, args: &[&str]) -> Output {
    let mut command = Command::new(binaries::path("ferry"));
    command
        .arg("--server")
        .arg(cp.endpoint())
        .args(args)
        .env_remove("FERRY_SERVER")
        .env_remove("FERRY_TOKEN_FILE")
        .env_remove("FERRY_TOKEN");
    if !token.is_empty() {
        command.env("FERRY_TOKEN", token);
    }
    command.output().unwrap()
}

pub(crate) fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test]
async fn tokens_and_the_audit_log_from_the_command_line() {
    let cp = ControlPlane::start().await;
    let admin = cp.admin_token().to_owned();

    // Without a token: refused, exit code 6, and a hint where the first one is.
    let out = ferry(&cp, "", &["site", "list"]);
    assert_eq!(out.status.code(), Some(6), "{out:?}");
    let err = text(&out.stderr);
    assert!(
        err.contains("authorization: Bearer <token>") && err.contains("admin.token"),
        "{err}"
    );

    // An operator token whose secret goes to a private file, not the terminal.
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("ci.token");
    let out = ferry(
        &cp,
        &admin,
        &[
            "token",
            "create",
            "ci",
            "--role",
            "operator",
            "--expires-in",
            "30d",
            "--secret-file",
            secret_file.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{out:?}");
    let shown = text(&out.stdout);
    let secret = std::fs::read_to_string(&secret_file).unwrap();
    let secret = secret.trim();
    assert!(secret.starts_with("fy_") && secret.len() == 46, "{secret}");
    assert!(!shown.contains(secret), "{shown}");
    assert!(
        shown.contains("operator") && shown.contains("secret written to"),
        "{shown}"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&secret_file)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    // The file works with --token-file; an operator may read but not create sites.
    let as_ci = |args: &[&str]| {
        Command::new(binaries::path("ferry"))
            .arg("--server")
            .arg(cp.endpoint())
            .arg("--token-file")
            .arg(&secret_file)
            .args(args)
            .env_remove("FERRY_TOKEN")
            .output()
            .unwrap()
    };
    assert!(as_ci(&["site", "list"]).status.success());
    // It can ask who it is, and sees when it expires.
    let out = as_ci(&["--json", "whoami"]);
    assert!(out.status.success(), "{out:?}");
    let me: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(me["name"], "ci", "{me}");
    assert_eq!(me["role"], "operator", "{me}");
    assert_eq!(me["principal"], "token:ci", "{me}");
    assert!(me["expire_time"].is_string(), "{me}");
    let out = as_ci(&[
        "site",
        "create",
        "x",
        "--uri",
        "memory:///x",
        "--tier",
        "hot",
    ]);
    assert_eq!(out.status.code(), Some(6), "{out:?}");
    assert!(
        text(&out.stderr).contains("needs the admin role; token:ci has the operator role"),
        "{out:?}"
    );

    // Shown once on the terminal when no file is given; listed without it afterwards.
    let out = ferry(
        &cp,
        &admin,
        &["token", "create", "wall", "--role", "viewer"],
    );
    assert!(out.status.success(), "{out:?}");
    assert!(text(&out.stdout).contains("shown this once"), "{out:?}");
    let out = ferry(
        &cp,
        &admin,
        &["--json", "token", "create", "bot", "--role", "viewer"],
    );
    let made: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let bot_secret = made["secret"].as_str().unwrap().to_owned();
    assert_eq!(made["token"]["role"], "viewer");
    let out = ferry(&cp, &admin, &["token", "list"]);
    let listed = text(&out.stdout);
    for name in ["admin", "ci", "wall", "bot"] {
        assert!(listed.contains(name), "{listed}");
    }
    assert!(
        !listed.contains(secret) && !listed.contains(&bot_secret),
        "{listed}"
    );

    // An agent token names its site, and only an agent token does.
    let out = ferry(&cp, &admin, &["token", "create", "lost", "--role", "agent"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(text(&out.stderr).contains("site: an agent token needs the site it serves"));

    // Revoked: refused at once.
    let out = ferry(&cp, &admin, &["token", "revoke", "ci"]);
    assert!(out.status.success(), "{out:?}");
    let out = as_ci(&["site", "list"]);
    assert_eq!(out.status.code(), Some(6), "{out:?}");
    assert!(
        text(&out.stderr).contains("token ci has been revoked"),
        "{out:?}"
    );
    let out = ferry(&cp, &admin, &["--json", "token", "list", "--all"]);
    let all: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let ci = all
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "ci")
        .unwrap();
    assert!(ci["revoke_time"].is_string(), "{ci}");

    // The audit log, filtered, as a table and as JSON.
    let out = ferry(&cp, &admin, &["audit", "--resource", "token:ci"]);
    assert!(out.status.success(), "{out:?}");
    let table = text(&out.stdout);
    assert!(
        table.contains("AdminService/CreateToken") && table.contains("AdminService/RevokeToken"),
        "{table}"
    );
    let out = ferry(&cp, &admin, &["--json", "audit", "--principal", "token:ci"]);
    let events: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let events = events.as_array().unwrap();
    assert!(
        events
            .iter()
            .any(|e| e["method"] == "ferry.v1.SiteService/CreateSite"
                && e["outcome"].as_str().unwrap().starts_with("denied: ")),
        "{events:#?}"
    );
    let out = ferry(&cp, &bot_secret, &["audit"]);
    assert_eq!(
        out.status.code(),
        Some(6),
        "a viewer cannot read the audit log"
    );
}

#[tokio::test]
async fn the_first_start_writes_one_admin_token_and_says_where() {
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().join("data");
    let cp = ControlPlane::start_with(Options {
        data_dir: Some(data_dir.clone()),
        ..Default::default()
    })
    .await;
    let first = cp.admin_token().to_owned();
    let log = cp.log();
    let path = data_dir.join("admin.token");
    assert!(log.contains(&format!("path={}", path.display())), "{log}");
    assert!(log.contains("admin token written"), "{log}");
    assert!(!log.contains(&first));
    let (code, _) = cp.terminate().await;
    assert_eq!(code, Some(0));

    // A restart over the same catalogue makes no other token: the first still works.
    let cp = ControlPlane::start_with(Options {
        data_dir: Some(data_dir.clone()),
        ..Default::default()
    })
    .await;
    assert_eq!(cp.admin_token(), first);
    let tokens = cp.client().await.list_tokens(true).await.unwrap();
    assert_eq!(tokens.len(), 1, "{tokens:?}");
    assert!(!cp.log().contains("admin token written"));
}

#[tokio::test]
async fn without_authentication_every_caller_is_an_admin_and_every_start_warns() {
    let cp = ControlPlane::start_with(Options {
        extra_env: vec![("FERRY_AUTH__ENABLED".into(), "false".into())],
        ..Default::default()
    })
    .await;
    assert!(cp.log().contains("authentication is OFF"), "{}", cp.log());
    assert!(!cp.data_dir().join("admin.token").exists());
    let out = ferry(
        &cp,
        "",
        &[
            "site",
            "create",
            "open",
            "--uri",
            "memory:///open",
            "--tier",
            "hot",
        ],
    );
    assert!(out.status.success(), "{out:?}");
    let out = ferry(&cp, "", &["--json", "audit", "--resource", "site:open"]);
    let events: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(events[0]["principal"], "anonymous", "{events}");
}
