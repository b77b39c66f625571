//! A private Garage S3 server (`garage server`, a separate process) for the transfer
//! benchmark: its own ports, metadata and data directories, a one-node layout, one
//! access key and the buckets the caller asks for.
//!
//! Garage is AGPL-licensed: it is only ever run as an installed binary
//! (`cargo install garage --root ~/.cache/ferry/tools/garage`, or the path in
//! `FERRY_BENCH_GARAGE`), never linked into Ferry or shipped with it. Unlike the
//! in-process s3s-fs server ([`crate::S3Server`]) it stores objects as content-addressed
//! 1 MiB blocks with a metadata database, assembles a multipart upload without copying
//! its parts, and streams a GET from its blocks: a server built for the job, on which
//! the request shape of a client and a second read of every object cost what they cost
//! a real store.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    sync::{Mutex, PoisonError},
    time::{Duration, Instant},
};

use anyhow::{bail, Context};

use crate::free_port;

/// The region Garage is configured with; requests must be signed for it.
pub const REGION: &str = "garage";
/// The access key imported at start-up. Garage accepts any id of 8 or more
/// alphanumeric characters; this one has the shape of the ids it generates.
pub const ACCESS_KEY: &str = "GK0f1e2d3c4b5a69788796a5b4";
/// The secret that goes with [`ACCESS_KEY`].
pub const SECRET_KEY: &str = "5c0ffee5eed0f3e2a1b0c9d8e7f6a5b4c3d2e1f00112233445566778899aabbc";
/// The name of that key in Garage.
const KEY_NAME: &str = "bench";
/// Secret shared by the nodes of a cluster (here one): 32 bytes, hex.
const RPC_SECRET: &str = "9d2c1f0e3b4a59687766554433221100ffeeddccbbaa99887766554433221100";
/// How long start-up and each administrative step may take.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// A running `garage server`, killed when dropped, its directories removed with it.
pub struct GarageServer {
    /// Behind a lock so that every step, `&self` ones included, can tell whether the
    /// server has exited and fail with its log instead of waiting out the timeout.
    child: Mutex<Option<Child>>,
    binary: PathBuf,
    config: PathBuf,
    s3_port: u16,
    data_dir: PathBuf,
    metadata_dir: PathBuf,
    log_path: PathBuf,
    _temp: tempfile::TempDir,
}

/// The Garage binary: `$FERRY_BENCH_GARAGE`, else where the documented `cargo install`
/// puts it.
pub fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("FERRY_BENCH_GARAGE") {
        return PathBuf::from(path);
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("/root"), PathBuf::from);
    home.join(".cache/ferry/tools/garage/bin/garage")
}

impl GarageServer {
    /// Starts Garage on free loopback ports with a one-node layout and the benchmark's
    /// key, and returns once its S3 API answers. Fails with the install command when the
    /// binary is missing, and with Garage's log when it does not come up.
    pub async fn start() -> anyhow::Result<GarageServer> {
        let binary = binary();
        if !binary.is_file() {
            bail!(
                "garage is not installed at {}: install it with `cargo install garage@2.5.0 \
                 --locked --root ~/.cache/ferry/tools/garage`, or point FERRY_BENCH_GARAGE \
                 at the binary",
                binary.display()
            );
        }
        let temp = tempfile::tempdir().context("temp dir for garage")?;
        let s3_port = free_port();
        let rpc_port = free_port();
        let data_dir = temp.path().join("data");
        let metadata_dir = temp.path().join("meta");
        let config = temp.path().join("garage.toml");
        std::fs::write(
            &config,
            config_file(&metadata_dir, &data_dir, rpc_port, s3_port),
        )
        .context("writing garage.toml")?;
        let log_path = temp.path().join("garage.log");
        let log = std::fs::File::create(&log_path).context("creating garage's log")?;
        let child = Command::new(&binary)
            .arg("-c")
            .arg(&config)
            .arg("server")
            .env("RUST_LOG", "garage=warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let server = GarageServer {
            child: Mutex::new(Some(child)),
            binary,
            config,
            s3_port,
            data_dir,
            metadata_dir,
            log_path,
            _temp: temp,
        };
        server.set_up().await?;
        Ok(server)
    }

