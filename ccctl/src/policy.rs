//! `ccctl policy check`: would each key holder's KMS key release its share to this enclave?
//!
//! Policies come from files (offline) or live from KMS (`GetKeyPolicy` with
//! `PolicyName=default`, `DescribeKey` for the key state), all holders concurrently. The
//! decision and the lints are `cc_proto::policy`'s, the same evaluator the demo's local KMS
//! enforces.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use cc_proto::findings::{Finding, Severity};
use cc_proto::policy::{
    GrantConstraints, GrantRecord, IamPolicies, Measurements, NamedPolicy, Policy, RequestContext,
    Verdict, analyse_with,
};
use serde::Serialize;

use crate::output::{self, CannotRun, Format, Outcome, Render, Style};
pub use crate::probe::policy::{Source, fetch_text, sources};

#[derive(Debug, clap::Subcommand)]
pub enum PolicyCommand {
    /// Evaluate kms:Decrypt with attestation for every holder's key policy, with findings.
    Check(PolicyCheckArgs),
}

#[derive(Debug, clap::Args)]
pub struct PolicyCheckArgs {
    /// Holders, principal and threshold ([[holder]] name, key_arn, region, profile?, endpoint?).
    #[arg(long, value_name = "FILE", env = "CCCTL_CONFIG")]
    pub config: Option<PathBuf>,
    /// A holder's policy from a file, offline (repeatable; replaces that holder's live policy).
    #[arg(long = "policy-file", value_name = "NAME=PATH")]
    pub policy_files: Vec<String>,
    /// PCR0 to check (96 hex digits).
    #[arg(long, value_name = "HEX")]
    pub pcr0: Option<String>,
    /// PCR8 to check (96 hex digits).
    #[arg(long, value_name = "HEX")]
    pub pcr8: Option<String>,
    /// Take PCR0/1/2/8 from this EIF.
    #[arg(long, value_name = "FILE")]
    pub eif: Option<PathBuf>,
    /// Take the PCRs from this attestation document (not verified here: see `ccctl attest
    /// verify`), or from a fresh one the enclave API at this address gives (`tcp://HOST:PORT`,
    /// `http://…`, `unix:///path`).
    #[arg(long, value_name = "FILE|ADDR")]
    pub attestation: Option<PathBuf>,
    /// Take the PCRs from a fresh attestation document of this pod's enclave, through the
    /// Kubernetes API server's pod proxy (its port named `api`, else 9000; RBAC `pods/proxy`
    /// get), as `ccctl attest fetch --pod` does.
    #[arg(long, value_name = "NAME", conflicts_with = "attestation")]
    pub pod: Option<String>,
    /// The pod's namespace (default: the context's, else `default`).
    #[arg(short = 'n', long, value_name = "NAMESPACE", requires = "pod")]
    pub namespace: Option<String>,
    /// kubeconfig context to use.
    #[arg(long, value_name = "CONTEXT", requires = "pod")]
    pub context: Option<String>,
    /// A holder's key ARN (repeatable; for --policy-file holders: a statement's Resource and the
    /// cross-account rule are judged with it).
    #[arg(long = "key-arn", value_name = "NAME=ARN")]
    pub key_arns: Vec<String>,
    /// One of the role's identity-based policies (inline or attached managed), as a JSON file
    /// (repeatable). Given, the IAM side is judged; otherwise it is assumed to allow.
    #[arg(long = "identity-policy", value_name = "FILE")]
    pub identity_policies: Vec<PathBuf>,
    /// The role's permissions boundary, as a JSON file (with --identity-policy).
    #[arg(long, value_name = "FILE", requires = "identity_policies")]
    pub permissions_boundary: Option<PathBuf>,
    /// The enclave's role (default: the config's `principal`).
    #[arg(long, value_name = "ARN")]
    pub principal: Option<String>,
    /// Shares needed (default: the config's `threshold`, else 2).
    #[arg(long, value_name = "M")]
    pub threshold: Option<u32>,
    /// Deadline for each holder's KMS calls.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = cc_proto::parse_duration)]
    pub timeout: Duration,
}

