//! Configuration, layered: built-in defaults < TOML file < `FERRY_…` environment
//! (`__` separates nested keys, e.g. `FERRY_DATABASE__URL`) < command-line flags. One
//! `validate()` then names the first bad field.

use std::{net::SocketAddr, path::PathBuf};

use figment::{
    providers::{Env, Format, Serialized, Toml},
    Figment,
};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

/// Top-level keys the environment may set, taken from the configuration itself so a new
/// section can never be forgotten; other `FERRY_` variables (the CLI's `FERRY_SERVER`,
/// say) belong to other programs.
fn env_keys() -> Vec<String> {
    serde_json::to_value(Config::default())
        .ok()
        .and_then(|v| v.as_object().map(|o| o.keys().cloned().collect()))
        .unwrap_or_default()
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address of the gRPC server.
    pub listen: String,
    /// Holds the SQLite database and the master key file unless configured elsewhere.
    pub data_dir: PathBuf,
    pub database: DatabaseConfig,
    pub log: LogConfig,
    pub security: SecurityConfig,
    pub auth: AuthConfig,
    pub nats: NatsConfig,
    pub agents: AgentsConfig,
    pub autopilot: AutopilotConfig,
    pub training: TrainingConfig,
    pub alerts: AlertsConfig,
    pub tls: TlsConfig,
    /// How long in-flight requests may take to finish after SIGINT/SIGTERM.
    pub shutdown_grace_secs: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `sqlite://…` or `postgres://…`; unset means `<data_dir>/ferry.db`.
    pub url: Option<String>,
    pub max_connections: u32,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatsConfig {
    /// NATS server with JetStream that carries jobs and progress.
    pub url: String,
    /// The control plane's user, when nats-server requires one (see docs/operations.md,
    /// "NATS authentication").
    pub user: Option<String>,
    /// That user's password (`FERRY_NATS__PASSWORD`); never printed. Prefer
    /// `password_file`.
    #[serde(default, skip_serializing)]
    pub password: Option<SecretString>,
    /// A file whose first line is the password, read at start.
    pub password_file: Option<PathBuf>,
}

impl NatsConfig {
    /// The user and password to connect with: none without `user`; with it, exactly
    /// one of `password` and `password_file`.
    pub fn credentials(&self) -> Result<Option<crate::bus::Credentials>, String> {
        let password =
            match (&self.password, &self.password_file) {
                (Some(_), Some(_)) => return Err(
                    "nats.password_file: set either nats.password or nats.password_file, not both"
                        .into(),
                ),
                (Some(p), None) => Some(p.clone()),
                (None, Some(path)) => {
                    Some(read_secret_line(path).map_err(|e| format!("nats.password_file: {e}"))?)
                }
                (None, None) => None,
            };
        match (&self.user, password) {
            (None, None) => Ok(None),
            (None, Some(_)) => Err("nats.user: required with a NATS password".into()),
            (Some(_), None) => {
                Err("nats.password_file: nats.user needs a password (nats.password or nats.password_file)".into())
            }
            (Some(user), Some(password)) => {
                if user.is_empty() || user.chars().any(|c| c.is_whitespace() || c.is_control()) {
                    return Err(format!("nats.user: '{user}' must be a non-empty name without spaces"));
                }
                Ok(Some(crate::bus::Credentials {
                    user: user.clone(),
                    password,
                }))
            }
        }
    }
}

/// The first line of a secret file, trimmed; an empty one is an error.
fn read_secret_line(path: &std::path::Path) -> Result<SecretString, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let line = text.lines().next().unwrap_or_default().trim();
    if line.is_empty() {
        return Err(format!("{} is empty", path.display()));
    }
    Ok(SecretString::from(line.to_owned()))
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// Every `ferry.v1` call must carry a valid bearer token. Turn it off only on a
    /// development machine: every caller is then an admin, and each start says so.
    pub enabled: bool,
    /// A file whose first line is the first admin token (a mounted Kubernetes Secret,
    /// say): adopted on the first start instead of a generated one written to
    /// `<data_dir>/admin.token`. `fy_` then at least 32 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_token_file: Option<PathBuf>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentsConfig {
    /// How long an agent may take to list a source for a dry run before the call
    /// gives up (`UNAVAILABLE`).
    #[serde(default = "default_dry_run_timeout")]
    pub dry_run_timeout_secs: u64,
}

fn default_dry_run_timeout() -> u64 {
    120
}

