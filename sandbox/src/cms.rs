//! `CiphertextForRecipient` as KMS builds it: CMS EnvelopedData (RFC 5652, DER) with one
//! KeyTransRecipientInfo, the content key wrapped with RSAES-OAEP (SHA-256, MGF1-SHA-256) to
//! the public key of the attestation document, the content in AES-256-CBC (PKCS#7 padding).
//! The enclave's reader (`containment_chamber_enclave::cms`) is the other half.

use aes::cipher::{BlockEncryptMut, KeyIvInit, block_padding::Pkcs7};
use rsa::pkcs8::DecodePublicKey;
use rsa::{Oaep, RsaPublicKey};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

const OID_ENVELOPED_DATA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x03];
const OID_DATA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01];
const OID_RSAES_OAEP: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x07];
const OID_MGF1: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x08];
const OID_SHA256: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01];
const OID_AES256_CBC: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x2a];

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let n = content.len();
    if n < 0x80 {
        out.push(n as u8);
    } else {
        let bytes: Vec<u8> = n
            .to_be_bytes()
            .iter()
            .copied()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

fn seq(parts: &[&[u8]]) -> Vec<u8> {
    tlv(0x30, &parts.concat())
}

fn oid(o: &[u8]) -> Vec<u8> {
    tlv(0x06, o)
}

fn octets(b: &[u8]) -> Vec<u8> {
    tlv(0x04, b)
}

fn int(v: u8) -> Vec<u8> {
    tlv(0x02, &[v])
}

/// Encrypt `plaintext` to the RSA public key `spki_der` (SubjectPublicKeyInfo, DER).
pub fn envelope(spki_der: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, String> {
    let public = RsaPublicKey::from_public_key_der(spki_der)
        .map_err(|e| format!("the attestation document's public key is not RSA: {e}"))?;
    let mut rng = rand::rngs::OsRng;
    let cek = Zeroizing::new(rand::Rng::r#gen::<[u8; 32]>(&mut rng));
    let iv: [u8; 16] = rand::Rng::r#gen(&mut rng);
    let wrapped = public
        .encrypt(&mut rng, Oaep::new::<Sha256>(), cek.as_slice())
        .map_err(|e| format!("RSAES-OAEP failed: {e}"))?;
    let content = cbc::Encryptor::<aes::Aes256>::new(cek.as_slice().into(), &iv.into())
        .encrypt_padded_vec_mut::<Pkcs7>(plaintext);
    let sha256 = seq(&[&oid(OID_SHA256)]);
    let oaep_params = seq(&[
        &tlv(0xa0, &sha256),
        &tlv(0xa1, &seq(&[&oid(OID_MGF1), &sha256])),
    ]);
    let ski = &Sha256::digest(spki_der)[..20];
    let ktri = seq(&[
        &int(2),
        &tlv(0x80, ski),
        &seq(&[&oid(OID_RSAES_OAEP), &oaep_params]),
        &octets(&wrapped),
    ]);
    let eci = seq(&[
        &oid(OID_DATA),
        &seq(&[&oid(OID_AES256_CBC), &octets(&iv)]),
        &tlv(0x80, &content),
    ]);
    let enveloped = seq(&[&int(2), &tlv(0x31, &ktri), &eci]);
    Ok(seq(&[&oid(OID_ENVELOPED_DATA), &tlv(0xa0, &enveloped)]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lengths_are_encoded_in_base_256() {
        assert_eq!(tlv(0x04, &[0; 3])[..2], [0x04, 3]);
        assert_eq!(tlv(0x04, &[0; 200])[..3], [0x04, 0x81, 200]);
        assert_eq!(tlv(0x04, &[0; 300])[..4], [0x04, 0x82, 0x01, 0x2c]);
    }

    #[test]
    fn a_key_that_is_not_rsa_is_refused() {
        assert!(envelope(b"not der", b"x").unwrap_err().contains("not RSA"));
    }
}
