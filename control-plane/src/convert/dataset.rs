//! Datasets, their labels and replicas.

use ferry_proto::{time::to_timestamp, v1 as pb};

use super::*;
use crate::{
    domain::{
        dataset::{Dataset, DatasetPath, NewDataset, Replica, ReplicaRole, ReplicaState},
        labels::Labels,
        name::{Name, Ref},
    },
    error::{Error, Result},
};

pub fn labels(field: &str, map: std::collections::HashMap<String, String>) -> Result<Labels> {
    Labels::parse(field, &to_btree(map))
}

pub fn new_dataset(dataset: Option<pb::Dataset>) -> Result<NewDataset> {
    let d = dataset.ok_or_else(|| Error::invalid("dataset", "required"))?;
    Ok(NewDataset {
        name: Name::parse("dataset.name", &d.name)?,
        site: Ref::parse("dataset.site", &d.site)?,
        path: DatasetPath::parse("dataset.path", &d.path)?,
        current_tier: tier("dataset.current_tier", d.current_tier)?,
        latency_slo_ms: nonzero(d.latency_slo_ms),
        size_bytes: d.size_bytes,
        object_count: d.object_count,
        owner: d.owner,
        labels: labels("dataset.labels", d.labels)?,
    })
}

pub fn dataset_to_pb(d: Dataset) -> pb::Dataset {
    pb::Dataset {
        id: d.id.to_string(),
        name: d.name.to_string(),
        site: d.site_id.to_string(),
        path: d.path.as_str().to_owned(),
        current_tier: tier_to_pb(d.current_tier),
        latency_slo_ms: d.latency_slo_ms.unwrap_or(0),
        size_bytes: d.size_bytes,
        object_count: d.object_count,
        owner: d.owner,
        labels: d.labels.as_map().clone().into_iter().collect(),
        last_access_time: d.last_access_at.map(to_timestamp),
        create_time: Some(to_timestamp(d.created_at)),
        update_time: Some(to_timestamp(d.updated_at)),
    }
}

/// A replica as the API shows it at `now`: a synced replica's lag is how long ago its
/// last verified sync listed the source.
pub fn replica_to_pb(r: Replica, now: chrono::DateTime<chrono::Utc>) -> pb::Replica {
    pb::Replica {
        site: r.site_id.to_string(),
        path: r.path,
        role: match r.role {
            ReplicaRole::Primary => pb::ReplicaRole::Primary,
            ReplicaRole::Secondary => pb::ReplicaRole::Secondary,
        }
        .into(),
        state: match r.state {
            ReplicaState::Copying => pb::ReplicaState::Copying,
            ReplicaState::Ready => pb::ReplicaState::Ready,
            ReplicaState::Retiring => pb::ReplicaState::Retiring,
        }
        .into(),
        verify_time: r.verified_at.map(to_timestamp),
        manifest: r.manifest.unwrap_or_default(),
        sync_time: r.synced_at.map(to_timestamp),
        lag: r.synced_at.map(|at| {
            let lag = (now - at).max(chrono::TimeDelta::zero());
            prost_types::Duration {
                seconds: lag.num_seconds(),
                nanos: lag.subsec_nanos(),
            }
        }),
    }
}
