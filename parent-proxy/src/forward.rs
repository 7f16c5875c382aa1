//! Byte forwarders: `egress` (enclave → vsock → TCP upstream) and `ingress` (TCP → vsock →
//! enclave) are the same code with different addresses. Bytes are copied both ways untouched,
//! so TLS stays end to end. A target that cannot be reached closes that one connection with a
//! log line and a counted error; the process keeps serving.
//!
//! Limits (issue 16): at most `max_connections` open at once (more are closed on accept and
//! counted), beyond that a few slots for requests whose request line is a probe path
//! (`GET /upcheck`), so the liveness probe still answers under a flood; a connection that
//! moves no byte for `idle_timeout` is closed; buffers are taken on a connection's first byte.
//! A half-close (one side's EOF) is passed on as a write shutdown and the other direction
//! keeps going until it ends too.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use cc_proto::{Address, Listener, Stream};
use prometheus_client::metrics::counter::Counter;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

use crate::limits::Activity;
use crate::metrics::{BytesLabel, CloseReason, Direction, ErrorKind, ForwarderLabel, Metrics};
use crate::shutdown::Shutdown;

/// Userspace copy buffer per direction for streams splice cannot serve (vsock). tokio's copy
/// allocates it when the connection starts, so it is kept small: 2 × 16 KiB per connection.
const COPY_BUFFER: usize = 16 * 1024;

/// How long a connection beyond the cap may take to show it is a probe request.
const PROBE_WAIT: Duration = Duration::from_secs(2);

/// The limits of one forwarder (README, "Reliability").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Connections open at once; more are closed on accept (counted as `limit`).
    pub max_connections: usize,
    /// A connection that moves no byte in either direction for this long is closed.
    pub idle_timeout: Duration,
    /// Request paths (e.g. `/upcheck`) whose `GET` may use the reserved slots at the cap.
    pub probe_paths: Vec<String>,
    /// Slots beyond the cap for those probe requests.
    pub probe_slots: usize,
}

/// Default connection cap per forwarder.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// Default idle timeout per connection.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// Default number of probe slots beyond the cap.
pub const DEFAULT_PROBE_SLOTS: usize = 8;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            probe_paths: Vec::new(),
            probe_slots: DEFAULT_PROBE_SLOTS,
        }
    }
}

/// One forwarder: where accepted connections go.
#[derive(Debug, Clone)]
pub struct Forwarder {
    pub name: String,
    pub target: Address,
    pub connect_timeout: Duration,
    /// After shutdown, how long open connections may continue before they are closed.
    pub grace: Duration,
    pub limits: Limits,
}

