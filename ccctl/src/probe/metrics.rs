//! The enclave server's `/metrics`: the one client for it, parsed by the one Prometheus text
//! parser (`cc_proto::metrics::parse`).

use std::time::Duration;

use cc_proto::Address;
use cc_proto::metrics::Samples;

use super::Probe;

/// GET `/metrics` at `addr` within `timeout` and parse it, as one probe.
pub async fn probe(addr: &Address, timeout: Duration) -> Probe<Samples> {
    Probe::take(fetch(addr, timeout)).await
}

/// GET `/metrics` at `addr` within `timeout` and parse it.
pub async fn fetch(addr: &Address, timeout: Duration) -> Result<Samples, String> {
    fetch_at(&super::http::Endpoint::Direct(addr.clone()), timeout).await
}

/// The enclave's dropped-log-events counter, or why it cannot be read.
pub async fn dropped_events(addr: &Address, timeout: Duration) -> Result<f64, String> {
    let s = fetch(addr, timeout).await?;
    cc_proto::metrics::value(&s, cc_proto::metrics::LOG_EVENTS_DROPPED_TOTAL).ok_or_else(|| {
        format!(
            "{} is missing from /metrics",
            cc_proto::metrics::LOG_EVENTS_DROPPED_TOTAL
        )
    })
}

/// GET `/metrics` at an endpoint (direct, or through the API server's pod proxy) and parse it.
pub async fn fetch_at(at: &super::http::Endpoint, timeout: Duration) -> Result<Samples, String> {
    let r = at.get("/metrics", timeout).await?;
    if r.status != 200 {
        return Err(format!("{at}/metrics answered {}", r.status));
    }
    cc_proto::metrics::parse(&String::from_utf8_lossy(&r.body))
        .map_err(|e| format!("{at}/metrics: {e}"))
}
