//! Decrypting KMS's `CiphertextForRecipient`: CMS EnvelopedData in BER (indefinite lengths,
//! possibly a constructed OCTET STRING for the content), one KeyTransRecipientInfo with
//! RSAES-OAEP (SHA-256, MGF1-SHA-256), content in AES-256-CBC with PKCS#7 padding.
//!
//! A small BER reader, bounded in depth and never indexing past its input: the bytes come from
//! the parent, which is untrusted.

use aes::cipher::{BlockDecryptMut, KeyIvInit, block_padding::Pkcs7};
use rsa::{Oaep, RsaPrivateKey};
use sha2::Sha256;
use zeroize::Zeroizing;

const MAX_DEPTH: usize = 16;

// DER encodings of the object identifiers we accept.
const OID_ENVELOPED_DATA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x03];
const OID_RSAES_OAEP: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x07];
const OID_AES256_CBC: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x2a];
const OID_SHA256: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CmsError {
    #[error("malformed BER at byte {0}: {1}")]
    Ber(usize, &'static str),
    #[error("not CMS EnvelopedData: {0}")]
    Shape(&'static str),
    #[error("unsupported algorithm: {0}")]
    Algorithm(&'static str),
    #[error("the recipient key does not decrypt the content key")]
    KeyDecrypt,
    #[error("the content does not decrypt (wrong key or corrupted ciphertext)")]
    ContentDecrypt,
}

/// One BER element. Constructed elements hold their children.
#[derive(Debug, Clone)]
struct Tlv {
    class: u8,
    constructed: bool,
    tag: u32,
    /// Primitive content, or (constructed) empty.
    value: Vec<u8>,
    children: Vec<Tlv>,
}

impl Tlv {
    fn is(&self, class: u8, tag: u32) -> bool {
        self.class == class && self.tag == tag
    }

    /// The bytes of an OCTET STRING (or implicitly tagged one), primitive or constructed.
    fn octets(&self) -> Vec<u8> {
        if self.constructed {
            self.children.iter().flat_map(Tlv::octets).collect()
        } else {
            self.value.clone()
        }
    }

    fn child(&self, i: usize) -> Result<&Tlv, CmsError> {
        self.children
            .get(i)
            .ok_or(CmsError::Shape("a required field is missing"))
    }
}

const UNIVERSAL: u8 = 0;
const CONTEXT: u8 = 2;
const SEQUENCE: u32 = 16;
const SET: u32 = 17;
const OID: u32 = 6;
const OCTET_STRING: u32 = 4;

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn byte(&mut self) -> Result<u8, CmsError> {
        let b = *self
            .buf
            .get(self.pos)
            .ok_or(CmsError::Ber(self.pos, "unexpected end of input"))?;
        self.pos += 1;
        Ok(b)
    }

    /// Read one element. Returns `None` for an end-of-contents marker (00 00).
    fn element(&mut self, depth: usize) -> Result<Option<Tlv>, CmsError> {
        if depth > MAX_DEPTH {
            return Err(CmsError::Ber(self.pos, "nesting too deep"));
        }
        let start = self.pos;
        let first = self.byte()?;
        let class = first >> 6;
        let constructed = first & 0x20 != 0;
        let mut tag = u32::from(first & 0x1f);
        if tag == 0x1f {
            tag = 0;
            loop {
                let b = self.byte()?;
                if tag > (u32::MAX >> 7) {
                    return Err(CmsError::Ber(start, "tag number too large"));
                }
                tag = (tag << 7) | u32::from(b & 0x7f);
                if b & 0x80 == 0 {
                    break;
                }
            }
        }
        let len_byte = self.byte()?;
        if first == 0 && len_byte == 0 {
            return Ok(None);
        }
        let mut tlv = Tlv {
            class,
            constructed,
            tag,
            value: Vec::new(),
            children: Vec::new(),
        };
        if len_byte == 0x80 {
            if !constructed {
                return Err(CmsError::Ber(start, "indefinite length on a primitive"));
            }
            while let Some(child) = self.element(depth + 1)? {
                tlv.children.push(child);
            }
            return Ok(Some(tlv));
        }
        let len = if len_byte & 0x80 == 0 {
            usize::from(len_byte)
        } else {
            let n = usize::from(len_byte & 0x7f);
            if n > 4 {
                return Err(CmsError::Ber(start, "length too large"));
            }
            let mut len = 0usize;
            for _ in 0..n {
                len = (len << 8) | usize::from(self.byte()?);
            }
            len
        };
        let end = self
            .pos
            .checked_add(len)
            .filter(|e| *e <= self.buf.len())
            .ok_or(CmsError::Ber(start, "length runs past the end"))?;
        if constructed {
            let mut inner = Reader {
                buf: &self.buf[..end],
                pos: self.pos,
            };
            while inner.pos < end {
                match inner.element(depth + 1)? {
                    Some(child) => tlv.children.push(child),
                    None => {
                        return Err(CmsError::Ber(
                            inner.pos,
                            "end-of-contents in a definite length",
                        ));
                    }
                }
            }
        } else {
            tlv.value = self.buf[self.pos..end].to_vec();
        }
        self.pos = end;
        Ok(Some(tlv))
    }
}

fn parse(bytes: &[u8]) -> Result<Tlv, CmsError> {
    let mut r = Reader { buf: bytes, pos: 0 };
    r.element(0)?.ok_or(CmsError::Ber(0, "empty input"))
}

fn expect_oid(t: &Tlv, oid: &[u8], what: &'static str) -> Result<(), CmsError> {
    if t.is(UNIVERSAL, OID) && t.value == oid {
        Ok(())
    } else {
        Err(CmsError::Algorithm(what))
    }
}

/// The parts needed to decrypt.
struct Enveloped {
    encrypted_key: Vec<u8>,
    iv: Vec<u8>,
    content: Vec<u8>,
}

fn dissect(bytes: &[u8]) -> Result<Enveloped, CmsError> {
    let ci = parse(bytes)?;
    if !ci.is(UNIVERSAL, SEQUENCE) {
        return Err(CmsError::Shape("ContentInfo is not a SEQUENCE"));
    }
    let ct = ci.child(0)?;
    if !(ct.is(UNIVERSAL, OID) && ct.value == OID_ENVELOPED_DATA) {
        return Err(CmsError::Shape("content type is not envelopedData"));
    }
    let wrapper = ci.child(1)?;
    if !wrapper.is(CONTEXT, 0) {
        return Err(CmsError::Shape("missing [0] content"));
    }
    let env = wrapper.child(0)?;
    if !env.is(UNIVERSAL, SEQUENCE) {
        return Err(CmsError::Shape("EnvelopedData is not a SEQUENCE"));
    }
    // version, [0] originatorInfo OPTIONAL, recipientInfos SET, encryptedContentInfo
    let mut idx = 1;
    if env.child(idx)?.is(CONTEXT, 0) {
        idx += 1;
    }
    let recipients = env.child(idx)?;
    if !recipients.is(UNIVERSAL, SET) {
        return Err(CmsError::Shape("recipientInfos is not a SET"));
    }
    let ktri = recipients.child(0)?;
    if !ktri.is(UNIVERSAL, SEQUENCE) {
        return Err(CmsError::Shape("recipient is not a KeyTransRecipientInfo"));
    }
    // version, rid, keyEncryptionAlgorithm, encryptedKey
    let alg = ktri.child(2)?;
    expect_oid(
        alg.child(0)?,
        OID_RSAES_OAEP,
        "key transport is not RSAES-OAEP",
    )?;
    // OAEP parameters: [0] hash, [1] MGF; both must name SHA-256 (KMS's RSAES_OAEP_SHA_256).
    if let Some(params) = alg.children.get(1) {
        for p in &params.children {
            let oid_holder = match p.tag {
                0 => p.child(0)?.child(0)?,
                1 => p.child(0)?.child(1)?.child(0)?,
                _ => continue,
            };
            expect_oid(oid_holder, OID_SHA256, "OAEP hash or MGF is not SHA-256")?;
        }
    } else {
        return Err(CmsError::Algorithm("OAEP with default SHA-1 parameters"));
    }
    let encrypted_key = ktri.child(3)?.octets();
    let eci = env.child(idx + 1)?;
    let calg = eci.child(1)?;
    expect_oid(calg.child(0)?, OID_AES256_CBC, "content is not AES-256-CBC")?;
    let iv = calg.child(1)?.octets();
    if iv.len() != 16 {
        return Err(CmsError::Shape("AES-CBC IV is not 16 bytes"));
    }
    let content_el = eci.child(2)?;
    if !content_el.is(CONTEXT, 0) && !content_el.is(UNIVERSAL, OCTET_STRING) {
        return Err(CmsError::Shape("missing encryptedContent"));
    }
    Ok(Enveloped {
        encrypted_key,
        iv,
        content: content_el.octets(),
    })
}

/// Decrypt `CiphertextForRecipient` with the enclave's ephemeral RSA key.
pub fn decrypt(bytes: &[u8], key: &RsaPrivateKey) -> Result<Zeroizing<Vec<u8>>, CmsError> {
    let env = dissect(bytes)?;
    let cek = Zeroizing::new(
        key.decrypt(Oaep::new::<Sha256>(), &env.encrypted_key)
            .map_err(|_| CmsError::KeyDecrypt)?,
    );
    if cek.len() != 32 {
        return Err(CmsError::KeyDecrypt);
    }
    let dec = cbc::Decryptor::<aes::Aes256>::new_from_slices(&cek, &env.iv)
        .map_err(|_| CmsError::ContentDecrypt)?;
    let pt = dec
        .decrypt_padded_vec_mut::<Pkcs7>(&env.content)
        .map_err(|_| CmsError::ContentDecrypt)?;
    Ok(Zeroizing::new(pt))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsa::pkcs8::DecodePrivateKey;

    fn fixtures() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/cms")
    }

    fn key() -> RsaPrivateKey {
        let pem = std::fs::read_to_string(fixtures().join("k.pem")).unwrap();
        RsaPrivateKey::from_pkcs8_pem(&pem).unwrap()
    }

    #[test]
    fn the_kms_shaped_fixture_decrypts() {
        let ct = std::fs::read(fixtures().join("ct.ber")).unwrap();
        let pt = std::fs::read(fixtures().join("pt.bin")).unwrap();
        assert_eq!(&*decrypt(&ct, &key()).unwrap(), &pt);
    }

    #[test]
    fn another_key_is_refused() {
        let ct = std::fs::read(fixtures().join("ct.ber")).unwrap();
        let other = RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).unwrap();
        assert_eq!(decrypt(&ct, &other).unwrap_err(), CmsError::KeyDecrypt);
    }

    #[test]
    fn every_truncation_and_bit_flip_is_an_error_not_a_panic() {
        let ct = std::fs::read(fixtures().join("ct.ber")).unwrap();
        let k = key();
        for n in 0..ct.len() {
            assert!(decrypt(&ct[..n], &k).is_err(), "truncated at {n}");
        }
        // Flip one bit in each structural byte (the first 120 and the tail).
        for i in (0..120).chain(ct.len() - 40..ct.len()) {
            let mut c = ct.clone();
            c[i] ^= 0x04;
            let _ = decrypt(&c, &k);
        }
        assert!(decrypt(&[0x30, 0x80, 0x30, 0x80], &k).is_err());
        let deep: Vec<u8> = std::iter::repeat_n([0x30u8, 0x80], 100).flatten().collect();
        assert!(decrypt(&deep, &k).is_err());
    }
}
