//! The final KMS verdict on a request: the key policy, and the IAM side as a pure model.
//!
//! AWS's documented logic (IAM User Guide, "Policy evaluation logic", "Cross-account policy
//! evaluation logic", "Permissions boundaries"; KMS Developer Guide, "Key policies", "Default
//! key policy", "Allowing users in other accounts to use a KMS key"):
//!
//! 1. An explicit Deny in the key policy, an identity-based policy or the permissions boundary
//!    wins.
//! 2. The key policy must allow: no IAM policy can grant access to a KMS key the key policy
//!    does not open (directly or through the account).
//! 3. Same account: a key policy naming the caller's session suffices; naming the role (or
//!    `"*"`) suffices unless a permissions boundary leaves Decrypt out (an implicit deny in a
//!    boundary limits what a resource-based policy grants to a role ARN); naming the account
//!    (root ARN or bare id) delegates: an identity-based policy must allow Decrypt on the key,
//!    within the boundary.
//! 4. Another account: the key policy must allow (any way) *and* the caller's identity-based
//!    policies must allow Decrypt on the key, within the boundary.
//!
//! Without identity-based policies ([`IamPolicies::assumed`]) the IAM side is assumed to allow:
//! the decision says so (`identity_checked: false`) and whether it matters (`iam_decides`).
//!
//! Not modelled: service control policies, resource control policies, VPC endpoint policies,
//! session policies, grants (see `grants`), and the key's state.

use std::collections::BTreeSet;

use super::conditions::Truth;
use super::context::{KEY_ARN_UNKNOWN, RequestContext};
use super::document::{AttKey, Effect, Policy, Statement};
use super::evaluation::{PolicyEval, evaluate_policy};

/// An identity-based policy (inline or attached) or a permissions boundary, by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedPolicy {
    pub name: String,
    pub policy: Policy,
}

/// The caller's side of IAM.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IamPolicies {
    /// The identity-based policies (inline and attached); `None`: not checked, assumed to
    /// allow.
    pub identity: Option<Vec<NamedPolicy>>,
    /// The permissions boundary, if one is attached (only meaningful with `identity`).
    pub boundary: Option<NamedPolicy>,
}

impl IamPolicies {
    /// The IAM side unknown: assumed to allow, no boundary.
    pub fn assumed() -> IamPolicies {
        IamPolicies::default()
    }

    /// These identity-based policies, no boundary.
    pub fn checked(identity: Vec<NamedPolicy>) -> IamPolicies {
        IamPolicies {
            identity: Some(identity),
            boundary: None,
        }
    }

    pub fn with_boundary(mut self, boundary: NamedPolicy) -> IamPolicies {
        self.boundary = Some(boundary);
        self
    }

    fn boundary_attached(&self) -> bool {
        self.identity.is_some() && self.boundary.is_some()
    }
}

/// Where a statement is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicySource {
    KeyPolicy,
    /// An identity-based policy, by name.
    Identity(String),
    /// The permissions boundary, by name.
    Boundary(String),
}

impl std::fmt::Display for PolicySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PolicySource::KeyPolicy => write!(f, "the key policy"),
            PolicySource::Identity(n) => write!(f, "identity-based policy '{n}'"),
            PolicySource::Boundary(n) => write!(f, "permissions boundary '{n}'"),
        }
    }
}

fn label(statement: usize, sid: &Option<String>) -> String {
    match sid {
        Some(s) => format!("'{s}' (statement {statement})"),
        None => format!("statement {statement}"),
    }
}

