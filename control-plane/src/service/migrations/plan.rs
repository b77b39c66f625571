//! Planning a migration: the request, the checks of its destination (shared with the
//! dry run), and the plan itself, idempotent by key.

use ferry_storage::Scheme;
use tracing::{info, Instrument};

use super::Migrations;
use crate::{
    bus::messages,
    domain::{
        dataset::{Dataset, DatasetPath},
        ids::{DatasetId, JobId, PolicyId, ScheduleId, SiteId},
        job::{executing_site, Job, JobState, ObjectFilter},
        name::Ref,
        site::Site,
        sync::{JobKind, SyncRule},
        tier::VerifyMode,
    },
    error::{Error, Result},
    store::{active_job_error, Planned},
};

/// What a client asks `PlanMigration` for.
#[derive(Clone, Debug)]
pub struct PlanRequest {
    pub dataset: Ref<DatasetId>,
    pub destination_site: Ref<SiteId>,
    pub destination_path: Option<DatasetPath>,
    pub storage_class: Option<String>,
    pub verify_mode: Option<VerifyMode>,
    pub retire_source: bool,
    pub idempotency_key: Option<String>,
    pub filter: ObjectFilter,
    pub bandwidth_limit: Option<u64>,
    /// The sync schedule planning this run, if one is.
    pub schedule: Option<ScheduleId>,
    /// A continuous sync's run of reported changes: check only these keys.
    pub sync_keys: Option<Vec<String>>,
    /// The policy whose autopilot plans this migration, if one does.
    pub policy: Option<PolicyId>,
}

impl PlanRequest {
    /// A plan to move `dataset` to `destination_site` with every option at its
    /// default: same path, the site's storage class, quick verification, source kept.
    pub fn new(dataset: Ref<DatasetId>, destination_site: Ref<SiteId>) -> Self {
        PlanRequest {
            dataset,
            destination_site,
            destination_path: None,
            storage_class: None,
            verify_mode: None,
            retire_source: false,
            idempotency_key: None,
            filter: ObjectFilter::default(),
            bandwidth_limit: None,
            schedule: None,
            sync_keys: None,
            policy: None,
        }
    }
}

/// Refuses a destination that is the dataset's own place, unless the plan is a
/// storage-class change in place (see [`check_in_place`]). Planning and the dry run
/// both apply it, so a dry run answers what planning would.
pub(in crate::service) fn check_destination(
    req: &PlanRequest,
    dataset: &Dataset,
    source: &Site,
    destination: &Site,
) -> Result<()> {
    let destination_path = req
        .destination_path
        .as_ref()
        .unwrap_or(&dataset.path)
        .as_str();
    if source.same_location(dataset.path.as_str(), destination, destination_path) {
        check_in_place(req, dataset, source, destination)?;
    }
    Ok(())
}

/// A plan whose destination holds the dataset's own objects can only change their
/// storage class where they are: on the dataset's own S3 site, with a class named, and
/// keeping the objects, since source and destination are one (retiring the source
/// would delete them). The agent then copies each object onto itself server-side, so
/// no byte passes through it.
fn check_in_place(
    req: &PlanRequest,
    dataset: &Dataset,
    source: &Site,
    destination: &Site,
) -> Result<()> {
    let here = format!(
        "dataset {} already lives at {}:{}",
        dataset.name,
        source.name,
        dataset.path.as_str()
    );
    if destination.id != source.id {
        return Err(Error::invalid(
            "destination_site",
            format!(
                "{here}, which site {} names too; to change the objects' storage class, \
                 plan to {} itself",
                destination.name, source.name
            ),
        ));
    }
    if req.storage_class.as_deref().is_none_or(str::is_empty) {
        return Err(Error::invalid(
            "destination_site",
            format!("{here}; name a storage_class to change the objects' class in place"),
        ));
    }
    if source.uri.scheme() != Scheme::S3 {
        return Err(Error::invalid(
            "storage_class",
            format!(
                "{here}; a storage-class change in place needs an S3 site, not {}://",
                source.uri.scheme()
            ),
        ));
    }
    if req.retire_source {
        return Err(Error::invalid(
            "retire_source",
            format!(
                "{here}; a storage-class change in place keeps the objects where they are, \
                 so there is no source to retire"
            ),
        ));
    }
    Ok(())
}

/// Refuses a sync destination that shares objects with the dataset's primary replica:
/// the same place, or one inside the other. Its listing would take the source's
/// objects for extras, and its deletions would reach them.
fn check_sync_destination(
    dataset: &Dataset,
    source: &Site,
    destination: &Site,
    destination_path: &str,
) -> Result<()> {
    if source.overlaps(dataset.path.as_str(), destination, destination_path) {
        return Err(Error::invalid(
            "destination_path",
            format!(
                "{}:{} shares objects with the primary replica of dataset {} at {}:{}; a \
                 sync needs a destination outside the source and not holding it",
                destination.name,
                destination_path,
                dataset.name,
                source.name,
                dataset.path.as_str()
            ),
        ));
    }
    Ok(())
}

