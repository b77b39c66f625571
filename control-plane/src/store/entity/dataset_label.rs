use sea_orm::entity::prelude::*;

/// One label of a dataset; a table of its own so that label filters are plain indexed
/// lookups on SQLite and PostgreSQL alike.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "dataset_labels")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub dataset_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub key: String,
    pub value: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
