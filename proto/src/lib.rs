//! The shared contract of the containment chamber.
//!
//! Whatever crosses a process boundary between `ccctl`, the enclave server and the parent-side
//! proxy is defined here once: addresses and the transports behind them, the fixed port
//! numbers, and the reconnect backoff every client uses. This crate has no kube, AWS SDK or
//! terminal dependencies.

pub mod address;
pub mod attestation;
pub mod backoff;
pub mod eif;
pub mod findings;
pub mod nitro_cli;
pub mod policy;
pub mod ports;
pub mod status;
pub mod transport;

pub use address::{Address, AddressError};
pub use backoff::Backoff;
pub use transport::{Listener, Stream, connect, listen};