impl Migrations {
    /// Plans a migration. The same idempotency key returns the same job, also under
    /// concurrent calls; a different key while the dataset has an unfinished job fails.
    pub async fn plan(&self, req: PlanRequest) -> Result<(Job, bool)> {
        let span = tracing::info_span!("plan", dataset = %req.dataset);
        self.plan_in_span(req, JobKind::Migration)
            .instrument(span)
            .await
    }

    /// Plans a sync of the dataset to a secondary replica, by the same rules of
    /// idempotency and one unfinished job per dataset.
    pub async fn plan_sync(&self, req: PlanRequest, rule: SyncRule) -> Result<(Job, bool)> {
        let span = tracing::info_span!("plan", dataset = %req.dataset, kind = "sync");
        self.plan_in_span(req, JobKind::Sync(rule))
            .instrument(span)
            .await
    }

    async fn plan_in_span(&self, req: PlanRequest, kind: JobKind) -> Result<(Job, bool)> {
        crate::call::set_target(format!("dataset:{}", req.dataset));
        if let Some(key) = &req.idempotency_key {
            if let Some(existing) = self.store.find_job_by_key(key).await? {
                return self
                    .same_plan(existing, &req, kind)
                    .await
                    .map(|job| (job, false));
            }
        }
        let dataset = self.catalogue.get_dataset(&req.dataset).await?;
        let source = self.catalogue.get_site(&Ref::Id(dataset.site_id)).await?;
        let destination = self
            .catalogue
            .referenced_site("destination_site", &req.destination_site)
            .await?;
        let destination_path = req
            .destination_path
            .clone()
            .unwrap_or_else(|| dataset.path.clone());
        match kind {
            JobKind::Migration => check_destination(&req, &dataset, &source, &destination)?,
            JobKind::Sync(_) => {
                check_sync_destination(&dataset, &source, &destination, destination_path.as_str())?
            }
        }
        if let Some(active) = self.store.has_active_job(dataset.id).await? {
            // A concurrent call with the same key may have just created it.
            if req.idempotency_key.as_deref() == Some(active.idempotency_key.as_str()) {
                return self
                    .same_plan(active, &req, kind)
                    .await
                    .map(|job| (job, false));
            }
            return Err(active_job_error(&active));
        }
        let now = self.catalogue.clock().now();
        let id = JobId::new();
        let job = Job {
            id,
            idempotency_key: req
                .idempotency_key
                .clone()
                .unwrap_or_else(|| format!("job:{id}")),
            dataset_id: dataset.id,
            source_site_id: source.id,
            source_path: dataset.path.as_str().to_owned(),
            destination_site_id: destination.id,
            destination_path: destination_path.as_str().to_owned(),
            executing_site_id: executing_site(
                (source.id, source.uri.scheme()),
                (destination.id, destination.uri.scheme()),
            ),
            storage_class: req
                .storage_class
                .clone()
                .unwrap_or(destination.default_storage_class),
            verify_mode: req.verify_mode.unwrap_or_default(),
            retire_source: req.retire_source,
            filter: req.filter.clone(),
            state: JobState::Queued,
            attempt: 1,
            error: None,
            counters: Default::default(),
            bandwidth_limit: req.bandwidth_limit,
            source_retired: false,
            created_at: now,
            started_at: None,
            updated_at: now,
            ended_at: None,
            listed: false,
            trace_parent: ferry_telemetry::propagation::current_traceparent(),
            kind,
            sync: Default::default(),
            final_pass: false,
            source_changes: 0,
            schedule_id: req.schedule,
            policy_id: req.policy,
            sync_keys: req.sync_keys.clone(),
        };
        match self
            .store
            .insert_job(&job, &[messages::dispatch_list(&job)])
            .await?
        {
            Planned::Created(job) => {
                info!(
                    job_id = %job.id,
                    dataset = %dataset.name,
                    from = %source.name,
                    to = %destination.name,
                    kind = kind.as_str(),
                    "job planned"
                );
                self.changed(job.id, true);
                Ok((job, true))
            }
            Planned::Existing(existing) => self
                .same_plan(existing, &req, kind)
                .await
                .map(|job| (job, false)),
        }
    }

    /// A key names one plan: reusing it for another dataset, destination or kind of job
    /// is an error.
    async fn same_plan(&self, existing: Job, req: &PlanRequest, kind: JobKind) -> Result<Job> {
        let dataset = self.catalogue.get_dataset(&req.dataset).await?;
        let destination = self
            .catalogue
            .store()
            .find_site(&req.destination_site)
            .await?;
        let same = existing.dataset_id == dataset.id
            && destination.is_some_and(|d| d.id == existing.destination_site_id);
        if !same {
            return Err(Error::invalid(
                "idempotency_key",
                format!(
                    "already used by job {} for another dataset or destination",
                    existing.id
                ),
            ));
        }
        if existing.kind.as_str() != kind.as_str() {
            return Err(Error::invalid(
                "idempotency_key",
                format!(
                    "already used by job {}, a {}",
                    existing.id,
                    existing.kind.as_str()
                ),
            ));
        }
        Ok(existing)
    }
}
