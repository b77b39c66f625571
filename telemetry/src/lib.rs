//! Ferry's observability, shared by the control plane, the agents and the CLI:
//!
//! - [`init`] installs logging (text or JSON lines on stderr) and, when the standard
//!   `OTEL_*` variables ask for it, OpenTelemetry traces exported over OTLP;
//! - [`propagation`] carries the W3C trace context in gRPC metadata and NATS headers, so
//!   one migration is one trace across processes;
//! - [`metrics`] registers Prometheus metrics and renders the text exposition, which
//!   [`metrics::serve`] answers on `GET /metrics` where a process has no HTTP server of
//!   its own.

mod json;
pub mod metrics;
mod otel;
pub mod propagation;

use std::io::IsTerminal;

use tracing_subscriber::{fmt, layer::SubscriberExt, util::SubscriberInitExt, EnvFilter, Layer};

pub use otel::export_configured;

/// Why telemetry could not be installed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("log filter '{filter}' is not valid: {reason}")]
    Filter { filter: String, reason: String },
    #[error("OpenTelemetry exporter: {0}")]
    Exporter(String),
    #[error("installing the log subscriber: {0}")]
    Install(String),
    #[error("serving metrics: {0}")]
    Metrics(String),
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines, coloured on a terminal.
    Text,
    /// One JSON object a line, with the fields of every span in scope (the job id among
    /// them) and the trace and span ids.
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!("'{other}' must be text or json")),
        }
    }
}

/// What [`init`] installs.
#[derive(Clone, Debug)]
pub struct Settings<'a> {
    /// `service.name` of the exported spans unless `OTEL_SERVICE_NAME` says otherwise.
    pub service: &'static str,
    pub format: LogFormat,
    /// An `EnvFilter` directive, e.g. `info` or `ferry_agent=debug`.
    pub filter: &'a str,
}

/// Flushes and stops the trace exporter when dropped (or at [`Guard::shutdown`]); hold
/// it for the life of the process. Drop it while the async runtime still runs: the
/// gRPC exporter's connection lives on it.
#[must_use = "dropping the guard stops trace export"]
pub struct Guard {
    provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
    exporting: bool,
}

impl Guard {
    /// Whether spans leave this process (an OTLP endpoint is configured).
    pub fn exporting(&self) -> bool {
        self.exporting
    }

    /// Exports the spans still buffered, then stops the exporter.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if let Some(provider) = self.provider.take() {
            if let Err(e) = provider.shutdown() {
                eprintln!("warning: flushing traces at exit: {e}");
            }
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Installs the global subscriber: logs to stderr in `settings.format`, filtered by
/// `settings.filter`, and spans exported over OTLP when [`export_configured`]. JSON logs
/// carry trace and span ids even when nothing is exported, so lines of one call can be
/// found across processes. Call it inside the Tokio runtime when traces may be
/// exported (the gRPC exporter connects from it).
pub fn init(settings: &Settings<'_>) -> Result<Guard, Error> {
    let filter = EnvFilter::try_new(settings.filter).map_err(|e| Error::Filter {
        filter: settings.filter.to_owned(),
        reason: e.to_string(),
    })?;
    let exporting = otel::exporting_provider(settings.service)?;
    let exports = exporting.is_some();
    let provider =
        exporting.or_else(|| (settings.format == LogFormat::Json).then(otel::local_provider));
    let layer = provider.as_ref().map(otel::tracing_layer);
    let logs = match settings.format {
        LogFormat::Text => fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::stderr().is_terminal())
            .boxed(),
        LogFormat::Json => json::TraceIds::default()
            .and_then(
                fmt::layer()
                    .fmt_fields(fmt::format::JsonFields::new())
                    .event_format(json::JsonLines)
                    .with_writer(std::io::stderr),
            )
            .boxed(),
    };
    tracing_subscriber::registry()
        .with(layer)
        .with(logs)
        .with(filter)
        .try_init()
        .map_err(|e| Error::Install(e.to_string()))?;
    Ok(Guard {
        provider,
        exporting: exports,
    })
}
