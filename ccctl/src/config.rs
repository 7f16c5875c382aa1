//! `ccctl`'s configuration file (TOML): the key holders and the enclave's role, defined in
//! `cc_proto::holders` (the Helm chart and the demo write it).

pub use cc_proto::holders::{Config, Holder};
