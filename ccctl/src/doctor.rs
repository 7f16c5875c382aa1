//! `ccctl doctor`: checks that return findings, run concurrently under one deadline, each
//! isolated (a check that panics or runs out of time is reported as such; the others still
//! report), rendered as human text, JSON or JUnit.
//!
//! This first part runs on the local machine (`--local`); the pod and fleet modes (kube,
//! exec) build on the same `Check` trait.

pub mod allocator;
pub mod cause;
pub mod checks;
pub mod command;
pub mod egress;
pub mod fleet;
pub mod inpod;
pub mod live;
pub mod pcr;
pub mod pod;
pub mod render;
pub mod signatures;

use std::sync::Arc;
use std::time::{Duration, Instant};

use cc_proto::Address;
use cc_proto::findings::{Finding, Severity};
use serde::Serialize;

pub use crate::probe::BoxFuture;

/// What a check may look at. Built once from the settings; checks never read the environment
/// themselves.
#[derive(Debug, Clone)]
pub struct Context {
    /// `PRODUCTION` as the pod sees it.
    pub production: bool,
    /// `ENCLAVE_DEBUG` as the pod sees it.
    pub enclave_debug: Option<String>,
    pub nitro_cli: std::path::PathBuf,
    /// The enclave API (`/status`), e.g. `tcp://127.0.0.1:9000`.
    pub api: Address,
    /// The enclave metrics (`/metrics`), e.g. `tcp://127.0.0.1:3000`.
    pub metrics: Address,
    /// The parent's log listener (vsock-stdout); `None` to skip.
    pub log_listener: Option<Address>,
    /// `/dev/nitro_enclaves`.
    pub device: std::path::PathBuf,
    /// Time between the two metric scrapes that measure the drop rate.
    pub scrape_interval: Duration,
    /// Per-request deadline for HTTP probes.
    pub probe_timeout: Duration,
    /// The parent proxy's `run` configuration (egress endpoints, allowlist); `None` skips the
    /// egress family.
    pub proxy_config: Option<std::path::PathBuf>,
    /// The pod's log as a file (the parent's stdout); `None` skips the signature scan.
    pub log_file: Option<std::path::PathBuf>,
    /// `ccctl`'s config (holders, principal, threshold); `None` skips the pcr family.
    pub holders_config: Option<std::path::PathBuf>,
    /// `/etc/nitro_enclaves/allocator.yaml`.
    pub allocator: std::path::PathBuf,
    /// `/status`, fetched once and shared by the checks that read it.
    pub status: tokio::sync::OnceCell<Result<cc_proto::status::Status, String>>,
    /// What each check saw (`Context::saw`), shown on its row instead of its rule.
    pub observed:
        std::sync::Arc<std::sync::Mutex<std::collections::BTreeMap<&'static str, String>>>,
}

impl Context {
    /// Record what check `id` observed, in a few words (`3/3 holders released`).
    pub fn saw(&self, id: &'static str, what: impl Into<String>) {
        if let Ok(mut m) = self.observed.lock() {
            m.insert(id, what.into());
        }
    }

    fn observation(&self, id: &str) -> Option<String> {
        self.observed.lock().ok()?.remove(id)
    }
}

/// One check.
pub trait Check: Send + Sync {
    /// `family.name`, e.g. `enclave.status`.
    fn id(&self) -> &'static str;
    fn description(&self) -> &'static str;
    fn run<'a>(&'a self, ctx: &'a Context) -> BoxFuture<'a, Vec<Finding>>;
    /// `Some(why)` when its input was not given (say which flag or `CCCTL_*` variable): the
    /// check is skipped, not passed.
    fn skipped(&self, _ctx: &Context) -> Option<String> {
        None
    }
    /// It judges the enclave's `/status`: when that does not answer, its status is unknown,
    /// not passed.
    fn needs_status(&self) -> bool {
        false
    }
    /// Finding codes of another family it can emit (`logs.forwarding` reports
    /// `metrics.unreachable`): `--checks metrics` selects it too.
    fn other_codes(&self) -> &'static [&'static str] {
        &[]
    }
}