impl Default for AgentsConfig {
    fn default() -> Self {
        AgentsConfig {
            dry_run_timeout_secs: default_dry_run_timeout(),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AutopilotConfig {
    /// How often policies with auto-migrate on act on their recommendations.
    pub interval_secs: u64,
    /// How often sync schedules are checked for due runs.
    pub schedules_interval_secs: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainingConfig {
    /// How often every dataset's demand model is retrained (on the catalogue's clock,
    /// counted from the last run recorded in the catalogue).
    pub interval_secs: u64,
}

/// Thresholds the control plane exports for the alert rules in deploy/prometheus/.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertsConfig {
    /// How long a running job may go without progress before `FerryJobStalled` fires
    /// (exported as `ferry_job_stall_threshold_seconds`).
    pub job_stall_secs: u64,
}

/// TLS on the gRPC port (which also serves `/metrics`); off unless a certificate and
/// its key are given. Files are PEM; they are read and checked at start.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The certificate chain the server presents, its own certificate first.
    pub cert_file: Option<PathBuf>,
    /// The private key of `cert_file` (PKCS#8, PKCS#1 or SEC1). Never logged.
    pub key_file: Option<PathBuf>,
    /// When set, every client must present a certificate signed by a CA in this file
    /// (mutual TLS); without it, clients are not asked for one.
    pub client_ca_file: Option<PathBuf>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A `tracing` filter such as `info` or `info,ferry_control_plane=debug`.
    pub filter: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecurityConfig {
    /// Base64 of 32 bytes. Taken from `FERRY_MASTER_KEY`; never printed.
    #[serde(default, skip_serializing)]
    pub master_key: Option<SecretString>,
    /// Where the master key is kept when `FERRY_MASTER_KEY` is not set; unset means
    /// `<data_dir>/master.key`.
    pub master_key_file: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:50051".into(),
            data_dir: default_data_dir(),
            database: DatabaseConfig {
                url: None,
                max_connections: 10,
            },
            log: LogConfig {
                format: LogFormat::Text,
                filter: "info".into(),
            },
            security: SecurityConfig::default(),
            auth: AuthConfig {
                enabled: true,
                admin_token_file: None,
            },
            nats: NatsConfig {
                url: "nats://127.0.0.1:4222".into(),
                user: None,
                password: None,
                password_file: None,
            },
            agents: AgentsConfig::default(),
            autopilot: AutopilotConfig {
                interval_secs: 60,
                schedules_interval_secs: 10,
            },
            training: TrainingConfig {
                interval_secs: 86_400,
            },
            alerts: AlertsConfig {
                job_stall_secs: 1800,
            },
            tls: TlsConfig::default(),
            shutdown_grace_secs: 10,
        }
    }
}

fn default_data_dir() -> PathBuf {
    if let Some(xdg) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(xdg).join("ferry");
    }
    if let Some(home) = std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(home).join(".local/share/ferry");
    }
    PathBuf::from("ferry-data")
}

/// Values given on the command line; each one set overrides every other layer.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub database_url: Option<String>,
    pub log_format: Option<String>,
    pub log_filter: Option<String>,
    pub nats_url: Option<String>,
    /// Serve without authentication (development only).
    pub no_auth: bool,
}

