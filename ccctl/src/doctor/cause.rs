//! Cause → consequence: which finding explains which, the order doctor prints them in (causes
//! first, by severity, each followed by what it explains), and the one-line verdict (HEALTHY /
//! DEGRADED / DOWN and the top cause) that doctor, `demo --once` and the dashboard all show.

use cc_proto::findings::{Finding, Severity};
use serde::{Deserialize, Serialize};

use super::{CheckStatus, Report};

/// `(cause, consequences)`: when both are in one report, the consequence is shown under the
/// cause. Holder-specific findings are linked only within the same holder. Acyclic (a test
/// walks it).
pub const CAUSES: &[(&str, &[&str])] = &[
    // Debug mode: all-zero PCRs, so every policy refuses and the signer stays sealed.
    (
        "config.debug-in-production",
        &["enclave.debug-mode", "policy.debug-measurement"],
    ),
    (
        "enclave.debug-mode",
        &[
            "policy.measurement-not-allowed",
            "policy.threshold-unmet",
            "kms.access-denied",
            "enclave.sealed",
        ],
    ),
    // No enclave: nothing answers.
    (
        "enclave.not-running",
        &[
            "enclave.api-unreachable",
            "metrics.unreachable",
            "pcr.no-attestation",
            "enclave.sealed",
        ],
    ),
    (
        "enclave.failed",
        &[
            "enclave.api-unreachable",
            "metrics.unreachable",
            "enclave.sealed",
        ],
    ),
    (
        "enclave.pod-not-running",
        &["enclave.api-unreachable", "metrics.unreachable"],
    ),
    // No Nitro device or NSM: no attestation, so KMS cannot release.
    (
        "nsm.device-missing",
        &[
            "nsm.init-failed",
            "pcr.no-attestation",
            "kms.error",
            "kms.access-denied",
            "policy.threshold-unmet",
            "enclave.sealed",
            "enclave.failed",
        ],
    ),
    (
        "nsm.device-not-requested",
        &["nsm.device-missing", "nsm.init-failed", "enclave.sealed"],
    ),
    (
        "nsm.init-failed",
        &[
            "enclave.failed",
            "pcr.no-attestation",
            "kms.error",
            "kms.access-denied",
            "policy.threshold-unmet",
            "enclave.sealed",
        ],
    ),
    // Egress down: KMS unreachable from the enclave.
    (
        "egress.proxy-down",
        &[
            "kms.unreachable",
            "kms.error",
            "policy.threshold-unmet",
            "enclave.sealed",
        ],
    ),
    (
        "egress.upstream-unreachable",
        &[
            "kms.unreachable",
            "policy.threshold-unmet",
            "enclave.sealed",
        ],
    ),
    (
        "egress.tls-failed",
        &[
            "kms.unreachable",
            "policy.threshold-unmet",
            "enclave.sealed",
        ],
    ),
    // The log listener: events dropped.
    ("logs.listener-down", &["logs.events-dropped"]),
    // A policy or IAM refusal: the holder denies, too few release, the signer stays sealed.
    (
        "policy.measurement-not-allowed",
        &[
            "kms.access-denied",
            "policy.threshold-unmet",
            "enclave.sealed",
        ],
    ),
    (
        "kms.role-lacks-decrypt",
        &["policy.threshold-unmet", "enclave.sealed"],
    ),
    (
        "policy.identity-lacks-decrypt",
        &[
            "kms.access-denied",
            "kms.role-lacks-decrypt",
            "policy.threshold-unmet",
            "enclave.sealed",
        ],
    ),
    (
        "policy.explicit-deny",
        &[
            "kms.access-denied",
            "policy.threshold-unmet",
            "enclave.sealed",
        ],
    ),
    (
        "kms.access-denied",
        &["policy.threshold-unmet", "enclave.sealed"],
    ),
    (
        "kms.unreachable",
        &["policy.threshold-unmet", "enclave.sealed"],
    ),
    ("policy.threshold-unmet", &["enclave.sealed"]),
];

fn explains(cause: &Finding, effect: &Finding) -> bool {
    let linked = CAUSES
        .iter()
        .any(|(c, es)| *c == cause.code && es.contains(&effect.code.as_str()));
    let holder = |f: &Finding| {
        f.evidence
            .get("holder")
            .and_then(|h| h.as_str())
            .map(str::to_owned)
    };
    // A holder's finding is explained only by the same holder's (or a holder-less) cause.
    linked
        && match (holder(cause), holder(effect)) {
            (Some(a), Some(b)) => a == b,
            _ => true,
        }
}

