//! Key material: the 32-byte master key, its Shamir shares, the check value that tells a
//! correct reconstruction from a wrong one, and the validator keystore encrypted under the
//! master key. Every secret lives in a zeroizing buffer and has no `Debug`/`Display` that
//! could print it.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// The master key. Never logged; zeroized on drop.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct MasterKey([u8; 32]);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

const CHECK_DOMAIN: &[u8] = b"containment-chamber master key check v1";

impl MasterKey {
    pub fn generate() -> Self {
        let mut k = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut k);
        MasterKey(k)
    }

    /// A value that identifies the key without revealing it (SHA-256 over a domain tag and
    /// the key): stored beside the shares so a wrong reconstruction is detected.
    pub fn check_value(&self) -> String {
        let mut h = Sha256::new();
        h.update(CHECK_DOMAIN);
        h.update(self.0);
        hex::encode(h.finalize())
    }

    /// Split into `n` shares, any `m` of which rebuild the key. Share = id byte ‖ 32 bytes.
    pub fn split(&self, m: usize, n: usize) -> Result<Vec<Share>, String> {
        let shares = vsss_rs::Gf256::split_array(m, n, self.0, rand::rngs::OsRng)
            .map_err(|e| format!("cannot split the master key: {e:?}"))?;
        Ok(shares
            .into_iter()
            .map(|s| Share(Zeroizing::new(s)))
            .collect())
    }

    /// Rebuild from shares; `None` when they do not combine (too few, mismatched lengths).
    pub fn combine(shares: &[&Share]) -> Option<MasterKey> {
        let raw: Vec<Vec<u8>> = shares.iter().map(|s| s.0.to_vec()).collect();
        let raw = Zeroizing::new(raw);
        let secret = Zeroizing::new(vsss_rs::Gf256::combine_array(&*raw).ok()?);
        let arr: [u8; 32] = secret.as_slice().try_into().ok()?;
        Some(MasterKey(arr))
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new((&self.0).into())
    }
}

/// One Shamir share (id byte ‖ 32 value bytes). Zeroized on drop.
pub struct Share(pub Zeroizing<Vec<u8>>);

impl std::fmt::Debug for Share {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Share(<redacted>)")
    }
}

impl Share {
    pub fn from_bytes(b: Vec<u8>) -> Result<Share, String> {
        let b = Zeroizing::new(b);
        if b.len() != 33 || b[0] == 0 {
            return Err(format!(
                "share has {} bytes (or a zero id): expected 33 (id byte and 32 value bytes)",
                b.len()
            ));
        }
        Ok(Share(b))
    }
}

/// A BLS12-381 validator key (eth2, min_pk: 48-byte public keys, 96-byte signatures).
pub struct ValidatorKey {
    sk: blst::min_pk::SecretKey,
    pub pubkey: [u8; 48],
}

impl std::fmt::Debug for ValidatorKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ValidatorKey(0x{})", hex::encode(self.pubkey))
    }
}

/// The eth2 signature domain separation tag (proof-of-possession ciphersuite).
pub const ETH2_DST: &[u8] = b"BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_";

impl ValidatorKey {
    pub fn generate() -> Result<Self, String> {
        let mut ikm = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(&mut *ikm);
        let sk = blst::min_pk::SecretKey::key_gen(&*ikm, &[])
            .map_err(|e| format!("BLS key generation failed: {e:?}"))?;
        Ok(Self::from_sk(sk))
    }

    fn from_sk(sk: blst::min_pk::SecretKey) -> Self {
        let pubkey = sk.sk_to_pk().to_bytes();
        ValidatorKey { sk, pubkey }
    }

    pub fn sign(&self, message: &[u8]) -> [u8; 96] {
        self.sk.sign(message, ETH2_DST, &[]).to_bytes()
    }

    fn secret_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.sk.to_bytes())
    }
}

/// Verify an eth2 BLS signature (used by tests and by `ccctl`-side checks).
pub fn verify(pubkey: &[u8], message: &[u8], signature: &[u8]) -> bool {
    let (Ok(pk), Ok(sig)) = (
        blst::min_pk::PublicKey::from_bytes(pubkey),
        blst::min_pk::Signature::from_bytes(signature),
    ) else {
        return false;
    };
    sig.verify(true, message, ETH2_DST, &[], &pk, true) == blst::BLST_ERROR::BLST_SUCCESS
}

/// The keystore file: validator secret keys, each AES-256-GCM-encrypted under the master key
/// with its public key as associated data.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Keystore {
    pub version: u32,
    pub keys: Vec<KeystoreEntry>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeystoreEntry {
    /// 0x-prefixed 48-byte compressed public key.
    pub pubkey: String,
    pub nonce: String,
    pub ciphertext: String,
}

