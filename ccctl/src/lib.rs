//! `ccctl`: the operator's tool. The binary parses arguments and renders; the measuring and
//! comparing live in these modules so `doctor`, `tui` and `rotate` call them directly.

pub mod attest;
pub mod cli;
pub mod config;
pub mod demo;
pub mod eif;
pub mod enclaves;
pub mod http;
pub mod k8s;
pub mod output;
pub mod policy;
pub mod rotate;
pub mod tui;
pub mod x509;

pub use cc_proto::parse_duration;
pub mod doctor;
