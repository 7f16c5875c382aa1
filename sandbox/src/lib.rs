//! `cc-sandbox`: the containment chamber on one machine, on unix sockets and loopback only,
//! for `ccctl demo` and the end-to-end tests. Test doubles live here, never in a production
//! `ccctl`: the local KMS ([`kms`]), the CMS encoder of its Recipient answers ([`cms`]), the
//! Kubernetes API double ([`apiserver`]) and the orchestration of the real enclave server and
//! parent proxy processes ([`chamber`]). `ccctl` reaches it through its default-on `demo`
//! feature; the production `Dockerfile` builds ccctl without it.

pub mod apiserver;
pub mod chamber;
pub mod cms;
pub mod kms;
