//! The pcr family: do the running measurements (what the enclave attests, from `/status`)
//! satisfy the key holders' policies — enough holders to reach the threshold, holders in
//! agreement? Uses `ccctl policy check`'s evaluator on the holders of `--config`.

use cc_proto::findings::{Finding, Severity};

use super::{BoxFuture, Check, Context};

pub struct PcrPolicies;

impl Check for PcrPolicies {
    fn id(&self) -> &'static str {
        "pcr.policies"
    }
    fn description(&self) -> &'static str {
        "with --config: the attested PCR0/PCR8 against every holder's key policy"
    }
    fn skipped(&self, ctx: &Context) -> Option<String> {
        ctx.holders_config.is_none().then(|| {
            "no --config (CCCTL_CONFIG): the holders' key policies were not judged".to_owned()
        })
    }
    fn needs_status(&self) -> bool {
        true
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
            let report =
                match crate::policy::report_for_status(path, &status, ctx.probe_timeout).await {
                    Ok(r) => r,
                    Err(f) => return vec![f],
                };
            ctx.saw(
                "pcr.policies",
                format!(
                    "{} of {} release the attested measurements; threshold {}",
                    report.holders_releasing,
                    crate::output::plural(report.holders.len(), "holder", "holders"),
                    report.threshold
                ),
            );
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
