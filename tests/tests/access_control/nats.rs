//! The broker side of confinement: nats-server runs with a user per agent site whose
//! permissions (those `ferry nats-user` writes) let it read and take only its own site's
//! work and report only under its own site; the control plane applies a report only if
//! the site its subject names runs the job.

use std::{collections::HashMap, time::Duration};

use async_nats::jetstream::{self, consumer};
use ferry_proto::bus::{agent_inbox_prefix, jobs_subject, progress_subject, site_consumer};
use ferry_sdk::{pb, AuditFilter, Client};
use futures::StreamExt;
use prost::Message;
use tokio::sync::mpsc;

use ferry_tests::ControlPlane;

use crate::outsider::s3_site;

/// Sites a, b and c (S3, never reached: no agent runs), datasets `ledger` and `journal`
/// at b, and a planned job of `ledger` moving to c, which b's agents run. Returns the job
/// and the sites' ids by name.
async fn job_between_b_and_c(cp: &ControlPlane) -> (pb::Job, HashMap<String, String>) {
    let admin = cp.client().await;
    let mut ids = HashMap::new();
    for name in ["a", "b", "c"] {
        let site = s3_site(&admin, name, HashMap::new()).await;
        ids.insert(name.to_owned(), site.id);
    }
    for name in ["ledger", "journal"] {
        admin
            .create_dataset(pb::Dataset {
                name: name.into(),
                site: "b".into(),
                path: name.into(),
                ..Default::default()
            })
            .await
            .unwrap();
    }
    let job = plan(&admin, "ledger").await;
    assert_eq!(job.executing_site, ids["b"]);
    (job, ids)
}

