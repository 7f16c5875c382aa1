//! The share contract: the encryption context every Shamir share is bound to when `init`
//! encrypts it under a holder's KMS key. The enclave sends exactly this on `kms:Decrypt`, and
//! ccctl judges key policies (`kms:EncryptionContext:*` conditions) with the same map.

use std::collections::BTreeMap;

/// `purpose` of every share.
pub const SHARE_PURPOSE: &str = "containment-chamber-share";

/// The encryption context of `holder`'s share: `purpose` and `holder`.
pub fn encryption_context(holder: &str) -> [(&'static str, String); 2] {
    [
        ("purpose", SHARE_PURPOSE.to_owned()),
        ("holder", holder.to_owned()),
    ]
}

/// The same as a map (what the policy evaluator's request context takes).
pub fn encryption_context_map(holder: &str) -> BTreeMap<String, String> {
    encryption_context(holder)
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
}
