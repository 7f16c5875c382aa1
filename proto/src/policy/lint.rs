//! The lints: why a holder's key would (not) release its share to the enclave.
//!
//! [`analyse_with`] judges the request with and without attestation, then calls one function
//! per finding code, each named after its code (`policy.wrong-action` → [`wrong_action`]) and
//! each returning the finding(s) of that code only. The order of the calls is the order of the
//! findings. Every verdict that is not "allowed" yields at least one error finding whose
//! summary says why ([`Reason::code`] names its code), except `DependsOn`, which yields a
//! `policy.condition-not-judged` warning per key it depends on.

use std::collections::{BTreeMap, BTreeSet};

use super::conditions::glob;
use super::context::{KEY_ARN_UNKNOWN, Measurements, RequestContext, SESSION_UNKNOWN};
use super::document::{AttKey, BaseOp, Condition, Effect, Policy, Principal, SetOp, Statement};
use super::evaluation::evaluate_policy;
use super::grants::{GrantRecord, grant_bypasses_attestation as bypasses};
use super::verdict::{Decision, IamPolicies, KeyGrant, PolicySource, Reason, Verdict, judge};
use crate::findings::{Finding, Severity};

fn is_measurement(v: &str) -> bool {
    crate::pcr::Pcr::is_valid(v)
}

/// The PCR values an Allow statement for Decrypt admits, by PCR (positive equality operators
/// only; a key with no such condition is unconstrained and absent from the map).
pub fn allowed_values(s: &Statement) -> BTreeMap<u8, BTreeSet<String>> {
    let mut out: BTreeMap<u8, BTreeSet<String>> = BTreeMap::new();
    for (c, att) in s.attestation_conditions() {
        let Some(pcr) = att.pcr() else { continue };
        if matches!(
            c.op.base,
            BaseOp::StringEquals | BaseOp::StringEqualsIgnoreCase | BaseOp::StringLike
        ) {
            let vals: BTreeSet<String> = c.values.iter().map(|v| v.to_ascii_lowercase()).collect();
            out.entry(pcr)
                .and_modify(|e| *e = e.intersection(&vals).cloned().collect())
                .or_insert(vals);
        }
    }
    out
}

/// Everything the lints need about one holder's key policy.
pub struct Analysis {
    pub decision: Decision,
    /// Would Decrypt also be allowed without any attestation?
    pub unattested: Decision,
    /// PCR → values admitted by some Allow statement for Decrypt to the principal.
    pub allowed: BTreeMap<u8, BTreeSet<String>>,
    pub findings: Vec<Finding>,
}

const DECRYPT: &str = "kms:Decrypt";

/// Judge `kms:Decrypt` by `principal` with `measurements`, and lint the policy. The key ARN,
/// encryption context and time are unknown and the IAM side is assumed to allow (see
/// [`analyse_with`]).
pub fn analyse(p: &Policy, principal: &str, measurements: &Measurements) -> Analysis {
    analyse_with(
        p,
        &RequestContext::decrypt(principal).attested(measurements.clone()),
        &IamPolicies::assumed(),
        &[],
    )
}

/// Judge the request `ctx` (and the same request without attestation) under key policy `p`,
/// the caller's IAM side and the key's grants, and lint the policy.
pub fn analyse_with(
    p: &Policy,
    ctx: &RequestContext,
    iam: &IamPolicies,
    grants: &[GrantRecord],
) -> Analysis {
    let decision = judge(p, ctx, iam);
    let unattested = judge(p, &ctx.clone().unattested(), iam);
    let eval = evaluate_policy(p, ctx, false);
    let mut allowed: BTreeMap<u8, BTreeSet<String>> = BTreeMap::new();
    let decrypt_allows: Vec<&Statement> = p
        .statements
        .iter()
        .zip(&eval.statements)
        .filter(|(s, e)| {
            s.effect == Effect::Allow
                && !e.principal.any().is_false()
                && e.action.is_true()
                && !e.resource.is_false()
        })
        .map(|(s, _)| s)
        .collect();
    for s in &decrypt_allows {
        for (pcr, vals) in allowed_values(s) {
            allowed.entry(pcr).or_default().extend(vals);
        }
    }

    let mut findings = Vec::new();
    findings.extend(unattested_decrypt(p, ctx, &unattested));
    for s in &p.statements {
        let att: Vec<(&Condition, AttKey)> = s.attestation_conditions().collect();
        findings.extend(wrong_action(s, &att));
        for &(c, key) in &att {
            if let Some(f) = unknown_condition_key(s, c, key) {
                // Nothing else is said about a key KMS never sets.
                findings.push(f);
                continue;
            }
            findings.extend(if_exists(s, c));
            findings.extend(set_operator(s, c));
            for v in &c.values {
                findings.extend(malformed_measurement(s, c, v));
                findings.extend(debug_measurement(s, c, v));
                findings.extend(case_sensitive_operator(s, c, v));
            }
        }
        findings.extend(pcr0_imagesha384_conflict(s, &att));
    }
    for s in &decrypt_allows {
        findings.extend(broad_principal(s));
    }
    findings.extend(split_conditions(&decrypt_allows));
    findings.extend(pcr8_unsigned(&decision, &allowed, ctx));
    findings.extend(deny_shadow(p, &decision));
    findings.extend(explicit_deny(&decision));
    findings.extend(principal_not_granted(&decision));
    findings.extend(measurement_not_allowed(&decision, &allowed, ctx));
    findings.extend(condition_unmet(&decision));
    findings.extend(identity_lacks_decrypt(&decision));
    findings.extend(boundary_lacks_decrypt(&decision));
    findings.extend(condition_not_judged(&decision));
    findings.extend(identity_not_checked(&decision));
    for g in grants {
        findings.extend(grant_bypasses_attestation(g, ctx));
    }

    Analysis {
        decision,
        unattested,
        allowed,
        findings,
    }
}