    /// Waits for the node, gives it the whole (one-node) layout and imports the key.
    async fn set_up(&self) -> anyhow::Result<()> {
        // The node's key is written as the server starts, before it answers RPC.
        let node = self.retry("garage node id", &["node", "id", "-q"]).await?;
        // `<64 hex digits>@<address>`: the layout takes the id alone.
        let node = node.split('@').next().unwrap_or_default().trim().to_owned();
        let assign = ["layout", "assign", "-z", "dc1", "-c", "10G", &node];
        self.retry("assigning the layout", &assign).await?;
        self.run(&["layout", "apply", "--version", "1"])?;
        self.run(&[
            "key", "import", "--yes", "-n", KEY_NAME, ACCESS_KEY, SECRET_KEY,
        ])?;
        let deadline = Instant::now() + READY_TIMEOUT;
        while tokio::net::TcpStream::connect(("127.0.0.1", self.s3_port))
            .await
            .is_err()
        {
            self.check_running()?;
            if Instant::now() > deadline {
                bail!(
                    "garage's S3 API not listening after {READY_TIMEOUT:?}:\n{}",
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }

    /// Creates `name` and lets the benchmark's key read, write and own it. Retried
    /// while the fresh layout settles (Garage refuses writes until it has).
    pub async fn create_bucket(&self, name: &str) -> anyhow::Result<()> {
        self.retry(
            &format!("creating bucket {name}"),
            &["bucket", "create", name],
        )
        .await?;
        self.run(&[
            "bucket", "allow", "--read", "--write", "--owner", name, "--key", KEY_NAME,
        ])?;
        Ok(())
    }

    /// A Ferry site on `bucket` (under the prefix `ferry`, as [`crate::S3Server::site`]),
    /// path-style as Garage needs without a root domain, with the key's credentials.
    pub fn site(
        &self,
        name: &str,
        bucket: &str,
        tier: ferry_proto::v1::Tier,
    ) -> (ferry_proto::v1::Site, HashMap<String, String>) {
        crate::s3::path_style_site(
            name,
            bucket,
            tier,
            &self.endpoint(),
            REGION,
            (ACCESS_KEY, SECRET_KEY),
        )
    }

    /// `http://127.0.0.1:PORT`, the S3 endpoint for path-style requests.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.s3_port)
    }

    pub fn region(&self) -> &str {
        REGION
    }

    pub fn access_key(&self) -> &str {
        ACCESS_KEY
    }

    pub fn secret_key(&self) -> &str {
        SECRET_KEY
    }

    /// The server's process id, to read its CPU time from /proc.
    pub fn pid(&self) -> Option<u32> {
        self.child().as_ref().map(Child::id)
    }

    /// Where Garage keeps object data: 1 MiB blocks (and smaller objects' single
    /// blocks) named by their hash, shared by every object that holds the same bytes.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Where Garage keeps its metadata database (LMDB).
    pub fn metadata_dir(&self) -> &Path {
        &self.metadata_dir
    }

    /// What Garage has logged (warnings and errors).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    fn child(&self) -> std::sync::MutexGuard<'_, Option<Child>> {
        self.child.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `garage -c CONFIG args…`, failing with its output unless it succeeds.
    fn run(&self, args: &[&str]) -> anyhow::Result<String> {
        let output = self.command(args)?;
        if !output.status.success() {
            bail!(
                "garage {} failed: {}{}",
                args.join(" "),
                String::from_utf8_lossy(&output.stderr),
                String::from_utf8_lossy(&output.stdout)
            );
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// [`Self::run`] until it succeeds, for the steps that wait on the node being up
    /// and its layout applied.
    async fn retry(&self, what: &str, args: &[&str]) -> anyhow::Result<String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            self.check_running()?;
            match self.run(args) {
                Ok(out) => return Ok(out),
                Err(e) if Instant::now() > deadline => {
                    return Err(e.context(format!("{what}, for {READY_TIMEOUT:?}")));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }

    fn command(&self, args: &[&str]) -> anyhow::Result<Output> {
        Command::new(&self.binary)
            .arg("-c")
            .arg(&self.config)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("running garage {}", args.join(" ")))
    }

    /// Fails with the log if the server has exited.
    fn check_running(&self) -> anyhow::Result<()> {
        if let Some(status) = crate::exit_status(&mut self.child()) {
            bail!("garage exited with {status}:\n{}", self.log());
        }
        Ok(())
    }
}

impl Drop for GarageServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child().take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Garage's configuration: one node, no replication, no fsync (Garage's defaults, as
/// s3s-fs does not sync either), and no compression: the benchmark's data is
/// pseudo-random, so zstd would only spend the cores the clients share with the server.
fn config_file(metadata_dir: &Path, data_dir: &Path, rpc_port: u16, s3_port: u16) -> String {
    format!(
        r#"metadata_dir = "{meta}"
data_dir = "{data}"
db_engine = "lmdb"
replication_factor = 1
compression_level = "none"

rpc_bind_addr = "127.0.0.1:{rpc_port}"
rpc_public_addr = "127.0.0.1:{rpc_port}"
rpc_secret = "{RPC_SECRET}"

[s3_api]
s3_region = "{REGION}"
api_bind_addr = "127.0.0.1:{s3_port}"
"#,
        meta = metadata_dir.display(),
        data = data_dir.display(),
    )
}
