//! The enclave server's `/status` (seal state, holders' outcomes, attestation summary): the
//! one client for it.

use std::time::Duration;

use cc_proto::Address;
use cc_proto::status::Status;

use super::Probe;

/// GET `/status` at `api` within `timeout`, as one probe.
pub async fn probe(api: &Address, timeout: Duration) -> Probe<Status> {
    Probe::take(fetch(api, timeout)).await
}

/// GET `/status` at `api` within `timeout`.
pub async fn fetch(api: &Address, timeout: Duration) -> Result<Status, String> {
    let r = super::http::get(api, "/status", timeout).await?;
    if r.status != 200 {
        return Err(format!("{api}/status answered {}", r.status));
    }
    serde_json::from_slice(&r.body)
        .map_err(|e| format!("{api}/status is not the expected JSON: {e}"))
}
