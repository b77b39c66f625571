//! Agent use cases: registration with bearer tokens, heartbeats, and the just-in-time
//! hand-over of a job's site access (credentials included) to the agent holding it.

use std::collections::HashMap;

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use tracing::info;

use super::Catalogue;
use crate::{
    domain::{
        agent::{agents_per_job, Agent},
        dataset::DatasetPath,
        ids::{AgentId, JobId, SiteId},
        name::Ref,
        site::{Credentials, Site},
    },
    error::{Error, Result},
    store::Store,
};

/// A new registration: the agent and the bearer token it presents from now on. The
/// token is shown once; only its hash is stored.
pub struct Registration {
    pub agent: Agent,
    pub token: SecretString,
}

/// What an agent needs to reach one side of a job.
pub struct SiteAccess {
    pub site: Site,
    pub credentials: Credentials,
    pub path: String,
}

pub struct RegisterRequest {
    pub site: Ref<SiteId>,
    pub version: String,
    pub hostname: String,
    pub concurrency: u32,
    pub agent_id: Option<AgentId>,
}

#[derive(Clone)]
pub struct Agents {
    catalogue: Catalogue,
    store: Store,
    join_token: Option<SecretString>,
}

impl Agents {
    pub fn clock(&self) -> &crate::clock::SharedClock {
        self.catalogue.clock()
    }

    /// With a join token, only callers presenting it may register.
    pub fn new(catalogue: Catalogue, join_token: Option<SecretString>) -> Self {
        let store = catalogue.store().clone();
        Agents {
            catalogue,
            store,
            join_token,
        }
    }

    pub async fn register(
        &self,
        presented: Option<&str>,
        req: RegisterRequest,
    ) -> Result<Registration> {
        if let Some(expected) = &self.join_token {
            let ok = presented.is_some_and(|p| hash(p) == hash(expected.expose_secret()));
            if !ok {
                return Err(Error::Unauthenticated(
                    "registering an agent needs the join token as a bearer token".into(),
                ));
            }
        }
        let site = self.catalogue.referenced_site("site", &req.site).await?;
        let now = self.catalogue.clock().now();
        let (id, registered_at) = match req.agent_id {
            Some(id) => match self.store.find_agent(id).await? {
                Some((previous, _)) if previous.site_id == site.id => (id, previous.registered_at),
                _ => (AgentId::new(), now),
            },
            None => (AgentId::new(), now),
        };
        let agent = Agent {
            id,
            site_id: site.id,
            version: req.version,
            hostname: req.hostname,
            concurrency: req.concurrency,
            stopped: false,
            last_heartbeat_at: now,
            registered_at,
            jobs: Vec::new(),
        };
        let mut raw = [0u8; 32];
        rand::rng().fill_bytes(&mut raw);
        let token = URL_SAFE_NO_PAD.encode(raw);
        self.store.upsert_agent(&agent, &hash(&token)).await?;
        info!(agent_id = %agent.id, site = %site.name, host = %agent.hostname, "agent registered");
        Ok(Registration {
            agent,
            token: SecretString::from(token),
        })
    }

    /// The agent behind an id and a bearer token.
    pub async fn authenticate(&self, id: AgentId, token: Option<&str>) -> Result<Agent> {
        let denied = || Error::Unauthenticated(format!("agent {id}: unknown agent or wrong token"));
        let token = token.ok_or_else(denied)?;
        let (agent, stored) = self.store.find_agent(id).await?.ok_or_else(denied)?;
        if hash(token) != stored {
            return Err(denied());
        }
        Ok(agent)
    }

    /// Records that the agent is alive and which jobs it runs copy tasks of; answers,
    /// for each of those jobs, how many live agents of its site (this one included) run
    /// tasks of it, so that they split the job's bandwidth limit.
    pub async fn heartbeat(
        &self,
        id: AgentId,
        token: Option<&str>,
        stopping: bool,
        jobs: &[JobId],
    ) -> Result<HashMap<JobId, u32>> {
        let agent = self.authenticate(id, token).await?;
        let now = self.catalogue.clock().now();
        self.store.heartbeat(id, now, stopping, jobs).await?;
        if jobs.is_empty() {
            return Ok(HashMap::new());
        }
        let agents = self.store.list_agents(Some(agent.site_id)).await?;
        Ok(agents_per_job(&agents, jobs, now))
    }

    pub async fn list(&self, site: Option<&Ref<SiteId>>) -> Result<Vec<Agent>> {
        let site = self.catalogue.referenced_site_id("site", site).await?;
        self.store.list_agents(site).await
    }

    /// The source and destination access of a job, for an agent of its executing site
    /// that took one of the current attempt's tasks. Every agent of the site may: the
    /// tasks of a job are shared, and the attempt fences what they report. The last
    /// agent to ask is recorded as the job's holder, whose heartbeats tell the
    /// reconciler the job is in hand.
    pub async fn job_access(
        &self,
        id: AgentId,
        token: Option<&str>,
        job_id: JobId,
        attempt: u32,
        cleanup: bool,
    ) -> Result<(SiteAccess, SiteAccess)> {
        let agent = self.authenticate(id, token).await?;
        let job = self
            .store
            .find_job(job_id)
            .await?
            .ok_or_else(|| Error::not_found("job", job_id))?;
        if job.attempt != attempt {
            return Err(Error::FailedPrecondition(format!(
                "job {job_id} is at attempt {}, not {attempt}",
                job.attempt
            )));
        }
        if job.state.is_terminal() && !cleanup {
            return Err(Error::FailedPrecondition(format!(
                "job {job_id} has ended ({})",
                job.state
            )));
        }
        if agent.site_id != job.executing_site_id {
            return Err(Error::PermissionDenied(format!(
                "agent {id} does not serve the site that runs job {job_id}"
            )));
        }
        self.store.set_job_holder(job_id, attempt, agent.id).await?;
        let access = |site_id: SiteId, path: String| async move {
            let site = self.catalogue.get_site(&Ref::Id(site_id)).await?;
            let credentials = self.catalogue.site_credentials(site.id).await?;
            Ok::<_, Error>(SiteAccess {
                site,
                credentials,
                path,
            })
        };
        let source = access(job.source_site_id, job.source_path.clone()).await?;
        let destination = access(job.destination_site_id, job.destination_path.clone()).await?;
        info!(agent_id = %id, job_id = %job_id, attempt, "job access handed to its agent");
        Ok((source, destination))
    }

    /// The agent's own site at dataset `path`, for a dry run the control plane asked
    /// it to list. An agent reaches only the site it serves.
    pub async fn site_access(
        &self,
        id: AgentId,
        token: Option<&str>,
        path: DatasetPath,
    ) -> Result<SiteAccess> {
        let agent = self.authenticate(id, token).await?;
        let site = self.catalogue.get_site(&Ref::Id(agent.site_id)).await?;
        let credentials = self.catalogue.site_credentials(site.id).await?;
        info!(agent_id = %id, site = %site.name, "site access handed to its agent for a dry run");
        Ok(SiteAccess {
            site,
            credentials,
            path: path.as_str().to_owned(),
        })
    }
}

fn hash(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}