/// Why KMS would not allow the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// A Deny statement applies.
    ExplicitDeny {
        source: PolicySource,
        statement: usize,
        sid: Option<String>,
    },
    /// No Allow statement of the key policy names the caller (its role, session, account or
    /// `"*"`). `not_principal_allows`: Allow statements using `NotPrincipal`, which grant
    /// nothing.
    PrincipalNotGranted {
        principal: String,
        not_principal_allows: Vec<usize>,
    },
    /// Allow statements name the caller but none covers the action.
    ActionNotCovered {
        action: String,
        statements: Vec<usize>,
    },
    /// An Allow statement names the caller and the action, but its `Resource` is missing or
    /// names another key.
    ResourceNotCovered {
        statement: usize,
        sid: Option<String>,
        resources: Option<Vec<String>>,
    },
    /// The closest Allow statement fails on an attestation condition.
    MeasurementNotAllowed {
        statement: usize,
        sid: Option<String>,
        pcr: u8,
        key: String,
        operator: String,
        /// `None`: the request carries no such measurement (no Recipient, or PCR8 of an
        /// unsigned image).
        measured: Option<String>,
        /// The request carries a Recipient (an attestation document).
        attested: bool,
    },
    /// The closest Allow statement fails on another condition.
    ConditionUnmet {
        statement: usize,
        sid: Option<String>,
        key: String,
        operator: String,
    },
    /// The key policy only delegates to the account, or the key is in another account, and no
    /// identity-based policy allows the action on the key.
    IdentityLacksDecrypt {
        action: String,
        key_arn: Option<String>,
        policies: Vec<String>,
    },
    /// The permissions boundary does not allow the action on the key.
    OutsideBoundary { boundary: String, action: String },
}

impl Reason {
    /// The finding code that explains this reason (`lint`).
    pub fn code(&self) -> &'static str {
        match self {
            Reason::ExplicitDeny {
                source: PolicySource::KeyPolicy,
                ..
            } => "policy.deny-shadow",
            Reason::ExplicitDeny { .. } => "policy.explicit-deny",
            Reason::PrincipalNotGranted { .. }
            | Reason::ActionNotCovered { .. }
            | Reason::ResourceNotCovered { .. } => "policy.principal-not-granted",
            Reason::MeasurementNotAllowed {
                pcr: 8,
                measured: None,
                attested: true,
                ..
            } => "policy.pcr8-unsigned",
            Reason::MeasurementNotAllowed { .. } => "policy.measurement-not-allowed",
            Reason::ConditionUnmet { .. } => "policy.condition-unmet",
            Reason::IdentityLacksDecrypt { .. } => "policy.identity-lacks-decrypt",
            Reason::OutsideBoundary { .. } => "policy.boundary-lacks-decrypt",
        }
    }

    /// One human sentence.
    pub fn sentence(&self) -> String {
        match self {
            Reason::ExplicitDeny {
                source,
                statement,
                sid,
            } => format!(
                "{} of {source} explicitly denies it",
                label(*statement, sid)
            ),
            Reason::PrincipalNotGranted {
                principal,
                not_principal_allows,
            } => {
                let mut s = format!(
                    "no Allow statement of the key policy names '{principal}' (its role, its \
                     account or \"*\")"
                );
                if !not_principal_allows.is_empty() {
                    s.push_str(&format!(
                        "; statements {not_principal_allows:?} use NotPrincipal with Allow, \
                         which grants nothing"
                    ));
                }
                s
            }
            Reason::ActionNotCovered { action, statements } => format!(
                "the Allow statements naming the principal ({statements:?}) do not cover {action}"
            ),
            Reason::ResourceNotCovered {
                statement,
                sid,
                resources,
            } => match resources {
                None => format!(
                    "{} has no Resource element, so it has no effect",
                    label(*statement, sid)
                ),
                Some(r) => format!(
                    "{} applies to Resource {r:?}, not to this key",
                    label(*statement, sid)
                ),
            },
            Reason::MeasurementNotAllowed {
                statement,
                sid,
                pcr,
                key,
                operator,
                measured,
                attested,
            } => match (measured, attested) {
                (Some(v), _) => format!(
                    "PCR{pcr} {v} does not satisfy {operator} on '{key}' in {}",
                    label(*statement, sid)
                ),
                (None, true) => format!(
                    "the attestation carries no PCR{pcr}, which {operator} on '{key}' in {} \
                     requires",
                    label(*statement, sid)
                ),
                (None, false) => format!(
                    "the request carries no attestation (no Recipient), which {operator} on \
                     '{key}' in {} requires",
                    label(*statement, sid)
                ),
            },
            Reason::ConditionUnmet {
                statement,
                sid,
                key,
                operator,
            } => format!(
                "{} requires {operator} on '{key}', which this request does not meet",
                label(*statement, sid)
            ),
            Reason::IdentityLacksDecrypt {
                action,
                key_arn,
                policies,
            } => format!(
                "no identity-based policy of the caller ({}) allows {action} on {}",
                if policies.is_empty() {
                    "none attached".to_owned()
                } else {
                    policies.join(", ")
                },
                key_arn.as_deref().unwrap_or("the key")
            ),
            Reason::OutsideBoundary { boundary, action } => {
                format!("the permissions boundary '{boundary}' does not allow {action} on the key")
            }
        }
    }
}