pub fn run(cmd: PolicyCommand, fmt: Format) -> Result<Outcome, CannotRun> {
    let PolicyCommand::Check(a) = cmd;
    let input = input_from_args(&a)?;
    let rt = output::runtime()?;
    let r = rt.block_on(check(input));
    output::render(&r, fmt)?;
    if r.unreadable() {
        return Err(CannotRun::new(
            "some holders' policies could not be read (see above)",
        ));
    }
    Ok(Outcome::clean_if(
        r.release_possible && r.worst() != Some(Severity::Error),
    ))
}

#[derive(Debug, Clone, Serialize)]
pub struct HolderReport {
    pub name: String,
    /// `file:PATH` or `kms:ARN`.
    pub source: String,
    /// `None` when the policy could not be read; `false` also when the answer depends on
    /// something ccctl cannot know (see `verdict`).
    pub decrypt_allowed: Option<bool>,
    /// `allowed`, `allowed_if_iam_allows` (the key policy allows; the role's IAM policies decide
    /// too and were not checked), `denied` or `depends_on` (KMS's answer depends on
    /// `depends_on`'s keys).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verdict: Option<String>,
    /// Why not, in words (the first is the verdict's).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
    /// The condition keys (or `(key ARN)`) the answer depends on.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<String>,
    /// Allowed by the key policy, but the IAM side decides too and was assumed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub iam_assumed: bool,
    pub allowed: BTreeMap<String, Vec<String>>,
    /// Per measured PCR: is its value among the values this holder's Allow statements admit
    /// (`None`: the policy could not be read)? The dashboard's ✓/✗ shows exactly this.
    pub measured_admitted: BTreeMap<String, Option<bool>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_state: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub findings: Vec<Finding>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub measurements: BTreeMap<String, String>,
    pub principal: String,
    pub threshold: u32,
    pub holders: Vec<HolderReport>,
    pub holders_releasing: usize,
    pub release_possible: bool,
    pub findings: Vec<Finding>,
}

impl Report {
    pub fn worst(&self) -> Option<Severity> {
        self.findings
            .iter()
            .chain(self.holders.iter().flat_map(|h| h.findings.iter()))
            .map(|f| f.severity)
            .max()
    }

    pub fn unreadable(&self) -> bool {
        self.holders.iter().any(|h| h.error.is_some())
    }
}

pub struct Input {
    pub holders: Vec<(String, Source)>,
    /// Each holder's key ARN where known (live holders carry theirs): a statement's `Resource`
    /// and the cross-account rule are judged with it.
    pub key_arns: BTreeMap<String, String>,
    pub principal: String,
    pub threshold: u32,
    pub measurements: Measurements,
    /// PCR8 is known: measured (an attestation, an EIF — where none means unsigned) or given
    /// (`--pcr8`). `false` when only `--pcr0` was given: a policy that requires PCR8 cannot be
    /// judged, which is not "the image is unsigned".
    pub pcr8_known: bool,
    /// The principal's IAM side.
    pub iam: IamSide,
    pub timeout: Duration,
}

/// Where the principal's identity-based policies come from.
#[derive(Debug, Clone, Default)]
pub enum IamSide {
    /// Not given: assumed to allow (said as `policy.identity-not-checked`).
    #[default]
    Assumed,
    /// Policy files (`--identity-policy`, `[iam] identity_policies`) and an optional boundary.
    Files {
        identity: Vec<PathBuf>,
        boundary: Option<PathBuf>,
    },
    /// Read live through IAM (`[iam] live = true`).
    Live(cc_proto::holders::Iam),
}

impl IamSide {
    pub fn from_config(iam: Option<&cc_proto::holders::Iam>) -> IamSide {
        match iam {
            Some(i) if i.live => IamSide::Live(i.clone()),
            Some(i) if !i.identity_policies.is_empty() || i.permissions_boundary.is_some() => {
                IamSide::Files {
                    identity: i.identity_policies.clone(),
                    boundary: i.permissions_boundary.clone(),
                }
            }
            _ => IamSide::Assumed,
        }
    }
}

impl Input {
    /// Every holder of a config (its `policy_file`, else live), its key ARNs and IAM side.
    pub fn from_config(
        cfg: &crate::config::Config,
        principal: String,
        threshold: u32,
        measurements: Measurements,
        timeout: Duration,
    ) -> Input {
        Input {
            holders: sources(cfg),
            key_arns: cfg
                .holders
                .iter()
                .map(|h| (h.name.clone(), h.key_arn.clone()))
                .collect(),
            principal,
            threshold,
            measurements,
            pcr8_known: true,
            iam: IamSide::from_config(cfg.iam.as_ref()),
            timeout,
        }
    }
}

