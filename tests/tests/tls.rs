//! TLS and mutual TLS on the control plane's port, with certificates made by `rcgen`
//! (see `ferry_tests::pki`): a client with a current certificate from the client CA is
//! served, through the SDK and the `ferry` CLI; a client without a certificate, with one
//! from another CA, with an expired one, or speaking plain-text HTTP/2 gets a transport
//! error and no answer; an agent registers over mutual TLS; `/metrics` is read over
//! HTTPS by an HTTP/1.1-only client; bad TLS files stop start-up with exit code 2.

#![allow(clippy::unwrap_used)]

use std::{
    collections::HashMap,
    path::Path,
    process::{Command, Output},
};

use ferry_sdk::{pb, Client, TlsFiles};
use ferry_tests::{binaries, control_plane::Options, Agent, ControlPlane, Pki};

/// A control plane serving TLS with a certificate from `pki`, and requiring client
/// certificates from it when `mutual`; the harness's own clients present `operator`'s.
async fn start(pki: &Pki, mutual: bool) -> ControlPlane {
    let (cert, key) = pki.server();
    let mut env = vec![
        (
            "FERRY_TLS__CERT_FILE".to_owned(),
            cert.display().to_string(),
        ),
        ("FERRY_TLS__KEY_FILE".to_owned(), key.display().to_string()),
    ];
    let client_tls = if mutual {
        env.push((
            "FERRY_TLS__CLIENT_CA_FILE".to_owned(),
            pki.ca_file().display().to_string(),
        ));
        pki.client("operator")
    } else {
        trusting(pki)
    };
    ControlPlane::start_with(Options {
        extra_env: env,
        client_tls: Some(client_tls),
        ..Default::default()
    })
    .await
}

/// A client that trusts `pki`'s CA and has no certificate of its own.
fn trusting(pki: &Pki) -> TlsFiles {
    TlsFiles {
        ca_file: Some(pki.ca_file()),
        ..TlsFiles::default()
    }
}

/// How many sites a client with `files` is told there are.
async fn list_sites(
    endpoint: &str,
    files: &TlsFiles,
    token: &str,
) -> Result<usize, ferry_sdk::Error> {
    let client = Client::connect_with(endpoint, files)
        .await?
        .with_token(token)?;
    Ok(client.list_sites(None).await?.len())
}

/// The client got no answer: the connection failed, or the call failed on this side of
/// the wire. Under TLS 1.3 a client's handshake ends before the server has checked its
/// certificate, so a refusal shows at the first call, as the connection closing under it
/// (how it reads depends on whether the client was writing or reading then).
fn assert_transport_error(case: &str, result: Result<usize, ferry_sdk::Error>) {
    match result {
        Ok(sites) => panic!("{case}: served ({sites} sites) instead of refused"),
        Err(ferry_sdk::Error::Connect { .. }) => {}
        Err(err @ ferry_sdk::Error::Rpc(_)) => {
            assert!(err.to_string().contains("transport error"), "{case}: {err}");
        }
        Err(other) => panic!("{case}: {other}"),
    }
}

