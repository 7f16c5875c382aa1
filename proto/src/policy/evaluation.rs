//! Judging a request against one policy document, the way IAM does, in three-valued logic:
//! principal (or not-principal), action, resource and conditions of every statement, then
//! Allow/Deny combined. The final verdict, with the IAM side, is `verdict`'s.
//!
//! Principals (IAM User Guide, "Principal"; KMS "Key policies"): `"*"` is everyone; a bare
//! account id or `arn:P:iam::A:root` is every principal of that account (KMS then lets IAM
//! policies decide); a role ARN `arn:P:iam::A:role/PATH/NAME` covers the role's sessions
//! `arn:P:sts::A:assumed-role/NAME/SESSION` (a session ARN drops the path; partitions must be
//! equal); a session ARN covers that session only. `NotPrincipal` is not supported with Allow
//! (it grants nothing here); with Deny it applies to every principal not listed, where an
//! assumed-role session counts as listed only if its session ARN, its role ARN and its account
//! are all listed (IAM User Guide, "NotPrincipal"), and always when a permissions boundary is
//! attached to the caller (IAM User Guide, "Permissions boundaries").
//!
//! Resources (KMS "Key policies"): `"*"` is this key; another pattern applies when it matches
//! the key's ARN (glob); no `Resource` element: no effect. With the key ARN unknown, a pattern
//! other than `"*"` depends on it.

use super::conditions::{Truth, condition_truth, glob};
use super::context::{Identity, KEY_ARN_UNKNOWN, Measurements, RequestContext, SESSION_UNKNOWN};
use super::document::{Condition, Effect, Policy, Principal, Statement};
use super::verdict::{Decision, IamPolicies, judge};

/// How a `Principal` element covers the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrincipalMatch {
    /// Names the caller's session exactly (a session ARN).
    pub session: Truth,
    /// Names the caller's role (or user) ARN, or is `"*"`.
    pub direct: Truth,
    /// Names the caller's account (root ARN or bare account id): KMS delegates to IAM.
    pub account: Truth,
}

impl PrincipalMatch {
    fn none() -> PrincipalMatch {
        PrincipalMatch {
            session: Truth::False,
            direct: Truth::False,
            account: Truth::False,
        }
    }

    pub fn any(&self) -> Truth {
        self.session
            .clone()
            .or(self.direct.clone())
            .or(self.account.clone())
    }

    fn or(self, o: PrincipalMatch) -> PrincipalMatch {
        PrincipalMatch {
            session: self.session.or(o.session),
            direct: self.direct.or(o.direct),
            account: self.account.or(o.account),
        }
    }
}

fn partition_of(arn: &str) -> Option<&str> {
    super::context::Arn::parse(arn).map(|a| a.partition)
}

/// Does an account entry (`root` ARN or bare id) name the caller's account?
fn names_account(entry: &Identity, caller: &Identity, caller_arn: &str) -> bool {
    let Identity::Account { partition, account } = entry else {
        return false;
    };
    caller.account() == Some(account.as_str())
        && partition
            .as_deref()
            .is_none_or(|p| partition_of(caller_arn) == Some(p))
}

/// One entry of a `Principal` element against the caller.
pub fn principal_entry(entry: &str, caller_arn: &str) -> PrincipalMatch {
    entry_against(entry, &Identity::parse(caller_arn), caller_arn)
}

fn entry_against(entry: &str, caller: &Identity, caller_arn: &str) -> PrincipalMatch {
    let e = Identity::parse(entry);
    let mut m = PrincipalMatch::none();
    match (&e, caller) {
        (Identity::Account { .. }, _) => {
            m.account = Truth::from_bool(names_account(&e, caller, caller_arn));
        }
        (
            Identity::Role {
                partition,
                account,
                name,
            },
            Identity::Session {
                partition: cp,
                account: ca,
                role,
                ..
            },
        ) => m.direct = Truth::from_bool(partition == cp && account == ca && name == role),
        (
            Identity::Session {
                partition,
                account,
                role,
                ..
            },
            Identity::Role {
                partition: cp,
                account: ca,
                name,
            },
        ) if partition == cp && account == ca && role == name => {
            m.session = Truth::unknown(SESSION_UNKNOWN);
        }
        (Identity::Session { .. }, _) => m.session = Truth::from_bool(entry == caller_arn),
        _ => m.direct = Truth::from_bool(entry == caller_arn),
    }
    m
}

