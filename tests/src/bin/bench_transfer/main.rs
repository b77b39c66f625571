//! Transfer benchmark: Ferry against rclone on the same workloads, the same S3 server
//! (the in-process s3s-fs, Garage as a separate process, or both) and the same machine,
//! interleaved round by round.
//!
//!     cargo build --release --bins
//!     target/release/ferry-bench-transfer [--rounds 3] [--w1-files 5000] [--w2-files 8]
//!         [--w2-mib 128] [--skip-w2 | --only-w2] [--no-rclone] [--agent-concurrency N]
//!         [--server s3s-fs|garage|both]
//!
//! Workloads: W1 many 64 KiB files, `file://` → `s3://`; W2 a few large files,
//! `file://` → `s3://`; W3 the W1 set `s3://` → `s3://` on the same endpoint. Ferry runs
//! through a real control plane, agent and nats-server, with verify `quick` and `full`;
//! rclone (when on the PATH) with default flags and with `--transfers 32 --checkers 32`,
//! and on W2 also with multipart uploads of 8 MiB parts, as Ferry sends them; on W2
//! Ferry also runs quick with one request up to 200 MiB, as rclone sends them.
//! Each run prints wall time, objects/s, MB/s, CPU seconds and peak RSS of the process
//! doing the transfer (the agent; rclone itself), sampled from /proc, and the CPU
//! seconds the S3 server spent on it; medians and ratios follow, per server and, with
//! `--server both`, side by side.

mod bench;
mod contenders;
mod machine;
mod report;
mod results;
mod server;
mod w4;

