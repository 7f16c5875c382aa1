//! Byte forwarders: `egress` (enclave → vsock → TCP upstream) and `ingress` (TCP → vsock →
//! enclave) are the same code with different addresses. Bytes are copied both ways untouched,
//! so TLS stays end to end. A target that cannot be reached closes that one connection with a
//! log line and a counted error; the process keeps serving.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use cc_proto::{Address, Listener, Stream};
use prometheus_client::metrics::counter::Counter;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::task::JoinSet;

use crate::metrics::{BytesLabel, Direction, ErrorKind, ForwarderLabel, Metrics};
use crate::shutdown::Shutdown;

/// Userspace copy buffer for streams splice cannot serve (vsock).
const COPY_BUFFER: usize = 256 * 1024;

/// One forwarder: where accepted connections go.
#[derive(Debug, Clone)]
pub struct Forwarder {
    pub name: String,
    pub target: Address,
    pub connect_timeout: Duration,
    /// After shutdown, how long open connections may continue before they are closed.
    pub grace: Duration,
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
    loop {
        tokio::select! {
            _ = shutdown.wait() => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((client, peer)) => {
                    accept_backoff.reset();
                    conns_total.inc();
                    conns_active.inc();
                    let fwd = fwd.clone();
                    let metrics = metrics.clone();
                    let active = conns_active.clone();
                    let (up, down) = (to_target.clone(), from_target.clone());
                    tasks.spawn(async move {
                        forward_one(client, &peer, &fwd, &metrics, up, down).await;
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
    peer: &str,
    fwd: &Forwarder,
    metrics: &Metrics,
    to_target: Counter,
    from_target: Counter,
) {
    let upstream = match tokio::time::timeout(fwd.connect_timeout, cc_proto::connect(&fwd.target))
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
    if let Some(result) =
        crate::splice::bidirectional(&client, &upstream, &to_target, &from_target).await
    {
        if let Err(e) = result {
            metrics.error(&fwd.name, ErrorKind::io);
            tracing::debug!(forwarder = %fwd.name, %peer, error = %e, "connection ended with an error");
        }
        return;
    }
    let mut client = Counted {
        inner: client,
        counter: to_target,
    };
    let mut upstream = Counted {
        inner: upstream,
        counter: from_target,
    };
    if let Err(e) = tokio::io::copy_bidirectional_with_sizes(
        &mut client,
        &mut upstream,
        COPY_BUFFER,
        COPY_BUFFER,
    )
    .await
    {
        // A reset from either side ends the connection; count it, it is not fatal.
        metrics.error(&fwd.name, ErrorKind::io);
        tracing::debug!(forwarder = %fwd.name, %peer, error = %e, "connection ended with an error");
    }
}

/// Counts bytes read from the wrapped stream (i.e. bytes about to be forwarded), live, so the
/// metric moves during long connections and not only when they close.
struct Counted {
    inner: Stream,
    counter: Counter,
}

impl AsyncRead for Counted {
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
        }
        r
    }
}

impl AsyncWrite for Counted {
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
