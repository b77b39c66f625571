use ferry_proto::{
    time::{to_duration, to_timestamp},
    v1::{self as pb, agent_service_server::AgentService},
};
use secrecy::ExposeSecret;
use tonic::{metadata::MetadataMap, Request, Response, Status};

use super::jobs::job_id;
use crate::{
    domain::{
        agent::{Liveness, HEARTBEAT_INTERVAL},
        ids::{AgentId, JobId},
        name::Ref,
    },
    error::{Error, Result},
    service::{Agents, RegisterRequest, SiteAccess},
};

pub struct AgentApi {
    agents: Agents,
}

impl AgentApi {
    pub fn new(agents: Agents) -> Self {
        AgentApi { agents }
    }
}

/// The bearer token of `authorization: Bearer <token>`, if any.
fn bearer(metadata: &MetadataMap) -> Option<String> {
    let value = metadata.get("authorization")?.to_str().ok()?;
    value.strip_prefix("Bearer ").map(str::to_owned)
}

fn agent_id(s: &str) -> Result<AgentId> {
    s.parse()
        .map_err(|_| Error::invalid("agent_id", format!("'{s}' is not an agent id")))
}

#[tonic::async_trait]
impl AgentService for AgentApi {
    async fn register_agent(
        &self,
        request: Request<pb::RegisterAgentRequest>,
    ) -> Result<Response<pb::RegisterAgentResponse>, Status> {
        let token = bearer(request.metadata());
        let req = request.into_inner();
        let register = RegisterRequest {
            site: Ref::parse("site", &req.site)?,
            version: req.version,
            hostname: req.hostname,
            concurrency: req.concurrency,
            agent_id: (!req.agent_id.is_empty())
                .then(|| agent_id(&req.agent_id))
                .transpose()?,
        };
        let registration = self.agents.register(token.as_deref(), register).await?;
        Ok(Response::new(pb::RegisterAgentResponse {
            agent: Some(agent_to_pb(registration.agent, self.agents.clock().now())),
            token: registration.token.expose_secret().to_owned(),
            heartbeat_interval: Some(to_duration(HEARTBEAT_INTERVAL)),
        }))
    }

    async fn heartbeat(
        &self,
        request: Request<pb::HeartbeatRequest>,
    ) -> Result<Response<pb::HeartbeatResponse>, Status> {
        let token = bearer(request.metadata());
        let req = request.into_inner();
        let jobs = req
            .jobs
            .iter()
            .map(|j| job_id("jobs", j))
            .collect::<Result<Vec<JobId>>>()?;
        let agents = self
            .agents
            .heartbeat(
                agent_id(&req.agent_id)?,
                token.as_deref(),
                req.stopping,
                &jobs,
            )
            .await?;
        Ok(Response::new(pb::HeartbeatResponse {
            job_agents: agents
                .into_iter()
                .map(|(job, count)| (job.to_string(), count))
                .collect(),
        }))
    }

    async fn list_agents(
        &self,
        request: Request<pb::ListAgentsRequest>,
    ) -> Result<Response<pb::ListAgentsResponse>, Status> {
        let req = request.into_inner();
        let site = (!req.site.is_empty())
            .then(|| Ref::parse("site", &req.site))
            .transpose()?;
        let agents = self.agents.list(site.as_ref()).await?;
        Ok(Response::new(pb::ListAgentsResponse {
            agents: {
                let now = self.agents.clock().now();
                agents.into_iter().map(|a| agent_to_pb(a, now)).collect()
            },
        }))
    }

    async fn get_job_access(
        &self,
        request: Request<pb::GetJobAccessRequest>,
    ) -> Result<Response<pb::GetJobAccessResponse>, Status> {
        let token = bearer(request.metadata());
        let req = request.into_inner();
        let job = job_id("job", &req.job)?;
        let (source, destination) = self
            .agents
            .job_access(
                agent_id(&req.agent_id)?,
                token.as_deref(),
                job,
                req.attempt,
                req.cleanup,
            )
            .await?;
        Ok(Response::new(pb::GetJobAccessResponse {
            source: Some(access_to_pb(source)),
            destination: Some(access_to_pb(destination)),
        }))
    }
}

fn access_to_pb(a: SiteAccess) -> pb::SiteAccess {
    pb::SiteAccess {
        site: a.site.id.to_string(),
        uri: a.site.uri.to_string(),
        options: a.site.options.into_iter().collect(),
        credentials: a
            .credentials
            .entries()
            .iter()
            .map(|(k, v)| (k.clone(), v.expose_secret().to_owned()))
            .collect(),
        path: a.path,
    }
}

fn agent_to_pb(a: crate::domain::agent::Agent, now: chrono::DateTime<chrono::Utc>) -> pb::Agent {
    let state = match a.liveness(now) {
        Liveness::Alive => pb::AgentState::Alive,
        Liveness::Stale => pb::AgentState::Stale,
        Liveness::Stopped => pb::AgentState::Stopped,
    };
    pb::Agent {
        id: a.id.to_string(),
        site: a.site_id.to_string(),
        version: a.version,
        hostname: a.hostname,
        state: state.into(),
        concurrency: a.concurrency,
        last_heartbeat_time: Some(to_timestamp(a.last_heartbeat_at)),
        register_time: Some(to_timestamp(a.registered_at)),
        jobs: a.jobs.iter().map(ToString::to_string).collect(),
    }
}
