//! `ferry-control-plane`: the catalogue and API server.

use std::{path::PathBuf, process::ExitCode};

use clap::Parser;
use ferry_control_plane::{
    config::{Config, Overrides},
    server, telemetry,
};

/// Ferry's control plane: catalogue of sites, datasets and policies, served over gRPC.
///
/// Settings come from built-in defaults, then the TOML file given with --config, then
/// FERRY_* environment variables (FERRY_DATABASE__URL for nested keys), then these flags.
/// The master key that encrypts site credentials comes from FERRY_MASTER_KEY (base64 of
/// 32 bytes) or from <data_dir>/master.key, created on first start. TLS is on when
/// tls.cert_file and tls.key_file name PEM files (FERRY_TLS__CERT_FILE,
/// FERRY_TLS__KEY_FILE); tls.client_ca_file (FERRY_TLS__CLIENT_CA_FILE) then requires
/// client certificates signed by that CA.
///
/// Traces: set OTEL_EXPORTER_OTLP_ENDPOINT (and optionally OTEL_EXPORTER_OTLP_PROTOCOL,
/// OTEL_SERVICE_NAME, OTEL_TRACES_SAMPLER) to export spans over OTLP; see
/// docs/operations.md#traces.
#[derive(Debug, Parser)]
#[command(name = "ferry-control-plane", version)]
struct Args {
    /// TOML configuration file.
    #[arg(long, env = "FERRY_CONFIG")]
    config: Option<PathBuf>,
    /// gRPC listen address [default: 127.0.0.1:50051].
    #[arg(long)]
    listen: Option<String>,
    /// Directory for the SQLite database and the master key.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Database URL: sqlite://PATH?mode=rwc or postgres://USER@HOST/DB.
    #[arg(long)]
    database_url: Option<String>,
    /// Log format: text or json.
    #[arg(long)]
    log_format: Option<String>,
    /// Log filter, e.g. info or debug.
    #[arg(long)]
    log_filter: Option<String>,
    /// NATS server with JetStream [default: nats://127.0.0.1:4222].
    #[arg(long)]
    nats_url: Option<String>,
    /// Serve without authentication: every caller is an admin. For a development
    /// machine only; the control plane warns at every start. Same as
    /// FERRY_AUTH__ENABLED=false.
    #[arg(long)]
    no_auth: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let overrides = Overrides {
        listen: args.listen,
        data_dir: args.data_dir,
        database_url: args.database_url,
        log_format: args.log_format,
        log_filter: args.log_filter,
        nats_url: args.nats_url,
        no_auth: args.no_auth,
    };
    let config = match Config::load(args.config.as_deref(), &overrides) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("error: invalid configuration: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Inside the runtime: the OTLP exporter's gRPC connection lives on it.
    let telemetry = match runtime.block_on(async { telemetry::init(&config.log) }) {
        Ok(guard) => guard,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = match runtime.block_on(server::run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "control plane failed");
            ExitCode::FAILURE
        }
    };
    // Exports the spans still buffered while the runtime runs.
    telemetry.shutdown();
    code
}
