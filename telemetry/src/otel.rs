//! The OpenTelemetry tracer behind `tracing` spans, configured by the standard
//! environment variables: `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) turns export on, `OTEL_EXPORTER_OTLP_PROTOCOL`
//! picks `grpc` or `http/protobuf`, `OTEL_SERVICE_NAME` and `OTEL_RESOURCE_ATTRIBUTES`
//! name the process, `OTEL_TRACES_SAMPLER` and `OTEL_TRACES_SAMPLER_ARG` sample, and
//! `OTEL_BSP_*` tune the batching. `OTEL_SDK_DISABLED=true` or
//! `OTEL_TRACES_EXPORTER=none` turn it off.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::{trace::SdkTracerProvider, Resource};
use tracing_subscriber::registry::LookupSpan;

use crate::Error;

/// The instrumentation scope of Ferry's spans.
const SCOPE: &str = "ferry";

/// Whether the environment asks for spans to be exported.
pub fn export_configured() -> bool {
    let set = |name: &str| std::env::var(name).is_ok_and(|v| !v.trim().is_empty());
    let value = |name: &str| {
        std::env::var(name)
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase()
    };
    if value("OTEL_SDK_DISABLED") == "true" || value("OTEL_TRACES_EXPORTER") == "none" {
        return false;
    }
    set("OTEL_EXPORTER_OTLP_ENDPOINT")
        || set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        || value("OTEL_TRACES_EXPORTER") == "otlp"
}

/// A provider exporting over OTLP in batches, or `None` when the environment does not
/// ask for export.
pub fn exporting_provider(service: &'static str) -> Result<Option<SdkTracerProvider>, Error> {
    if !export_configured() {
        return Ok(None);
    }
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .build()
        .map_err(|e| Error::Exporter(e.to_string()))?;
    Ok(Some(
        SdkTracerProvider::builder()
            .with_resource(resource(service))
            .with_batch_exporter(exporter)
            .build(),
    ))
}

/// A provider that makes trace and span ids but exports nothing: JSON log lines carry
/// the ids, and contexts still propagate to processes that do export.
pub fn local_provider() -> SdkTracerProvider {
    SdkTracerProvider::builder()
        .with_resource(resource("ferry"))
        .build()
}

/// The `tracing` layer that turns spans into OpenTelemetry spans of `provider`.
pub fn tracing_layer<S>(
    provider: &SdkTracerProvider,
) -> tracing_opentelemetry::OpenTelemetryLayer<S, opentelemetry_sdk::trace::SdkTracer>
where
    S: tracing::Subscriber + for<'span> LookupSpan<'span>,
{
    tracing_opentelemetry::layer()
        .with_tracer(provider.tracer(SCOPE))
        .with_tracked_inactivity(false)
}

/// The resource: `OTEL_SERVICE_NAME` and `OTEL_RESOURCE_ATTRIBUTES` when set, else
/// `service` as `service.name`; the version as `service.version`.
fn resource(service: &'static str) -> Resource {
    let builder = Resource::builder().with_attribute(opentelemetry::KeyValue::new(
        "service.version",
        env!("CARGO_PKG_VERSION"),
    ));
    let named = std::env::var("OTEL_SERVICE_NAME").is_ok_and(|v| !v.trim().is_empty())
        || std::env::var("OTEL_RESOURCE_ATTRIBUTES").is_ok_and(|v| v.contains("service.name="));
    if named {
        builder.build()
    } else {
        builder.with_service_name(service).build()
    }
}
