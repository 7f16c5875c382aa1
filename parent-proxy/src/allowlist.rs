//! The egress allowlist, in the file format of AWS's `vsock-proxy`
//! (`/etc/nitro_enclaves/vsock-proxy.yaml`):
//!
//! ```yaml
//! allowlist:
//! - {address: kms.us-east-1.amazonaws.com, port: 443}
//! ```
//!
//! Checked once at start, like vsock-proxy: an entry allows the target when the port is equal
//! and the address names the same host (case-insensitive, trailing dot ignored) or resolves to
//! an IP address the target also resolves to.

use std::collections::HashSet;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllowlistFile {
    pub allowlist: Vec<Entry>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    pub address: String,
    pub port: u16,
}

#[derive(Debug, thiserror::Error)]
pub enum AllowlistError {
    #[error("cannot read allowlist '{path}': {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "allowlist '{path}' is not valid: {source} (expected `allowlist: [{{address: HOST, port: PORT}}, ...]`)"
    )]
    Parse {
        path: PathBuf,
        source: serde_yaml_ng::Error,
    },
    #[error(
        "egress target '{host}:{port}' refused: the given address and port are not allowed by allowlist '{path}'"
    )]
    NotAllowed {
        host: String,
        port: u16,
        path: PathBuf,
    },
}

impl AllowlistFile {
    pub fn load(path: &Path) -> Result<Self, AllowlistError> {
        let text = std::fs::read_to_string(path).map_err(|source| AllowlistError::Read {
            path: path.to_owned(),
            source,
        })?;
        serde_yaml_ng::from_str(&text).map_err(|source| AllowlistError::Parse {
            path: path.to_owned(),
            source,
        })
    }

    /// Does some entry allow `host:port`?
    pub async fn allows(&self, host: &str, port: u16) -> bool {
        let host_n = normalise(host);
        let candidates: Vec<&Entry> = self.allowlist.iter().filter(|e| e.port == port).collect();
        if candidates.iter().any(|e| normalise(&e.address) == host_n) {
            return true;
        }
        if candidates.is_empty() {
            return false;
        }
        let target_ips = resolve(host, port).await;
        if target_ips.is_empty() {
            return false;
        }
        for e in candidates {
            if !resolve(&e.address, port).await.is_disjoint(&target_ips) {
                return true;
            }
        }
        false
    }
}

fn normalise(h: &str) -> String {
    h.trim_end_matches('.')
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase()
}

async fn resolve(host: &str, port: u16) -> HashSet<IpAddr> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = host.parse::<IpAddr>() {
        return HashSet::from([ip]);
    }
    match tokio::net::lookup_host((host, port)).await {
        Ok(addrs) => addrs.map(|a| a.ip()).collect(),
        Err(_) => HashSet::new(),
    }
}

/// Load `path` and refuse `host:port` unless it is listed.
pub async fn check(path: &Path, host: &str, port: u16) -> Result<(), AllowlistError> {
    let list = AllowlistFile::load(path)?;
    if list.allows(host, port).await {
        Ok(())
    } else {
        Err(AllowlistError::NotAllowed {
            host: host.to_owned(),
            port,
            path: path.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(yaml: &str) -> AllowlistFile {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    #[tokio::test]
    async fn matches_like_vsock_proxy() {
        let l = list(
            "allowlist:\n- {address: kms.us-east-1.amazonaws.com, port: 443}\n- {address: localhost, port: 8443}\n- {address: 127.0.0.1, port: 9443}\n",
        );
        assert!(l.allows("kms.us-east-1.amazonaws.com", 443).await);
        assert!(l.allows("KMS.us-east-1.amazonaws.com.", 443).await);
        assert!(!l.allows("kms.us-east-1.amazonaws.com", 444).await);
        assert!(!l.allows("kms.eu-west-1.amazonaws.com", 443).await);
        // By resolution: localhost resolves to 127.0.0.1 on every test machine.
        assert!(l.allows("127.0.0.1", 8443).await);
        assert!(l.allows("localhost", 9443).await);
        assert!(!l.allows("127.0.0.2", 8443).await);
    }

    #[tokio::test]
    async fn bad_files_name_the_file_and_the_expected_shape() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("vsock-proxy.yaml");
        std::fs::write(&p, "allowlist:\n- {address: x, prot: 443}\n").unwrap();
        let e = check(&p, "x", 443).await.unwrap_err().to_string();
        assert!(
            e.contains("vsock-proxy.yaml") && e.contains("expected `allowlist"),
            "{e}"
        );
        let e = check(&dir.path().join("missing.yaml"), "x", 443)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("cannot read allowlist") && e.contains("missing.yaml"),
            "{e}"
        );
        std::fs::write(&p, "allowlist:\n- {address: x, port: 443}\n").unwrap();
        let e = check(&p, "y", 443).await.unwrap_err().to_string();
        assert!(
            e.contains("the given address and port are not allowed"),
            "{e}"
        );
        check(&p, "x", 443).await.unwrap();
    }
}
