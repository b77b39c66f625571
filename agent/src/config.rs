//! Agent configuration, layered like the control plane's: defaults < TOML file <
//! `FERRY_AGENT_…` environment (`__` for nested keys) < command-line flags, then one
//! `validate()` naming the first bad field.

use std::path::{Path, PathBuf};

use ferry_sdk::TlsFiles;
use figment::{
    providers::{Env, Format, Serialized, Toml},
    Figment,
};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// The site (name or id) this agent serves. Required.
    pub site: String,
    /// The control plane's gRPC endpoint.
    pub control_plane: String,
    /// The NATS server with JetStream that carries jobs and progress.
    pub nats_url: String,
    /// The agent's NATS user, when nats-server requires one: the user of its site,
    /// which may take only that site's tasks (`ferry nats-user --site SITE`).
    pub nats_user: Option<String>,
    /// That user's password (`FERRY_AGENT_NATS_PASSWORD`); never printed. Prefer
    /// `nats_password_file`.
    #[serde(default, skip_serializing)]
    pub nats_password: Option<SecretString>,
    /// A file whose first line is the NATS password (`FERRY_AGENT_NATS_PASSWORD_FILE`).
    pub nats_password_file: Option<PathBuf>,
    /// Holds the agent's id across restarts, so it resumes the jobs it held.
    pub state_dir: PathBuf,
    /// Objects copied or verified at once.
    pub concurrency: usize,
    /// MiB the agent's transfer buffers may hold at once, all objects together. Large
    /// objects wait for room, and fewer of their chunks go in parallel when the budget
    /// is small. At least 24 (three 8 MiB chunks).
    pub memory_budget_mib: u64,
    /// MiB: objects up to this size are read whole and go in one request; larger ones
    /// as multipart uploads of parts this size (and ranged reads of it). 5 to 5120, S3's
    /// limits for a part.
    pub part_size_mib: u64,
    /// MiB: objects to S3 larger than a part but not larger than this go in one request
    /// whose body streams from the source (no part-level resume); larger ones in parts.
    /// Unset: the part size. At least `part_size_mib`, at most 5120 (S3's limit for one
    /// request).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multipart_threshold_mib: Option<u64>,
    /// Tasks (job messages) this agent runs at once; their objects share `concurrency`
    /// and the memory budget. More than one lets a listing and copies overlap.
    pub task_slots: usize,
    /// A listing cuts a copy task after this many objects...
    pub task_objects: usize,
    /// ...or after this many MiB, whichever comes first, so that the agents of a site
    /// share a job of a few large objects too.
    pub task_mib: u64,
    /// How long a job message may go without a progress ack before JetStream hands it
    /// to another agent of the site. Applied when the site's consumer is created.
    pub ack_wait_secs: u64,
    /// The agent's token, bound to its site (`ferry token create NAME --role agent
    /// --site SITE`), sent on every call to the control plane. Taken from
    /// `FERRY_AGENT_TOKEN`; never printed. Prefer `token_file`.
    #[serde(default, skip_serializing)]
    pub token: Option<SecretString>,
    /// A file holding the agent's token (`FERRY_AGENT_TOKEN_FILE`), read at start.
    pub token_file: Option<PathBuf>,
    pub tls: TlsConfig,
    pub log: LogConfig,
    pub metrics: MetricsConfig,
    pub faults: Faults,
}

/// Where the agent answers `GET /metrics` for Prometheus.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// `host:port` (port 0: any free port, logged at start), or `off`.
    pub listen: String,
}

impl MetricsConfig {
    /// The address to serve on; `None` when off. Checked by `validate`.
    pub fn addr(&self) -> Option<std::net::SocketAddr> {
        self.listen.parse().ok()
    }
}