/// The principal's IAM side as the evaluator takes it, or why it could not be read.
async fn iam_policies(input: &Input) -> Result<IamPolicies, String> {
    let parse = |name: String, text: &str| {
        Policy::parse_identity(text)
            .map(|policy| NamedPolicy {
                name: name.clone(),
                policy,
            })
            .map_err(|e| format!("identity policy {name}: {e}"))
    };
    let read = |p: &PathBuf| {
        std::fs::read_to_string(p).map_err(|e| format!("cannot read '{}': {e}", p.display()))
    };
    match &input.iam {
        IamSide::Assumed => Ok(IamPolicies::assumed()),
        IamSide::Files { identity, boundary } => {
            let mut v = Vec::new();
            for p in identity {
                v.push(parse(format!("file:{}", p.display()), &read(p)?)?);
            }
            let mut iam = IamPolicies::checked(v);
            if let Some(b) = boundary {
                iam = iam.with_boundary(parse(format!("file:{}", b.display()), &read(b)?)?);
            }
            Ok(iam)
        }
        IamSide::Live(cfg) => {
            let r = crate::probe::iam::role_policies(&input.principal, cfg, input.timeout).await?;
            let mut v = Vec::new();
            for d in r.identity {
                v.push(parse(d.name, &d.text)?);
            }
            let mut iam = IamPolicies::checked(v);
            if let Some(b) = r.boundary {
                iam = iam.with_boundary(parse(b.name, &b.text)?);
            }
            Ok(iam)
        }
    }
}

/// `holder 'NAME': ` in front of a finding's summary that does not name the holder yet.
fn for_holder(f: Finding, name: &str) -> Finding {
    let mut f = f.with("holder", name.to_owned());
    if !f.summary.contains(&format!("'{name}'")) {
        f.summary = format!("holder '{name}': {}", f.summary);
    }
    f
}