/// The verdict, three-valued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    Denied {
        reason: Reason,
    },
    /// KMS's answer depends on keys ccctl cannot know (judged both ways, the answers differ).
    DependsOn {
        keys: Vec<String>,
    },
}

/// How the key policy opens the key to the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyGrant {
    /// An Allow names the caller's role or session (or `"*"`).
    Direct,
    /// Only through the caller's account (root ARN or account id): IAM decides.
    Account,
    /// No Allow applies.
    None,
    /// Depends on unknown keys.
    Uncertain,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// KMS would definitely allow (`DependsOn` → false).
    pub allowed: bool,
    /// Key policy Allow statements that definitely apply.
    pub allowing: Vec<usize>,
    /// Key policy Deny statements that definitely apply.
    pub denying: Vec<usize>,
    pub verdict: Verdict,
    /// The keys the verdict depends on (empty unless `DependsOn`).
    pub depends_on: Vec<String>,
    /// Every "no" found, the verdict's first (empty unless `Denied`).
    pub reasons: Vec<Reason>,
    /// Identity-based policies were given and judged; otherwise the IAM side was assumed to
    /// allow.
    pub identity_checked: bool,
    /// The IAM side matters: the key policy opens the key only through the account, or the
    /// key is (or may be) in another account.
    pub iam_decides: bool,
    pub key_grant: KeyGrant,
    /// The key is in another account than the caller; `None`: the key ARN is unknown.
    pub cross_account: Option<bool>,
}

/// Keys, deduplicated case-insensitively, in order.
fn key_list(keys: BTreeSet<String>) -> Vec<String> {
    let mut seen = BTreeSet::new();
    keys.into_iter()
        .filter(|k| seen.insert(k.to_ascii_lowercase()))
        .collect()
}