impl Config {
    /// Loads the layers and validates the result.
    pub fn load(file: Option<&std::path::Path>, overrides: &Overrides) -> Result<Self, String> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(file) = file {
            if !file.exists() {
                return Err(format!("config file {} does not exist", file.display()));
            }
            figment = figment.merge(Toml::file(file));
        }
        let known = env_keys();
        figment = figment
            .merge(
                Env::prefixed("FERRY_")
                    .filter(move |key| {
                        let top = key.as_str().split("__").next().unwrap_or_default();
                        known.iter().any(|k| top.eq_ignore_ascii_case(k))
                    })
                    .split("__"),
            )
            .merge(
                Env::raw()
                    .only(&["FERRY_MASTER_KEY"])
                    .map(|_| "security.master_key".into()),
            );
        if let Some(v) = &overrides.listen {
            figment = figment.merge(("listen", v));
        }
        if let Some(v) = &overrides.data_dir {
            figment = figment.merge(("data_dir", v));
        }
        if let Some(v) = &overrides.database_url {
            figment = figment.merge(("database.url", v));
        }
        if let Some(v) = &overrides.log_format {
            figment = figment.merge(("log.format", v));
        }
        if let Some(v) = &overrides.log_filter {
            figment = figment.merge(("log.filter", v));
        }
        if let Some(v) = &overrides.nats_url {
            figment = figment.merge(("nats.url", v));
        }
        if overrides.no_auth {
            figment = figment.merge(("auth.enabled", false));
        }
        let config: Config = figment.extract().map_err(|e| describe_figment_error(&e))?;
        config.validate()?;
        Ok(config)
    }

    /// Checks every field, naming the first bad one.
    pub fn validate(&self) -> Result<(), String> {
        self.listen_addr()?;
        if self.data_dir.as_os_str().is_empty() {
            return Err("data_dir: must not be empty".into());
        }
        if let Some(url) = &self.database.url {
            let known = ["sqlite:", "postgres://", "postgresql://"];
            if !known.iter().any(|p| url.starts_with(p)) {
                return Err(
                    "database.url: must start with sqlite:, postgres:// or postgresql://".into(),
                );
            }
        }
        if self.database.max_connections == 0 {
            return Err("database.max_connections: must be at least 1".into());
        }
        tracing_subscriber::EnvFilter::try_new(&self.log.filter).map_err(|e| {
            format!(
                "log.filter: '{}' is not a valid filter: {e}",
                self.log.filter
            )
        })?;
        if !(self.nats.url.starts_with("nats://") || self.nats.url.starts_with("tls://")) {
            return Err(format!(
                "nats.url: '{}' must start with nats:// or tls://",
                self.nats.url
            ));
        }
        self.nats.credentials()?;
        if self.agents.dry_run_timeout_secs == 0 {
            return Err("agents.dry_run_timeout_secs: must be at least 1".into());
        }
        if self.autopilot.schedules_interval_secs == 0 {
            return Err("autopilot.schedules_interval_secs: must be at least 1".into());
        }
        if self.autopilot.interval_secs == 0 {
            return Err("autopilot.interval_secs: must be at least 1".into());
        }
        if self.training.interval_secs < 60 {
            return Err("training.interval_secs: must be at least 60".into());
        }
        if self.alerts.job_stall_secs < 60 {
            return Err("alerts.job_stall_secs: must be at least 60".into());
        }
        if self.shutdown_grace_secs > 3600 {
            return Err("shutdown_grace_secs: must be at most 3600".into());
        }
        // Read now so that a bad file stops start-up as a configuration error; the
        // server reads the files again when it starts listening.
        crate::tls::ServerTls::load(&self.tls)?;
        if let Some(seed) = &self.auth.admin_token_file {
            crate::service::tokens::read_seed(seed).map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    pub fn listen_addr(&self) -> Result<SocketAddr, String> {
        self.listen.parse().map_err(|_| {
            format!(
                "listen: '{}' is not a socket address like 127.0.0.1:50051",
                self.listen
            )
        })
    }

    /// The database URL, defaulting to a SQLite file in the data directory.
    pub fn database_url(&self) -> String {
        match &self.database.url {
            Some(url) => url.clone(),
            None => format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("ferry.db").display()
            ),
        }
    }

    /// Where the first admin token is written.
    pub fn admin_token_file(&self) -> PathBuf {
        self.data_dir.join("admin.token")
    }

    pub fn master_key_file(&self) -> PathBuf {
        self.security
            .master_key_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("master.key"))
    }
}

/// Figment's errors name the key path and the source layer; keep that, in one line.
fn describe_figment_error(e: &figment::Error) -> String {
    let path = e.path.join(".");
    let origin = e
        .metadata
        .as_ref()
        .map(|m| format!(" (from {})", m.name))
        .unwrap_or_default();
    if path.is_empty() {
        format!("{}{origin}", e.kind)
    } else {
        format!("{path}: {}{origin}", e.kind)
    }
}

