//! Start-up and shutdown of the control plane: data directory, master key, database and
//! migrations, then the gRPC server with health and reflection (over TLS when
//! configured) until SIGINT/SIGTERM.

use std::{sync::Arc, time::Duration};

use anyhow::Context;
use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;
use tonic_health::ServingStatus;
use tracing::{info, warn};

use crate::{
    bus::{self, Bus},
    clock::SharedClock,
    config::Config,
    grpc,
    service::{
        AccessEvents, Agents, Catalogue, DryRuns, Migrations, Recommendations, Schedules, Sessions,
        Tokens, Training, WhatIf,
    },
    store::Store,
    tls::ServerTls,
    vault::Vault,
};

/// Runs the control plane on the system clock until SIGINT or SIGTERM.
pub async fn run(config: Config) -> anyhow::Result<()> {
    serve(config, SharedClock::system(), shutdown_signal()).await
}

/// Runs the control plane on `clock` until `shutdown` resolves (to the reason it gives).
/// Embedders and tests use it to run on a [`crate::clock::ManualClock`].
pub async fn serve(
    config: Config,
    clock: SharedClock,
    shutdown: impl std::future::Future<Output = &'static str>,
) -> anyhow::Result<()> {
    prepare_data_dir(&config.data_dir)?;
    let vault = Vault::load(
        config.security.master_key.as_ref(),
        &config.master_key_file(),
    )?;
    let store = Store::connect(&config.database_url(), config.database.max_connections)
        .await
        .context("opening the catalogue database")?;
    info!(backend = store.backend_name(), "catalogue database ready");
    let catalogue = Catalogue::new(store.clone(), Arc::new(vault), clock.clone());
    let sessions = Sessions::default();
    let tokens = Tokens::new(catalogue.clone(), sessions.clone());
    if config.auth.enabled {
        tokens
            .bootstrap(
                &config.admin_token_file(),
                config.auth.admin_token_file.as_deref(),
            )
            .await
            .context("making the first admin token")?;
    }
    grpc::auth::warn_if_disabled(config.auth.enabled);
    let relay_wakeup = Arc::new(tokio::sync::Notify::new());
    let migrations = Migrations::new(catalogue.clone(), relay_wakeup.clone());
    let agents = Agents::new(catalogue.clone());
    let nats_credentials = config.nats.credentials().map_err(anyhow::Error::msg)?;
    let nats_user = nats_credentials.as_ref().map(|c| c.user.clone());
    let bus = Bus::connect(&config.nats.url, nats_credentials)
        .await
        .context("connecting to NATS")?;
    info!(url = %config.nats.url, user = nats_user.as_deref().unwrap_or("(none)"), "dispatching over NATS JetStream");
    let background = [
        tokio::spawn(bus::relay::run(store.clone(), bus.clone(), relay_wakeup)),
        tokio::spawn(bus::progress::run(bus.clone(), migrations.clone())),
        tokio::spawn(bus::reconciler::run(migrations.clone())),
        tokio::spawn(bus::aggregator::run(bus.clone(), store.clone())),
        tokio::spawn(sessions.clone().run(store.clone(), clock.clone())),
    ];
    let events = AccessEvents::new(catalogue.clone(), bus.clone());
    let recommendations = Recommendations::new(catalogue.clone(), migrations.clone());
    let autopilot = tokio::spawn(crate::service::autopilot::run(
        catalogue.clone(),
        recommendations.clone(),
        Duration::from_secs(config.autopilot.interval_secs),
    ));
    let schedules = Schedules::new(catalogue.clone(), migrations.clone());
    let scheduled_syncs = tokio::spawn(crate::service::schedules::run(
        schedules.clone(),
        Duration::from_secs(config.autopilot.schedules_interval_secs),
    ));
    let continuous_syncs = tokio::spawn(crate::service::schedules::run_changes(schedules.clone()));
    let training = Training::new(catalogue.clone());
    let scheduled_training = tokio::spawn(crate::service::training::run(
        training.clone(),
        Duration::from_secs(config.training.interval_secs),
    ));

    let (health, health_service) = tonic_health::server::health_reporter();
    set_health(&health, ServingStatus::Serving).await;
    let reflection_v1 = reflection()
        .build_v1()
        .context("building reflection (v1)")?;
    let reflection_v1alpha = reflection()
        .build_v1alpha()
        .context("building reflection (v1alpha)")?;

    let addr = config.listen_addr().map_err(anyhow::Error::msg)?;
    let tls = ServerTls::load(&config.tls).map_err(anyhow::Error::msg)?;
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    let bound = listener.local_addr()?;
    let dry_runs = DryRuns::new(
        catalogue.clone(),
        bus.clone(),
        Duration::from_secs(config.agents.dry_run_timeout_secs),
    );
    let mut authenticator =
        grpc::auth::Authenticator::new(tokens.clone(), sessions, store.clone(), clock);
    if !config.auth.enabled {
        authenticator = authenticator.disabled();
    }
    let whatif = WhatIf::new(catalogue.clone());
    crate::metrics::init();
    crate::metrics::catalogue::set_job_stall_threshold(config.alerts.job_stall_secs);
    if let Some(at) = tls.as_ref().and_then(ServerTls::expires_at) {
        crate::metrics::catalogue::set_certificate_expiry(at);
    }
    let metrics = {
        let (store, bus) = (store.clone(), bus.clone());
        move || async move {
            (
                [(
                    axum::http::header::CONTENT_TYPE,
                    ferry_telemetry::metrics::CONTENT_TYPE,
                )],
                crate::metrics::catalogue::render(&store, &bus).await,
            )
        }
    };
    let routes = grpc::routes(grpc::UseCases {
        catalogue,
        migrations,
        dry_runs,
        agents,
        events,
        recommendations,
        training,
        whatif,
        tokens,
        schedules,
    })
    .into_axum_router()
    .route("/metrics", axum::routing::get(metrics))
    .merge(crate::console::routes());
    // HTTP/1.1 too, so that a Prometheus scraper (or curl) can read /metrics, and a
    // browser the console and its gRPC-Web calls, here. gRPC-Web is translated first
    // (outermost), so authentication and every service see plain gRPC, and their
    // answers, refusals included, go back to the browser as gRPC-Web.
    let router = tonic::transport::Server::builder()
        .accept_http1(true)
        .layer(grpc::web::GrpcWebLayer)
        .layer(grpc::span::RpcSpanLayer)
        .layer(grpc::auth::AuthLayer::new(authenticator))
        .add_routes(routes.into())
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha);

    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    // Tonic sets TCP_NODELAY only on the sockets of a listener it binds itself. Without
    // it, the last frames of an answer can wait for the client's delayed ACK (Nagle's
    // algorithm): an agent's heartbeat took 45 ms against 3 ms spent serving it.
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    let stopped = async {
        let _ = stop_rx.await;
    };
    let mut server = match &tls {
        Some(tls) => {
            tokio::spawn(router.serve_with_incoming_shutdown(tls.incoming(incoming), stopped))
        }
        None => tokio::spawn(router.serve_with_incoming_shutdown(incoming, stopped)),
    };
    info!(
        addr = %bound,
        version = env!("CARGO_PKG_VERSION"),
        tls = tls.is_some(),
        mtls = tls.as_ref().is_some_and(ServerTls::is_mutual),
        "control plane listening"
    );

    tokio::select! {
        result = &mut server => {
            // The server ended without being asked to: that is a failure.
            result.context("gRPC server task")?.context("gRPC server")?;
            anyhow::bail!("gRPC server stopped unexpectedly");
        }
        signal = shutdown => {
            info!(signal, "shutting down");
        }
    }
    set_health(&health, ServingStatus::NotServing).await;
    let _ = stop_tx.send(());
    let grace = Duration::from_secs(config.shutdown_grace_secs);
    match tokio::time::timeout(grace, &mut server).await {
        Ok(result) => result.context("gRPC server task")?.context("gRPC server")?,
        Err(_) => {
            warn!(
                grace_secs = grace.as_secs(),
                "requests still running after the grace period"
            );
            server.abort();
        }
    }
    for task in background {
        task.abort();
    }
    autopilot.abort();
    scheduled_syncs.abort();
    continuous_syncs.abort();
    scheduled_training.abort();
    store.close().await;
    info!("stopped");
    Ok(())
}

fn reflection() -> tonic_reflection::server::Builder<'static> {
    tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(ferry_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
}

async fn set_health(reporter: &tonic_health::server::HealthReporter, status: ServingStatus) {
    reporter.set_service_status("", status).await;
    for name in ferry_proto::SERVICE_NAMES {
        reporter.set_service_status(*name, status).await;
    }
}

/// Creates the data directory, private to this user, if it is missing.
fn prepare_data_dir(dir: &std::path::Path) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating data directory {}", dir.display()))
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
