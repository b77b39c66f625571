//! Access control end to end, against the real control plane (and, where bytes move, a
//! real agent, nats-server and S3 server): tokens and roles on every method, an
//! outsider's attempts, revocation of open streams, the audit log of every change, the
//! `ferry token` and `ferry audit` commands, and a scan for leaked secrets.

#![allow(clippy::unwrap_used)]

mod audit;
mod bootstrap;
mod cli;
mod nats;
mod nats_user;
mod outsider;
mod revocation;
mod roles;
mod secrets;
