//! A token that stops being valid stops working everywhere within a second, streams
//! already open included: revoked by an admin, or expired.

use std::time::{Duration, Instant};

use ferry_sdk::{pb, Client};
use futures::StreamExt;
use tonic::Code;

use ferry_tests::ControlPlane;

/// A queued job that stays queued (no agent runs its site), and so a `WatchJob` that
/// stays open, sending an update every second.
async fn a_job_that_waits(admin: &Client) -> pb::Job {
    for site in ["here", "there"] {
        admin
            .create_site(
                pb::Site {
                    name: site.into(),
                    uri: format!("memory:///{site}"),
                    tier: pb::Tier::Hot.into(),
                    ..Default::default()
                },
                Default::default(),
            )
            .await
            .unwrap();
    }
    admin
        .create_dataset(pb::Dataset {
            name: "waiting".into(),
            site: "here".into(),
            path: "waiting".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    admin
        .plan_migration(pb::PlanMigrationRequest {
            dataset: "waiting".into(),
            destination_site: "there".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .job
        .unwrap()
}

/// Opens `WatchJob` as `client`, reads its first update, and returns the stream.
async fn watching(client: &Client, job: &str) -> tonic::Streaming<pb::JobProgress> {
    let mut stream = client
        .jobs()
        .watch_job(pb::WatchJobRequest { job: job.into() })
        .await
        .unwrap()
        .into_inner();
    let first = stream.next().await.expect("a first update").unwrap();
    assert_eq!(first.job.unwrap().id, job);
    stream
}

/// Reads the stream until it ends; its end status, and how long after `since`.
async fn end_of(
    mut stream: tonic::Streaming<pb::JobProgress>,
    since: Instant,
) -> (tonic::Status, Duration) {
    let deadline = Duration::from_secs(10);
    loop {
        let next = tokio::time::timeout(deadline.saturating_sub(since.elapsed()), stream.next())
            .await
            .expect("the stream ended within 10 s");
        match next {
            Some(Ok(_update)) => continue,
            Some(Err(status)) => return (status, since.elapsed()),
            None => panic!("the stream ended without a status"),
        }
    }
}

#[tokio::test]
async fn a_revoked_token_ends_its_open_stream_and_is_refused_within_a_second() {
    let cp = ControlPlane::start().await;
    let admin = cp.client().await;
    let job = a_job_that_waits(&admin).await;
    let secret = cp.token("dashboard", pb::Role::Viewer, None).await;
    let viewer = cp.client_with(&secret).await;
    let stream = watching(&viewer, &job.id).await;
    // The admin's own stream is not affected by another token's revocation.
    let mut admins = watching(&admin, &job.id).await;

    let revoked_at = Instant::now();
    let revoked = admin.revoke_token("dashboard").await.unwrap();
    assert!(revoked.revoke_time.is_some());
    let (status, after) = end_of(stream, revoked_at).await;
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    assert_eq!(
        status.message(),
        "the token of this call was revoked or has expired"
    );
    assert!(
        after < Duration::from_secs(1),
        "the stream ended {after:?} after revocation"
    );

    let e = viewer.list_sites(None).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);
    assert!(
        e.to_string().contains("token dashboard has been revoked"),
        "{e}"
    );
    // Still listed, as revoked, when asked for inactive tokens too.
    assert!(admin
        .list_tokens(false)
        .await
        .unwrap()
        .iter()
        .all(|t| t.name != "dashboard"));
    let all = admin.list_tokens(true).await.unwrap();
    let listed = all.iter().find(|t| t.name == "dashboard").unwrap();
    assert!(listed.revoke_time.is_some());
    // Revoking again changes nothing and is no error.
    admin.revoke_token("dashboard").await.unwrap();

    let update = tokio::time::timeout(Duration::from_secs(3), admins.next())
        .await
        .expect("the admin's stream goes on")
        .unwrap();
    assert!(update.is_ok(), "{update:?}");

    // The last admin token cannot be revoked: nobody could make tokens any more.
    let e = admin.revoke_token("admin").await.unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "{e}");
    assert!(e.to_string().contains("last valid admin token"), "{e}");
    let second = cp.token("second-admin", pb::Role::Admin, None).await;
    cp.client_with(&second)
        .await
        .revoke_token("admin")
        .await
        .unwrap();
    assert_eq!(
        admin.list_sites(None).await.unwrap_err().code(),
        Code::Unauthenticated
    );
}

#[tokio::test]
async fn an_expired_token_ends_its_open_stream_and_is_refused() {
    let cp = ControlPlane::start().await;
    let admin = cp.client().await;
    let job = a_job_that_waits(&admin).await;
    let lifetime = Duration::from_secs(3);
    let made = admin
        .create_token(
            "short-lived",
            pb::Role::Viewer,
            None,
            Some(chrono::Utc::now() + chrono::Duration::from_std(lifetime).unwrap()),
        )
        .await
        .unwrap();
    let created = Instant::now();
    let viewer = cp.client_with(&made.secret).await;
    let stream = watching(&viewer, &job.id).await;
    let (status, after) = end_of(stream, created).await;
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    assert!(
        after >= lifetime - Duration::from_millis(100) && after < lifetime + Duration::from_secs(1),
        "the stream ended {after:?} after a token that lives {lifetime:?} was made"
    );
    let e = viewer.list_sites(None).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);
    assert!(
        e.to_string().contains("token short-lived has expired"),
        "{e}"
    );
}

#[tokio::test]
async fn an_agent_whose_token_is_revoked_stops_and_says_why() {
    let cp = ControlPlane::start().await;
    let admin = cp.client().await;
    admin
        .create_site(
            pb::Site {
                name: "edge".into(),
                uri: "memory:///edge".into(),
                tier: pb::Tier::Hot.into(),
                ..Default::default()
            },
            Default::default(),
        )
        .await
        .unwrap();
    let mut agent = ferry_tests::Agent::start(&cp, "edge", &[]).await;
    admin.revoke_token("agent-edge-0").await.unwrap();
    let status = agent
        .wait_exit(Duration::from_secs(20))
        .await
        .expect("the agent stops within a heartbeat or two");
    assert!(!status.success(), "{status:?}");
    let log = agent.log();
    assert!(
        log.contains("the control plane refuses this agent's token")
            && log.contains("token agent-edge-0 has been revoked"),
        "{log}"
    );
}
