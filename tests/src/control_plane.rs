//! A real `ferry-control-plane` process.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use tonic_health::pb::{
    health_check_response::ServingStatus, health_client::HealthClient, HealthCheckRequest,
};

use ferry_sdk::TlsFiles;

use crate::{binaries, free_port, nats::NatsAccess, NatsServer};

/// How to start a control plane.
#[derive(Clone, Default)]
pub struct Options {
    /// `None`: SQLite in the data directory.
    pub database_url: Option<String>,
    /// `None`: a private nats-server started for this control plane.
    pub nats: Option<NatsAccess>,
    /// Reuse this data directory (to restart over the same state).
    pub data_dir: Option<PathBuf>,
    pub extra_env: Vec<(String, String)>,
    /// For a control plane serving TLS (its `FERRY_TLS__…` files given in `extra_env`):
    /// what the harness's own clients trust and present. [`ControlPlane::endpoint`] is
    /// then `https://localhost:<port>`.
    pub client_tls: Option<TlsFiles>,
}

/// A running control plane, stopped (SIGKILL) when dropped unless stopped before.
pub struct ControlPlane {
    child: Option<Child>,
    port: u16,
    data_dir: PathBuf,
    log_path: PathBuf,
    nats: NatsAccess,
    client_tls: Option<TlsFiles>,
    /// The admin token the control plane wrote on first start; `None` with
    /// authentication off.
    admin_token: Option<String>,
    /// Agent tokens made so far, so each gets a name of its own.
    agent_tokens: std::sync::atomic::AtomicUsize,
    /// The private broker, when this control plane started one.
    _nats: Option<NatsServer>,
    _temp: tempfile::TempDir,
}

impl ControlPlane {
    pub async fn start() -> Self {
        Self::start_with(Options::default()).await
    }

