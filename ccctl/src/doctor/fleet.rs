//! Fleet mode: one report per pod, one summary table.

use serde::Serialize;

use super::Report;
use super::render::{self, Style};
use crate::probe::k8s::PodFacts;

#[derive(Debug, Clone, Serialize)]
pub struct PodReport {
    pub pod: String,
    pub node: Option<String>,
    pub phase: Option<String>,
    /// What the signer said now (through the pod proxy or Prometheus); absent with
    /// `--no-live`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub live: Option<crate::doctor::live::Live>,
    pub report: Report,
}

#[derive(Debug, Clone, Serialize)]
pub struct Fleet {
    pub namespace: String,
    pub selector: String,
    pub pods: Vec<PodReport>,
    /// When no pod matched: the pods here that look like chambers and their labels.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub chamber_like: Vec<Candidate>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Candidate {
    pub pod: String,
    pub labels: std::collections::BTreeMap<String, String>,
}

impl Fleet {
    /// `inside[i]`: the in-pod probe results of pod `i` (empty when not run).
    pub fn new(
        namespace: &str,
        selector: &str,
        facts: &[PodFacts],
        inside: Vec<Report>,
        lives: Vec<crate::doctor::live::Live>,
        only: &[String],
    ) -> Fleet {
        let mut inside = inside.into_iter();
        let mut lives = lives.into_iter();
        Fleet {
            namespace: namespace.to_owned(),
            selector: selector.to_owned(),
            pods: facts
                .iter()
                .map(|f| {
                    let mut report = super::pod::report(f, only);
                    let inside = inside.next().unwrap_or_default();
                    let live = lives.next();
                    // The in-pod probes' reading of the signer, else the live one.
                    report.signer = inside
                        .signer
                        .or_else(|| live.as_ref().and_then(|l| l.judged_signer()));
                    if let Some(l) = &live {
                        let c = crate::doctor::live::check(l);
                        if only.is_empty() || only.iter().any(|o| super::selects_id(&c.id, o)) {
                            report.checks.push(c);
                        }
                    }
                    report.checks.extend(inside.checks.into_iter().filter(|c| {
                        only.is_empty() || only.iter().any(|o| super::selects_id(&c.id, o))
                    }));
                    super::merge_log_signatures(&mut report.checks);
                    report.resummarise();
                    PodReport {
                        pod: f.pod.metadata.name.clone().unwrap_or_default(),
                        node: f.pod.spec.as_ref().and_then(|s| s.node_name.clone()),
                        phase: f.pod.status.as_ref().and_then(|s| s.phase.clone()),
                        live,
                        report,
                    }
                })
                .collect(),
            chamber_like: Vec::new(),
        }
    }

    pub fn human(&self, st: Style) -> String {
        let mut out = format!(
            "{} matching '{}' in '{}'\n\n{:<32} {:<20} {:<10} {:<9} {:<12} {:>6} {:>6}  TOP CAUSE\n",
            crate::output::plural(self.pods.len(), "pod", "pods"),
            self.selector,
            self.namespace,
            "POD",
            "NODE",
            "PHASE",
            "VERDICT",
            "SIGNER",
            "ERRORS",
            "WARN"
        );
        if self.pods.is_empty() {
            out += &format!(
                "\nNo pod matches '{}' in '{}'. ",
                self.selector, self.namespace
            );
            if self.chamber_like.is_empty() {
                out += "No pod here looks like a chamber (none requests aws.ec2.nitro/nitro_enclaves): check -n/--context.\n";
            } else {
                out += "Pods here that look like chambers, with their labels:\n";
                for c in &self.chamber_like {
                    let labels: Vec<String> =
                        c.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
                    out += &format!("  {}  {}\n", c.pod, labels.join(","));
                }
            }
        }
        for p in &self.pods {
            let first = p.report.verdict.cause.as_deref().unwrap_or("-");
            out += &format!(
                "{:<32} {:<20} {:<10} {:<9} {:<12} {:>6} {:>6}  {first}\n",
                p.pod,
                p.node.as_deref().unwrap_or("-"),
                p.phase.as_deref().unwrap_or("-"),
                p.report.verdict.level.as_str(),
                p.report.signer.as_deref().unwrap_or("not read"),
                p.report.summary.errors,
                p.report.summary.warnings
            );
        }
        for p in self
            .pods
            .iter()
            .filter(|p| p.report.findings().next().is_some())
        {
            out += &format!("\n== {} ==\n", p.pod);
            out += &render::human(&p.report, st);
        }
        crate::output::clean(&out)
    }

    pub fn junit(&self) -> String {
        // One document per pod would not be valid XML together: merge the suites.
        let mut out = String::from(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"ccctl doctor fleet\">\n",
        );
        for p in &self.pods {
            let doc = render::junit(&p.report);
            for line in doc
                .lines()
                .filter(|l| l.starts_with("  ") || l.starts_with("    "))
            {
                out += &line.replacen(
                    "<testsuite name=\"",
                    &format!("<testsuite name=\"{}/", p.pod),
                    1,
                );
                out.push('\n');
            }
        }
        out += "</testsuites>\n";
        out
    }
}
