//! `containment-chamber-enclave-proxy`: everything that runs in the parent container next to
//! the enclave. The binary is glue; the pieces live here so tests can drive them directly.

pub mod allowlist;
#[cfg(feature = "server")]
pub mod cli;
pub mod config;
#[cfg(feature = "server")]
pub mod forward;
#[cfg(feature = "server")]
pub mod limits;
#[cfg(feature = "server")]
pub mod logging;
#[cfg(feature = "server")]
pub mod metrics;
#[cfg(feature = "server")]
pub mod run;
#[cfg(feature = "server")]
pub mod shutdown;
#[cfg(feature = "server")]
pub mod splice;
#[cfg(feature = "server")]
pub mod vsock_stdout;

pub use cc_proto::parse_duration;
