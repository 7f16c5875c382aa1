//! Judging a request against a policy, the way KMS does: action and principal matching,
//! conditions on the request's attestation, and Allow/Deny combined into a [`Decision`].

use std::collections::BTreeMap;

use super::document::{
    AttKey, BaseOp, Condition, Effect, Policy, Principal, SetOp, Statement, attestation_key,
};

impl Statement {
    pub fn covers_action(&self, action: &str) -> bool {
        let hit = self
            .actions
            .iter()
            .any(|p| glob(&p.to_ascii_lowercase(), &action.to_ascii_lowercase()));
        hit != self.not_action
    }

    pub fn covers_principal(&self, principal: &str) -> bool {
        match &self.principal {
            Principal::Any => true,
            Principal::Other => false,
            Principal::Aws(list) => list.iter().any(|p| principal_matches(p, principal)),
        }
    }
}

/// `*` and `?` wildcards, as IAM's `StringLike` and action patterns use them.
pub fn glob(pattern: &str, s: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), s.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0usize, 0usize, None, 0usize);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(sp) = star {
            pi = sp + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

fn account_of(arn: &str) -> Option<&str> {
    // arn:aws:iam::ACCOUNT:... / arn:aws:sts::ACCOUNT:...
    arn.split(':').nth(4).filter(|a| !a.is_empty())
}

/// Does a policy principal entry cover the request's principal? The account root (or a bare
/// account id) covers every principal in that account (KMS delegates to IAM there); an
/// assumed-role session matches its role.
pub fn principal_matches(entry: &str, principal: &str) -> bool {
    if entry == principal {
        return true;
    }
    let entry_account = if entry.chars().all(|c| c.is_ascii_digit()) {
        Some(entry)
    } else if entry.ends_with(":root") {
        account_of(entry)
    } else {
        None
    };
    if let Some(acct) = entry_account {
        return account_of(principal) == Some(acct);
    }
    // arn:aws:sts::ACCT:assumed-role/NAME/SESSION ≡ arn:aws:iam::ACCT:role/NAME
    if let Some(rest) = principal.strip_prefix("arn:aws:sts::")
        && let Some((acct, tail)) = rest.split_once(":assumed-role/")
    {
        let name = tail.split('/').next().unwrap_or("");
        return entry == format!("arn:aws:iam::{acct}:role/{name}");
    }
    false
}

/// The measurements a request would carry (lowercase hex), by PCR index.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Measurements {
    pub pcrs: BTreeMap<u8, String>,
}

impl Measurements {
    pub fn get(&self, key: AttKey) -> Option<&String> {
        key.pcr().and_then(|n| self.pcrs.get(&n))
    }
}

/// A `kms:Decrypt` request to judge.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    pub principal: &'a str,
    pub action: &'a str,
    /// `None`: no Recipient, so no attestation keys at all.
    pub attestation: Option<&'a Measurements>,
}

fn context_value(req: &Request<'_>, key: &str) -> Option<String> {
    let att = attestation_key(key)?;
    req.attestation?.get(att).cloned()
}

fn value_matches(base: BaseOp, pattern: &str, actual: &str) -> bool {
    match base {
        BaseOp::StringEquals | BaseOp::StringNotEquals => pattern == actual,
        BaseOp::StringEqualsIgnoreCase | BaseOp::StringNotEqualsIgnoreCase => {
            pattern.eq_ignore_ascii_case(actual)
        }
        BaseOp::StringLike | BaseOp::StringNotLike => glob(pattern, actual),
        _ => false,
    }
}

/// Does one condition hold for the request?
pub fn condition_holds(c: &Condition, req: &Request<'_>) -> bool {
    let actual = context_value(req, &c.key);
    if c.op.base == BaseOp::Null {
        let want_absent = c.values.iter().any(|v| v.eq_ignore_ascii_case("true"));
        return actual.is_none() == want_absent;
    }
    if c.op.base == BaseOp::Other {
        // Unmodelled operators on keys we do not know: treat as not holding (conservative
        // for Allow) — reported separately when they touch attestation keys.
        return false;
    }
    let negated = matches!(
        c.op.base,
        BaseOp::StringNotEquals | BaseOp::StringNotEqualsIgnoreCase | BaseOp::StringNotLike
    );
    let Some(actual) = actual else {
        return match c.op.set {
            SetOp::ForAllValues => true,
            SetOp::ForAnyValue => false,
            SetOp::None => c.op.if_exists || negated,
        };
    };
    let any = c
        .values
        .iter()
        .any(|p| value_matches(c.op.base, p, &actual));
    if negated { !any } else { any }
}

pub fn statement_applies(s: &Statement, req: &Request<'_>) -> bool {
    s.covers_action(req.action)
        && s.covers_principal(req.principal)
        && s.conditions.iter().all(|c| condition_holds(c, req))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub allowing: Vec<usize>,
    pub denying: Vec<usize>,
}

