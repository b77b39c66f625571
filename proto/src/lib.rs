//! The `ferry.v1` protocol: messages and service stubs generated from `proto/ferry/v1`,
//! the file descriptor set for server reflection, conversions of the well-known
//! protobuf types that every crate needs, and the NATS subjects and permissions (`bus`).

pub mod bus;
pub mod time;

/// Generated `ferry.v1` messages, clients and servers.
pub mod v1 {
    #![allow(clippy::all, clippy::pedantic, missing_docs)]
    tonic::include_proto!("ferry.v1");
}

/// Encoded `FileDescriptorSet` of every `ferry.v1` file, for server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("ferry_descriptor");

/// Fully qualified names of the `ferry.v1` services, as reflection lists them.
pub const SERVICE_NAMES: &[&str] = &[
    "ferry.v1.SiteService",
    "ferry.v1.DatasetService",
    "ferry.v1.AccessEventService",
    "ferry.v1.PolicyService",
    "ferry.v1.RecommendationService",
    "ferry.v1.JobService",
    "ferry.v1.AgentService",
    "ferry.v1.AdminService",
];
