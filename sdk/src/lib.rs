//! Typed client for Ferry's gRPC API (`ferry.v1`).
//!
//! [`Client`] owns one connection to a control plane and sends a bearer token on every
//! call ([`Client::with_token`]). It hands out the generated stubs of all eight services
//! for full access, and wraps the catalogue (sites, datasets, policies),
//! placement recommendations, migration jobs and agents in methods that validate their
//! input, follow pagination to the end and report failures as one [`Error`] type carrying
//! the gRPC code.
//!
//! ```no_run
//! # async fn example() -> Result<(), ferry_sdk::Error> {
//! let token = std::env::var("FERRY_TOKEN").unwrap_or_default();
//! let client = ferry_sdk::Client::connect("127.0.0.1:50051")
//!     .await?
//!     .with_token(&token)?;
//! for site in client.list_sites(Some(ferry_sdk::pb::Tier::Hot)).await? {
//!     println!("{} {}", site.name, site.uri);
//! }
//! # Ok(())
//! # }
//! ```

mod admin;
mod auth;
mod client;
mod error;
mod jobs;
mod recommendations;
pub mod tls;

pub use admin::AuditFilter;
pub use auth::{read_token_file, Bearer, Transport};
pub use client::{Client, DatasetDetails, DatasetFilter, CONNECT_TIMEOUT};
pub use error::{cause_chain, code_words, Error};
pub use jobs::JobFilter;
pub use recommendations::RecommendationFilter;
pub use tls::{TlsFileError, TlsFiles};

/// The generated `ferry.v1` messages and stubs, re-exported so callers need not depend on
/// `ferry-proto` themselves.
pub use ferry_proto::v1 as pb;

/// Conversions between protobuf `Timestamp`/`Duration` and chrono/std types.
pub use ferry_proto::time;