use std::{
    collections::{BTreeMap, HashMap},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{bail, Context};
use ferry_proto::v1 as pb;
use ferry_sdk::Client;
use ferry_tests::{
    control_plane::Options, dataset::bytes, s3::S3Server, Agent, ControlPlane, NatsServer,
};

use self::{bench::*, contenders::*, machine::*, report::*, results::*, server::*, w4::*};

/// Ferry against rclone on the same workloads, the same S3 server and the same machine,
/// interleaved round by round.
///
/// Workloads: W1 many 64 KiB files, file:// → s3://; W2 a few large files, file:// →
/// s3://; W3 the W1 set s3:// → s3:// on the same endpoint; W4 (with --w4-files) many
/// 4 KiB files file:// → file://, against rclone and cp -r. W1 to W3 run on s3s-fs
/// (in this process), on Garage (a separate process, installed with `cargo install
/// garage@2.5.0 --locked --root ~/.cache/ferry/tools/garage`) or on both. Build the
/// binaries in the same profile first (`cargo build --release --bins`). FERRY_BENCH_RCLONE_LOG=FILE
/// keeps rclone's debug log; FERRY_BENCH_LOG_DIR=DIR keeps the agents' and the control
/// plane's logs (the control plane's at info level, else warnings only).
#[derive(clap::Parser)]
#[command(name = "ferry-bench-transfer")]
struct Args {
    /// Rounds; each starts one contender further along
    #[arg(long, value_name = "N", default_value_t = 3, value_parser = at_least_one)]
    rounds: usize,
    /// W1's files (64 KiB each), also W3's objects
    #[arg(long, value_name = "N", default_value_t = 5000, value_parser = at_least_one)]
    w1_files: usize,
    /// W2's files
    #[arg(long, value_name = "N", default_value_t = 8, value_parser = at_least_one)]
    w2_files: usize,
    /// Size of each W2 file, in MiB
    #[arg(long, value_name = "MIB", default_value_t = 128, value_parser = at_least_one)]
    w2_mib: usize,
    /// Leave W2 out
    #[arg(long)]
    skip_w2: bool,
    /// W2 alone: no W1, so no W3 either.
    #[arg(long)]
    only_w2: bool,
    /// W4's files (4 KiB each, file → file, 100000 in the issue's figures); W4 runs
    /// only when given
    #[arg(long, value_name = "N", value_parser = at_least_one)]
    w4_files: Option<usize>,
    /// W4 alone (needs --w4-files)
    #[arg(long)]
    only_w4: bool,
    /// Measure Ferry only, even when rclone is installed
    #[arg(long = "no-rclone", action = clap::ArgAction::SetFalse)]
    rclone: bool,
    /// `FERRY_AGENT_CONCURRENCY` for the agents; their default when unset.
    #[arg(long, value_name = "N", value_parser = at_least_one)]
    agent_concurrency: Option<usize>,
    /// The S3 server W1 to W3 run against
    #[arg(long, value_enum, default_value_t = ServerChoice::S3sFs)]
    server: ServerChoice,
}

/// A count given on the command line; 0 counts as 1.
fn at_least_one(value: &str) -> Result<usize, String> {
    value
        .parse::<usize>()
        .map(|n| n.max(1))
        .map_err(|_| format!("'{value}' is not a number"))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = <Args as clap::Parser>::parse();
    let rclone = args.rclone
        && Command::new("rclone")
            .arg("version")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
    let work = tempfile::tempdir()?;
    let gen = work.path().join("gen");
    let src = work.path().join("src");
    let w1_bytes = (args.w1_files * 64 * 1024) as u64;
    let w2_size = args.w2_mib << 20;
    let w2_bytes = (args.w2_files * w2_size) as u64;
    println!(
        "profile: {}; rclone: {}",
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
        if rclone {
            "yes"
        } else {
            "not installed (or --no-rclone)"
        }
    );
    if args.only_w2 && args.skip_w2 {
        bail!("--only-w2 and --skip-w2 leave nothing to run");
    }
    if args.only_w4 && args.w4_files.is_none() {
        bail!("--only-w4 needs --w4-files N");
    }
    // W4 alone leaves the others out.
    let (skip_w2, skip_w1) = if args.only_w4 {
        (true, true)
    } else {
        (args.skip_w2, args.only_w2)
    };
    // The servers first: a missing Garage fails before minutes of generating.
    let mut servers = Vec::new();
    for &kind in args.server.kinds() {
        servers.push(Server::start(kind).await?);
    }
    if let Some(files) = args.w4_files {
        println!("generating W4 ({files} × 4 KiB)…");
        generate(&gen.join("w4"), files, W4_SIZE, 2_000_000)?;
    }
    if !skip_w1 {
        println!("generating W1 ({} × 64 KiB)…", args.w1_files);
        generate(&gen.join("w1"), args.w1_files, 64 * 1024, 1)?;
    }
    if !skip_w2 {
        println!("generating W2 ({} × {} MiB)…", args.w2_files, args.w2_mib);
        generate(&gen.join("w2"), args.w2_files, w2_size, 1_000_000)?;
    }

    let nats = NatsServer::start().await;
    // Warnings only, unless its log is kept: then what it did, and when.
    let cp_log = match std::env::var_os("FERRY_BENCH_LOG_DIR") {
        Some(_) => "info",
        None => "warn",
    };
    let cp = ControlPlane::start_with(Options {
        nats: Some(nats.access()),
        extra_env: vec![("FERRY_LOG__FILTER".into(), cp_log.into())],
        ..Default::default()
    })
    .await;
    let client = cp.client().await;
    for name in ["local", CUTOFF_SITE] {
        client
            .create_site(
                pb::Site {
                    name: name.into(),
                    uri: format!("file://{}", src.display()),
                    tier: pb::Tier::Hot.into(),
                    ..Default::default()
                },
                HashMap::new(),
            )
            .await?;
    }
    let w4_out = work.path().join("out");
    std::fs::create_dir_all(&w4_out)?;
    client
        .create_site(
            pb::Site {
                name: W4_SITE.into(),
                uri: format!("file://{}", w4_out.display()),
                tier: pb::Tier::Cold.into(),
                ..Default::default()
            },
            HashMap::new(),
        )
        .await?;
    let concurrency = args.agent_concurrency.map(|c| c.to_string());
    // FERRY_BENCH_LOG_DIR=DIR keeps the agents' and the control plane's logs there, the
    // agents' at level info, to see where a run spends its time.
    let log_dir = std::env::var_os("FERRY_BENCH_LOG_DIR").map(PathBuf::from);
    let agent_filter = if log_dir.is_some() { "info" } else { "warn" };
    let mut agent_env = vec![("FERRY_AGENT_LOG__FILTER", agent_filter)];
    if let Some(c) = &concurrency {
        agent_env.push(("FERRY_AGENT_CONCURRENCY", c));
    }
    // Per server: sites `s3` and `s3-copy` on s3s-fs (their names before there was a
    // second server), `garage` and `garage-copy` on Garage, and the first one's agent.
    let mut endpoints = Vec::new();
    for server in servers {
        let site = match server.prefix() {
            "" => "s3".to_owned(),
            prefix => prefix.trim_end_matches('-').to_owned(),
        };
        let copy_site = format!("{site}-copy");
        for (name, bucket) in [(&site, "bench"), (&copy_site, "bench-copy")] {
            let (site, credentials) = server.site(name, bucket, pb::Tier::Cold);
            client.create_site(site, credentials).await?;
        }
        let agent = Agent::start(&cp, &site, &agent_env).await;
        endpoints.push(Endpoint {
            server,
            site,
            copy_site,
            agent,
            w1: Results::new(args.w1_files, w1_bytes),
            w2: Results::new(args.w2_files, w2_bytes),
            w3: Results::new(args.w1_files, w1_bytes),
        });
    }
    let local_agent = Agent::start(&cp, "local", &agent_env).await;
    let mut cutoff_env = agent_env.clone();
    cutoff_env.push(("FERRY_AGENT_MULTIPART_THRESHOLD_MIB", "200"));
    let cutoff_agent = Agent::start(&cp, CUTOFF_SITE, &cutoff_env).await;
    let file_agents = HashMap::from([("local", &local_agent), (CUTOFF_SITE, &cutoff_agent)]);
    let bench = Bench { client, gen, src };

    // What rclone runs each workload with; nothing without rclone.
    let (w1_rclone, w2_rclone, w3_rclone): (&[RcloneVariant], &[RcloneVariant], &[RcloneVariant]) =
        if rclone {
            (&RCLONE_VARIANTS, &RCLONE_W2_VARIANTS, &RCLONE_W3_VARIANTS)
        } else {
            (&[], &[], &[])
        };
    let w4_files = args.w4_files.unwrap_or(0);
    let mut w4 = Results::new(w4_files, (w4_files * W4_SIZE) as u64);
    let w4_changed = changed_keys(w4_files).len();
    let mut w4_incremental = Results::new(w4_changed, (w4_changed * W4_SIZE) as u64);
    let measured: anyhow::Result<()> = async {
        for round in 1..=args.rounds {
            println!("round {round}");
            // Each server in turn, so that both see the same hour of the machine.
            for on in &mut endpoints {
                if !skip_w1 || !skip_w2 {
                    println!(" on {}", on.server.name());
                }
                if !skip_w1 {
                    // W1: many small files to S3.
                    let w1_contenders = contenders(&MODES, w1_rclone);
                    bench
                        .files_to_s3(on, "w1", round, &file_agents, w1_contenders)
                        .await?;
                    // W3: the W1 set, bucket to bucket on one endpoint.
                    bench
                        .w3_round(on, round, contenders(&MODES, w3_rclone))
                        .await?;
                }
                // W2: a few large files to S3.
                if !skip_w2 {
                    let w2_contenders = contenders(&W2_MODES, w2_rclone);
                    bench
                        .files_to_s3(on, "w2", round, &file_agents, w2_contenders)
                        .await?;
                }
                on.server.empty_buckets(round)?;
            }
            if args.w4_files.is_some() {
                bench
                    .w4_round(round, &local_agent, &w4_out, rclone, &mut w4)
                    .await?;
                bench
                    .w4_incremental_round(
                        round,
                        w4_files,
                        &local_agent,
                        &w4_out,
                        rclone,
                        &mut w4_incremental,
                    )
                    .await?;
            }
        }

        Ok(())
    }
    .await;
    if let Some(dir) = &log_dir {
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join("agent-local.log"), local_agent.log())?;
        for on in &endpoints {
            std::fs::write(dir.join(format!("agent-{}.log", on.site)), on.agent.log())?;
            if let Server::Garage(_) = on.server {
                std::fs::write(dir.join("garage.log"), on.server.log())?;
            }
        }
        std::fs::write(dir.join("agent-local-200.log"), cutoff_agent.log())?;
        std::fs::write(dir.join("control-plane.log"), cp.log())?;
    }
    if let Err(e) = measured {
        let log = cp.log();
        let tail: Vec<&str> = log.lines().rev().take(40).collect();
        eprintln!("control plane log, last lines:");
        for line in tail.iter().rev() {
            eprintln!("  {line}");
        }
        for on in &endpoints {
            let log = on.server.log();
            if !log.is_empty() {
                let tail: Vec<&str> = log.lines().rev().take(20).collect();
                eprintln!("{} log, last lines:", on.server.name());
                for line in tail.iter().rev() {
                    eprintln!("  {line}");
                }
            }
        }
        return Err(e);
    }

    let shape = Shape {
        w1_files: args.w1_files,
        w2_files: args.w2_files,
        w2_mib: args.w2_mib,
        skip_w1,
        skip_w2,
    };
    report(&endpoints, &shape);
    if args.w4_files.is_some() {
        println!();
        w4.summary(&format!("W4 ({w4_files} × 4 KiB, file → file, first copy)"));
        w4.ratio("W4 ferry quick", "W4 rclone default");
        w4.ratio("W4 ferry quick", "W4 cp -r");
        w4_incremental.summary(&format!(
            "W4 incremental ({w4_changed} of {w4_files} files changed, file → file)"
        ));
        w4_incremental.ratio("W4 incremental ferry sync", "W4 incremental rclone sync");
        println!();
        println!("W4 targets, on this run's medians:");
        Judged::new(
            "W4 first copy at least as fast as rclone",
            w4.speedup("W4 ferry quick", "W4 rclone default"),
            "×",
            |x| x >= 1.0,
        )
        .print();
        Judged::new(
            "W4 incremental ≥ 2× rclone sync",
            w4_incremental.speedup("W4 incremental ferry sync", "W4 incremental rclone sync"),
            "×",
            |x| x >= 2.0,
        )
        .print();
    }
    Ok(())
}
