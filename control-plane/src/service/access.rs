//! Access event intake: validation, then publication to `FERRY_EVENTS` (deduplicated by
//! event id) for the aggregator to fold.

use std::collections::{BTreeMap, HashMap};

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

/// Events per JetStream message: about 100 KB, well under the broker's 1 MB limit.
const EVENTS_PER_MESSAGE: usize = 1000;

/// Identifies a batch by its events' client and event ids, in order.
fn batch_digest(events: &[pb::AccessEvent]) -> u128 {
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    for e in events {
        hasher.update(e.client_id.as_bytes());
        hasher.update(&[0]);
        hasher.update(e.event_id.as_bytes());
        hasher.update(&[0]);
    }
    hasher.digest128()
}

#[derive(Clone)]
pub struct AccessEvents {
    catalogue: Catalogue,
    bus: Bus,
}

impl AccessEvents {
    pub fn new(catalogue: Catalogue, bus: Bus) -> Self {
        AccessEvents { catalogue, bus }
    }

    /// Validates a batch (all or nothing) and publishes it, one JetStream message per
    /// dataset and [`EVENTS_PER_MESSAGE`] events; returns how many were accepted once
    /// JetStream stored them all.
    pub async fn record(&self, events: Vec<pb::AccessEvent>) -> Result<u64> {
        let now = self.catalogue.clock().now();
        let mut datasets: HashMap<String, DatasetId> = HashMap::new();
        // Per dataset, in arrival order, so a resent request maps to the same messages.
        let mut by_dataset: BTreeMap<DatasetId, Vec<pb::AccessEvent>> = BTreeMap::new();
        let accepted = events.len() as u64;
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
            // The message names the dataset once.
            e.dataset = String::new();
            by_dataset.entry(id).or_default().push(e);
        }
        let mut messages = Vec::new();
        for (id, events) in by_dataset {
            for chunk in events.chunks(EVENTS_PER_MESSAGE) {
                // JetStream drops a repeat of the same events within its dedupe window.
                let message_id = format!("{id}.{:032x}", batch_digest(chunk));
                let batch = pb::AccessEventBatch {
                    dataset_id: id.to_string(),
                    events: chunk.to_vec(),
                };
                messages.push((access_subject(id), message_id, batch.encode_to_vec()));
            }
        }
        self.bus.publish_all(messages).await?;
        metrics::ACCESS_EVENTS_ACCEPTED.inc_by(accepted);
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
