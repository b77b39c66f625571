//! The S3 servers the benchmark runs its S3 workloads against, and what each needs of
//! the benchmark: s3s-fs in this process, and Garage as a separate process.
//!
//! s3s-fs is the server the tests use, but two of its costs are its own: it completes a
//! multipart upload by reading every part back and writing it again, and it serves a
//! GET in 4 KiB reads through a blocking pool, so Ferry's default multipart uploads and
//! `full` verification's second read measure s3s-fs more than the client. Garage, a
//! store built for production, assembles an upload from its parts' blocks without a
//! copy and streams a GET from its blocks, so those two targets are judged on it.

use ferry_tests::garage::GarageServer;

use super::*;

/// Which servers `--server` asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum ServerChoice {
    /// The in-process s3s-fs server, as the test suite uses
    #[value(name = "s3s-fs")]
    S3sFs,
    /// Garage as a separate process (`FERRY_BENCH_GARAGE`, or
    /// ~/.cache/ferry/tools/garage/bin/garage)
    Garage,
    /// Each workload on s3s-fs, then on Garage, every round
    Both,
}

impl ServerChoice {
    pub(crate) fn kinds(self) -> &'static [ServerKind] {
        match self {
            ServerChoice::S3sFs => &[ServerKind::S3sFs],
            ServerChoice::Garage => &[ServerKind::Garage],
            ServerChoice::Both => &[ServerKind::S3sFs, ServerKind::Garage],
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ServerKind {
    S3sFs,
    Garage,
}

/// A running S3 server with the benchmark's buckets.
pub(crate) enum Server {
    S3sFs(S3Server),
    Garage(GarageServer),
}

impl Server {
    /// Starts a server of `kind` and creates [`BUCKETS`] on it.
    pub(crate) async fn start(kind: ServerKind) -> anyhow::Result<Server> {
        let server = match kind {
            ServerKind::S3sFs => Server::S3sFs(S3Server::start().await),
            ServerKind::Garage => Server::Garage(GarageServer::start().await?),
        };
        for bucket in BUCKETS {
            match &server {
                Server::S3sFs(s3) => s3.create_bucket(bucket).await,
                Server::Garage(garage) => garage.create_bucket(bucket).await?,
            }
        }
        Ok(server)
    }

    /// Its name in the results.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Server::S3sFs(_) => "s3s-fs",
            Server::Garage(_) => "garage",
        }
    }

    /// What the names of its sites and datasets start with. Empty for s3s-fs, so that
    /// its runs are named as before there was a second server.
    pub(crate) fn prefix(&self) -> &'static str {
        match self {
            Server::S3sFs(_) => "",
            Server::Garage(_) => "garage-",
        }
    }

    /// A Ferry site on `bucket`, under the prefix `ferry`.
    pub(crate) fn site(
        &self,
        name: &str,
        bucket: &str,
        tier: pb::Tier,
    ) -> (pb::Site, HashMap<String, String>) {
        match self {
            Server::S3sFs(s3) => s3.site(name, bucket, tier),
            Server::Garage(garage) => garage.site(name, bucket, tier),
        }
    }

    /// rclone's remote `bench:` on this server, as environment variables.
    pub(crate) fn rclone_env(&self) -> [(&'static str, String); 7] {
        let (endpoint, region, access_key, secret_key) = match self {
            Server::S3sFs(s3) => (s3.endpoint(), s3.region(), s3.access_key(), s3.secret_key()),
            Server::Garage(g) => (g.endpoint(), g.region(), g.access_key(), g.secret_key()),
        };
        [
            ("RCLONE_CONFIG_BENCH_TYPE", "s3".to_owned()),
            ("RCLONE_CONFIG_BENCH_PROVIDER", "Other".to_owned()),
            ("RCLONE_CONFIG_BENCH_ENDPOINT", endpoint),
            ("RCLONE_CONFIG_BENCH_REGION", region.to_owned()),
            ("RCLONE_CONFIG_BENCH_ACCESS_KEY_ID", access_key.to_owned()),
            (
                "RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY",
                secret_key.to_owned(),
            ),
            ("RCLONE_CONFIG_BENCH_FORCE_PATH_STYLE", "true".to_owned()),
        ]
    }

    /// CPU seconds the server has used: this process's for s3s-fs (its other work,
    /// polling the job or waiting for rclone, is a few milliseconds), Garage's process's
    /// otherwise.
    pub(crate) fn cpu_seconds(&self) -> f64 {
        let pid = match self {
            Server::S3sFs(_) => Some(std::process::id()),
            Server::Garage(garage) => garage.pid(),
        };
        pid.and_then(proc_usage).map_or(0.0, |(cpu, _)| cpu)
    }

    /// The files on the server's disk to read into the page cache before a run whose
    /// source is the objects below `prefix` (`bucket/key-prefix`). s3s-fs: the prefix's
    /// directory and the metadata files beside the buckets. Garage names its blocks by
    /// their hash, so which blocks hold the prefix's objects cannot be told from the
    /// disk: all of them, and the metadata database. Identical bytes share a block, so
    /// every copy of W1 (and of W2) is stored once and this stays about the size of the
    /// workloads.
    pub(crate) fn stored(&self, prefix: &str) -> anyhow::Result<Vec<PathBuf>> {
        match self {
            Server::S3sFs(s3) => in_bucket(s3.root(), prefix),
            Server::Garage(garage) => Ok(vec![
                garage.data_dir().to_path_buf(),
                garage.metadata_dir().to_path_buf(),
            ]),
        }
    }

    /// Empties the buckets between rounds where the server needs it: s3s-fs lists a
    /// prefix by walking its whole bucket (see [`empty_buckets`]). Garage lists a prefix
    /// by a range scan of its sorted object table, so earlier rounds' objects cost a
    /// listing nothing, and it keeps them: deleting them would hand its block GC work
    /// that runs in the background during the next round.
    pub(crate) fn empty_buckets(&self, round: usize) -> anyhow::Result<()> {
        match self {
            Server::S3sFs(s3) => empty_buckets(s3.root(), &BUCKETS, round),
            Server::Garage(_) => Ok(()),
        }
    }

    /// What the server logged, for a failed run (s3s-fs logs nothing of its own).
    pub(crate) fn log(&self) -> String {
        match self {
            Server::S3sFs(_) => String::new(),
            Server::Garage(garage) => garage.log(),
        }
    }
}
