//! Console benchmark: the JavaScript the console ships (gzipped), and how long until the
//! migrations list and the activity page of a job of many objects are usable in
//! headless Chromium, against a real control plane whose agent migrated that job.
//!
//!     cargo run --release -p ferry-tests --bin ferry-bench-console -- [OBJECTS]
//!
//! Build the workspace binaries in the same profile first (`cargo build --release
//! --bins`), and install the browser scenarios' packages (`npm ci` in
//! tests/console-e2e).

use std::{collections::HashMap, io::Write, time::Instant};

use ferry_proto::v1 as pb;
use ferry_tests::{browser::run_scenario, control_plane::Options, Agent, ControlPlane};

/// Measures the console's size and the time until its heaviest pages are usable.
#[derive(clap::Parser)]
#[command(name = "ferry-bench-console")]
struct Args {
    /// Objects in the migrated job whose activity page is opened
    #[arg(default_value_t = 100_000)]
    objects: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let Args { objects } = clap::Parser::parse();
    let dist = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../console/dist");
    for file in ["app.js", "app.css", "index.html"] {
        let bytes = std::fs::read(dist.join(file))?;
        println!(
            "{file:<10} {:>8} bytes, {:>7} gzipped",
            bytes.len(),
            gzipped_len(&bytes)?
        );
    }

    let cp = ControlPlane::start_with(Options {
        extra_env: vec![("FERRY_LOG__FILTER".into(), "warn".into())],
        ..Default::default()
    })
    .await;
    let client = cp.client().await;
    let dirs = tempfile::tempdir()?;
    for (name, tier) in [("fast", pb::Tier::Hot), ("archive", pb::Tier::Cold)] {
        std::fs::create_dir_all(dirs.path().join(name))?;
        let site = pb::Site {
            name: name.into(),
            uri: format!("file://{}", dirs.path().join(name).display()),
            tier: tier.into(),
            ..Default::default()
        };
        client.create_site(site, HashMap::new()).await?;
    }
    let root = dirs.path().join("fast/many");
    for i in 0..objects {
        let dir = root.join(format!("{:03}", i % 1000));
        if i < 1000 {
            std::fs::create_dir_all(&dir)?;
        }
        std::fs::write(dir.join(format!("object-{i:06}")), i.to_le_bytes())?;
    }
    client
        .create_dataset(pb::Dataset {
            name: "many".into(),
            site: "fast".into(),
            path: "many".into(),
            ..Default::default()
        })
        .await?;
    let _agent = Agent::start(&cp, "fast", &[("FERRY_AGENT_LOG__FILTER", "warn")]).await;
    let started = Instant::now();
    let job = client
        .plan_migration(pb::PlanMigrationRequest {
            dataset: "many".into(),
            destination_site: "archive".into(),
            verify_mode: pb::VerifyMode::Quick.into(),
            ..Default::default()
        })
        .await?
        .job
        .unwrap_or_default();
    let done =
        ferry_tests::dataset::wait_for_end(&client, &job.id, std::time::Duration::from_secs(3600))
            .await;
    anyhow::ensure!(
        done.state == pb::JobState::Completed as i32 && done.objects_done == objects as u64,
        "the job did not complete: {done:?}"
    );
    println!(
        "migrated {objects} objects in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let out = run_scenario(
        "bench.mjs",
        &[
            ("FERRY_E2E_URL", cp.endpoint()),
            ("FERRY_E2E_TOKEN", cp.admin_token().to_owned()),
            ("FERRY_E2E_JOB", job.id.clone()),
        ],
    )
    .await;
    print!("{out}");
    Ok(())
}

/// The size of `bytes` gzipped at the best compression.
fn gzipped_len(bytes: &[u8]) -> std::io::Result<usize> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(bytes)?;
    Ok(encoder.finish()?.len())
}