    pub async fn start_with(options: Options) -> Self {
        let (access, nats) = match &options.nats {
            Some(access) => (access.clone(), None),
            None => {
                let nats = NatsServer::start().await;
                (nats.access(), Some(nats))
            }
        };
        let temp = tempfile::tempdir().expect("temp dir for the control plane");
        let data_dir = options
            .data_dir
            .clone()
            .unwrap_or_else(|| temp.path().join("data"));
        let log_path = temp.path().join("control-plane.log");
        let port = free_port();
        let log = std::fs::File::create(&log_path).expect("creating the log file");
        let mut cmd = Command::new(binaries::path("ferry-control-plane"));
        cmd.arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--data-dir")
            .arg(&data_dir)
            .arg("--nats-url")
            .arg(access.url())
            .env("FERRY_LOG__FILTER", "debug")
            .env_remove("FERRY_MASTER_KEY")
            .env_remove("FERRY_DATABASE__URL")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("cloning the log handle"))
            .stderr(log);
        for (k, v) in access.control_plane_env() {
            cmd.env(k, v);
        }
        if let Some(url) = &options.database_url {
            cmd.arg("--database-url").arg(url);
        }
        for (k, v) in &options.extra_env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("spawning ferry-control-plane");
        let mut cp = ControlPlane {
            child: Some(child),
            port,
            data_dir,
            log_path,
            nats: access,
            client_tls: options.client_tls,
            admin_token: None,
            agent_tokens: Default::default(),
            _nats: nats,
            _temp: temp,
        };
        cp.wait_serving().await;
        cp.admin_token = std::fs::read_to_string(cp.data_dir.join("admin.token"))
            .ok()
            .map(|t| t.trim().to_owned());
        cp
    }

    /// The admin token from `<data-dir>/admin.token`. Panics with authentication off.
    pub fn admin_token(&self) -> &str {
        self.admin_token
            .as_deref()
            .expect("the control plane wrote no admin.token (authentication off?)")
    }

    /// The TLS files the harness's clients use (empty without TLS).
    pub fn client_tls(&self) -> TlsFiles {
        self.client_tls.clone().unwrap_or_default()
    }

    /// A client of this control plane calling with `token`.
    pub async fn client_with(&self, token: &str) -> ferry_sdk::Client {
        ferry_sdk::Client::connect_with(&self.endpoint(), &self.client_tls())
            .await
            .expect("connecting to the control plane")
            .with_token(token)
            .expect("a token fit for a header")
    }

    /// A client of this control plane calling as its admin (with no token when
    /// authentication is off).
    pub async fn client(&self) -> ferry_sdk::Client {
        match &self.admin_token {
            Some(token) => self.client_with(token).await,
            None => ferry_sdk::Client::connect_with(&self.endpoint(), &self.client_tls())
                .await
                .expect("connecting to the control plane"),
        }
    }

    /// A new token of `role`, made by the admin; its secret. `site` is for agent tokens.
    pub async fn token(&self, name: &str, role: ferry_sdk::pb::Role, site: Option<&str>) -> String {
        self.client()
            .await
            .create_token(name, role, site, None)
            .await
            .unwrap_or_else(|e| panic!("creating token {name}: {e}"))
            .secret
    }

    /// A new agent token for `site`, under a name of its own.
    pub async fn agent_token(&self, site: &str) -> String {
        let n = self
            .agent_tokens
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let name = format!("agent-{site}-{n}").to_ascii_lowercase();
        self.token(&name, ferry_sdk::pb::Role::Agent, Some(site))
            .await
    }

    /// The NATS server this control plane dispatches through.
    pub fn nats_url(&self) -> &str {
        self.nats.url()
    }

    /// The URL, users and credentials of that server.
    pub fn nats_access(&self) -> &NatsAccess {
        &self.nats
    }

    /// `http://127.0.0.1:<port>`, or `https://localhost:<port>` under TLS.
    pub fn endpoint(&self) -> String {
        match self.client_tls {
            None => format!("http://127.0.0.1:{}", self.port),
            Some(_) => format!("https://localhost:{}", self.port),
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// A fresh HTTP/2 channel to the control plane, carrying no token: for the open
    /// services (health, reflection), or to call as a stranger would.
    pub async fn channel(&self) -> tonic::transport::Channel {
        self.try_channel()
            .await
            .expect("connecting to the control plane")
    }

    async fn try_channel(&self) -> Result<tonic::transport::Channel, ferry_sdk::Error> {
        let tls = self.client_tls.clone().unwrap_or_default();
        let client = ferry_sdk::Client::connect_with(&self.endpoint(), &tls).await?;
        Ok(client.channel())
    }

    /// `GET /metrics` over HTTP/1.1 on the gRPC port: the Prometheus exposition. Under
    /// TLS, offering only `http/1.1` in ALPN, as a Prometheus scraper does.
    pub async fn metrics(&self) -> String {
        use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
        async fn get(mut stream: impl AsyncRead + AsyncWrite + Unpin) -> String {
            stream
                .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                .await
                .expect("sending the /metrics request");
            let mut response = String::new();
            stream
                .read_to_string(&mut response)
                .await
                .expect("reading the /metrics response");
            response
        }
        let stream = tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .expect("connecting for /metrics");
        let response = match &self.client_tls {
            None => get(stream).await,
            Some(files) => get(crate::pki::connect_http1(stream, files).await).await,
        };
        let (head, body) = response
            .split_once("\r\n\r\n")
            .expect("an HTTP response with a body");
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert!(
            head.to_ascii_lowercase()
                .contains("content-type: text/plain"),
            "{head}"
        );
        body.to_owned()
    }

    /// One sample of [`ControlPlane::metrics`], by its name and labels as printed.
    pub async fn metric(&self, series: &str) -> u64 {
        let text = self.metrics().await;
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no sample {series} in:\n{text}"))
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The private broker this control plane started, if it started one.
    pub fn nats(&self) -> Option<&NatsServer> {
        self._nats.as_ref()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Polls the health service until it answers SERVING; panics with the log if the
    /// process exits or 60 s pass.
    async fn wait_serving(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = crate::exit_status(&mut self.child) {
                panic!(
                    "ferry-control-plane exited with {status} during start-up:\n{}",
                    self.log()
                );
            }
            if let Ok(channel) = self.try_channel().await {
                let mut health = HealthClient::new(channel);
                let req = HealthCheckRequest {
                    service: String::new(),
                };
                if let Ok(resp) = health.check(req).await {
                    if resp.into_inner().status == ServingStatus::Serving as i32 {
                        return;
                    }
                }
            }
            assert!(
                Instant::now() < deadline,
                "control plane not serving after 60 s:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sends SIGTERM and waits for the exit; returns the exit code and the log. Async so
    /// that the test's own clients keep answering the server's HTTP/2 shutdown handshake.
    pub async fn terminate(mut self) -> (Option<i32>, String) {
        let Some(mut child) = self.child.take() else {
            return (None, self.log());
        };
        let pid = child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return (status.code(), self.log());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!(
                    "control plane did not stop within 30 s of SIGTERM:\n{}",
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
