//! A real `ferry-agent` process serving one site, started and restarted only once it
//! is ready: registered with the control plane and pulling from its site's work queue.
//! A test that plans a job right after [`Agent::start`] therefore never races the
//! agent's start-up.

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant, SystemTime},
};

use ferry_proto::v1 as pb;

use crate::{binaries, nats::NatsAccess, ControlPlane};

/// How long an agent may take to become ready: it registers and pulls within a tenth of
/// a second when its control plane and broker are up.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// The control plane's work queue: one durable pull consumer `agents-<site id>` per site
/// on this stream, shared by the site's agents.
const JOBS_STREAM: &str = "FERRY_JOBS";

/// Where the agent keeps its id; written (again) once each registration succeeds.
const AGENT_ID_FILE: &str = "agent-id";

pub struct Agent {
    child: Option<Child>,
    args: Vec<String>,
    env: Vec<(String, String)>,
    control_plane: String,
    nats: NatsAccess,
    site: String,
    log_path: PathBuf,
    state_dir: PathBuf,
    /// When the agent-id file was last written before the latest launch: a registration
    /// of the running process writes it again.
    id_written_before: Option<SystemTime>,
    _temp: tempfile::TempDir,
}

impl Agent {
    /// Starts an agent for `site` of `cp` with a token of its own, bound to the site
    /// (see [`Agent::spawn`]), and waits until it is ready (see [`Agent::wait_ready`]).
    /// The site must exist.
    pub async fn start(cp: &ControlPlane, site: &str, env: &[(&str, &str)]) -> Self {
        let token = cp.agent_token(site).await;
        let site_id = cp
            .client()
            .await
            .get_site(site)
            .await
            .unwrap_or_else(|e| panic!("site {site}: {e}"))
            .id;
        let (user, password) = cp.nats_access().agent_user(&site_id).await;
        let mut env = env.to_vec();
        env.push(("FERRY_AGENT_TOKEN", &token));
        env.push(("FERRY_AGENT_NATS_USER", &user));
        env.push(("FERRY_AGENT_NATS_PASSWORD", &password));
        let mut agent = Self::spawn(&cp.endpoint(), cp.nats_access(), site, &env);
        agent.wait_ready().await;
        agent
    }

    /// Spawns an agent for `site` with a short ack wait (so redelivery after a crash is
    /// quick) plus the given `FERRY_AGENT_…` settings (its token as
    /// `FERRY_AGENT_TOKEN`, its NATS user, fault injection), and returns at once: for an
    /// agent that is not meant to become ready yet. Most tests want [`Agent::start`].
    pub fn spawn(control_plane: &str, nats: &NatsAccess, site: &str, env: &[(&str, &str)]) -> Self {
        let temp = tempfile::tempdir().expect("temp dir for the agent");
        let state_dir = temp.path().join("state");
        let args = vec![
            "--site".to_owned(),
            site.to_owned(),
            "--control-plane".to_owned(),
            control_plane.to_owned(),
            "--nats-url".to_owned(),
            nats.url().to_owned(),
            "--state-dir".to_owned(),
            state_dir.display().to_string(),
        ];
        let mut env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        if !env.iter().any(|(k, _)| k == "FERRY_AGENT_ACK_WAIT_SECS") {
            env.push(("FERRY_AGENT_ACK_WAIT_SECS".into(), "6".into()));
        }
        // Several agents run side by side: each serves its metrics on a port of its own.
        if !env.iter().any(|(k, _)| k == "FERRY_AGENT_METRICS__LISTEN") {
            env.push(("FERRY_AGENT_METRICS__LISTEN".into(), "127.0.0.1:0".into()));
        }
        if !env.iter().any(|(k, _)| k == "FERRY_AGENT_LOG__FILTER") {
            env.push((
                "FERRY_AGENT_LOG__FILTER".into(),
                "info,ferry_agent=debug".into(),
            ));
        }
        let mut agent = Agent {
            child: None,
            args,
            env,
            control_plane: control_plane.to_owned(),
            nats: nats.clone(),
            site: site.to_owned(),
            log_path: temp.path().join("agent.log"),
            state_dir,
            id_written_before: None,
            _temp: temp,
        };
        agent.launch();
        agent
    }

    fn launch(&mut self) {
        self.id_written_before = std::fs::metadata(self.state_dir.join(AGENT_ID_FILE))
            .and_then(|m| m.modified())
            .ok();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .expect("opening the agent log");
        let mut cmd = Command::new(binaries::path("ferry-agent"));
        cmd.args(&self.args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("cloning the log handle"))
            .stderr(log);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        self.child = Some(cmd.spawn().expect("spawning ferry-agent"));
    }