/// A `Principal` element against the caller.
pub fn principal_match(p: &Principal, caller_arn: &str) -> PrincipalMatch {
    match p {
        Principal::Any => PrincipalMatch {
            direct: Truth::True,
            ..PrincipalMatch::none()
        },
        Principal::Other => PrincipalMatch::none(),
        Principal::Aws(list) => {
            let caller = Identity::parse(caller_arn);
            list.iter()
                .map(|e| entry_against(e, &caller, caller_arn))
                .fold(PrincipalMatch::none(), PrincipalMatch::or)
        }
    }
}

/// Is the caller "listed" in a `NotPrincipal` element (so a Deny does not apply to it)?
pub fn not_principal_lists(p: &Principal, caller_arn: &str) -> Truth {
    let list = match p {
        Principal::Any => return Truth::True,
        Principal::Other => return Truth::False,
        Principal::Aws(list) => list,
    };
    let caller = Identity::parse(caller_arn);
    let parsed: Vec<(&String, Identity)> = list.iter().map(|e| (e, Identity::parse(e))).collect();
    let account = Truth::from_bool(
        parsed
            .iter()
            .any(|(_, e)| names_account(e, &caller, caller_arn)),
    );
    let exact = Truth::from_bool(list.iter().any(|e| e == caller_arn));
    match &caller {
        Identity::Session {
            partition,
            account: acct,
            role,
            ..
        } => {
            let role_listed = parsed.iter().any(|(_, e)| {
                matches!(e, Identity::Role { partition: p, account: a, name }
                    if p == partition && a == acct && name == role)
            });
            exact.and(Truth::from_bool(role_listed)).and(account)
        }
        Identity::Role {
            partition,
            account: acct,
            name,
        } => {
            let session_listed = parsed.iter().any(|(_, e)| {
                matches!(e, Identity::Session { partition: p, account: a, role, .. }
                    if p == partition && a == acct && role == name)
            });
            let session = if session_listed {
                Truth::unknown(SESSION_UNKNOWN)
            } else {
                Truth::False
            };
            session.and(exact).and(account)
        }
        Identity::Account { .. } => account,
        Identity::Other { .. } => exact.and(account),
    }
}

impl Statement {
    pub fn covers_action(&self, action: &str) -> bool {
        let action = action.to_ascii_lowercase();
        let hit = self
            .actions
            .iter()
            .any(|p| glob(&p.to_ascii_lowercase(), &action));
        hit != self.not_action
    }

    /// Does the statement's principal element definitely cover `principal` (for an Allow:
    /// grant to it; for a Deny: apply to it)?
    pub fn covers_principal(&self, principal: &str) -> bool {
        self.principal_truth(principal, false).any().is_true()
    }

    /// The principal element against the caller; `boundary_attached`: the caller has a
    /// permissions boundary (a Deny with `NotPrincipal` then always applies).
    pub fn principal_truth(&self, caller_arn: &str, boundary_attached: bool) -> PrincipalMatch {
        if !self.not_principal {
            return principal_match(&self.principal, caller_arn);
        }
        match self.effect {
            // "NotPrincipal must be used with Deny; using it with Allow is not supported."
            Effect::Allow => PrincipalMatch::none(),
            Effect::Deny => PrincipalMatch {
                direct: if boundary_attached {
                    Truth::True
                } else {
                    not_principal_lists(&self.principal, caller_arn).not()
                },
                ..PrincipalMatch::none()
            },
        }
    }

    /// The `Resource`/`NotResource` element against the key.
    pub fn resource_truth(&self, key_arn: Option<&str>) -> Truth {
        let Some(patterns) = &self.resources else {
            return Truth::False;
        };
        let hit = Truth::any(patterns.iter().map(|p| match key_arn {
            _ if p == "*" => Truth::True,
            Some(k) => Truth::from_bool(glob(p, k)),
            None => Truth::unknown(KEY_ARN_UNKNOWN),
        }));
        if self.not_resource { hit.not() } else { hit }
    }
}

/// One statement judged against a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatementEval {
    pub principal: PrincipalMatch,
    pub action: Truth,
    pub resource: Truth,
    /// One per condition, in [`Statement::conditions`] order.
    pub conditions: Vec<Truth>,
}

