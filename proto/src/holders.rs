//! `ccctl`'s configuration file (TOML): the key holders and the enclave's role. Unknown keys
//! are errors naming the key. The file is a contract (the Helm chart and the demo write it), so
//! it is defined in `cc_proto::holders`.

use std::path::Path;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The enclave's IAM role (the principal that calls kms:Decrypt).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<u32>,
    #[serde(rename = "holder", default)]
    pub holders: Vec<Holder>,
    /// How to see the principal role's IAM side (identity-based policies, permissions
    /// boundary): read live through IAM, or from files. Without it the IAM side is assumed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iam: Option<Iam>,
}

/// The IAM side of the principal (`[iam]`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Iam {
    /// Read the role's inline and attached policies and its boundary live (iam:GetRole,
    /// iam:ListRolePolicies, iam:GetRolePolicy, iam:ListAttachedRolePolicies, iam:GetPolicy,
    /// iam:GetPolicyVersion) with this AWS profile (one in the role's account).
    #[serde(default)]
    pub live: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// Endpoint override (otherwise AWS_ENDPOINT_URL_IAM or IAM's global endpoint).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Offline: the role's identity-based policies as files (inline or managed documents).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub identity_policies: Vec<std::path::PathBuf>,
    /// Offline: the role's permissions boundary as a file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions_boundary: Option<std::path::PathBuf>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Holder {
    pub name: String,
    pub key_arn: String,
    pub region: String,
    /// AWS profile with read access to this holder's key (kms:GetKeyPolicy, kms:DescribeKey).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// Endpoint override (otherwise AWS_ENDPOINT_URL_KMS or the regional endpoint).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Read the key policy from this file instead of KMS (offline checks, tests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_file: Option<std::path::PathBuf>,
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read config '{}': {e}", path.display()))?;
        let c: Config = toml::from_str(&text)
            .map_err(|e| format!("config '{}' is not valid: {e}", path.display()))?;
        let mut names = std::collections::HashSet::new();
        for (i, h) in c.holders.iter().enumerate() {
            if !names.insert(h.name.as_str()) {
                return Err(format!(
                    "config '{}': 'holder[{i}].name' '{}' is used twice",
                    path.display(),
                    h.name
                ));
            }
        }
        Ok(c)
    }
}
