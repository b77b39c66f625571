//! An answer that ends when its token stops being valid: a stream (`WatchJob`) opened
//! under a token that is then revoked, or expires, ends with `UNAUTHENTICATED` in its
//! trailers instead of running on.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio_util::sync::WaitForCancellationFutureOwned;
use tonic::Status;

use crate::service::Session;

pub struct Revocable {
    inner: tonic::body::Body,
    ended: Pin<Box<WaitForCancellationFutureOwned>>,
    /// Keeps the call on the registry of open calls until the answer is done.
    _session: Session,
    /// The answer is over: its own end, or the trailers of a revocation.
    done: bool,
}

impl Revocable {
    pub fn new(inner: tonic::body::Body, session: Session) -> Self {
        Revocable {
            inner,
            ended: Box::pin(session.ended.clone().cancelled_owned()),
            _session: session,
            done: false,
        }
    }
}

impl Body for Revocable {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        if self.done {
            return Poll::Ready(None);
        }
        if self.ended.as_mut().poll(cx).is_ready() {
            self.done = true;
            let status =
                Status::unauthenticated("the token of this call was revoked or has expired");
            let mut trailers = http::HeaderMap::new();
            return Poll::Ready(Some(match status.add_header(&mut trailers) {
                Ok(()) => Ok(Frame::trailers(trailers)),
                Err(status) => Err(status),
            }));
        }
        let frame = Pin::new(&mut self.inner).poll_frame(cx);
        // After the answer's own trailers, nothing more may follow.
        if let Poll::Ready(None | Some(Err(_))) = &frame {
            self.done = true;
        } else if let Poll::Ready(Some(Ok(f))) = &frame {
            self.done = f.is_trailers();
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.done || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
