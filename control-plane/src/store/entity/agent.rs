use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "agents")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub site_id: String,
    pub version: String,
    pub hostname: String,
    pub concurrency: i64,
    pub stopped: bool,
    pub last_heartbeat_at: DateTimeUtc,
    pub registered_at: DateTimeUtc,
    /// JSON array of the ids of the jobs it runs copy tasks of, as of its last heartbeat.
    pub jobs: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
