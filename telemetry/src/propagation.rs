//! The W3C trace context (`traceparent`, `tracestate`) across process boundaries: in
//! gRPC metadata from a client to the control plane, in NATS message headers between
//! the control plane and the agents, and as a stored `traceparent` string where work
//! waits in the catalogue (a job, an outbox message) before it goes on.
//!
//! Without a tracer (no `OTEL_*` export and text logs) spans have no context: nothing
//! is injected and what arrives is ignored.

use std::collections::HashMap;

use opentelemetry::{
    propagation::{Extractor, Injector, TextMapPropagator},
    trace::TraceContextExt,
    Context,
};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The W3C header carrying the trace and parent span ids.
pub const TRACEPARENT: &str = "traceparent";

/// The `traceparent` of `span`, if it belongs to a trace.
pub fn traceparent(span: &Span) -> Option<String> {
    let context = span.context();
    if !context.span().span_context().is_valid() {
        return None;
    }
    let mut fields = HashMap::new();
    TraceContextPropagator::new().inject_context(&context, &mut fields);
    fields.remove(TRACEPARENT)
}

/// The `traceparent` of the current span, if it belongs to a trace.
pub fn current_traceparent() -> Option<String> {
    traceparent(&Span::current())
}

/// Whether two `traceparent` values name the same trace.
pub fn same_trace(a: &str, b: &str) -> bool {
    let trace_id = |traceparent: &str| traceparent.split('-').nth(1).map(str::to_owned);
    trace_id(a).is_some() && trace_id(a) == trace_id(b)
}

/// Makes `span` a child of the remote span `traceparent` names. A missing or malformed
/// value leaves it where it was (a root, or a child of the current span).
pub fn set_parent(span: &Span, traceparent: Option<&str>) {
    let Some(value) = traceparent else { return };
    let mut fields = HashMap::new();
    fields.insert(TRACEPARENT.to_owned(), value.to_owned());
    adopt(span, TraceContextPropagator::new().extract(&fields));
}

/// Makes `span` a child of the context in HTTP/2 headers (gRPC metadata), if any.
pub fn set_parent_from_http(span: &Span, headers: &http::HeaderMap) {
    adopt(
        span,
        TraceContextPropagator::new().extract(&HttpHeaders(headers)),
    );
}

/// Makes `span` a child of the context in a NATS message's headers, if any.
pub fn set_parent_from_nats(span: &Span, headers: Option<&async_nats::HeaderMap>) {
    if let Some(headers) = headers {
        adopt(
            span,
            TraceContextPropagator::new().extract(&NatsHeaders(headers)),
        );
    }
}

/// Writes the current span's context into gRPC request metadata.
pub fn inject_grpc(metadata: &mut tonic::metadata::MetadataMap) {
    let context = Span::current().context();
    if context.span().span_context().is_valid() {
        TraceContextPropagator::new().inject_context(&context, &mut GrpcMetadata(metadata));
    }
}

/// Writes the current span's context into NATS message headers.
pub fn inject_nats(headers: &mut async_nats::HeaderMap) {
    let context = Span::current().context();
    if context.span().span_context().is_valid() {
        TraceContextPropagator::new().inject_context(&context, &mut NatsHeadersMut(headers));
    }
}

/// Writes a stored `traceparent` into NATS message headers.
pub fn insert_traceparent(headers: &mut async_nats::HeaderMap, traceparent: &str) {
    headers.insert(TRACEPARENT, traceparent);
}

fn adopt(span: &Span, context: Context) {
    if context.span().span_context().is_valid() {
        // Fails only when no OpenTelemetry layer is installed or the span has started
        // already: the span then stays where it is.
        let _ = span.set_parent(context);
    }
}

/// A tonic interceptor that sends the current span's context with each call.
pub fn grpc_interceptor(
    mut request: tonic::Request<()>,
) -> Result<tonic::Request<()>, tonic::Status> {
    inject_grpc(request.metadata_mut());
    Ok(request)
}

struct HttpHeaders<'a>(&'a http::HeaderMap);

impl Extractor for HttpHeaders<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

struct GrpcMetadata<'a>(&'a mut tonic::metadata::MetadataMap);

impl Injector for GrpcMetadata<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(key), Ok(value)) = (
            tonic::metadata::MetadataKey::from_bytes(key.as_bytes()),
            value.parse(),
        ) {
            self.0.insert(key, value);
        }
    }
}

struct NatsHeaders<'a>(&'a async_nats::HeaderMap);

impl Extractor for NatsHeaders<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(async_nats::HeaderValue::as_str)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(name, _)| name.as_ref()).collect()
    }
}

struct NatsHeadersMut<'a>(&'a mut async_nats::HeaderMap);

impl Injector for NatsHeadersMut<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key, value.as_str());
    }
}

#[cfg(test)]
mod tests {
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    fn traced<T>(f: impl FnOnce() -> T) -> T {
        let provider = crate::otel::local_provider();
        let subscriber = tracing_subscriber::registry().with(crate::otel::tracing_layer(&provider));
        tracing::subscriber::with_default(subscriber, f)
    }

    fn trace_id(traceparent: &str) -> &str {
        traceparent.split('-').nth(1).unwrap_or_default()
    }

    #[test]
    fn a_span_adopts_a_remote_parent_and_passes_its_trace_on() {
        traced(|| {
            let remote = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
            let span = tracing::info_span!("task");
            set_parent(&span, Some(remote));
            let own = traceparent(&span).unwrap_or_default();
            assert_eq!(trace_id(&own), "4bf92f3577b34da6a3ce929d0e0e4736");
            assert_ne!(own, remote, "the span has its own id");

            let mut headers = async_nats::HeaderMap::new();
            span.in_scope(|| inject_nats(&mut headers));
            let child = tracing::info_span!("report");
            set_parent_from_nats(&child, Some(&headers));
            let sent = traceparent(&child).unwrap_or_default();
            assert_eq!(trace_id(&sent), "4bf92f3577b34da6a3ce929d0e0e4736");

            let mut metadata = tonic::metadata::MetadataMap::new();
            child.in_scope(|| inject_grpc(&mut metadata));
            let http = metadata.into_headers();
            let call = tracing::info_span!("rpc");
            set_parent_from_http(&call, &http);
            assert_eq!(
                trace_id(&traceparent(&call).unwrap_or_default()),
                "4bf92f3577b34da6a3ce929d0e0e4736"
            );
        });
    }

    #[test]
    fn a_malformed_traceparent_leaves_the_span_a_root() {
        traced(|| {
            let span = tracing::info_span!("task");
            set_parent(&span, Some("00-nonsense-01"));
            let own = traceparent(&span).unwrap_or_default();
            assert_eq!(own.len(), 55, "a fresh trace: {own}");
        });
    }

    #[test]
    fn traces_are_told_apart_by_their_trace_id() {
        let a = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let a_child = "00-4bf92f3577b34da6a3ce929d0e0e4736-1111111111111111-01";
        let b = "00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-01";
        assert!(same_trace(a, a_child));
        assert!(!same_trace(a, b));
        assert!(!same_trace("garbage", "garbage"));
    }

    #[test]
    fn without_a_tracer_nothing_is_sent() {
        let span = tracing::info_span!("x");
        let mut headers = async_nats::HeaderMap::new();
        span.in_scope(|| inject_nats(&mut headers));
        assert!(headers.get(TRACEPARENT).is_none());
        assert_eq!(traceparent(&span), None);
    }
}
