//! Differential test: the production evaluator against the independent reference
//! (`reference`), on seeded generated cases (`generator`). On the first disagreement it prints
//! the policy JSON, the request and both answers.
//!
//! Also checked on every case: every Denied verdict yields an error finding of the code its
//! reason names, every DependsOn a `condition-not-judged` per key; and, on the reference alone,
//! soundness of the three-valued logic: a definite answer stays the same when the keys it could
//! not know are given concrete values.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use crate::findings::Severity;

use super::generator::{Case, case, concrete_value};
use super::reference::{self, Answer, Deny, Outcome};
use super::{
    Decision, IamPolicies, Measurements, NamedPolicy, Policy, PolicyKind, PolicySource, Reason,
    RequestContext, Verdict, analyse_with,
};

const SEED: u64 = 0x5eed_2024_0b5e;
const CASES: usize = 16_000;

/// The case as production takes it; `via_text`: through the JSON text (`Policy::parse`), else
/// from the JSON value (`Policy::from_json`, the same walk without serde's text parser, which is
/// slow in debug builds).
fn production_inputs(c: &Case, via_text: bool) -> (Policy, RequestContext, IamPolicies) {
    let read = |v: &serde_json::Value, kind: PolicyKind| {
        if via_text {
            Policy::parse_as(&v.to_string(), kind)
        } else {
            Policy::from_json(v, kind)
        }
        .unwrap_or_else(|e| panic!("generated policy: {e}\n{v}"))
    };
    let policy = read(&c.key_policy, PolicyKind::Key);
    let w = &c.world;
    let mut ctx = RequestContext::decrypt(&w.principal).action(&w.action);
    if let Some(k) = &w.key_arn {
        ctx = ctx.key(k);
    }
    ctx.principal_account = w.principal_account.clone();
    ctx.caller_account = w.caller_account.clone();
    ctx.key_region = w.region.clone();
    ctx.encryption_context =
        w.ec.as_ref()
            .map(|ec| ec.iter().cloned().collect::<BTreeMap<_, _>>());
    ctx.measurements = Measurements {
        pcrs: w.pcrs.iter().cloned().collect(),
    };
    ctx.recipient = w.recipient;
    ctx.secure_transport = w.tls;
    ctx.current_time = w.now;
    let named = |(n, v): &(String, serde_json::Value)| NamedPolicy {
        name: n.clone(),
        policy: read(v, PolicyKind::Identity),
    };
    let iam = IamPolicies {
        identity: c
            .iam
            .identity
            .as_ref()
            .map(|l| l.iter().map(named).collect()),
        boundary: c.iam.boundary.as_ref().map(named),
    };
    (policy, ctx, iam)
}

/// The production decision in the reference's terms.
fn as_reference(d: &Decision) -> Answer {
    let outcome = match &d.verdict {
        Verdict::Allowed => Outcome::Allowed,
        Verdict::DependsOn { keys } => Outcome::DependsOn(
            keys.iter()
                .map(|k| k.to_lowercase())
                .collect::<BTreeSet<_>>(),
        ),
        Verdict::Denied { reason } => Outcome::Denied(match reason {
            Reason::ExplicitDeny {
                source, statement, ..
            } => match source {
                PolicySource::KeyPolicy => Deny::Explicit('k', String::new(), *statement),
                PolicySource::Identity(n) => Deny::Explicit('i', n.clone(), *statement),
                PolicySource::Boundary(n) => Deny::Explicit('b', n.clone(), *statement),
            },
            Reason::IdentityLacksDecrypt { .. } => Deny::Implicit('i'),
            Reason::OutsideBoundary { .. } => Deny::Implicit('b'),
            _ => Deny::Implicit('k'),
        }),
    };
    Answer {
        outcome,
        allowing: d.allowing.clone(),
        denying: d.denying.clone(),
    }
}

fn show(c: &Case) -> String {
    format!(
        "key policy:\n{}\nrequest: {:#?}\nidentity policies: {}\nboundary: {}",
        serde_json::to_string_pretty(&c.key_policy).unwrap_or_default(),
        c.world,
        serde_json::to_string_pretty(&c.iam.identity).unwrap_or_default(),
        serde_json::to_string_pretty(&c.iam.boundary).unwrap_or_default(),
    )
}