/// The evidence every finding about one condition of one statement carries.
fn about_condition(f: Finding, s: &Statement, c: &Condition) -> Finding {
    f.with("statement", s.index)
        .with("sid", s.sid.clone())
        .with("key", c.key.clone())
        .with("operator", c.op.name.clone())
}

/// Decrypt is allowed (or may be, depending on keys ccctl cannot know) to the principal even
/// without attestation.
fn unattested_decrypt(p: &Policy, ctx: &RequestContext, unattested: &Decision) -> Option<Finding> {
    let principal = &ctx.principal_arn;
    let fix = |f: Finding| {
        f.with("security", true).fix(
            "Condition every Decrypt grant on kms:RecipientAttestation:PCR0 (and PCR8), or add a \
             Deny for Decrypt when kms:RecipientAttestation:PCR0 is Null",
            &[],
        )
    };
    if let Verdict::DependsOn { keys } = &unattested.verdict {
        return Some(fix(Finding::new(
            "policy.unattested-decrypt",
            Severity::Error,
            format!(
                "kms:Decrypt may be allowed to '{principal}' without any attestation, depending \
                 on {}: the share could be decrypted outside the enclave",
                keys.join(", ")
            ),
        )
        .with("depends_on", keys.clone())));
    }
    if !unattested.allowed {
        return None;
    }
    let s = &p.statements[*unattested.allowing.first()?];
    Some(fix(Finding::new(
        "policy.unattested-decrypt",
        Severity::Error,
        format!(
            "kms:Decrypt is allowed to '{principal}' without any attestation by {}: the \
             share can be decrypted outside the enclave",
            s.label()
        ),
    )
    .with("statement", s.index)
    .with("sid", s.sid.clone())))
}

/// A statement conditions on attestation (`att`, its attestation conditions) but does not
/// cover Decrypt.
fn wrong_action(s: &Statement, att: &[(&Condition, AttKey)]) -> Option<Finding> {
    if att.is_empty() || s.covers_action(DECRYPT) {
        return None;
    }
    Some(
        Finding::new(
            "policy.wrong-action",
            Severity::Error,
            format!(
                "{} conditions on attestation but does not cover kms:Decrypt (actions {:?}); \
                 KMS attaches attestation only to Decrypt-like calls, so it never applies",
                s.label(),
                s.actions
            ),
        )
        .with("statement", s.index)
        .with("sid", s.sid.clone())
        .with("actions", s.actions.clone())
        .fix(
            "Move the attestation condition to the statement that allows kms:Decrypt",
            &[],
        ),
    )
}

/// `kms:RecipientAttestation:` followed by something KMS does not define.
fn unknown_condition_key(s: &Statement, c: &Condition, key: AttKey) -> Option<Finding> {
    if key != AttKey::Unknown {
        return None;
    }
    Some(
        about_condition(
            Finding::new(
                "policy.unknown-condition-key",
                Severity::Error,
                format!(
                    "{} uses '{}', a key KMS never sets (known: ImageSha384, PCR0–PCR31)",
                    s.label(),
                    c.key
                ),
            ),
            s,
            c,
        )
        .fix(
            "Use kms:RecipientAttestation:PCR0 / PCR8 (or ImageSha384)",
            &[],
        ),
    )
}