/// TLS to the control plane, used when `control_plane` is an `https://` URL. PEM files.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// CA certificates the control plane's certificate must chain to; unset: the
    /// platform's trusted roots.
    pub ca_file: Option<PathBuf>,
    /// The agent's own certificate, for a control plane that requires one (mutual
    /// TLS); given with `key_file` or not at all.
    pub cert_file: Option<PathBuf>,
    /// The private key of `cert_file`. Never logged.
    pub key_file: Option<PathBuf>,
}

impl TlsConfig {
    pub fn files(&self) -> TlsFiles {
        TlsFiles {
            ca_file: self.ca_file.clone(),
            cert_file: self.cert_file.clone(),
            key_file: self.key_file.clone(),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// `text` or `json`.
    pub format: String,
    pub filter: String,
}

/// Fault injection for tests of the lifecycle; all off by default.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Faults {
    /// Sleep this long between the copy phase and the verify phase.
    pub pause_before_verify_ms: u64,
    /// With a pause before verifying: end it as soon as this file exists, so that a
    /// test can act between the phases however slow the machine is.
    pub verify_gate: Option<PathBuf>,
    /// Sleep this long after each copied object.
    pub pause_after_object_ms: u64,
    /// Sleep this long after each part of a multipart upload is journalled.
    pub pause_after_part_ms: u64,
    /// Sleep this long between creating a multipart upload and journalling its id.
    pub pause_before_upload_journalled_ms: u64,
}

impl Default for AgentConfig {
    fn default() -> Self {
        let state_dir = std::env::var_os("XDG_STATE_HOME")
            .filter(|v| !v.is_empty())
            .map(|d| PathBuf::from(d).join("ferry-agent"))
            .or_else(|| {
                std::env::var_os("HOME")
                    .filter(|v| !v.is_empty())
                    .map(|h| PathBuf::from(h).join(".local/state/ferry-agent"))
            })
            .unwrap_or_else(|| PathBuf::from("ferry-agent-state"));
        AgentConfig {
            site: String::new(),
            control_plane: "http://127.0.0.1:50051".into(),
            nats_url: "nats://127.0.0.1:4222".into(),
            nats_user: None,
            nats_password: None,
            nats_password_file: None,
            state_dir,
            concurrency: 16,
            memory_budget_mib: 160,
            part_size_mib: 8,
            multipart_threshold_mib: None,
            ack_wait_secs: 30,
            task_slots: 4,
            task_objects: 1000,
            task_mib: 256,
            token: None,
            token_file: None,
            tls: TlsConfig::default(),
            log: LogConfig {
                format: "text".into(),
                filter: "info".into(),
            },
            metrics: MetricsConfig {
                listen: "127.0.0.1:9465".into(),
            },
            faults: Faults::default(),
        }
    }
}

/// Values from the command line; each one set overrides every other layer.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub site: Option<String>,
    pub control_plane: Option<String>,
    pub nats_url: Option<String>,
    pub state_dir: Option<PathBuf>,
    pub concurrency: Option<usize>,
    pub log_format: Option<String>,
    pub log_filter: Option<String>,
    pub metrics_listen: Option<String>,
}

impl AgentConfig {
    /// `log.format`, parsed: text or json.
    pub fn log_format(&self) -> Result<ferry_telemetry::LogFormat, String> {
        self.log
            .format
            .parse()
            .map_err(|e| format!("log.format: {e}"))
    }

