//! The share file written by `init`: one KMS ciphertext per holder plus the master key's
//! check value. It holds no plaintext secret; a corrupted file is a clear `failed` reason.

use std::path::Path;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShareFile {
    pub version: u32,
    pub threshold: u32,
    /// See `MasterKey::check_value`.
    pub check: String,
    pub shares: Vec<EncryptedShare>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EncryptedShare {
    pub holder: String,
    pub key_arn: String,
    /// Base64 of the KMS `CiphertextBlob`.
    pub ciphertext: String,
}

/// The encryption context every share is bound to (KMS checks it on Decrypt): the contract's.
pub use cc_proto::shares::encryption_context;

impl EncryptedShare {
    pub fn ciphertext_bytes(&self) -> Result<Vec<u8>, String> {
        base64::engine::general_purpose::STANDARD
            .decode(self.ciphertext.trim())
            .map_err(|e| format!("share of '{}': ciphertext is not base64 ({e})", self.holder))
    }
}

impl ShareFile {
    pub fn new(threshold: u32, check: String, shares: Vec<EncryptedShare>) -> Self {
        ShareFile {
            version: 1,
            threshold,
            check,
            shares,
        }
    }

    pub fn encode_ciphertext(bytes: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read share file '{}': {e}", path.display()))?;
        let f: ShareFile = serde_json::from_str(&text).map_err(|e| {
            format!(
                "share file '{}' is corrupted or not a share file: {e}",
                path.display()
            )
        })?;
        if f.version != 1 {
            return Err(format!(
                "share file '{}' has version {} (expected 1)",
                path.display(),
                f.version
            ));
        }
        if f.check.len() != 64 || hex::decode(&f.check).is_err() {
            return Err(format!(
                "share file '{}': 'check' is not 64 hex digits",
                path.display()
            ));
        }
        for s in &f.shares {
            s.ciphertext_bytes()
                .map_err(|e| format!("share file '{}': {e}", path.display()))?;
        }
        Ok(f)
    }

    pub fn share_for(&self, holder: &str) -> Option<&EncryptedShare> {
        self.shares.iter().find(|s| s.holder == holder)
    }

    /// Write atomically (temp file + rename) so a crash never leaves half a share file.
    pub fn save(&self, path: &Path) -> Result<(), String> {
        let text = serde_json::to_string_pretty(self).map_err(|e| e.to_string())?;
        write_atomically(path, text.as_bytes())
    }
}

pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).map_err(|e| format!("cannot write '{}': {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("cannot rename into '{}': {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corrupted_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("shares.json");
        std::fs::write(&p, "{\"version\": 1, \"threshold\": 2, \"check\": ").unwrap();
        let e = ShareFile::load(&p).unwrap_err();
        assert!(e.contains("is corrupted or not a share file"), "{e}");
        let good = ShareFile::new(
            2,
            "ab".repeat(32),
            vec![EncryptedShare {
                holder: "a".into(),
                key_arn: "arn:x".into(),
                ciphertext: ShareFile::encode_ciphertext(b"ct"),
            }],
        );
        good.save(&p).unwrap();
        assert_eq!(ShareFile::load(&p).unwrap().shares.len(), 1);
        let text = std::fs::read_to_string(&p).unwrap().replace("Y3Q=", "!!!");
        std::fs::write(&p, text).unwrap();
        let e = ShareFile::load(&p).unwrap_err();
        assert!(e.contains("ciphertext is not base64"), "{e}");
    }
}
