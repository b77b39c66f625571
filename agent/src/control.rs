//! The agent's side of the control plane API: registration (with the agent id kept in
//! the state directory), heartbeats, and the just-in-time access to a job's sites.
//! Every call carries the agent's token, bound to its site.

use std::{collections::HashMap, path::Path, time::Duration};

use ferry_proto::v1::{
    self as pb, agent_service_client::AgentServiceClient, job_service_client::JobServiceClient,
    site_service_client::SiteServiceClient,
};
use ferry_sdk::{cause_chain, TlsFiles};
use ferry_storage::SiteAccess;
use secrecy::{ExposeSecret, SecretString};
use tonic::{transport::Channel, Request, Status};
use tracing::{info, warn};

use crate::wire;

/// Why the agent could not register with the control plane.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    #[error("control plane endpoint {endpoint:?}: {reason}")]
    Endpoint { endpoint: String, reason: String },
    #[error("{what} {path}: {source}")]
    StateDir {
        what: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("registering with the control plane: {0}")]
    Refused(String),
}

/// A site's bandwidth limit and this agent's part of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SiteShare {
    pub limit: u64,
    pub agents: u64,
    pub share: u64,
}

pub struct ControlPlane {
    channel: Channel,
    agent_id: String,
    site_id: String,
    /// `None` against a control plane with authentication off.
    token: Option<SecretString>,
    heartbeat_interval: Duration,
}

/// Where the agent keeps its id between runs.
const AGENT_ID_FILE: &str = "agent-id";

