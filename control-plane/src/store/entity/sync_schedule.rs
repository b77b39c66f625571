use sea_orm::entity::prelude::*;

/// A sync schedule: the encoded `PlanSyncRequest` each run plans, when it is due, and
/// what its runs did.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "sync_schedules")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    #[sea_orm(unique)]
    pub name: String,
    pub dataset_id: String,
    pub sync: Vec<u8>,
    pub cron: String,
    pub time_zone: String,
    pub next_run_at: DateTimeUtc,
    pub last_job_id: Option<String>,
    pub runs: i64,
    pub skipped: i64,
    pub last_error: Option<String>,
    pub created_at: DateTimeUtc,
    /// Also synced as its watchers report changes.
    pub continuous: bool,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