pub async fn check(input: Input) -> Report {
    let mut tasks = tokio::task::JoinSet::new();
    for (i, (name, source)) in input.holders.iter().cloned().enumerate() {
        let timeout = input.timeout;
        tasks.spawn(async move {
            let grants = match &source {
                Source::Live(h) => Some(crate::probe::iam::grants(h, timeout).await),
                Source::File(_) => None,
            };
            (
                i,
                name.clone(),
                source.clone(),
                (crate::probe::policy::fetch(&source, timeout).await, grants),
            )
        });
    }
    let iam = iam_policies(&input).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default();
    let mut fetched = Vec::new();
    while let Some(Ok(r)) = tasks.join_next().await {
        fetched.push(r);
    }
    fetched.sort_by_key(|(i, ..)| *i);
    let mut holders = Vec::new();
    for (_, name, source, (result, grants)) in fetched {
        let source_label = match &source {
            Source::File(p) => format!("file:{}", p.display()),
            Source::Live(h) => format!("kms:{}", h.key_arn),
        };
        let mut report = HolderReport {
            name: name.clone(),
            source: source_label,
            decrypt_allowed: None,
            verdict: None,
            reasons: Vec::new(),
            depends_on: Vec::new(),
            iam_assumed: false,
            allowed: BTreeMap::new(),
            measured_admitted: input
                .measurements
                .pcrs
                .keys()
                .map(|k| (format!("PCR{k}"), None))
                .collect(),
            key_state: None,
            error: None,
            findings: Vec::new(),
        };
        match result.and_then(|(text, state)| {
            Policy::parse(&text)
                .map(|p| (p, state))
                .map_err(|e| format!("holder '{name}': {e}"))
        }) {
            Err(e) => report.error = Some(e),
            Ok((policy, state)) => {
                let key_arn = match &source {
                    Source::Live(h) => Some(h.key_arn.clone()),
                    Source::File(_) => input.key_arns.get(&name).cloned(),
                };
                let mut ctx = RequestContext::decrypt(&input.principal)
                    .attested(input.measurements.clone())
                    .encryption_context(cc_proto::shares::encryption_context_map(&name))
                    .current_time(now);
                if let Some(k) = &key_arn {
                    ctx = ctx.key(k);
                }
                let mut grant_records = Vec::new();
                match &grants {
                    Some(Ok(gs)) => grant_records.extend(gs.iter().map(|g| GrantRecord {
                        grant_id: g.grant_id.clone(),
                        grantee_principal: g.grantee_principal.clone(),
                        operations: g.operations.clone(),
                        constraints: Some(GrantConstraints {
                            encryption_context_equals: (!g.encryption_context_equals.is_empty())
                                .then(|| g.encryption_context_equals.clone()),
                            encryption_context_subset: (!g.encryption_context_subset.is_empty())
                                .then(|| g.encryption_context_subset.clone()),
                        }),
                    })),
                    Some(Err(e)) => report.findings.push(
                        Finding::new(
                            "policy.grants-unreadable",
                            Severity::Warn,
                            format!("holder '{name}': its key's grants could not be listed, so a grant that bypasses attestation would go unseen: {e}"),
                        )
                        .fix("Give the holder's profile kms:ListGrants on the key", &[]),
                    ),
                    None => {}
                }
                let iam_policies = match &iam {
                    Ok(p) => p.clone(),
                    Err(_) => IamPolicies::assumed(),
                };
                let a = analyse_with(&policy, &ctx, &iam_policies, &grant_records);
                let mut allowed_now = a.decision.allowed;
                report.iam_assumed =
                    a.decision.allowed && a.decision.iam_decides && !a.decision.identity_checked;
                report.verdict = Some(match &a.decision.verdict {
                    // The key policy allows, but the role's own IAM policies decide too and were
                    // not looked at: not a plain "releases".
                    Verdict::Allowed if report.iam_assumed => "allowed_if_iam_allows".into(),
                    Verdict::Allowed => "allowed".into(),
                    Verdict::Denied { .. } => "denied".into(),
                    Verdict::DependsOn { .. } => "depends_on".into(),
                });
                report.reasons = a.decision.reasons.iter().map(|r| r.sentence()).collect();
                report.depends_on = a.decision.depends_on.clone();
                report.allowed = a
                    .allowed
                    .iter()
                    .map(|(k, v)| (format!("PCR{k}"), v.iter().cloned().collect()))
                    .collect();
                for (k, v) in &input.measurements.pcrs {
                    let admitted = a.allowed.get(k).is_none_or(|vals| {
                        vals.is_empty() || vals.iter().any(|x| x.eq_ignore_ascii_case(v))
                    });
                    report
                        .measured_admitted
                        .insert(format!("PCR{k}"), Some(admitted));
                }
                report
                    .findings
                    .extend(a.findings.into_iter().map(|f| for_holder(f, &name)));
                // Only --pcr0 given and this policy requires PCR8: not judged, not "unsigned".
                let needs_pcr8 = a.allowed.get(&8).is_some_and(|v| !v.is_empty());
                if !input.pcr8_known && needs_pcr8 && !allowed_now {
                    report.findings.retain(|f| f.code != "policy.pcr8-unsigned");
                    report.findings.push(
                        Finding::new(
                            "policy.pcr8-not-given",
                            Severity::Warn,
                            format!("holder '{name}': its policy requires PCR8, which was not given (--pcr8): whether it releases is unknown"),
                        )
                        .with("holder", name.clone())
                        .fix("Give the running PCR8 too (--pcr8), or measure the image (--eif, --attestation)", &[]),
                    );
                    report.verdict = Some("unknown".into());
                    report.reasons = vec!["PCR8 was not given".into()];
                    report.measured_admitted.insert("PCR8".into(), None);
                    report.key_state = state;
                    report.decrypt_allowed = None;
                    holders.push(report);
                    continue;
                }
                if let Some(s) = &state
                    && s != "Enabled"
                {
                    allowed_now = false;
                    report.findings.push(
                        Finding::new(
                            "policy.key-state",
                            Severity::Error,
                            format!("holder '{name}': the key is {s}, not Enabled; KMS refuses every Decrypt"),
                        )
                        .with("holder", name.clone())
                        .with("key_state", s.clone())
                        .fix("Ask the holder to re-enable the key (or cancel its deletion)", &["aws kms enable-key --key-id ARN"]),
                    );
                }
                report.key_state = state;
                report.decrypt_allowed = Some(allowed_now);
            }
        }
        holders.push(report);
    }

    let releasing = holders
        .iter()
        .filter(|h| h.decrypt_allowed == Some(true))
        .count();
    let mut findings = Vec::new();
    if let Err(e) = &iam {
        findings.push(
            Finding::new(
                "policy.identity-unreadable",
                Severity::Error,
                format!("the principal's identity-based policies could not be read, so the IAM side was assumed: {e}"),
            )
            .with("principal", input.principal.clone())
            .fix("Check the [iam] profile's iam:GetRole / iam:List*RolePolicies / iam:GetPolicyVersion permissions, or give the policies as files", &[]),
        );
    }
    let readable: Vec<&HolderReport> = holders.iter().filter(|h| h.error.is_none()).collect();
    for pcr in ["PCR0", "PCR8"] {
        let sets: BTreeSet<Vec<String>> = readable
            .iter()
            .map(|h| h.allowed.get(pcr).cloned().unwrap_or_default())
            .collect();
        if sets.len() > 1 {
            findings.push(
                Finding::new(
                    "policy.holder-disagreement",
                    Severity::Warn,
                    format!("the holders allow different {pcr} sets (a rotation in progress, or a stale holder)"),
                )
                .with("pcr", pcr)
                .with(
                    "holders",
                    serde_json::Value::Object(
                        readable
                            .iter()
                            .map(|h| {
                                (
                                    h.name.clone(),
                                    serde_json::json!(h.allowed.get(pcr).cloned().unwrap_or_default()),
                                )
                            })
                            .collect(),
                    ),
                ),
            );
        }
    }
    let release_possible = releasing >= input.threshold as usize;
    let unknown = holders
        .iter()
        .filter(|h| h.verdict.as_deref() == Some("unknown"))
        .count();
    if !release_possible && releasing + unknown >= input.threshold as usize {
        findings.push(
            Finding::new(
                "policy.release-unknown",
                Severity::Warn,
                format!(
                    "{releasing} of {} holders release for certain and {unknown} cannot be judged (PCR8 not given); the threshold is {}: whether the enclave can unseal is unknown",
                    holders.len(),
                    input.threshold
                ),
            )
            .with("holders_releasing", releasing)
            .with("threshold", input.threshold)
            .fix("Give the running PCR8 too (--pcr8), or measure the image (--eif, --attestation)", &[]),
        );
    } else if !release_possible {
        let missing: Vec<String> = holders
            .iter()
            .filter(|h| h.decrypt_allowed != Some(true))
            .map(|h| h.name.clone())
            .collect();
        findings.push(
            Finding::new(
                "policy.threshold-unmet",
                Severity::Error,
                format!(
                    "{releasing} of {} holders would release their share; the threshold is {}: the enclave cannot unseal (not releasing: {})",
                    holders.len(),
                    input.threshold,
                    missing.join(", ")
                ),
            )
            .with("holders_releasing", releasing)
            .with("threshold", input.threshold)
            .with("not_releasing", missing.clone())
            .fix(format!("Fix the holders not releasing ({}): see their findings", missing.join(", ")), &[]),
        );
    }
    Report {
        measurements: input
            .measurements
            .pcrs
            .iter()
            .map(|(k, v)| (format!("PCR{k}"), v.clone()))
            .collect(),
        principal: input.principal,
        threshold: input.threshold,
        holders,
        holders_releasing: releasing,
        release_possible,
        findings,
    }
}

