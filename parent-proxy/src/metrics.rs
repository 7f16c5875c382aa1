//! Prometheus metrics of the proxy: connections, bytes and errors per forwarder, and the log
//! listener's line counters. Served on the optional `--metrics` address at `/metrics`.

use std::sync::Arc;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ForwarderLabel {
    pub forwarder: String,
}

#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum Direction {
    /// Bytes read from the accepted side and sent to the target.
    to_target,
    /// Bytes read from the target and sent back to the accepted side.
    from_target,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BytesLabel {
    pub forwarder: String,
    pub direction: Direction,
}

#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum ErrorKind {
    /// accept() failed (e.g. out of file descriptors).
    accept,
    /// The target could not be reached (refused, timed out, unresolvable).
    connect,
    /// A connection failed mid-stream.
    io,
    /// Writing to stdout failed (vsock-stdout).
    stdout,
}

#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum CloseReason {
    /// At the connection cap (and not a probe request for a reserved slot).
    limit,
    /// No byte moved for the idle timeout.
    idle,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClosedLabel {
    pub forwarder: String,
    pub reason: CloseReason,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabel {
    pub forwarder: String,
    pub kind: ErrorKind,
}

/// All metrics of one proxy process. Cheap to clone (every metric is an `Arc` inside).
#[derive(Clone, Debug)]
pub struct Metrics {
    registry: Arc<Registry>,
    pub connections: Family<ForwarderLabel, Counter>,
    pub connections_active: Family<ForwarderLabel, Gauge>,
    pub bytes: Family<BytesLabel, Counter>,
    pub errors: Family<ErrorLabel, Counter>,
    /// Connections the proxy closed itself: at the cap, or idle.
    pub closed: Family<ClosedLabel, Counter>,
    pub log_lines: Counter,
    pub log_bytes: Counter,
    pub log_lines_cut: Counter,
    pub log_lines_unterminated: Counter,
    /// Lines given up at shutdown: stdout did not take them within the grace period.
    pub log_lines_dropped: Counter,
    /// Lines handed to the stdout writer and not written yet.
    pub log_lines_queued: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("containment_proxy");
        let connections = Family::<ForwarderLabel, Counter>::default();
        let connections_active = Family::<ForwarderLabel, Gauge>::default();
        let bytes = Family::<BytesLabel, Counter>::default();
        let errors = Family::<ErrorLabel, Counter>::default();
        let closed = Family::<ClosedLabel, Counter>::default();
        let log_lines = Counter::default();
        let log_bytes = Counter::default();
        let log_lines_cut = Counter::default();
        let log_lines_unterminated = Counter::default();
        let log_lines_dropped = Counter::default();
        let log_lines_queued = Gauge::default();
        registry.register(
            "connections",
            "Connections accepted, per forwarder",
            connections.clone(),
        );
        registry.register(
            "connections_active",
            "Connections open now, per forwarder",
            connections_active.clone(),
        );
        registry.register(
            "bytes",
            "Bytes moved, per forwarder and direction",
            bytes.clone(),
        );
        registry.register(
            "errors",
            "Errors per forwarder and kind (accept, connect, io, stdout)",
            errors.clone(),
        );
        registry.register(
            "connections_closed",
            "Connections closed by the proxy, per forwarder and reason (limit, idle)",
            closed.clone(),
        );
        registry.register(
            "log_lines",
            "Log lines written to stdout by vsock-stdout",
            log_lines.clone(),
        );
        registry.register(
            "log_bytes",
            "Log bytes written to stdout by vsock-stdout",
            log_bytes.clone(),
        );
        registry.register(
            "log_lines_cut",
            "Log lines longer than the line bound, cut and marked",
            log_lines_cut.clone(),
        );
        registry.register(
            "log_lines_unterminated",
            "Partial lines flushed because their connection closed mid-line",
            log_lines_unterminated.clone(),
        );
        registry.register(
            "log_lines_dropped",
            "Log lines dropped at shutdown because stdout did not take them within the grace period",
            log_lines_dropped.clone(),
        );
        registry.register(
            "log_lines_queued",
            "Log lines waiting for stdout",
            log_lines_queued.clone(),
        );
        Self {
            registry: Arc::new(registry),
            connections,
            connections_active,
            bytes,
            errors,
            closed,
            log_lines,
            log_bytes,
            log_lines_cut,
            log_lines_unterminated,
            log_lines_dropped,
            log_lines_queued,
        }
    }

    /// Prometheus text exposition (OpenMetrics).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Encoding into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    pub fn error(&self, forwarder: &str, kind: ErrorKind) {
        self.errors
            .get_or_create(&ErrorLabel {
                forwarder: forwarder.to_owned(),
                kind,
            })
            .inc();
    }

    /// The proxy closed a connection itself (`containment_proxy_connections_closed_total`).
    pub fn closed(&self, forwarder: &str, reason: CloseReason) {
        self.closed
            .get_or_create(&ClosedLabel {
                forwarder: forwarder.to_owned(),
                reason,
            })
            .inc();
    }
}

/// Serve `/metrics` on the listener until shutdown.
pub async fn serve(
    listener: cc_proto::Listener,
    metrics: Metrics,
    mut shutdown: crate::shutdown::Shutdown,
) -> std::io::Result<()> {
    use axum::routing::get;
    let app = axum::Router::new().route(
        "/metrics",
        get(move || {
            let m = metrics.clone();
            async move {
                (
                    [(
                        "content-type",
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )],
                    m.encode(),
                )
            }
        }),
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.wait().await })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_encode_with_the_documented_names() {
        let m = Metrics::new();
        m.connections
            .get_or_create(&ForwarderLabel {
                forwarder: "kms".into(),
            })
            .inc();
        m.bytes
            .get_or_create(&BytesLabel {
                forwarder: "kms".into(),
                direction: Direction::to_target,
            })
            .inc_by(42);
        m.error("kms", ErrorKind::connect);
        m.log_lines.inc();
        let text = m.encode();
        for needle in [
            "containment_proxy_connections_total{forwarder=\"kms\"} 1",
            "containment_proxy_bytes_total{forwarder=\"kms\",direction=\"to_target\"} 42",
            "containment_proxy_errors_total{forwarder=\"kms\",kind=\"connect\"} 1",
            "containment_proxy_log_lines_total 1",
            "containment_proxy_log_lines_cut_total 0",
            "# EOF",
        ] {
            assert!(text.contains(needle), "missing {needle} in\n{text}");
        }
    }
}
