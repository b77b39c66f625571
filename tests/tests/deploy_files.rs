//! The deployment files, checked offline with the tools that judge them: the systemd
//! units parse without a warning (`systemd-analyze verify`) and their sandboxing rates
//! "OK" (`systemd-analyze security --offline`, exposure at most 2.0 of 10); the compose
//! file passes `docker-compose config`; the Dockerfile builds in one stage and runs
//! unprivileged from another.
//!
//! `systemd-analyze` and `docker-compose` come from Debian's `systemd` and
//! `docker-compose` packages (`deploy/test.sh` installs them) or
//! `FERRY_TEST_SYSTEMD_ANALYZE` / `FERRY_TEST_DOCKER_COMPOSE`; without them the tests
//! fail, saying so.

#![allow(clippy::unwrap_used)]

use std::{
    path::{Path, PathBuf},
    process::Command,
};

/// Exposure (×10) a unit may reach: 2.0 of 10, systemd's "OK" band.
const MAX_EXPOSURE: &str = "20";

fn systemd_analyze() -> PathBuf {
    ferry_tests::tools::debian_program(
        "systemd-analyze",
        "systemd",
        "FERRY_TEST_SYSTEMD_ANALYZE",
        &["/usr/bin/systemd-analyze", "/bin/systemd-analyze"],
    )
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

fn deploy(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy")
        .join(path)
}

/// `docker-compose config` on `file`: its normalised form, or what it refused.
fn compose_config(file: &Path, args: &[&str]) -> Result<String, String> {
    let out = Command::new(ferry_tests::tools::docker_compose())
        .arg("-f")
        .arg(file)
        .arg("config")
        .args(args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if out.status.success() && stderr.trim().is_empty() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!("{}: {stderr}", out.status))
    }
}

/// No image can be pulled or built here (no registry is reachable), so the compose file
/// is checked as far as `docker-compose config` goes: its schema, references and
/// dependency conditions; and the Dockerfile by what it must say.
#[test]
fn the_compose_file_validates_and_the_image_runs_unprivileged() {
    let compose = deploy("docker/compose.yaml");
    let normalised = compose_config(&compose, &[]).unwrap_or_else(|e| panic!("{e}"));
    let services = compose_config(&compose, &["--services"]).unwrap();
    let mut services: Vec<&str> = services.lines().collect();
    services.sort_unstable();
    assert_eq!(
        services,
        [
            "agent-archive",
            "agent-fast",
            "control-plane",
            "grafana",
            "nats",
            "postgres",
            "prometheus",
            "setup"
        ]
    );
    // Every long-running service has a health check; the one-shot set-up does not.
    assert_eq!(
        normalised.matches("healthcheck:").count(),
        7,
        "{normalised}"
    );
    assert!(normalised.contains("condition: service_completed_successfully"));
    assert!(
        normalised.contains("- -js"),
        "nats-server runs with JetStream"
    );

    // The check can fail: an unknown dependency condition is refused.
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("compose.yaml");
    let text = std::fs::read_to_string(&compose).unwrap();
    std::fs::write(
        &broken,
        text.replace("service_completed_successfully", "service_finished"),
    )
    .unwrap();
    let e = compose_config(&broken, &["-q"]).unwrap_err();
    assert!(e.contains("service_finished"), "{e}");

    let dockerfile = std::fs::read_to_string(deploy("docker/Dockerfile")).unwrap();
    let stages = dockerfile
        .lines()
        .filter(|l| l.starts_with("FROM "))
        .count();
    assert_eq!(stages, 2, "a build stage and a runtime stage");
    let user = dockerfile
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("USER "))
        .unwrap_or_else(|| panic!("the runtime stage names its user"));
    assert!(
        !user.starts_with('0') && !user.starts_with("root"),
        "{user}"
    );
    assert!(dockerfile.lines().any(|l| l.starts_with("HEALTHCHECK ")));
}

fn kubernetes_validate() -> PathBuf {
    if let Some(path) = std::env::var_os("FERRY_TEST_KUBERNETES_VALIDATE") {
        return PathBuf::from(path);
    }
    let venv = std::env::var_os("HOME")
        .map(|h| PathBuf::from(h).join(".cache/ferry/kubeval/bin/kubernetes-validate"));
    venv.filter(|p| p.exists()).unwrap_or_else(|| {
        panic!(
            "kubernetes-validate not found: deploy/test.sh installs it (PyPI \
             kubernetes-validate, in a virtualenv at ~/.cache/ferry/kubeval), or point \
             FERRY_TEST_KUBERNETES_VALIDATE at it"
        )
    })
}

/// `kubernetes-validate --strict` against Kubernetes 1.30's schemas: silent success,
/// or what it refused.
fn kube_validate(file: &Path) -> Result<(), String> {
    let out = Command::new(kubernetes_validate())
        .args(["--strict", "--quiet", "-k", "1.30.0"])
        .arg(file)
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() && said.trim().is_empty() {
        Ok(())
    } else {
        Err(format!("{}: {said}", out.status))
    }
}

#[test]
fn kubernetes_manifests_validate_against_the_schemas() {
    for file in [
        "kubernetes/control-plane.yaml",
        "kubernetes/agent-fast.yaml",
    ] {
        let path = deploy(file);
        kube_validate(&path).unwrap_or_else(|e| panic!("{file}: {e}"));
        let text = std::fs::read_to_string(&path).unwrap();
        for needed in [
            "runAsNonRoot: true",
            "allowPrivilegeEscalation: false",
            "readOnlyRootFilesystem: true",
            "resources:",
        ] {
            assert!(text.contains(needed), "{file}: {needed}");
        }
    }
    let control_plane = std::fs::read_to_string(deploy("kubernetes/control-plane.yaml")).unwrap();
    assert!(
        control_plane.contains("grpc: {port: 50051}"),
        "probes on gRPC health"
    );
    assert!(control_plane.contains("secretKeyRef: {name: ferry-control-plane, key: database-url}"));

    // The check can fail: a misspelt field is refused.
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("control-plane.yaml");
    std::fs::write(
        &broken,
        control_plane.replace("readinessProbe:", "readinesProbe:"),
    )
    .unwrap();
    let e = kube_validate(&broken).unwrap_err();
    assert!(e.contains("readinesProbe"), "{e}");

    // KEDA's ScaledObject is a custom resource the schemas do not hold: checked here
    // against what Ferry names, the stream its agents' consumer reads.
    let keda = std::fs::read_to_string(deploy("kubernetes/keda-agent-fast.yaml")).unwrap();
    assert!(keda.contains("kind: ScaledObject"));
    assert!(keda.contains("type: nats-jetstream"));
    assert!(keda.contains(&format!("stream: {}", ferry_proto::bus::JOBS_STREAM)));
    assert!(keda.contains(&format!(
        "consumer: {}",
        ferry_proto::bus::site_consumer("SITE_ID")
    )));
    assert!(keda.contains("name: ferry-agent-fast"));
}
