//! `ccctl doctor`: its arguments, settings (flags, then the environment read once here), run,
//! render, exit status.

use std::sync::Arc;

use cc_proto::findings::Severity;

use super::{Context, checks};
use crate::output::{self, CannotRun, Format, Outcome, Style};
use crate::probe::exec::{ExecMode, exec_for};

#[derive(Debug, clap::Args)]
pub struct DoctorArgs {
    /// Probe this machine directly (inside the pod, or any host running the chamber).
    #[arg(long, conflicts_with = "pod")]
    pub local: bool,
    /// Check this pod through the Kubernetes API (pod spec, node, device plugin, events).
    #[arg(long, value_name = "NAME")]
    pub pod: Option<String>,
    /// Check every pod matching this label selector (fleet mode), concurrently.
    #[arg(short = 'l', long = "selector", value_name = "SELECTOR", conflicts_with_all = ["pod", "local"])]
    pub selector: Option<String>,
    /// Namespace of the pod (default: the context's, else `default`).
    #[arg(short = 'n', long, value_name = "NAMESPACE")]
    pub namespace: Option<String>,
    /// How to run the probes inside the pod: through the Kubernetes API (kube), or on this
    /// machine (local: for `ccctl demo`, where the pod is this machine), or not at all (none).
    #[arg(long, value_enum, default_value_t = ExecMode::Kube)]
    pub exec: ExecMode,
    /// kubeconfig context to use; with -l, repeat it to check several clusters (a CLUSTER
    /// column).
    #[arg(long, value_name = "CONTEXT")]
    pub context: Vec<String>,
    /// With -l: every context of the kubeconfig.
    #[arg(long, requires = "selector", conflicts_with = "context")]
    pub all_contexts: bool,
    /// List the checks and exit.
    #[arg(long)]
    pub list_checks: bool,
    /// Run only these checks or families (comma-separated ids like enclave.status, or families like kms).
    #[arg(long, value_delimiter = ',', value_name = "LIST")]
    pub checks: Vec<String>,
    /// Exit 1 when a finding at or above this severity exists.
    #[arg(long, value_enum, default_value_t = FailOn::Error)]
    pub fail_on: FailOn,
    /// Deadline for the whole run.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = cc_proto::parse_duration)]
    pub timeout: std::time::Duration,
    #[command(flatten)]
    pub live: crate::doctor::live::SourceArgs,
    /// Fleet mode: do not read the pods' live fields (no `pods/proxy` requests).
    #[arg(long, requires = "selector", conflicts_with = "prometheus")]
    pub no_live: bool,
    /// Where the local probes look.
    #[command(flatten)]
    pub probes: crate::probe::Targets,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FailOn {
    Info,
    Warn,
    Error,
}

impl FailOn {
    pub fn level(self) -> Severity {
        match self {
            FailOn::Info => Severity::Info,
            FailOn::Warn => Severity::Warn,
            FailOn::Error => Severity::Error,
        }
    }
}

pub fn run(a: DoctorArgs, fmt: Format) -> Result<Outcome, CannotRun> {
    let all = checks::local();
    if a.list_checks {
        match fmt {
            Format::Json => {
                let list: Vec<serde_json::Value> = all
                    .iter()
                    .map(|c| serde_json::json!({"id": c.id(), "family": c.family(), "description": c.description()}))
                    .collect();
                output::emit(&(output::json(&list) + "\n"));
            }
            _ => {
                for c in &all {
                    output::emit(&format!("{:<20} {}\n", c.id(), c.description()));
                }
            }
        }
        return Ok(Outcome::Ok);
    }
    if a.all_contexts && a.selector.is_none() {
        return Err(CannotRun::new(
            "--all-contexts is for -l/--selector (one fleet over every context)",
        ));
    }
    if a.context.len() > 1 && a.selector.is_none() {
        return Err(CannotRun::new(
            "one --context here (several are for -l: one fleet over several clusters)",
        ));
    }
    if let Some(pod) = &a.pod {
        let context = a.context.first().map(String::as_str);
        let rt = output::runtime()?;
        let report = rt.block_on(async {
            let client = crate::probe::k8s::client(context).await?;
            let ns = match &a.namespace {
                Some(n) => n.clone(),
                None => crate::probe::k8s::default_namespace(context).await,
            };
            let facts = crate::probe::k8s::pod_facts(&client, &ns, pod, a.timeout).await?;
            let exec = exec_for(a.exec, &client);
            Ok::<_, String>(super::inpod::judge_pod(&facts, exec, a.timeout, &a.checks).await)
        });
        rt.shutdown_background();
        let report = report.map_err(CannotRun::new)?;
        return finish(&report, fmt, a.fail_on);
    }
    if let Some(selector) = &a.selector {
        let source = a.live.source().map_err(CannotRun::new)?;
        let rt = output::runtime()?;
        let fleet = rt
            .block_on(fleet(&a, selector, source))
            .map_err(CannotRun::new);
        rt.shutdown_background();
        let fleet = fleet?;
        output::render(&fleet, fmt)?;
        // A cluster not looked at: neither clean nor a finding.
        let failed: Vec<String> = fleet
            .clusters
            .iter()
            .filter_map(|c| Some(format!("{}: {}", c.cluster, c.error.as_deref()?)))
            .collect();
        if !failed.is_empty() {
            return Err(CannotRun::new(format!(
                "{} of {} clusters could not be listed, so their pods were not checked: {}",
                failed.len(),
                fleet.clusters.len(),
                failed.join("; ")
            )));
        }
        let level = a.fail_on.level();
        return Ok(
            if fleet.pods.iter().any(|p| p.report.fails(level)) || fleet.pods.is_empty() {
                Outcome::Finding
            } else {
                Outcome::Ok
            },
        );
    }
    if !a.local {
        return Err(CannotRun::new(
            "say where to look: --local (this machine), --pod NAME or -l SELECTOR (through the Kubernetes API)",
        ));
    }
    let selected = super::select(all, &a.checks).map_err(CannotRun::new)?;
    let ctx = Arc::new(local_context(&a.probes, a.timeout));
    let rt = output::runtime()?;
    let report = rt.block_on(super::run(selected, ctx, a.timeout));
    // Checks still blocked (e.g. a hung nitro-cli) must not keep the process alive.
    rt.shutdown_background();
    finish(&report, fmt, a.fail_on)
}

/// `doctor -l`: every cluster's pods listed at once; their in-pod probes and live fields read
/// concurrently; one report per pod. Err when no cluster could be listed.
async fn fleet(
    a: &DoctorArgs,
    selector: &str,
    source: crate::doctor::live::Source,
) -> Result<super::fleet::Fleet, String> {
    use crate::doctor::live;
    let (clusters, unusable) =
        live::clusters(&a.context, a.all_contexts, a.namespace.as_deref()).await?;
    let lists = futures::future::join_all(
        clusters
            .iter()
            .map(|c| crate::probe::k8s::fleet_facts(&c.client, &c.namespace, selector, a.timeout)),
    )
    .await;
    if lists.iter().all(|r| r.is_err()) {
        // Nothing was looked at.
        let errors: Vec<String> = clusters
            .iter()
            .zip(&lists)
            .filter_map(|(c, r)| r.as_ref().err().map(|e| (c, e)))
            .map(|(c, e)| match clusters.len() {
                1 => e.clone(),
                _ => format!("{}: {e}", c.label()),
            })
            .collect();
        let unusable = unusable.into_iter().map(|(_, e)| e);
        return Err(errors
            .into_iter()
            .chain(unusable)
            .collect::<Vec<_>>()
            .join("; "));
    }
    let mut facts: Vec<(usize, crate::probe::k8s::PodFacts)> = Vec::new();
    let mut summaries = Vec::new();
    for (i, (c, r)) in clusters.iter().zip(lists).enumerate() {
        let (n, error) = match r {
            Ok(f) => {
                let n = f.len();
                facts.extend(f.into_iter().map(|f| (i, f)));
                (n, None)
            }
            Err(e) => (0, Some(e)),
        };
        summaries.push(super::fleet::ClusterSummary {
            cluster: c.label(),
            namespace: c.namespace.clone(),
            pods: n,
            error,
        });
    }
    // The in-pod probes of every pod, concurrently.
    let inside = async {
        let at_once = tokio::sync::Semaphore::new(super::inpod::MAX_EXECS);
        let at_once = &at_once;
        futures::future::join_all(facts.iter().map(|(i, f)| {
            let c = &clusters[*i];
            let exec = exec_for(a.exec, &c.client);
            let pod = f.pod.metadata.name.clone().unwrap_or_default();
            async move {
                match exec {
                    Some(exec) => {
                        let _permit = at_once.acquire().await;
                        super::inpod::within(exec, &c.namespace, &pod, a.timeout).await
                    }
                    None => super::Report::default(),
                }
            }
        }))
        .await
    };
    // The live fields: two reads `--scrape-interval` apart through the pod proxy (the rates
    // are taken between them), or one set of Prometheus queries.
    let lives = async {
        if a.no_live || facts.is_empty() {
            return Vec::new();
        }
        let fleet = live::Fleet {
            clusters: clusters.clone(),
            selector: selector.to_owned(),
            source,
            config: a.probes.config.clone(),
            timeout: a.timeout,
            pod_timeout: a.timeout,
            releases: Default::default(),
        };
        let listed: Vec<(usize, &k8s_openapi::api::core::v1::Pod)> =
            facts.iter().map(|(i, f)| (*i, &f.pod)).collect();
        let (first, counters) = fleet.live(&listed, &Default::default()).await;
        if counters.is_empty() {
            first
        } else {
            tokio::time::sleep(a.probes.scrape_interval).await;
            fleet.live(&listed, &counters).await.0
        }
    };
    // A cluster where nothing matched: which pods there look like chambers (and their labels)?
    let like = futures::future::join_all(clusters.iter().zip(&summaries).map(|(c, s)| async {
        if s.pods > 0 || s.error.is_some() {
            return Vec::new();
        }
        crate::probe::k8s::chamber_like_pods(&c.client, &c.namespace, a.timeout)
            .await
            .unwrap_or_default()
            .into_iter()
            .map(|(pod, labels)| super::fleet::Candidate {
                cluster: c.label(),
                pod,
                labels,
            })
            .collect::<Vec<_>>()
    }));
    let (inside, lives, like) = tokio::join!(inside, lives, like);
    // Contexts whose client could not be made: not looked at, named with why (after the
    // others: `facts` index those by position).
    summaries.extend(
        unusable
            .into_iter()
            .map(|(cluster, e)| super::fleet::ClusterSummary {
                cluster,
                namespace: a.namespace.clone().unwrap_or_else(|| "-".into()),
                pods: 0,
                error: Some(e),
            }),
    );
    let mut fleet = super::fleet::Fleet::new(selector, summaries, &facts, inside, lives, &a.checks);
    fleet.chamber_like = like.into_iter().flatten().collect();
    Ok(fleet)
}

/// The local probes' context from the flags (and `PRODUCTION` / `ENCLAVE_DEBUG`, read here).
pub fn local_context(p: &crate::probe::Targets, timeout: std::time::Duration) -> Context {
    let env = |k: &str| std::env::var(k).ok();
    Context {
        production: env("PRODUCTION").is_some_and(|v| v == "true"),
        enclave_debug: env("ENCLAVE_DEBUG"),
        nitro_cli: p.nitro_cli.clone(),
        api: p.api.clone(),
        metrics: p.metrics.clone(),
        log_listener: p.log_listener.clone(),
        device: p.device.clone(),
        scrape_interval: p.scrape_interval,
        probe_timeout: timeout,
        proxy_config: p.proxy_config.clone(),
        log_file: p.log_file.clone(),
        holders_config: p.config.clone(),
        allocator: p.allocator.clone(),
        status: tokio::sync::OnceCell::new(),
        observed: Default::default(),
    }
}

fn finish(report: &super::Report, fmt: Format, fail_on: FailOn) -> Result<Outcome, CannotRun> {
    output::render(report, fmt)?;
    Ok(Outcome::clean_if(!report.fails(fail_on.level())))
}

impl output::Render for super::Report {
    fn human(&self, style: Style) -> String {
        super::render::human(self, style)
    }
    fn junit(&self) -> Option<String> {
        Some(super::render::junit(self))
    }
}

impl output::Render for super::fleet::Fleet {
    fn human(&self, style: Style) -> String {
        super::fleet::Fleet::human(self, style)
    }
    fn junit(&self) -> Option<String> {
        Some(super::fleet::Fleet::junit(self))
    }
}
