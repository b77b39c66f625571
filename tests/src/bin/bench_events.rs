//! Access-event ingestion benchmark: streams events over gRPC (client streaming) into a
//! real control plane, through a private nats-server's JetStream, into hourly aggregates,
//! and prints events per second for the intake and end to end.
//!
//!     cargo run --release -p ferry-tests --bin ferry-bench-events -- [EVENTS] [BATCH]
//!
//! Build the workspace binaries in the same profile first (`cargo build --release --bins`).

use std::{collections::HashMap, time::Instant};

use ferry_proto::{time::to_timestamp, v1 as pb};
use ferry_tests::{control_plane::Options, ControlPlane, NatsServer};

/// Streams access events over gRPC (client streaming) into a real control plane,
/// through a private nats-server's JetStream, into hourly aggregates, and prints events
/// per second for the intake and end to end.
///
/// Build the workspace binaries in the same profile first (`cargo build --release
/// --bins`).
#[derive(clap::Parser)]
#[command(name = "ferry-bench-events")]
struct Args {
    /// Events to send in all
    #[arg(default_value_t = 200_000)]
    events: u64,
    /// Events per request message; 0 counts as 1
    #[arg(default_value_t = 1_000)]
    batch: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let Args { events, batch } = clap::Parser::parse();
    let batch = batch.max(1);
    let nats = NatsServer::start().await;
    let cp = ControlPlane::start_with(Options {
        nats: Some(nats.access()),
        extra_env: vec![("FERRY_LOG__FILTER".into(), "warn".into())],
        ..Default::default()
    })
    .await;
    let client = cp.client().await;
    let site = pb::Site {
        name: "s".into(),
        uri: "memory://".into(),
        tier: pb::Tier::Hot.into(),
        ..Default::default()
    };
    client.create_site(site, HashMap::new()).await?;
    let d = pb::Dataset {
        name: "d".into(),
        site: "s".into(),
        path: "d".into(),
        ..Default::default()
    };
    let dataset = client.create_dataset(d).await?.id;

    let now = to_timestamp(chrono::Utc::now());
    let batches = events.div_ceil(batch);
    let requests = (0..batches).map(move |b| pb::RecordAccessEventsRequest {
        events: (0..batch.min(events - b * batch))
            .map(|i| pb::AccessEvent {
                dataset: dataset.clone(),
                op: pb::AccessOp::Read.into(),
                bytes: 4096,
                latency_ms: 1.0,
                time: Some(now),
                client_id: "bench".into(),
                event_id: format!("{b}-{i}"),
            })
            .collect(),
    });
    let started = Instant::now();
    let accepted = client
        .access_events()
        .stream_access_events(tokio_stream::iter(requests))
        .await?
        .into_inner()
        .accepted;
    let ingested = started.elapsed();
    loop {
        let hours = client
            .access_events()
            .get_access_stats(pb::GetAccessStatsRequest {
                dataset: "d".into(),
                ..Default::default()
            })
            .await?
            .into_inner()
            .hours;
        if hours.iter().map(|h| h.reads).sum::<u64>() >= accepted {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let total = started.elapsed();
    let rate = |d: std::time::Duration| accepted as f64 / d.as_secs_f64();
    println!(
        "events: {accepted}, batch size: {batch}, profile: {}",
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
    );
    println!(
        "intake (stored in JetStream): {:.0} events/s ({:.2?})",
        rate(ingested),
        ingested
    );
    println!(
        "end to end (aggregated):      {:.0} events/s ({:.2?})",
        rate(total),
        total
    );
    Ok(())
}
