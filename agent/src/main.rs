//! `ferry-agent`: moves the bytes of migrations for one storage site.

use std::{path::PathBuf, process::ExitCode, sync::Arc, time::Duration};

use anyhow::Context;
use clap::Parser;
use ferry_agent::{
    bandwidth::{Bandwidth, LIMITED_JOB_REFRESH},
    config::{AgentConfig, Overrides},
    consumer,
    control::{ControlPlane, SiteShare},
    dry_run,
    executor::Executor,
    watch::Watches,
};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// Ferry agent: takes migration jobs for one site from NATS JetStream, copies and
/// verifies their objects, and reports progress to the control plane.
///
/// Settings: defaults < TOML file (--config) < FERRY_AGENT_* environment < flags. An
/// https:// control plane is reached over TLS, trusting FERRY_AGENT_TLS__CA_FILE (else
/// the system's roots) and presenting FERRY_AGENT_TLS__CERT_FILE and
/// FERRY_AGENT_TLS__KEY_FILE when it requires client certificates.
#[derive(Debug, Parser)]
#[command(name = "ferry-agent", version)]
struct Args {
    /// TOML configuration file.
    #[arg(long, env = "FERRY_AGENT_CONFIG")]
    config: Option<PathBuf>,
    /// The site (name or id) this agent serves.
    #[arg(long)]
    site: Option<String>,
    /// Control plane gRPC endpoint, http:// or https:// [default: http://127.0.0.1:50051].
    #[arg(long)]
    control_plane: Option<String>,
    /// NATS server [default: nats://127.0.0.1:4222].
    #[arg(long)]
    nats_url: Option<String>,
    /// Directory keeping the agent's id across restarts.
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// Objects moved at once [default: 16].
    #[arg(long)]
    concurrency: Option<usize>,
    /// Log format: text or json (one object a line, with the job id and the trace and
    /// span ids) [default: text].
    #[arg(long)]
    log_format: Option<String>,
    /// Log filter, e.g. info or ferry_agent=debug [default: info].
    #[arg(long)]
    log_filter: Option<String>,
    /// Where to answer GET /metrics: host:port, or off [default: 127.0.0.1:9465].
    #[arg(long)]
    metrics_listen: Option<String>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let overrides = Overrides {
        site: args.site,
        control_plane: args.control_plane,
        nats_url: args.nats_url,
        state_dir: args.state_dir,
        concurrency: args.concurrency,
        log_format: args.log_format,
        log_filter: args.log_filter,
        metrics_listen: args.metrics_listen,
    };
    let config = match AgentConfig::load(args.config.as_deref(), &overrides) {
        Ok(c) => c,
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
    let telemetry = match runtime.block_on(async { init_telemetry(&config) }) {
        Ok(guard) => guard,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = match runtime.block_on(run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "agent failed");
            ExitCode::FAILURE
        }
    };
    // Exports the spans still buffered while the runtime runs.
    telemetry.shutdown();
    code
}

/// Logs (text or JSON) and, when `OTEL_EXPORTER_OTLP_ENDPOINT` is set, traces.
fn init_telemetry(config: &AgentConfig) -> Result<ferry_telemetry::Guard, ferry_telemetry::Error> {
    ferry_telemetry::init(&ferry_telemetry::Settings {
        service: "ferry-agent",
        // Checked by `AgentConfig::validate`.
        format: config
            .log_format()
            .unwrap_or(ferry_telemetry::LogFormat::Text),
        filter: &config.log.filter,
    })
}

