use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "migration_jobs")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    #[sea_orm(unique)]
    pub idempotency_key: String,
    pub dataset_id: String,
    pub source_site_id: String,
    pub source_path: String,
    pub destination_site_id: String,
    pub destination_path: String,
    pub executing_site_id: String,
    pub storage_class: String,
    pub verify_mode: String,
    pub retire_source: bool,
    /// JSON of the object filter.
    pub filter: String,
    pub state: String,
    pub attempt: i64,
    pub error: Option<String>,
    /// The agent holding the current attempt (its lease lasts while it heartbeats).
    pub holder_agent_id: Option<String>,
    pub objects_total: i64,
    pub objects_done: i64,
    pub objects_failed: i64,
    pub bytes_total: i64,
    pub bytes_done: i64,
    pub bandwidth_limit: Option<i64>,
    pub source_retired: bool,
    pub created_at: DateTimeUtc,
    pub started_at: Option<DateTimeUtc>,
    pub updated_at: DateTimeUtc,
    pub ended_at: Option<DateTimeUtc>,
    /// The current attempt's listing ran to its end.
    pub listed: bool,
    /// When an agent last reported progress on the job; the reconciler reads it.
    pub progressed_at: Option<DateTimeUtc>,
    /// The W3C `traceparent` of the call that started the job.
    pub trace_parent: Option<String>,
    /// `migration` or `sync`.
    pub kind: String,
    /// A sync's deletion rule: `keep` or `delete`; unset for a migration.
    pub deletion: Option<String>,
    /// The most objects a sync may delete at the destination; unset for no cap.
    pub max_delete: Option<i64>,
    /// Objects a sync found unchanged since its replica's last verified sync.
    pub objects_unchanged: i64,
    /// Of those, the ones the agent found unchanged against the manifest and reported
    /// as a count (included in `objects_unchanged`, the totals and the done counters),
    /// and their bytes.
    pub manifest_unchanged: i64,
    pub manifest_unchanged_bytes: i64,
    /// Objects a sync found at the destination only.
    pub extras_found: i64,
    /// Of those, the ones it deleted.
    pub extras_deleted: i64,
    /// A migration's final pass before the switch began.
    pub final_pass: bool,
    /// Objects found changed at the source after they were copied, and copied again.
    pub source_changes: i64,
    /// The sync schedule that planned the job, if one did.
    pub schedule_id: Option<String>,
    /// A continuous sync's run of reported changes: the keys it checks (a JSON array).
    pub sync_keys: Option<String>,
    /// The policy whose autopilot started the migration.
    pub policy_id: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
