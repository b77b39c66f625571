//! `ferry`: the command-line client of a Ferry control plane. Parses the command line,
//! runs one command, prints its result and maps failures to documented exit codes.

mod agent;
mod dataset;
mod duration;
mod enums;
mod events;
mod job;
mod json;
mod model;
mod nats;
mod output;
mod parse;
mod policy;
mod progress;
mod recommend;
mod schedule;
mod site;
mod token;
mod watch;
mod whatif;

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use ferry_sdk::{read_token_file, Client, Error, TlsFiles};
use tokio::sync::OnceCell;
use tonic::Code;

const LONG_ABOUT: &str = "\
Manage the sites, datasets and policies of a Ferry control plane, get and act on \
placement recommendations, migrate datasets between sites and see the agents that move \
them.

Output is tables and key/value blocks for people. With --json, results are printed as \
JSON: field names as in the ferry.v1 protocol, enums as short lowercase names (\"hot\"), \
timestamps in RFC 3339 and durations as seconds (\"600s\"); a list is an array, [] when \
empty. `job watch` (and `--watch`) prints one compact JSON object per line instead. Errors go to standard \
error as `error: <message>`.

Authentication: every call carries a token, read from the FERRY_TOKEN environment \
variable or from the file --token-file (FERRY_TOKEN_FILE) names. On its first start the \
control plane writes an admin token to <data-dir>/admin.token (mode 0600); `ferry token \
create` makes tokens of narrower roles: viewer (reads), operator (records access events, \
plans, approves and steers migrations), admin (everything, including tokens and the \
audit log) and agent (one site's agent).

Durations are written 90s, 10m, 2h, 7d or 1h30m; sizes as bytes, optionally with a unit \
(500MB, 1GiB, 64KiB); rates as a size per second (20MB or 20MB/s).

Traces: with OTEL_EXPORTER_OTLP_ENDPOINT set, each command is the root span of a trace exported over OTLP, and its calls carry the W3C trace context to the control plane, so a migration started here is one trace down to each object an agent copies.

TLS: an https:// --server is reached over TLS, its certificate checked against --ca-file \
(FERRY_CA_FILE) or, without one, the system's trusted roots. A control plane requiring \
mutual TLS also wants this client's own certificate and key: --cert-file and --key-file \
(FERRY_CERT_FILE, FERRY_KEY_FILE). All are PEM files; with any of them, host:port means \
https://host:port. A server certificate this client does not trust fails the connection \
(exit code 5). A control plane that refuses this client's certificate (none, from another \
CA, expired) closes the connection at the first call: a transport error, exit code 1, \
and the control plane's log says why (\"TLS handshake refused\").

Exit codes:
  0  success; for `job watch`, `job plan --watch` and `recommend approve --watch`,
     the job completed
  1  the watched job failed or was cancelled, or any other failure
  2  usage error or invalid argument
  3  not found
  4  already exists, or failed precondition (e.g. deleting a site still in use)
  5  control plane unavailable or unreachable
  6  unauthenticated (no token, or one unknown, expired or revoked) or permission
     denied (the token's role does not allow the call)";

#[derive(Debug, Parser)]
#[command(
    name = "ferry",
    version,
    about = "Command-line client of the Ferry data-placement control plane",
    long_about = LONG_ABOUT
)]
struct Cli {
    /// Address of the control plane's gRPC API (http://host:port, https://host:port or
    /// host:port)
    #[arg(
        long,
        global = true,
        env = "FERRY_SERVER",
        default_value = "http://127.0.0.1:50051",
        value_name = "URL",
        help_heading = "Global options"
    )]
    server: String,

    /// CA certificates (PEM) that the control plane's TLS certificate must chain to
    /// [default: the system's trusted roots]
    #[arg(
        long,
        global = true,
        env = "FERRY_CA_FILE",
        value_name = "FILE",
        help_heading = "Global options"
    )]
    ca_file: Option<PathBuf>,

    /// This client's certificate (PEM), for a control plane that requires mutual TLS;
    /// with --key-file
    #[arg(
        long,
        global = true,
        env = "FERRY_CERT_FILE",
        value_name = "FILE",
        help_heading = "Global options"
    )]
    cert_file: Option<PathBuf>,

    /// The private key (PEM) of --cert-file
    #[arg(
        long,
        global = true,
        env = "FERRY_KEY_FILE",
        value_name = "FILE",
        help_heading = "Global options"
    )]
    key_file: Option<PathBuf>,

    /// File holding the token to call with (its first line); FERRY_TOKEN, when set,
    /// is used instead
    #[arg(
        long,
        global = true,
        env = "FERRY_TOKEN_FILE",
        value_name = "FILE",
        help_heading = "Global options"
    )]
    token_file: Option<PathBuf>,

    /// Print results as JSON instead of tables
    #[arg(long, global = true, help_heading = "Global options")]
    json: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Storage locations: file system paths, buckets, in-memory stores
    #[command(subcommand)]
    Site(site::SiteCommand),
    /// Datasets: the unit Ferry places and moves
    #[command(subcommand)]
    Dataset(dataset::DatasetCommand),
    /// Policies: how labelled datasets are tiered, where, and at what cost
    #[command(subcommand)]
    Policy(policy::PolicyCommand),
    /// Placement advice: where each dataset should live, why, and what moving it costs
    ///
    /// Without a subcommand, computes fresh recommendations for one dataset or every
    /// dataset matching the filters, and records them. `recommend history` lists those
    /// recorded; `recommend approve` plans the advised migration.
    Recommend(recommend::RecommendArgs),
    /// Replay recorded access under a policy: what Ferry, the recency rule and an
    /// Intelligent-Tiering-style rule would have cost, against what happened
    ///
    /// Costs are at each site's price list; a slow read is one served from a site
    /// slower than the dataset's latency objective. Nothing is recorded.
    #[command(name = "whatif")]
    WhatIf(whatif::WhatIfArgs),
    /// Demand models: train the forecasts recommendations use, list what they learned
    #[command(subcommand)]
    Model(model::ModelCommand),
    /// Access events: report reads and writes of a dataset, show its hourly access
    #[command(subcommand)]
    Events(events::EventsCommand),
    /// Migration jobs: copy a dataset to another site, verify it and switch over
    #[command(subcommand)]
    Job(job::JobCommand),
    /// Sync schedules: syncs planned at the times a cron expression names
    #[command(subcommand)]
    Schedule(schedule::ScheduleCommand),
    /// Agents: the workers near each site that move the bytes
    #[command(subcommand)]
    Agent(agent::AgentCommand),
    /// Tokens: who may call the control plane, with which role (admin only)
    #[command(subcommand)]
    Token(token::TokenCommand),
    /// The audit log: every change, and every refused call, newest first (admin only)
    Audit(token::AuditArgs),
    /// Who the token this client calls with is: name, role, site and expiry
    Whoami,
    /// The nats-server user of the control plane or of one site's agents
    ///
    /// Prints an entry for the `users` list of nats-server's `authorization` block: the
    /// password as a bcrypt hash and, for a site, subject permissions that let its
    /// agents take only that site's tasks and report only under it. See
    /// docs/operations.md, "NATS authentication".
    NatsUser(nats::NatsUserArgs),
}

