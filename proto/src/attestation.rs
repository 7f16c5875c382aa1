//! Nitro attestation documents: the COSE_Sign1 envelope and its CBOR payload.
//!
//! The payload is kept as the exact bytes received, because the signature covers them
//! (AWS has encoded the payload map with indefinite length since 2025; re-encoding would
//! break verification). Verification of signature and certificate chain lives with the
//! consumers; this module only parses and builds.

use std::collections::BTreeMap;

use ciborium::Value;
use coset::{CborSerializable, CoseSign1, TaggedCborSerializable};

/// COSE algorithm identifier of ES384 (ECDSA P-384 with SHA-384).
pub const ES384: i64 = -35;

/// The payload of an attestation document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttestationDoc {
    pub module_id: String,
    /// Always `SHA384` on Nitro.
    pub digest: String,
    /// Unix milliseconds.
    pub timestamp: u64,
    /// PCR index → 48-byte value.
    pub pcrs: BTreeMap<u16, Vec<u8>>,
    /// The leaf certificate (DER) whose key signed the document.
    pub certificate: Vec<u8>,
    /// Root first, then intermediates (DER).
    pub cabundle: Vec<Vec<u8>>,
    pub public_key: Option<Vec<u8>>,
    pub user_data: Option<Vec<u8>>,
    pub nonce: Option<Vec<u8>>,
}

/// The parts of a COSE_Sign1 a verifier needs.
#[derive(Debug, Clone)]
pub struct SignedDoc {
    /// The protected header bytes exactly as received.
    pub protected: Vec<u8>,
    /// The payload bytes exactly as received.
    pub payload: Vec<u8>,
    /// Raw r‖s, 96 bytes for ES384.
    pub signature: Vec<u8>,
    /// The `alg` of the protected header, if present.
    pub alg: Option<i64>,
    pub doc: AttestationDoc,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DocError {
    #[error("not a COSE_Sign1 structure: {0}")]
    Cose(String),
    #[error("COSE_Sign1 has no payload")]
    NoPayload,
    #[error("payload is not valid CBOR: {0}")]
    Cbor(String),
    #[error("payload field '{0}' is missing or has the wrong type")]
    Field(&'static str),
}

impl AttestationDoc {
    /// Encode the payload map in the field order the NSM uses.
    pub fn to_cbor(&self) -> Vec<u8> {
        let bytes_or_null = |v: &Option<Vec<u8>>| match v {
            Some(b) => Value::Bytes(b.clone()),
            None => Value::Null,
        };
        let map = Value::Map(vec![
            (text("module_id"), Value::Text(self.module_id.clone())),
            (text("digest"), Value::Text(self.digest.clone())),
            (text("timestamp"), Value::Integer(self.timestamp.into())),
            (
                text("pcrs"),
                Value::Map(
                    self.pcrs
                        .iter()
                        .map(|(k, v)| (Value::Integer((*k).into()), Value::Bytes(v.clone())))
                        .collect(),
                ),
            ),
            (text("certificate"), Value::Bytes(self.certificate.clone())),
            (
                text("cabundle"),
                Value::Array(self.cabundle.iter().cloned().map(Value::Bytes).collect()),
            ),
            (text("public_key"), bytes_or_null(&self.public_key)),
            (text("user_data"), bytes_or_null(&self.user_data)),
            (text("nonce"), bytes_or_null(&self.nonce)),
        ]);
        let mut out = Vec::new();
        // Writing into a Vec cannot fail.
        let _ = ciborium::into_writer(&map, &mut out);
        out
    }

    /// Decode a payload (definite or indefinite length map).
    pub fn from_cbor(payload: &[u8]) -> Result<Self, DocError> {
        let v: Value = ciborium::from_reader(payload).map_err(|e| DocError::Cbor(e.to_string()))?;
        let Value::Map(entries) = v else {
            return Err(DocError::Cbor("payload is not a map".into()));
        };
        let get = |name: &str| {
            entries
                .iter()
                .find(|(k, _)| k.as_text() == Some(name))
                .map(|(_, v)| v)
        };
        let opt_bytes = |name: &'static str| -> Result<Option<Vec<u8>>, DocError> {
            match get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::Bytes(b)) => Ok(Some(b.clone())),
                Some(_) => Err(DocError::Field(name)),
            }
        };
        let module_id = get("module_id")
            .and_then(Value::as_text)
            .ok_or(DocError::Field("module_id"))?
            .to_owned();
        let digest = get("digest")
            .and_then(Value::as_text)
            .ok_or(DocError::Field("digest"))?
            .to_owned();
        let timestamp = get("timestamp")
            .and_then(Value::as_integer)
            .and_then(|i| u64::try_from(i).ok())
            .ok_or(DocError::Field("timestamp"))?;
        let mut pcrs = BTreeMap::new();
        for (k, v) in get("pcrs")
            .and_then(Value::as_map)
            .ok_or(DocError::Field("pcrs"))?
        {
            let idx = k
                .as_integer()
                .and_then(|i| u16::try_from(i).ok())
                .ok_or(DocError::Field("pcrs"))?;
            let val = v.as_bytes().ok_or(DocError::Field("pcrs"))?;
            pcrs.insert(idx, val.clone());
        }
        let certificate = get("certificate")
            .and_then(Value::as_bytes)
            .ok_or(DocError::Field("certificate"))?
            .clone();
        let cabundle = get("cabundle")
            .and_then(Value::as_array)
            .ok_or(DocError::Field("cabundle"))?
            .iter()
            .map(|c| c.as_bytes().cloned().ok_or(DocError::Field("cabundle")))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(AttestationDoc {
            module_id,
            digest,
            timestamp,
            pcrs,
            certificate,
            cabundle,
            public_key: opt_bytes("public_key")?,
            user_data: opt_bytes("user_data")?,
            nonce: opt_bytes("nonce")?,
        })
    }

    /// PCR0 present and all zero: debug mode.
    pub fn debug_mode(&self) -> bool {
        self.pcrs
            .get(&0)
            .is_some_and(|v| !v.is_empty() && v.iter().all(|b| *b == 0))
    }
}