fn sev(s: Severity) -> &'static str {
    match s {
        Severity::Error => "ERROR",
        Severity::Warn => "WARN ",
        Severity::Info => "INFO ",
    }
}

impl Render for Report {
    fn human(&self, _: Style) -> String {
        human(self)
    }
}

pub fn human(r: &Report) -> String {
    crate::output::clean(&human_raw(r))
}

fn human_raw(r: &Report) -> String {
    let mut s = String::new();
    for (k, v) in &r.measurements {
        s += &format!("{k:<6} {v}\n");
    }
    s += &format!("principal {}\n\n", r.principal);
    for h in &r.holders {
        let verdict = match (h.decrypt_allowed, &h.error, h.verdict.as_deref()) {
            (_, Some(e), _) => format!("UNREADABLE: {e}"),
            (Some(true), _, _) if h.iam_assumed => "releases only if the role's own IAM policies \
                 allow it (NOT checked: see policy.identity-not-checked)"
                .into(),
            (Some(true), _, _) => "releases".into(),
            (_, _, Some("unknown")) => {
                "UNKNOWN: its policy requires PCR8, which was not given".into()
            }
            (_, _, Some("depends_on")) => {
                format!(
                    "DEPENDS on {} (not known to ccctl)",
                    h.depends_on.join(", ")
                )
            }
            _ => match h.reasons.first() {
                Some(why) => format!("does NOT release: {why}"),
                None => "does NOT release".into(),
            },
        };
        s += &format!("holder {:<16} {verdict}   ({})\n", h.name, h.source);
        for f in &h.findings {
            s += &format!("  {} {}  {}\n", sev(f.severity), f.code, f.summary);
            if !f.remediation.text.is_empty() {
                s += &format!("        fix: {}\n", f.remediation.text);
            }
        }
    }
    s += &format!(
        "\n{} of {} holders release; threshold {}: {}\n",
        r.holders_releasing,
        r.holders.len(),
        r.threshold,
        if r.release_possible {
            "the enclave can unseal"
        } else if r
            .findings
            .iter()
            .any(|f| f.code == "policy.release-unknown")
        {
            "UNKNOWN whether the enclave can unseal (PCR8 not given)"
        } else {
            "the enclave CANNOT unseal"
        }
    );
    for f in &r.findings {
        s += &format!("{} {}  {}\n", sev(f.severity), f.code, f.summary);
    }
    s += "(not modelled: service control policies, resource control policies, VPC endpoint \
          policies, session policies)\n";
    s
}