impl StatementEval {
    /// Action, resource and conditions (everything but the principal).
    pub fn rest(&self) -> Truth {
        self.action
            .clone()
            .and(self.resource.clone())
            .and(Truth::all(self.conditions.iter().cloned()))
    }

    pub fn applies(&self) -> Truth {
        self.principal.any().and(self.rest())
    }
}

pub fn evaluate_statement(
    s: &Statement,
    ctx: &RequestContext,
    boundary_attached: bool,
) -> StatementEval {
    StatementEval {
        principal: s.principal_truth(&ctx.principal_arn, boundary_attached),
        action: Truth::from_bool(s.covers_action(&ctx.action)),
        resource: s.resource_truth(ctx.key_arn.as_deref()),
        conditions: s
            .conditions
            .iter()
            .map(|c| condition_truth(c, ctx))
            .collect(),
    }
}

/// One policy document judged against a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyEval {
    pub statements: Vec<StatementEval>,
    /// Some Allow names the caller's session exactly.
    pub allow_session: Truth,
    /// Some Allow names the caller's role/user ARN or `"*"`.
    pub allow_direct: Truth,
    /// Some Allow applies at all (including through the caller's account).
    pub allow_any: Truth,
    /// Some Deny applies.
    pub deny: Truth,
}

pub fn evaluate_policy(p: &Policy, ctx: &RequestContext, boundary_attached: bool) -> PolicyEval {
    let statements: Vec<StatementEval> = p
        .statements
        .iter()
        .map(|s| evaluate_statement(s, ctx, boundary_attached))
        .collect();
    let allows = || {
        p.statements
            .iter()
            .zip(&statements)
            .filter(|(s, _)| s.effect == Effect::Allow)
            .map(|(_, e)| e)
    };
    let deny = Truth::any(
        p.statements
            .iter()
            .zip(&statements)
            .filter(|(s, _)| s.effect == Effect::Deny)
            .map(|(_, e)| e.applies()),
    );
    PolicyEval {
        allow_session: Truth::any(allows().map(|e| e.principal.session.clone().and(e.rest()))),
        allow_direct: Truth::any(allows().map(|e| e.principal.direct.clone().and(e.rest()))),
        allow_any: Truth::any(allows().map(StatementEval::applies)),
        deny,
        statements,
    }
}

/// A `kms:Decrypt` request to judge (the original, narrower API: no key ARN, no encryption
/// context, no time; see [`RequestContext`] for the full one).
#[derive(Debug, Clone)]
pub struct Request<'a> {
    pub principal: &'a str,
    pub action: &'a str,
    /// `None`: no Recipient, so no attestation keys at all.
    pub attestation: Option<&'a Measurements>,
}

impl From<&Request<'_>> for RequestContext {
    fn from(req: &Request<'_>) -> RequestContext {
        let ctx = RequestContext::decrypt(req.principal).action(req.action);
        match req.attestation {
            Some(m) => ctx.attested(m.clone()),
            None => ctx,
        }
    }
}

/// Does one condition (definitely) hold for the request?
pub fn condition_holds(c: &Condition, req: &Request<'_>) -> bool {
    condition_truth(c, &RequestContext::from(req)).is_true()
}

/// Does the statement (definitely) apply to the request?
pub fn statement_applies(s: &Statement, req: &Request<'_>) -> bool {
    evaluate_statement(s, &RequestContext::from(req), false)
        .applies()
        .is_true()
}

/// Does a policy principal entry (definitely) cover the request's principal? The account root
/// (or a bare account id) covers every principal in that account (KMS delegates to IAM
/// there); a role covers its sessions.
pub fn principal_matches(entry: &str, principal: &str) -> bool {
    principal_entry(entry, principal).any().is_true()
}

/// The key policy's verdict on `req`, the IAM side assumed to allow (see [`judge`] for the
/// full model). `allowed` is false unless KMS would definitely allow.
pub fn evaluate(p: &Policy, req: &Request<'_>) -> Decision {
    judge(p, &RequestContext::from(req), &IamPolicies::assumed())
}

#[cfg(test)]
mod tests {
    use crate::findings::Severity;
    use crate::policy::analyse;
    use crate::policy::test_support::{NEW, OLD, ROLE, allow_decrypt, codes, has, m, policy};

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
