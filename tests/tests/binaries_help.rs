//! Every binary the workspace builds answers `--help` with a usage text and exit code 0,
//! as an operator trying a command for the first time expects.

use std::process::Command;

use ferry_tests::binaries;

const BINARIES: &[&str] = &[
    "ferry",
    "ferry-control-plane",
    "ferry-agent",
    "ferry-bench-console",
    "ferry-bench-events",
    "ferry-bench-transfer",
];

#[test]
fn every_binary_answers_help() {
    let mut failures = Vec::new();
    for name in BINARIES {
        let output = match Command::new(binaries::path(name)).arg("--help").output() {
            Ok(output) => output,
            Err(e) => {
                failures.push(format!("{name} --help: could not run it: {e}"));
                continue;
            }
        };
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        if !output.status.success() || !stdout.contains("Usage") {
            failures.push(format!(
                "{name} --help exited with {} and printed no usage text\n\
                 stdout:\n{stdout}\nstderr:\n{stderr}",
                output.status
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
