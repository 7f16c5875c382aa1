//! Software attestation for machines without Nitro hardware (tests, `ccctl demo`).
//!
//! Same document structure as the NSM's: COSE_Sign1 with protected `{1: -35}`, payload map with
//! all nine fields in the NSM's order, `cabundle` = [development root], leaf certificate valid
//! three hours (re-issued when less than one hour is left), PCRs from configuration.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cc_proto::attestation::{AttestationDoc, cose_sign1, es384_protected, sig_structure};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P384_SHA384, SigningKey,
};

use super::{Nsm, NsmError};
use crate::config::Software;

const ROOT_CN: &str = "containment-chamber development root (NOT AWS)";
const LEAF_LIFETIME: Duration = Duration::from_secs(3 * 3600);

struct Leaf {
    key: KeyPair,
    cert_der: Vec<u8>,
    not_after: SystemTime,
}

pub struct SoftwareNsm {
    root_key: KeyPair,
    root_der: Vec<u8>,
    /// The development root in PEM, for `ccctl attest verify --root`.
    pub root_pem: String,
    leaf: Mutex<Option<Leaf>>,
    pcrs: BTreeMap<u16, Vec<u8>>,
    module_id: String,
}

fn err(e: impl std::fmt::Display) -> NsmError {
    NsmError::Software(e.to_string())
}

fn root_params() -> CertificateParams {
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, ROOT_CN);
    dn.push(DnType::OrganizationName, "containment-chamber");
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p.not_before = rcgen::date_time_ymd(2020, 1, 1);
    p.not_after = rcgen::date_time_ymd(2099, 12, 31);
    p
}

impl SoftwareNsm {
    pub fn new(cfg: &Software) -> Result<Self, NsmError> {
        let (root_key, root_pem) = match &cfg.root_dir {
            Some(dir) => load_or_create_root(dir)?,
            None => {
                let key = KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384).map_err(err)?;
                let cert = root_params().self_signed(&key).map_err(err)?;
                (key, cert.pem())
            }
        };
        let root_der = pem_to_der(&root_pem)?;
        let mut pcrs: BTreeMap<u16, Vec<u8>> = (0..16u16).map(|i| (i, vec![0u8; 48])).collect();
        pcrs.extend(cfg.pcr_values().map_err(err)?);
        Ok(SoftwareNsm {
            root_key,
            root_der,
            root_pem,
            leaf: Mutex::new(None),
            pcrs,
            module_id: cfg
                .module_id
                .clone()
                .unwrap_or_else(|| "i-00000000000000000-enc0000000000000000".into()),
        })
    }

    fn issue_leaf(&self, now: SystemTime) -> Result<Leaf, NsmError> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384).map_err(err)?;
        let mut p = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, self.module_id.as_str());
        dn.push(
            DnType::OrganizationName,
            "containment-chamber (software NSM)",
        );
        p.distinguished_name = dn;
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let start = now - Duration::from_secs(60);
        let end = now + LEAF_LIFETIME;
        p.not_before = to_offset(start)?;
        p.not_after = to_offset(end)?;
        let issuer = Issuer::new(root_params(), &self.root_key);
        let cert = p.signed_by(&key, &issuer).map_err(err)?;
        Ok(Leaf {
            key,
            cert_der: cert.der().to_vec(),
            not_after: end,
        })
    }
}

fn to_offset(t: SystemTime) -> Result<time::OffsetDateTime, NsmError> {
    let secs = t.duration_since(UNIX_EPOCH).map_err(err)?.as_secs();
    time::OffsetDateTime::from_unix_timestamp(secs as i64).map_err(err)
}

fn pem_to_der(pem: &str) -> Result<Vec<u8>, NsmError> {
    use base64::Engine as _;
    let body: String = pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<Vec<_>>()
        .concat();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .map_err(err)
}

/// `root.key` (PKCS#8 PEM) and `root.pem` in `dir`; created on first use so `ccctl` can be
/// pointed at `root.pem`.
fn load_or_create_root(dir: &Path) -> Result<(KeyPair, String), NsmError> {
    let key_path = dir.join("root.key");
    let cert_path = dir.join("root.pem");
    if key_path.exists() && cert_path.exists() {
        let key_pem = std::fs::read_to_string(&key_path)
            .map_err(|e| err(format!("cannot read '{}': {e}", key_path.display())))?;
        let key = KeyPair::from_pem(&key_pem)
            .map_err(|e| err(format!("'{}' is not a P-384 key: {e}", key_path.display())))?;
        let cert = std::fs::read_to_string(&cert_path)
            .map_err(|e| err(format!("cannot read '{}': {e}", cert_path.display())))?;
        return Ok((key, cert));
    }
    std::fs::create_dir_all(dir)
        .map_err(|e| err(format!("cannot create '{}': {e}", dir.display())))?;
    let key = KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384).map_err(err)?;
    let cert = root_params().self_signed(&key).map_err(err)?;
    crate::shares::write_atomically(&key_path, key.serialize_pem().as_bytes()).map_err(err)?;
    crate::shares::write_atomically(&cert_path, cert.pem().as_bytes()).map_err(err)?;
    Ok((key, cert.pem()))
}