    pub fn load(file: Option<&Path>, overrides: &Overrides) -> Result<Self, String> {
        let mut figment = Figment::from(Serialized::defaults(AgentConfig::default()));
        if let Some(file) = file {
            if !file.exists() {
                return Err(format!("config file {} does not exist", file.display()));
            }
            figment = figment.merge(Toml::file(file));
        }
        figment = figment.merge(
            Env::prefixed("FERRY_AGENT_")
                .filter(|k| !k.as_str().eq_ignore_ascii_case("config"))
                .split("__"),
        );
        if let Some(v) = &overrides.site {
            figment = figment.merge(("site", v));
        }
        if let Some(v) = &overrides.control_plane {
            figment = figment.merge(("control_plane", v));
        }
        if let Some(v) = &overrides.nats_url {
            figment = figment.merge(("nats_url", v));
        }
        if let Some(v) = &overrides.state_dir {
            figment = figment.merge(("state_dir", v));
        }
        if let Some(v) = overrides.concurrency {
            figment = figment.merge(("concurrency", v));
        }
        for (key, value) in [
            ("log.format", &overrides.log_format),
            ("log.filter", &overrides.log_filter),
            ("metrics.listen", &overrides.metrics_listen),
        ] {
            if let Some(v) = value {
                figment = figment.merge((key, v));
            }
        }
        let config: AgentConfig = figment.extract().map_err(|e| {
            let path = e.path.join(".");
            if path.is_empty() {
                e.kind.to_string()
            } else {
                format!("{path}: {}", e.kind)
            }
        })?;
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.site.is_empty() {
            return Err("site: required (the site this agent serves, by name or id)".into());
        }
        if self.token.is_some() && self.token_file.is_some() {
            return Err(
                "token_file: set either token (FERRY_AGENT_TOKEN) or token_file, not both".into(),
            );
        }
        if self.control_plane.starts_with("https://") {
            self.tls
                .files()
                .client_config()
                .map_err(|e| format!("tls.{e}"))?;
        } else if !self.control_plane.starts_with("http://") {
            return Err(format!(
                "control_plane: '{}' must be an http:// or https:// URL",
                self.control_plane
            ));
        } else if !self.tls.files().is_empty() {
            return Err(format!(
                "control_plane: '{}' is plain-text http:// but TLS files are set; use \
                 https://",
                self.control_plane
            ));
        }
        if !(self.nats_url.starts_with("nats://") || self.nats_url.starts_with("tls://")) {
            return Err(format!(
                "nats_url: '{}' must start with nats:// or tls://",
                self.nats_url
            ));
        }
        self.nats_credentials()?;
        if !(1..=1024).contains(&self.concurrency) {
            return Err("concurrency: must be 1 to 1024".into());
        }
        if !(5..=5120).contains(&self.part_size_mib) {
            return Err(format!(
                "part_size_mib: must be 5 to 5120 (S3's part size limits), got {}",
                self.part_size_mib
            ));
        }
        if let Some(threshold) = self.multipart_threshold_mib {
            if !(self.part_size_mib..=5120).contains(&threshold) {
                return Err(format!(
                    "multipart_threshold_mib: must be part_size_mib ({}) to 5120 (S3's limit \
                     for one request), got {threshold}",
                    self.part_size_mib
                ));
            }
        }
        if self.memory_budget_mib < 3 * self.part_size_mib {
            return Err(format!(
                "memory_budget_mib: must be at least three parts ({} MiB), got {}",
                3 * self.part_size_mib,
                self.memory_budget_mib
            ));
        }
        if !(1..=64).contains(&self.task_slots) {
            return Err(format!(
                "task_slots: must be 1 to 64, got {}",
                self.task_slots
            ));
        }
        // A copy task travels in one NATS message (1 MiB by default): 5,000 keys of
        // up to 200 bytes fit.
        if !(1..=5000).contains(&self.task_objects) {
            return Err(format!(
                "task_objects: must be 1 to 5000, got {}",
                self.task_objects
            ));
        }
        if self.task_mib == 0 {
            return Err("task_mib: must be at least 1".into());
        }
        if !(2..=3600).contains(&self.ack_wait_secs) {
            return Err("ack_wait_secs: must be 2 to 3600".into());
        }
        self.log_format()?;
        if self.metrics.listen != "off" && self.metrics.addr().is_none() {
            return Err(format!(
                "metrics.listen: '{}' must be host:port (an IP address and a port) or off",
                self.metrics.listen
            ));
        }
        tracing_subscriber::EnvFilter::try_new(&self.log.filter).map_err(|e| {
            format!(
                "log.filter: '{}' is not a valid filter: {e}",
                self.log.filter
            )
        })?;
        Ok(())
    }
}

