//! A private `nats-server -js` (Debian package `nats-server`) per test: its own port and
//! store directory, so tests never share streams and can stop or restart the broker.
//!
//! It runs with authentication, as docs/operations.md tells operators to: a user for
//! the control plane that may do anything, and one per agent site, added while the
//! server runs (the configuration is rewritten and the server reloads it on SIGHUP),
//! whose permissions are exactly those `ferry nats-user` writes.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use base64::Engine;
use ferry_proto::bus::{agent_permissions, nats_user_entry};

use crate::free_port;

/// The control plane's NATS user in tests.
pub const CONTROL_PLANE_USER: &str = "ferry-control-plane";

pub struct NatsServer {
    child: Option<Child>,
    access: NatsAccess,
    store_dir: PathBuf,
    log_path: PathBuf,
    _temp: tempfile::TempDir,
}

/// What it takes to use a [`NatsServer`]: its URL, the control plane's credentials, and
/// a way to add agent users. Cheap to clone; valid while the server's owner keeps it.
#[derive(Clone)]
pub struct NatsAccess {
    url: String,
    port: u16,
    dir: PathBuf,
    control_plane_password: String,
    /// The agent users so far: (site id, user, password). The configuration file is
    /// rendered from these.
    users: Arc<Mutex<Vec<(String, String, String)>>>,
    /// Entries of `authorization.users` given by the test, as written.
    entries: Arc<Vec<String>>,
}

impl NatsServer {
    /// Starts the broker with JetStream and authentication, and waits until it accepts
    /// connections.
    pub async fn start() -> Self {
        Self::start_with_entries(Vec::new()).await
    }

    /// Starts the broker with these `authorization.users` entries (as `ferry nats-user`
    /// prints them) besides the harness's own users.
    pub async fn start_with_entries(entries: Vec<String>) -> Self {
        let temp = tempfile::tempdir().expect("temp dir for nats-server");
        let port = free_port();
        let access = NatsAccess {
            url: format!("nats://127.0.0.1:{port}"),
            port,
            dir: temp.path().to_owned(),
            control_plane_password: random_password(),
            users: Default::default(),
            entries: Arc::new(entries),
        };
        std::fs::write(
            access.control_plane_password_file(),
            format!("{}\n", access.control_plane_password),
        )
        .expect("writing the control plane's NATS password");
        access.write_config();
        let mut server = NatsServer {
            child: None,
            access,
            store_dir: temp.path().join("jetstream"),
            log_path: temp.path().join("nats-server.log"),
            _temp: temp,
        };
        server.spawn().await;
        server
    }

    pub fn url(&self) -> String {
        self.access.url.clone()
    }

    /// The URL, credentials and users of this server, for a control plane and agents.
    pub fn access(&self) -> NatsAccess {
        self.access.clone()
    }

