//! The connections of the outbound pool, watched: when a write has waited longer than the
//! exchange's idle timeout, the peer has stopped reading.
//!
//! An upload to an upstream that stops reading never fails by itself: hyper waits for the
//! socket to take more, and the request body, no longer polled, cannot time out either.
//! Each connection records when it last wrote and whether a write is waiting; the
//! exchange's watchdog (`Outbound::send`) reads that through `capture_connection` and,
//! once a write has waited for the idle timeout, aborts the connection, whose next write
//! then fails, so hyper drops it instead of holding the socket for ever. A slow reader is
//! never cut: any byte taken counts as progress.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::task::AtomicWaker;
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::Instant;

/// What one connection's writes are doing.
pub(super) struct WriteWatch {
    start: Instant,
    /// Milliseconds after `start` of the last write that took bytes.
    last_write_ms: AtomicU64,
    /// A write is waiting for the socket to take bytes.
    waiting: AtomicBool,
    aborted: AtomicBool,
    writer: AtomicWaker,
}

impl WriteWatch {
    fn new() -> WriteWatch {
        WriteWatch {
            start: Instant::now(),
            last_write_ms: AtomicU64::new(0),
            waiting: AtomicBool::new(false),
            aborted: AtomicBool::new(false),
            writer: AtomicWaker::new(),
        }
    }

    fn wrote(&self) {
        let ms = self.start.elapsed().as_millis() as u64;
        self.last_write_ms.store(ms, Ordering::Relaxed);
        self.waiting.store(false, Ordering::Relaxed);
    }

    /// A write found the socket full: the wait is timed from now, not from the last
    /// write (which may be long ago on a pooled connection).
    fn begin_wait(&self) {
        if !self.waiting.load(Ordering::Relaxed) {
            let ms = self.start.elapsed().as_millis() as u64;
            self.last_write_ms.store(ms, Ordering::Relaxed);
            self.waiting.store(true, Ordering::Relaxed);
        }
    }

    /// Resolves once a write has waited `idle` with nothing taken, and aborts the
    /// connection; never when `watch` is `None`.
    pub(super) async fn stalled(watch: Option<&WriteWatch>, idle: Duration) {
        let Some(this) = watch else {
            return std::future::pending().await;
        };
        loop {
            let last = Duration::from_millis(this.last_write_ms.load(Ordering::Relaxed));
            let quiet = this.start.elapsed().saturating_sub(last);
            if quiet >= idle && this.waiting.load(Ordering::Relaxed) {
                this.aborted.store(true, Ordering::Relaxed);
                this.writer.wake();
                return;
            }
            let wait = if quiet >= idle { idle } else { idle - quiet };
            tokio::time::sleep(wait.max(Duration::from_millis(100))).await;
        }
    }
}

/// A pooled connection whose writes are watched.
pub(super) struct Watched<S> {
    inner: S,
    watch: Arc<WriteWatch>,
}

fn aborted() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "the peer stopped reading")
}

impl<S> Watched<S> {
    fn track(&self, polled: Poll<io::Result<usize>>, cx: &Context<'_>) -> Poll<io::Result<usize>> {
        match &polled {
            Poll::Ready(Ok(n)) if *n > 0 => self.watch.wrote(),
            Poll::Pending => {
                self.watch.writer.register(cx.waker());
                self.watch.begin_wait();
                if self.watch.aborted.load(Ordering::Relaxed) {
                    return Poll::Ready(Err(aborted()));
                }
            }
            _ => {}
        }
        polled
    }
}

impl<S: Read + Unpin> Read for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: Write + Unpin> Write for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.watch.aborted.load(Ordering::Relaxed) {
            return Poll::Ready(Err(aborted()));
        }
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.track(polled, cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.watch.aborted.load(Ordering::Relaxed) {
            return Poll::Ready(Err(aborted()));
        }
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.track(polled, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.watch.aborted.load(Ordering::Relaxed) {
            return Poll::Ready(Err(aborted()));
        }
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl<S: Connection> Connection for Watched<S> {
    fn connected(&self) -> Connected {
        self.inner.connected().extra(self.watch.clone())
    }
}

/// The plain connector, handing out watched connections (TLS goes on top).
#[derive(Clone)]
pub(super) struct WatchedConnector(pub(super) HttpConnector);

type Connecting = Pin<
    Box<
        dyn Future<
                Output = Result<
                    Watched<TokioIo<TcpStream>>,
                    Box<dyn std::error::Error + Send + Sync>,
                >,
            > + Send,
    >,
>;

impl tower::Service<http::Uri> for WatchedConnector {
    type Response = Watched<TokioIo<TcpStream>>;
    type Error = Box<dyn std::error::Error + Send + Sync>;
    type Future = Connecting;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        tower::Service::<http::Uri>::poll_ready(&mut self.0, cx).map_err(Into::into)
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let connecting = tower::Service::<http::Uri>::call(&mut self.0, uri);
        Box::pin(async move {
            let inner = connecting.await?;
            Ok(Watched {
                inner,
                watch: Arc::new(WriteWatch::new()),
            })
        })
    }
}

/// The watch of the connection an exchange got, if it has one.
pub(super) fn watch_of(connected: &Connected) -> Option<Arc<WriteWatch>> {
    let mut extensions = http::Extensions::new();
    connected.get_extras(&mut extensions);
    extensions.get::<Arc<WriteWatch>>().cloned()
}