async fn plan(admin: &Client, dataset: &str) -> pb::Job {
    admin
        .plan_migration(pb::PlanMigrationRequest {
            dataset: dataset.into(),
            destination_site: "c".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .job
        .unwrap()
}

/// A connection as the NATS user of site `site_id`'s agents, with its own inbox prefix as
/// the agent uses, and the server's complaints about it.
async fn connect_as_agent_of(
    cp: &ControlPlane,
    site_id: &str,
) -> (async_nats::Client, mpsc::UnboundedReceiver<String>) {
    let (user, password) = cp.nats_access().agent_user(site_id).await;
    connect_collecting_complaints(cp.nats_url(), &user, &password, site_id)
        .await
        .unwrap()
}

/// A connection as `user` with site `site_id`'s inbox prefix, and a channel of the
/// server's complaints about it (permissions violations).
pub(crate) async fn connect_collecting_complaints(
    url: &str,
    user: &str,
    password: &str,
    site_id: &str,
) -> Result<(async_nats::Client, mpsc::UnboundedReceiver<String>), async_nats::ConnectError> {
    let (errors, complaints) = mpsc::unbounded_channel();
    let client = async_nats::ConnectOptions::new()
        .user_and_password(user.to_owned(), password.to_owned())
        .custom_inbox_prefix(agent_inbox_prefix(site_id))
        .event_callback(move |event| {
            let errors = errors.clone();
            async move {
                if let async_nats::Event::ServerError(e) = event {
                    let _ = errors.send(e.to_string());
                }
            }
        })
        .connect(url)
        .await?;
    Ok((client, complaints))
}

/// A JetStream context that gives up on a refused request after a second (nats-server
/// answers a publish it does not permit with nothing but an error to the connection).
fn jetstream_of(client: async_nats::Client) -> jetstream::Context {
    jetstream::ContextBuilder::new()
        .timeout(Duration::from_secs(1))
        .build(client)
}

/// Waits for the server to complain about a subscription to `subject`.
async fn refused_subscription(complaints: &mut mpsc::UnboundedReceiver<String>, subject: &str) {
    let wanted = format!("Permissions Violation for Subscription to \"{subject}\"").to_lowercase();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let complaint = tokio::time::timeout_at(deadline, complaints.recv())
            .await
            .unwrap_or_else(|_| panic!("no permissions violation for {subject}"))
            .unwrap();
        if complaint.to_lowercase().contains(&wanted) {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_user_of_one_site_cannot_read_or_take_another_sites_work() {
    let cp = ControlPlane::start().await;
    let (_, ids) = job_between_b_and_c(&cp).await;
    let (a, b) = (&ids["a"], &ids["b"]);
    let broker = cp.nats_access().connect().await;
    let js = jetstream::new(broker.clone());
    let (agent_a, mut complaints) = connect_as_agent_of(&cp, a).await;

    // Every way to read b's tasks as they are published is refused by the server.
    let mut watched = broker.subscribe(jobs_subject(b)).await.unwrap();
    let others = [
        jobs_subject(b),
        "ferry.jobs.>".to_owned(),
        "_INBOX.>".to_owned(),
        format!("{}.>", agent_inbox_prefix(b)),
        format!("ferry.dryrun.{b}"),
    ];
    let mut attempts = Vec::new();
    for subject in &others {
        attempts.push(agent_a.subscribe(subject.clone()).await.unwrap());
        refused_subscription(&mut complaints, subject).await;
    }
    // A second job of b is published now; the control plane's user sees it, a's none.
    let second = plan(&cp.client().await, "journal").await;
    let seen = tokio::time::timeout(Duration::from_secs(20), watched.next())
        .await
        .expect("the second job is dispatched")
        .unwrap();
    assert!(
        String::from_utf8_lossy(&seen.payload).contains(&second.id),
        "the control plane's user reads b's work"
    );
    for (subject, attempt) in others.iter().zip(&mut attempts) {
        let got = tokio::time::timeout(Duration::from_millis(300), attempt.next()).await;
        assert!(
            !matches!(got, Ok(Some(_))),
            "{subject} delivered b's work to a"
        );
    }

    // Nor can a take b's queue: not by b's consumer, nor by pointing its own at b.
    let a_js = jetstream_of(agent_a.clone());
    let jobs = a_js.get_stream_no_info("FERRY_JOBS").await.unwrap();
    let config = |name: &str, site: &str| consumer::pull::Config {
        durable_name: Some(name.to_owned()),
        filter_subject: jobs_subject(site),
        ..Default::default()
    };
    let e = jobs
        .get_or_create_consumer(&site_consumer(b), config(&site_consumer(b), b))
        .await
        .expect_err("a cannot create b's consumer");
    assert!(e.to_string().contains("timed out"), "{e}");
    let e = jobs
        .create_consumer(config(&site_consumer(a), b))
        .await
        .expect_err("a cannot aim its consumer at b");
    assert!(e.to_string().contains("timed out"), "{e}");
    // Through the one create subject it may use, the server checks the filter.
    let answer = agent_a
        .request(
            format!(
                "$JS.API.CONSUMER.CREATE.FERRY_JOBS.{}.{}",
                site_consumer(a),
                jobs_subject(a)
            ),
            serde_json::json!({
                "stream_name": "FERRY_JOBS",
                "config": {
                    "durable_name": site_consumer(a),
                    "filter_subject": jobs_subject(b),
                    "ack_policy": "explicit",
                },
            })
            .to_string()
            .into(),
        )
        .await
        .unwrap();
    let answer: serde_json::Value = serde_json::from_slice(&answer.payload).unwrap();
    assert_eq!(answer["error"]["code"], 400, "{answer}");
    let stream = js.get_stream("FERRY_JOBS").await.unwrap();
    for name in [site_consumer(a), site_consumer(b)] {
        assert!(
            stream.consumer_info(&name).await.is_err(),
            "consumer {name} exists"
        );
    }
    assert_eq!(
        stream.get_info().await.unwrap().state.messages,
        2,
        "both of b's tasks are still queued"
    );

    // Its own site's queue it binds, as its agents do.
    jobs.get_or_create_consumer(&site_consumer(a), config(&site_consumer(a), a))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_from_a_site_that_does_not_run_the_job_is_refused_and_audited() {
    let cp = ControlPlane::start().await;
    let (job, ids) = job_between_b_and_c(&cp).await;
    let (a, b) = (&ids["a"], &ids["b"]);
    let admin = cp.client().await;
    let (agent_a, _complaints) = connect_as_agent_of(&cp, a).await;
    let a_js = jetstream_of(agent_a);
    let listed = |objects| {
        pb::ProgressReport {
            job_id: job.id.clone(),
            attempt: job.attempt,
            task_id: "list".into(),
            event: Some(pb::progress_report::Event::Listed(pb::SourceListed {
                objects,
                bytes: 1,
            })),
            ..Default::default()
        }
        .encode_to_vec()
    };

    // Under b's name, a cannot publish at all: nothing is stored.
    let e = match a_js
        .publish(progress_subject(b, &job.id), listed(7).into())
        .await
    {
        Ok(ack) => ack.await.expect_err("not stored"),
        Err(e) => panic!("publishing failed before the broker answered: {e}"),
    };
    assert!(e.to_string().contains("timed out"), "{e}");
    // Under its own, it can, and the control plane refuses the report.
    a_js.publish(progress_subject(a, &job.id), listed(99).into())
        .await
        .unwrap()
        .await
        .unwrap();
    let principal = format!("nats:site:{a}");
    let filter = AuditFilter {
        principal: Some(principal.clone()),
        ..Default::default()
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let refused = loop {
        let events = admin.list_audit_events(&filter, 10).await.unwrap();
        if let Some(event) = events.into_iter().next() {
            break event;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no audit record of the refused report:\n{}",
            cp.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(refused.method, "bus:progress");
    assert_eq!(refused.resource, format!("job:{}", job.id));
    assert_eq!(refused.role, pb::Role::Agent as i32);
    assert_eq!(
        refused.outcome,
        format!(
            "denied: site {a} does not run job {}; site {b} does",
            job.id
        )
    );
    assert_eq!(refused.summary, "listed report of task list");
    let now = admin.get_job(&job.id).await.unwrap();
    assert_eq!(now.objects_total, 0, "the refused report changed the job");
    assert_eq!(now.state, pb::JobState::Queued as i32);

    // The same report on b's subject (as b's agents send it) is applied.
    let js = jetstream::new(cp.nats_access().connect().await);
    js.publish(progress_subject(b, &job.id), listed(99).into())
        .await
        .unwrap()
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while admin.get_job(&job.id).await.unwrap().objects_total != 99 {
        assert!(tokio::time::Instant::now() < deadline, "{}", cp.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let progress = js.get_stream("FERRY_PROGRESS").await.unwrap();
    assert_eq!(
        progress.get_info().await.unwrap().state.messages,
        2,
        "only the two reports a user may send were stored"
    );
}
