//! The accept loop: our own hyper connections instead of axum::serve, because a public
//! endpoint needs what axum::serve does not give: a deadline for request headers, an idle
//! keep-alive timeout, a cap on open sockets (one more gets a 503 and is closed) and a
//! shutdown that drains. Also the open-file limit those sockets live under.

use super::*;

/// What `serve` allows each socket.
#[derive(Debug, Clone, Copy)]
pub struct SocketLimits {
    /// Requests answered at once before a 503 ([`limited`]).
    pub max_in_flight: usize,
    /// Open client sockets; one more gets a 503 and is closed.
    pub max_open: usize,
    /// Time for a request's head, from the connect or the previous response (hyper's
    /// header timer, which also bounds an idle keep-alive connection).
    pub header_timeout: Duration,
    /// A socket on which no byte moves and no request is being answered is closed after
    /// this (and one stalled mid-response after twice this).
    pub idle_timeout: Duration,
}

/// Time in-flight requests get to finish at shutdown.
pub(super) const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Sockets past the open cap being answered 503 at once; past this many they are closed
/// without a word (each holds a descriptor for at most a second, mostly 200 ms).
pub(super) const MAX_REJECTING: usize = 64;

/// Serves `app` (behind [`limited`]) on `listener` until `shutdown` turns true, then lets
/// requests in flight finish for up to 5 s.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    limits: SocketLimits,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let service = limited(app, limits.max_in_flight);
    let max_open = limits.max_open.clamp(1, MAX_OPEN_CONNECTIONS);
    let open = Arc::new(tokio::sync::Semaphore::new(max_open));
    let rejecting = Arc::new(tokio::sync::Semaphore::new(MAX_REJECTING));
    let mut rejected = 0u64;
    let mut last_warning: Option<tokio::time::Instant> = None;
    let mut warn = |what: &str, detail: String| {
        // At most one line per 10 s: an attack must not flood the log.
        let now = tokio::time::Instant::now();
        if last_warning.is_none_or(|t| now - t >= Duration::from_secs(10)) {
            last_warning = Some(now);
            tracing::warn!("{what}: {detail}");
        }
    };
    loop {
        let accepted = tokio::select! {
            _ = shutdown.wait_for(|s| *s) => break,
            a = listener.accept() => a,
        };
        let stream = match accepted {
            Ok((stream, _peer)) => stream,
            Err(e) => {
                // Out of descriptors (EMFILE) and the like: back off instead of spinning.
                warn("cannot accept a connection", e.to_string());
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        match open.clone().try_acquire_owned() {
            Ok(permit) => {
                tokio::spawn(connection(
                    stream,
                    service.clone(),
                    limits,
                    shutdown.clone(),
                    permit,
                ));
            }
            Err(_) => {
                rejected += 1;
                warn(
                    "open connection cap reached",
                    format!("{max_open} open, {rejected} turned away so far"),
                );
                if let Ok(permit) = rejecting.clone().try_acquire_owned() {
                    tokio::spawn(reject(stream, permit));
                }
            }
        }
    }
    drop(listener);
    // Each connection saw the shutdown too; its permit comes back when it is done.
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, open.acquire_many(max_open as u32)).await;
    Ok(())
}

/// Upper bound of `max_open` (the semaphore counts in u32).
pub(super) const MAX_OPEN_CONNECTIONS: usize = 1 << 20;

/// When the last byte moved on a connection and whether a request is being answered.
pub(super) struct Activity {
    epoch: tokio::time::Instant,
    last_ms: std::sync::atomic::AtomicU64,
    in_service: std::sync::atomic::AtomicUsize,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            epoch: tokio::time::Instant::now(),
            last_ms: Default::default(),
            in_service: Default::default(),
        }
    }

    fn touch(&self) {
        let ms = self.epoch.elapsed().as_millis() as u64;
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn last(&self) -> tokio::time::Instant {
        self.epoch + Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }
}

/// Counts a request as being answered while alive.
pub(super) struct InService(Arc<Activity>);

impl InService {
    fn enter(activity: &Arc<Activity>) -> InService {
        activity.in_service.fetch_add(1, Ordering::Relaxed);
        InService(activity.clone())
    }
}

impl Drop for InService {
    fn drop(&mut self) {
        self.0.in_service.fetch_sub(1, Ordering::Relaxed);
        self.0.touch();
    }
}

/// A socket that records when bytes move.
pub(super) struct Tracked {
    inner: tokio::net::TcpStream,
    activity: Arc<Activity>,
}

impl tokio::io::AsyncRead for Tracked {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = std::pin::Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        r
    }
}