#[test]
fn production_agrees_with_the_reference() {
    let start = Instant::now();
    let mut rng = fastrand::Rng::with_seed(SEED);
    let mut tally: BTreeMap<&str, usize> = BTreeMap::new();
    let mut concretized = 0usize;
    for n in 0..CASES {
        let c = case(&mut rng);
        let (policy, ctx, iam) = production_inputs(&c, n % 10 == 0);
        let a = analyse_with(&policy, &ctx, &iam, &[]);
        let got = as_reference(&a.decision);
        let want = reference::decide(&c.key_policy, &c.world, &c.iam);
        assert!(
            got == want,
            "case {n} (seed {SEED:#x}): production {got:?}\nreference {want:?}\n{}\n\
             production decision: {:#?}",
            show(&c),
            a.decision
        );
        assert_eq!(a.decision.identity_checked, c.iam.identity.is_some());
        assert_eq!(a.decision.allowed, want.outcome == Outcome::Allowed);
        *tally
            .entry(match &want.outcome {
                Outcome::Allowed => "allowed",
                Outcome::Denied(Deny::Explicit(..)) => "denied (explicit)",
                Outcome::Denied(Deny::Implicit(_)) => "denied (implicit)",
                Outcome::DependsOn(_) => "depends",
            })
            .or_default() += 1;

        // Every "no" is explained by an error finding of its reason's code.
        match &a.decision.verdict {
            Verdict::Denied { reason } => assert!(
                a.findings
                    .iter()
                    .any(|f| f.code == reason.code() && f.severity == Severity::Error),
                "case {n}: no error finding {} for {reason:?}\n{}\nfindings: {:#?}",
                reason.code(),
                show(&c),
                a.findings
            ),
            Verdict::DependsOn { keys } => {
                for k in keys {
                    assert!(
                        a.findings
                            .iter()
                            .any(|f| f.code == "policy.condition-not-judged"
                                && f.evidence["key"] == k.as_str()),
                        "case {n}: no condition-not-judged for {k}"
                    );
                }
            }
            Verdict::Allowed => {}
        }

        // Soundness of the three-valued logic (reference alone): a definite answer survives
        // any concrete values of the keys it could not know.
        if matches!(want.outcome, Outcome::Allowed | Outcome::Denied(_)) {
            let mut docs = vec![c.key_policy.clone()];
            docs.extend(c.iam.identity.iter().flatten().map(|(_, v)| v.clone()));
            docs.extend(c.iam.boundary.iter().map(|(_, v)| v.clone()));
            let mut unknown: Vec<String> = docs
                .iter()
                .flat_map(reference::condition_keys)
                .filter(|k| reference::unknowable(&c.world, k))
                .collect();
            unknown.sort();
            unknown.dedup();
            if !unknown.is_empty() {
                concretized += 1;
                {
                    let mut w = c.world.clone();
                    for k in &unknown {
                        w.forced.insert(k.clone(), concrete_value(&mut rng, k));
                    }
                    let again = reference::decide(&c.key_policy, &w, &c.iam);
                    assert_eq!(
                        again.outcome == Outcome::Allowed,
                        want.outcome == Outcome::Allowed,
                        "case {n}: unsound: {want:?} became {again:?} with {:?}\n{}",
                        w.forced,
                        show(&c)
                    );
                }
            }
        }
    }
    eprintln!(
        "differential: {CASES} cases, seed {SEED:#x}, {tally:?}, {concretized} definite \
         answers re-checked with concrete values once, {:?}",
        start.elapsed()
    );
    for outcome in [
        "allowed",
        "denied (explicit)",
        "denied (implicit)",
        "depends",
    ] {
        assert!(
            tally.get(outcome).copied().unwrap_or(0) >= CASES / 50,
            "the generator should produce enough '{outcome}' cases: {tally:?}"
        );
    }
}