fn text(s: &str) -> Value {
    Value::Text(s.to_owned())
}

/// The bytes an ES384 signature covers: `["Signature1", protected, h'', payload]`.
pub fn sig_structure(protected: &[u8], payload: &[u8]) -> Vec<u8> {
    let v = Value::Array(vec![
        Value::Text("Signature1".into()),
        Value::Bytes(protected.to_vec()),
        Value::Bytes(Vec::new()),
        Value::Bytes(payload.to_vec()),
    ]);
    let mut out = Vec::new();
    let _ = ciborium::into_writer(&v, &mut out);
    out
}

/// The protected header of an ES384 COSE_Sign1 (`{1: -35}`).
pub fn es384_protected() -> Vec<u8> {
    let v = Value::Map(vec![(
        Value::Integer(1.into()),
        Value::Integer(ES384.into()),
    )]);
    let mut out = Vec::new();
    let _ = ciborium::into_writer(&v, &mut out);
    out
}

/// Assemble an untagged COSE_Sign1 array as the NSM emits it.
pub fn cose_sign1(protected: &[u8], payload: &[u8], signature: &[u8]) -> Vec<u8> {
    let v = Value::Array(vec![
        Value::Bytes(protected.to_vec()),
        Value::Map(Vec::new()),
        Value::Bytes(payload.to_vec()),
        Value::Bytes(signature.to_vec()),
    ]);
    let mut out = Vec::new();
    let _ = ciborium::into_writer(&v, &mut out);
    out
}

/// Parse a document (tagged or untagged COSE_Sign1). Never panics on any input.
pub fn parse(bytes: &[u8]) -> Result<SignedDoc, DocError> {
    let sign1 = CoseSign1::from_slice(bytes)
        .or_else(|_| CoseSign1::from_tagged_slice(bytes))
        .map_err(|e| DocError::Cose(e.to_string()))?;
    let payload = sign1.payload.clone().ok_or(DocError::NoPayload)?;
    let doc = AttestationDoc::from_cbor(&payload)?;
    let alg = match &sign1.protected.header.alg {
        Some(coset::RegisteredLabelWithPrivate::Assigned(a)) => Some(*a as i64),
        Some(coset::RegisteredLabelWithPrivate::PrivateUse(a)) => Some(*a),
        _ => None,
    };
    Ok(SignedDoc {
        protected: sign1.protected.original_data.clone().unwrap_or_default(),
        payload,
        signature: sign1.signature,
        alg,
        doc,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> AttestationDoc {
        AttestationDoc {
            module_id: "i-0123-enc01".into(),
            digest: "SHA384".into(),
            timestamp: 1_764_000_000_000,
            pcrs: (0..16u16).map(|i| (i, vec![i as u8 + 1; 48])).collect(),
            certificate: vec![1, 2, 3],
            cabundle: vec![vec![4], vec![5, 6]],
            public_key: Some(vec![7; 10]),
            user_data: None,
            nonce: Some(vec![9; 8]),
        }
    }

    #[test]
    fn payload_round_trips() {
        let d = sample();
        assert_eq!(AttestationDoc::from_cbor(&d.to_cbor()).unwrap(), d);
    }

    #[test]
    fn cose_envelope_round_trips_and_keeps_exact_bytes() {
        let d = sample();
        let payload = d.to_cbor();
        let doc = cose_sign1(&es384_protected(), &payload, &[0xAB; 96]);
        let parsed = parse(&doc).unwrap();
        assert_eq!(parsed.payload, payload);
        assert_eq!(parsed.protected, es384_protected());
        assert_eq!(parsed.alg, Some(ES384));
        assert_eq!(parsed.signature, vec![0xAB; 96]);
        assert_eq!(parsed.doc, d);
        assert!(!parsed.doc.debug_mode());
    }

    #[test]
    fn debug_mode_is_all_zero_pcr0() {
        let mut d = sample();
        d.pcrs.insert(0, vec![0; 48]);
        assert!(d.debug_mode());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bytes in [
            &b""[..],
            b"\x84",
            b"\xa0",
            b"\x84\x40\xa0\x40\x40",
            &[0xff; 64],
        ] {
            assert!(parse(bytes).is_err());
        }
    }
}