/// `…IfExists` on an attestation key: true without attestation.
fn if_exists(s: &Statement, c: &Condition) -> Option<Finding> {
    if !c.op.if_exists {
        return None;
    }
    Some(
        about_condition(
            Finding::new(
                "policy.if-exists",
                Severity::Error,
                format!("{} uses {} on '{}': true when the key is absent, i.e. for requests without attestation", s.label(), c.op.name, c.key),
            ),
            s,
            c,
        )
        .with("security", true)
        .fix("Drop the IfExists suffix", &[]),
    )
}

/// `ForAllValues:` (true without attestation) or `ForAnyValue:` (merely confusing) on a
/// single-valued attestation key.
fn set_operator(s: &Statement, c: &Condition) -> Option<Finding> {
    let (severity, summary) = match c.op.set {
        SetOp::ForAllValues => (
            Severity::Error,
            format!(
                "{} uses {} on the single-valued key '{}': ForAllValues is true when the key is absent (no attestation)",
                s.label(),
                c.op.name,
                c.key
            ),
        ),
        SetOp::ForAnyValue => (
            Severity::Warn,
            format!(
                "{} uses {} on the single-valued key '{}'; the plain operator says the same more clearly",
                s.label(),
                c.op.name,
                c.key
            ),
        ),
        SetOp::None => return None,
    };
    Some(
        about_condition(Finding::new("policy.set-operator", severity, summary), s, c)
            .fix("Use the plain operator (StringEqualsIgnoreCase)", &[]),
    )
}

/// A value `v` of condition `c` that is not a SHA-384 (nor a `StringLike` pattern).
fn malformed_measurement(s: &Statement, c: &Condition, v: &str) -> Option<Finding> {
    let wildcard = c.op.base == BaseOp::StringLike && (v.contains('*') || v.contains('?'));
    if wildcard || is_measurement(v) || c.op.base == BaseOp::Null {
        return None;
    }
    Some(
        about_condition(
            Finding::new(
                "policy.malformed-measurement",
                Severity::Error,
                format!(
                    "{} lists '{}' for '{}': not 96 hex digits (SHA-384), it can never match",
                    s.label(),
                    v,
                    c.key
                ),
            ),
            s,
            c,
        )
        .with("value", v.to_owned())
        .fix(
            "Use the 96-hex-digit value the command prints for the release's EIF",
            &["ccctl eif describe --eif-path enclave.eif -o json | jq -r .Measurements.PCR0"],
        ),
    )
}

/// An Allow statement admits the all-zero value `v`, a debug-mode enclave's.
fn debug_measurement(s: &Statement, c: &Condition, v: &str) -> Option<Finding> {
    if !(is_measurement(v) && v.bytes().all(|b| b == b'0') && s.effect == Effect::Allow) {
        return None;
    }
    Some(
        about_condition(
            Finding::new(
                "policy.debug-measurement",
                Severity::Error,
                format!("{} allows the all-zero value for '{}': that is what a debug-mode enclave attests", s.label(), c.key),
            ),
            s,
            c,
        )
        .with("value", v.to_owned())
        .with("security", true)
        .fix("Remove the all-zero value", &[]),
    )
}

/// A case-sensitive operator: an error against an upper-case value `v`, else a warning for
/// `StringEquals`.
fn case_sensitive_operator(s: &Statement, c: &Condition, v: &str) -> Option<Finding> {
    let case_sensitive = matches!(c.op.base, BaseOp::StringEquals | BaseOp::StringLike);
    if case_sensitive && v.bytes().any(|b| b.is_ascii_uppercase()) {
        Some(
            about_condition(
                Finding::new(
                    "policy.case-sensitive-operator",
                    Severity::Error,
                    format!("{} compares '{}' with {} against upper-case '{}': attested values are lower case, so it never matches", s.label(), c.key, c.op.name, v),
                ),
                s,
                c,
            )
            .with("value", v.to_owned())
            .fix("Use StringEqualsIgnoreCase (or lower-case values)", &[]),
        )
    } else if case_sensitive && c.op.base == BaseOp::StringEquals {
        Some(
            about_condition(
                Finding::new(
                    "policy.case-sensitive-operator",
                    Severity::Warn,
                    format!("{} uses case-sensitive {} on '{}': it works with lower-case values but breaks the day someone pastes upper case", s.label(), c.op.name, c.key),
                ),
                s,
                c,
            )
            .fix("Prefer StringEqualsIgnoreCase", &[]),
        )
    } else {
        None
    }
}