impl AgentConfig {
    /// The token the agent presents: `token`, or the first line of `token_file`;
    /// `None` when neither is set (a control plane with authentication off).
    pub fn read_token(&self) -> Result<Option<SecretString>, String> {
        if let Some(token) = &self.token {
            return Ok(Some(token.clone()));
        }
        let Some(path) = &self.token_file else {
            return Ok(None);
        };
        read_secret_line(path)
            .map(Some)
            .map_err(|e| format!("token_file: {e}"))
    }

    /// The NATS user and password: none without `nats_user`; with it, exactly one of
    /// `nats_password` and `nats_password_file`.
    pub fn nats_credentials(&self) -> Result<Option<(String, SecretString)>, String> {
        let password = match (&self.nats_password, &self.nats_password_file) {
            (Some(_), Some(_)) => {
                return Err("nats_password_file: set either nats_password \
                            (FERRY_AGENT_NATS_PASSWORD) or nats_password_file, not both"
                    .into())
            }
            (Some(p), None) => Some(p.clone()),
            (None, Some(path)) => {
                Some(read_secret_line(path).map_err(|e| format!("nats_password_file: {e}"))?)
            }
            (None, None) => None,
        };
        match (&self.nats_user, password) {
            (None, None) => Ok(None),
            (None, Some(_)) => Err("nats_user: required with a NATS password".into()),
            (Some(_), None) => Err("nats_password_file: nats_user needs a password \
                                    (nats_password or nats_password_file)"
                .into()),
            (Some(user), Some(password)) => Ok(Some((user.clone(), password))),
        }
    }
}

/// The first line of a secret file, trimmed; an empty one is an error.
fn read_secret_line(path: &Path) -> Result<SecretString, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let line = text.lines().next().unwrap_or_default().trim();
    if line.is_empty() {
        return Err(format!("{} is empty", path.display()));
    }
    Ok(SecretString::from(line.to_owned()))
}

