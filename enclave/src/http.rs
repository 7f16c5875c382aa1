//! The enclave's HTTP servers (API and metrics), with the limits that keep them answering
//! under a flood (issue 16 #4) and half-closed clients answered (#7):
//!
//! - **half-close**: a client that sends its request and shuts its write side still gets the
//!   answer (hyper's default treats that EOF as an aborted request and drops the response);
//! - **header timeout**: a request head must arrive within `header_timeout` — slowloris
//!   connections and idle keep-alive connections between requests are closed after it;
//! - **idle timeout**: a connection that moves no byte for `idle_timeout` (e.g. a stalled
//!   body) is closed;
//! - **connection cap**: at most `max_connections` at once; beyond that `probe_slots`
//!   connections are served by the probe router only (`/upcheck`, `/healthcheck`; anything
//!   else 503, one request per connection), so the liveness probe still answers; beyond those,
//!   connections are closed on accept.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use containment_chamber_enclave_proxy::limits::Activity;
use containment_chamber_enclave_proxy::shutdown::Shutdown;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// A connection in a probe slot must send its request head within this (or the header
/// timeout, if shorter): the slots are for probes, not for holding.
const PROBE_HEADER_TIMEOUT: Duration = Duration::from_secs(2);

/// How long open connections may finish their request after shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// The limits of one HTTP server (README, "Reliability"; `[listen]` in the config).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_connections: usize,
    pub probe_slots: usize,
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
}

/// What a server closed itself, for the metrics.
pub trait Closed: Send + Sync {
    /// `reason`: `limit` (at the cap), `header_timeout`, `idle`.
    fn closed(&self, reason: &'static str);
}

/// Serve `router` on `listener` until shutdown. `probe`: the router for connections beyond
/// the cap (none: they are closed).
pub async fn serve(
    listener: cc_proto::Listener,
    router: axum::Router,
    probe: Option<axum::Router>,
    limits: Limits,
    closed: Arc<dyn Closed>,
    mut shutdown: Shutdown,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let probe_slots = Arc::new(Semaphore::new(if probe.is_some() {
        limits.probe_slots
    } else {
        0
    }));
    let mut tasks = JoinSet::new();
    let mut backoff = cc_proto::Backoff::default();
    loop {
        let (stream, _peer) = tokio::select! {
            _ = shutdown.wait() => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
            a = listener.accept() => match a {
                Ok(a) => { backoff.reset(); a }
                Err(e) => {
                    // Out of descriptors, typically: wait, do not spin.
                    let delay = backoff.next_delay();
                    tracing::warn!(error = %e, retry_in = ?delay, "accept failed");
                    tokio::time::sleep(delay).await;
                    continue;
                }
            },
        };
        let (permit, svc, keep_alive) = match slots.clone().try_acquire_owned() {
            Ok(p) => (p, router.clone(), true),
            Err(_) => match (probe_slots.clone().try_acquire_owned(), &probe) {
                (Ok(p), Some(r)) => (p, r.clone(), false),
                _ => {
                    closed.closed("limit");
                    drop(stream);
                    continue;
                }
            },
        };
        if !keep_alive {
            closed.closed("limit");
        }
        let (closed, sd) = (closed.clone(), shutdown.clone());
        tasks.spawn(async move {
            let _permit = permit;
            connection(stream, svc, keep_alive, limits, &*closed, sd).await;
        });
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, async {
        while tasks.join_next().await.is_some() {}
    })
    .await
    .is_err()
    {
        tasks.shutdown().await;
    }
}

async fn connection(
    stream: cc_proto::Stream,
    svc: axum::Router,
    keep_alive: bool,
    limits: Limits,
    closed: &dyn Closed,
    mut shutdown: Shutdown,
) {
    let activity = Arc::new(Activity::default());
    let io = Watched {
        inner: stream,
        activity: activity.clone(),
    };
    let mut b = http1::Builder::new();
    b.timer(TokioTimer::new())
        .header_read_timeout(if keep_alive {
            limits.header_timeout
        } else {
            limits.header_timeout.min(PROBE_HEADER_TIMEOUT)
        })
        .half_close(true)
        .keep_alive(keep_alive);
    let conn = b.serve_connection(TokioIo::new(io), TowerToHyperService::new(svc));
    tokio::pin!(conn);
    tokio::select! {
        r = &mut conn => {
            if let Err(e) = r
                && e.is_timeout()
            {
                closed.closed("header_timeout");
            }
        }
        _ = activity.idle(limits.idle_timeout) => closed.closed("idle"),
        _ = shutdown.wait() => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(SHUTDOWN_GRACE, conn).await;
        }
    }
}