/// ImageSha384 and PCR0 are the same measurement: disjoint lists in one statement (AND) can
/// never both hold.
fn pcr0_imagesha384_conflict(s: &Statement, att: &[(&Condition, AttKey)]) -> Option<Finding> {
    let values = |key: AttKey| -> Option<BTreeSet<String>> {
        att.iter()
            .find(|(_, k)| *k == key)
            .map(|(c, _)| c.values.iter().map(|v| v.to_ascii_lowercase()).collect())
    };
    let (Some(img), Some(pcr0)) = (values(AttKey::ImageSha384), values(AttKey::Pcr(0))) else {
        return None;
    };
    if !img.is_disjoint(&pcr0) {
        return None;
    }
    Some(
        Finding::new(
            "policy.pcr0-imagesha384-conflict",
            Severity::Error,
            format!("{} requires ImageSha384 and PCR0 (the same measurement) to take disjoint values: it can never match", s.label()),
        )
        .with("statement", s.index)
        .with("sid", s.sid.clone())
        .fix("Condition on PCR0 only, or list the same values for both", &[]),
    )
}

/// An Allow statement for Decrypt with `Principal: "*"`.
fn broad_principal(s: &Statement) -> Option<Finding> {
    if s.principal != Principal::Any {
        return None;
    }
    Some(
        Finding::new(
            "policy.broad-principal",
            Severity::Warn,
            format!("{} allows kms:Decrypt to any principal (\"*\"); only the attestation condition protects the share", s.label()),
        )
        .with("statement", s.index)
        .with("sid", s.sid.clone())
        .fix("Name the enclave's role as Principal", &[]),
    )
}

/// Allow statements for Decrypt that constrain PCR0 and PCR8 separately: OR, not AND.
fn split_conditions(decrypt_allows: &[&Statement]) -> Option<Finding> {
    let pcr0_only = decrypt_allows.iter().find(|s| {
        let a = allowed_values(s);
        a.contains_key(&0) && !a.contains_key(&8)
    });
    let pcr8_only = decrypt_allows.iter().find(|s| {
        let a = allowed_values(s);
        a.contains_key(&8) && !a.contains_key(&0)
    });
    let (Some(a), Some(b)) = (pcr0_only, pcr8_only) else {
        return None;
    };
    Some(
        Finding::new(
            "policy.split-conditions",
            Severity::Warn,
            format!("PCR0 is required by {} and PCR8 by {}: separate Allow statements are OR, so either measurement alone releases the share", a.label(), b.label()),
        )
        .with("statements", vec![a.index, b.index])
        .fix("Put both conditions in one statement (AND)", &[]),
    )
}

/// Decrypt is refused, and the policy requires PCR8 (a signed image) but the measured image has
/// none.
fn pcr8_unsigned(
    decision: &Decision,
    allowed: &BTreeMap<u8, BTreeSet<String>>,
    ctx: &RequestContext,
) -> Option<Finding> {
    let reason_says = matches!(&decision.verdict, Verdict::Denied { reason } if reason.code() == "policy.pcr8-unsigned");
    let p8 = allowed.get(&8).cloned().unwrap_or_default();
    // A debug enclave attests all-zero PCRs and no PCR8: debug mode is the cause, not signing.
    let debug = ctx
        .measurements
        .pcrs
        .get(&0)
        .is_some_and(|v| crate::pcr::Pcr::parse(v).is_ok_and(|p| p.is_zero()));
    if decision.allowed
        || debug
        || !ctx.recipient
        || ctx.measurements.pcrs.contains_key(&8)
        || (p8.is_empty() && !reason_says)
    {
        return None;
    }
    Some(
        Finding::new(
            "policy.pcr8-unsigned",
            Severity::Error,
            "the policy requires PCR8 (a signed image) but the measured image is unsigned: it can never be released".to_owned(),
        )
        .with("allowed_pcr8", p8.iter().cloned().collect::<Vec<_>>())
        .fix("Sign the EIF with the certificate whose PCR8 the policy lists", &["nitro-cli build-enclave ... --signing-certificate cert.pem --private-key key.pem"]),
    )
}

/// Decrypt is refused and a Deny statement of the key policy matches: the first one is named
/// (and said to shadow an Allow only when one matches).
fn deny_shadow(p: &Policy, decision: &Decision) -> Option<Finding> {
    if decision.allowed {
        return None;
    }
    let s = &p.statements[*decision.denying.first()?];
    let mut summary = if decision.allowing.is_empty() {
        format!("{} denies kms:Decrypt to this enclave", s.label())
    } else {
        format!(
            "{} denies kms:Decrypt to this enclave even though an Allow would match",
            s.label()
        )
    };
    if s.not_principal {
        summary.push_str(
            " (NotPrincipal with Deny: a role's session is exempt only if its session ARN, its \
             role ARN and its account are all listed)",
        );
    }
    Some(
        Finding::new("policy.deny-shadow", Severity::Error, summary)
            .with("statement", s.index)
            .with("sid", s.sid.clone())
            .fix(
                "Narrow the Deny so it does not cover the attested measurements",
                &[],
            ),
    )
}

