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
use cc_proto::policy::{Measurements, Policy, analyse};
use serde::Serialize;

use crate::config::Holder;

/// Where a holder's policy comes from.
#[derive(Debug, Clone)]
pub enum Source {
    File(PathBuf),
    Live(Holder),
}

#[derive(Debug, Clone, Serialize)]
pub struct HolderReport {
    pub name: String,
    /// `file:PATH` or `kms:ARN`.
    pub source: String,
    /// `None` when the policy could not be read.
    pub decrypt_allowed: Option<bool>,
    pub allowed: BTreeMap<String, Vec<String>>,
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

/// Read one holder's policy text and key state.
async fn fetch(source: &Source, timeout: Duration) -> Result<(String, Option<String>), String> {
    match source {
        Source::File(p) => std::fs::read_to_string(p)
            .map(|t| (t, None))
            .map_err(|e| format!("cannot read '{}': {e}", p.display())),
        Source::Live(h) => {
            let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
                .region(aws_config::Region::new(h.region.clone()))
                .timeout_config(
                    aws_config::timeout::TimeoutConfig::builder()
                        .operation_timeout(timeout)
                        .build(),
                );
            if let Some(p) = &h.profile {
                loader = loader.profile_name(p);
            }
            let sdk = loader.load().await;
            let mut b = aws_sdk_kms::config::Builder::from(&sdk);
            if let Some(ep) = &h.endpoint {
                b = b.endpoint_url(ep);
            }
            let client = aws_sdk_kms::Client::from_conf(b.build());
            let (policy, key) = tokio::join!(
                client
                    .get_key_policy()
                    .key_id(&h.key_arn)
                    .policy_name("default")
                    .send(),
                client.describe_key().key_id(&h.key_arn).send()
            );
            let err = |e: String| format!("holder '{}' ({}): {e}", h.name, h.key_arn);
            let policy = policy.map_err(|e| {
                err(format!(
                    "GetKeyPolicy failed: {}",
                    aws_sdk_kms::error::DisplayErrorContext(&e)
                ))
            })?;
            let text = policy
                .policy
                .ok_or_else(|| err("GetKeyPolicy returned no policy".into()))?;
            let state = key
                .ok()
                .and_then(|k| k.key_metadata)
                .and_then(|m| m.key_state)
                .map(|s| s.as_str().to_owned());
            Ok((text, state))
        }
    }
}

/// Where each holder of a config's policy is read: its `policy_file`, else live from KMS.
pub fn sources(cfg: &crate::config::Config) -> Vec<(String, Source)> {
    cfg.holders
        .iter()
        .map(|h| {
            let source = match &h.policy_file {
                Some(p) => Source::File(p.clone()),
                None => Source::Live(h.clone()),
            };
            (h.name.clone(), source)
        })
        .collect()
}

/// One holder's current policy text, read live from KMS.
pub async fn fetch_text(h: &Holder, timeout: Duration) -> Result<String, String> {
    fetch(&Source::Live(h.clone()), timeout)
        .await
        .map(|(t, _)| t)
}

pub struct Input {
    pub holders: Vec<(String, Source)>,
    pub principal: String,
    pub threshold: u32,
    pub measurements: Measurements,
    pub timeout: Duration,
}

pub async fn check(input: Input) -> Report {
    let mut tasks = tokio::task::JoinSet::new();
    for (i, (name, source)) in input.holders.iter().cloned().enumerate() {
        let timeout = input.timeout;
        tasks.spawn(async move {
            (
                i,
                name.clone(),
                source.clone(),
                fetch(&source, timeout).await,
            )
        });
    }
    let mut fetched = Vec::new();
    while let Some(Ok(r)) = tasks.join_next().await {
        fetched.push(r);
    }
    fetched.sort_by_key(|(i, ..)| *i);
    let mut holders = Vec::new();
    for (_, name, source, result) in fetched {
        let source_label = match &source {
            Source::File(p) => format!("file:{}", p.display()),
            Source::Live(h) => format!("kms:{}", h.key_arn),
        };
        let mut report = HolderReport {
            name: name.clone(),
            source: source_label,
            decrypt_allowed: None,
            allowed: BTreeMap::new(),
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
                let a = analyse(&policy, &input.principal, &input.measurements);
                let mut allowed_now = a.decision.allowed;
                report.allowed = a
                    .allowed
                    .iter()
                    .map(|(k, v)| (format!("PCR{k}"), v.iter().cloned().collect()))
                    .collect();
                report.findings = a
                    .findings
                    .into_iter()
                    .map(|f| f.with("holder", name.clone()))
                    .collect();
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
    if !release_possible {
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
                    "{releasing} of {} holders would release their share; the threshold is {}: the enclave cannot unseal",
                    holders.len(),
                    input.threshold
                ),
            )
            .with("holders_releasing", releasing)
            .with("threshold", input.threshold)
            .with("not_releasing", missing)
            .fix("Fix the holders listed as not releasing (see their findings)", &[]),
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
        let verdict = match (h.decrypt_allowed, &h.error) {
            (_, Some(e)) => format!("UNREADABLE: {e}"),
            (Some(true), _) => "releases".into(),
            _ => "does NOT release".into(),
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
        } else {
            "the enclave CANNOT unseal"
        }
    );
    for f in &r.findings {
        s += &format!("{} {}  {}\n", sev(f.severity), f.code, f.summary);
    }
    s
}

fn pcr_arg(flag: &str, v: &str) -> Result<String, crate::output::CannotRun> {
    let v = v.trim().to_ascii_lowercase();
    if v.len() == 96 && v.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(v)
    } else {
        Err(crate::output::CannotRun::new(format!(
            "{flag} '{v}': expected 96 hex digits (SHA-384)"
        )))
    }
}

/// Resolve arguments, config and measurement sources into one [`Input`].
pub fn input_from_args(a: &crate::cli::PolicyCheckArgs) -> Result<Input, crate::output::CannotRun> {
    use crate::output::CannotRun;
    let cfg = match &a.config {
        Some(p) => crate::config::Config::load(p).map_err(CannotRun::new)?,
        None => crate::config::Config::default(),
    };
    let mut pcrs: BTreeMap<u8, String> = BTreeMap::new();
    if let Some(p) = &a.eif {
        let d = crate::eif::describe_file(p)?;
        let m = d.info.measurements;
        pcrs.insert(0, m.pcr0);
        pcrs.insert(1, m.pcr1);
        pcrs.insert(2, m.pcr2);
        if let Some(p8) = m.pcr8 {
            pcrs.insert(8, p8);
        }
    }
    if let Some(p) = &a.attestation {
        let bytes = std::fs::read(p)
            .map_err(|e| CannotRun::new(format!("cannot read '{}': {e}", p.display())))?;
        let doc = crate::attest::load(&bytes)?;
        for (k, v) in doc.doc.pcrs {
            if let Ok(k) = u8::try_from(k) {
                pcrs.insert(k, hex::encode(v));
            }
        }
    }
    if let Some(v) = &a.pcr0 {
        pcrs.insert(0, pcr_arg("--pcr0", v)?);
    }
    if let Some(v) = &a.pcr8 {
        pcrs.insert(8, pcr_arg("--pcr8", v)?);
    }
    if !pcrs.contains_key(&0) {
        return Err(CannotRun::new(
            "no measurements: give --pcr0 (and --pcr8), --eif or --attestation",
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
        principal,
        threshold,
        measurements: Measurements { pcrs },
        timeout: a.timeout,
    })
}
