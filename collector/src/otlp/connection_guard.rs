//! The receivers' connections: at most so many open at once, and none kept by a client
//! that is not sending a request.
//!
//! Every accepted socket takes one of the receiver's connection permits, or is closed at
//! once when none is left. A connection with no request in progress must start one (send
//! its headers in full) within the read timeout of opening or of its last request
//! ending, or it is closed: bytes trickling in do not extend that, so neither idle
//! connections nor half-sent headers hold a permit for long. While a request is in
//! progress the connection is the request's (its body has its own timeouts, see
//! `body_read`). Nor may an HTTP/1 connection send more than [`MAX_UNREQUESTED_BYTES`]
//! outside a request (HTTP/2 bounds header lists and unread data itself), so what
//! connections hold besides their requests' charged memory stays small. Requests are marked in progress by [`MarkActiveLayer`], from the
//! [`ConnectionActivity`] each connection hands its requests (a request extension, for
//! tonic directly and for axum through `ConnectInfo`).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::serve::{IncomingStream, Listener};
use futures::Stream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

/// A listener that caps open connections and closes the idle ones.
#[derive(Debug)]
pub struct GuardedListener {
    listener: TcpListener,
    permits: Arc<Semaphore>,
    read_timeout: Duration,
    /// Most bytes a connection may send outside a request, when the protocol does not
    /// bound that itself.
    max_unrequested: Option<usize>,
    what: &'static str,
}

impl GuardedListener {
    /// Wraps `listener`: at most `max_connections` open, each closed after `read_timeout`
    /// without a request in progress. `what` names the receiver in logs.
    pub fn new(
        listener: TcpListener,
        max_connections: usize,
        read_timeout: Duration,
        what: &'static str,
    ) -> Self {
        GuardedListener {
            listener,
            permits: Arc::new(Semaphore::new(
                max_connections.clamp(1, Semaphore::MAX_PERMITS),
            )),
            read_timeout,
            max_unrequested: None,
            what,
        }
    }

    /// Also closes a connection that sends more than [`MAX_UNREQUESTED_BYTES`] while it
    /// has no request in progress. For HTTP/1, where that is a request's headers. (An
    /// HTTP/2 server reads ahead, a whole message before it starts the call, and bounds
    /// what it buffers itself: header lists and flow-control windows.)
    pub fn limit_unrequested_bytes(mut self) -> Self {
        self.max_unrequested = Some(MAX_UNREQUESTED_BYTES);
        self
    }

    /// The next connection that gets a permit; those that find none are closed.
    pub async fn accept_guarded(&mut self) -> (GuardedIo, SocketAddr) {
        loop {
            let (stream, peer) = match self.listener.accept().await {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    tracing::warn!(endpoint = self.what, %error, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let Ok(permit) = Arc::clone(&self.permits).try_acquire_owned() else {
                tracing::debug!(endpoint = self.what, %peer, "too many connections, closing a new one");
                drop(stream);
                continue;
            };
            let _ = stream.set_nodelay(true);
            let activity = ConnectionActivity::default();
            let io = GuardedIo {
                stream,
                _permit: permit,
                idle: Box::pin(tokio::time::sleep_until(
                    activity.idle_since() + self.read_timeout,
                )),
                activity,
                read_timeout: self.read_timeout,
                max_unrequested: self.max_unrequested,
            };
            return (io, peer);
        }
    }

    /// The connections as a stream, for tonic's `serve_with_incoming`.
    pub fn into_incoming(self) -> impl Stream<Item = io::Result<GuardedIo>> + Send + 'static {
        futures::stream::unfold(self, |mut listener| async move {
            let (io, _) = listener.accept_guarded().await;
            Some((Ok(io), listener))
        })
    }
}

impl Listener for GuardedListener {
    type Io = GuardedIo;
    type Addr = SocketAddr;

    fn accept(&mut self) -> impl Future<Output = (Self::Io, Self::Addr)> + Send {
        self.accept_guarded()
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.listener.local_addr()
    }
}

/// Whether a connection has requests in progress, and since when it has had none.
#[derive(Debug, Clone)]
pub struct ConnectionActivity(Arc<ActivityState>);

#[derive(Debug)]
struct ActivityState {
    requests: AtomicUsize,
    idle_since: Mutex<Instant>,
    /// Bytes read since the connection last had a request in progress: the headers of
    /// the next request, at most [`MAX_UNREQUESTED_BYTES`].
    unrequested: AtomicUsize,
}

/// Most bytes a connection may send while no request of its is in progress (a request's
/// headers; HTTP/2 settings and pings): what a connection holds besides its requests'
/// charged memory stays small however many connections there are.
pub const MAX_UNREQUESTED_BYTES: usize = 64 * 1024;

impl Default for ConnectionActivity {
    fn default() -> Self {
        ConnectionActivity(Arc::new(ActivityState {
            requests: AtomicUsize::new(0),
            idle_since: Mutex::new(Instant::now()),
            unrequested: AtomicUsize::new(0),
        }))
    }
}

impl ConnectionActivity {
    /// Marks a request in progress until the returned guard is dropped.
    pub fn begin(&self) -> ActiveRequest {
        self.0.requests.fetch_add(1, Ordering::SeqCst);
        self.0.unrequested.store(0, Ordering::SeqCst);
        ActiveRequest(self.clone())
    }

