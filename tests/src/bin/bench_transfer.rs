//! Transfer benchmark: Ferry against rclone on the same workloads, the same in-process
//! S3 server (s3s-fs) and the same machine, interleaved round by round.
//!
//!     cargo build --release --bins
//!     target/release/ferry-bench-transfer [--rounds 3] [--w1-files 5000] [--w2-files 8]
//!         [--w2-mib 128] [--skip-w2 | --only-w2] [--no-rclone] [--agent-concurrency N]
//!
//! Workloads: W1 many 64 KiB files, `file://` → `s3://`; W2 a few large files,
//! `file://` → `s3://`; W3 the W1 set `s3://` → `s3://` on the same endpoint. Ferry runs
//! through a real control plane, agent and nats-server, with verify `quick` and `full`;
//! rclone (when on the PATH) with default flags and with `--transfers 32 --checkers 32`,
//! and on W2 also with multipart uploads of 8 MiB parts, as Ferry sends them; on W2
//! Ferry also runs quick with one request up to 200 MiB, as rclone sends them.
//! Each run prints wall time, objects/s, MB/s, CPU seconds and peak RSS of the process
//! doing the transfer (the agent; rclone itself), sampled from /proc, and the CPU
//! seconds the S3 server (this process) spent on it; medians and ratios follow.

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

/// Ferry against rclone on the same workloads, the same in-process S3 server (s3s-fs)
/// and the same machine, interleaved round by round.
///
/// Workloads: W1 many 64 KiB files, file:// → s3://; W2 a few large files, file:// →
/// s3://; W3 the W1 set s3:// → s3:// on the same endpoint. Build the binaries in the
/// same profile first (`cargo build --release --bins`). FERRY_BENCH_RCLONE_LOG=FILE
/// keeps rclone's debug log; FERRY_BENCH_LOG_DIR=DIR keeps the agents' and the control
/// plane's logs.
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
    /// Measure Ferry only, even when rclone is installed
    #[arg(long = "no-rclone", action = clap::ArgAction::SetFalse)]
    rclone: bool,
    /// `FERRY_AGENT_CONCURRENCY` for the agents; their default when unset.
    #[arg(long, value_name = "N", value_parser = at_least_one)]
    agent_concurrency: Option<usize>,
}

/// A count given on the command line; 0 counts as 1.
fn at_least_one(value: &str) -> Result<usize, String> {
    value
        .parse::<usize>()
        .map(|n| n.max(1))
        .map_err(|_| format!("'{value}' is not a number"))
}

/// One timed run.
#[derive(Clone, Debug)]
struct Run {
    seconds: f64,
    cpu_seconds: f64,
    peak_rss_kib: u64,
    /// CPU seconds of this process, which is the S3 server (its other work, polling
    /// the job or waiting for rclone, is a few milliseconds).
    server_cpu_seconds: f64,
    /// CPU seconds the host took from this machine while the run went on (`steal` in
    /// /proc/stat, both cores): the host's own load, which slows every process here.
    steal_seconds: f64,
}

/// CPU seconds the host has taken from this machine since boot, all cores together.
fn machine_steal() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    // cpu user nice system idle iowait irq softirq steal ...
    stat.lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(8))
        .and_then(|t| t.parse::<f64>().ok())
        .map_or(0.0, |ticks| ticks / 100.0)
}

/// This process's CPU seconds, the S3 server's, exited threads included.
fn server_cpu() -> f64 {
    proc_usage(std::process::id()).map_or(0.0, |(cpu, _)| cpu)
}

/// A process's CPU seconds (user + system) and peak RSS, from /proc.
fn proc_usage(pid: u32) -> Option<(f64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let hwm = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())?;
    // The kernel reports CPU time in clock ticks of 1/100 s on Linux.
    Some((ticks / 100.0, hwm))
}

