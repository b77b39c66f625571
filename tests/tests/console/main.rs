//! The web console: served from the control plane's port, a gRPC-Web client of the same
//! API, driven in headless Chromium as an operator would use it.

#![allow(clippy::unwrap_used)]

mod browser;
mod serving;
