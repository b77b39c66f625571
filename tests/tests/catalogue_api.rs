//! The real `ferry-control-plane` binary driven through the SDK: the catalogue's
//! operations, their errors, restart durability, and the PostgreSQL backend.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;

use ferry_proto::v1 as pb;
use ferry_sdk::{Client, DatasetFilter};
use ferry_tests::{control_plane::Options, ControlPlane, TestDatabase};
use tonic::Code;

fn site(name: &str, uri: &str, tier: pb::Tier, latency_ms: u32) -> pb::Site {
    pb::Site {
        name: name.into(),
        uri: uri.into(),
        tier: tier.into(),
        latency_ms,
        prices: Some(pb::Prices {
            storage_per_gb_month: 0.02,
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn labels(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// What `populate` left on each site: its dataset's 4096 bytes on fast, nothing on the
/// archive; through GetSite and ListSites alike.
async fn assert_site_usage(client: &Client) {
    let fast = client.get_site("fast").await.unwrap();
    assert_eq!((fast.bytes_stored, fast.dataset_count), (4096, 1));
    let listed = client.list_sites(None).await.unwrap();
    let usage: Vec<_> = listed
        .iter()
        .map(|s| (s.name.as_str(), s.bytes_stored, s.dataset_count))
        .collect();
    assert_eq!(usage, [("archive", 0, 0), ("fast", 4096, 1)]);
}

/// Creates two sites, a dataset and a policy; returns the client.
async fn populate(cp: &ControlPlane) -> Client {
    let client = cp.client().await;
    client
        .create_site(
            site("fast", "file:///srv/fast", pb::Tier::Hot, 2),
            HashMap::new(),
        )
        .await
        .unwrap();
    client
        .create_site(
            site("archive", "file:///srv/archive", pb::Tier::Cold, 200),
            HashMap::new(),
        )
        .await
        .unwrap();
    client
        .create_dataset(pb::Dataset {
            name: "genome".into(),
            site: "fast".into(),
            path: "projects/genome".into(),
            size_bytes: 4096,
            object_count: 3,
            owner: "research".into(),
            labels: labels(&[("team", "genomics")]),
            ..Default::default()
        })
        .await
        .unwrap();
    client
        .create_policy(pb::Policy {
            name: "genomics".into(),
            selector: labels(&[("team", "genomics")]),
            placements: vec![pb::TierPlacement {
                tier: pb::Tier::Cold.into(),
                site: "archive".into(),
            }],
            ..Default::default()
        })
        .await
        .unwrap();
    client
}

#[tokio::test]
async fn catalogue_round_trip_through_the_sdk() {
    let cp = ControlPlane::start().await;
    let client = populate(&cp).await;

    let sites = client.list_sites(None).await.unwrap();
    let names: Vec<_> = sites.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["archive", "fast"]);
    let cold = client.list_sites(Some(pb::Tier::Cold)).await.unwrap();
    assert_eq!(cold.len(), 1);
    assert_eq!(cold[0].uri, "file:///srv/archive");

    let details = client.get_dataset("genome").await.unwrap();
    let fast = client.get_site("fast").await.unwrap();
    assert_eq!(details.dataset.site, fast.id);
    assert_eq!(
        details.dataset.current_tier,
        pb::Tier::Hot as i32,
        "tier defaults to the site's"
    );
    assert_eq!(details.replicas.len(), 1);
    assert_eq!(details.replicas[0].role, pb::ReplicaRole::Primary as i32);
    assert_eq!(details.replicas[0].path, "projects/genome");
    assert_eq!(details.effective_policy.unwrap().name, "genomics");

    let filter = DatasetFilter {
        labels: labels(&[("team", "genomics")]),
        ..Default::default()
    };
    assert_eq!(client.list_datasets(&filter).await.unwrap().len(), 1);
    let filter = DatasetFilter {
        site: Some("archive".into()),
        ..Default::default()
    };
    assert!(client.list_datasets(&filter).await.unwrap().is_empty());
    // A name search matches part of the name in any case; its length is bounded.
    let named = |text: &str| DatasetFilter {
        name_contains: Some(text.into()),
        ..Default::default()
    };
    let found = client.list_datasets(&named("NOM")).await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].name, "genome");
    assert!(client
        .list_datasets(&named("g_n"))
        .await
        .unwrap()
        .is_empty());
    let e = client
        .list_datasets(&named(&"x".repeat(129)))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e}");
    assert!(e.to_string().contains("name_contains"), "{e}");

    let updated = client
        .update_site(
            pb::Site {
                name: "fast".into(),
                latency_ms: 5,
                ..Default::default()
            },
            ["latency_ms"],
            None,
        )
        .await
        .unwrap();
    assert_eq!(updated.latency_ms, 5);
    assert_eq!(
        updated.tier,
        pb::Tier::Hot as i32,
        "fields outside the mask are kept"
    );
    assert_eq!(updated.prices.unwrap().storage_per_gb_month, 0.02);

    let policies = client.list_policies(Some("genome")).await.unwrap();
    assert_eq!(policies.len(), 1);
    assert_eq!(
        policies[0].placements[0].site,
        client.get_site("archive").await.unwrap().id
    );

    client.delete_policy("genomics").await.unwrap();
    client.delete_dataset("genome").await.unwrap();
    client.delete_site("fast").await.unwrap();
    let err = client.get_site("fast").await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert_eq!(err.status().unwrap().message(), "site fast not found");
}

#[tokio::test]
async fn errors_name_the_field_and_the_reason() {
    let cp = ControlPlane::start().await;
    let client = populate(&cp).await;
    let status = |e: ferry_sdk::Error| e.status().cloned().unwrap();

    let e = status(
        client
            .create_site(
                site("bad", "ftp://host/x", pb::Tier::Hot, 1),
                HashMap::new(),
            )
            .await
            .unwrap_err(),
    );
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(
        e.message()
            .starts_with("site.uri: unsupported scheme 'ftp'"),
        "{}",
        e.message()
    );

    let e = status(
        client
            .create_site(
                site("fast", "file:///elsewhere", pb::Tier::Hot, 1),
                HashMap::new(),
            )
            .await
            .unwrap_err(),
    );
    assert_eq!(
        (e.code(), e.message()),
        (Code::AlreadyExists, "site fast already exists")
    );

    let mut no_tier = site("notier", "file:///x", pb::Tier::Hot, 1);
    no_tier.tier = 0;
    let e = status(
        client
            .create_site(no_tier, HashMap::new())
            .await
            .unwrap_err(),
    );
    assert_eq!(
        (e.code(), e.message()),
        (
            Code::InvalidArgument,
            "site.tier: must be hot, warm or cold"
        )
    );

    let e = status(client.delete_site("fast").await.unwrap_err());
    assert_eq!(e.code(), Code::FailedPrecondition);
    assert!(e.message().contains("genome"), "{}", e.message());

    let e = status(client.delete_site("archive").await.unwrap_err());
    assert_eq!(e.code(), Code::FailedPrecondition);
    assert!(e.message().contains("policy genomics"), "{}", e.message());

    let e = status(
        client
            .update_site(
                pb::Site {
                    name: "fast".into(),
                    uri: "file:///moved".into(),
                    ..Default::default()
                },
                ["uri"],
                None,
            )
            .await
            .unwrap_err(),
    );
    assert_eq!(
        (e.code(), e.message()),
        (
            Code::InvalidArgument,
            "update_mask: field 'uri' cannot be changed"
        )
    );

    let e = status(
        client
            .create_policy(pb::Policy {
                name: "inverted".into(),
                selector: labels(&[("a", "b")]),
                hot_after: Some(prost_types::Duration {
                    seconds: 600,
                    nanos: 0,
                }),
                warm_after: Some(prost_types::Duration {
                    seconds: 60,
                    nanos: 0,
                }),
                ..Default::default()
            })
            .await
            .unwrap_err(),
    );
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(
        e.message()
            .starts_with("policy.warm_after: must be longer than hot_after"),
        "{}",
        e.message()
    );

    let e = status(
        client
            .create_policy(pb::Policy {
                name: "nowhere".into(),
                selector: labels(&[("a", "b")]),
                placements: vec![pb::TierPlacement {
                    tier: pb::Tier::Hot.into(),
                    site: "missing".into(),
                }],
                ..Default::default()
            })
            .await
            .unwrap_err(),
    );
    assert_eq!(
        (e.code(), e.message()),
        (
            Code::InvalidArgument,
            "policy.placements[hot].site: site missing does not exist"
        )
    );

    let e = status(
        client
            .create_dataset(pb::Dataset {
                name: "escape".into(),
                site: "fast".into(),
                path: "../etc".into(),
                ..Default::default()
            })
            .await
            .unwrap_err(),
    );
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().starts_with("dataset.path: "), "{}", e.message());

    let mut jobs = client.jobs();
    let e = jobs
        .get_job(pb::GetJobRequest { job: "x".into() })
        .await
        .unwrap_err();
    assert_eq!(
        (e.code(), e.message()),
        (Code::InvalidArgument, "job: 'x' is not a job id")
    );

    // Heartbeats are an agent's: asked with an agent token of the site.
    let agent = cp.client_with(&cp.agent_token("fast").await).await;
    let e = agent
        .agents()
        .heartbeat(pb::HeartbeatRequest {
            agent_id: "0193a4c2-0000-7000-8000-000000000000".into(),
            jobs: vec!["not-a-job".into()],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        (e.code(), e.message()),
        (Code::InvalidArgument, "jobs: 'not-a-job' is not a job id")
    );

    // A dataset never trained has no models; one that does not exist is not found.
    let mut recommendations = client.recommendations();
    let models = recommendations
        .list_models(pb::ListModelsRequest {
            dataset: "genome".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(models.models.is_empty(), "{models:?}");
    let e = recommendations
        .train_models(pb::TrainModelsRequest {
            dataset: "no-such-dataset".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound, "{}", e.message());
    assert!(e.message().contains("no-such-dataset"), "{}", e.message());
}

#[tokio::test]
async fn the_catalogue_survives_a_restart_and_shutdown_is_graceful() {
    let data = tempfile::tempdir().unwrap();
    let options = Options {
        data_dir: Some(data.path().join("data")),
        ..Default::default()
    };
    let cp = ControlPlane::start_with(options.clone()).await;
    let client = populate(&cp).await;
    let (code, log) = cp.terminate().await;
    assert_eq!(
        code,
        Some(0),
        "SIGTERM stops the control plane cleanly:\n{log}"
    );
    assert!(log.contains("stopped"), "{log}");
    assert!(
        !log.contains("after the grace period"),
        "idle clients must not hold up shutdown:\n{log}"
    );
    drop(client);

    let cp = ControlPlane::start_with(options).await;
    let client = cp.client().await;
    let details = client.get_dataset("genome").await.unwrap();
    assert_eq!(details.dataset.size_bytes, 4096);
    assert_eq!(client.list_sites(None).await.unwrap().len(), 2);
    assert_site_usage(&client).await;
    assert!(
        cp.data_dir().join("ferry.db").is_file(),
        "SQLite is the default catalogue"
    );
    assert!(cp.log().contains(r#"backend="sqlite""#), "{}", cp.log());
}

#[tokio::test]
#[ignore = "needs PostgreSQL: set FERRY_TEST_DATABASE_URL"]
async fn postgresql_backend_serves_the_same_api() {
    let db = TestDatabase::create();
    let options = Options {
        database_url: Some(db.url.clone()),
        ..Default::default()
    };
    let cp = ControlPlane::start_with(options.clone()).await;
    let client = populate(&cp).await;
    assert!(cp.log().contains(r#"backend="postgres""#), "{}", cp.log());
    assert_site_usage(&client).await;
    let admin_token = cp.admin_token().to_owned();
    drop(client);
    drop(cp);
    // A second start over the same database applies no migration twice and sees the data.
    // Its data directory is new, but the catalogue already holds an admin token, so it
    // writes none: the first token still works.
    let cp = ControlPlane::start_with(options).await;
    assert!(
        !cp.data_dir().join("admin.token").exists(),
        "a catalogue that has an admin token gets no second one"
    );
    let client = cp.client_with(&admin_token).await;
    assert_eq!(
        client.get_dataset("genome").await.unwrap().dataset.owner,
        "research"
    );
    assert!(
        !cp.data_dir().join("ferry.db").exists(),
        "no SQLite file when PostgreSQL is used"
    );
}

#[tokio::test]
async fn invalid_configuration_is_refused_naming_the_field() {
    let out = std::process::Command::new(ferry_tests::binaries::path("ferry-control-plane"))
        .args(["--listen", "not-an-address"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("listen: 'not-an-address' is not a socket address"),
        "{stderr}"
    );
}

/// A site that no agent could reach is refused when it is created or updated, by the
/// storage layer's own check (the one agents build their clients with), with
/// `InvalidArgument` naming the option or credential.
#[tokio::test]
async fn sites_that_cannot_work_are_refused_naming_the_setting() {
    let cp = ControlPlane::start().await;
    let client = cp.client().await;
    let refused = |result: Result<pb::Site, ferry_sdk::Error>| {
        let e = result.unwrap_err().status().cloned().unwrap();
        assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
        e.message().to_owned()
    };
    let with_options = |name: &str, uri: &str, options: &[(&str, &str)]| pb::Site {
        options: labels(options),
        ..site(name, uri, pb::Tier::Cold, 50)
    };

    let message = refused(
        client
            .create_site(with_options("az", "azblob://archive", &[]), HashMap::new())
            .await,
    );
    assert_eq!(
        message,
        "site.options: azblob sites need an endpoint or an account_name"
    );
    let endpoint = [("endpoint", "http://127.0.0.1:10000/devstoreaccount1")];
    let message = refused(
        client
            .create_site(
                with_options("az", "azblob://archive", &endpoint),
                labels(&[("account_key", "a2V5")]),
            )
            .await,
    );
    assert_eq!(
        message,
        "credentials[account_key]: needs the option account_name"
    );
    let message = refused(
        client
            .create_site(
                with_options("az", "azblob://archive", &[("colour", "blue")]),
                HashMap::new(),
            )
            .await,
    );
    assert!(
        message.starts_with("site.options[colour]: unknown option for a azblob:// site"),
        "{message}"
    );
    let message = refused(
        client
            .create_site(
                with_options("gs", "gs://bucket", &[]),
                labels(&[("credential", "{\"type\": \"service_account\"}")]),
            )
            .await,
    );
    assert!(
        message.starts_with("credentials[credential]: must be a service-account JSON key"),
        "{message}"
    );

    // A site that works...
    let az = client
        .create_site(
            with_options(
                "az",
                "azblob://archive",
                &[
                    ("endpoint", endpoint[0].1),
                    ("account_name", "devstoreaccount1"),
                ],
            ),
            labels(&[("account_key", "a2V5")]),
        )
        .await
        .unwrap();
    assert_eq!(az.credential_keys, ["account_key"]);
    // ...cannot be updated into one that does not: its stored key needs the account.
    let message = refused(
        client
            .update_site(
                with_options("az", "", &[("endpoint", endpoint[0].1)]),
                ["options"],
                None,
            )
            .await,
    );
    assert_eq!(
        message,
        "credentials[account_key]: needs the option account_name"
    );
    assert_eq!(
        client.get_site("az").await.unwrap().options,
        az.options,
        "a refused update changes nothing"
    );
}
