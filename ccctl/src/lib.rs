//! `ccctl`: the operator's tool. Layers, dependencies pointing one way (README "Layout"):
//! `cli` (composes the commands) → command modules (`eif`, `enclaves`, `attest`, `policy`,
//! `doctor`, `tui`, `rotate`, `demo`, `shell`; each owns its clap arguments) → `probe` (everything ccctl
//! reads: /status, /metrics, nitro-cli, egress, key policies, Kubernetes) → `output`, `config`,
//! `x509` → `cc-proto`.

pub mod attest;
pub mod cli;
pub mod config;
#[cfg(feature = "demo")]
pub mod demo;
/// `ccctl demo` in a build without the `demo` feature: says how to get it.
#[cfg(not(feature = "demo"))]
#[path = "demo_disabled.rs"]
pub mod demo;
pub mod doctor;
pub mod eif;
pub mod enclaves;
pub mod explain;
pub mod output;
pub mod policy;
pub mod probe;
pub mod rotate;
pub mod shell;
pub mod tui;
pub mod x509;

pub use cc_proto::parse_duration;
