//! Fleet mode: one report per pod, one summary table.

use serde::Serialize;

use super::Report;
use super::render::{self, Style};
use crate::probe::k8s::PodFacts;

#[derive(Debug, Clone, Serialize)]
pub struct PodReport {
    /// The kubeconfig context the pod was found through (`-` when it has no name).
    pub cluster: String,
    pub namespace: String,
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
    /// The first cluster's namespace (each cluster's is in `clusters`).
    pub namespace: String,
    pub selector: String,
    /// Every cluster asked (`--context`…, `--all-contexts`; one: the current context), how
    /// many pods matched there, or why it could not be listed.
    pub clusters: Vec<ClusterSummary>,
    pub pods: Vec<PodReport>,
    /// When no pod matched: the pods here that look like chambers and their labels.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub chamber_like: Vec<Candidate>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ClusterSummary {
    pub cluster: String,
    pub namespace: String,
    pub pods: usize,
    /// Why the pods there could not be listed (none of them was checked).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Candidate {
    pub cluster: String,
    pub pod: String,
    pub labels: std::collections::BTreeMap<String, String>,
}

impl Fleet {
    /// `facts[i]`: pod `i` and the index of its cluster in `clusters`; `inside[i]`: its
    /// in-pod probe results (empty when not run); `lives[i]`: its live fields (none with
    /// `--no-live`).
    pub fn new(
        selector: &str,
        clusters: Vec<ClusterSummary>,
        facts: &[(usize, PodFacts)],
        inside: Vec<Report>,
        lives: Vec<crate::doctor::live::Live>,
        only: &[String],
    ) -> Fleet {
        let mut inside = inside.into_iter();
        let mut lives = lives.into_iter();
        Fleet {
            namespace: clusters
                .first()
                .map(|c| c.namespace.clone())
                .unwrap_or_default(),
            selector: selector.to_owned(),
            pods: facts
                .iter()
                .map(|(c, f)| {
                    let live = lives.next();
                    let report = crate::doctor::live::judge(
                        super::pod::report(f, only),
                        live.as_ref(),
                        inside.next().unwrap_or_default(),
                        only,
                    );
                    PodReport {
                        cluster: clusters[*c].cluster.clone(),
                        namespace: clusters[*c].namespace.clone(),
                        pod: f.pod.metadata.name.clone().unwrap_or_default(),
                        node: f.pod.spec.as_ref().and_then(|s| s.node_name.clone()),
                        phase: f.pod.status.as_ref().and_then(|s| s.phase.clone()),
                        live,
                        report,
                    }
                })
                .collect(),
            clusters,
            chamber_like: Vec::new(),
        }
    }

    /// More than one cluster asked: a CLUSTER column, and pods named `cluster/pod`.
    fn multi(&self) -> bool {
        self.clusters.len() > 1
    }

    fn name(&self, p: &PodReport) -> String {
        if self.multi() {
            format!("{}/{}", p.cluster, p.pod)
        } else {
            p.pod.clone()
        }
    }

    pub fn human(&self, st: Style) -> String {
        let multi = self.multi();
        let mut out = if multi {
            let listed: Vec<String> = self
                .clusters
                .iter()
                .map(|c| match &c.error {
                    None => format!("{}/{} ({})", c.cluster, c.namespace, c.pods),
                    Some(_) => format!("{}/{} (not listed)", c.cluster, c.namespace),
                })
                .collect();
            format!(
                "{} matching '{}' in {} clusters: {}\n",
                crate::output::plural(self.pods.len(), "pod", "pods"),
                self.selector,
                self.clusters.len(),
                listed.join(", ")
            )
        } else {
            format!(
                "{} matching '{}' in '{}'\n",
                crate::output::plural(self.pods.len(), "pod", "pods"),
                self.selector,
                self.namespace,
            )
        };
        for c in &self.clusters {
            if let Some(e) = &c.error {
                out += &format!(
                    "cluster '{}' could not be listed (its pods were not checked): {e}\n",
                    c.cluster
                );
            }
        }
        out += "\n";
        if multi {
            out += &format!("{:<16} ", "CLUSTER");
        }
        out += &format!(
            "{:<32} {:<20} {:<10} {:<9} {:<12} {:>6} {:>6}  TOP CAUSE\n",
            "POD", "NODE", "PHASE", "VERDICT", "SIGNER", "ERRORS", "WARN"
        );
        if self.pods.is_empty() {
            if multi {
                out += &format!("\nNo pod matches '{}' in any cluster. ", self.selector);
            } else {
                out += &format!(
                    "\nNo pod matches '{}' in '{}'. ",
                    self.selector, self.namespace
                );
            }
            if self.chamber_like.is_empty() {
                out += "No pod here looks like a chamber (none requests aws.ec2.nitro/nitro_enclaves): check -n/--context.\n";
            } else {
                out += "Pods here that look like chambers, with their labels:\n";
                for c in &self.chamber_like {
                    let labels: Vec<String> =
                        c.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
                    let pod = if multi {
                        format!("{}/{}", c.cluster, c.pod)
                    } else {
                        c.pod.clone()
                    };
                    out += &format!("  {pod}  {}\n", labels.join(","));
                }
            }
        }
        for p in &self.pods {
            let first = p.report.verdict.cause.as_deref().unwrap_or("-");
            if multi {
                out += &format!("{:<16} ", p.cluster);
            }
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
            out += &format!("\n== {} ==\n", self.name(p));
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
                    &format!("<testsuite name=\"{}/", self.name(p)),
                    1,
                );
                out.push('\n');
            }
        }
        out += "</testsuites>\n";
        out
    }
}
