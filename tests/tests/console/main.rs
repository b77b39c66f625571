//! The web console: served from the control plane's port, a gRPC-Web client of the same
//! API.

#![allow(clippy::unwrap_used)]

mod serving;