async fn run(config: AgentConfig) -> anyhow::Result<()> {
    let token = config.read_token().map_err(anyhow::Error::msg)?;
    if token.is_none() {
        warn!("no agent token configured (FERRY_AGENT_TOKEN or token_file): only a control plane with authentication off will accept this agent");
    }
    let config = Arc::new(config);
    let shutdown = CancellationToken::new();
    // Bound before registering: a port already taken stops the agent at once.
    let metrics_server = match config.metrics.addr() {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("metrics.listen: binding {addr}"))?;
            info!(addr = %listener.local_addr()?, "metrics listening");
            let stopped = shutdown.clone();
            Some(tokio::spawn(ferry_telemetry::metrics::serve(
                listener,
                async move { stopped.cancelled().await },
            )))
        }
        None => None,
    };
    let tls = config.tls.files();
    let control = tokio::select! {
        registered = ControlPlane::register(
            &config.control_plane,
            &config.site,
            config.concurrency,
            token,
            &tls,
            &config.state_dir,
        ) => Arc::new(registered?),
        signal = shutdown_signal() => {
            info!(signal, "stopped before registering");
            return Ok(());
        }
    };
    ferry_agent::metrics::init(&config.site, control.agent_id());
    let mut nats = async_nats::ConnectOptions::new();
    if let Some((user, password)) = config.nats_credentials().map_err(anyhow::Error::msg)? {
        use secrecy::ExposeSecret;
        info!(user, "connecting to NATS as its site's user");
        nats = nats.user_and_password(user, password.expose_secret().to_owned());
    }
    // Replies come to this site's own inboxes, the only ones its NATS user may read.
    let nats = nats
        .custom_inbox_prefix(ferry_proto::bus::agent_inbox_prefix(control.site_id()))
        .name(format!("ferry-agent-{}", control.agent_id()))
        .retry_on_initial_connect()
        .connect(config.nats_url.as_str())
        .await?;
    let dry_runs = tokio::spawn(dry_run::serve(
        nats.clone(),
        control.clone(),
        shutdown.clone(),
    ));
    let js = async_nats::jetstream::new(nats);

    // No task is taken before this agent knows its share of the site's limit.
    let site_bandwidth = Arc::new(Bandwidth::new(None));
    let share = tokio::select! {
        share = first_site_share(&control, &site_bandwidth) => share,
        signal = shutdown_signal() => {
            info!(signal, "stopped before taking work");
            return Ok(());
        }
    };
    let site_share = tokio::spawn(follow_site_share(
        control.clone(),
        site_bandwidth.clone(),
        share,
    ));
    let executor = Arc::new(Executor::new(
        control.clone(),
        js.clone(),
        config.clone(),
        site_bandwidth,
    ));
    // Ends only when the control plane refuses this agent's token: revoked, expired, or
    // bound to another site. The agent then stops rather than run on without a voice.
    let watches = Arc::new(Watches::new(control.clone()));
    let mut heartbeats = {
        let executor = executor.clone();
        let watches = watches.clone();
        let interval = control.heartbeat_interval();
        tokio::spawn(async move {
            // While a job with a bandwidth limit runs here, its agents must learn soon
            // that another joined it, or together they exceed its limit: then every
            // tick heartbeats, else one in `interval`.
            let mut tick = tokio::time::interval(interval.min(LIMITED_JOB_REFRESH));
            let mut last: Option<tokio::time::Instant> = None;
            loop {
                tick.tick().await;
                let due = last.is_none_or(|at| at.elapsed() >= interval);
                if !due && !executor.runs_limited_jobs() {
                    continue;
                }
                last = Some(tokio::time::Instant::now());
                match executor.heartbeat(false).await {
                    Ok(wanted) => watches.reconcile(&wanted),
                    Err(e) if refused(&e) => return e.message().to_owned(),
                    Err(e) => warn!(error = %e.message(), "heartbeat failed"),
                }
            }
        })
    };
    let last_heartbeat = executor.clone();
    let site_id = control.site_id().to_owned();
    let ack_wait = Duration::from_secs(config.ack_wait_secs);
    let task_slots = config.task_slots;
    let work = {
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            consumer::run(js, &site_id, ack_wait, task_slots, executor, shutdown).await
        })
    };
    let refusal = tokio::select! {
        signal = shutdown_signal() => {
            info!(signal, "shutting down: running tasks are handed back to the queue");
            None
        }
        refused = &mut heartbeats => {
            let reason = refused.unwrap_or_else(|e| format!("heartbeat task: {e}"));
            tracing::error!(reason, "the control plane refuses this agent's token; stopping: running tasks are handed back to the queue");
            Some(reason)
        }
    };
    shutdown.cancel();
    match tokio::time::timeout(Duration::from_secs(20), work).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => warn!(error = %e, "job consumer task failed"),
        Err(_) => warn!("the running task did not stop within 20 s"),
    }
    dry_runs.abort();
    heartbeats.abort();
    watches.stop();
    if let Some(server) = metrics_server {
        server.abort();
    }
    site_share.abort();
    if let Some(reason) = refusal {
        anyhow::bail!("the control plane refused this agent's token: {reason}");
    }
    if let Err(e) = last_heartbeat.heartbeat(true).await {
        warn!(error = %e.message(), "final heartbeat failed");
    }
    info!("stopped");
    Ok(())
}

