//! The IAM side of the enclave's role, read live: its inline policies, its attached managed
//! policies (their default version) and its permissions boundary, as policy documents (IAM
//! returns them URL-encoded). And each holder's KMS grants (`ListGrants`). Nothing here judges:
//! `cc_proto::policy` does.

use std::time::Duration;

use cc_proto::holders::{Holder, Iam};

/// One identity-based policy document as read.
#[derive(Debug, Clone)]
pub struct PolicyDocument {
    /// `inline:NAME`, `managed:ARN` or `boundary:ARN`.
    pub name: String,
    pub text: String,
}

/// The role's policies: identity-based ones and the boundary, if any.
#[derive(Debug, Clone, Default)]
pub struct RolePolicies {
    pub identity: Vec<PolicyDocument>,
    pub boundary: Option<PolicyDocument>,
}

/// The role name of `arn:aws:iam::ACCOUNT:role/PATH/NAME` or of an assumed-role session ARN.
pub fn role_name(principal: &str) -> Option<String> {
    let rest = principal.split(':').nth(5)?;
    if let Some(r) = rest.strip_prefix("role/") {
        return r.rsplit('/').next().map(str::to_owned);
    }
    if let Some(r) = rest.strip_prefix("assumed-role/") {
        return r.split('/').next().map(str::to_owned);
    }
    None
}

fn decode(doc: &str) -> String {
    percent_encoding::percent_decode_str(doc)
        .decode_utf8_lossy()
        .into_owned()
}

/// Read the role's policies live through IAM.
pub async fn role_policies(
    principal: &str,
    iam: &Iam,
    timeout: Duration,
) -> Result<RolePolicies, String> {
    let role = role_name(principal)
        .ok_or_else(|| format!("'{principal}' is not a role or assumed-role ARN"))?;
    let conf = super::policy::aws_sdk_config(iam.profile.as_deref(), "us-east-1", timeout).await;
    let mut b = aws_sdk_iam::config::Builder::from(&conf);
    if let Some(ep) = &iam.endpoint {
        b = b.endpoint_url(ep);
    }
    let c = aws_sdk_iam::Client::from_conf(b.build());
    let err = |what: &str, e: String| format!("IAM {what} for role '{role}': {e}");
    let mut out = RolePolicies::default();
    let inline = c
        .list_role_policies()
        .role_name(&role)
        .send()
        .await
        .map_err(|e| err("ListRolePolicies", sdk_error(&e)))?;
    for name in inline.policy_names() {
        let p = c
            .get_role_policy()
            .role_name(&role)
            .policy_name(name)
            .send()
            .await
            .map_err(|e| err("GetRolePolicy", sdk_error(&e)))?;
        out.identity.push(PolicyDocument {
            name: format!("inline:{name}"),
            text: decode(p.policy_document()),
        });
    }
    let attached = c
        .list_attached_role_policies()
        .role_name(&role)
        .send()
        .await
        .map_err(|e| err("ListAttachedRolePolicies", sdk_error(&e)))?;
    for a in attached.attached_policies() {
        let Some(arn) = a.policy_arn() else { continue };
        out.identity.push(PolicyDocument {
            name: format!("managed:{arn}"),
            text: managed(&c, arn)
                .await
                .map_err(|e| err("GetPolicyVersion", e))?,
        });
    }
    let r = c
        .get_role()
        .role_name(&role)
        .send()
        .await
        .map_err(|e| err("GetRole", sdk_error(&e)))?;
    if let Some(arn) = r
        .role()
        .and_then(|r| r.permissions_boundary())
        .and_then(|b| b.permissions_boundary_arn())
    {
        out.boundary = Some(PolicyDocument {
            name: format!("boundary:{arn}"),
            text: managed(&c, arn)
                .await
                .map_err(|e| err("GetPolicyVersion (boundary)", e))?,
        });
    }
    Ok(out)
}

/// A managed policy's default version document.
async fn managed(c: &aws_sdk_iam::Client, arn: &str) -> Result<String, String> {
    let p = c
        .get_policy()
        .policy_arn(arn)
        .send()
        .await
        .map_err(|e| sdk_error(&e))?;
    let version = p
        .policy()
        .and_then(|p| p.default_version_id())
        .ok_or_else(|| format!("{arn} has no default version"))?;
    let v = c
        .get_policy_version()
        .policy_arn(arn)
        .version_id(version)
        .send()
        .await
        .map_err(|e| sdk_error(&e))?;
    v.policy_version()
        .and_then(|v| v.document())
        .map(decode)
        .ok_or_else(|| format!("{arn} version {version} has no document"))
}

/// An SDK error in one line: its code and message (not the whole debug structure).
fn sdk_error<E: aws_sdk_kms::error::ProvideErrorMetadata + std::fmt::Display>(e: &E) -> String {
    match (e.code(), e.message()) {
        (Some(c), Some(m)) => format!("{c}: {m}"),
        (Some(c), None) => c.to_owned(),
        _ => e.to_string(),
    }
}

/// One KMS grant as read (`ListGrants`).
#[derive(Debug, Clone)]
pub struct Grant {
    pub grant_id: String,
    pub name: Option<String>,
    pub grantee_principal: String,
    pub operations: Vec<String>,
    pub encryption_context_equals: std::collections::BTreeMap<String, String>,
    pub encryption_context_subset: std::collections::BTreeMap<String, String>,
}

/// Every grant on the holder's key (all pages).
pub async fn grants(h: &Holder, timeout: Duration) -> Result<Vec<Grant>, String> {
    let c = super::policy::kms_client(h, timeout).await;
    let mut out = Vec::new();
    let mut marker: Option<String> = None;
    // Bounded: at most 100 pages of 100 grants.
    for _ in 0..100 {
        let r = c
            .list_grants()
            .key_id(&h.key_arn)
            .set_marker(marker.clone())
            .send()
            .await
            .map_err(|e| format!("ListGrants on {} failed: {}", h.key_arn, sdk_error(&e)))?;
        for g in r.grants() {
            let constraints = g.constraints();
            let map = |m: Option<&std::collections::HashMap<String, String>>| {
                m.map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                    .unwrap_or_default()
            };
            out.push(Grant {
                grant_id: g.grant_id().unwrap_or_default().to_owned(),
                name: g.name().map(str::to_owned),
                grantee_principal: g.grantee_principal().unwrap_or_default().to_owned(),
                operations: g
                    .operations()
                    .iter()
                    .map(|o| o.as_str().to_owned())
                    .collect(),
                encryption_context_equals: map(
                    constraints.and_then(|c| c.encryption_context_equals())
                ),
                encryption_context_subset: map(
                    constraints.and_then(|c| c.encryption_context_subset())
                ),
            });
        }
        match (r.truncated(), r.next_marker()) {
            (true, Some(m)) => marker = Some(m.to_owned()),
            _ => return Ok(out),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_names_and_documents() {
        assert_eq!(
            role_name("arn:aws:iam::1:role/svc/signer").as_deref(),
            Some("signer")
        );
        assert_eq!(
            role_name("arn:aws:sts::1:assumed-role/signer/i-0abc").as_deref(),
            Some("signer")
        );
        assert_eq!(role_name("arn:aws:iam::1:user/bob"), None);
        assert_eq!(
            decode("%7B%22Version%22%3A%222012-10-17%22%7D"),
            "{\"Version\":\"2012-10-17\"}"
        );
    }
}