    /// Waits until the running process is ready: it has registered (its id file was
    /// written since the launch, and `ListAgents` shows that id alive) and it pulls from
    /// its site's work queue (the durable consumer `agents-<site id>` of `FERRY_JOBS`
    /// has a waiting pull request for it). An agent of a site holds at most one pull
    /// request at a time, and every idle live agent of the site holds one, so "for it"
    /// means as many waiting requests as the site has idle live agents besides it, and
    /// one more. (A killed agent counts as live until its heartbeats lapse, 15 s: an
    /// agent started beside one is ready only after that.) Panics with the agent's log
    /// if the process exits or 30 s pass.
    pub async fn wait_ready(&mut self) {
        let deadline = Instant::now() + READY_TIMEOUT;
        let mut probe = Probe::default();
        loop {
            if let Some(status) = crate::exit_status(&mut self.child) {
                panic!(
                    "ferry-agent for site {} exited with {status} during start-up:\n{}",
                    self.site,
                    self.log()
                );
            }
            let seen = match self.readiness(&mut probe).await {
                Ok(()) => return,
                Err(seen) => seen,
            };
            assert!(
                Instant::now() < deadline,
                "ferry-agent for site {} not ready after {} s ({seen}):\n{}",
                self.site,
                READY_TIMEOUT.as_secs(),
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `Ok` when ready, else what is still missing.
    async fn readiness(&self, probe: &mut Probe) -> Result<(), String> {
        let id = self.registered_id()?;
        let client = match &probe.client {
            Some(client) => client,
            None => {
                let client =
                    ferry_sdk::Client::connect_with(&self.control_plane, &self.tls_files())
                        .await
                        .map_err(|e| format!("connecting to the control plane: {e}"))?;
                // The probe asks as the agent does, with its token.
                let client = match self.env.iter().find(|(k, _)| k == "FERRY_AGENT_TOKEN") {
                    Some((_, token)) => client
                        .with_token(token)
                        .map_err(|e| format!("the agent's token: {e}"))?,
                    None => client,
                };
                probe.client.insert(client)
            }
        };
        let agents = client
            .list_agents(Some(&self.site))
            .await
            .map_err(|e| format!("ListAgents: {e}"))?;
        let alive = |a: &&pb::Agent| a.state == pb::AgentState::Alive as i32;
        let this = agents
            .iter()
            .filter(alive)
            .find(|a| a.id == id)
            .ok_or_else(|| format!("agent {id} is not alive in ListAgents: {agents:?}"))?;
        let idle_others = agents
            .iter()
            .filter(alive)
            .filter(|a| a.id != id && a.jobs.is_empty())
            .count();
        let consumer = format!("agents-{}", this.site);
        let jetstream = match &probe.jetstream {
            Some(js) => js,
            None => probe
                .jetstream
                .insert(async_nats::jetstream::new(self.nats.connect().await)),
        };
        let info = jetstream
            .get_stream(JOBS_STREAM)
            .await
            .map_err(|e| format!("stream {JOBS_STREAM}: {e}"))?
            .consumer_info(&consumer)
            .await
            .map_err(|e| format!("consumer {consumer}: {e}"))?;
        if info.num_waiting > idle_others {
            Ok(())
        } else {
            Err(format!(
                "consumer {consumer} has {} waiting pull requests; {idle_others} idle live \
                 agents of the site besides this one hold one each",
                info.num_waiting
            ))
        }
    }

    /// The TLS files the agent was given (`FERRY_AGENT_TLS__…`): the readiness probe
    /// reaches the control plane as the agent does.
    fn tls_files(&self) -> ferry_sdk::TlsFiles {
        let file = |key: &str| {
            self.env
                .iter()
                .find(|(k, _)| k == &format!("FERRY_AGENT_TLS__{key}"))
                .map(|(_, v)| PathBuf::from(v))
        };
        ferry_sdk::TlsFiles {
            ca_file: file("CA_FILE"),
            cert_file: file("CERT_FILE"),
            key_file: file("KEY_FILE"),
        }
    }

    /// The id the running process registered under, once it has written it.
    fn registered_id(&self) -> Result<String, String> {
        let path = self.state_dir.join(AGENT_ID_FILE);
        let written = std::fs::metadata(&path)
            .and_then(|m| m.modified())
            .map_err(|_| "not registered: no agent-id file yet".to_owned())?;
        if self.id_written_before == Some(written) {
            return Err("not registered again since the restart".to_owned());
        }
        let id = std::fs::read_to_string(&path).unwrap_or_default();
        match id.trim() {
            "" => Err("not registered: the agent-id file is being written".to_owned()),
            id => Ok(id.to_owned()),
        }
    }

    /// Waits up to `timeout` for the process to exit on its own; its exit status.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = crate::exit_status(&mut self.child) {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILL: no chance to report, ack or hand anything back.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills the agent and starts it again over the same state directory (so with the
    /// same id), then waits until it is ready again.
    pub async fn restart(&mut self) {
        self.kill();
        self.launch();
        self.wait_ready().await;
    }

    /// The running process's id, for reading its resource usage.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// A setting the agent was started with (`FERRY_AGENT_TOKEN`, say).
    pub fn env(&self, key: &str) -> Option<&str> {
        self.env
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn state_dir(&self) -> &std::path::Path {
        &self.state_dir
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Where the running agent serves `/metrics`, from the last "metrics listening"
    /// line of its log (text or JSON).
    pub fn metrics_addr(&self) -> std::net::SocketAddr {
        let log = self.log();
        log.lines()
            .rev()
            .filter(|l| l.contains("metrics listening"))
            .find_map(|l| {
                let (_, rest) = l.split_once("addr")?;
                let rest = rest.trim_start_matches(['=', '"', ':']);
                rest.split(|c: char| c == '"' || c.is_whitespace())
                    .next()?
                    .parse()
                    .ok()
            })
            .unwrap_or_else(|| panic!("the agent logged no metrics address:\n{log}"))
    }

    /// `GET /metrics` from the agent: the Prometheus exposition.
    pub async fn metrics(&self) -> String {
        crate::http::get_text(self.metrics_addr(), "/metrics").await
    }
}

/// Connections [`Agent::wait_ready`] opens once and reuses between its polls.
#[derive(Default)]
struct Probe {
    client: Option<ferry_sdk::Client>,
    jetstream: Option<async_nats::jetstream::Context>,
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill();
    }
}