/// A refusal of the agent's token itself, which no retry cures.
fn refused(status: &tonic::Status) -> bool {
    matches!(
        status.code(),
        tonic::Code::Unauthenticated | tonic::Code::PermissionDenied
    )
}

/// How often the site's bandwidth limit and its live agents are looked up again.
const SITE_SHARE_REFRESH: Duration = Duration::from_secs(5);

/// How long a starting agent of a site with a limit and other live agents waits before
/// sending: until each of them has looked its share up again and lowered it (one
/// refresh, and a second for the lookup itself).
const SITE_JOIN_HOLD: Duration = Duration::from_secs(SITE_SHARE_REFRESH.as_secs() + 1);

/// Looks up this agent's share of its site's limit until the control plane answers,
/// and applies it. An agent joining other live agents of a limited site holds off for
/// [`SITE_JOIN_HOLD`]: they go at their old, larger shares until they hear of it.
async fn first_site_share(control: &ControlPlane, bandwidth: &Bandwidth) -> Option<SiteShare> {
    let share = loop {
        match control.site_share().await {
            Ok(share) => break share,
            Err(e) => {
                warn!(error = %e.message(), "cannot read the site's bandwidth limit; trying again");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    };
    apply_site_share(bandwidth, share);
    if share.is_some_and(|s| s.agents > 1) {
        info!(
            hold_ms = SITE_JOIN_HOLD.as_millis() as u64,
            "the site's other agents share its limit: holding off until they know of this one"
        );
        bandwidth.hold_for(SITE_JOIN_HOLD);
    }
    share
}

/// Keeps this agent's share of its site's bandwidth limit current as the limit changes
/// and agents come and go, from `current`, the share it started with.
async fn follow_site_share(
    control: Arc<ControlPlane>,
    bandwidth: Arc<Bandwidth>,
    mut current: Option<SiteShare>,
) {
    let mut tick = tokio::time::interval_at(
        tokio::time::Instant::now() + SITE_SHARE_REFRESH,
        SITE_SHARE_REFRESH,
    );
    loop {
        tick.tick().await;
        match control.site_share().await {
            Ok(share) if share != current => {
                apply_site_share(&bandwidth, share);
                current = share;
            }
            Ok(_) => {}
            Err(e) => warn!(error = %e.message(), "cannot read the site's bandwidth limit"),
        }
    }
}

/// Paces everything this agent copies at `share` (`None`: the site has no limit).
fn apply_site_share(bandwidth: &Bandwidth, share: Option<SiteShare>) {
    match share {
        Some(s) => info!(
            limit = s.limit,
            agents = s.agents,
            share = s.share,
            "site bandwidth share"
        ),
        None => info!("site bandwidth unlimited"),
    }
    bandwidth.set_rate(share.map(|s| s.share));
}

async fn shutdown_signal() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        warn!("cannot install signal handlers; stop with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    }
}