#[cfg(test)]
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;

    #[test]
    fn site_is_required_and_layers_apply() {
        figment::Jail::expect_with(|jail| {
            let err = AgentConfig::load(None, &Overrides::default()).unwrap_err();
            assert!(err.starts_with("site: required"), "{err}");
            jail.set_env("FERRY_AGENT_SITE", "fast");
            jail.set_env("FERRY_AGENT_FAULTS__PAUSE_BEFORE_VERIFY_MS", "250");
            let config = AgentConfig::load(None, &Overrides::default()).unwrap();
            assert_eq!(config.site, "fast");
            assert_eq!(config.faults.pause_before_verify_ms, 250);
            let flags = Overrides {
                concurrency: Some(0),
                ..Overrides::default()
            };
            let err = AgentConfig::load(None, &flags).unwrap_err();
            assert_eq!(err, "concurrency: must be 1 to 1024");
            Ok(())
        });
    }

    #[test]
    fn tls_files_are_checked_for_an_https_control_plane_only() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("FERRY_AGENT_SITE", "fast");
            jail.set_env("FERRY_AGENT_TLS__CERT_FILE", "agent.pem");
            let err = AgentConfig::load(None, &Overrides::default()).unwrap_err();
            assert!(err.starts_with("control_plane: 'http://127.0.0.1:50051' is plain-text"));
            jail.set_env("FERRY_AGENT_CONTROL_PLANE", "https://cp.internal:50051");
            let err = AgentConfig::load(None, &Overrides::default()).unwrap_err();
            assert_eq!(err, "tls.key_file: required with cert_file");
            jail.set_env("FERRY_AGENT_TLS__KEY_FILE", "agent.key");
            let err = AgentConfig::load(None, &Overrides::default()).unwrap_err();
            assert!(
                err.starts_with("tls.cert_file: cannot read agent.pem"),
                "{err}"
            );
            Ok(())
        });
    }

    #[test]
    fn the_nats_password_comes_from_the_environment_or_a_file_with_a_user() {
        use secrecy::ExposeSecret;
        figment::Jail::expect_with(|jail| {
            jail.set_env("FERRY_AGENT_SITE", "fast");
            let load = || AgentConfig::load(None, &Overrides::default());
            assert!(load().unwrap().nats_credentials().unwrap().is_none());
            jail.set_env("FERRY_AGENT_NATS_PASSWORD", "nats-from-env");
            let err = load().unwrap_err();
            assert_eq!(err, "nats_user: required with a NATS password");
            jail.set_env("FERRY_AGENT_NATS_USER", "ferry-agent-fast");
            let (user, password) = load().unwrap().nats_credentials().unwrap().unwrap();
            assert_eq!(user, "ferry-agent-fast");
            assert_eq!(password.expose_secret(), "nats-from-env");
            assert!(!format!("{:?}", load().unwrap()).contains("nats-from"));
            jail.create_file("nats.password", "nats-from-file\n")?;
            jail.set_env("FERRY_AGENT_NATS_PASSWORD_FILE", "nats.password");
            let err = load().unwrap_err();
            assert!(err.starts_with("nats_password_file: set either"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn the_token_comes_from_the_environment_or_a_file_never_both() {
        use secrecy::ExposeSecret;
        figment::Jail::expect_with(|jail| {
            jail.set_env("FERRY_AGENT_SITE", "fast");
            let config = AgentConfig::load(None, &Overrides::default()).unwrap();
            assert!(config.read_token().unwrap().is_none());
            assert!(!format!("{config:?}").contains("fy_from"));

            jail.create_file("agent.token", "fy_from_file\n")?;
            jail.set_env("FERRY_AGENT_TOKEN_FILE", "agent.token");
            let config = AgentConfig::load(None, &Overrides::default()).unwrap();
            let token = config.read_token().unwrap().unwrap();
            assert_eq!(token.expose_secret(), "fy_from_file");

            jail.set_env("FERRY_AGENT_TOKEN", "fy_from_env");
            let err = AgentConfig::load(None, &Overrides::default()).unwrap_err();
            assert!(err.starts_with("token_file: set either"), "{err}");

            jail.clear_env();
            jail.set_env("FERRY_AGENT_SITE", "fast");
            jail.set_env("FERRY_AGENT_TOKEN", "fy_from_env");
            let config = AgentConfig::load(None, &Overrides::default()).unwrap();
            let token = config.read_token().unwrap().unwrap();
            assert_eq!(token.expose_secret(), "fy_from_env");
            assert!(!format!("{config:?}").contains("fy_from_env"));
            Ok(())
        });
    }

    #[test]
    fn the_multipart_threshold_is_unset_by_default_and_lies_between_a_part_and_5_gib() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("FERRY_AGENT_SITE", "fast");
            let config = AgentConfig::load(None, &Overrides::default()).unwrap();
            assert_eq!(config.multipart_threshold_mib, None);

            jail.set_env("FERRY_AGENT_MULTIPART_THRESHOLD_MIB", "200");
            let config = AgentConfig::load(None, &Overrides::default()).unwrap();
            assert_eq!(config.multipart_threshold_mib, Some(200));

            jail.set_env("FERRY_AGENT_MULTIPART_THRESHOLD_MIB", "4");
            let err = AgentConfig::load(None, &Overrides::default()).unwrap_err();
            assert_eq!(
                err,
                "multipart_threshold_mib: must be part_size_mib (8) to 5120 (S3's limit for \
                 one request), got 4"
            );
            jail.set_env("FERRY_AGENT_MULTIPART_THRESHOLD_MIB", "5121");
            let err = AgentConfig::load(None, &Overrides::default()).unwrap_err();
            assert!(err.ends_with("got 5121"), "{err}");
            Ok(())
        });
    }
}