impl Nsm for SoftwareNsm {
    fn attest(
        &self,
        user_data: Option<&[u8]>,
        nonce: Option<&[u8]>,
        public_key: Option<&[u8]>,
    ) -> Result<Vec<u8>, NsmError> {
        // The NSM's limits: 1 KiB each for user data, nonce and public key.
        for (name, v) in [
            ("user_data", user_data),
            ("nonce", nonce),
            ("public_key", public_key),
        ] {
            if v.is_some_and(|b| b.len() > 1024) {
                return Err(NsmError::Request(format!(
                    "{name} is longer than 1024 bytes"
                )));
            }
        }
        let now = SystemTime::now();
        let mut guard = self.leaf.lock().map_err(|_| err("leaf lock poisoned"))?;
        let fresh = guard
            .as_ref()
            .is_some_and(|l| l.not_after > now + Duration::from_secs(3600));
        if !fresh {
            *guard = Some(self.issue_leaf(now)?);
        }
        let leaf = guard.as_ref().ok_or_else(|| err("no leaf"))?;
        let doc = AttestationDoc {
            module_id: self.module_id.clone(),
            digest: "SHA384".into(),
            timestamp: now.duration_since(UNIX_EPOCH).map_err(err)?.as_millis() as u64,
            pcrs: self.pcrs.clone(),
            certificate: leaf.cert_der.clone(),
            cabundle: vec![self.root_der.clone()],
            public_key: public_key.map(<[u8]>::to_vec),
            user_data: user_data.map(<[u8]>::to_vec),
            nonce: nonce.map(<[u8]>::to_vec),
        };
        let payload = doc.to_cbor();
        let protected = es384_protected();
        let der_sig = leaf
            .key
            .sign(&sig_structure(&protected, &payload))
            .map_err(err)?;
        // COSE wants r‖s, not the DER the certificate signer produces.
        let sig = p384::ecdsa::Signature::from_der(&der_sig).map_err(err)?;
        Ok(cose_sign1(&protected, &payload, &sig.to_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use p384::ecdsa::signature::Verifier;

    /// Checks the document the way a verifier would: parse, take the leaf's public key, verify
    /// ES384 over the Sig_structure of the bytes as received.
    fn verify_signature(doc: &[u8]) -> cc_proto::attestation::SignedDoc {
        let parsed = cc_proto::attestation::parse(doc).unwrap();
        let spki = leaf_spki(&parsed.doc.certificate);
        let vk = p384::ecdsa::VerifyingKey::from_sec1_bytes(&spki).unwrap();
        let sig = p384::ecdsa::Signature::from_slice(&parsed.signature).unwrap();
        vk.verify(&sig_structure(&parsed.protected, &parsed.payload), &sig)
            .unwrap();
        parsed
    }

    /// The uncompressed P-384 point from the leaf certificate (last 97 bytes of its SPKI
    /// bit string: 0x04 ‖ x ‖ y).
    fn leaf_spki(cert: &[u8]) -> Vec<u8> {
        let marker = [0x03, 0x62, 0x00, 0x04];
        let at = cert
            .windows(4)
            .position(|w| w == marker)
            .expect("P-384 SPKI in leaf");
        cert[at + 3..at + 3 + 97].to_vec()
    }

    #[test]
    fn documents_are_signed_and_carry_the_configured_pcrs() {
        let cfg = Software {
            root_dir: None,
            pcrs: BTreeMap::from([
                ("0".into(), "ab".repeat(48)),
                ("PCR8".into(), "cd".repeat(48)),
            ]),
            module_id: None,
            eif: None,
        };
        let nsm = SoftwareNsm::new(&cfg).unwrap();
        let doc = nsm
            .attest(Some(b"user"), Some(b"nonce-1"), Some(b"pk"))
            .unwrap();
        let parsed = verify_signature(&doc);
        assert_eq!(parsed.doc.pcrs[&0], vec![0xab; 48]);
        assert_eq!(parsed.doc.pcrs[&8], vec![0xcd; 48]);
        assert_eq!(parsed.doc.pcrs[&1], vec![0; 48]);
        assert_eq!(parsed.doc.pcrs.len(), 16);
        assert_eq!(parsed.doc.nonce.as_deref(), Some(&b"nonce-1"[..]));
        assert_eq!(parsed.doc.cabundle.len(), 1);
        assert!(!parsed.doc.debug_mode());
        // A tampered payload byte breaks the signature.
        let mut bad = doc.clone();
        let n = bad.len();
        bad[n - 120] ^= 1;
        if let Ok(p) = cc_proto::attestation::parse(&bad) {
            let vk = p384::ecdsa::VerifyingKey::from_sec1_bytes(&leaf_spki(&p.doc.certificate));
            if let Ok(vk) = vk {
                let sig = p384::ecdsa::Signature::from_slice(&p.signature).unwrap();
                assert!(
                    vk.verify(&sig_structure(&p.protected, &p.payload), &sig)
                        .is_err()
                );
            }
        }
    }

    #[test]
    fn root_is_created_once_and_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = Software {
            root_dir: Some(dir.path().join("root")),
            ..Default::default()
        };
        let a = SoftwareNsm::new(&cfg).unwrap();
        let b = SoftwareNsm::new(&cfg).unwrap();
        assert_eq!(a.root_pem, b.root_pem);
        assert!(dir.path().join("root/root.pem").exists());
        // Documents from the reloaded root verify too.
        verify_signature(&b.attest(None, None, None).unwrap());
    }

    #[test]
    fn oversized_fields_are_refused() {
        let nsm = SoftwareNsm::new(&Software::default()).unwrap();
        let e = nsm.attest(Some(&[0; 1025]), None, None).unwrap_err();
        assert!(
            e.to_string()
                .contains("user_data is longer than 1024 bytes")
        );
    }
}