/// Puts every run on the same footing: the files of its source (the workload's files;
/// for W3 the source bucket's files on the server's disk, with the metadata files s3s-fs
/// keeps beside the buckets) are read into the page cache, then the dirty pages are
/// written out, so that no run pays for the writeback of what an earlier one wrote (the
/// large workloads leave gigabytes behind).
///
/// The read matters because rclone drops from the page cache what it has read
/// (`posix_fadvise(POSIX_FADV_DONTNEED)` in its local backend), and this machine's host
/// pages out file pages left idle for a minute (a DAMON `pageout` scheme). Without it
/// the run after an rclone run, or after a pause, reads its source from disk: that was
/// Ferry's quick run of each round after the first, and rclone's second variant.
fn settle(source: &[PathBuf]) -> anyhow::Result<()> {
    for path in source {
        read_tree(path)
            .with_context(|| format!("reading {} into the page cache", path.display()))?;
    }
    let _ = Command::new("sync").status();
    Ok(())
}

/// The files on the S3 server's disk that hold the objects below `prefix` (a bucket and
/// a key prefix): the prefix's directory, and every object metadata file beside the
/// buckets (those of this round only, as [`empty_buckets`] moves earlier ones aside).
fn in_bucket(root: &Path, prefix: &str) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = vec![root.join(prefix)];
    files.extend(metadata_files(root)?);
    Ok(files)
}

/// The files s3s-fs keeps an object's metadata in, beside the buckets: named
/// `.bucket-<bucket>.object-<key>…`.
fn metadata_files(root: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(root)? {
        let entry = entry?;
        if entry.file_type()?.is_file()
            && entry.file_name().to_string_lossy().starts_with(".bucket-")
        {
            files.push(entry.path());
        }
    }
    Ok(files)
}

/// Reads every file below `path`, or `path` itself if it is a file.
fn read_tree(path: &Path) -> std::io::Result<()> {
    if !path.is_dir() {
        std::io::copy(&mut std::fs::File::open(path)?, &mut std::io::sink())?;
        return Ok(());
    }
    for entry in std::fs::read_dir(path)? {
        read_tree(&entry?.path())?;
    }
    Ok(())
}

/// Resets a process's peak RSS so the next reading covers one run only.
fn reset_peak_rss(pid: u32) {
    let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
}

/// Empties `buckets` between rounds, so that every round starts from the same server
/// state: s3s-fs lists a prefix by walking (and stat'ing) its whole bucket, so each
/// round's listings would otherwise also walk every earlier round's objects. s3s-fs
/// keeps nothing in memory: a bucket is a directory, and an object's metadata lives in
/// files named `.bucket-<bucket>.object-<key>…` beside the buckets. They are moved
/// aside, not deleted: on ext4 without a journal (this machine's root file system)
/// allocating an inode skips every inode freed in the last minutes, so for a while
/// after tens of thousands of files are deleted each file the server creates costs many
/// times its usual CPU (`recently_deleted` in the kernel's profile).
fn empty_buckets(root: &Path, buckets: &[&str], round: usize) -> anyhow::Result<()> {
    let aside = root.join(format!(".emptied-{round}"));
    std::fs::create_dir(&aside)?;
    for bucket in buckets {
        let dir = root.join(bucket);
        std::fs::rename(&dir, aside.join(bucket))?;
        std::fs::create_dir(&dir)?;
    }
    for file in metadata_files(root)? {
        if let Some(name) = file.file_name() {
            std::fs::rename(&file, aside.join(name))?;
        }
    }
    Ok(())
}

fn link_tree(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            link_tree(&entry.path(), &target)?;
        } else {
            std::fs::hard_link(entry.path(), &target)?;
        }
    }
    Ok(())
}

fn generate(dir: &Path, files: usize, size: usize, seed: u64) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    for i in 0..files {
        // 1,000 files per directory, as a real tree would spread them.
        let sub = dir.join(format!("d{:03}", i / 1000));
        std::fs::create_dir_all(&sub)?;
        std::fs::write(
            sub.join(format!("f{i:06}.bin")),
            bytes(seed + i as u64, size),
        )?;
    }
    Ok(())
}

struct Bench {
    client: Client,
    s3: S3Server,
    gen: PathBuf,
    src: PathBuf,
}

