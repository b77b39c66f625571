//! One tracing span per RPC, as a `tower` layer around every service: `rpc` with the
//! service, the method, the caller's address and, under TLS, the subject of the
//! caller's certificate (`client_cert`, empty without one), so each line a call logs
//! says which call and whose it was. The call's end is logged at debug level with its
//! gRPC status and how long it took.

use std::{
    task::{Context, Poll},
    time::Instant,
};

use futures::future::BoxFuture;
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
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let (service, method) = service_and_method(request.uri().path());
        let peer = peer::remote_addr(request.extensions())
            .map(|addr| addr.to_string())
            .unwrap_or_default();
        let client_cert = peer::client_cert_subject(request.extensions()).unwrap_or_default();
        let span = tracing::info_span!(
            "rpc",
            service = %service,
            method = %method,
            peer = %peer,
            client_cert = %client_cert
        );
        let started = Instant::now();
        let call = span.in_scope(|| self.inner.call(request));
        Box::pin(
            async move {
                let answer = call.await;
                let elapsed_ms = started.elapsed().as_secs_f64() * 1e3;
                match &answer {
                    Ok(response) => match grpc_status(response.headers()) {
                        Some(code) => tracing::debug!(code, elapsed_ms, "rpc answered"),
                        // The status follows in the trailers.
                        None => tracing::debug!(elapsed_ms, "rpc answering"),
                    },
                    Err(e) => tracing::debug!(error = %e, elapsed_ms, "rpc failed"),
                }
                answer
            }
            .instrument(span),
        )
    }
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
