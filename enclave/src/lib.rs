//! `containment-chamber-enclave`: the signer inside the enclave. Unseals a master key from
//! key holders' KMS shares, signs with the validator keys it protects, and makes every state
//! it can be in visible from outside (`/status`, `/metrics`, logs over vsock).

pub mod cms;
pub mod config;
pub mod keys;
pub mod nsm;
pub mod shares;
