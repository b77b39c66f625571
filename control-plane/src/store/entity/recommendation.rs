use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "recommendations")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub dataset_id: String,
    pub current_tier: String,
    pub current_site_id: String,
    pub recommended_tier: String,
    pub recommended_site_id: String,
    /// JSON array of {code, message}.
    pub reasons: String,
    pub monthly_cost_now: f64,
    pub monthly_cost_after: f64,
    pub move_cost: f64,
    pub payback_days: Option<f64>,
    pub model_version: String,
    pub state: String,
    pub job_id: Option<String>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
