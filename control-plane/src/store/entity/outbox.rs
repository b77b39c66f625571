use sea_orm::entity::prelude::*;

/// A message to publish, written in the same transaction as the state it announces.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "outbox")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub subject: String,
    /// The `Nats-Msg-Id`: JetStream drops a repeat within its dedupe window.
    pub message_id: String,
    pub payload: Vec<u8>,
    pub created_at: DateTimeUtc,
    pub published_at: Option<DateTimeUtc>,
    /// The W3C `traceparent` of the span that wrote it, sent as a NATS header.
    pub trace_parent: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
