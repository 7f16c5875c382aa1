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

/// GET `/status` at `api` within `timeout` (`cc_proto::status::fetch`).
pub use cc_proto::status::fetch;

/// GET `/status` at an endpoint (direct, or through the API server's pod proxy).
pub async fn fetch_at(at: &super::http::Endpoint, timeout: Duration) -> Result<Status, String> {
    match at {
        super::http::Endpoint::Direct(a) => fetch(a, timeout).await,
        _ => {
            let r = at.get("/status", timeout).await?;
            serde_json::from_slice(&r.body)
                .map_err(|e| format!("{at}/status is not the expected JSON: {e}"))
        }
    }
}