impl ControlPlane {
    /// Registers with the control plane, retrying with back-off until it answers. A
    /// refusal (unknown site, a token refused or bound to another site) is returned at
    /// once.
    pub async fn register(
        endpoint: &str,
        site: &str,
        concurrency: usize,
        token: Option<SecretString>,
        tls: &TlsFiles,
        state_dir: &Path,
    ) -> Result<Self, RegisterError> {
        let state_error = |what, path: &Path, source| RegisterError::StateDir {
            what,
            path: path.display().to_string(),
            source,
        };
        std::fs::create_dir_all(state_dir)
            .map_err(|e| state_error("creating state directory", state_dir, e))?;
        let id_path = state_dir.join(AGENT_ID_FILE);
        let previous = std::fs::read_to_string(&id_path)
            .ok()
            .map(|s| s.trim().to_owned());
        let channel = channel(endpoint, tls)?;
        let mut client = AgentServiceClient::new(channel.clone());
        let mut backoff = Duration::from_millis(200);
        let response = loop {
            let request = authorized(
                token.as_ref(),
                pb::RegisterAgentRequest {
                    site: site.to_owned(),
                    version: env!("CARGO_PKG_VERSION").to_owned(),
                    hostname: hostname(),
                    concurrency: u32::try_from(concurrency).unwrap_or(u32::MAX),
                    agent_id: previous.clone().unwrap_or_default(),
                },
            )
            .map_err(|s| RegisterError::Refused(s.message().to_owned()))?;
            match client.register_agent(request).await {
                Ok(response) => break response.into_inner(),
                Err(status) if status.code() == tonic::Code::Unavailable => {
                    warn!(endpoint, error = %describe(&status), "control plane unreachable; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
                Err(status) => return Err(RegisterError::Refused(describe(&status))),
            }
        };
        let agent = response
            .agent
            .ok_or_else(|| RegisterError::Refused("the answer names no agent".into()))?;
        std::fs::write(&id_path, &agent.id).map_err(|e| state_error("writing", &id_path, e))?;
        info!(agent_id = %agent.id, site_id = %agent.site, "registered with the control plane");
        let heartbeat_interval = response
            .heartbeat_interval
            .as_ref()
            .and_then(ferry_proto::time::from_duration)
            .unwrap_or(Duration::from_secs(5));
        Ok(ControlPlane {
            channel,
            agent_id: agent.id,
            site_id: agent.site,
            token,
            heartbeat_interval,
        })
    }

    pub fn agent_id(&self) -> &str {
        &self.agent_id
    }

    /// The id of the site this agent serves.
    pub fn site_id(&self) -> &str {
        &self.site_id
    }

    pub fn heartbeat_interval(&self) -> Duration {
        self.heartbeat_interval
    }

    fn authorized<T>(&self, message: T) -> Result<Request<T>, Status> {
        authorized(self.token.as_ref(), message)
    }

    /// Reports this agent alive and the jobs it runs copy tasks of; answers, for each
    /// of them, how many live agents (this one included) run tasks of it, and which
    /// continuous syncs' directories the agents of this site watch.
    pub async fn heartbeat(
        &self,
        stopping: bool,
        jobs: Vec<String>,
    ) -> Result<(HashMap<String, u32>, Vec<pb::Watch>), Status> {
        let request = self.authorized(pb::HeartbeatRequest {
            agent_id: self.agent_id.clone(),
            stopping,
            jobs,
        })?;
        let answer = AgentServiceClient::new(self.channel.clone())
            .heartbeat(request)
            .await?
            .into_inner();
        Ok((answer.job_agents, answer.watches))
    }

    /// Reports keys a continuous sync's watcher saw change, or that it may have
    /// missed some (`rescan`).
    pub async fn report_changes(
        &self,
        schedule: &str,
        keys: Vec<String>,
        rescan: bool,
    ) -> Result<(), Status> {
        let request = self.authorized(pb::ReportChangesRequest {
            agent_id: self.agent_id.clone(),
            schedule: schedule.to_owned(),
            keys,
            rescan,
        })?;
        AgentServiceClient::new(self.channel.clone())
            .report_changes(request)
            .await?;
        Ok(())
    }

    /// The source and destination of a job this agent holds; credentials come only
    /// this way, never over NATS.
    pub async fn job_access(
        &self,
        job: &str,
        attempt: u32,
        cleanup: bool,
    ) -> Result<(SiteAccess, SiteAccess), Status> {
        let request = self.authorized(pb::GetJobAccessRequest {
            agent_id: self.agent_id.clone(),
            job: job.to_owned(),
            attempt,
            cleanup,
        })?;
        let response = AgentServiceClient::new(self.channel.clone())
            .get_job_access(request)
            .await?
            .into_inner();
        let convert = |a: Option<pb::SiteAccess>| {
            a.map(wire::site_access)
                .ok_or_else(|| Status::internal("job access answer without a site"))
        };
        Ok((convert(response.source)?, convert(response.destination)?))
    }

    /// The manifest of the replica the sync job `job` brings in step, as its last
    /// verified sync recorded it: streamed, each batch handed to `each` as it comes.
    pub async fn sync_manifest(
        &self,
        job: &str,
        attempt: u32,
        mut each: impl FnMut(Vec<pb::ManifestObject>),
    ) -> Result<(), Status> {
        let request = self.authorized(pb::ReadSyncManifestRequest {
            agent_id: self.agent_id.clone(),
            job: job.to_owned(),
            attempt,
        })?;
        let mut stream = AgentServiceClient::new(self.channel.clone())
            .read_sync_manifest(request)
            .await?
            .into_inner();
        while let Some(batch) = stream.message().await? {
            each(batch.objects);
        }
        Ok(())
    }

    /// This agent's own site, at dataset `path`: for a dry run, which lists a dataset
    /// the control plane cannot see. Credentials come only this way, never over NATS.
    pub async fn site_access(&self, path: &str) -> Result<SiteAccess, Status> {
        let request = self.authorized(pb::GetSiteAccessRequest {
            agent_id: self.agent_id.clone(),
            path: path.to_owned(),
        })?;
        let response = AgentServiceClient::new(self.channel.clone())
            .get_site_access(request)
            .await?
            .into_inner();
        response
            .site
            .map(wire::site_access)
            .ok_or_else(|| Status::internal("site access answer without a site"))
    }

    /// This agent's share of its site's bandwidth limit: the limit divided among the
    /// site's live agents. `None` when the site has no limit.
    pub async fn site_share(&self) -> Result<Option<SiteShare>, Status> {
        let site = SiteServiceClient::new(self.channel.clone())
            .get_site(self.authorized(pb::GetSiteRequest {
                site: self.site_id.clone(),
            })?)
            .await?
            .into_inner();
        if site.bandwidth_limit_bytes_per_sec == 0 {
            return Ok(None);
        }
        let agents = AgentServiceClient::new(self.channel.clone())
            .list_agents(self.authorized(pb::ListAgentsRequest {
                site: self.site_id.clone(),
            })?)
            .await?
            .into_inner()
            .agents;
        // This agent counts even if its first heartbeat is not in yet.
        let alive = agents
            .iter()
            .filter(|a| a.state == pb::AgentState::Alive as i32 && a.id != self.agent_id)
            .count() as u64
            + 1;
        Ok(Some(SiteShare {
            limit: site.bandwidth_limit_bytes_per_sec,
            agents: alive,
            share: (site.bandwidth_limit_bytes_per_sec / alive).max(1),
        }))
    }

    pub async fn job(&self, job: &str) -> Result<pb::Job, Status> {
        let request = self.authorized(pb::GetJobRequest {
            job: job.to_owned(),
        })?;
        Ok(JobServiceClient::new(self.channel.clone())
            .get_job(request)
            .await?
            .into_inner())
    }

    /// What the control plane records of a copy task's objects, by key: their status,
    /// source hash and any unfinished multipart upload, so that a task run again (by
    /// this agent after a restart, or by another) resumes instead of starting over.
    pub async fn task_objects(
        &self,
        job: &str,
        task: &str,
    ) -> Result<HashMap<String, pb::JobObject>, Status> {
        let mut client = JobServiceClient::new(self.channel.clone());
        let mut recorded = HashMap::new();
        let mut page_token = String::new();
        loop {
            let page = client
                .list_job_objects(self.authorized(pb::ListJobObjectsRequest {
                    job: job.to_owned(),
                    page_size: 1000,
                    page_token: page_token.clone(),
                    task: task.to_owned(),
                    ..Default::default()
                })?)
                .await?
                .into_inner();
            recorded.extend(page.objects.into_iter().map(|o| (o.key.clone(), o)));
            if page.next_page_token.is_empty() {
                return Ok(recorded);
            }
            page_token = page.next_page_token;
        }
    }
}

/// A channel to `endpoint`, over TLS with `tls` when it is an `https://` URL; dialled on
/// first use.
fn channel(endpoint: &str, tls: &TlsFiles) -> Result<Channel, RegisterError> {
    let invalid = |reason: String| RegisterError::Endpoint {
        endpoint: endpoint.to_owned(),
        reason,
    };
    let mut target = Channel::from_shared(endpoint.to_owned())
        .map_err(|e| invalid(e.to_string()))?
        .connect_timeout(Duration::from_secs(5));
    if endpoint.starts_with("https://") {
        let config = tls
            .client_config()
            .map_err(|e| invalid(format!("tls.{e}")))?;
        target = target
            .tls_config(config)
            .map_err(|e| invalid(format!("TLS: {}", cause_chain(&e))))?;
    }
    Ok(target.connect_lazy())
}

/// A refusal as the control plane worded it, after its code; a call that failed on this
/// side of the wire (a TLS handshake that failed or that the control plane refused, say)
/// with its causes, since tonic's own message says only "transport error".
fn describe(status: &Status) -> String {
    ferry_sdk::Error::Rpc(status.clone()).to_string()
}

/// `message` with the agent's token as its `authorization` metadata.
fn authorized<T>(token: Option<&SecretString>, message: T) -> Result<Request<T>, Status> {
    let mut request = Request::new(message);
    if let Some(token) = token {
        let value = format!("Bearer {}", token.expose_secret())
            .parse()
            .map_err(|_| Status::invalid_argument("the agent token is not a valid header value"))?;
        request.metadata_mut().insert("authorization", value);
    }
    Ok(request)
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into())
}
