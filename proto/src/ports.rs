//! Port numbers and CIDs from the fixed contract (DESIGN.md). They are wire constants of the
//! deployed system: renaming or renumbering them breaks running pods.

/// Parent-side vsock port on which `vsock-stdout` receives the enclave's log stream.
pub const LOG_PORT: u32 = 7000;
/// Signing API (`/upcheck`, `/healthcheck`, `/status`, `/api/v1/eth2/...`).
pub const API_PORT: u16 = 9000;
/// Prometheus metrics (`/metrics`).
pub const METRICS_PORT: u16 = 3000;
/// First parent-side vsock port of the egress forwarders; endpoint `i` uses `EGRESS_BASE_PORT + i`.
pub const EGRESS_BASE_PORT: u32 = 8000;
/// The parent instance's vsock CID as seen from the enclave.
pub const PARENT_CID: u32 = 3;
/// `VMADDR_CID_ANY`: listen on every local CID.
pub const CID_ANY: u32 = u32::MAX;
/// The parent must never listen on this vsock port: the enclave's boot heartbeat uses it.
pub const RESERVED_PARENT_VSOCK_PORT: u32 = 9000;
/// Longest log line `vsock-stdout` forwards whole; longer lines are cut and marked.
pub const MAX_LOG_LINE: usize = 64 * 1024;

/// Parent-side vsock port of egress endpoint `i` (the forwarders count up from
/// [`EGRESS_BASE_PORT`]).
pub const fn egress_port(i: usize) -> u32 {
    EGRESS_BASE_PORT + i as u32
}
