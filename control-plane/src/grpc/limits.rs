//! How large a request message each `ferry.v1` service reads, and the answer past it.
//!
//! tonic reads a message's 5-byte frame header and refuses a length above the
//! service's `max_decoding_message_size` before it buffers the body, so an oversized
//! request costs the server next to nothing and the connection stays usable. But it
//! answers `OUT_OF_RANGE`, where gRPC's own servers answer `RESOURCE_EXHAUSTED`, the
//! code clients know as "too large: do not retry as is". [`SizeLimited`] wraps each
//! service with its limit and turns that refusal into `RESOURCE_EXHAUSTED` naming the
//! service and its limit.

use std::{
    convert::Infallible,
    task::{Context, Poll},
};

use futures::future::BoxFuture;
use tonic::{body::Body, server::NamedService, Code, Status};
use tower::Service;

const MIB: usize = 1 << 20;

/// Every service but access events: a request carries one resource (a site with its
/// options and credentials, a dataset with at most 64 labels, a policy) or a reference
/// to one, a few KiB at most. 4 MiB is gRPC's usual default, so a client library's own
/// limit agrees with it.
pub const REQUEST_LIMIT: usize = 4 * MIB;

/// `AccessEventService`: a batch of events (about 100 bytes each) from a gateway that
/// buffers between flushes; 16 MiB is some 150,000 events per request or stream message.
/// A larger limit would let one call hold that much more memory while it is decoded.
pub const ACCESS_EVENTS_LIMIT: usize = 16 * MIB;

/// Builds a generated service with a request limit and wraps it so that a request
/// above the limit is answered `RESOURCE_EXHAUSTED`.
macro_rules! size_limited {
    ($server:expr, $limit:expr) => {
        $crate::grpc::limits::SizeLimited::new($server.max_decoding_message_size($limit), $limit)
    };
}
pub(crate) use size_limited;

/// A `ferry.v1` service whose refusals of oversized requests say `RESOURCE_EXHAUSTED`.
#[derive(Clone, Debug)]
pub struct SizeLimited<S> {
    inner: S,
    limit: usize,
}

impl<S> SizeLimited<S> {
    /// `limit` must be the one `inner` was built with: it is what the answer names.
    pub fn new(inner: S, limit: usize) -> Self {
        SizeLimited { inner, limit }
    }
}

impl<S: NamedService> NamedService for SizeLimited<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, B> Service<http::Request<B>> for SizeLimited<S>
where
    S: Service<http::Request<B>, Response = http::Response<Body>, Error = Infallible>
        + NamedService,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let call = self.inner.call(request);
        let limit = self.limit;
        Box::pin(async move {
            let mut response = call.await?;
            refuse_oversized(&mut response, S::NAME, limit);
            Ok(response)
        })
    }
}

/// Rewrites tonic's `OUT_OF_RANGE` refusal of a request message. The control plane
/// itself never answers `OUT_OF_RANGE` (see `grpc::status`), and tonic uses it in an
/// answer's headers only for a request above the limit; a response too large to send
/// would fail in the trailers, which this leaves alone.
fn refuse_oversized(response: &mut http::Response<Body>, service: &str, limit: usize) {
    let out_of_range = (Code::OutOfRange as i32).to_string();
    if response.headers().get("grpc-status").map(|v| v.as_bytes()) != Some(out_of_range.as_bytes())
    {
        return;
    }
    // tonic leaves its status beside the headers it wrote: "…found N bytes…".
    let found = response
        .extensions()
        .get::<Status>()
        .and_then(|s| found_bytes(s.message()));
    let status = Status::resource_exhausted(too_large(service, limit, found));
    tracing::warn!(
        service,
        limit,
        found,
        "refused an oversized request message"
    );
    // The message is plain ASCII, which always makes valid header values.
    let _ = status.add_header(response.headers_mut());
    response.extensions_mut().insert(status);
}

fn too_large(service: &str, limit: usize, found: Option<u64>) -> String {
    let size = found.map(|n| format!(" of {n} bytes")).unwrap_or_default();
    format!(
        "request message{size} is larger than {service} accepts: at most {limit} bytes ({} MiB)",
        limit / MIB
    )
}

/// The length tonic found, from its message
/// `Error, decoded message length too large: found N bytes, the limit is: L bytes`.
fn found_bytes(message: &str) -> Option<u64> {
    let (_, rest) = message.split_once("found ")?;
    rest.split_once(' ')?.0.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_out_of_range_refusal_becomes_resource_exhausted_naming_the_limit() {
        let tonic_refusal = Status::out_of_range(
            "Error, decoded message length too large: found 104857607 bytes, \
             the limit is: 4194304 bytes",
        );
        let mut response = tonic_refusal.into_http::<Body>();
        refuse_oversized(&mut response, "ferry.v1.SiteService", REQUEST_LIMIT);
        let status = Status::from_header_map(response.headers()).unwrap();
        assert_eq!(status.code(), Code::ResourceExhausted);
        assert_eq!(
            status.message(),
            "request message of 104857607 bytes is larger than ferry.v1.SiteService \
             accepts: at most 4194304 bytes (4 MiB)"
        );
    }

    #[test]
    fn other_answers_are_left_alone() {
        let mut response = Status::invalid_argument("site.uri: bad").into_http::<Body>();
        refuse_oversized(&mut response, "ferry.v1.SiteService", REQUEST_LIMIT);
        let status = Status::from_header_map(response.headers()).unwrap();
        assert_eq!(
            (status.code(), status.message()),
            (Code::InvalidArgument, "site.uri: bad")
        );
        let mut ok = http::Response::new(Body::empty());
        refuse_oversized(&mut ok, "ferry.v1.SiteService", REQUEST_LIMIT);
        assert!(ok.headers().get("grpc-status").is_none());
    }

    #[test]
    fn a_refusal_without_tonic_s_detail_still_names_the_limit() {
        assert_eq!(
            too_large("ferry.v1.AccessEventService", ACCESS_EVENTS_LIMIT, None),
            "request message is larger than ferry.v1.AccessEventService accepts: \
             at most 16777216 bytes (16 MiB)"
        );
        assert_eq!(found_bytes("something else"), None);
    }
}