/// Accept until shutdown; forward every connection to the target.
pub async fn serve(listener: Listener, fwd: Forwarder, metrics: Metrics, mut shutdown: Shutdown) {
    let fwd = Arc::new(fwd);
    let label = ForwarderLabel {
        forwarder: fwd.name.clone(),
    };
    let conns_total = metrics.connections.get_or_create(&label).clone();
    let conns_active = metrics.connections_active.get_or_create(&label).clone();
    let to_target = metrics
        .bytes
        .get_or_create(&BytesLabel {
            forwarder: fwd.name.clone(),
            direction: Direction::to_target,
        })
        .clone();
    let from_target = metrics
        .bytes
        .get_or_create(&BytesLabel {
            forwarder: fwd.name.clone(),
            direction: Direction::from_target,
        })
        .clone();
    let mut tasks = JoinSet::new();
    let mut accept_backoff = cc_proto::Backoff::default();
    let slots = Arc::new(Semaphore::new(fwd.limits.max_connections));
    let probe_slots = Arc::new(Semaphore::new(if fwd.limits.probe_paths.is_empty() {
        0
    } else {
        fwd.limits.probe_slots
    }));
    loop {
        tokio::select! {
            _ = shutdown.wait() => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((mut client, peer)) => {
                    accept_backoff.reset();
                    conns_total.inc();
                    let (permit, probe): (OwnedSemaphorePermit, bool) =
                        match slots.clone().try_acquire_owned() {
                            Ok(p) => (p, false),
                            Err(_) => match probe_slots.clone().try_acquire_owned() {
                                Ok(p) => (p, true),
                                Err(_) => {
                                    // At the cap: closed at once, counted; no task, no buffer.
                                    metrics.closed(&fwd.name, CloseReason::limit);
                                    tracing::debug!(forwarder = %fwd.name, %peer,
                                        max = fwd.limits.max_connections, "connection cap reached; closed");
                                    drop(client);
                                    continue;
                                }
                            },
                        };
                    conns_active.inc();
                    let fwd = fwd.clone();
                    let metrics = metrics.clone();
                    let active = conns_active.clone();
                    let (up, down) = (to_target.clone(), from_target.clone());
                    tasks.spawn(async move {
                        let _permit = permit;
                        let prefix = if probe {
                            match crate::limits::read_probe_request(
                                &mut client,
                                &fwd.limits.probe_paths,
                                PROBE_WAIT,
                            )
                            .await
                            {
                                Some(p) => Some(p),
                                None => {
                                    metrics.closed(&fwd.name, CloseReason::limit);
                                    None
                                }
                            }
                        } else {
                            Some(Vec::new())
                        };
                        if let Some(prefix) = prefix {
                            forward_one(client, &prefix, &peer, &fwd, &metrics, up, down).await;
                        }
                        active.dec();
                    });
                }
                Err(e) => {
                    metrics.error(&fwd.name, ErrorKind::accept);
                    let delay = accept_backoff.next_delay();
                    tracing::warn!(forwarder = %fwd.name, error = %e, retry_in = ?delay, "accept failed");
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }
    drop(listener);
    if tokio::time::timeout(fwd.grace, async {
        while tasks.join_next().await.is_some() {}
    })
    .await
    .is_err()
    {
        tracing::info!(forwarder = %fwd.name, open = tasks.len(), "grace period over; closing open connections");
        tasks.shutdown().await;
    }
}

async fn forward_one(
    client: Stream,
    prefix: &[u8],
    peer: &str,
    fwd: &Forwarder,
    metrics: &Metrics,
    to_target: Counter,
    from_target: Counter,
) {
    let mut upstream = match tokio::time::timeout(
        fwd.connect_timeout,
        cc_proto::connect(&fwd.target),
    )
    .await
    {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            metrics.error(&fwd.name, ErrorKind::connect);
            tracing::warn!(forwarder = %fwd.name, %peer, target = %fwd.target, error = %e,
                    "target unreachable; closing this connection");
            return;
        }
        Err(_) => {
            metrics.error(&fwd.name, ErrorKind::connect);
            tracing::warn!(forwarder = %fwd.name, %peer, target = %fwd.target,
                    timeout = ?fwd.connect_timeout, "target did not accept in time; closing this connection");
            return;
        }
    };
    if !prefix.is_empty() {
        // The probe request line read at the cap goes first.
        if let Err(e) = upstream.write_all(prefix).await {
            metrics.error(&fwd.name, ErrorKind::io);
            tracing::debug!(forwarder = %fwd.name, %peer, error = %e, "connection ended with an error");
            return;
        }
        to_target.inc_by(prefix.len() as u64);
    }
    let activity = Activity::default();
    let idle = activity.idle(fwd.limits.idle_timeout);
    let copy = async {
        if let Some(result) =
            crate::splice::bidirectional(&client, &upstream, &to_target, &from_target, &activity)
                .await
        {
            return result;
        }
        let mut client = Counted {
            inner: client,
            counter: to_target,
            activity: &activity,
        };
        let mut upstream = Counted {
            inner: upstream,
            counter: from_target,
            activity: &activity,
        };
        tokio::io::copy_bidirectional_with_sizes(
            &mut client,
            &mut upstream,
            COPY_BUFFER,
            COPY_BUFFER,
        )
        .await
        .map(|_| ())
    };
    tokio::select! {
        r = copy => if let Err(e) = r {
            // A reset from either side ends the connection; count it, it is not fatal.
            metrics.error(&fwd.name, ErrorKind::io);
            tracing::debug!(forwarder = %fwd.name, %peer, error = %e, "connection ended with an error");
        },
        _ = idle => {
            metrics.closed(&fwd.name, CloseReason::idle);
            tracing::debug!(forwarder = %fwd.name, %peer, idle = ?fwd.limits.idle_timeout,
                "no byte moved within the idle timeout; closed");
        }
    }
}

/// Counts bytes read from the wrapped stream (i.e. bytes about to be forwarded), live, so the
/// metric moves during long connections and not only when they close.
struct Counted<'a> {
    inner: Stream,
    counter: Counter,
    activity: &'a Activity,
}

impl AsyncRead for Counted<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        if n > 0 {
            self.counter.inc_by(n as u64);
            self.activity.touch();
        }
        r
    }
}

impl AsyncWrite for Counted<'_> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
