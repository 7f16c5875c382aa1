//! The pcr family: do the running measurements (what the enclave attests, from `/status`)
//! satisfy the key holders' policies — enough holders to reach the threshold, holders in
//! agreement? Uses `ccctl policy check`'s evaluator on the holders of `--config`.

use cc_proto::findings::{Finding, Severity};

use super::{BoxFuture, Check, Context};

pub struct PcrPolicies;

/// The policy report for what the enclave attests (`/status`), per `ccctl.toml` at `path`;
/// `Err` is the finding that says why there is none.
pub async fn policy_report(
    path: &std::path::Path,
    status: &cc_proto::status::Status,
    timeout: std::time::Duration,
) -> Result<crate::policy::Report, Finding> {
    let cfg = crate::config::Config::load(path)
        .map_err(|e| Finding::new("pcr.config-unreadable", Severity::Error, e))?;
    let Some(att) = &status.attestation else {
        return Err(Finding::new(
            "pcr.no-attestation",
            Severity::Warn,
            "the enclave has not attested yet: its measurements are unknown",
        ));
    };
    let mut pcrs = std::collections::BTreeMap::new();
    for (name, value) in &att.pcrs {
        if let Some(n) = name.strip_prefix("PCR").and_then(|n| n.parse::<u8>().ok()) {
            pcrs.insert(n, value.clone());
        }
    }
    // Zero PCRs are omitted from /status: a debug enclave attests all-zero PCR0.
    pcrs.entry(0).or_insert_with(|| "0".repeat(96));
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
    Ok(crate::policy::check(crate::policy::Input {
        holders: crate::policy::sources(&cfg),
        principal,
        threshold: cfg.threshold.unwrap_or(status.threshold),
        measurements: cc_proto::policy::Measurements { pcrs },
        timeout,
    })
    .await)
}

impl Check for PcrPolicies {
    fn id(&self) -> &'static str {
        "pcr.policies"
    }
    fn description(&self) -> &'static str {
        "with --config: the attested PCR0/PCR8 against every holder's key policy"
    }
    fn run<'a>(&'a self, ctx: &'a Context) -> BoxFuture<'a, Vec<Finding>> {
        Box::pin(async move {
            let Some(path) = &ctx.holders_config else {
                return Vec::new();
            };
            let status = match super::checks::fetch_status(ctx).await {
                Ok(s) => s,
                // enclave.status reports an unreachable API.
                Err(_) => return Vec::new(),
            };
            let report = match policy_report(path, &status, ctx.probe_timeout).await {
                Ok(r) => r,
                Err(f) => return vec![f],
            };
            let mut out: Vec<Finding> = report
                .holders
                .iter()
                .flat_map(|h| h.findings.clone())
                .collect();
            for h in &report.holders {
                if let Some(e) = &h.error {
                    out.push(
                        Finding::new("pcr.policy-unreadable", Severity::Error, e.clone())
                            .with("holder", h.name.clone()),
                    );
                }
            }
            out.extend(report.findings);
            out
        })
    }
}