pub fn evaluate(p: &Policy, req: &Request<'_>) -> Decision {
    let mut allowing = Vec::new();
    let mut denying = Vec::new();
    for s in &p.statements {
        if statement_applies(s, req) {
            match s.effect {
                Effect::Allow => allowing.push(s.index),
                Effect::Deny => denying.push(s.index),
            }
        }
    }
    Decision {
        allowed: denying.is_empty() && !allowing.is_empty(),
        allowing,
        denying,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::findings::Severity;
    use crate::policy::analyse;
    use crate::policy::test_support::{NEW, OLD, ROLE, allow_decrypt, codes, has, m, policy};

    #[test]
    fn glob_matches_like_iam() {
        assert!(glob("kms:de*", "kms:decrypt"));
        assert!(glob("*", ""));
        assert!(glob("a?c", "abc"));
        assert!(!glob("a?c", "ac"));
        assert!(glob("5e1f*", OLD));
        assert!(!glob("kms:encrypt", "kms:decrypt"));
    }

    #[test]
    fn statement_as_object_wildcards_and_case_insensitive_actions() {
        for action in [
            r#""kms:De*""#,
            r#""KMS:DECRYPT""#,
            r#"["kms:Encrypt","kms:*"]"#,
            r#""*""#,
        ] {
            let p = policy(&format!(
                r#"{{"Effect":"Allow","Principal":{{"AWS":"{ROLE}"}},"Action":{action},"Resource":"*","Condition":{{"StringEqualsIgnoreCase":{{"kms:RecipientAttestation:ImageSha384":"{OLD}"}}}}}}"#
            ));
            let a = analyse(&p, ROLE, &m(OLD, None));
            assert!(a.decision.allowed, "{action}");
        }
        let p = policy(&format!(
            r#"{{"Effect":"Allow","Principal":{{"AWS":"{ROLE}"}},"NotAction":"kms:Decrypt","Resource":"*"}}"#
        ));
        assert!(!analyse(&p, ROLE, &m(OLD, None)).decision.allowed);
    }

    #[test]
    fn root_principal_delegates_to_the_account() {
        let p = policy(
            r#"[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::222222222222:root"},"Action":"kms:*","Resource":"*"}]"#,
        );
        let a = analyse(&p, ROLE, &m(OLD, None));
        assert!(a.unattested.allowed);
        assert!(has(&a, "policy.unattested-decrypt", Severity::Error));
        assert!(
            !analyse(&p, "arn:aws:iam::333333333333:role/signer", &m(OLD, None))
                .decision
                .allowed
        );
    }

    #[test]
    fn absent_keys_follow_kms_rules() {
        let cases = [
            (
                format!(
                    r#"{{"StringEqualsIgnoreCaseIfExists":{{"kms:RecipientAttestation:PCR0":"{OLD}"}}}}"#
                ),
                true,
                "policy.if-exists",
                Severity::Error,
            ),
            (
                format!(
                    r#"{{"ForAllValues:StringEqualsIgnoreCase":{{"kms:RecipientAttestation:PCR0":"{OLD}"}}}}"#
                ),
                true,
                "policy.set-operator",
                Severity::Error,
            ),
            (
                format!(
                    r#"{{"ForAnyValue:StringEqualsIgnoreCase":{{"kms:RecipientAttestation:PCR0":"{OLD}"}}}}"#
                ),
                false,
                "policy.set-operator",
                Severity::Warn,
            ),
            (
                format!(r#"{{"StringNotEquals":{{"kms:RecipientAttestation:PCR0":"{NEW}"}}}}"#),
                true,
                "policy.unattested-decrypt",
                Severity::Error,
            ),
        ];
        for (cond, unattested, code, sev) in cases {
            let p = policy(&format!("[{}]", allow_decrypt(&cond)));
            let a = analyse(&p, ROLE, &m(OLD, None));
            assert_eq!(a.unattested.allowed, unattested, "{cond}");
            assert!(
                a.decision.allowed,
                "{cond}: attested request with the right value"
            );
            assert!(has(&a, code, sev), "{cond}: {:?}", codes(&a));
        }
        // Null closes the unattested path.
        let deny = r#"{"Effect":"Deny","Principal":"*","Action":"kms:Decrypt","Resource":"*","Condition":{"Null":{"kms:RecipientAttestation:PCR0":"true"}}}"#;
        let open = format!(
            r#"{{"Effect":"Allow","Principal":{{"AWS":"{ROLE}"}},"Action":"kms:Decrypt","Resource":"*"}}"#
        );
        let p = policy(&format!("[{open},{deny}]"));
        let a = analyse(&p, ROLE, &m(OLD, None));
        assert!(a.decision.allowed && !a.unattested.allowed);
        assert!(!has(&a, "policy.unattested-decrypt", Severity::Error));
    }

    #[test]
    fn deny_wins_and_is_reported() {
        let allow = allow_decrypt(&format!(
            r#"{{"StringEqualsIgnoreCase":{{"kms:RecipientAttestation:PCR0":["{OLD}","{NEW}"]}}}}"#
        ));
        let deny = format!(
            r#"{{"Sid":"NoOld","Effect":"Deny","Principal":"*","Action":"kms:*","Resource":"*","Condition":{{"StringEqualsIgnoreCase":{{"kms:RecipientAttestation:PCR0":"{OLD}"}}}}}}"#
        );
        let p = policy(&format!("[{allow},{deny}]"));
        let a = analyse(&p, ROLE, &m(OLD, None));
        assert!(!a.decision.allowed);
        assert!(has(&a, "policy.deny-shadow", Severity::Error));
        assert!(analyse(&p, ROLE, &m(NEW, None)).decision.allowed);
    }
}
