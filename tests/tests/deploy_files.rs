//! The deployment files, checked offline with the tools that judge them: the systemd
//! units parse without a warning (`systemd-analyze verify`) and their sandboxing rates
//! "OK" (`systemd-analyze security --offline`, exposure at most 2.0 of 10).
//!
//! `systemd-analyze` comes from Debian's `systemd` package (`deploy/test.sh` installs it)
//! or `FERRY_TEST_SYSTEMD_ANALYZE`; without it the test fails, saying so.

#![allow(clippy::unwrap_used)]

use std::{
    path::{Path, PathBuf},
    process::Command,
};

/// Exposure (×10) a unit may reach: 2.0 of 10, systemd's "OK" band.
const MAX_EXPOSURE: &str = "20";

fn systemd_analyze() -> PathBuf {
    if let Some(path) = std::env::var_os("FERRY_TEST_SYSTEMD_ANALYZE") {
        return PathBuf::from(path);
    }
    ["/usr/bin/systemd-analyze", "/bin/systemd-analyze"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .unwrap_or_else(|| {
            panic!(
                "systemd-analyze not found: install Debian's systemd package (deploy/test.sh \
                 does) or point FERRY_TEST_SYSTEMD_ANALYZE at it"
            )
        })
}

/// The shipped unit, with `ExecStart` pointing at the binary this build made (verify
/// checks that the command exists), written into `dir` as `name`.
fn unit_copy(dir: &Path, shipped: &str, name: &str, binary: &str) -> PathBuf {
    let source = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy/systemd")
        .join(shipped);
    let text = std::fs::read_to_string(&source).unwrap();
    let installed = format!("/usr/local/bin/{binary}");
    assert!(text.contains(&installed), "{shipped} runs {installed}");
    let built = ferry_tests::binaries::path(binary);
    let path = dir.join(name);
    std::fs::write(
        &path,
        text.replace(&installed, &built.display().to_string()),
    )
    .unwrap();
    path
}

/// `systemd-analyze verify`: success and not a word on standard error (it warns about
/// unknown or malformed settings but still exits 0).
fn verify(unit: &Path) -> Result<(), String> {
    let out = Command::new(systemd_analyze())
        .arg("verify")
        .arg(unit)
        .current_dir(unit.parent().unwrap())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if out.status.success() && stderr.trim().is_empty() {
        Ok(())
    } else {
        Err(format!("{}: {}", out.status, stderr))
    }
}

#[test]
fn systemd_units_verify_cleanly_and_are_sandboxed() {
    let dir = tempfile::tempdir().unwrap();
    let units = [
        unit_copy(
            dir.path(),
            "ferry-control-plane.service",
            "ferry-control-plane.service",
            "ferry-control-plane",
        ),
        unit_copy(
            dir.path(),
            "ferry-agent.service",
            "ferry-agent@.service",
            "ferry-agent",
        ),
    ];
    for unit in &units {
        verify(unit).unwrap_or_else(|e| panic!("{}: {e}", unit.display()));
        let out = Command::new(systemd_analyze())
            .args(["security", "--offline=true", "--no-pager"])
            .arg(format!("--threshold={MAX_EXPOSURE}"))
            .arg(unit)
            .current_dir(dir.path())
            .output()
            .unwrap();
        let report = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}: exposure above 2.0:\n{}",
            unit.display(),
            report.lines().last().unwrap_or_default()
        );
        for directive in [
            "DynamicUser=yes",
            "NoNewPrivileges=yes",
            "ProtectSystem=strict",
        ] {
            let text = std::fs::read_to_string(unit).unwrap();
            assert!(
                text.lines().any(|l| l.trim() == directive),
                "{}: {directive}",
                unit.display()
            );
        }
    }

    // The check can fail: a misspelt setting is reported.
    let broken = dir.path().join("broken.service");
    let text = std::fs::read_to_string(&units[0]).unwrap();
    std::fs::write(
        &broken,
        text.replace("ProtectSystem=strict", "ProtectSystem=strickt"),
    )
    .unwrap();
    let e = verify(&broken).unwrap_err();
    assert!(e.contains("protect system value"), "{e}");
}