/// Set `caused_by` on every finding that a finding of the same report explains (the deepest
/// cause present is found by following the links).
pub fn link(report: &mut Report) {
    let all: Vec<Finding> = report.findings().cloned().collect();
    for c in &mut report.checks {
        for f in &mut c.findings {
            f.caused_by = all
                .iter()
                .filter(|cause| explains(cause, f))
                // Prefer the cause nothing else explains (the root), then the first.
                .min_by_key(|cause| all.iter().any(|x| explains(x, cause)))
                .map(|cause| cause.code.clone());
        }
    }
}

/// A cause and what it explains.
pub struct Group<'a> {
    pub cause: &'a Finding,
    pub consequences: Vec<&'a Finding>,
}

/// Causes first — by the highest severity in their group, then in report order — each with its
/// consequences (transitively) in report order.
pub fn ordered(report: &Report) -> Vec<Group<'_>> {
    let all: Vec<&Finding> = report.findings().collect();
    // The finding that `f.caused_by` names (the same holder's, when it has one).
    let cause_of = |f: &Finding| -> Option<usize> {
        let c = f.caused_by.as_deref()?;
        all.iter()
            .position(|x| x.code == c && !std::ptr::eq(*x, f) && explains(x, f))
    };
    let root_of = |i: usize| -> usize {
        let mut cur = i;
        // Bounded: the table is acyclic, but a report read from JSON need not be.
        for _ in 0..all.len() {
            match cause_of(all[cur]) {
                Some(c) => cur = c,
                None => break,
            }
        }
        cur
    };
    let mut groups: Vec<(usize, Group)> = Vec::new();
    for (i, f) in all.iter().enumerate() {
        let root = root_of(i);
        if root == i {
            groups.push((
                i,
                Group {
                    cause: f,
                    consequences: Vec::new(),
                },
            ));
        }
    }
    let mut orphans = Vec::new();
    for (i, f) in all.iter().enumerate() {
        let root = root_of(i);
        if root != i {
            match groups.iter_mut().find(|(r, _)| *r == root) {
                Some((_, g)) => g.consequences.push(f),
                // A cycle in a report read from JSON: shown on its own, never lost.
                None => orphans.push(Group {
                    cause: f,
                    consequences: Vec::new(),
                }),
            }
        }
    }
    let mut groups: Vec<Group> = groups.into_iter().map(|(_, g)| g).collect();
    groups.extend(orphans);
    let worst = |g: &Group| {
        g.consequences
            .iter()
            .map(|f| f.severity)
            .chain([g.cause.severity])
            .max()
            .unwrap_or(Severity::Info)
    };
    groups.sort_by_key(|g| std::cmp::Reverse(worst(g)));
    groups
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Level {
    /// The signer is unsealed and nothing is wrong that was looked at.
    Healthy,
    /// The signer works, but something needs attention (or could not be looked at).
    Degraded,
    /// The signer cannot sign (not unsealed, not reachable), or an error stands while its
    /// state is not known.
    Down,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Healthy => "HEALTHY",
            Level::Degraded => "DEGRADED",
            Level::Down => "DOWN",
        }
    }
}

/// One line: the level and the top cause.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    pub level: Level,
    /// The code of the top cause (none when healthy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
    /// The top cause in words, or what the level rests on.
    pub summary: String,
    /// Findings shown under the top cause.
    #[serde(default)]
    pub consequences: usize,
}

impl Verdict {
    /// Not judged (a report built by hand, or read from JSON without one).
    pub fn none() -> Verdict {
        Verdict {
            level: Level::Degraded,
            cause: None,
            summary: "not judged".into(),
            consequences: 0,
        }
    }

    pub fn line(&self) -> String {
        let more = match self.consequences {
            0 => String::new(),
            1 => " (+1 consequence)".into(),
            n => format!(" (+{n} consequences)"),
        };
        match &self.cause {
            Some(c) => format!("{} — {c}: {}{more}", self.level.as_str(), self.summary),
            None => format!("{} — {}", self.level.as_str(), self.summary),
        }
    }
}

impl Default for Verdict {
    fn default() -> Self {
        Verdict::none()
    }
}

