//! Headless Chromium driving the console: a scenario is a Node script in
//! `tests/console-e2e/` that uses Playwright (npm `playwright-core`, pointed at the
//! Debian `chromium` package, since no browser can be downloaded here) and axe-core.
//! The test that runs it starts the real servers, passes what the script needs in the
//! environment, and checks the outcome again through the API afterwards.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

/// How long one scenario may take before it is killed and the test fails.
const SCENARIO_TIMEOUT: Duration = Duration::from_secs(240);

/// The Chromium to drive: `FERRY_TEST_CHROMIUM`, else the Debian package's. Panics with
/// what to install when there is none: a test that cannot find its browser fails.
pub fn chromium() -> PathBuf {
    if let Some(path) = std::env::var_os("FERRY_TEST_CHROMIUM") {
        return PathBuf::from(path);
    }
    let path = PathBuf::from("/usr/bin/chromium");
    assert!(
        path.is_file(),
        "Chromium not found at /usr/bin/chromium: install the Debian package `chromium` \
         (deploy/test.sh does), or point FERRY_TEST_CHROMIUM at a Chromium binary"
    );
    path
}

/// `tests/console-e2e/`, with its npm packages installed.
fn scripts_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("console-e2e");
    assert!(
        dir.join("node_modules/playwright-core").is_dir(),
        "{}/node_modules is missing: run `npm ci` there (deploy/test.sh does)",
        dir.display()
    );
    dir
}

/// Where scenarios keep their screenshots: `$CARGO_TARGET_DIR/console-screenshots`
/// (or `target/…`), one PNG per page they visit.
pub fn screenshots_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let dir = target.join("console-screenshots");
    std::fs::create_dir_all(&dir).expect("creating the screenshots directory");
    dir
}

/// Runs `tests/console-e2e/<script>` with `env` (plus `FERRY_E2E_CHROMIUM` and
/// `FERRY_E2E_SCREENSHOTS`) and returns its standard output. Panics with its output if
/// it fails or outlives [`SCENARIO_TIMEOUT`].
pub async fn run_scenario(script: &str, env: &[(&str, String)]) -> String {
    let dir = scripts_dir();
    let mut command = tokio::process::Command::new("node");
    command
        .arg(dir.join(script))
        .current_dir(&dir)
        .env("FERRY_E2E_CHROMIUM", chromium())
        .env("FERRY_E2E_SCREENSHOTS", screenshots_dir())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (key, value) in env {
        command.env(key, value);
    }
    let child = command
        .spawn()
        .expect("spawning node (Debian package nodejs)");
    let output = tokio::time::timeout(SCENARIO_TIMEOUT, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("{script} took more than {SCENARIO_TIMEOUT:?}"))
        .expect("waiting for node");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{script} failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        output.status
    );
    stdout
}
