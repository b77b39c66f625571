use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "access_hourly")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub dataset_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub hour: DateTimeUtc,
    pub reads: i64,
    pub writes: i64,
    pub bytes_read: i64,
    pub bytes_written: i64,
    pub latency_ms_sum: f64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
