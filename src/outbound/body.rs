//! Bodies of outbound exchanges: one that fails after a silence, one that says when it
//! has been sent.

use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

/// A body that stayed silent for longer than the idle timeout.
#[derive(Debug, thiserror::Error)]
#[error("{0} body idle timeout")]
pub struct BodyIdle(&'static str);

/// The client's request body failed (malformed chunked framing, a connection lost
/// mid-body): the client's fault, not the upstream's.
#[derive(Debug, thiserror::Error)]
#[error("the request body failed: {0}")]
pub struct ClientBodyError(Box<dyn std::error::Error + Send + Sync>);

/// A body that errors out when no frame arrives for `idle`: a hung upstream must not hold
/// a client connection for ever, nor a stalled client an upstream one.
pub struct IdleTimeout<B> {
    inner: B,
    idle: Duration,
    deadline: Pin<Box<Sleep>>,
    /// Which body this is ("request", "response"), for the error.
    side: &'static str,
}

impl<B> IdleTimeout<B> {
    pub(super) fn new(inner: B, idle: Duration, side: &'static str) -> Self {
        IdleTimeout {
            inner,
            idle,
            deadline: Box::pin(tokio::time::sleep(idle)),
            side,
        }
    }
}

/// A request body that says when it has been sent: at its end, or when hyper drops it.
pub(super) struct Sending<B> {
    inner: B,
    sent: Option<tokio::sync::oneshot::Sender<()>>,
}

impl<B: HttpBody> Sending<B> {
    pub(super) fn new(inner: B, sent: tokio::sync::oneshot::Sender<()>) -> Self {
        let mut body = Sending {
            inner,
            sent: Some(sent),
        };
        // hyper may never poll a body it knows to be empty.
        if body.inner.is_end_stream() {
            body.sent.take();
        }
        body
    }
}

impl<B> HttpBody for Sending<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        let frame = ready!(Pin::new(&mut this.inner).poll_frame(cx));
        // A body of known length may never be polled for its end.
        if frame.is_none() || this.inner.is_end_stream() {
            this.sent.take();
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<B> HttpBody for IdleTimeout<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                let idle = this.idle;
                this.deadline.as_mut().reset(Instant::now() + idle);
                let side = this.side;
                Poll::Ready(frame.map(|f| {
                    f.map_err(|e| {
                        let e: Self::Error = e.into();
                        if side == "request" {
                            Box::new(ClientBodyError(e))
                        } else {
                            e
                        }
                    })
                }))
            }
            Poll::Pending => {
                ready!(this.deadline.as_mut().poll(cx));
                Poll::Ready(Some(Err(Box::new(BodyIdle(this.side)))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
