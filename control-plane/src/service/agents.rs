//! Agent use cases: registration, heartbeats, and the just-in-time hand-over of a
//! job's site access (credentials included) to an agent of the site that runs it.
//!
//! An agent calls with a token bound to its site (`Role::Agent`): it registers, reports
//! and fetches access for that site only. Anything else is `PermissionDenied`, which
//! the gRPC layer records in the audit log.

use std::collections::HashMap;

use ferry_proto::v1 as pb;
use tracing::{debug, info, warn};

use super::{schedules::decode_stored_sync, Catalogue};
use crate::{
    call,
    domain::{
        agent::{agents_per_job, Agent},
        dataset::DatasetPath,
        ids::{AgentId, JobId, ScheduleId, SiteId},
        job::Job,
        name::Ref,
        principal::Principal,
        site::{Credentials, Site},
        sync::ManifestEntry,
    },
    error::{Error, Result},
    store::Store,
};

/// A heartbeat's answer: for each job the agent named, how many live agents of its site
/// run tasks of it; and the continuous syncs whose datasets lie on its site.
#[derive(Debug)]
pub struct Heartbeat {
    pub job_agents: HashMap<JobId, u32>,
    pub watches: Vec<Watch>,
}

/// A continuous sync as its site's agents watch it.
#[derive(Debug)]
pub struct Watch {
    pub schedule: ScheduleId,
    /// The dataset's path below the site's root.
    pub path: String,
    /// The sync's filter, whose prefix and globs the watcher applies to files.
    pub filter: Option<pb::ObjectFilter>,
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
}

/// Whether `caller` may act for `site`: an agent token only for the site it is bound
/// to; with authentication off, anyone.
fn check_site(caller: &Principal, site: &Site, doing: &str) -> Result<()> {
    match caller.site {
        Some(bound) if bound == site.id => Ok(()),
        Some(_) => Err(Error::PermissionDenied(format!(
            "{caller} is bound to another site; it cannot {doing} site {}",
            site.name
        ))),
        None if caller.role == crate::domain::principal::Role::Agent => Err(
            Error::PermissionDenied(format!("{caller} is bound to no site")),
        ),
        None => Ok(()),
    }
}

impl Agents {
    pub fn clock(&self) -> &crate::clock::SharedClock {
        self.catalogue.clock()
    }

    pub fn new(catalogue: Catalogue) -> Self {
        let store = catalogue.store().clone();
        Agents { catalogue, store }
    }