/// A stream that records when bytes last moved (for the idle timeout).
struct Watched {
    inner: cc_proto::Stream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        r
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &r
            && *n > 0
        {
            self.activity.touch();
        }
        r
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    struct Count(std::sync::Mutex<Vec<&'static str>>);
    impl Closed for Count {
        fn closed(&self, reason: &'static str) {
            self.0.lock().unwrap().push(reason);
        }
    }

    async fn ask(path: &std::path::Path, req: &str) -> String {
        let mut s = tokio::net::UnixStream::connect(path).await.unwrap();
        s.write_all(req.as_bytes()).await.unwrap();
        s.shutdown().await.unwrap();
        let mut out = String::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut out)).await;
        out
    }

    /// Issue 16 #4 and #7 on the server itself: at the cap, /upcheck is still answered from a
    /// probe slot and anything else gets 503; silent connections are closed after the header
    /// timeout; half-closed requests are answered.
    #[tokio::test]
    async fn cap_probe_slots_header_timeout_and_half_close() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("api.sock");
        let l = cc_proto::listen(&format!("unix://{}", sock.display()).parse().unwrap())
            .await
            .unwrap();
        let app = axum::Router::new()
            .route("/upcheck", get(|| async { "OK" }))
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    "slow"
                }),
            );
        let probe = axum::Router::new()
            .route("/upcheck", get(|| async { "OK" }))
            .fallback(|| async { (axum::http::StatusCode::SERVICE_UNAVAILABLE, "full") });
        let count = Arc::new(Count(Default::default()));
        let (trigger, sd) = containment_chamber_enclave_proxy::shutdown::channel();
        let limits = Limits {
            max_connections: 2,
            probe_slots: 2,
            header_timeout: Duration::from_millis(1500),
            idle_timeout: Duration::from_secs(30),
        };
        let server = tokio::spawn(serve(l, app, Some(probe), limits, count.clone(), sd));
        for _ in 0..20 {
            let r = ask(&sock, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n").await;
            assert!(
                r.starts_with("HTTP/1.1 200") && r.ends_with("slow"),
                "{r:?}"
            );
        }
        let _held: Vec<_> = futures_held(&sock, 2).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        let r = ask(&sock, "GET /upcheck HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(r.starts_with("HTTP/1.1 200") && r.ends_with("OK"), "{r:?}");
        let r = ask(&sock, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(r.starts_with("HTTP/1.1 503"), "{r:?}");
        // The silent connections are closed by the header timeout; then /slow answers again.
        tokio::time::sleep(Duration::from_millis(2000)).await;
        let r = ask(&sock, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(r.starts_with("HTTP/1.1 200"), "{r:?}");
        let reasons = count.0.lock().unwrap().clone();
        assert!(reasons.contains(&"limit"), "{reasons:?}");
        assert!(reasons.contains(&"header_timeout"), "{reasons:?}");
        trigger.trigger();
        server.await.unwrap();
    }

    async fn futures_held(path: &std::path::Path, n: usize) -> Vec<tokio::net::UnixStream> {
        let mut v = Vec::new();
        for _ in 0..n {
            v.push(tokio::net::UnixStream::connect(path).await.unwrap());
        }
        v
    }
}