/// A Deny statement of an identity-based policy or of the permissions boundary refuses the
/// request.
fn explicit_deny(decision: &Decision) -> Option<Finding> {
    let Verdict::Denied {
        reason:
            r @ Reason::ExplicitDeny {
                source,
                statement,
                sid,
            },
    } = &decision.verdict
    else {
        return None;
    };
    if *source == PolicySource::KeyPolicy {
        return None;
    }
    Some(
        Finding::new(
            "policy.explicit-deny",
            Severity::Error,
            format!("kms:Decrypt is refused: {}", r.sentence()),
        )
        .with("policy", source.to_string())
        .with("statement", *statement)
        .with("sid", sid.clone())
        .fix(
            "Narrow that Deny statement so it does not cover kms:Decrypt on this key",
            &[],
        ),
    )
}

/// The key policy grants Decrypt on this key to nobody the caller is: no statement names it,
/// or none covers the action, or none covers the key.
fn principal_not_granted(decision: &Decision) -> Option<Finding> {
    let Verdict::Denied { reason } = &decision.verdict else {
        return None;
    };
    let why = match reason {
        Reason::PrincipalNotGranted { .. } => "principal",
        Reason::ActionNotCovered { .. } => "action",
        Reason::ResourceNotCovered { .. } => "resource",
        _ => return None,
    };
    Some(
        Finding::new(
            "policy.principal-not-granted",
            Severity::Error,
            format!(
                "kms:Decrypt is not granted by the key policy: {}",
                reason.sentence()
            ),
        )
        .with("why", why)
        .fix(
            "Add an Allow statement naming the enclave's role, for kms:Decrypt, with \
             \"Resource\": \"*\" and the attestation conditions",
            &[],
        ),
    )
}

/// Decrypt is refused: each measured PCR whose value no Allow statement admits, and the PCR the
/// closest Allow statement fails on (unless it is PCR8 of an unsigned image: `pcr8-unsigned`).
fn measurement_not_allowed(
    decision: &Decision,
    allowed: &BTreeMap<u8, BTreeSet<String>>,
    ctx: &RequestContext,
) -> Vec<Finding> {
    if decision.allowed {
        return Vec::new();
    }
    let mut findings = Vec::new();
    let mut said = BTreeSet::new();
    for (pcr, vals) in allowed {
        let measured = ctx.measurements.pcrs.get(pcr).filter(|_| ctx.recipient);
        if let Some(m) = measured
            && !vals.is_empty()
            && !vals.iter().any(|v| glob(v, &m.to_ascii_lowercase()))
        {
            said.insert(*pcr);
            let f = Finding::new(
                "policy.measurement-not-allowed",
                Severity::Error,
                format!(
                    "PCR{pcr} {m} is not among the values this key policy allows for kms:Decrypt"
                ),
            )
            .with("pcr", format!("PCR{pcr}"))
            .with("value", m.clone())
            .with("allowed", vals.iter().cloned().collect::<Vec<_>>());
            findings.push(if crate::pcr::Pcr::parse(m).is_ok_and(|p| p.is_zero()) {
                // Debug mode: the one value that must never be added to a policy.
                f.fix(
                    "The enclave runs in debug mode (all-zero PCRs): restart it without debug mode \
                     (unset ENCLAVE_DEBUG). Never add the all-zero value to a key policy: it would \
                     release the share to any debug enclave",
                    &[],
                )
            } else {
                let start = format!(
                    "ccctl rotate pcr{pcr} start --new {m} --config ccctl.toml",
                    m = m.to_ascii_lowercase()
                );
                f.fix(
                    "If this is the new release: hand the new value to the key holder (keep the old \
                     one until the rollout is done)",
                    &[start.as_str()],
                )
            });
        }
    }
    if let Verdict::Denied {
        reason:
            r @ Reason::MeasurementNotAllowed {
                statement,
                pcr,
                measured,
                ..
            },
    } = &decision.verdict
        && !said.contains(pcr)
        && r.code() == "policy.measurement-not-allowed"
    {
        let mut f = Finding::new(
            "policy.measurement-not-allowed",
            Severity::Error,
            format!("kms:Decrypt is refused: {}", r.sentence()),
        )
        .with("pcr", format!("PCR{pcr}"))
        .with("statement", *statement)
        .fix(
            "Attest the measurement the key policy requires, or ask the key holder to admit this one",
            &[],
        );
        if let Some(m) = measured {
            f = f.with("value", m.clone());
        }
        findings.push(f);
    }
    findings
}