/// The verdict of a report, given the signer's state as `/status` said it (`None`: not looked
/// at; `Some("unreachable")` when it did not answer).
pub fn verdict(report: &Report, signer: Option<&str>) -> Verdict {
    let groups = ordered(report);
    let top = groups
        .first()
        .filter(|g| g.cause.severity >= Severity::Warn || !g.consequences.is_empty());
    let worst = report.findings().map(|f| f.severity).max();
    let unknown: Vec<&str> = report
        .checks
        .iter()
        .filter(|c| {
            matches!(
                c.status,
                CheckStatus::Unknown | CheckStatus::Crashed | CheckStatus::TimedOut
            )
        })
        .map(|c| c.id.as_str())
        .collect();
    let unsealed = signer == Some("unsealed");
    let level = match (signer, worst) {
        (Some(s), _) if s != "unsealed" => Level::Down,
        (None, Some(Severity::Error)) => Level::Down,
        (_, Some(Severity::Error | Severity::Warn)) => Level::Degraded,
        _ if !unknown.is_empty() => Level::Degraded,
        // Nothing wrong, but the signer itself was not looked at: not HEALTHY.
        _ if !unsealed => Level::Degraded,
        _ => Level::Healthy,
    };
    match top {
        Some(g) if worst >= Some(Severity::Warn) => Verdict {
            level,
            cause: Some(g.cause.code.clone()),
            summary: crate::output::clean(&g.cause.summary),
            consequences: g.consequences.len(),
        },
        _ => Verdict {
            level,
            cause: None,
            summary: match (level, signer) {
                (Level::Healthy, _) => "signer unsealed; no problem found".into(),
                (_, Some("unreachable")) => "the enclave API does not answer".into(),
                (_, Some(s)) if s != "unsealed" => format!("the signer is {s}"),
                (_, None) => "the signer's state was not looked at".into(),
                _ => format!("could not look at: {}", unknown.join(", ")),
            },
            consequences: 0,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::CheckResult;

    fn report(findings: Vec<Finding>) -> Report {
        let mut r = Report {
            checks: findings
                .into_iter()
                .map(|f| CheckResult::of(&f.code.clone(), "t", vec![f]))
                .collect(),
            ..Report::default()
        };
        r.resummarise();
        r
    }

    #[test]
    fn the_table_has_no_cycle() {
        fn reach(from: &str, to: &str, depth: usize) -> bool {
            depth < 20
                && CAUSES
                    .iter()
                    .filter(|(c, _)| *c == from)
                    .flat_map(|(_, es)| es.iter())
                    .any(|e| *e == to || reach(e, to, depth + 1))
        }
        for (c, _) in CAUSES {
            assert!(!reach(c, c, 0), "{c} explains itself");
        }
    }

    #[test]
    fn the_cause_comes_first_with_its_consequences_under_it() {
        let r = report(vec![
            Finding::new("enclave.sealed", Severity::Error, "sealed"),
            Finding::new("kms.unreachable", Severity::Error, "unreachable"),
            Finding::new("logs.events-dropped", Severity::Warn, "dropping"),
            Finding::new("egress.proxy-down", Severity::Warn, "down"),
        ]);
        let g = ordered(&r);
        assert_eq!(g[0].cause.code, "egress.proxy-down");
        let under: Vec<&str> = g[0].consequences.iter().map(|f| f.code.as_str()).collect();
        assert_eq!(under, ["enclave.sealed", "kms.unreachable"]);
        assert_eq!(g[1].cause.code, "logs.events-dropped");
        let v = verdict(&r, Some("sealed"));
        assert_eq!(v.level, Level::Down);
        assert_eq!(v.cause.as_deref(), Some("egress.proxy-down"));
        assert!(v.line().starts_with("DOWN — egress.proxy-down: down (+2"));
    }

    #[test]
    fn holders_are_not_mixed() {
        let r = report(vec![
            Finding::new("kms.access-denied", Severity::Error, "c denies")
                .with("holder", "holder-c"),
            Finding::new("policy.measurement-not-allowed", Severity::Error, "b lacks")
                .with("holder", "holder-b"),
        ]);
        let g = ordered(&r);
        assert_eq!(
            g.len(),
            2,
            "holder-b's policy does not explain holder-c's denial"
        );
    }

    #[test]
    fn levels() {
        let clean = report(vec![]);
        assert_eq!(verdict(&clean, Some("unsealed")).level, Level::Healthy);
        // Not looked at is not healthy.
        assert_eq!(verdict(&clean, None).level, Level::Degraded);
        assert_eq!(verdict(&clean, Some("unreachable")).level, Level::Down);
        let warn = report(vec![Finding::new(
            "logs.events-dropped",
            Severity::Warn,
            "d",
        )]);
        assert_eq!(verdict(&warn, Some("unsealed")).level, Level::Degraded);
        let err = report(vec![Finding::new("logs.panic", Severity::Error, "p")]);
        assert_eq!(verdict(&err, Some("unsealed")).level, Level::Degraded);
        assert_eq!(verdict(&err, None).level, Level::Down);
        let mut unknown = report(vec![]);
        unknown.checks.push(CheckResult {
            status: CheckStatus::Unknown,
            ..CheckResult::of("kms.holders", "t", vec![])
        });
        assert_eq!(verdict(&unknown, Some("unsealed")).level, Level::Degraded);
    }
}
