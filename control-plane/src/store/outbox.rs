//! The transactional outbox: messages written with the state they announce, published
//! later by the relay, so a crash between commit and publish loses nothing.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};

use super::{db_error, entity::outbox, Store};
use crate::error::Result;

/// A message to publish on the bus.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboxMessage {
    pub subject: String,
    pub message_id: String,
    pub payload: Vec<u8>,
    /// The W3C `traceparent` the message carries to its consumer.
    pub trace_parent: Option<String>,
}

/// A stored message awaiting publication.
#[derive(Clone, Debug)]
pub struct PendingMessage {
    pub id: i64,
    pub message: OutboxMessage,
}

pub(super) async fn insert_outbox(
    db: &impl ConnectionTrait,
    messages: &[OutboxMessage],
) -> Result<()> {
    if messages.is_empty() {
        return Ok(());
    }
    let now = crate::clock::system_now();
    let rows = messages.iter().map(|m| outbox::ActiveModel {
        subject: Set(m.subject.clone()),
        message_id: Set(m.message_id.clone()),
        payload: Set(m.payload.clone()),
        created_at: Set(now),
        published_at: Set(None),
        trace_parent: Set(m.trace_parent.clone()),
        ..Default::default()
    });
    outbox::Entity::insert_many(rows)
        .exec(db)
        .await
        .map_err(db_error)?;
    Ok(())
}

impl Store {
    /// Writes messages on their own (for re-dispatch that changes no other state).
    pub async fn enqueue(&self, messages: &[OutboxMessage]) -> Result<()> {
        insert_outbox(&self.db, messages).await
    }

    /// The oldest unpublished messages.
    pub async fn unpublished(&self, limit: u64) -> Result<Vec<PendingMessage>> {
        let rows = outbox::Entity::find()
            .filter(outbox::Column::PublishedAt.is_null())
            .order_by_asc(outbox::Column::Id)
            .limit(limit)
            .all(&self.db)
            .await
            .map_err(db_error)?;
        Ok(rows
            .into_iter()
            .map(|r| PendingMessage {
                id: r.id,
                message: OutboxMessage {
                    subject: r.subject,
                    message_id: r.message_id,
                    payload: r.payload,
                    trace_parent: r.trace_parent,
                },
            })
            .collect())
    }

    /// Marks the messages `ids` (at most a relay batch: one statement) published.
    pub async fn mark_published(&self, ids: &[i64], at: DateTime<Utc>) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        outbox::Entity::update_many()
            .col_expr(
                outbox::Column::PublishedAt,
                sea_orm::sea_query::Expr::value(at),
            )
            .filter(outbox::Column::Id.is_in(ids.iter().copied()))
            .exec(&self.db)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    /// Deletes published messages older than `before`, keeping the table small.
    pub async fn prune_outbox(&self, before: DateTime<Utc>) -> Result<u64> {
        let result = outbox::Entity::delete_many()
            .filter(outbox::Column::PublishedAt.lt(before))
            .exec(&self.db)
            .await
            .map_err(db_error)?;
        Ok(result.rows_affected)
    }
}
