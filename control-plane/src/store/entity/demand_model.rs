use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "demand_models")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub dataset_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub version: String,
    pub kind: String,
    /// Seasonal periods in hours, comma-separated ("24,168"); empty for none.
    pub periods: String,
    pub backtest_error: Option<f64>,
    pub seasonal_naive_error: Option<f64>,
    pub heuristic_error: Option<f64>,
    pub in_use: bool,
    /// The dataset's most recent model: the one recommendations read.
    pub latest: bool,
    pub note: String,
    pub history_hours: i64,
    pub trained_at: DateTimeUtc,
    /// JSON of the forecast; kept for the latest model only.
    pub forecast: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