/// Decrypt is refused: the closest Allow statement fails on a condition that is not about
/// attestation.
fn condition_unmet(decision: &Decision) -> Option<Finding> {
    let Verdict::Denied {
        reason:
            r @ Reason::ConditionUnmet {
                statement,
                sid,
                key,
                operator,
            },
    } = &decision.verdict
    else {
        return None;
    };
    Some(
        Finding::new(
            "policy.condition-unmet",
            Severity::Error,
            format!("kms:Decrypt is refused: {}", r.sentence()),
        )
        .with("statement", *statement)
        .with("sid", sid.clone())
        .with("key", key.clone())
        .with("operator", operator.clone())
        .fix(
            "Check the request's context against that condition (principal, accounts, encryption context, time)",
            &[],
        ),
    )
}

/// Decrypt is refused because no identity-based policy of the caller allows it on the key (the
/// key policy delegates to the account, or the key is in another account).
fn identity_lacks_decrypt(decision: &Decision) -> Option<Finding> {
    let r = decision
        .reasons
        .iter()
        .find(|r| matches!(r, Reason::IdentityLacksDecrypt { .. }))?;
    Some(
        Finding::new(
            "policy.identity-lacks-decrypt",
            Severity::Error,
            format!("kms:Decrypt is refused: {}", r.sentence()),
        )
        .with("cross_account", decision.cross_account)
        .fix(
            "Attach to the enclave's role an identity-based policy allowing kms:Decrypt on the key's ARN",
            &[],
        ),
    )
}

/// Decrypt is refused because the caller's permissions boundary leaves it out.
fn boundary_lacks_decrypt(decision: &Decision) -> Option<Finding> {
    let r = decision
        .reasons
        .iter()
        .find(|r| matches!(r, Reason::OutsideBoundary { .. }))?;
    Some(
        Finding::new(
            "policy.boundary-lacks-decrypt",
            Severity::Error,
            format!("kms:Decrypt is refused: {}", r.sentence()),
        )
        .fix(
            "Add kms:Decrypt on the key's ARN to the role's permissions boundary",
            &[],
        ),
    )
}

/// The verdict depends on keys ccctl cannot know: one warning per key.
fn condition_not_judged(decision: &Decision) -> Vec<Finding> {
    decision
        .depends_on
        .iter()
        .map(|k| {
            let what = match k.as_str() {
                KEY_ARN_UNKNOWN => "the key's ARN (a Resource names a specific key, or the key may be in another account)".to_owned(),
                SESSION_UNKNOWN => "the role's session name (a statement names one session)".to_owned(),
                _ => format!("'{k}', which ccctl cannot know (or an operator it does not model)"),
            };
            Finding::new(
                "policy.condition-not-judged",
                Severity::Warn,
                format!("KMS's answer to kms:Decrypt depends on {what}: judged both ways, it may allow or deny"),
            )
            .with("key", k.clone())
            .fix(
                "Give ccctl the value (key ARN, encryption context, time), or check this condition by hand",
                &[],
            )
        })
        .collect()
}

/// The IAM side (identity-based policies, boundary) was not given, and the key policy would
/// (or may) open the key: an error when IAM decides (delegation to the account, or another account),
/// information when the key policy names the role in the same account.
fn identity_not_checked(decision: &Decision) -> Option<Finding> {
    // Denied by the key policy itself: the IAM side cannot change that.
    if decision.identity_checked
        || decision.key_grant == KeyGrant::None
        || matches!(decision.verdict, Verdict::Denied { .. })
    {
        return None;
    }
    let (severity, summary) = if decision.cross_account == Some(true) {
        (
            Severity::Error,
            "the key is in another account: KMS also requires an identity-based policy of the \
             enclave's role allowing kms:Decrypt on it, which was not checked",
        )
    } else if decision.key_grant != KeyGrant::Direct {
        (
            Severity::Error,
            "the key policy opens the key to the role only through its account (root or account \
             id): KMS also requires an identity-based policy allowing kms:Decrypt, which was not \
             checked",
        )
    } else if decision.cross_account == Some(false) {
        (
            Severity::Info,
            "the key policy names the role in its own account: no identity-based policy is \
             needed (unless a permissions boundary leaves kms:Decrypt out, not checked)",
        )
    } else {
        (
            Severity::Info,
            "the IAM side was assumed to allow: the key ARN is not known, so neither is whether \
             the key is in the role's account (if it is not, KMS also requires an identity-based \
             policy allowing kms:Decrypt)",
        )
    };
    Some(
        Finding::new("policy.identity-not-checked", severity, summary)
            .with("cross_account", decision.cross_account)
            .fix(
                "Pass the role's identity-based policies (and boundary) to have the IAM side judged",
                &["aws iam list-attached-role-policies --role-name ROLE", "aws iam list-role-policies --role-name ROLE"],
            ),
    )
}