/// Waits a little for the control plane's log to show what `expected` looks for: the
/// client may see the connection close before the server has written why.
async fn logged_soon(cp: &ControlPlane, case: &str, expected: impl Fn(&str) -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !expected(&cp.log()) {
        assert!(
            std::time::Instant::now() < deadline,
            "{case}: not in the control plane's log:\n{}",
            cp.log()
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

fn ferry(cp: &ControlPlane, endpoint: &str, files: &TlsFiles, args: &[&str]) -> Output {
    let mut command = Command::new(binaries::path("ferry"));
    command
        .arg("--server")
        .arg(endpoint)
        .args(args)
        .env("FERRY_TOKEN", cp.admin_token());
    for (var, file) in [
        ("FERRY_CA_FILE", &files.ca_file),
        ("FERRY_CERT_FILE", &files.cert_file),
        ("FERRY_KEY_FILE", &files.key_file),
    ] {
        match file {
            Some(path) => command.env(var, path),
            None => command.env_remove(var),
        };
    }
    command.env_remove("FERRY_SERVER").output().unwrap()
}

#[tokio::test]
async fn mutual_tls_serves_only_clients_with_a_current_certificate_from_the_client_ca() {
    let pki = Pki::new("ferry");
    let other = Pki::new("other");
    let cp = start(&pki, true).await;
    let endpoint = cp.endpoint();
    assert!(cp.log().contains("tls=true mtls=true"), "{}", cp.log());

    assert_eq!(
        list_sites(&endpoint, &pki.client("operator"), cp.admin_token())
            .await
            .unwrap(),
        0
    );
    assert!(
        cp.log().contains("method=ListSites peer=127.0.0.1:")
            && cp.log().contains("client_cert=CN=operator, O=Ferry"),
        "the RPC span names the certificate subject:\n{}",
        cp.log()
    );

    let from_another_ca = TlsFiles {
        ca_file: Some(pki.ca_file()),
        ..other.client("intruder")
    };
    let refusals = [
        (
            "no client certificate",
            trusting(&pki),
            "peer sent no certificates",
        ),
        (
            "a certificate from another CA",
            from_another_ca,
            "UnknownIssuer",
        ),
        (
            "an expired certificate",
            pki.expired_client("operator"),
            "certificate expired",
        ),
    ];
    for (case, files, logged) in &refusals {
        assert_transport_error(case, list_sites(&endpoint, files, cp.admin_token()).await);
        let refusal = "TLS handshake refused peer=\"127.0.0.1:";
        logged_soon(&cp, case, |log| {
            log.contains(refusal) && log.contains(logged)
        })
        .await;
    }
    let plain_text = format!("http://127.0.0.1:{}", cp.port());
    assert_transport_error(
        "plain-text HTTP/2",
        list_sites(&plain_text, &TlsFiles::default(), cp.admin_token()).await,
    );

    // The CLI, with its files from FERRY_CA_FILE, FERRY_CERT_FILE and FERRY_KEY_FILE,
    // or from its flags.
    let operator = pki.client("operator");
    let served = ferry(&cp, &endpoint, &operator, &["site", "list", "--json"]);
    assert!(served.status.success(), "{served:?}");
    assert_eq!(String::from_utf8_lossy(&served.stdout).trim(), "[]");
    let path = |file: &Option<std::path::PathBuf>| file.clone().unwrap();
    let flags = Command::new(binaries::path("ferry"))
        .args(["site", "list", "--json", "--server", &endpoint])
        .arg("--ca-file")
        .arg(path(&operator.ca_file))
        .arg("--cert-file")
        .arg(path(&operator.cert_file))
        .arg("--key-file")
        .arg(path(&operator.key_file))
        .env_remove("FERRY_CERT_FILE")
        .env_remove("FERRY_KEY_FILE")
        .env("FERRY_TOKEN", cp.admin_token())
        .output()
        .unwrap();
    assert!(flags.status.success(), "{flags:?}");
    for (case, files, _) in &refusals {
        let refused = ferry(&cp, &endpoint, files, &["site", "list", "--json"]);
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(
            matches!(refused.status.code(), Some(1 | 5)),
            "{case}: {:?} {stderr}",
            refused.status
        );
        assert!(stderr.starts_with("error: "), "{case}: {stderr}");
        assert!(
            stderr.contains("transport error") || stderr.contains("cannot reach"),
            "{case}: {stderr}"
        );
        assert!(refused.stdout.is_empty(), "{case}");
    }
    let half = ferry(
        &cp,
        &endpoint,
        &TlsFiles {
            key_file: None,
            ..operator.clone()
        },
        &["site", "list"],
    );
    assert_eq!(half.status.code(), Some(2), "{half:?}");
    assert!(
        String::from_utf8_lossy(&half.stderr).contains("key_file: required with cert_file"),
        "{half:?}"
    );

    // /metrics on the same port, over HTTPS with the operator's certificate; it says
    // when the served certificate expires (rcgen's default end of validity).
    let metrics = cp.metrics().await;
    let expiry: f64 = metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix("ferry_tls_certificate_expiry_timestamp_seconds ")?
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no certificate expiry in:\n{metrics}"));
    let end = chrono::DateTime::parse_from_rfc3339("4096-01-01T00:00:00Z").unwrap();
    assert_eq!(expiry, end.timestamp() as f64);
}

#[tokio::test]
async fn an_agent_registers_over_mutual_tls() {
    let pki = Pki::new("ferry");
    let cp = start(&pki, true).await;
    let client = Client::connect_with(&cp.endpoint(), &pki.client("operator"))
        .await
        .unwrap()
        .with_token(cp.admin_token())
        .unwrap();
    let root = tempfile::tempdir().unwrap();
    let site = pb::Site {
        name: "fast".into(),
        uri: format!("file://{}", root.path().display()),
        tier: pb::Tier::Hot.into(),
        ..Default::default()
    };
    client.create_site(site, HashMap::new()).await.unwrap();

    let files = pki.client("agent-fast");
    let env = |file: &Option<std::path::PathBuf>| file.as_ref().unwrap().display().to_string();
    let (ca, cert, key) = (
        env(&files.ca_file),
        env(&files.cert_file),
        env(&files.key_file),
    );
    // Ready means registered and pulling work: see `Agent::wait_ready`.
    let _agent = Agent::start(
        &cp,
        "fast",
        &[
            ("FERRY_AGENT_TLS__CA_FILE", &ca),
            ("FERRY_AGENT_TLS__CERT_FILE", &cert),
            ("FERRY_AGENT_TLS__KEY_FILE", &key),
        ],
    )
    .await;
    let agents = client.list_agents(Some("fast")).await.unwrap();
    assert_eq!(agents.len(), 1, "{agents:?}");
    assert!(
        cp.log().contains("client_cert=CN=agent-fast, O=Ferry"),
        "{}",
        cp.log()
    );
    // The audit log names each caller by token and certificate.
    let filter = |method: &str| ferry_sdk::AuditFilter {
        method: Some(format!("ferry.v1.{method}")),
        ..Default::default()
    };
    let created = client
        .list_audit_events(&filter("SiteService/CreateSite"), 10)
        .await
        .unwrap();
    assert_eq!(created.len(), 1, "{created:?}");
    assert_eq!(
        created[0].principal,
        "token:admin cert:CN=operator, O=Ferry"
    );
    let registered = client
        .list_audit_events(&filter("AgentService/RegisterAgent"), 10)
        .await
        .unwrap();
    assert!(
        registered
            .iter()
            .all(|e| e.principal.ends_with(" cert:CN=agent-fast, O=Ferry") && e.outcome == "ok"),
        "{registered:?}"
    );
    assert!(!registered.is_empty());
}

#[tokio::test]
async fn tls_without_a_client_ca_serves_clients_without_a_certificate() {
    let pki = Pki::new("ferry");
    let cp = start(&pki, false).await;
    assert!(cp.log().contains("tls=true mtls=false"), "{}", cp.log());
    assert_eq!(
        list_sites(&cp.endpoint(), &trusting(&pki), cp.admin_token())
            .await
            .unwrap(),
        0
    );
    assert!(
        cp.log().contains("method=ListSites peer=127.0.0.1:")
            && (cp.log().contains("client_cert=}") || cp.log().contains("client_cert= ")),
        "no certificate, an empty subject:\n{}",
        cp.log()
    );
    // A client that does not trust the server's CA refuses it: a failed connection.
    let other = Pki::new("other");
    let untrusting = trusting(&other);
    let err = list_sites(&cp.endpoint(), &untrusting, cp.admin_token())
        .await
        .unwrap_err();
    assert!(matches!(err, ferry_sdk::Error::Connect { .. }), "{err}");
    assert!(err.to_string().contains("UnknownIssuer"), "{err}");
    assert!(cp.metrics().await.contains("ferry_"));
}

#[test]
fn bad_tls_files_stop_start_up_with_exit_code_2_naming_the_key() {
    let pki = Pki::new("ferry");
    let (cert, key) = pki.server();
    let (_, other_key) = pki.server();
    let data = tempfile::tempdir().unwrap();
    let cases: [(&[(&str, &Path)], &str); 3] = [
        (
            &[("FERRY_TLS__CERT_FILE", &cert)],
            "tls.key_file: required with tls.cert_file",
        ),
        (
            &[
                ("FERRY_TLS__CERT_FILE", &cert),
                ("FERRY_TLS__KEY_FILE", &other_key),
            ],
            "tls.key_file: ",
        ),
        (
            &[
                ("FERRY_TLS__CERT_FILE", &cert),
                ("FERRY_TLS__KEY_FILE", &key),
                (
                    "FERRY_TLS__CLIENT_CA_FILE",
                    &data.path().join("missing.pem"),
                ),
            ],
            "tls.client_ca_file: cannot read ",
        ),
    ];
    for (env, expected) in cases {
        let mut command = Command::new(binaries::path("ferry-control-plane"));
        command.arg("--data-dir").arg(data.path().join("data"));
        for (var, path) in env {
            command.env(var, path);
        }
        let output = command.output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{env:?}: {stderr}");
        assert!(
            stderr.starts_with(&format!("error: invalid configuration: {expected}")),
            "{env:?}: {stderr}"
        );
    }
}