fn pcr_arg(flag: &str, v: &str) -> Result<cc_proto::pcr::Pcr, CannotRun> {
    cc_proto::pcr::Pcr::parse(v.trim())
        .map_err(|e| CannotRun::new(format!("{flag} '{}': {e}", v.trim())))
}

/// The evaluator's view of a measurement set (lowercase hex by register).
pub fn measurements(pcrs: &cc_proto::pcr::PcrSet) -> Measurements {
    Measurements {
        pcrs: pcrs.iter().map(|(i, p)| (i, p.hex())).collect(),
    }
}

/// Resolve arguments, config and measurement sources into one [`Input`].
pub fn input_from_args(a: &PolicyCheckArgs) -> Result<Input, CannotRun> {
    let cfg = match &a.config {
        Some(p) => crate::config::Config::load(p).map_err(CannotRun::new)?,
        None => crate::config::Config::default(),
    };
    let mut pcrs = cc_proto::pcr::PcrSet::new();
    if let Some(p) = &a.eif {
        let d = crate::eif::describe_file(p)?;
        pcrs.0.extend(d.info.measurements.pcr_set().0);
    }
    if let Some(p) = &a.attestation {
        let text = p.to_string_lossy();
        let bytes = if ["tcp://", "http://", "https://", "unix://"]
            .iter()
            .any(|s| text.starts_with(s))
        {
            crate::attest::fetch_document(&text, a.timeout)?.0
        } else {
            std::fs::read(p)
                .map_err(|e| CannotRun::new(format!("cannot read '{}': {e}", p.display())))?
        };
        let doc = crate::attest::load(&bytes)?;
        pcrs.0
            .extend(cc_proto::pcr::PcrSet::from_registers(&doc.doc.pcrs).0);
    }
    if let Some(pod) = &a.pod {
        let (bytes, _) =
            crate::attest::fetch_from_pod(pod, a.namespace.clone(), a.context.clone(), a.timeout)?;
        let doc = crate::attest::load(&bytes)?;
        pcrs.0
            .extend(cc_proto::pcr::PcrSet::from_registers(&doc.doc.pcrs).0);
    }
    if let Some(v) = &a.pcr0 {
        pcrs.set(0, pcr_arg("--pcr0", v)?);
    }
    if let Some(v) = &a.pcr8 {
        pcrs.set(8, pcr_arg("--pcr8", v)?);
    }
    if pcrs.get(0).is_none() {
        return Err(CannotRun::new(
            "no measurements: give --pcr0 (and --pcr8), --eif, --attestation or --pod",
        ));
    }
    let principal = a
        .principal
        .clone()
        .or(cfg.principal.clone())
        .ok_or_else(|| {
            CannotRun::new("no principal: give --principal ARN or 'principal' in the config")
        })?;
    let threshold = a.threshold.or(cfg.threshold).unwrap_or(2);
    let mut holders: Vec<(String, Source)> = Vec::new();
    for spec in &a.policy_files {
        let (name, path) = spec
            .split_once('=')
            .ok_or_else(|| CannotRun::new(format!("--policy-file '{spec}': expected NAME=PATH")))?;
        holders.push((name.to_owned(), Source::File(PathBuf::from(path))));
    }
    for (name, source) in sources(&cfg) {
        if !holders.iter().any(|(n, _)| *n == name) {
            holders.push((name, source));
        }
    }
    let mut key_arns: BTreeMap<String, String> = cfg
        .holders
        .iter()
        .map(|h| (h.name.clone(), h.key_arn.clone()))
        .collect();
    for spec in &a.key_arns {
        let (name, arn) = spec
            .split_once('=')
            .filter(|(_, arn)| arn.starts_with("arn:"))
            .ok_or_else(|| {
                CannotRun::new(format!(
                    "--key-arn '{spec}': expected NAME=arn:aws:kms:REGION:ACCOUNT:key/ID"
                ))
            })?;
        if !holders.iter().any(|(n, _)| n == name) {
            return Err(CannotRun::new(format!(
                "--key-arn '{spec}': no holder named '{name}' (give --policy-file {name}=PATH or a config holder)"
            )));
        }
        key_arns.insert(name.to_owned(), arn.to_owned());
    }
    let iam = if a.identity_policies.is_empty() {
        IamSide::from_config(cfg.iam.as_ref())
    } else {
        IamSide::Files {
            identity: a.identity_policies.clone(),
            boundary: a.permissions_boundary.clone(),
        }
    };
    if holders.is_empty() {
        return Err(CannotRun::new(
            "no holders: give --policy-file NAME=PATH or a --config with [[holder]] entries",
        ));
    }
    if threshold == 0 || threshold as usize > holders.len() {
        return Err(CannotRun::new(format!(
            "threshold {threshold} does not fit {} holders",
            holders.len()
        )));
    }
    Ok(Input {
        holders,
        key_arns,
        principal,
        threshold,
        measurements: measurements(&pcrs),
        pcr8_known: a.pcr8.is_some()
            || a.eif.is_some()
            || a.attestation.is_some()
            || a.pod.is_some(),
        iam,
        timeout: a.timeout,
    })
}