impl Keystore {
    pub fn seal(master: &MasterKey, keys: &[ValidatorKey]) -> Result<Keystore, String> {
        let cipher = master.cipher();
        let mut entries = Vec::new();
        for k in keys {
            let mut nonce = [0u8; 12];
            rand::rngs::OsRng.fill_bytes(&mut nonce);
            let secret = k.secret_bytes();
            let ct = cipher
                .encrypt(
                    Nonce::from_slice(&nonce),
                    Payload {
                        msg: &secret[..],
                        aad: &k.pubkey,
                    },
                )
                .map_err(|_| "keystore encryption failed".to_owned())?;
            entries.push(KeystoreEntry {
                pubkey: format!("0x{}", hex::encode(k.pubkey)),
                nonce: hex::encode(nonce),
                ciphertext: hex::encode(ct),
            });
        }
        Ok(Keystore {
            version: 1,
            keys: entries,
        })
    }

    /// Decrypt every key; an entry that does not decrypt (wrong master key, tampered file)
    /// is an error naming that entry's public key — never its contents.
    pub fn open(&self, master: &MasterKey) -> Result<Vec<ValidatorKey>, String> {
        if self.version != 1 {
            return Err(format!("keystore version {} (expected 1)", self.version));
        }
        let cipher = master.cipher();
        let mut out = Vec::new();
        for (i, e) in self.keys.iter().enumerate() {
            let pubkey = decode_hex_prefixed(&e.pubkey)
                .filter(|p| p.len() == 48)
                .ok_or_else(|| format!("keystore key {i}: 'pubkey' is not 48 bytes of hex"))?;
            let nonce = hex::decode(&e.nonce)
                .ok()
                .filter(|n| n.len() == 12)
                .ok_or_else(|| format!("keystore key {i}: 'nonce' is not 12 bytes of hex"))?;
            let ct = hex::decode(&e.ciphertext)
                .map_err(|_| format!("keystore key {i}: 'ciphertext' is not hex"))?;
            let secret = Zeroizing::new(
                cipher
                    .decrypt(
                        Nonce::from_slice(&nonce),
                        Payload {
                            msg: &ct,
                            aad: &pubkey,
                        },
                    )
                    .map_err(|_| {
                        format!(
                            "keystore key {} does not decrypt under the master key",
                            e.pubkey
                        )
                    })?,
            );
            let sk = blst::min_pk::SecretKey::from_bytes(&secret)
                .map_err(|_| format!("keystore key {} is not a BLS secret key", e.pubkey))?;
            let key = ValidatorKey::from_sk(sk);
            if key.pubkey[..] != pubkey[..] {
                return Err(format!(
                    "keystore key {}: secret does not match its public key",
                    e.pubkey
                ));
            }
            out.push(key);
        }
        Ok(out)
    }
}

pub fn decode_hex_prefixed(s: &str) -> Option<Vec<u8>> {
    hex::decode(s.strip_prefix("0x").unwrap_or(s)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_two_of_three_shares_rebuild_the_key() {
        let k = MasterKey::generate();
        let shares = k.split(2, 3).unwrap();
        assert_eq!(shares.len(), 3);
        for (a, b) in [(0, 1), (0, 2), (1, 2), (2, 0)] {
            let back = MasterKey::combine(&[&shares[a], &shares[b]]).unwrap();
            assert_eq!(back.check_value(), k.check_value());
        }
        // One share alone reveals nothing and combines to nothing.
        assert!(MasterKey::combine(&[&shares[0]]).is_none());
    }

    #[test]
    fn a_corrupted_share_gives_a_different_check_value() {
        let k = MasterKey::generate();
        let shares = k.split(2, 3).unwrap();
        let mut bad = shares[1].0.to_vec();
        bad[5] ^= 1;
        let bad = Share::from_bytes(bad).unwrap();
        let back = MasterKey::combine(&[&shares[0], &bad]).unwrap();
        assert_ne!(back.check_value(), k.check_value());
    }

    #[test]
    fn keystore_round_trip_and_wrong_master_key() {
        let k = MasterKey::generate();
        let vks = vec![
            ValidatorKey::generate().unwrap(),
            ValidatorKey::generate().unwrap(),
        ];
        let ks = Keystore::seal(&k, &vks).unwrap();
        let text = serde_json::to_string(&ks).unwrap();
        let back: Keystore = serde_json::from_str(&text).unwrap();
        let opened = back.open(&k).unwrap();
        assert_eq!(opened[1].pubkey, vks[1].pubkey);
        let msg = [42u8; 32];
        let sig = opened[0].sign(&msg);
        assert!(verify(&vks[0].pubkey, &msg, &sig));
        assert!(!verify(&vks[1].pubkey, &msg, &sig));
        let e = back.open(&MasterKey::generate()).unwrap_err();
        assert!(e.contains("does not decrypt under the master key"), "{e}");
    }

    #[test]
    fn secrets_never_print() {
        let k = MasterKey::generate();
        assert_eq!(format!("{k:?}"), "MasterKey(<redacted>)");
        let s = &k.split(2, 2).unwrap()[0];
        assert_eq!(format!("{s:?}"), "Share(<redacted>)");
    }
}
