use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "policies")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    #[sea_orm(unique)]
    pub name: String,
    pub description: String,
    /// JSON object: the label selector.
    pub selector: String,
    pub priority: i32,
    pub hot_after_ms: i64,
    pub warm_after_ms: i64,
    pub latency_slo_ms: Option<i64>,
    pub monthly_cost_target: Option<f64>,
    pub min_residency_ms: i64,
    pub auto_migrate: bool,
    pub retire_source: bool,
    pub verify_mode: String,
    /// Minutes after midnight UTC.
    pub window_start: Option<i32>,
    pub window_end: Option<i32>,
    pub bandwidth_limit: Option<i64>,
    pub max_concurrent_migrations: Option<i64>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    /// The cron expression automatic migrations run at, and its IANA time zone.
    pub cron: Option<String>,
    pub time_zone: Option<String>,
    /// The cron's next due time, while automatic migrations are on.
    pub next_run_at: Option<DateTimeUtc>,
    pub runs: i64,
    pub skipped: i64,
    pub last_error: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
