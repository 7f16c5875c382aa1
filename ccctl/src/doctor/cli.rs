//! `ccctl doctor` glue: settings (flags, then the environment read once here), run, render,
//! exit status.

use std::io::IsTerminal;
use std::sync::Arc;

use cc_proto::findings::Severity;

use super::render::{self, Style};
use super::{Context, checks};
use crate::cli::{DoctorArgs, FailOn};
use crate::output::{self, CannotRun, Format, Outcome};

pub fn run(a: DoctorArgs, fmt: Format) -> Result<Outcome, CannotRun> {
    let all = checks::local();
    if a.list_checks {
        match fmt {
            Format::Json => {
                let list: Vec<serde_json::Value> = all
                    .iter()
                    .map(|c| serde_json::json!({"id": c.id(), "family": c.family(), "description": c.description()}))
                    .collect();
                println!("{}", output::json(&list));
            }
            _ => {
                for c in &all {
                    println!("{:<20} {}", c.id(), c.description());
                }
            }
        }
        return Ok(Outcome::Ok);
    }
    let env = |k: &str| std::env::var(k).ok();
    if let Some(pod) = &a.pod {
        let rt = output::runtime()?;
        let timeout_arg = format!("{}ms", a.timeout.as_millis());
        let exec_mode = a.exec;
        let report = rt.block_on(async {
            let client = crate::k8s::client(a.context.as_deref()).await?;
            let ns = match &a.namespace {
                Some(n) => n.clone(),
                None => crate::k8s::default_namespace(a.context.as_deref()).await,
            };
            let facts = crate::k8s::pod_facts(&client, &ns, pod, a.timeout).await?;
            let mut report = super::pod::report(&facts, &a.checks);
            let exec = exec_for(exec_mode, &client);
            if let Some(exec) = exec {
                let inside = tokio::time::timeout(
                    a.timeout + std::time::Duration::from_secs(2),
                    super::exec::in_pod(exec, &ns, pod, &timeout_arg),
                )
                .await
                .unwrap_or_default();
                report.checks.extend(inside.into_iter().filter(|c| {
                    a.checks.is_empty() || a.checks.iter().any(|o| *o == c.id || *o == c.family)
                }));
                report.resummarise();
            }
            Ok::<_, String>(report)
        });
        rt.shutdown_background();
        let report = report.map_err(CannotRun::new)?;
        return finish(&report, fmt, a.fail_on, env("NO_COLOR"));
    }
    if let Some(selector) = &a.selector {
        let rt = output::runtime()?;
        let (ns, facts, inside) = rt
            .block_on(async {
                let client = crate::k8s::client(a.context.as_deref()).await?;
                let ns = match &a.namespace {
                    Some(n) => n.clone(),
                    None => crate::k8s::default_namespace(a.context.as_deref()).await,
                };
                let f = crate::k8s::fleet_facts(&client, &ns, selector, a.timeout).await?;
                // The in-pod probes of every pod, concurrently.
                let mut inside: Vec<Vec<super::CheckResult>> = vec![Vec::new(); f.len()];
                if let Some(exec) = exec_for(a.exec, &client) {
                    let timeout_arg = format!("{}ms", a.timeout.as_millis());
                    let mut tasks = tokio::task::JoinSet::new();
                    for (i, facts) in f.iter().enumerate() {
                        let (exec, ns, arg) = (exec.clone(), ns.clone(), timeout_arg.clone());
                        let pod = facts.pod.metadata.name.clone().unwrap_or_default();
                        let deadline = a.timeout + std::time::Duration::from_secs(2);
                        tasks.spawn(async move {
                            let r = tokio::time::timeout(
                                deadline,
                                super::exec::in_pod(exec, &ns, &pod, &arg),
                            )
                            .await
                            .unwrap_or_default();
                            (i, r)
                        });
                    }
                    while let Some(Ok((i, r))) = tasks.join_next().await {
                        inside[i] = r;
                    }
                }
                Ok::<_, String>((ns, f, inside))
            })
            .map_err(CannotRun::new)?;
        rt.shutdown_background();
        let fleet = super::fleet::Fleet::new(&ns, selector, &facts, inside, &a.checks);
        match fmt {
            Format::Json => println!("{}", output::json(&fleet)),
            Format::Junit => print!("{}", fleet.junit()),
            Format::Human => {
                let color =
                    std::io::stdout().is_terminal() && env("NO_COLOR").is_none_or(|v| v.is_empty());
                print!("{}", fleet.human(Style { color }));
            }
        }
        let level = match a.fail_on {
            FailOn::Info => Severity::Info,
            FailOn::Warn => Severity::Warn,
            FailOn::Error => Severity::Error,
        };
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
    finish(&report, fmt, a.fail_on, env("NO_COLOR"))
}

/// The local probes' context from the flags (and `PRODUCTION` / `ENCLAVE_DEBUG`, read here).
pub fn local_context(p: &crate::cli::Probes, timeout: std::time::Duration) -> Context {
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
    }
}

pub fn exec_for(
    mode: crate::cli::ExecMode,
    client: &kube::Client,
) -> Option<Arc<dyn super::exec::PodExec>> {
    match mode {
        crate::cli::ExecMode::Kube => Some(Arc::new(super::exec::KubeExec(client.clone()))),
        crate::cli::ExecMode::Local => Some(Arc::new(super::exec::LocalExec)),
        crate::cli::ExecMode::None => None,
    }
}

fn finish(
    report: &super::Report,
    fmt: Format,
    fail_on: FailOn,
    no_color: Option<String>,
) -> Result<Outcome, CannotRun> {
    match fmt {
        Format::Json => println!("{}", output::json(report)),
        Format::Junit => print!("{}", render::junit(report)),
        Format::Human => {
            let color = std::io::stdout().is_terminal() && no_color.is_none_or(|v| v.is_empty());
            print!("{}", render::human(report, Style { color }));
        }
    }
    let level = match fail_on {
        FailOn::Info => Severity::Info,
        FailOn::Warn => Severity::Warn,
        FailOn::Error => Severity::Error,
    };
    Ok(if report.fails(level) {
        Outcome::Finding
    } else {
        Outcome::Ok
    })
}
