//! Ferry's control plane: the catalogue of sites, datasets and policies, placement
//! intelligence, migration planning and dispatch, served over gRPC.
//!
//! Layers, outermost first: `grpc` (thin handlers: convert, validate, call) →
//! `service` (use cases) → `domain` (pure rules) with the `store` and `bus` ports
//! underneath; `convert` holds every conversion between wire messages and domain types.

pub mod bus;
pub mod call;
pub mod clock;
pub mod config;
pub mod console;
pub mod convert;
pub mod domain;
pub mod error;
pub mod grpc;
pub mod metrics;
pub mod server;
pub mod service;
pub mod store;
pub mod telemetry;
pub mod tls;
pub mod vault;
