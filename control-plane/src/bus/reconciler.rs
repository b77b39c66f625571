//! The reconciler: re-dispatches jobs that should be moving but are not — queued with
//! no agent having taken them, or held by an agent that stopped heartbeating — so that
//! a lost message or a dead agent never strands a job. A job whose site has no live
//! agent is left as it is: its commands are queued for whichever agent comes back.

use std::{collections::HashMap, time::Duration};

use chrono::TimeDelta;
use tracing::{debug, info, warn};

use crate::{
    domain::{agent::Liveness, ids::SiteId, job::JobState},
    service::Migrations,
};

const TICK: Duration = Duration::from_secs(15);
/// Longer than the JetStream dedupe window, so that a re-dispatch is not dropped.
const STUCK_AFTER: TimeDelta = TimeDelta::minutes(3);

pub async fn run(migrations: Migrations) {
    let mut tick = tokio::time::interval(TICK);
    loop {
        tick.tick().await;
        if let Err(e) = reconcile(&migrations).await {
            warn!(error = %e, "reconciliation failed");
        }
    }
}

async fn reconcile(migrations: &Migrations) -> crate::error::Result<()> {
    let store = migrations.store();
    let now = migrations.catalogue().clock().now();
    // Whether any agent of a site is alive, looked up once per site and pass.
    let mut site_served: HashMap<SiteId, bool> = HashMap::new();
    for state in JobState::ALL.into_iter().filter(|s| !s.is_terminal()) {
        for job in store.stale_jobs(state, now - STUCK_AFTER, 100).await? {
            if state != JobState::Queued {
                // A job in progress is fine while its agent is alive.
                if let Some(holder) = store.job_holder(job.id).await? {
                    if let Some(agent) = store.find_agent(holder).await? {
                        if agent.liveness(now) == Liveness::Alive {
                            continue;
                        }
                    }
                }
            }
            // A job's commands wait in its site's work queue until an agent takes them.
            // With no agent of the site alive, publishing them again would only pile up
            // copies there, one more set every STUCK_AFTER for as long as the outage
            // lasts, until the queue is full and refuses every site's dispatches. Once an
            // agent is back it takes what is queued; should a command have been lost,
            // the job is re-dispatched on the first pass after that.
            let site = job.executing_site_id;
            let served = match site_served.get(&site) {
                Some(&served) => served,
                None => {
                    let served = store
                        .list_agents(Some(site))
                        .await?
                        .iter()
                        .any(|agent| agent.liveness(now) == Liveness::Alive);
                    site_served.insert(site, served);
                    served
                }
            };
            if !served {
                debug!(job_id = %job.id, site_id = %site, "stuck job left queued: no agent of its site is alive");
                continue;
            }
            info!(job_id = %job.id, state = %job.state, "re-dispatching a stuck job");
            migrations.touch_and_redispatch(job.id).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::{collections::BTreeMap, sync::Arc};

    use chrono::Utc;
    use ferry_proto::v1 as pb;
    use prost::Message;
    use tokio::sync::Notify;

    use super::*;
    use crate::{
        clock::{Clock, ManualClock, SharedClock},
        domain::{
            agent::Agent,
            dataset::{DatasetPath, NewDataset},
            ids::{AgentId, JobId, SiteId},
            job::{JobObject, ObjectStatus},
            labels::Labels,
            name::{Name, Ref},
            report::{Report, ReportEvent, LIST_TASK},
            site::{Credentials, NewSite, Prices},
            sync::ComparedObject,
            tier::Tier,
        },
        service::{migrations::PlanRequest, Catalogue},
        store::Store,
        vault::Vault,
    };

    struct Fixture {
        migrations: Migrations,
        clock: Arc<ManualClock>,
        agent: AgentId,
        /// The source site, which runs the fixture's jobs (both sides are S3).
        source: SiteId,
        _dir: tempfile::TempDir,
    }

    impl Fixture {
        async fn new() -> Fixture {
            let dir = tempfile::tempdir().unwrap();
            let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
            let store = Store::connect(&url, 2).await.unwrap();
            let vault = Vault::load(None, &dir.path().join("master.key")).unwrap();
            let clock = Arc::new(ManualClock::starting_at(Utc::now()));
            let catalogue = Catalogue::new(store, Arc::new(vault), SharedClock::new(clock.clone()));
            let mut source = None;
            for (name, uri) in [("src", "s3://src"), ("dst", "s3://dst")] {
                let site = NewSite {
                    name: Name::parse("name", name).unwrap(),
                    uri: ferry_storage::SiteUri::parse(uri).unwrap(),
                    options: BTreeMap::new(),
                    tier: Tier::Hot,
                    default_storage_class: "STANDARD".into(),
                    latency_ms: 10,
                    prices: Prices {
                        storage_per_gb_month: 0.02,
                        retrieval_per_gb: 0.0,
                        egress_per_gb: 0.09,
                        per_1000_requests: 0.005,
                        min_storage_days: 0,
                    },
                    bandwidth_limit: None,
                };
                let site = catalogue
                    .create_site(site, Credentials::default())
                    .await
                    .unwrap();
                source.get_or_insert(site.id);
            }
            let dataset = NewDataset {
                name: Name::parse("name", "d").unwrap(),
                site: Ref::Name(Name::parse("site", "src").unwrap()),
                path: DatasetPath::parse("path", "d").unwrap(),
                current_tier: None,
                latency_slo_ms: None,
                size_bytes: 0,
                object_count: 0,
                owner: "ops".into(),
                labels: Labels::default(),
            };
            catalogue.create_dataset(dataset).await.unwrap();
            Fixture {
                migrations: Migrations::new(catalogue, Arc::new(Notify::new())),
                clock,
                agent: AgentId::new(),
                source: source.unwrap(),
                _dir: dir,
            }
        }

        /// A job whose finished listing recorded copy task `t1` of two objects.
        async fn copying_job(&self) -> JobId {
            let (job, _) = self
                .migrations
                .plan(PlanRequest::new(
                    Ref::Name(Name::parse("dataset", "d").unwrap()),
                    Ref::Name(Name::parse("site", "dst").unwrap()),
                ))
                .await
                .unwrap();
            self.report(job.id, LIST_TASK, ReportEvent::Started).await;
            let object = |key: &str| ComparedObject {
                key: key.into(),
                size: 1,
                modified: None,
                etag: None,
                destination_size: None,
            };
            let listed = ReportEvent::TaskListed {
                task: "t1".into(),
                objects: vec![object("a"), object("b")],
                destination_empty: true,
            };
            self.report(job.id, LIST_TASK, listed).await;
            let finished = ReportEvent::Finished {
                success: true,
                error: None,
            };
            self.report(job.id, LIST_TASK, finished).await;
            job.id
        }

        async fn report(&self, job_id: JobId, task: &str, event: ReportEvent) {
            self.migrations
                .apply(
                    Report {
                        job_id,
                        attempt: 1,
                        task_id: task.into(),
                        agent_id: None,
                        event,
                    },
                    self.source,
                )
                .await
                .unwrap();
        }

        async fn verified(&self, job_id: JobId, key: &str) {
            let object = JobObject {
                key: key.into(),
                size: 1,
                status: ObjectStatus::Verified,
                source_xxh3: None,
                destination_xxh3: None,
                attempts: 1,
                error: None,
                operation: None,
                updated_at: self.clock.now(),
                task: None,
                upload: None,
                source_changed: false,
            };
            self.report(job_id, "t1", ReportEvent::Objects(vec![object]))
                .await;
        }

        /// The agent of the job's site heartbeats `ago` before now (registering it the
        /// first time).
        async fn agent_heartbeat(&self, job_id: JobId, ago: TimeDelta) {
            let job = self.migrations.get(job_id).await.unwrap();
            let at = self.clock.now() - ago;
            let agent = Agent {
                id: self.agent,
                site_id: job.executing_site_id,
                version: "test".into(),
                hostname: "h".into(),
                concurrency: 4,
                stopped: false,
                last_heartbeat_at: at,
                registered_at: at,
                jobs: Vec::new(),
            };
            self.migrations.store().upsert_agent(&agent).await.unwrap();
        }

        /// Runs the reconciler once and returns the tasks it dispatched (and marks every
        /// message published, as the relay would).
        async fn reconcile(&self) -> Vec<String> {
            reconcile(&self.migrations).await.unwrap();
            let store = self.migrations.store();
            let mut tasks = Vec::new();
            for m in store.unpublished(1000).await.unwrap() {
                let command = pb::JobCommand::decode(m.message.payload.as_slice()).unwrap();
                tasks.push(command.task_id);
                store
                    .mark_published(&[m.id], self.clock.now())
                    .await
                    .unwrap();
            }
            tasks
        }
    }

    #[tokio::test]
    async fn a_job_with_recent_progress_is_left_alone_and_a_silent_one_redispatched() {
        let f = Fixture::new().await;
        let job = f.copying_job().await;
        assert_eq!(
            f.reconcile().await,
            ["list", "t1"],
            "the plan's own dispatches"
        );

        // The job's state last changed 4 minutes ago, but an agent reported an object
        // 2 minutes ago: whichever agent that was, the job moves.
        f.clock.advance(TimeDelta::minutes(2));
        f.verified(job, "a").await;
        f.clock.advance(TimeDelta::minutes(2));
        assert_eq!(f.reconcile().await, Vec::<String>::new());

        // Nothing reported for longer than STUCK_AFTER, and no live agent holds it: its
        // unfinished task goes out again, for the site's live agent to take.
        f.clock.advance(TimeDelta::minutes(2));
        f.agent_heartbeat(job, TimeDelta::zero()).await;
        assert_eq!(f.reconcile().await, ["t1"]);
        // The re-dispatch counts as a change: not again at once.
        assert_eq!(f.reconcile().await, Vec::<String>::new());
    }

    #[tokio::test]
    async fn a_stuck_job_whose_site_has_no_live_agent_stays_queued_until_one_is_back() {
        let f = Fixture::new().await;
        let job = f.copying_job().await;
        assert_eq!(f.reconcile().await, ["list", "t1"]);

        // Silent for longer than STUCK_AFTER, and no agent of its site at all: the
        // task is still queued for the first that comes, so nothing is published.
        f.clock.advance(TimeDelta::minutes(4));
        assert_eq!(f.reconcile().await, Vec::<String>::new());
        f.clock.advance(TimeDelta::minutes(4));
        assert_eq!(f.reconcile().await, Vec::<String>::new());

        // An agent of the site that stopped heartbeating long ago changes nothing.
        f.agent_heartbeat(job, TimeDelta::minutes(5)).await;
        assert_eq!(f.reconcile().await, Vec::<String>::new());

        // Once it heartbeats again the job goes out once more, should its command
        // have been lost.
        f.agent_heartbeat(job, TimeDelta::zero()).await;
        assert_eq!(f.reconcile().await, ["t1"]);
        assert_eq!(f.reconcile().await, Vec::<String>::new());
    }
}
