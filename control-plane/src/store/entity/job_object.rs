use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "job_objects")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub job_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub key: String,
    pub size: i64,
    pub status: String,
    pub source_xxh3: Option<String>,
    pub destination_xxh3: Option<String>,
    pub attempts: i64,
    pub error: Option<String>,
    pub operation: Option<String>,
    pub updated_at: DateTimeUtc,
    pub task: Option<String>,
    /// JSON of the unfinished multipart upload.
    pub upload: Option<String>,
    /// The source's modification time and etag as listed: a sync's manifest keeps them.
    pub source_modified: Option<DateTimeUtc>,
    pub source_etag: Option<String>,
    /// The source changed after this object was copied.
    pub source_changed: bool,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
