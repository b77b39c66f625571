//! A control plane running inside the test process, on a clock the test moves: for
//! replaying days of access history in seconds. Everything else is real: its own
//! nats-server, SQLite in a temporary directory, the gRPC server on a free port.

use std::{sync::Arc, time::Duration};

use ferry_control_plane::{
    clock::{ManualClock, SharedClock},
    config::Config,
    server,
};
use tokio::{sync::oneshot, task::JoinHandle, time::Instant};
use tonic_health::pb::{
    health_check_response::ServingStatus, health_client::HealthClient, HealthCheckRequest,
};

use crate::{free_port, NatsServer};

pub struct EmbeddedControlPlane {
    port: u16,
    clock: Arc<ManualClock>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<anyhow::Result<()>>,
    _nats: NatsServer,
    _temp: tempfile::TempDir,
}

impl EmbeddedControlPlane {
    /// Starts a control plane whose clock stands at `start` until the test moves it.
    pub async fn start(start: chrono::DateTime<chrono::Utc>) -> Self {
        let nats = NatsServer::start().await;
        let temp = tempfile::tempdir().expect("temp dir for the control plane");
        let port = free_port();
        let config = Config {
            listen: format!("127.0.0.1:{port}"),
            data_dir: temp.path().join("data"),
            nats: ferry_control_plane::config::NatsConfig {
                url: nats.url(),
                user: Some(crate::nats::CONTROL_PLANE_USER.into()),
                password: None,
                password_file: Some(nats.access().control_plane_password_file()),
            },
            // Tests that replay history train models when they ask to, never because
            // the manual clock jumped past the schedule.
            training: ferry_control_plane::config::TrainingConfig {
                interval_secs: 100 * 365 * 86_400,
            },
            // Sync schedules and the autopilot's policies are checked every second, so
            // a test that moves the clock past a due time sees its run soon.
            autopilot: ferry_control_plane::config::AutopilotConfig {
                schedules_interval_secs: 1,
                interval_secs: 1,
            },
            ..Config::default()
        };
        config.validate().expect("a valid embedded configuration");
        let clock = Arc::new(ManualClock::starting_at(start));
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server::serve(
            config,
            SharedClock::new(clock.clone()),
            async {
                let _ = stopped.await;
                "test finished"
            },
        ));
        let cp = EmbeddedControlPlane {
            port,
            clock,
            stop: Some(stop),
            task,
            _nats: nats,
            _temp: temp,
        };
        cp.wait_serving().await;
        cp
    }

    /// The control plane's clock: set or advance it to move time for every rule.
    pub fn clock(&self) -> &ManualClock {
        &self.clock
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Starts an agent for `site` (which must exist) with a token bound to it and its
    /// own NATS user, and waits until it is ready.
    pub async fn agent(&self, site: &str) -> crate::Agent {
        let client = self.client().await;
        let site_id = client
            .get_site(site)
            .await
            .unwrap_or_else(|e| panic!("site {site}: {e}"))
            .id;
        let token = client
            .create_token(
                &format!("agent-{site}"),
                ferry_sdk::pb::Role::Agent,
                Some(site),
                None,
            )
            .await
            .unwrap_or_else(|e| panic!("an agent token for {site}: {e}"))
            .secret;
        let access = self._nats.access();
        let (user, password) = access.agent_user(&site_id).await;
        let env = [
            ("FERRY_AGENT_TOKEN", token.as_str()),
            ("FERRY_AGENT_NATS_USER", user.as_str()),
            ("FERRY_AGENT_NATS_PASSWORD", password.as_str()),
        ];
        let mut agent = crate::Agent::spawn(&self.endpoint(), &access, site, &env);
        agent.wait_ready().await;
        agent
    }

    /// The admin token the control plane wrote on start, for the `ferry` CLI.
    pub fn admin_token_file(&self) -> std::path::PathBuf {
        self._temp.path().join("data/admin.token")
    }

    /// A client calling as the admin, with the token the control plane wrote on start.
    pub async fn client(&self) -> ferry_sdk::Client {
        let token = std::fs::read_to_string(self._temp.path().join("data/admin.token"))
            .expect("the embedded control plane wrote its admin token");
        ferry_sdk::Client::connect(&self.endpoint())
            .await
            .expect("connecting to the embedded control plane")
            .with_token(token.trim())
            .expect("a token fit for a header")
    }

    async fn wait_serving(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            assert!(
                !self.task.is_finished(),
                "the embedded control plane stopped during start-up"
            );
            if let Ok(channel) = tonic::transport::Channel::from_shared(self.endpoint())
                .expect("endpoint is a valid URI")
                .connect()
                .await
            {
                let check = HealthClient::new(channel)
                    .check(HealthCheckRequest {
                        service: String::new(),
                    })
                    .await;
                if check.is_ok_and(|r| r.into_inner().status == ServingStatus::Serving as i32) {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "embedded control plane not serving after 60 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Shuts the server down gracefully and reports how it ended.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task).await?
    }
}

impl Drop for EmbeddedControlPlane {
    fn drop(&mut self) {
        self.task.abort();
    }
}
