//! gRPC-Web for the console, beside plain gRPC and plain HTTP on one port.
//!
//! `tonic_web`'s layer translates gRPC-Web requests (any HTTP version) to gRPC and back,
//! but answers every other HTTP/1.1 request with 400, which would take `/metrics` and
//! the console's own files away from curl, Prometheus and browsers. This layer sends it
//! only the gRPC-Web requests, by content type, and everything else straight on.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use http::{header::CONTENT_TYPE, Request, Response};
use tonic::body::Body;
use tower::{Layer, Service, ServiceExt};

#[derive(Clone, Copy, Debug, Default)]
pub struct GrpcWebLayer;

impl<S: Clone> Layer<S> for GrpcWebLayer {
    type Service = GrpcWeb<S>;

    fn layer(&self, inner: S) -> GrpcWeb<S> {
        GrpcWeb {
            web: tonic_web::GrpcWebLayer::new().layer(inner.clone()),
            inner,
        }
    }
}

#[derive(Clone, Debug)]
pub struct GrpcWeb<S> {
    web: tonic_web::GrpcWebService<S>,
    inner: S,
}

/// Whether a request speaks gRPC-Web (`application/grpc-web`, `+proto`, `-text`, …).
fn is_grpc_web<B>(request: &Request<B>) -> bool {
    request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc-web"))
}

type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

impl<S> Service<Request<Body>> for GrpcWeb<S>
where
    S: Service<Request<Body>, Response = Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<Response<Body>, S::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Each call readies the clone it uses.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        if is_grpc_web(&request) {
            let web = self.web.clone();
            Box::pin(web.oneshot(request))
        } else {
            let inner = self.inner.clone();
            Box::pin(inner.oneshot(request))
        }
    }
}