impl tokio::io::AsyncWrite for Tracked {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        data: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let r = std::pin::Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(r, std::task::Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let r = std::pin::Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(r, std::task::Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// One client connection, HTTP/1.1 with keep-alive, until the client leaves, a timeout
/// closes it, or shutdown (requests in flight finish, for at most [`SHUTDOWN_GRACE`]).
pub(super) async fn connection<S>(
    stream: tokio::net::TcpStream,
    service: S,
    limits: SocketLimits,
    mut shutdown: watch::Receiver<bool>,
    _open: tokio::sync::OwnedSemaphorePermit,
) where
    S: tower::Service<
            axum::extract::Request,
            Response = Response,
            Error = std::convert::Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send,
{
    use tower::ServiceExt;
    let activity = Arc::new(Activity::new());
    let io = hyper_util::rt::TokioIo::new(Tracked {
        inner: stream,
        activity: activity.clone(),
    });
    let requests = activity.clone();
    let hyper_service =
        hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
            let answering = InService::enter(&requests);
            let service = service.clone();
            async move {
                let response = service.oneshot(req.map(Body::new)).await;
                drop(answering);
                response
            }
        });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .serve_connection(io, hyper_service);
    tokio::pin!(conn);
    let idle = limits.idle_timeout;
    let mut check = tokio::time::Instant::now() + idle;
    let mut shutdown_deadline: Option<tokio::time::Instant> = None;
    let mut idle_closing = false;
    loop {
        let wake = shutdown_deadline.map_or(check, |d| d.min(check));
        tokio::select! {
            _ = conn.as_mut() => return,
            _ = shutdown.wait_for(|s| *s), if shutdown_deadline.is_none() => {
                conn.as_mut().graceful_shutdown();
                shutdown_deadline = Some(tokio::time::Instant::now() + SHUTDOWN_GRACE);
            }
            _ = tokio::time::sleep_until(wake) => {
                let now = tokio::time::Instant::now();
                if shutdown_deadline.is_some_and(|d| now >= d) {
                    return;
                }
                let busy = activity.in_service.load(Ordering::Relaxed) > 0;
                let quiet_until = activity.last() + idle;
                if busy || now < quiet_until {
                    check = if busy { now + idle } else { quiet_until };
                    continue;
                }
                if idle_closing {
                    // Still no byte moved: a client that reads nothing of its response.
                    return;
                }
                // Idle: hyper closes at once between requests, or after the response
                // being written; a stalled one gets one more idle period.
                conn.as_mut().graceful_shutdown();
                idle_closing = true;
                check = now + idle;
            }
        }
    }
}

/// Answers a socket past the open cap with a 503 and closes it, first reading what the
/// client already sent (for at most 200 ms) so that the close does not reset the answer
/// away; the socket is gone within a second whatever the client does.
pub(super) async fn reject(
    mut stream: tokio::net::TcpStream,
    _slot: tokio::sync::OwnedSemaphorePermit,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const ANSWER: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 44\r\n\r\ntoo many open connections, retry in a moment\n";
    let answered = tokio::time::timeout(Duration::from_millis(800), async {
        stream.write_all(ANSWER).await?;
        stream.shutdown().await
    })
    .await;
    if !matches!(answered, Ok(Ok(()))) {
        return;
    }
    let _ = tokio::time::timeout(Duration::from_millis(200), async {
        let mut sink = [0u8; 4096];
        let mut drained = 0;
        while drained < 65536 {
            let n = stream.read(&mut sink).await?;
            if n == 0 {
                break;
            }
            drained += n;
        }
        Ok::<_, std::io::Error>(())
    })
    .await;
}

/// Raises the soft open-file limit to the hard one (each client socket is a descriptor);
/// returns the soft limit now in force, `None` when unlimited or unknown.
pub fn raise_fd_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
        let limit = getrlimit(Resource::Nofile);
        let current = limit.current?;
        match limit.maximum {
            Some(max) if max > current => {
                let raised = Rlimit {
                    current: Some(max),
                    maximum: Some(max),
                };
                match setrlimit(Resource::Nofile, raised) {
                    Ok(()) => Some(max),
                    Err(e) => {
                        tracing::warn!(error = %e, current, max, "cannot raise the open-file limit");
                        Some(current)
                    }
                }
            }
            _ => Some(current),
        }
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// Descriptors kept for everything but client sockets: the store, selector files, crawl
/// connections, sockets being turned away.
pub(super) const FD_HEADROOM: u64 = 256;

/// The open-connection cap for an open-file limit: the limit minus [`FD_HEADROOM`]
/// (at least half of a small limit stays for the rest).
pub fn default_open_connections(fd_limit: Option<u64>) -> usize {
    match fd_limit {
        None => 16_384,
        Some(n) => {
            let cap = n.saturating_sub(FD_HEADROOM.min(n / 2)).max(16);
            usize::try_from(cap).map_or(MAX_OPEN_CONNECTIONS, |c| c.min(MAX_OPEN_CONNECTIONS))
        }
    }
}
