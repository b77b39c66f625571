use sea_orm::entity::prelude::*;

/// Where a policy places one tier; a foreign key keeps a site in use from vanishing.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "policy_placements")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub policy_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub tier: String,
    pub site_id: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
