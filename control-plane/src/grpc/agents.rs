use ferry_proto::{
    time::to_duration,
    v1::{self as pb, agent_service_server::AgentService},
};
use std::pin::Pin;

use futures::Stream;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::caller::caller;
use crate::{
    convert::check_changed_keys,
    convert::{access_to_pb, agent_id, agent_to_pb, job_id, manifest_object_to_pb},
    domain::{agent::HEARTBEAT_INTERVAL, dataset::DatasetPath, ids::JobId, name::Ref},
    error::{Error, Result},
    service::{Agents, RegisterRequest},
};

/// Manifest entries per message of `ReadSyncManifest` (about 100 bytes each).
const MANIFEST_BATCH: u64 = 5000;

type ManifestStream =
    Pin<Box<dyn Stream<Item = Result<pb::ReadSyncManifestResponse, Status>> + Send>>;

pub struct AgentApi {
    agents: Agents,
}

impl AgentApi {
    pub fn new(agents: Agents) -> Self {
        AgentApi { agents }
    }
}

#[tonic::async_trait]
impl AgentService for AgentApi {
    type ReadSyncManifestStream = ManifestStream;

    async fn read_sync_manifest(
        &self,
        request: Request<pb::ReadSyncManifestRequest>,
    ) -> Result<Response<Self::ReadSyncManifestStream>, Status> {
        let caller = caller(&request)?;
        let req = request.into_inner();
        let job = self
            .agents
            .manifest_job(
                &caller,
                agent_id(&req.agent_id)?,
                job_id("job", &req.job)?,
                req.attempt,
            )
            .await?;
        let (tx, rx) = mpsc::channel(2);
        let agents = self.agents.clone();
        // One page of the manifest is read while the agent takes the previous one.
        tokio::spawn(async move {
            let mut after: Option<String> = None;
            loop {
                let page = match agents
                    .manifest_page(&job, after.as_deref(), MANIFEST_BATCH)
                    .await
                {
                    Ok(page) => page,
                    Err(e) => {
                        let _ = tx.send(Err(Status::from(e))).await;
                        return;
                    }
                };
                let last = page.len() < MANIFEST_BATCH as usize;
                after = page.last().map(|(key, _)| key.clone());
                let objects = page.into_iter().map(manifest_object_to_pb).collect();
                let batch = pb::ReadSyncManifestResponse { objects };
                if tx.send(Ok(batch)).await.is_err() || last {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn register_agent(
        &self,
        request: Request<pb::RegisterAgentRequest>,
    ) -> Result<Response<pb::RegisterAgentResponse>, Status> {
        let caller = caller(&request)?;
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
        let agent = self.agents.register(&caller, register).await?;
        Ok(Response::new(pb::RegisterAgentResponse {
            agent: Some(agent_to_pb(agent, self.agents.clock().now())),
            heartbeat_interval: Some(to_duration(HEARTBEAT_INTERVAL)),
        }))
    }

    async fn heartbeat(
        &self,
        request: Request<pb::HeartbeatRequest>,
    ) -> Result<Response<pb::HeartbeatResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.into_inner();
        let jobs = req
            .jobs
            .iter()
            .map(|j| job_id("jobs", j))
            .collect::<Result<Vec<JobId>>>()?;
        let answer = self
            .agents
            .heartbeat(&caller, agent_id(&req.agent_id)?, req.stopping, &jobs)
            .await?;
        Ok(Response::new(pb::HeartbeatResponse {
            job_agents: answer
                .job_agents
                .into_iter()
                .map(|(job, count)| (job.to_string(), count))
                .collect(),
            watches: answer
                .watches
                .into_iter()
                .map(|w| pb::Watch {
                    schedule: w.schedule.to_string(),
                    path: w.path,
                    filter: w.filter,
                })
                .collect(),
        }))
    }

    async fn report_changes(
        &self,
        request: Request<pb::ReportChangesRequest>,
    ) -> Result<Response<pb::ReportChangesResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.into_inner();
        let schedule = req.schedule.parse().map_err(|_| {
            Error::invalid(
                "schedule",
                format!("'{}' is not a schedule id", req.schedule),
            )
        })?;
        check_changed_keys(&req.keys)?;
        self.agents
            .report_changes(
                &caller,
                agent_id(&req.agent_id)?,
                schedule,
                &req.keys,
                req.rescan,
            )
            .await?;
        Ok(Response::new(pb::ReportChangesResponse {}))
    }

    async fn list_agents(
        &self,
        request: Request<pb::ListAgentsRequest>,
    ) -> Result<Response<pb::ListAgentsResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.into_inner();
        let site = (!req.site.is_empty())
            .then(|| Ref::parse("site", &req.site))
            .transpose()?;
        let agents = self.agents.list(&caller, site.as_ref()).await?;
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
        let caller = caller(&request)?;
        let req = request.into_inner();
        let job = job_id("job", &req.job)?;
        let (source, destination) = self
            .agents
            .job_access(
                &caller,
                agent_id(&req.agent_id)?,
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

    async fn get_site_access(
        &self,
        request: Request<pb::GetSiteAccessRequest>,
    ) -> Result<Response<pb::GetSiteAccessResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.into_inner();
        let path = DatasetPath::parse("path", &req.path)?;
        let site = self
            .agents
            .site_access(&caller, agent_id(&req.agent_id)?, path)
            .await?;
        Ok(Response::new(pb::GetSiteAccessResponse {
            site: Some(access_to_pb(site)),
        }))
    }
}
