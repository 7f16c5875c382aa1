//! `ccctl`: the operator's tool. The binary parses arguments and renders; the measuring and
//! comparing live in these modules so `doctor`, `tui` and `rotate` call them directly.

pub mod cli;
pub mod eif;
pub mod enclaves;
pub mod output;
pub mod x509;
