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