/// The policy report for what the enclave attests (its `/status`), per `ccctl.toml` at
/// `path`; `Err` is the finding that says why there is none. Doctor's pcr family and the
/// dashboard both judge through this.
pub async fn report_for_status(
    path: &std::path::Path,
    status: &cc_proto::status::Status,
    timeout: Duration,
) -> Result<Report, Finding> {
    let Some(att) = &status.attestation else {
        return Err(Finding::new(
            "pcr.no-attestation",
            Severity::Warn,
            "the enclave has not attested yet: its measurements are unknown",
        ));
    };
    // /status omits all-zero PCRs: a missing PCR0 is the debug value.
    report_for_measurements(path, &att.pcr_set(), Some(status.threshold), timeout).await
}

/// The same for measurements read elsewhere (Prometheus' `containment_enclave_measurement_info`):
/// the config's threshold, else the enclave's (`threshold`), else 2 (as `policy check`).
pub async fn report_for_measurements(
    path: &std::path::Path,
    pcrs: &cc_proto::pcr::PcrSet,
    threshold: Option<u32>,
    timeout: Duration,
) -> Result<Report, Finding> {
    let cfg = crate::config::Config::load(path)
        .map_err(|e| Finding::new("pcr.config-unreadable", Severity::Error, e))?;
    let Some(principal) = cfg.principal.clone() else {
        return Err(Finding::new(
            "pcr.config-unreadable",
            Severity::Error,
            format!(
                "'{}' has no 'principal' (the enclave's role)",
                path.display()
            ),
        ));
    };
    Ok(check(Input::from_config(
        &cfg,
        principal,
        cfg.threshold.or(threshold).unwrap_or(2),
        measurements(pcrs),
        timeout,
    ))
    .await)
}