/// A grant lets the principal decrypt without attestation.
fn grant_bypasses_attestation(g: &GrantRecord, ctx: &RequestContext) -> Option<Finding> {
    if !bypasses(g, &ctx.principal_arn) {
        return None;
    }
    Some(
        Finding::new(
            "policy.grant-bypasses-attestation",
            Severity::Error,
            format!(
                "grant {} gives {:?} to '{}': grant constraints cannot require attestation, so \
                 the share can be decrypted outside the enclave",
                g.grant_id,
                g.releasing_operations(),
                g.grantee_principal
            ),
        )
        .with("grant_id", g.grant_id.clone())
        .with("grantee", g.grantee_principal.clone())
        .with("security", true)
        .fix(
            "Retire the grant; give Decrypt only through the key policy, conditioned on attestation",
            &["aws kms retire-grant --key-id KEY --grant-id GRANT"],
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::test_support::{
        NEW, OLD, P8, ROLE, allow_decrypt, codes, fixture, has, m, policy,
    };

    #[test]
    fn rotation_policy_admits_old_and_new_and_nothing_else() {
        let p = fixture("rotation-two-pcr0.json");
        for pcr0 in [OLD, NEW, &NEW.to_uppercase()] {
            let a = analyse(&p, ROLE, &m(&pcr0.to_ascii_lowercase(), Some(P8)));
            assert!(a.decision.allowed, "{pcr0}");
            assert_eq!(a.decision.allowing, vec![2]);
            assert!(!a.unattested.allowed);
            // Only the note that the IAM side was assumed (no key ARN, no identity policies).
            assert_eq!(
                codes(&a),
                [("policy.identity-not-checked".to_owned(), Severity::Info)],
                "{:?}",
                codes(&a)
            );
        }
        let other = "ab".repeat(48);
        let a = analyse(&p, ROLE, &m(&other, Some(P8)));
        assert!(!a.decision.allowed);
        assert!(has(&a, "policy.measurement-not-allowed", Severity::Error));
        let f = a
            .findings
            .iter()
            .find(|f| f.code == "policy.measurement-not-allowed")
            .unwrap();
        assert_eq!(f.evidence["pcr"], "PCR0");
        assert_eq!(a.allowed[&0].len(), 2);
        // Right PCR0, wrong PCR8 (another signing certificate).
        let a = analyse(&p, ROLE, &m(OLD, Some(&"cd".repeat(48))));
        assert!(!a.decision.allowed);
        // Another principal gets nothing.
        let a = analyse(
            &p,
            "arn:aws:iam::222222222222:role/other",
            &m(OLD, Some(P8)),
        );
        assert!(!a.decision.allowed);
        // The role's session is the role.
        let a = analyse(
            &p,
            "arn:aws:sts::222222222222:assumed-role/signer/i-0abc",
            &m(OLD, Some(P8)),
        );
        assert!(a.decision.allowed);
        // Unsigned image: PCR8 required but absent.
        let a = analyse(&p, ROLE, &m(OLD, None));
        assert!(!a.decision.allowed);
        assert!(has(&a, "policy.pcr8-unsigned", Severity::Error));
    }

    #[test]
    fn condition_on_encrypt_and_open_decrypt() {
        let a = analyse(
            &fixture("condition-on-encrypt-and-open-decrypt.json"),
            ROLE,
            &m(OLD, None),
        );
        assert!(a.decision.allowed);
        assert!(a.unattested.allowed);
        assert!(has(&a, "policy.unattested-decrypt", Severity::Error));
        assert!(has(&a, "policy.wrong-action", Severity::Error));
    }

    #[test]
    fn upper_case_with_string_equals_never_matches() {
        let a = analyse(
            &fixture("string-equals-uppercase.json"),
            ROLE,
            &m(OLD, Some(P8)),
        );
        assert!(!a.decision.allowed);
        assert!(has(&a, "policy.case-sensitive-operator", Severity::Error));
    }

    #[test]
    fn lower_case_with_string_equals_works_but_warns() {
        let p = policy(&format!(
            "[{}]",
            allow_decrypt(&format!(
                r#"{{"StringEquals":{{"kms:RecipientAttestation:PCR0":"{OLD}"}}}}"#
            ))
        ));
        let a = analyse(&p, ROLE, &m(OLD, None));
        assert!(a.decision.allowed);
        assert!(has(&a, "policy.case-sensitive-operator", Severity::Warn));
    }

    #[test]
    fn value_lints() {
        let zero = "0".repeat(96);
        let p = policy(&format!(
            "[{}]",
            allow_decrypt(&format!(
                r#"{{"StringEqualsIgnoreCase":{{"kms:RecipientAttestation:PCR0":["{OLD}","{zero}","abc"],"kms:RecipientAttestation:PCR99":"{OLD}"}}}}"#
            ))
        ));
        let a = analyse(&p, ROLE, &m(OLD, None));
        assert!(has(&a, "policy.debug-measurement", Severity::Error));
        assert!(has(&a, "policy.malformed-measurement", Severity::Error));
        assert!(has(&a, "policy.unknown-condition-key", Severity::Error));
        let p = policy(&format!(
            "[{}]",
            allow_decrypt(&format!(
                r#"{{"StringEqualsIgnoreCase":{{"kms:RecipientAttestation:PCR0":"{OLD}","kms:RecipientAttestation:ImageSha384":"{NEW}"}}}}"#
            ))
        ));
        let a = analyse(&p, ROLE, &m(OLD, None));
        assert!(!a.decision.allowed);
        assert!(has(&a, "policy.pcr0-imagesha384-conflict", Severity::Error));
    }

    #[test]
    fn split_conditions_and_broad_principal() {
        let s0 = allow_decrypt(&format!(
            r#"{{"StringEqualsIgnoreCase":{{"kms:RecipientAttestation:PCR0":"{OLD}"}}}}"#
        ));
        let s8 = format!(
            r#"{{"Effect":"Allow","Principal":"*","Action":"kms:Decrypt","Resource":"*","Condition":{{"StringEqualsIgnoreCase":{{"kms:RecipientAttestation:PCR8":"{P8}"}}}}}}"#
        );
        let p = policy(&format!("[{s0},{s8}]"));
        let a = analyse(&p, ROLE, &m(&"ab".repeat(48), Some(P8)));
        assert!(
            a.decision.allowed,
            "PCR8 alone suffices: that is the problem"
        );
        assert!(has(&a, "policy.split-conditions", Severity::Warn));
        assert!(has(&a, "policy.broad-principal", Severity::Warn));
    }

    /// Every code `analyse_with` can produce. Each is made by exactly one function, named after
    /// it (`policy.wrong-action` → `fn wrong_action`), which `analyse_with` calls.
    const CODES: &[&str] = &[
        "policy.unattested-decrypt",
        "policy.wrong-action",
        "policy.unknown-condition-key",
        "policy.if-exists",
        "policy.set-operator",
        "policy.malformed-measurement",
        "policy.debug-measurement",
        "policy.case-sensitive-operator",
        "policy.pcr0-imagesha384-conflict",
        "policy.broad-principal",
        "policy.split-conditions",
        "policy.pcr8-unsigned",
        "policy.deny-shadow",
        "policy.explicit-deny",
        "policy.principal-not-granted",
        "policy.measurement-not-allowed",
        "policy.condition-unmet",
        "policy.identity-lacks-decrypt",
        "policy.boundary-lacks-decrypt",
        "policy.condition-not-judged",
        "policy.identity-not-checked",
        "policy.grant-bypasses-attestation",
    ];

    #[test]
    fn one_function_per_code() {
        let src = include_str!("lint.rs");
        let src = &src[..src.find("#[cfg(test)]").unwrap()];
        let body = |name: &str| {
            let start = src
                .find(&format!("\nfn {name}("))
                .or_else(|| src.find(&format!("\npub fn {name}(")))
                .unwrap_or_else(|| panic!("no fn {name}"));
            &src[start..start + src[start..].find("\n}\n").unwrap()]
        };
        let mut literals: Vec<&str> = src
            .match_indices("\"policy.")
            .map(|(i, _)| &src[i + 1..i + 1 + src[i + 1..].find('"').unwrap()])
            .collect();
        literals.sort_unstable();
        literals.dedup();
        let mut codes = CODES.to_vec();
        codes.sort_unstable();
        assert_eq!(literals, codes, "the codes in lint.rs are CODES");
        for code in CODES {
            let name = code.trim_start_matches("policy.").replace('-', "_");
            let literal = format!("\"{code}\"");
            assert_eq!(
                body(&name).matches(&literal).count(),
                src.matches(&literal).count(),
                "{code} is made by fn {name} only"
            );
            assert!(
                body("analyse_with").contains(&format!("{name}(")),
                "analyse_with calls {name}"
            );
        }
    }
}