    /// Registers an agent of the caller's site, or refreshes the registration it
    /// resumes.
    pub async fn register(&self, caller: &Principal, req: RegisterRequest) -> Result<Agent> {
        let site = self.catalogue.referenced_site("site", &req.site).await?;
        call::set_target(format!("site:{}", site.name));
        check_site(caller, &site, "register an agent of")?;
        let now = self.catalogue.clock().now();
        let (id, registered_at) = match req.agent_id {
            Some(id) => match self.store.find_agent(id).await? {
                Some(previous) if previous.site_id == site.id => (id, previous.registered_at),
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
        self.store.upsert_agent(&agent).await?;
        info!(agent_id = %agent.id, site = %site.name, host = %agent.hostname, "agent registered");
        Ok(agent)
    }

    /// The registered agent `id`, if the caller may act for it: an agent token only for
    /// the agents of its site.
    async fn agent_of(&self, caller: &Principal, id: AgentId) -> Result<Agent> {
        let agent = self
            .store
            .find_agent(id)
            .await?
            .ok_or_else(|| Error::not_found("agent", id))?;
        match caller.site {
            Some(site) if site != agent.site_id => Err(Error::PermissionDenied(format!(
                "{caller} is bound to another site than agent {id}'s"
            ))),
            _ => Ok(agent),
        }
    }

    /// Records that the agent is alive and which jobs it runs copy tasks of; answers,
    /// for each of those jobs, how many live agents of its site (this one included) run
    /// tasks of it, so that they split the job's bandwidth limit; and, to an agent not
    /// stopping, the continuous syncs of its site's datasets, whose directories it
    /// watches.
    pub async fn heartbeat(
        &self,
        caller: &Principal,
        id: AgentId,
        stopping: bool,
        jobs: &[JobId],
    ) -> Result<Heartbeat> {
        let agent = self.agent_of(caller, id).await?;
        let now = self.catalogue.clock().now();
        self.store.heartbeat(id, now, stopping, jobs).await?;
        let watches = if stopping {
            Vec::new()
        } else {
            self.store
                .watches_at(agent.site_id)
                .await?
                .into_iter()
                .map(|(schedule, path, sync)| {
                    // An unreadable sync fails its runs, not the site's heartbeats:
                    // its watchers then report every change.
                    let filter = decode_stored_sync(schedule, &sync)
                        .inspect_err(|e| warn!(%schedule, error = %e, "watching unfiltered"))
                        .ok()
                        .and_then(|sync| sync.filter);
                    Watch {
                        schedule,
                        path,
                        filter,
                    }
                })
                .collect()
        };
        if jobs.is_empty() {
            return Ok(Heartbeat {
                job_agents: HashMap::new(),
                watches,
            });
        }
        let agents = self.store.list_agents(Some(agent.site_id)).await?;
        Ok(Heartbeat {
            job_agents: agents_per_job(&agents, jobs, now),
            watches,
        })
    }

    /// Records keys that a watcher of the agent saw change below the directory of a
    /// continuous sync's dataset, or (`rescan`) that it may have missed changes. Only
    /// an agent of the dataset's site may report them.
    pub async fn report_changes(
        &self,
        caller: &Principal,
        id: AgentId,
        schedule: ScheduleId,
        keys: &[String],
        rescan: bool,
    ) -> Result<()> {
        call::set_target(format!("schedule:{schedule}"));
        let agent = self.agent_of(caller, id).await?;
        let schedule = self
            .store
            .find_schedule(&Ref::Id(schedule))
            .await?
            .ok_or_else(|| Error::not_found("schedule", schedule))?;
        let dataset = self
            .catalogue
            .get_dataset(&Ref::Id(schedule.dataset_id))
            .await?;
        if dataset.site_id != agent.site_id {
            return Err(Error::PermissionDenied(format!(
                "agent {id} does not serve the site of dataset {}, which schedule {} syncs",
                dataset.name, schedule.name
            )));
        }
        if !schedule.continuous {
            return Err(Error::FailedPrecondition(format!(
                "schedule {} is not continuous: it takes no changes",
                schedule.name
            )));
        }
        self.store.record_changes(schedule.id, keys, rescan).await?;
        debug!(agent_id = %id, schedule = %schedule.name, keys = keys.len(), rescan, "changes reported");
        Ok(())
    }

    /// The agents of one site or all; an agent token sees its own site's only.
    pub async fn list(&self, caller: &Principal, site: Option<&Ref<SiteId>>) -> Result<Vec<Agent>> {
        let site = self.catalogue.referenced_site_id("site", site).await?;
        let site = match (caller.site, site) {
            (Some(bound), Some(asked)) if bound != asked => {
                return Err(Error::PermissionDenied(format!(
                    "{caller} is bound to another site"
                )))
            }
            (Some(bound), _) => Some(bound),
            (None, asked) => asked,
        };
        self.store.list_agents(site).await
    }

    /// The source and destination access of a job, for an agent of its executing site
    /// that took one of the current attempt's tasks. Every agent of the site may: the
    /// tasks of a job are shared, and the attempt fences what they report. The last
    /// agent to ask is recorded as the job's holder, whose heartbeats tell the
    /// reconciler the job is in hand.
    pub async fn job_access(
        &self,
        caller: &Principal,
        id: AgentId,
        job_id: JobId,
        attempt: u32,
        cleanup: bool,
    ) -> Result<(SiteAccess, SiteAccess)> {
        let (agent, job) = self.held_job(caller, id, job_id, attempt, cleanup).await?;
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

    /// The job `job_id` at `attempt`, for an agent of its executing site; refused to
    /// any other agent before anything about the job's state is told, and once the
    /// attempt is over (or, without `cleanup`, the job ended).
    async fn held_job(
        &self,
        caller: &Principal,
        id: AgentId,
        job_id: JobId,
        attempt: u32,
        cleanup: bool,
    ) -> Result<(Agent, Job)> {
        call::set_target(format!("job:{job_id}"));
        let agent = self.agent_of(caller, id).await?;
        let job = self
            .store
            .find_job(job_id)
            .await?
            .ok_or_else(|| Error::not_found("job", job_id))?;
        // Before anything about the job's state: a stranger learns nothing of it.
        if agent.site_id != job.executing_site_id {
            return Err(Error::PermissionDenied(format!(
                "agent {id} does not serve the site that runs job {job_id}"
            )));
        }
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
        Ok((agent, job))
    }

    /// The job whose manifest an agent of its site asks for, to compare the source's
    /// listing with it: a sync (its replica's manifest) or a migration in its final
    /// pass (what it has copied so far). Refused as `job_access` refuses, and for a
    /// migration before its final pass.
    pub async fn manifest_job(
        &self,
        caller: &Principal,
        id: AgentId,
        job_id: JobId,
        attempt: u32,
    ) -> Result<Job> {
        let (_, job) = self.held_job(caller, id, job_id, attempt, false).await?;
        if job.kind.sync().is_none() && !job.final_pass {
            return Err(Error::FailedPrecondition(format!(
                "job {job_id} is a migration before its final pass: only a sync, or a \
                 migration's final pass, reads a manifest"
            )));
        }
        Ok(job)
    }

    /// Up to `limit` entries of `job`'s manifest, after key `after`, in key order: the
    /// replica's manifest for a sync; for a migration's final pass, the objects it has
    /// copied and verified, as their source was listed.
    pub async fn manifest_page(
        &self,
        job: &Job,
        after: Option<&str>,
        limit: u64,
    ) -> Result<Vec<(String, ManifestEntry)>> {
        self.store.manifest_page(job, after, limit).await
    }

    /// The agent's own site at dataset `path`, for a dry run the control plane asked
    /// it to list. An agent reaches only the site it serves.
    pub async fn site_access(
        &self,
        caller: &Principal,
        id: AgentId,
        path: DatasetPath,
    ) -> Result<SiteAccess> {
        let agent = self.agent_of(caller, id).await?;
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
