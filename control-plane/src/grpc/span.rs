//! One tracing span per RPC, as a `tower` layer around every service: `rpc` with the
//! service, the method, the caller's address and, under TLS, the subject of the
//! caller's certificate (`client_cert`, empty without one), so each line a call logs
//! says which call and whose it was. A W3C `traceparent` in the request's metadata
//! makes the span a child of the caller's. The call's end (the answer's last frame,
//! where a gRPC status travels in the trailers) is logged at debug level with its
//! status and how long it took, and counted in `ferry_grpc_server_handled_total` and
//! `ferry_grpc_server_handling_seconds`.

use std::{
    pin::Pin,
    task::{Context, Poll},
    time::Instant,
};

use futures::future::BoxFuture;
use http_body::{Body, Frame, SizeHint};
use tower::{Layer, Service};
use tracing::Instrument;

use super::peer;

/// Wraps a service so that each request runs in its RPC's span.
#[derive(Clone, Copy, Debug, Default)]
pub struct RpcSpanLayer;

impl<S> Layer<S> for RpcSpanLayer {
    type Service = RpcSpan<S>;

    fn layer(&self, inner: S) -> RpcSpan<S> {
        RpcSpan { inner }
    }
}

#[derive(Clone, Debug)]
pub struct RpcSpan<S> {
    inner: S,
}

impl<S, B, R> Service<http::Request<B>> for RpcSpan<S>
where
    S: Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
    S::Error: std::fmt::Display,
    R: Body<Data = bytes::Bytes> + Send + Unpin + 'static,
    R::Error: Into<tonic::codegen::StdError>,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let (service, method) = service_and_method(request.uri().path());
        let (service, method) = (service.to_owned(), method.to_owned());
        let grpc = is_grpc(request.headers());
        let peer = peer::remote_addr(request.extensions())
            .map(|addr| addr.to_string())
            .unwrap_or_default();
        let client_cert = peer::client_cert_subject(request.extensions()).unwrap_or_default();
        let span = tracing::info_span!(
            "rpc",
            service = %service,
            method = %method,
            peer = %peer,
            client_cert = %client_cert,
            // For the exported span: named after the call, as OpenTelemetry's RPC
            // conventions have it, and its status once the answer ends.
            otel.name = %format!("{service}/{method}"),
            otel.kind = "server",
            rpc.system = "grpc",
            otel.status_code = tracing::field::Empty,
            rpc.grpc.status_code = tracing::field::Empty,
        );
        ferry_telemetry::propagation::set_parent_from_http(&span, request.headers());
        let started = Instant::now();
        let call = span.in_scope(|| self.inner.call(request));
        let observed = span.clone();
        Box::pin(
            async move {
                let answer = call.await;
                match answer {
                    Ok(response) => {
                        let in_headers = grpc_status(response.headers());
                        let observation = grpc.then(|| Observation {
                            service,
                            method,
                            started,
                            span: observed,
                        });
                        Ok(response.map(|body| {
                            tonic::body::Body::new(MeteredBody {
                                inner: body,
                                in_headers,
                                observation,
                            })
                        }))
                    }
                    Err(e) => {
                        let elapsed_ms = started.elapsed().as_secs_f64() * 1e3;
                        tracing::debug!(error = %e, elapsed_ms, "rpc failed");
                        Err(e)
                    }
                }
            }
            .instrument(span),
        )
    }
}

/// What is needed to count a call once its status is known.
struct Observation {
    service: String,
    method: String,
    started: Instant,
    span: tracing::Span,
}

impl Observation {
    fn finish(self, code: tonic::Code) {
        let elapsed = self.started.elapsed();
        let name = format!("{code:?}");
        crate::metrics::rpc_finished(&self.service, &self.method, &name, elapsed);
        self.span.record("rpc.grpc.status_code", code as i64);
        if code != tonic::Code::Ok {
            self.span.record("otel.status_code", "ERROR");
        }
        let elapsed_ms = elapsed.as_secs_f64() * 1e3;
        self.span
            .in_scope(|| tracing::debug!(code = %name, elapsed_ms, "rpc answered"));
    }
}

/// An answer's body that counts its call when its gRPC status goes out: in the
/// trailers, or in the headers of a refusal; a body dropped before either (the caller
/// went away) counts as `Cancelled`.
struct MeteredBody<B> {
    inner: B,
    in_headers: Option<i64>,
    observation: Option<Observation>,
}

impl<B> MeteredBody<B> {
    fn finish(&mut self, code: tonic::Code) {
        if let Some(observation) = self.observation.take() {
            observation.finish(code);
        }
    }
}

impl<B: Body + Unpin> Body for MeteredBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(code) = frame.trailers_ref().and_then(grpc_status) {
                    self.finish(code_of(code));
                }
            }
            Poll::Ready(Some(Err(_))) => self.finish(tonic::Code::Internal),
            Poll::Ready(None) => {
                let code = self.in_headers.map_or(tonic::Code::Unknown, code_of);
                self.finish(code);
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<B> Drop for MeteredBody<B> {
    fn drop(&mut self) {
        let code = self.in_headers.map_or(tonic::Code::Cancelled, code_of);
        self.finish(code);
    }
}

fn code_of(status: i64) -> tonic::Code {
    tonic::Code::from(i32::try_from(status).unwrap_or(2))
}

/// A gRPC call (also a gRPC-Web one, translated before this layer).
fn is_grpc(headers: &http::HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc"))
}

/// `("ferry.v1.SiteService", "CreateSite")` from `/ferry.v1.SiteService/CreateSite`;
/// the path itself and an empty method for anything else (`/metrics`).
fn service_and_method(path: &str) -> (&str, &str) {
    path.trim_start_matches('/')
        .split_once('/')
        .unwrap_or((path, ""))
}

/// The status an answer carries in its headers, as a refusal does ("trailers only"); an
/// answer with a body sends it in the trailers, which have not come yet.
fn grpc_status(headers: &http::HeaderMap) -> Option<i64> {
    headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_grpc_path_names_its_service_and_method() {
        assert_eq!(
            service_and_method("/ferry.v1.SiteService/CreateSite"),
            ("ferry.v1.SiteService", "CreateSite")
        );
        assert_eq!(service_and_method("/metrics"), ("/metrics", ""));
    }
}
