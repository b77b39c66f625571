//! The HTTP service of the S3 test server: s3s-fs behind the injected faults, the
//! answers it words unlike AWS's on request, and the listings it gets wrong.

use std::sync::{
    atomic::{AtomicBool, Ordering},
    Arc,
};

use super::{
    counters::{Counters, InFlight},
    faults::{self, Answer, Faults, ServerSideOp},
    listing,
};

/// The S3 service behind the injected faults.
#[derive(Clone)]
pub(super) struct FaultyService {
    pub(super) inner: s3s::service::S3Service,
    pub(super) faults: Faults,
    pub(super) counters: Counters,
    pub(super) root: std::path::PathBuf,
    /// Object listings carry each object's ETag, as AWS's do (see
    /// [`S3Server::list_etags`]).
    pub(super) list_etags: Arc<AtomicBool>,
}

impl FaultyService {
    /// Whether a path-style request names a "directory" of the s3s-fs tree. S3 has no
    /// object there, but s3s-fs 0.14 takes tens of seconds to fail a HEAD of one (rclone
    /// probes its root that way), so the answer is S3's at once: 404.
    fn names_a_prefix(&self, req: &http::Request<hyper::body::Incoming>) -> bool {
        let path = req.uri().path().trim_start_matches('/');
        !path.is_empty()
            && path.contains('/')
            && !path.contains('%')
            && !path.split('/').any(|s| s == "..")
            && self.root.join(path).is_dir()
    }
}

impl hyper::service::Service<http::Request<hyper::body::Incoming>> for FaultyService {
    type Response = s3s::HttpResponse;
    type Error = s3s::HttpError;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>> + Send>,
    >;

    fn call(&self, req: http::Request<hyper::body::Incoming>) -> Self::Future {
        if req.method() == http::Method::HEAD && self.names_a_prefix(&req) {
            let response = http::Response::builder()
                .status(http::StatusCode::NOT_FOUND)
                .body(s3s::Body::empty())
                .expect("a well-formed 404 response");
            return Box::pin(std::future::ready(Ok(response)));
        }
        if let Some(listing) = listing::list_multipart_uploads(&self.root, &req) {
            return Box::pin(std::future::ready(Ok(listing)));
        }
        self.counters.count(&req);
        if self.faults.breaks(&req) {
            // An error from the service makes hyper close the connection unanswered.
            let error = s3s::HttpError::new("injected fault: connection closed".into());
            return Box::pin(std::future::ready(Err(error)));
        }
        if self.faults.denies(&req) {
            let response = faults::error_answer(http::StatusCode::FORBIDDEN, "AccessDenied");
            return Box::pin(std::future::ready(Ok(response)));
        }
        if req.method() == http::Method::PUT && self.faults.take_put() {
            let response = faults::error_answer(http::StatusCode::SERVICE_UNAVAILABLE, "SlowDown");
            return Box::pin(std::future::ready(Ok(response)));
        }
        let answer = ServerSideOp::of(&req).map_or(Answer::Aws, |op| self.faults.take_answer(op));
        if let Answer::EmbeddedError(code) = answer {
            // As on AWS, the operation that failed after its 200 left nothing behind.
            let response = faults::error_answer(http::StatusCode::OK, code);
            return Box::pin(std::future::ready(Ok(response)));
        }
        let in_flight = InFlight::start(&self.counters.in_flight);
        let listing = if self.list_etags.load(Ordering::SeqCst) {
            listing::listed_bucket(&req).map(|bucket| (bucket, self.root.clone()))
        } else {
            None
        };
        let faults = self.faults.clone();
        let handled = hyper::service::Service::call(&self.inner, req);
        Box::pin(async move {
            let mut handled = handled.await;
            if let Ok(response) = handled.as_mut() {
                if response.status().is_success() {
                    if let Some((bucket, root)) = listing {
                        rewrite_body(response, |b| listing::with_etags(&root, &bucket, b)).await?;
                    }
                    if answer == Answer::ForeignRoot {
                        rewrite_body(response, |b| {
                            faults::with_foreign_root(b).unwrap_or_else(|| b.to_owned())
                        })
                        .await?;
                        faults.count_foreign_root();
                    }
                }
            }
            drop(in_flight);
            handled
        })
    }
}

/// Replaces `response`'s body, read whole (up to 64 MiB), with `rewrite` of it.
async fn rewrite_body(
    response: &mut s3s::HttpResponse,
    rewrite: impl FnOnce(&str) -> String,
) -> Result<(), s3s::HttpError> {
    let body = response
        .body_mut()
        .store_all_limited(64 << 20)
        .await
        .map_err(s3s::HttpError::new)?;
    let rewritten = rewrite(&String::from_utf8_lossy(&body));
    response.headers_mut().remove(http::header::CONTENT_LENGTH);
    *response.body_mut() = s3s::Body::from(rewritten);
    Ok(())
}