/// The closest Allow statement's first failure (the key policy grants nothing).
fn not_granted(p: &Policy, e: &PolicyEval, ctx: &RequestContext) -> Reason {
    let mut best: Option<(u8, &Statement, usize)> = None;
    let mut named_principal = Vec::new();
    for (s, ev) in p.statements.iter().zip(&e.statements) {
        if s.effect != Effect::Allow {
            continue;
        }
        let (stage, cond) = if ev.principal.any().is_false() {
            (0, 0)
        } else if ev.action.is_false() {
            (1, 0)
        } else if ev.resource.is_false() {
            (2, 0)
        } else if let Some(i) = ev.conditions.iter().position(Truth::is_false) {
            (3, i)
        } else {
            // Not a failing statement (it applies, or may): nothing to explain here.
            continue;
        };
        if stage >= 1 {
            named_principal.push(s.index);
        }
        if best.is_none_or(|(b, _, _)| stage > b) {
            best = Some((stage, s, cond));
        }
    }
    let not_principal_allows = || {
        p.statements
            .iter()
            .filter(|s| s.effect == Effect::Allow && s.not_principal)
            .map(|s| s.index)
            .collect()
    };
    match best {
        None | Some((0, _, _)) => Reason::PrincipalNotGranted {
            principal: ctx.principal_arn.clone(),
            not_principal_allows: not_principal_allows(),
        },
        Some((1, _, _)) => Reason::ActionNotCovered {
            action: ctx.action.clone(),
            statements: named_principal,
        },
        Some((2, s, _)) => Reason::ResourceNotCovered {
            statement: s.index,
            sid: s.sid.clone(),
            resources: s.resources.clone(),
        },
        Some((_, s, i)) => {
            let c = &s.conditions[i];
            match c.attestation().and_then(AttKey::pcr) {
                Some(pcr) => Reason::MeasurementNotAllowed {
                    statement: s.index,
                    sid: s.sid.clone(),
                    pcr,
                    key: c.key.clone(),
                    operator: c.op.name.clone(),
                    measured: if ctx.recipient {
                        ctx.measurements.pcrs.get(&pcr).cloned()
                    } else {
                        None
                    },
                    attested: ctx.recipient,
                },
                None => Reason::ConditionUnmet {
                    statement: s.index,
                    sid: s.sid.clone(),
                    key: c.key.clone(),
                    operator: c.op.name.clone(),
                },
            }
        }
    }
}

/// What the identity-based policies (or the boundary) say.
struct Side {
    allow: Truth,
    deny: Truth,
    /// The first Deny statement that definitely applies.
    first_deny: Option<Reason>,
}

impl Side {
    /// Not given: assumed to allow.
    fn assumed() -> Side {
        Side {
            allow: Truth::True,
            deny: Truth::False,
            first_deny: None,
        }
    }

    fn of(policies: &[&NamedPolicy], ctx: &RequestContext, boundary: bool) -> Side {
        let mut side = Side {
            allow: Truth::False,
            deny: Truth::False,
            first_deny: None,
        };
        for np in policies {
            let e = evaluate_policy(&np.policy, ctx, false);
            side.allow = side.allow.or(e.allow_any.clone());
            side.deny = side.deny.or(e.deny.clone());
            if side.first_deny.is_none()
                && let Some((s, _)) = np
                    .policy
                    .statements
                    .iter()
                    .zip(&e.statements)
                    .find(|(s, ev)| s.effect == Effect::Deny && ev.applies().is_true())
            {
                side.first_deny = Some(Reason::ExplicitDeny {
                    source: if boundary {
                        PolicySource::Boundary(np.name.clone())
                    } else {
                        PolicySource::Identity(np.name.clone())
                    },
                    statement: s.index,
                    sid: s.sid.clone(),
                });
            }
        }
        side
    }
}

