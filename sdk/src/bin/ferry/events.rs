//! `ferry events`: report dataset accesses (for gateways without an SDK, scripts and
//! demos) and show a dataset's hourly access.

use std::time::Duration;

use chrono::Utc;
use clap::{Subcommand, ValueEnum};
use ferry_sdk::{pb, Error};

use crate::{duration::parse_duration, output, parse::parse_bytes, Context};

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Op {
    Read,
    Write,
}

#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// Record accesses of a dataset
    Record {
        /// The dataset (id or name)
        dataset: String,
        #[arg(long, value_enum, default_value = "read")]
        op: Op,
        /// Bytes per access, e.g. 4KiB
        #[arg(long, value_parser = parse_bytes, default_value = "0")]
        bytes: u64,
        /// How many accesses to record
        #[arg(long, default_value_t = 1)]
        count: u32,
        /// When they happened, as an age: 90s, 2h, 3d [default: now]
        #[arg(long, value_parser = parse_duration)]
        ago: Option<Duration>,
        /// Latency the client saw, in milliseconds
        #[arg(long, default_value_t = 0.0)]
        latency_ms: f64,
    },
    /// Hourly accesses of a dataset
    Stats {
        /// The dataset (id or name)
        dataset: String,
    },
}

pub async fn run(command: EventsCommand, ctx: &Context) -> Result<String, Error> {
    let client = ctx.client().await?;
    match command {
        EventsCommand::Record {
            dataset,
            op,
            bytes,
            count,
            ago,
            latency_ms,
        } => {
            let at = Utc::now()
                - chrono::Duration::from_std(ago.unwrap_or_default()).unwrap_or_default();
            let bytes = i64::try_from(bytes)
                .map_err(|_| Error::InvalidInput("--bytes is too large".into()))?;
            let op = match op {
                Op::Read => pb::AccessOp::Read,
                Op::Write => pb::AccessOp::Write,
            };
            let events = (0..count)
                .map(|_| pb::AccessEvent {
                    dataset: dataset.clone(),
                    op: op.into(),
                    bytes,
                    latency_ms,
                    time: Some(ferry_sdk::time::to_timestamp(at)),
                    client_id: "ferry-cli".into(),
                    event_id: String::new(),
                })
                .collect();
            let answer = client
                .access_events()
                .record_access_events(pb::RecordAccessEventsRequest { events })
                .await?
                .into_inner();
            Ok(if ctx.json() {
                format!("{{\"accepted\":{}}}", answer.accepted)
            } else {
                format!("recorded {} access(es) of {dataset}", answer.accepted)
            })
        }
        EventsCommand::Stats { dataset } => {
            let hours = client
                .access_events()
                .get_access_stats(pb::GetAccessStatsRequest {
                    dataset,
                    ..Default::default()
                })
                .await?
                .into_inner()
                .hours;
            if ctx.json() {
                let rows: Vec<String> = hours
                    .iter()
                    .map(|h| {
                        format!(
                            "{{\"hour\":\"{}\",\"reads\":{},\"writes\":{},\"bytes_read\":{},\"bytes_written\":{}}}",
                            h.hour.as_ref().and_then(ferry_sdk::time::from_timestamp).map(|t| t.to_rfc3339()).unwrap_or_default(),
                            h.reads,
                            h.writes,
                            h.bytes_read,
                            h.bytes_written
                        )
                    })
                    .collect();
                return Ok(format!("[{}]", rows.join(",")));
            }
            if hours.is_empty() {
                return Ok("no accesses recorded".into());
            }
            let rows = hours
                .iter()
                .map(|h| {
                    let hour = h.hour.as_ref().and_then(ferry_sdk::time::from_timestamp);
                    vec![
                        hour.map(|t| t.format("%Y-%m-%d %H:00").to_string())
                            .unwrap_or_default(),
                        h.reads.to_string(),
                        h.writes.to_string(),
                        output::bytes(h.bytes_read),
                        output::bytes(h.bytes_written),
                    ]
                })
                .collect();
            Ok(output::table(
                &["HOUR", "READS", "WRITES", "BYTES READ", "BYTES WRITTEN"],
                rows,
            ))
        }
    }
}
