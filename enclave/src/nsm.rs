//! Attestation: a trait with two implementations. `nitro` asks the Nitro Security Module
//! (`/dev/nsm`); `software` builds a document with the same COSE_Sign1/CBOR structure, signed
//! ES384 by a leaf certificate under a local development root that no verifier trusts unless
//! told to.

pub mod software;

#[cfg(feature = "nitro")]
pub mod nitro;

/// Produces attestation documents (COSE_Sign1 bytes as the NSM returns them).
pub trait Nsm: Send + Sync {
    fn attest(
        &self,
        user_data: Option<&[u8]>,
        nonce: Option<&[u8]>,
        public_key: Option<&[u8]>,
    ) -> Result<Vec<u8>, NsmError>;
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NsmError {
    #[error("NSM initialization failed: cannot open {device}: {detail}")]
    Init { device: String, detail: String },
    #[error("NSM refused the attestation request: {0}")]
    Request(String),
    #[error("software attestation failed: {0}")]
    Software(String),
}

/// The NSM of this build and platform. `nitro` without the `nitro` feature is an
/// initialization failure that says how to fix it.
pub fn open(cfg: &crate::config::Config) -> Result<Box<dyn Nsm>, NsmError> {
    match cfg.platform {
        crate::config::PlatformSetting::Software => {
            Ok(Box::new(software::SoftwareNsm::new(&cfg.software)?))
        }
        crate::config::PlatformSetting::Nitro => open_nitro(),
    }
}

#[cfg(feature = "nitro")]
fn open_nitro() -> Result<Box<dyn Nsm>, NsmError> {
    Ok(Box::new(nitro::NitroNsm::open()?))
}

#[cfg(not(feature = "nitro"))]
fn open_nitro() -> Result<Box<dyn Nsm>, NsmError> {
    Err(NsmError::Init {
        device: "/dev/nsm".into(),
        detail: "this build has no Nitro support (build with the 'nitro' cargo feature)".into(),
    })
}