/// KMS's verdict on `ctx` under key policy `p` and the caller's IAM side.
pub fn judge(p: &Policy, ctx: &RequestContext, iam: &IamPolicies) -> Decision {
    let k = evaluate_policy(p, ctx, iam.boundary_attached());
    let definite = |effect: Effect| -> Vec<usize> {
        p.statements
            .iter()
            .zip(&k.statements)
            .filter(|(s, e)| s.effect == effect && e.applies().is_true())
            .map(|(s, _)| s.index)
            .collect()
    };
    let (allowing, denying) = (definite(Effect::Allow), definite(Effect::Deny));

    let identity_checked = iam.identity.is_some();
    let identity = match &iam.identity {
        Some(list) => Side::of(&list.iter().collect::<Vec<_>>(), ctx, false),
        None => Side::assumed(),
    };
    let boundary = match (&iam.identity, &iam.boundary) {
        (Some(_), Some(b)) => Side::of(&[b], ctx, true),
        _ => Side::assumed(),
    };
    let (i_allow, b_allow) = (identity.allow.clone(), boundary.allow.clone());

    let cross_account = ctx.cross_account();
    let same = match cross_account {
        Some(c) => Truth::from_bool(!c),
        None => Truth::unknown(KEY_ARN_UNKNOWN),
    };
    let direct = k.allow_session.clone().or(k.allow_direct.clone());
    let a_same = k.allow_session.clone().or(b_allow.clone().and(
        k.allow_direct
            .clone()
            .or(k.allow_any.clone().and(i_allow.clone())),
    ));
    let a_cross = k
        .allow_any
        .clone()
        .and(i_allow.clone())
        .and(b_allow.clone());
    let allow = match &same {
        Truth::True => a_same.clone(),
        Truth::False => a_cross.clone(),
        Truth::Unknown(key) => {
            if a_cross.is_true() {
                Truth::True
            } else if a_same.is_false() {
                Truth::False
            } else {
                let mut keys = key.clone();
                keys.extend(a_same.keys());
                keys.extend(a_cross.keys());
                Truth::Unknown(keys)
            }
        }
    };
    let deny = k
        .deny
        .clone()
        .or(identity.deny.clone())
        .or(boundary.deny.clone());

    let mut reasons = Vec::new();
    if deny.is_true() {
        let first = match denying.first() {
            Some(&i) => Reason::ExplicitDeny {
                source: PolicySource::KeyPolicy,
                statement: i,
                sid: p.statements[i].sid.clone(),
            },
            None => identity
                .first_deny
                .or(boundary.first_deny)
                .expect("a definite deny has a definite statement"),
        };
        reasons.push(first);
    } else if allow.is_false() {
        if k.allow_any.is_false() {
            reasons.push(not_granted(p, &k, ctx));
        } else {
            // The key policy opens the key; the IAM side closes it.
            let needs_identity = match &same {
                Truth::True => direct.is_false(),
                _ => true,
            };
            if needs_identity && i_allow.is_false() {
                reasons.push(Reason::IdentityLacksDecrypt {
                    action: ctx.action.clone(),
                    key_arn: ctx.key_arn.clone(),
                    policies: iam
                        .identity
                        .iter()
                        .flatten()
                        .map(|n| n.name.clone())
                        .collect(),
                });
            }
            if b_allow.is_false()
                && let Some(b) = &iam.boundary
            {
                reasons.push(Reason::OutsideBoundary {
                    boundary: b.name.clone(),
                    action: ctx.action.clone(),
                });
            }
            if reasons.is_empty() {
                // Not reachable by the logic above (an IAM-side "no" is one of the two);
                // never leave a "no" without a reason.
                reasons.push(not_granted(p, &k, ctx));
            }
        }
    }

    let verdict = if let Some(r) = reasons.first() {
        Verdict::Denied { reason: r.clone() }
    } else if allow.is_true() && deny.is_false() {
        Verdict::Allowed
    } else {
        let mut keys = deny.keys();
        keys.extend(allow.keys());
        Verdict::DependsOn {
            keys: key_list(keys),
        }
    };
    let depends_on = match &verdict {
        Verdict::DependsOn { keys } => keys.clone(),
        _ => Vec::new(),
    };
    let key_grant = if direct.is_true() {
        KeyGrant::Direct
    } else if k.allow_any.is_false() {
        KeyGrant::None
    } else if k.allow_any.is_true() && direct.is_false() {
        KeyGrant::Account
    } else {
        KeyGrant::Uncertain
    };
    Decision {
        allowed: verdict == Verdict::Allowed,
        allowing,
        denying,
        verdict,
        depends_on,
        reasons,
        identity_checked,
        iam_decides: !k.allow_any.is_false() && (cross_account != Some(false) || !direct.is_true()),
        key_grant,
        cross_account,
    }
}

/// The key policy's verdict on a full request context, the IAM side assumed to allow.
pub fn evaluate_context(p: &Policy, ctx: &RequestContext) -> Decision {
    judge(p, ctx, &IamPolicies::assumed())
}
