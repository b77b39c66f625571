//! Harness for Ferry's end-to-end tests: starts the real binaries on free ports in
//! private temporary directories and waits for readiness (never for fixed sleeps).

pub mod access;
pub mod agent;
pub mod azurite;
pub mod binaries;
pub mod browser;
pub mod clients;
pub mod control_plane;
pub mod dataset;
pub mod embedded;
pub mod garage;
pub mod gcs;
pub mod http;
pub mod nats;
pub mod otlp;
pub mod pki;
pub mod postgres;
pub mod promql;
pub mod s3;
pub mod tools;

pub use postgres::TestDatabase;

pub use agent::Agent;
pub use azurite::Azurite;
pub use clients::Object;
pub use control_plane::ControlPlane;
pub use gcs::GcsEmulator;
pub use nats::NatsServer;
pub use pki::Pki;
pub use s3::S3Server;

/// A TCP port that was free a moment ago. The binaries bind it right after, so the
/// window for another process to take it is small.
pub fn free_port() -> u16 {
    let listener =
        std::net::TcpListener::bind("127.0.0.1:0").expect("binding an ephemeral port on loopback");
    listener
        .local_addr()
        .expect("local address of an ephemeral listener")
        .port()
}

/// How `child` exited, if it has: the start-up loops stop waiting on a dead process.
fn exit_status(child: &mut Option<std::process::Child>) -> Option<std::process::ExitStatus> {
    child.as_mut().and_then(|c| c.try_wait().ok().flatten())
}

/// A site URI: `scheme://bucket/prefix`, or `scheme://bucket` when the prefix is empty.
pub(crate) fn site_uri(scheme: &str, bucket: &str, prefix: &str) -> String {
    match prefix.trim_matches('/') {
        "" => format!("{scheme}://{bucket}"),
        prefix => format!("{scheme}://{bucket}/{prefix}"),
    }
}