    /// Where JetStream keeps its streams.
    pub fn store_dir(&self) -> &Path {
        &self.store_dir
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Kills the broker (SIGKILL): in-flight publishes fail; stored messages survive.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the broker again on the same port over the same store, with every user.
    pub async fn restart(&mut self) {
        self.kill();
        self.spawn().await;
    }

    async fn spawn(&mut self) {
        let child = Command::new(binary())
            .arg("-c")
            .arg(self.access.config_file())
            .arg("-l")
            .arg(&self.log_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawning nats-server (Debian package nats-server)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        let ready_before = self.log().matches("Server is ready").count();
        loop {
            if self.log().matches("Server is ready").count() > ready_before
                && tokio::net::TcpStream::connect(("127.0.0.1", self.access.port))
                    .await
                    .is_ok()
            {
                return;
            }
            if let Some(status) = crate::exit_status(&mut self.child) {
                panic!("nats-server exited with {status}:\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "nats-server not ready after 30 s:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

impl NatsAccess {
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A file holding the control plane's password (`FERRY_NATS__PASSWORD_FILE`).
    pub fn control_plane_password_file(&self) -> PathBuf {
        self.dir.join("control-plane.nats-password")
    }

    /// The settings that make a control plane connect as its NATS user.
    pub fn control_plane_env(&self) -> Vec<(String, String)> {
        vec![
            ("FERRY_NATS__USER".into(), CONTROL_PLANE_USER.into()),
            (
                "FERRY_NATS__PASSWORD_FILE".into(),
                self.control_plane_password_file().display().to_string(),
            ),
        ]
    }

    /// A client with the control plane's rights (everything), for tests that look at
    /// streams and consumers or publish as an agent would.
    pub async fn connect(&self) -> async_nats::Client {
        self.connect_as(CONTROL_PLANE_USER, &self.control_plane_password, "_INBOX")
            .await
            .expect("connecting to NATS as the control plane")
    }

    /// A client as `user`, with replies under `inbox_prefix`.
    pub async fn connect_as(
        &self,
        user: &str,
        password: &str,
        inbox_prefix: &str,
    ) -> Result<async_nats::Client, async_nats::ConnectError> {
        async_nats::ConnectOptions::new()
            .user_and_password(user.to_owned(), password.to_owned())
            .custom_inbox_prefix(inbox_prefix)
            .connect(&self.url)
            .await
    }

    /// The user of `site_id`'s agents, (user, password), with the permissions
    /// `ferry nats-user` writes: added to the server's configuration, which the server
    /// reloads, on first use.
    pub async fn agent_user(&self, site_id: &str) -> (String, String) {
        let added = {
            let mut users = self.users.lock().expect("the NATS users lock");
            match users.iter().find(|(site, _, _)| site == site_id) {
                Some((_, user, password)) => return (user.clone(), password.clone()),
                None => {
                    let user = format!("ferry-agent-{site_id}");
                    let password = random_password();
                    users.push((site_id.to_owned(), user.clone(), password.clone()));
                    (user, password)
                }
            }
        };
        let reloads = self.reloads();
        self.write_config();
        let pid = std::fs::read_to_string(self.dir.join("nats-server.pid"))
            .expect("nats-server's pid file");
        let status = Command::new("kill")
            .args(["-HUP", pid.trim()])
            .status()
            .expect("running kill");
        assert!(status.success(), "kill -HUP {pid} failed");
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.reloads() == reloads {
            assert!(
                Instant::now() < deadline,
                "nats-server did not reload its configuration:\n{}",
                std::fs::read_to_string(self.dir.join("nats-server.log")).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        added
    }

    fn reloads(&self) -> usize {
        std::fs::read_to_string(self.dir.join("nats-server.log"))
            .unwrap_or_default()
            .matches("Reloaded server configuration")
            .count()
    }

    fn config_file(&self) -> PathBuf {
        self.dir.join("nats-server.conf")
    }

    /// Writes the configuration (atomically, so a reload never reads half of it).
    fn write_config(&self) {
        let mut entries = vec![nats_user_entry(
            CONTROL_PLANE_USER,
            &self.control_plane_password,
            None,
        )];
        entries.extend(self.entries.iter().cloned());
        for (site, user, password) in self.users.lock().expect("the NATS users lock").iter() {
            entries.push(nats_user_entry(
                user,
                password,
                Some(&agent_permissions(site)),
            ));
        }
        let config = format!(
            "listen: \"127.0.0.1:{port}\"\npid_file: {pid:?}\n\
             jetstream {{ store_dir: {store:?} }}\n\
             authorization {{\n  users = [\n{users}\n  ]\n}}\n",
            port = self.port,
            pid = self.dir.join("nats-server.pid").display().to_string(),
            store = self.dir.join("jetstream").display().to_string(),
            users = entries.join("\n"),
        );
        let tmp = self.dir.join("nats-server.conf.tmp");
        std::fs::write(&tmp, config).expect("writing nats-server.conf");
        std::fs::rename(&tmp, self.config_file()).expect("replacing nats-server.conf");
    }
}

fn binary() -> &'static str {
    ["/usr/sbin/nats-server", "/usr/bin/nats-server"]
        .into_iter()
        .find(|p| Path::new(p).is_file())
        .unwrap_or("nats-server")
}

/// 192 random bits, URL-safe.
fn random_password() -> String {
    use std::io::Read;
    let mut bytes = [0u8; 24];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .expect("reading /dev/urandom");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}