    fn is_idle(&self) -> bool {
        self.0.requests.load(Ordering::SeqCst) == 0
    }

    fn idle_since(&self) -> Instant {
        *self.0.idle_since.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// When the connection is to be closed, or `None` while a request is in progress.
    fn deadline(&self, read_timeout: Duration) -> Option<Instant> {
        (self.0.requests.load(Ordering::SeqCst) == 0).then(|| self.idle_since() + read_timeout)
    }
}

/// A request in progress on its connection.
#[derive(Debug)]
pub struct ActiveRequest(ConnectionActivity);

impl Drop for ActiveRequest {
    fn drop(&mut self) {
        let state = &(self.0).0;
        let mut idle_since = state.idle_since.lock().unwrap_or_else(|p| p.into_inner());
        if state.requests.fetch_sub(1, Ordering::SeqCst) == 1 {
            *idle_since = Instant::now();
        }
    }
}

/// An accepted connection: its permit, and the idle deadline checked whenever the server
/// waits to read from it.
#[derive(Debug)]
pub struct GuardedIo {
    stream: TcpStream,
    _permit: OwnedSemaphorePermit,
    activity: ConnectionActivity,
    idle: Pin<Box<Sleep>>,
    read_timeout: Duration,
    max_unrequested: Option<usize>,
}

impl GuardedIo {
    /// The connection's activity, for its requests.
    pub fn activity(&self) -> ConnectionActivity {
        self.activity.clone()
    }
}

fn timed_out() -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        "no request on this connection within the read timeout",
    )
}

fn too_much_unrequested() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        "more than 64 KiB sent on this connection without a request",
    )
}

impl AsyncRead for GuardedIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let limit = this.max_unrequested.filter(|_| this.activity.is_idle());
        let result = if let Some(limit) = limit {
            // Read no further than what a connection may send without a request.
            let used = this.activity.0.unrequested.load(Ordering::SeqCst);
            let allowed = limit.saturating_sub(used);
            if allowed == 0 {
                return Poll::Ready(Err(too_much_unrequested()));
            }
            let mut scratch = [0_u8; 8192];
            let room = buf.remaining().min(allowed).min(scratch.len());
            let mut limited = ReadBuf::new(&mut scratch[..room]);
            let result = Pin::new(&mut this.stream).poll_read(cx, &mut limited);
            if let Poll::Ready(Ok(())) = result {
                let read = limited.filled();
                this.activity
                    .0
                    .unrequested
                    .fetch_add(read.len(), Ordering::SeqCst);
                buf.put_slice(read);
            }
            result
        } else {
            Pin::new(&mut this.stream).poll_read(cx, buf)
        };
        match result {
            Poll::Ready(result) => Poll::Ready(result),
            Poll::Pending => {
                let Some(deadline) = this.activity.deadline(this.read_timeout) else {
                    return Poll::Pending;
                };
                if Instant::now() >= deadline {
                    return Poll::Ready(Err(timed_out()));
                }
                this.idle.as_mut().reset(deadline);
                match this.idle.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Err(timed_out())),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

impl AsyncWrite for GuardedIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

impl tonic::transport::server::Connected for GuardedIo {
    type ConnectInfo = ConnectionActivity;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.activity()
    }
}

impl axum::extract::connect_info::Connected<IncomingStream<'_, GuardedListener>>
    for ConnectionActivity
{
    fn connect_info(stream: IncomingStream<'_, GuardedListener>) -> Self {
        stream.io().activity()
    }
}

/// Marks each request in progress on its connection while it is served.
#[derive(Debug, Clone, Copy, Default)]
pub struct MarkActiveLayer;

impl<S> tower::Layer<S> for MarkActiveLayer {
    type Service = MarkActive<S>;

    fn layer(&self, inner: S) -> Self::Service {
        MarkActive { inner }
    }
}

/// The service of [`MarkActiveLayer`].
#[derive(Debug, Clone)]
pub struct MarkActive<S> {
    inner: S,
}

impl<S, B> tower::Service<http::Request<B>> for MarkActive<S>
where
    S: tower::Service<http::Request<B>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let extensions = request.extensions();
        let active = extensions
            .get::<ConnectionActivity>()
            .or_else(|| {
                extensions
                    .get::<ConnectInfo<ConnectionActivity>>()
                    .map(|info| &info.0)
            })
            .map(ConnectionActivity::begin);
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await;
            drop(active);
            response
        })
    }
}
