use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "sites")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    #[sea_orm(unique)]
    pub name: String,
    pub uri: String,
    /// JSON object of non-secret backend options.
    pub options: String,
    pub tier: String,
    pub default_storage_class: String,
    pub latency_ms: i64,
    pub price_storage_gb_month: f64,
    pub price_retrieval_gb: f64,
    pub price_egress_gb: f64,
    pub price_per_1000_requests: f64,
    pub min_storage_days: i64,
    /// Bytes per second shared by the site's agents; `None` is unlimited.
    pub bandwidth_limit: Option<i64>,
    /// AES-256-GCM sealed credentials (see `vault`); never leaves the control plane
    /// except to an agent holding a job.
    pub credentials: Option<Vec<u8>>,
    /// JSON array of the credential key names.
    pub credential_keys: String,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