/// What a command leaves for `main` once it has run without error.
#[derive(Debug, PartialEq, Eq)]
pub struct Outcome {
    /// Printed to standard output; `None` when the command has printed all it had to.
    pub text: Option<String>,
    /// The exit code: 0, or 1 when a watched job did not complete.
    pub code: u8,
}

impl Outcome {
    /// Success with `text` to print.
    pub fn print(text: String) -> Outcome {
        Outcome {
            text: Some(text),
            code: 0,
        }
    }

    /// Nothing left to print; exit with `code`.
    pub fn quiet(code: u8) -> Outcome {
        Outcome { text: None, code }
    }
}

/// What every command needs: the output format and a connection made on first use, so
/// a command whose arguments are wrong fails as a usage error before dialling anything.
pub struct Context {
    server: String,
    tls: TlsFiles,
    token: Token,
    json: bool,
    client: OnceCell<Client>,
}

impl Context {
    pub fn json(&self) -> bool {
        self.json
    }

    /// The connected client; connects on the first call.
    pub async fn client(&self) -> Result<&Client, Error> {
        self.client
            .get_or_try_init(|| async {
                let client = Client::connect_with(&self.server, &self.tls).await?;
                match &self.token {
                    Token::Env(token) => client.with_token(token),
                    Token::File(path) => client.with_token(&read_token_file(path)?),
                    Token::None => Ok(client),
                }
            })
            .await
    }
}

