//! `ferry nats-user`: the entries it prints work in a real nats-server, with the
//! passwords it keeps in private files, and a site's entry confines its user.

use std::{collections::HashMap, os::unix::fs::PermissionsExt, time::Duration};

use ferry_proto::bus::{agent_inbox_prefix, dry_run_subject, jobs_subject};
use ferry_sdk::pb;
use ferry_tests::{ControlPlane, NatsServer};
use futures::StreamExt;

use crate::{
    cli::{ferry, text},
    nats::connect_collecting_complaints,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_entries_it_prints_let_each_user_in_and_confine_a_sites_user() {
    let cp = ControlPlane::start().await;
    let admin = cp.admin_token().to_owned();
    let site = cp
        .client()
        .await
        .create_site(
            pb::Site {
                name: "fast".into(),
                uri: "memory://fast".into(),
                tier: pb::Tier::Hot.into(),
                ..Default::default()
            },
            HashMap::new(),
        )
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = |name: &str| dir.path().join(name).display().to_string();
    // `ferry nats-user --site SITE --password-file FILE` as the admin.
    let for_site = |site: &str, password_file: &str| {
        ferry(
            &cp,
            &admin,
            &[
                "nats-user",
                "--site",
                site,
                "--password-file",
                password_file,
            ],
        )
    };

    // A site that does not exist: not found, and no password file left behind.
    let out = for_site("nowhere", &file("x"));
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(!dir.path().join("x").exists());

    let out = for_site("fast", &file("fast.pw"));
    assert!(out.status.success(), "{out:?}");
    let agent_entry = text(&out.stdout);
    let mode = std::fs::metadata(file("fast.pw"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let password = std::fs::read_to_string(file("fast.pw"))
        .unwrap()
        .trim()
        .to_owned();
    assert!(password.len() >= 32, "{password}");
    assert!(!agent_entry.contains(&password), "the password is printed");
    assert!(
        agent_entry.contains("user: \"ferry-agent-fast\""),
        "{agent_entry}"
    );
    assert!(agent_entry.contains("password: \"$2a$11$"), "{agent_entry}");
    assert!(
        text(&out.stderr).contains("wrote a new password"),
        "{out:?}"
    );
    // Asked again, it keeps the password it made.
    let again = for_site("fast", &file("fast.pw"));
    assert!(again.status.success(), "{again:?}");
    assert_eq!(
        std::fs::read_to_string(file("fast.pw")).unwrap().trim(),
        password
    );
    let out = ferry(
        &cp,
        "",
        &[
            "nats-user",
            "--control-plane",
            "--user",
            "ops",
            "--password-file",
            &file("cp.pw"),
        ],
    );
    assert!(out.status.success(), "{out:?}");
    let ops_entry = text(&out.stdout);
    let ops_password = std::fs::read_to_string(file("cp.pw"))
        .unwrap()
        .trim()
        .to_owned();

    // A broker configured with both entries.
    let nats = NatsServer::start_with_entries(vec![agent_entry, ops_entry]).await;
    let access = nats.access();
    let prefix = agent_inbox_prefix(&site.id);
    let e = access
        .connect_as("ferry-agent-fast", "not-the-password", &prefix)
        .await
        .expect_err("a wrong password is refused");
    assert!(e.to_string().contains("authorization"), "{e}");
    let ops = access
        .connect_as("ops", &ops_password, "_INBOX")
        .await
        .unwrap();
    ops.subscribe("ferry.jobs.>").await.unwrap();
    ops.flush().await.unwrap();

    let (agent, mut complaints) =
        connect_collecting_complaints(access.url(), "ferry-agent-fast", &password, &site.id)
            .await
            .unwrap();
    // Its dry runs it may serve; the work subject it may not read directly.
    let mut dry_runs = agent.subscribe(dry_run_subject(&site.id)).await.unwrap();
    agent.subscribe(jobs_subject(&site.id)).await.unwrap();
    agent.flush().await.unwrap();
    let complaint = tokio::time::timeout(Duration::from_secs(10), complaints.recv())
        .await
        .expect("a permissions violation")
        .unwrap();
    assert!(
        complaint.contains(&format!("Subscription to \"{}\"", jobs_subject(&site.id))),
        "{complaint}"
    );
    ops.publish(dry_run_subject(&site.id), "question".into())
        .await
        .unwrap();
    let question = tokio::time::timeout(Duration::from_secs(10), dry_runs.next())
        .await
        .expect("the dry run arrives")
        .unwrap();
    assert_eq!(&question.payload[..], b"question");
    assert!(
        complaints.try_recv().is_err(),
        "only the work subject was refused"
    );
}
