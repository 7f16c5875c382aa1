//! KMS grants: a second way, beside the key policy, to be allowed `kms:Decrypt`.
//!
//! A grant (KMS Developer Guide, "Grants in AWS KMS") gives a grantee principal operations on
//! one key; its only constraints are on the encryption context (`EncryptionContextEquals`,
//! `EncryptionContextSubset`). Grant constraints cannot express attestation — there is no
//! grant constraint on `kms:RecipientAttestation:*` — so any grant of `Decrypt` to the
//! enclave's principal lets it decrypt without attestation, whatever its encryption-context
//! constraint (the constraint is met by whoever knows the context, which is not secret).
//! `ReEncryptFrom` is counted too: it decrypts under this key and re-encrypts under a key the
//! caller chooses, so it releases the plaintext just the same.

use std::collections::BTreeMap;

use super::evaluation::principal_entry;

/// A grant's encryption-context constraints.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GrantConstraints {
    pub encryption_context_equals: Option<BTreeMap<String, String>>,
    pub encryption_context_subset: Option<BTreeMap<String, String>>,
}

/// One grant on the key (as `ListGrants` returns it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GrantRecord {
    pub grant_id: String,
    /// The grantee: a role, a session, a user or an account ARN.
    pub grantee_principal: String,
    /// `Decrypt`, `Encrypt`, `ReEncryptFrom`, ... (with or without the `kms:` prefix).
    pub operations: Vec<String>,
    pub constraints: Option<GrantConstraints>,
}

impl GrantRecord {
    /// Operations of this grant that release plaintext: `Decrypt`, `ReEncryptFrom`.
    pub fn releasing_operations(&self) -> Vec<String> {
        self.operations
            .iter()
            .filter(|o| {
                let o = o.strip_prefix("kms:").unwrap_or(o);
                o.eq_ignore_ascii_case("Decrypt") || o.eq_ignore_ascii_case("ReEncryptFrom")
            })
            .cloned()
            .collect()
    }
}

/// Does the grant let `principal_arn` decrypt without attestation? True when it grants
/// `Decrypt` (or `ReEncryptFrom`) to the principal — its role, its session, or its account (the
/// account's IAM policies then decide, which cannot require attestation either) — whatever its
/// constraints, since no grant constraint expresses attestation.
pub fn grant_bypasses_attestation(grant: &GrantRecord, principal_arn: &str) -> bool {
    !grant.releasing_operations().is_empty()
        && !principal_entry(&grant.grantee_principal, principal_arn)
            .any()
            .is_false()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROLE: &str = "arn:aws:iam::111122223333:role/signer";

    fn grant(grantee: &str, ops: &[&str], constrained: bool) -> GrantRecord {
        GrantRecord {
            grant_id: "g".into(),
            grantee_principal: grantee.into(),
            operations: ops.iter().map(|o| (*o).to_owned()).collect(),
            constraints: constrained.then(|| GrantConstraints {
                encryption_context_equals: Some(BTreeMap::from([(
                    "purpose".into(),
                    "share".into(),
                )])),
                encryption_context_subset: None,
            }),
        }
    }

    /// https://docs.aws.amazon.com/kms/latest/developerguide/grants.html — grant constraints
    /// are on the encryption context only: no grant can require attestation.
    #[test]
    fn any_decrypt_grant_to_the_principal_bypasses_attestation() {
        for (g, principal, bypass) in [
            (grant(ROLE, &["Decrypt"], false), ROLE, true),
            (grant(ROLE, &["Decrypt"], true), ROLE, true),
            (grant(ROLE, &["kms:ReEncryptFrom"], true), ROLE, true),
            (
                grant(ROLE, &["Encrypt", "GenerateDataKey"], false),
                ROLE,
                false,
            ),
            (
                grant(ROLE, &["Decrypt"], false),
                "arn:aws:sts::111122223333:assumed-role/signer/i-0abc",
                true,
            ),
            (
                grant("arn:aws:iam::111122223333:root", &["Decrypt"], false),
                ROLE,
                true,
            ),
            (
                grant("arn:aws:iam::111122223333:role/other", &["Decrypt"], false),
                ROLE,
                false,
            ),
            (
                grant("arn:aws:iam::444455556666:role/signer", &["Decrypt"], false),
                ROLE,
                false,
            ),
        ] {
            assert_eq!(
                grant_bypasses_attestation(&g, principal),
                bypass,
                "{g:?} {principal}"
            );
        }
    }
}
