use sea_orm::entity::prelude::*;

/// One object of a replica's manifest: the source as the last verified sync listed it
/// (size, modification time, etag) and the xxh3 of its bytes, where one was computed.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "replica_objects")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub dataset_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub site_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub path: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub key: String,
    pub size: i64,
    pub modified: Option<DateTimeUtc>,
    pub etag: Option<String>,
    pub xxh3: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