impl Bench {
    async fn ferry(
        &self,
        agent: &Agent,
        dataset: &str,
        to: &str,
        verify: pb::VerifyMode,
        source: &[PathBuf],
    ) -> anyhow::Result<Run> {
        let pid = agent.pid().context("the agent is not running")?;
        settle(source)?;
        reset_peak_rss(pid);
        let (cpu_before, _) = proc_usage(pid).context("reading the agent's usage")?;
        let server_before = server_cpu();
        let steal_before = machine_steal();
        let started = Instant::now();
        let job = self
            .client
            .plan_migration(pb::PlanMigrationRequest {
                dataset: dataset.into(),
                destination_site: to.into(),
                verify_mode: verify.into(),
                idempotency_key: format!("bench-{dataset}-{to}"),
                ..Default::default()
            })
            .await?
            .job
            .context("a planned job")?;
        let done = loop {
            let j = self.client.get_job(&job.id).await?;
            if matches!(
                pb::JobState::try_from(j.state),
                Ok(pb::JobState::Completed | pb::JobState::Failed | pb::JobState::Cancelled)
            ) {
                break j;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let seconds = started.elapsed().as_secs_f64();
        if done.state != pb::JobState::Completed as i32 {
            bail!(
                "job {} of {dataset} did not complete: {}",
                job.id,
                done.error
            );
        }
        let (cpu_after, peak_rss_kib) = proc_usage(pid).context("reading the agent's usage")?;
        Ok(Run {
            seconds,
            cpu_seconds: cpu_after - cpu_before,
            peak_rss_kib,
            server_cpu_seconds: server_cpu() - server_before,
            steal_seconds: machine_steal() - steal_before,
        })
    }

    fn rclone(
        &self,
        from: &str,
        to: &str,
        extra: &[&str],
        source: &[PathBuf],
    ) -> anyhow::Result<Run> {
        settle(source)?;
        let server_before = server_cpu();
        let steal_before = machine_steal();
        let started = Instant::now();
        let mut command = Command::new("rclone");
        command.args(["copy", from, to]).args(extra);
        // FERRY_BENCH_RCLONE_LOG=FILE keeps rclone's debug log, to see what it did.
        if let Some(log) = std::env::var_os("FERRY_BENCH_RCLONE_LOG") {
            command.arg("-vv").arg("--log-file").arg(log);
        }
        let mut child = command
            .env("RCLONE_CONFIG_BENCH_TYPE", "s3")
            .env("RCLONE_CONFIG_BENCH_PROVIDER", "Other")
            .env("RCLONE_CONFIG_BENCH_ENDPOINT", self.s3.endpoint())
            .env("RCLONE_CONFIG_BENCH_REGION", self.s3.region())
            .env("RCLONE_CONFIG_BENCH_ACCESS_KEY_ID", self.s3.access_key())
            .env(
                "RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY",
                self.s3.secret_key(),
            )
            .env("RCLONE_CONFIG_BENCH_FORCE_PATH_STYLE", "true")
            // rclone 1.60 fails against a plain-HTTP endpoint with this set.
            .env_remove("AWS_CA_BUNDLE")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting rclone")?;
        let pid = child.id();
        let mut last = (0.0, 0);
        let status = loop {
            if let Some(usage) = proc_usage(pid) {
                last = usage;
            }
            if let Some(status) = child.try_wait()? {
                break status;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let seconds = started.elapsed().as_secs_f64();
        if !status.success() {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut e, &mut err);
            }
            bail!("rclone copy {from} {to} failed: {err}");
        }
        Ok(Run {
            seconds,
            cpu_seconds: last.0,
            peak_rss_kib: last.1,
            server_cpu_seconds: server_cpu() - server_before,
            steal_seconds: machine_steal() - steal_before,
        })
    }
}

impl Bench {
    /// One round of a generated `workload` (`w1`, `w2`) from files to S3, each of
    /// `contenders` in this round's turn: Ferry through the agent of its variant's site,
    /// each run from its own hard-linked copy of the files (a dataset's path is its own),
    /// and rclone.
    async fn files_to_s3(
        &self,
        workload: &str,
        round: usize,
        agents: &HashMap<&str, &Agent>,
        contenders: Vec<Contender>,
        results: &mut Results,
    ) -> anyhow::Result<()> {
        let label = workload.to_uppercase();
        for contender in in_turn(contenders, round) {
            match contender {
                Contender::Ferry(variant) => {
                    let name = format!("{workload}-{}-{round}", variant.name);
                    link_tree(&self.gen.join(workload), &self.src.join(&name))?;
                    self.client
                        .create_dataset(pb::Dataset {
                            name: name.clone(),
                            site: variant.site.into(),
                            path: name.clone(),
                            ..Default::default()
                        })
                        .await?;
                    let agent = agents
                        .get(variant.site)
                        .with_context(|| format!("no agent for site {}", variant.site))?;
                    let source = [self.gen.join(workload)];
                    let run = self
                        .ferry(agent, &name, "s3", variant.verify, &source)
                        .await?;
                    results.add(&format!("{label} ferry {}", variant.name), round, run);
                }
                Contender::Rclone(variant, flags) => {
                    let from = self.gen.join(workload).display().to_string();
                    let to = format!("bench:rclone/{workload}-{variant}-{round}");
                    let run = self.rclone(&from, &to, flags, &[self.gen.join(workload)])?;
                    results.add(&format!("{label} rclone {variant}"), round, run);
                }
            }
        }
        Ok(())
    }
}

/// One tool and setting a workload runs with.
#[derive(Clone, Copy)]
enum Contender {
    Ferry(FerryVariant),
    Rclone(&'static str, &'static [&'static str]),
}

/// Ferry with each of `ferry`, then rclone with each of `rclone`.
fn contenders(ferry: &[FerryVariant], rclone: &[RcloneVariant]) -> Vec<Contender> {
    let ferry = ferry.iter().map(|&variant| Contender::Ferry(variant));
    let rclone = rclone
        .iter()
        .map(|&(variant, flags)| Contender::Rclone(variant, flags));
    ferry.chain(rclone).collect()
}

/// The contenders in the order they run in `round` (from 1): each round starts one
/// further along, so that no tool always runs first, right after the previous round's
/// clean-up and W2's deleted part files (which slow the creation of new files on this
/// file system for a minute or more), or always last.
fn in_turn<T>(mut contenders: Vec<T>, round: usize) -> Vec<T> {
    if !contenders.is_empty() {
        let by = (round.saturating_sub(1)) % contenders.len();
        contenders.rotate_left(by);
    }
    contenders
}

/// Ferry's destination, W3's destination, and rclone's destination.
const BUCKETS: [&str; 3] = ["bench", "bench-copy", "rclone"];

/// A way to run Ferry: its name in the results (and in dataset names), the verify
/// mode, and the file-system site whose agent runs it.
#[derive(Clone, Copy)]
struct FerryVariant {
    name: &'static str,
    verify: pb::VerifyMode,
    site: &'static str,
}

/// The agent of the `local` site runs with its defaults.
const MODES: [FerryVariant; 2] = [
    FerryVariant {
        name: "quick",
        verify: pb::VerifyMode::Quick,
        site: "local",
    },
    FerryVariant {
        name: "full",
        verify: pb::VerifyMode::Full,
        site: "local",
    },
];

/// The agent of `local-200`, on the same directory, sends objects to S3 in one request
/// up to 200 MiB (`multipart_threshold_mib`), as rclone does by default.
const CUTOFF_SITE: &str = "local-200";

/// W2's: both modes, and quick with one request up to 200 MiB, the like-for-like
/// comparison with rclone's single PUTs.
const W2_MODES: [FerryVariant; 3] = [
    MODES[0],
    MODES[1],
    FerryVariant {
        name: "quick-200",
        verify: pb::VerifyMode::Quick,
        site: CUTOFF_SITE,
    },
];

/// A name for a way to run rclone, and its flags.
type RcloneVariant = (&'static str, &'static [&'static str]);

/// rclone's default flags, and the ones tuned for many small files.
const RCLONE_VARIANTS: [RcloneVariant; 2] = [
    ("default", &[]),
    ("--transfers 32", &["--transfers", "32", "--checkers", "32"]),
];

/// W2's rclone variants: both of the above, which send each file below rclone's 200 MiB
/// cutoff in one PUT, and rclone sending what Ferry sends, multipart uploads of 8 MiB
/// parts. On s3s-fs, which writes every byte of a multipart upload twice, the request
/// shape decides much of the run, so the third is the like-for-like comparison.
const RCLONE_W2_VARIANTS: [RcloneVariant; 3] = [
    RCLONE_VARIANTS[0],
    RCLONE_VARIANTS[1],
    (
        "multipart 8 MiB",
        &["--s3-upload-cutoff", "8M", "--s3-chunk-size", "8M"],
    ),
];

/// W3's: rclone's default flags, with which it copies server-side on one endpoint.
const RCLONE_W3_VARIANTS: [RcloneVariant; 1] = [("server-side", &[])];

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    }
}

/// Runs of one workload, by contender.
struct Results {
    objects: usize,
    bytes: u64,
    runs: BTreeMap<String, Vec<Run>>,
}

impl Results {
    fn new(objects: usize, bytes: u64) -> Self {
        Results {
            objects,
            bytes,
            runs: BTreeMap::new(),
        }
    }

    fn add(&mut self, who: &str, round: usize, run: Run) {
        let (objects, bytes) = (self.objects, self.bytes);
        println!(
            "  round {round}  {who:<26} {:>7.2} s {:>9.0} obj/s {:>8.1} MB/s {:>7.2} cpu s {:>6} MiB peak {:>6.2} server cpu s {:>5.2} steal s",
            run.seconds,
            objects as f64 / run.seconds,
            bytes as f64 / 1e6 / run.seconds,
            run.cpu_seconds,
            run.peak_rss_kib / 1024,
            run.server_cpu_seconds,
            run.steal_seconds
        );
        self.runs.entry(who.to_owned()).or_default().push(run);
    }

    fn median_seconds(&self, who: &str) -> Option<f64> {
        self.runs
            .get(who)
            .map(|r| median(r.iter().map(|x| x.seconds).collect()))
    }

    fn summary(&self, name: &str) {
        let (objects, bytes) = (self.objects, self.bytes);
        println!("{name}: medians");
        for (who, runs) in &self.runs {
            let s = median(runs.iter().map(|r| r.seconds).collect());
            let cpu = median(runs.iter().map(|r| r.cpu_seconds).collect());
            let rss = peak_rss_kib(runs).unwrap_or(0);
            let server = median(runs.iter().map(|r| r.server_cpu_seconds).collect());
            println!(
                "  {who:<26} {s:>7.2} s {:>9.0} obj/s {:>8.1} MB/s {cpu:>7.2} cpu s {:>6} MiB peak {server:>6.2} server cpu s",
                objects as f64 / s,
                bytes as f64 / 1e6 / s,
                rss / 1024
            );
        }
    }

    /// How many times faster `a` is than `b`, by median time.
    fn speedup(&self, a: &str, b: &str) -> Option<f64> {
        Some(self.median_seconds(b)? / self.median_seconds(a)?)
    }

    fn ratio(&self, a: &str, b: &str) {
        if let Some(x) = self.speedup(a, b) {
            println!("  {a} vs {b}: {x:.2}× the speed");
        }
    }

    /// The highest peak RSS of `who`'s runs, in MiB.
    fn peak_rss_mib(&self, who: &str) -> Option<f64> {
        Some(peak_rss_kib(self.runs.get(who)?)? as f64 / 1024.0)
    }
}

/// The highest peak RSS of `runs`, in KiB.
fn peak_rss_kib(runs: &[Run]) -> Option<u64> {
    runs.iter().map(|r| r.peak_rss_kib).max()
}

/// One of the targets, judged on this run's medians; nothing when its runs did
/// not happen (rclone missing, or the workload left out).
fn target(what: &str, reached: Option<f64>, unit: &str, met: impl Fn(f64) -> bool) {
    if let Some(x) = reached {
        let verdict = if met(x) { "met" } else { "NOT met" };
        println!("  {what:<50} {x:>7.2}{unit:<5} {verdict}");
    }
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
    if !args.only_w2 {
        println!("generating W1 ({} × 64 KiB)…", args.w1_files);
        generate(&gen.join("w1"), args.w1_files, 64 * 1024, 1)?;
    }
    if !args.skip_w2 {
        println!("generating W2 ({} × {} MiB)…", args.w2_files, args.w2_mib);
        generate(&gen.join("w2"), args.w2_files, w2_size, 1_000_000)?;
    }

    let s3 = S3Server::start().await;
    for bucket in BUCKETS {
        s3.create_bucket(bucket).await;
    }
    let nats = NatsServer::start().await;
    let cp = ControlPlane::start_with(Options {
        nats_url: Some(nats.url()),
        extra_env: vec![("FERRY_LOG__FILTER".into(), "warn".into())],
        ..Default::default()
    })
    .await;
    let client = Client::connect(&cp.endpoint()).await?;
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
    for (name, bucket) in [("s3", "bench"), ("s3-copy", "bench-copy")] {
        let (site, credentials) = s3.site(name, bucket, pb::Tier::Cold);
        client.create_site(site, credentials).await?;
    }
    let concurrency = args.agent_concurrency.map(|c| c.to_string());
    // FERRY_BENCH_LOG_DIR=DIR keeps the agents' and the control plane's logs there, the
    // agents' at level info, to see where a run spends its time.
    let log_dir = std::env::var_os("FERRY_BENCH_LOG_DIR").map(PathBuf::from);
    let agent_filter = if log_dir.is_some() { "info" } else { "warn" };
    let mut agent_env = vec![("FERRY_AGENT_LOG__FILTER", agent_filter)];
    if let Some(c) = &concurrency {
        agent_env.push(("FERRY_AGENT_CONCURRENCY", c));
    }
    let local_agent = Agent::start(&cp.endpoint(), &nats.url(), "local", &agent_env).await;
    let s3_agent = Agent::start(&cp.endpoint(), &nats.url(), "s3", &agent_env).await;
    let mut cutoff_env = agent_env.clone();
    cutoff_env.push(("FERRY_AGENT_MULTIPART_THRESHOLD_MIB", "200"));
    let cutoff_agent = Agent::start(&cp.endpoint(), &nats.url(), CUTOFF_SITE, &cutoff_env).await;
    let file_agents = HashMap::from([("local", &local_agent), (CUTOFF_SITE, &cutoff_agent)]);
    let bench = Bench {
        client,
        s3,
        gen,
        src,
    };

    // What rclone runs each workload with; nothing without rclone.
    let (w1_rclone, w2_rclone, w3_rclone): (&[RcloneVariant], &[RcloneVariant], &[RcloneVariant]) =
        if rclone {
            (&RCLONE_VARIANTS, &RCLONE_W2_VARIANTS, &RCLONE_W3_VARIANTS)
        } else {
            (&[], &[], &[])
        };
    let mut w1 = Results::new(args.w1_files, w1_bytes);
    let mut w2 = Results::new(args.w2_files, w2_bytes);
    let mut w3 = Results::new(args.w1_files, w1_bytes);
    let measured: anyhow::Result<()> = async {
        for round in 1..=args.rounds {
            println!("round {round}");
            if !args.only_w2 {
                // W1: many small files to S3.
                bench
                    .files_to_s3(
                        "w1",
                        round,
                        &file_agents,
                        contenders(&MODES, w1_rclone),
                        &mut w1,
                    )
                    .await?;
                // W3: the W1 set, bucket to bucket on one endpoint.
                for contender in in_turn(contenders(&MODES, w3_rclone), round) {
                    match contender {
                        Contender::Ferry(FerryVariant {
                            name: mode, verify, ..
                        }) => {
                            let name = format!("w1-{mode}-{round}");
                            let source =
                                in_bucket(bench.s3.root(), &format!("bench/ferry/{name}"))?;
                            let run = bench
                                .ferry(&s3_agent, &name, "s3-copy", verify, &source)
                                .await?;
                            w3.add(&format!("W3 ferry {mode}"), round, run);
                        }
                        Contender::Rclone(variant, flags) => {
                            let from = format!("bench/ferry/w1-quick-{round}");
                            let run = bench.rclone(
                                &format!("bench:{from}"),
                                &format!("bench:rclone/w3-{round}"),
                                flags,
                                &in_bucket(bench.s3.root(), &from)?,
                            )?;
                            w3.add(&format!("W3 rclone {variant}"), round, run);
                        }
                    }
                }
            }
            // W2: a few large files to S3.
            if !args.skip_w2 {
                bench
                    .files_to_s3(
                        "w2",
                        round,
                        &file_agents,
                        contenders(&W2_MODES, w2_rclone),
                        &mut w2,
                    )
                    .await?;
            }
            empty_buckets(bench.s3.root(), &BUCKETS, round)?;
        }

        Ok(())
    }
    .await;
    if let Some(dir) = &log_dir {
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join("agent-local.log"), local_agent.log())?;
        std::fs::write(dir.join("agent-s3.log"), s3_agent.log())?;
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
        return Err(e);
    }

    println!();
    if !args.only_w2 {
        w1.summary(&format!("W1 ({} × 64 KiB, file → s3)", args.w1_files));
        w1.ratio("W1 ferry quick", "W1 rclone default");
        w1.ratio("W1 ferry quick", "W1 rclone --transfers 32");
        w1.ratio("W1 ferry quick", "W1 ferry full");
    }
    if !args.skip_w2 {
        w2.summary(&format!(
            "W2 ({} × {} MiB, file → s3)",
            args.w2_files, args.w2_mib
        ));
        w2.ratio("W2 ferry quick", "W2 rclone default");
        w2.ratio("W2 ferry quick", "W2 rclone --transfers 32");
        w2.ratio("W2 ferry quick", "W2 rclone multipart 8 MiB");
        w2.ratio("W2 ferry quick", "W2 ferry full");
        w2.ratio("W2 ferry quick-200", "W2 rclone default");
        w2.ratio("W2 ferry quick-200", "W2 rclone --transfers 32");
    }
    if !args.only_w2 {
        w3.summary(&format!(
            "W3 ({} × 64 KiB, s3 → s3, one endpoint)",
            args.w1_files
        ));
        w3.ratio("W3 ferry quick", "W3 rclone server-side");
        w3.ratio("W3 ferry quick", "W3 ferry full");
    }

    println!();
    println!("targets, on this run's medians (set for a release build and the default workloads):");
    if !args.only_w2 {
        let vs_default = w1.speedup("W1 ferry quick", "W1 rclone default");
        target("W1 quick ≥ 1.5× rclone default", vs_default, "×", |x| {
            x >= 1.5
        });
        let vs_32 = w1.speedup("W1 ferry quick", "W1 rclone --transfers 32");
        target(
            "W1 quick ≥ 1.2× rclone --transfers 32",
            vs_32,
            "×",
            |x| x >= 1.2,
        );
    }
    if !args.skip_w2 {
        // Against the faster of rclone's two variants: the smaller of the speed-ups.
        let vs_faster = |ferry: &str| {
            ["W2 rclone default", "W2 rclone --transfers 32"]
                .iter()
                .filter_map(|r| w2.speedup(ferry, r))
                .reduce(f64::min)
        };
        target(
            "W2 quick ≥ 1.2× the faster rclone variant",
            vs_faster("W2 ferry quick"),
            "×",
            |x| x >= 1.2,
        );
        target(
            "  the same, one request up to 200 MiB as rclone",
            vs_faster("W2 ferry quick-200"),
            "×",
            |x| x >= 1.2,
        );
    }
    if !args.only_w2 {
        let vs_server_side = w3.speedup("W3 ferry quick", "W3 rclone server-side");
        target(
            "W3 quick faster than rclone server-side",
            vs_server_side,
            "×",
            |x| x > 1.0,
        );
    }
    for (name, results, skipped) in [
        ("W1", &w1, args.only_w2),
        ("W2", &w2, args.skip_w2),
        ("W3", &w3, args.only_w2),
    ] {
        if !skipped {
            let full_time = results.speedup(
                &format!("{name} ferry quick"),
                &format!("{name} ferry full"),
            );
            target(
                &format!("{name} full ≤ 1.6× the time of quick"),
                full_time,
                "×",
                |x| x <= 1.6,
            );
        }
    }
    if !args.skip_w2 {
        let peak = ["W2 ferry quick", "W2 ferry full", "W2 ferry quick-200"]
            .iter()
            .filter_map(|who| w2.peak_rss_mib(who))
            .reduce(f64::max);
        target("agent peak RSS on W2 < 256 MiB", peak, " MiB", |x| {
            x < 256.0
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::in_turn;

    #[test]
    fn each_round_starts_one_contender_further_along() {
        assert_eq!(in_turn(vec!['a', 'b', 'c'], 1), ['a', 'b', 'c']);
        assert_eq!(in_turn(vec!['a', 'b', 'c'], 2), ['b', 'c', 'a']);
        assert_eq!(in_turn(vec!['a', 'b', 'c'], 4), ['a', 'b', 'c']);
        assert!(in_turn(Vec::<char>::new(), 3).is_empty());
    }
}