/// Where the token to call with comes from.
enum Token {
    /// `FERRY_TOKEN`.
    Env(String),
    /// `--token-file` / `FERRY_TOKEN_FILE`.
    File(PathBuf),
    None,
}

impl Token {
    fn from(file: Option<PathBuf>) -> Token {
        match (std::env::var("FERRY_TOKEN"), file) {
            (Ok(token), _) if !token.trim().is_empty() => Token::Env(token),
            (_, Some(path)) => Token::File(path),
            _ => Token::None,
        }
    }
}

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let name = command_path(&matches);
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return fail(&format!("starting the async runtime: {e}"), 1),
    };
    // Only when traces are asked for: the CLI otherwise logs nothing of its own.
    let telemetry = if ferry_telemetry::export_configured() {
        let settings = ferry_telemetry::Settings {
            service: "ferry",
            format: ferry_telemetry::LogFormat::Text,
            filter: "warn,ferry=info",
        };
        match runtime.block_on(async { ferry_telemetry::init(&settings) }) {
            Ok(guard) => Some(guard),
            Err(e) => return fail(&e.to_string(), 2),
        }
    } else {
        None
    };
    let span = tracing::info_span!("command", otel.name = %name, otel.kind = "client");
    let context = Context {
        server: cli.server,
        tls: TlsFiles {
            ca_file: cli.ca_file,
            cert_file: cli.cert_file,
            key_file: cli.key_file,
        },
        token: Token::from(cli.token_file),
        json: cli.json,
        client: OnceCell::new(),
    };
    let result = runtime.block_on(tracing::Instrument::instrument(
        async {
            match cli.command {
                Command::Site(command) => site::run(command, &context).await.map(Outcome::print),
                Command::Dataset(command) => {
                    dataset::run(command, &context).await.map(Outcome::print)
                }
                Command::Policy(command) => {
                    policy::run(command, &context).await.map(Outcome::print)
                }
                Command::Recommend(args) => recommend::run(args, &context).await,
                Command::WhatIf(args) => whatif::run(args, &context).await.map(Outcome::print),
                Command::Model(command) => model::run(command, &context).await.map(Outcome::print),
                Command::Job(command) => job::run(command, &context).await,
                Command::Schedule(command) => schedule::run(command, &context).await,
                Command::Agent(command) => agent::run(command, &context).await.map(Outcome::print),
                Command::Events(command) => {
                    events::run(command, &context).await.map(Outcome::print)
                }
                Command::Token(command) => token::run(command, &context).await.map(Outcome::print),
                Command::Audit(args) => token::audit(args, &context).await.map(Outcome::print),
                Command::Whoami => token::whoami(&context).await.map(Outcome::print),
                Command::NatsUser(args) => nats::run(args, &context).await.map(Outcome::print),
            }
        },
        span,
    ));
    if let Some(telemetry) = telemetry {
        // On a blocking thread while this one drives the runtime the exporter uses.
        let flushed = runtime.block_on(async move {
            tokio::task::spawn_blocking(move || telemetry.shutdown()).await
        });
        if let Err(e) = flushed {
            eprintln!("warning: flushing traces: {e}");
        }
    }
    match result {
        Ok(Outcome {
            text: Some(text),
            code,
        }) => match print(&text) {
            ExitCode::SUCCESS => ExitCode::from(code),
            failed => failed,
        },
        Ok(Outcome { text: None, code }) => ExitCode::from(code),
        Err(err) => {
            let mut message = err.to_string();
            if err.code() == Code::Unauthenticated && matches!(context.token, Token::None) {
                message.push_str(
                    "\nhint: set FERRY_TOKEN, or --token-file FILE; the first admin token \
                     is in the control plane's data directory, as admin.token",
                );
            }
            fail(&message, exit_code(&err))
        }
    }
}

