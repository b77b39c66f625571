//! A real `ferry-agent` process serving one site.

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
};

use crate::binaries;

pub struct Agent {
    child: Option<Child>,
    args: Vec<String>,
    env: Vec<(String, String)>,
    log_path: PathBuf,
    state_dir: PathBuf,
    _temp: tempfile::TempDir,
}

impl Agent {
    /// Starts an agent for `site` with a short ack wait (so redelivery after a crash is
    /// quick) plus the given `FERRY_AGENT_…` settings, e.g. fault injection.
    pub fn start(control_plane: &str, nats_url: &str, site: &str, env: &[(&str, &str)]) -> Self {
        let temp = tempfile::tempdir().expect("temp dir for the agent");
        let state_dir = temp.path().join("state");
        let args = vec![
            "--site".to_owned(),
            site.to_owned(),
            "--control-plane".to_owned(),
            control_plane.to_owned(),
            "--nats-url".to_owned(),
            nats_url.to_owned(),
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
            log_path: temp.path().join("agent.log"),
            state_dir,
            _temp: temp,
        };
        agent.spawn();
        agent
    }

    fn spawn(&mut self) {
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

    /// SIGKILL: no chance to report, ack or hand anything back.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the agent again over the same state directory (so with the same id).
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// The running process's id, for reading its resource usage.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn state_dir(&self) -> &std::path::Path {
        &self.state_dir
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill();
    }
}
