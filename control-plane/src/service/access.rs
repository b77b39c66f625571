//! Access event intake: validation, then publication to `FERRY_EVENTS` (deduplicated by
//! event id) for the aggregator to fold.

use std::collections::HashMap;

use ferry_proto::{
    time::{from_timestamp, to_timestamp},
    v1 as pb,
};
use prost::Message;

use super::Catalogue;
use crate::{
    bus::{access_subject, Bus},
    domain::{
        access::{validate, HourlyAccess},
        ids::DatasetId,
        name::Ref,
    },
    error::{Error, Result},
    metrics,
};

#[derive(Clone)]
pub struct AccessEvents {
    catalogue: Catalogue,
    bus: Bus,
}

impl AccessEvents {
    pub fn new(catalogue: Catalogue, bus: Bus) -> Self {
        AccessEvents { catalogue, bus }
    }

    /// Validates a batch (all or nothing) and publishes it; returns how many were
    /// accepted once JetStream stored them all.
    pub async fn record(&self, events: Vec<pb::AccessEvent>) -> Result<u64> {
        let now = self.catalogue.clock().now();
        let mut datasets: HashMap<String, DatasetId> = HashMap::new();
        let mut messages = Vec::with_capacity(events.len());
        for (i, mut e) in events.into_iter().enumerate() {
            let field = format!("events[{i}]");
            let id = match datasets.get(&e.dataset) {
                Some(id) => *id,
                None => {
                    let r = Ref::parse(&format!("{field}.dataset"), &e.dataset)?;
                    let id = self.catalogue.get_dataset(&r).await?.id;
                    datasets.insert(e.dataset.clone(), id);
                    id
                }
            };
            if !matches!(
                pb::AccessOp::try_from(e.op),
                Ok(pb::AccessOp::Read | pb::AccessOp::Write)
            ) {
                return Err(Error::invalid(
                    format!("{field}.op"),
                    "must be read or write",
                ));
            }
            let time = match &e.time {
                Some(t) => from_timestamp(t).ok_or_else(|| {
                    Error::invalid(format!("{field}.time"), "not a valid timestamp")
                })?,
                None => now,
            };
            validate(&field, e.bytes, e.latency_ms, time, now)?;
            if e.event_id.is_empty() {
                e.event_id = uuid::Uuid::now_v7().to_string();
            } else if e.event_id.len() > 128 {
                return Err(Error::invalid(
                    format!("{field}.event_id"),
                    "must be at most 128 bytes",
                ));
            }
            e.time = Some(to_timestamp(time));
            e.dataset = id.to_string();
            // JetStream drops a repeat of the same client's event within its window.
            let message_id = format!("{}.{}.{}", id, e.client_id, e.event_id);
            let envelope = pb::AccessEventEnvelope {
                dataset_id: id.to_string(),
                event: Some(e),
            };
            messages.push((access_subject(id), message_id, envelope.encode_to_vec()));
        }
        let accepted = messages.len() as u64;
        self.bus.publish_all(messages).await?;
        metrics::ACCESS_EVENTS_ACCEPTED.add(accepted);
        Ok(accepted)
    }

    pub async fn stats(
        &self,
        dataset: &Ref<DatasetId>,
        from: Option<chrono::DateTime<chrono::Utc>>,
        to: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<Vec<(chrono::DateTime<chrono::Utc>, HourlyAccess)>> {
        let dataset = self.catalogue.get_dataset(dataset).await?;
        self.catalogue
            .store()
            .access_stats(dataset.id, from, to)
            .await
    }
}