#[cfg(test)]
// figment's Jail closures return its (large) error type; that is its API, not ours.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;

    #[test]
    fn layers_override_in_order_and_validation_names_the_field() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "ferry.toml",
                r#"
                listen = "127.0.0.1:6000"
                [database]
                max_connections = 3
                [log]
                format = "json"
                "#,
            )?;
            jail.set_env("FERRY_LOG__FILTER", "debug");
            jail.set_env("FERRY_NATS__URL", "nats://10.1.2.3:4222");
            jail.set_env("FERRY_AUTOPILOT__INTERVAL_SECS", "5");
            jail.set_env("FERRY_SERVER", "http://elsewhere:1");
            let file = std::path::Path::new("ferry.toml");
            let config = Config::load(Some(file), &Overrides::default()).unwrap();
            assert_eq!(config.listen, "127.0.0.1:6000");
            assert_eq!(config.database.max_connections, 3);
            assert_eq!(config.log.format, LogFormat::Json);
            assert_eq!(config.log.filter, "debug");
            assert_eq!(config.nats.url, "nats://10.1.2.3:4222");
            assert_eq!(config.autopilot.interval_secs, 5);
            assert!(config.auth.enabled, "authentication is on by default");

            let flags = Overrides {
                listen: Some("127.0.0.1:7000".into()),
                ..Overrides::default()
            };
            assert_eq!(
                Config::load(Some(file), &flags).unwrap().listen,
                "127.0.0.1:7000"
            );

            jail.set_env("FERRY_DATABASE__MAX_CONNECTIONS", "0");
            let err = Config::load(Some(file), &Overrides::default()).unwrap_err();
            assert_eq!(err, "database.max_connections: must be at least 1");

            let bad = Overrides {
                listen: Some("nowhere".into()),
                ..Overrides::default()
            };
            let err = Config::load(None, &bad).unwrap_err();
            assert!(err.starts_with("listen: 'nowhere'"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn authentication_turns_off_by_flag_or_variable_only_when_asked() {
        figment::Jail::expect_with(|jail| {
            let flag = Overrides {
                no_auth: true,
                ..Overrides::default()
            };
            assert!(!Config::load(None, &flag).unwrap().auth.enabled);
            jail.set_env("FERRY_AUTH__ENABLED", "false");
            assert!(
                !Config::load(None, &Overrides::default())
                    .unwrap()
                    .auth
                    .enabled
            );
            Ok(())
        });
    }

    #[test]
    fn the_nats_password_comes_from_the_environment_or_a_file_with_a_user() {
        use secrecy::ExposeSecret;
        figment::Jail::expect_with(|jail| {
            let load = || Config::load(None, &Overrides::default());
            assert!(load().unwrap().nats.credentials().unwrap().is_none());
            jail.set_env("FERRY_NATS__USER", "ferry-control-plane");
            let err = load().unwrap_err();
            assert!(
                err.starts_with("nats.password_file: nats.user needs"),
                "{err}"
            );
            jail.create_file("nats.password", "s3cret-from-file\n")?;
            jail.set_env("FERRY_NATS__PASSWORD_FILE", "nats.password");
            let credentials = load().unwrap().nats.credentials().unwrap().unwrap();
            assert_eq!(credentials.user, "ferry-control-plane");
            assert_eq!(credentials.password.expose_secret(), "s3cret-from-file");
            jail.set_env("FERRY_NATS__PASSWORD", "s3cret-from-env");
            let err = load().unwrap_err();
            assert!(err.contains("not both"), "{err}");
            assert!(!err.contains("s3cret"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn unknown_keys_in_the_file_are_errors() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("ferry.toml", "lisen = \"x\"\n")?;
            let err = Config::load(
                Some(std::path::Path::new("ferry.toml")),
                &Overrides::default(),
            )
            .unwrap_err();
            assert!(err.contains("lisen"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn tls_files_come_from_the_environment_and_are_checked_at_load() {
        figment::Jail::expect_with(|jail| {
            assert!(Config::load(None, &Overrides::default())
                .unwrap()
                .tls
                .cert_file
                .is_none());
            jail.set_env("FERRY_TLS__CERT_FILE", "server.pem");
            let err = Config::load(None, &Overrides::default()).unwrap_err();
            assert_eq!(err, "tls.key_file: required with tls.cert_file");
            jail.set_env("FERRY_TLS__KEY_FILE", "server.key");
            let err = Config::load(None, &Overrides::default()).unwrap_err();
            assert!(
                err.starts_with("tls.cert_file: cannot read server.pem"),
                "{err}"
            );
            Ok(())
        });
    }

    #[test]
    fn master_key_comes_from_its_own_variable_and_never_prints() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("FERRY_MASTER_KEY", "c2VjcmV0LWNhbmFyeQ==");
            let config = Config::load(None, &Overrides::default()).unwrap();
            assert!(config.security.master_key.is_some());
            assert!(!format!("{config:?}").contains("c2VjcmV0LWNhbmFyeQ"));
            Ok(())
        });
    }

    #[test]
    fn the_shipped_example_file_loads() {
        // Inside a jail: the other tests set FERRY_* variables in theirs, and the jail's
        // lock keeps them from leaking into this one.
        figment::Jail::expect_with(|_| {
            let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../deploy/control-plane.example.toml");
            let config = Config::load(Some(&example), &Overrides::default()).unwrap();
            assert_eq!(config.listen, "127.0.0.1:50051");
            assert_eq!(config.log.format, LogFormat::Text);
            assert_eq!(config.training.interval_secs, 86_400);
            Ok(())
        });
    }
}
