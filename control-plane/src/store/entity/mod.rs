//! sea-orm entities: the catalogue's tables as rows. Only `store/` sees them.

pub mod access_hourly;
pub mod agent;
pub mod audit_event;
pub mod dataset;
pub mod dataset_label;
pub mod demand_model;
pub mod event_cursor;
pub mod job;
pub mod job_object;
pub mod outbox;
pub mod policy;
pub mod policy_placement;
pub mod recommendation;
pub mod replica;
pub mod replica_object;
pub mod site;
pub mod sync_change;
pub mod sync_schedule;
pub mod token;
