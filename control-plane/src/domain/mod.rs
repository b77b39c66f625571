//! Pure domain logic: the catalogue's types and their rules. Nothing here knows about
//! gRPC, SQL or NATS.

pub mod access;
pub mod agent;
pub mod audit;
pub mod cost;
pub mod dataset;
pub mod forecast;
pub mod ids;
pub mod job;
pub mod labels;
pub mod name;
pub mod page;
pub mod placement;
pub mod policy;
pub mod principal;
pub mod recommendation;
pub mod report;
pub mod schedule;
pub mod site;
mod summary;
pub mod sync;
pub mod tier;
pub mod token;
pub mod whatif;
