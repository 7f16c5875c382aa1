//! `containment-chamber-enclave`: the signer inside the enclave. Unseals a master key from
//! key holders' KMS shares, signs with the validator keys it protects, and makes every state
//! it can be in visible from outside (`/status`, `/metrics`, logs over vsock).

pub mod api;
pub mod chamber;
pub mod cms;
pub mod config;
pub mod egress;
pub mod http;
pub mod keys;
pub mod kms;
pub mod log_forward;
pub mod metrics;
pub mod nsm;
pub mod server;
pub mod shares;
pub mod unseal;