impl dyn Check {
    pub fn family(&self) -> &'static str {
        self.id().split('.').next().unwrap_or("misc")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    Passed,
    Findings,
    /// Its input was not given (the note says which flag or variable).
    Skipped,
    /// Its input was unreachable (the note says which): at least a warning for the exit status.
    Unknown,
    Crashed,
    TimedOut,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct CheckResult {
    pub id: String,
    pub family: String,
    pub description: String,
    pub status: CheckStatus,
    pub duration_ms: u64,
    pub findings: Vec<Finding>,
    /// Why a check was skipped or its status is unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// What it saw, in a few words (`3/3 holders released`, `1 enclave RUNNING (debug)`); the
    /// row shows this, and `--list-checks` the rule (`description`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed: Option<String>,
}

impl CheckResult {
    /// A check that ran elsewhere (the pod's API side, the in-pod probes): passed or failed by
    /// its findings.
    pub fn of(id: &str, description: &str, findings: Vec<Finding>) -> CheckResult {
        CheckResult {
            id: id.to_owned(),
            family: id.split('.').next().unwrap_or("misc").to_owned(),
            description: description.to_owned(),
            status: if findings.is_empty() {
                CheckStatus::Passed
            } else {
                CheckStatus::Findings
            },
            duration_ms: 0,
            findings,
            note: None,
            observed: None,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
pub struct Report {
    /// One line: HEALTHY / DEGRADED / DOWN and the top cause (computed by `resummarise`).
    #[serde(default = "cause::Verdict::none")]
    pub verdict: cause::Verdict,
    pub checks: Vec<CheckResult>,
    pub summary: Summary,
    /// The signer's state as `/status` said it (`unreachable` when it did not answer); absent
    /// when it was not looked at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signer: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
pub struct Summary {
    pub errors: usize,
    pub warnings: usize,
    pub infos: usize,
    pub checks: usize,
    pub crashed: usize,
    pub timed_out: usize,
    #[serde(default)]
    pub skipped: usize,
    #[serde(default)]
    pub unknown: usize,
}

impl Report {
    /// Recount the summary, link causes and consequences and judge the verdict, after checks
    /// were added.
    pub fn resummarise(&mut self) {
        cause::link(self);
        self.count();
        self.verdict = cause::verdict(self, self.signer.as_deref());
    }

    fn count(&mut self) {
        let mut s = Summary {
            checks: self.checks.len(),
            ..Summary::default()
        };
        for c in &self.checks {
            match c.status {
                CheckStatus::Crashed => s.crashed += 1,
                CheckStatus::TimedOut => s.timed_out += 1,
                CheckStatus::Skipped => s.skipped += 1,
                CheckStatus::Unknown => s.unknown += 1,
                _ => {}
            }
            for f in &c.findings {
                match f.severity {
                    Severity::Error => s.errors += 1,
                    Severity::Warn => s.warnings += 1,
                    Severity::Info => s.infos += 1,
                }
            }
        }
        self.summary = s;
    }

    pub fn findings(&self) -> impl Iterator<Item = &Finding> {
        self.checks.iter().flat_map(|c| c.findings.iter())
    }

    /// Is there a finding at or above `level`? A check whose status is unknown counts as a
    /// warning (what could not be looked at is not fine).
    pub fn fails(&self, level: Severity) -> bool {
        self.findings().any(|f| f.severity >= level)
            || (level <= Severity::Warn
                && self.checks.iter().any(|c| c.status == CheckStatus::Unknown))
    }
}

/// Run `checks` concurrently; each gets what is left of `deadline`.
pub async fn run(checks: Vec<Arc<dyn Check>>, ctx: Arc<Context>, deadline: Duration) -> Report {
    let start = Instant::now();
    let mut handles = Vec::new();
    let mut results = Vec::new();
    // /status once, if any check judges it (a dead API makes those checks unknown).
    let status_error = if checks.iter().any(|c| c.needs_status()) {
        tokio::time::timeout(deadline, checks::fetch_status(&ctx))
            .await
            .unwrap_or_else(|_| Err("no answer within the deadline".into()))
            .err()
    } else {
        None
    };
    for check in checks {
        let not_run = |status: CheckStatus, note: String| CheckResult {
            id: check.id().to_owned(),
            family: check.family().to_owned(),
            description: check.description().to_owned(),
            status,
            duration_ms: 0,
            findings: Vec::new(),
            note: Some(note),
            observed: None,
        };
        if let Some(why) = check.skipped(&ctx) {
            results.push((
                results.len() + handles.len(),
                not_run(CheckStatus::Skipped, why),
            ));
            continue;
        }
        if check.needs_status()
            && let Some(e) = &status_error
        {
            let why = format!(
                "the enclave API at {} did not answer /status ({}): see enclave.api-unreachable",
                ctx.api,
                crate::output::clean(e)
            );
            results.push((
                results.len() + handles.len(),
                not_run(CheckStatus::Unknown, why),
            ));
            continue;
        }
        let ctx = ctx.clone();
        let c = check.clone();
        let task = tokio::spawn(async move { c.run(&ctx).await });
        handles.push((results.len() + handles.len(), check, task));
    }
    for (order, check, mut task) in handles {
        let left = deadline.saturating_sub(start.elapsed());
        let (status, findings) = match tokio::time::timeout(left, &mut task).await {
            Ok(Ok(f)) if f.is_empty() => (CheckStatus::Passed, f),
            Ok(Ok(f)) => (CheckStatus::Findings, f),
            Ok(Err(e)) => {
                let why = if e.is_panic() {
                    e.into_panic()
                        .downcast_ref::<&str>()
                        .map(|s| (*s).to_owned())
                        .unwrap_or_else(|| "panicked".into())
                } else {
                    "was cancelled".into()
                };
                (
                    CheckStatus::Crashed,
                    vec![
                        Finding::new(
                            "doctor.check-crashed",
                            Severity::Error,
                            format!(
                                "check {} crashed: {why}; the other checks still ran",
                                check.id()
                            ),
                        )
                        .with("check", check.id()),
                    ],
                )
            }
            Err(_) => {
                task.abort();
                (
                    CheckStatus::TimedOut,
                    vec![
                        Finding::new(
                            "doctor.check-timed-out",
                            Severity::Error,
                            format!(
                                "check {} did not finish within the {:?} deadline",
                                check.id(),
                                deadline
                            ),
                        )
                        .with("check", check.id())
                        .fix(
                            "Re-run with a longer --timeout, or look at what it probes",
                            &["ccctl doctor --local --timeout 30s"],
                        ),
                    ],
                )
            }
        };
        results.push((
            order,
            CheckResult {
                id: check.id().to_owned(),
                family: check.family().to_owned(),
                description: check.description().to_owned(),
                status,
                duration_ms: start.elapsed().as_millis() as u64,
                findings,
                note: None,
                observed: ctx.observation(check.id()),
            },
        ));
    }
    results.sort_by_key(|(order, _)| *order);
    let mut results: Vec<CheckResult> = results.into_iter().map(|(_, r)| r).collect();
    // The same problem seen by two checks (e.g. /status unreachable) is reported once.
    let mut seen = std::collections::HashSet::new();
    for r in &mut results {
        r.findings
            .retain(|f| seen.insert((f.code.clone(), f.summary.clone())));
        if r.status == CheckStatus::Findings && r.findings.is_empty() {
            r.status = CheckStatus::Passed;
        }
    }
    merge_log_signatures(&mut results);
    let signer = match ctx.status.get() {
        Some(Ok(s)) => Some(s.state.as_str().to_owned()),
        Some(Err(_)) => Some("unreachable".to_owned()),
        None => None,
    };
    let mut report = Report {
        checks: results,
        signer,
        ..Report::default()
    };
    report.resummarise();
    report
}

/// A log signature and the live findings that name the same cause.
const LOG_DUPLICATES: &[(&str, &[&str])] = &[
    (
        "logs.kms-access-denied",
        &["kms.access-denied", "kms.role-lacks-decrypt"],
    ),
    ("logs.kms-unreachable", &["kms.unreachable"]),
    ("logs.nsm-init-failed", &["nsm.init-failed"]),
];

/// One cause, one finding: a log signature whose cause a live check already reports is merged
/// into that finding (its line count and last line become evidence there), so one denial is
/// not counted twice at two severities with two different fixes.
pub fn merge_log_signatures(results: &mut [CheckResult]) {
    for (log_code, live_codes) in LOG_DUPLICATES {
        let Some((ci, fi)) = results.iter().enumerate().find_map(|(ci, c)| {
            c.findings
                .iter()
                .position(|f| f.code == *log_code)
                .map(|fi| (ci, fi))
        }) else {
            continue;
        };
        let Some((li, lf)) = results.iter().enumerate().find_map(|(li, c)| {
            c.findings
                .iter()
                .position(|f| live_codes.contains(&f.code.as_str()))
                .map(|lf| (li, lf))
        }) else {
            continue;
        };
        let log = results[ci].findings.remove(fi);
        let live = &mut results[li].findings[lf];
        live.evidence.insert(
            "log_lines".into(),
            log.evidence.get("lines").cloned().unwrap_or_default(),
        );
        if let Some(last) = log.evidence.get("last") {
            live.evidence.insert("log_last".into(), last.clone());
        }
        let live_code = live.code.clone();
        let c = &mut results[ci];
        if c.status == CheckStatus::Findings && c.findings.is_empty() {
            c.status = CheckStatus::Passed;
        }
        c.note = Some(format!(
            "its {log_code} lines are reported with {live_code} (one cause, one finding)"
        ));
    }
}

/// Every local check against `targets` (what the dashboard shows in its Doctor box).
pub async fn run_local(targets: &crate::probe::Targets, timeout: Duration) -> Report {
    let ctx = Arc::new(command::local_context(targets, timeout));
    run(checks::local(), ctx, timeout).await
}

/// The API-side report of one pod (pod spec, node, device plugin, events, log signatures).
pub fn pod_report(facts: &crate::probe::k8s::PodFacts) -> Report {
    pod::report(facts, &[])
}

/// Does `name` (from `--checks`) select `c`? Its id, its family, a prefix of its id
/// (`enclave.pod`), or a finding code (or its family) it emits.
fn selects(c: &dyn Check, name: &str) -> bool {
    let name = name.trim();
    !name.is_empty()
        && (selects_id(c.id(), name)
            || c.other_codes()
                .iter()
                .any(|code| code.starts_with(name) || code.split('.').next() == Some(name)))
}

/// Does `name` select the check `id` (its id, its family, or a prefix of its id)? The pod's
/// API-side checks and the in-pod results are selected with this too.
pub fn selects_id(id: &str, name: &str) -> bool {
    let name = name.trim();
    !name.is_empty() && (id == name || id.split('.').next() == Some(name) || id.starts_with(name))
}

/// Keep the checks `only` selects (all when empty): ids, families, id prefixes, or the family
/// of a code a check emits; a name that selects nothing is an error that lists what exists.
pub fn select(all: Vec<Arc<dyn Check>>, only: &[String]) -> Result<Vec<Arc<dyn Check>>, String> {
    if only.is_empty() {
        return Ok(all);
    }
    for name in only {
        if !all.iter().any(|c| selects(c.as_ref(), name)) {
            let mut families: Vec<&str> = all.iter().map(|c| c.family()).collect();
            families.dedup();
            families.sort_unstable();
            families.dedup();
            let ids: Vec<&str> = all.iter().map(|c| c.id()).collect();
            return Err(format!(
                "--checks: '{}' names no check (families: {}; checks: {})",
                crate::output::clean(name),
                families.join(", "),
                ids.join(", ")
            ));
        }
    }
    Ok(all
        .into_iter()
        .filter(|c| only.iter().any(|n| selects(c.as_ref(), n)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed(&'static str, Option<Severity>);
    impl Check for Fixed {
        fn id(&self) -> &'static str {
            self.0
        }
        fn description(&self) -> &'static str {
            "test"
        }
        fn run<'a>(&'a self, _: &'a Context) -> BoxFuture<'a, Vec<Finding>> {
            Box::pin(async move {
                match self.1 {
                    Some(s) => vec![Finding::new("enclave.sealed", s, self.0)],
                    None => Vec::new(),
                }
            })
        }
    }
    struct Panics;
    impl Check for Panics {
        fn id(&self) -> &'static str {
            "zz.panics"
        }
        fn description(&self) -> &'static str {
            "panics"
        }
        fn run<'a>(&'a self, _: &'a Context) -> BoxFuture<'a, Vec<Finding>> {
            Box::pin(async move { panic!("boom") })
        }
    }
    struct Hangs;
    impl Check for Hangs {
        fn id(&self) -> &'static str {
            "zz.hangs"
        }
        fn description(&self) -> &'static str {
            "hangs"
        }
        fn run<'a>(&'a self, _: &'a Context) -> BoxFuture<'a, Vec<Finding>> {
            Box::pin(async move {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                Vec::new()
            })
        }
    }

    fn ctx() -> Arc<Context> {
        Arc::new(Context {
            production: false,
            enclave_debug: None,
            nitro_cli: "nitro-cli".into(),
            api: "tcp://127.0.0.1:1".parse().unwrap(),
            metrics: "tcp://127.0.0.1:1".parse().unwrap(),
            log_listener: None,
            device: "/nonexistent".into(),
            scrape_interval: Duration::from_millis(10),
            probe_timeout: Duration::from_millis(100),
            proxy_config: None,
            log_file: None,
            holders_config: None,
            allocator: "/nonexistent".into(),
            status: tokio::sync::OnceCell::new(),
            observed: Default::default(),
        })
    }

    #[tokio::test]
    async fn a_crashing_and_a_hanging_check_do_not_stop_the_others() {
        let checks: Vec<Arc<dyn Check>> = vec![
            Arc::new(Fixed("aa.ok", None)),
            Arc::new(Panics),
            Arc::new(Hangs),
            Arc::new(Fixed("bb.bad", Some(Severity::Warn))),
        ];
        let t = Instant::now();
        let r = run(checks, ctx(), Duration::from_millis(300)).await;
        assert!(t.elapsed() < Duration::from_secs(2));
        let st: Vec<CheckStatus> = r.checks.iter().map(|c| c.status).collect();
        assert_eq!(
            st,
            [
                CheckStatus::Passed,
                CheckStatus::Crashed,
                CheckStatus::TimedOut,
                CheckStatus::Findings
            ]
        );
        assert_eq!(r.checks[1].findings[0].code, "doctor.check-crashed");
        assert!(r.checks[1].findings[0].summary.contains("boom"));
        assert_eq!(r.checks[2].findings[0].code, "doctor.check-timed-out");
        assert_eq!(
            (
                r.summary.errors,
                r.summary.warnings,
                r.summary.crashed,
                r.summary.timed_out
            ),
            (2, 1, 1, 1)
        );
        assert!(r.fails(Severity::Warn) && r.fails(Severity::Error));
    }

    #[test]
    fn selection_by_id_or_family_and_unknown_names() {
        let all: Vec<Arc<dyn Check>> = vec![
            Arc::new(Fixed("aa.ok", None)),
            Arc::new(Fixed("bb.bad", None)),
        ];
        assert_eq!(select(all.clone(), &["bb".into()]).unwrap().len(), 1);
        assert_eq!(
            select(all.clone(), &["aa.ok".into(), "bb".into()])
                .unwrap()
                .len(),
            2
        );
        // `metrics` selects the check that reports metrics.unreachable (logs.forwarding).
        let m = select(checks::local(), &["metrics".into()]).unwrap();
        assert_eq!(
            m.iter().map(|c| c.id()).collect::<Vec<_>>(),
            ["logs.forwarding"]
        );
        // A prefix of an id selects it.
        assert_eq!(select(all.clone(), &["bb.b".into()]).unwrap().len(), 1);
        let Err(e) = select(all, &["egress".into()]) else {
            panic!("accepted")
        };
        assert!(
            e.contains("'egress' names no check (families: aa, bb; checks: aa.ok, bb.bad)"),
            "{e}"
        );
    }

    /// `doctor --pod` mixes the API-side checks and the in-pod probes: each check is printed
    /// once, under its family printed once (issue 13 #8: 45 rows for 17 checks).
    #[test]
    fn interleaved_families_print_each_check_once() {
        let mut r = Report {
            checks: vec![
                CheckResult::of("enclave.pod-phase", "a", Vec::new()),
                CheckResult::of("nsm.device-request", "b", Vec::new()),
                CheckResult::of(
                    "enclave.nitro-cli",
                    "c",
                    vec![Finding::new("enclave.not-running", Severity::Error, "x")],
                ),
                CheckResult::of("nsm.device", "d", Vec::new()),
            ],
            ..Report::default()
        };
        r.resummarise();
        let h = render::human(&r, render::Style { color: false });
        assert_eq!(h.matches("enclave.pod-phase").count(), 1, "{h}");
        // Once in the problems (with its `ccctl explain` there), once in the verdict line.
        assert!(h.starts_with("DOWN — enclave.not-running: x"), "{h}");
        assert_eq!(h.matches("enclave.not-running").count(), 3, "{h}");
        assert_eq!(
            h.matches("ccctl explain enclave.not-running").count(),
            1,
            "{h}"
        );
        assert_eq!(h.lines().filter(|l| *l == "enclave").count(), 1, "{h}");
        let x = render::junit(&r);
        assert_eq!(x.matches("<testsuite name=\"enclave\"").count(), 1, "{x}");
        assert_eq!(x.matches("name=\"enclave.pod-phase\"").count(), 1, "{x}");
    }

    #[test]
    fn renderings() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let r = rt.block_on(run(
            vec![Arc::new(Fixed("bb.bad", Some(Severity::Error)))],
            ctx(),
            Duration::from_secs(1),
        ));
        let plain = render::human(&r, render::Style { color: false });
        assert!(plain.contains("1. [✗] error enclave.sealed"), "{plain}");
        assert!(plain.contains("runbook: runbooks/enclave.md#enclave-sealed"));
        assert!(!plain.contains('\x1b'));
        assert!(render::human(&r, render::Style { color: true }).contains("\x1b[31;1m"));
        let x = render::junit(&r);
        assert!(
            x.contains("<testsuite name=\"bb\" tests=\"1\" failures=\"1\">"),
            "{x}"
        );
        assert!(x.contains("<failure type=\"enclave.sealed\""));
        assert_eq!(render::clean("a\x1b[31mb\rc\x07"), "c\u{fffd}");
    }
}
