//! `containment-chamber-enclave-proxy`: everything that runs in the parent container next to
//! the enclave. The binary is glue; the pieces live here so tests can drive them directly.

pub mod allowlist;
pub mod cli;
pub mod config;
pub mod forward;
pub mod logging;
pub mod logsink;
pub mod metrics;
pub mod run;
pub mod shutdown;
pub mod splice;

pub use cc_proto::parse_duration;
