//! Logging and traces: structured `tracing` events to stderr, as text or JSON lines,
//! and OpenTelemetry spans exported over OTLP when the `OTEL_*` variables ask for it
//! (see `ferry_telemetry`).

use crate::config::{LogConfig, LogFormat};

/// Installs the global subscriber. The filter was checked by `Config::validate`. Call
/// it inside the Tokio runtime; keep the guard until the server has stopped.
pub fn init(config: &LogConfig) -> Result<ferry_telemetry::Guard, ferry_telemetry::Error> {
    ferry_telemetry::init(&ferry_telemetry::Settings {
        service: "ferry-control-plane",
        format: match config.format {
            LogFormat::Text => ferry_telemetry::LogFormat::Text,
            LogFormat::Json => ferry_telemetry::LogFormat::Json,
        },
        filter: &config.filter,
    })
}