/// The documented exit code of a failure (see `LONG_ABOUT`).
fn exit_code(err: &Error) -> u8 {
    match err.code() {
        Code::InvalidArgument | Code::OutOfRange => 2,
        Code::NotFound => 3,
        Code::AlreadyExists | Code::FailedPrecondition => 4,
        Code::Unavailable => 5,
        Code::Unauthenticated | Code::PermissionDenied => 6,
        _ => 1,
    }
}

fn print(text: &str) -> ExitCode {
    let mut stdout = io::stdout().lock();
    let written = writeln!(stdout, "{text}").and_then(|()| stdout.flush());
    match written {
        Ok(()) => ExitCode::SUCCESS,
        // The reader went away (`ferry site list | head`): nothing left to tell anyone.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => fail(&format!("writing output: {e}"), 1),
    }
}

fn fail(message: &str, code: u8) -> ExitCode {
    report_error(message);
    ExitCode::from(code)
}

/// Writes `error: <message>` to standard error.
pub fn report_error(message: &str) {
    // Nothing more can be done if standard error is gone too.
    let _ = writeln!(io::stderr(), "error: {message}");
}

/// `ferry job migrate` for that command: the name of the root span of its trace.
fn command_path(matches: &clap::ArgMatches) -> String {
    let mut path = String::from("ferry");
    let mut current = matches;
    while let Some((name, sub)) = current.subcommand() {
        path.push(' ');
        path.push_str(name);
        current = sub;
    }
    path
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn codes_map_to_documented_exit_codes() {
        let status = |code| Error::Rpc(tonic::Status::new(code, "x"));
        assert_eq!(exit_code(&status(Code::InvalidArgument)), 2);
        assert_eq!(exit_code(&Error::InvalidInput("x".into())), 2);
        assert_eq!(exit_code(&status(Code::NotFound)), 3);
        assert_eq!(exit_code(&status(Code::AlreadyExists)), 4);
        assert_eq!(exit_code(&status(Code::FailedPrecondition)), 4);
        assert_eq!(exit_code(&status(Code::Unavailable)), 5);
        assert_eq!(exit_code(&status(Code::Unauthenticated)), 6);
        assert_eq!(exit_code(&status(Code::PermissionDenied)), 6);
        assert_eq!(exit_code(&status(Code::Internal)), 1);
    }

    #[test]
    fn global_flags_parse_after_the_subcommand() {
        let cli = Cli::try_parse_from([
            "ferry",
            "site",
            "list",
            "--json",
            "--server",
            "h:1",
            "--ca-file",
            "ca.pem",
        ]);
        let Ok(cli) = cli else {
            panic!("global flags should be accepted after the subcommand");
        };
        assert!(cli.json);
        assert_eq!(cli.server, "h:1");
        assert_eq!(cli.ca_file, Some(PathBuf::from("ca.pem")));
        // `job plan --key` is an idempotency key, not the client's private key.
        let cli = Cli::try_parse_from([
            "ferry",
            "job",
            "plan",
            "d",
            "--to",
            "b",
            "--key",
            "nightly",
            "--key-file",
            "c.key",
        ]);
        assert!(cli.is_ok_and(|cli| cli.key_file == Some(PathBuf::from("c.key"))));
    }
}
