//! The data sources: each runs in its own task, sends [`Update`]s, and on failure sends the
//! error and retries with the shared backoff — so a slow or dead source never holds a frame.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{AsyncBufReadExt as _, StreamExt as _};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::sync::mpsc::Sender;

use super::app::{PodRow, Update};
use crate::probe::Targets;

/// Run `fetch` every `every`; on `Err`, send it and wait the backoff instead.
fn poll<F, Fut>(tx: Sender<Update>, every: Duration, mut fetch: F) -> tokio::task::JoinHandle<()>
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = (Update, bool)> + Send,
{
    tokio::spawn(async move {
        let mut backoff = cc_proto::Backoff::default();
        loop {
            let (update, ok) = fetch().await;
            if tx.send(update).await.is_err() {
                return;
            }
            let wait = if ok {
                backoff.reset();
                every
            } else {
                backoff.next_delay().max(every.min(Duration::from_secs(1)))
            };
            tokio::time::sleep(wait).await;
        }
    })
}

pub struct Settings {
    pub probes: Targets,
    pub refresh: Duration,
    pub timeout: Duration,
    /// `Some((namespace, pods or selector))` in Kubernetes mode.
    pub kube: Option<KubeTarget>,
}

#[derive(Clone)]
pub struct KubeTarget {
    pub client: kube::Client,
    pub namespace: String,
    pub pod: Option<String>,
    pub selector: Option<String>,
}

pub fn start(s: Arc<Settings>, tx: Sender<Update>) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = Vec::new();
    let timeout = s.timeout.min(Duration::from_secs(5));
    {
        let api = s.probes.api.clone();
        tasks.push(poll(tx.clone(), s.refresh, move || {
            let api = api.clone();
            async move {
                let r = crate::probe::status::fetch(&api, timeout).await;
                let ok = r.is_ok();
                (Update::Status(r), ok)
            }
        }));
    }
    {
        let metrics = s.probes.metrics.clone();
        tasks.push(poll(tx.clone(), s.refresh, move || {
            let metrics = metrics.clone();
            async move {
                let r = crate::probe::metrics::fetch(&metrics, timeout).await;
                let ok = r.is_ok();
                (Update::Metrics(r), ok)
            }
        }));
    }
    if s.kube.is_none() {
        let cli = s.probes.nitro_cli.clone();
        tasks.push(poll(tx.clone(), s.refresh * 5, move || {
            let cli = cli.clone();
            async move {
                let r = crate::probe::nitro_cli::probe(&cli, timeout)
                    .await
                    .into_result();
                let ok = r.is_ok();
                (Update::Enclaves(r), ok)
            }
        }));
    }
    if let Some(cfg) = s.probes.config.clone() {
        let api = s.probes.api.clone();
        tasks.push(poll(tx.clone(), s.refresh * 15, move || {
            let (api, cfg) = (api.clone(), cfg.clone());
            async move {
                let r = async {
                    let status = crate::probe::status::fetch(&api, timeout).await?;
                    crate::policy::report_for_status(&cfg, &status, timeout)
                        .await
                        .map_err(|f| f.summary)
                }
                .await;
                let ok = r.is_ok();
                (Update::Policy(r), ok)
            }
        }));
    }
    if let Some(path) = s.probes.proxy_config.clone() {
        tasks.push(poll(tx.clone(), s.refresh * 5, move || {
            let path = path.clone();
            async move {
                (
                    Update::Egress(crate::probe::egress::endpoints(&path, timeout).await),
                    true,
                )
            }
        }));
    }
    match &s.kube {
        Some(k) => {
            let k2 = k.clone();
            tasks.push(poll(tx.clone(), s.refresh * 10, move || {
                let k = k2.clone();
                async move {
                    let r = pods(&k, timeout * 2).await;
                    let ok = r.is_ok();
                    (Update::Pods(r), ok)
                }
            }));
            tasks.push(tokio::spawn(kube_logs(k.clone(), tx.clone())));
        }
        None => match s.probes.log_file.clone() {
            Some(p) => tasks.push(tokio::spawn(tail_file(p, tx.clone()))),
            None => {
                let tx = tx.clone();
                tasks.push(tokio::spawn(async move {
                    let _ = tx
                        .send(Update::LogError(
                            "no log source: give --log-file (the pod log as a file) or --pod"
                                .into(),
                        ))
                        .await;
                }));
            }
        },
    }
    tasks.push(run_doctor(s.clone(), tx));
    tasks
}

/// One doctor run (local checks, or the pod's API-side report in Kubernetes mode).
pub fn run_doctor(s: Arc<Settings>, tx: Sender<Update>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let report = match &s.kube {
            None => crate::doctor::run_local(&s.probes, s.timeout).await,
            Some(k) => match first_pod(k, s.timeout).await {
                Ok(facts) => crate::doctor::pod_report(&facts),
                Err(e) => {
                    let _ = tx.send(Update::Pods(Err(e))).await;
                    crate::doctor::Report::default()
                }
            },
        };
        let _ = tx.send(Update::Findings(report)).await;
    })
}

async fn first_pod(
    k: &KubeTarget,
    timeout: Duration,
) -> Result<crate::probe::k8s::PodFacts, String> {
    match (&k.pod, &k.selector) {
        (Some(p), _) => crate::probe::k8s::pod_facts(&k.client, &k.namespace, p, timeout).await,
        (None, Some(sel)) => crate::probe::k8s::fleet_facts(&k.client, &k.namespace, sel, timeout)
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| format!("no pod matches '{sel}' in '{}'", k.namespace)),
        (None, None) => Err("no pod given".into()),
    }
}

async fn pods(k: &KubeTarget, timeout: Duration) -> Result<Vec<PodRow>, String> {
    let facts = match (&k.pod, &k.selector) {
        (Some(p), _) => {
            vec![crate::probe::k8s::pod_facts(&k.client, &k.namespace, p, timeout).await?]
        }
        (None, Some(sel)) => {
            crate::probe::k8s::fleet_facts(&k.client, &k.namespace, sel, timeout).await?
        }
        (None, None) => Vec::new(),
    };
    Ok(facts
        .iter()
        .map(|f| {
            let r = crate::doctor::pod_report(f);
            let first = r.verdict.cause.clone().unwrap_or_default();
            PodRow {
                name: f.pod.metadata.name.clone().unwrap_or_default(),
                node: f
                    .pod
                    .spec
                    .as_ref()
                    .and_then(|s| s.node_name.clone())
                    .unwrap_or_default(),
                phase: f
                    .pod
                    .status
                    .as_ref()
                    .and_then(|s| s.phase.clone())
                    .unwrap_or_default(),
                errors: r.summary.errors,
                warnings: r.summary.warnings,
                first_problem: first,
            }
        })
        .collect())
}

/// At most this many lines per update (bounded memory between frames).
const BATCH: usize = 4096;

/// `tail -F` of the log file: the last MiB first, then what is appended (truncation and
/// replacement start over from the beginning).
async fn tail_file(path: std::path::PathBuf, tx: Sender<Update>) {
    let mut backoff = cc_proto::Backoff::default();
    loop {
        let r = follow_file(&path, &tx).await;
        if tx.is_closed() {
            return;
        }
        if let Err(e) = r {
            let _ = tx
                .send(Update::LogError(format!("{}: {e}", path.display())))
                .await;
        }
        tokio::time::sleep(backoff.next_delay()).await;
    }
}

async fn follow_file(path: &std::path::Path, tx: &Sender<Update>) -> std::io::Result<()> {
    let mut f = tokio::fs::File::open(path).await?;
    let len = f.metadata().await?.len();
    let mut pos = len.saturating_sub(1 << 20);
    f.seek(std::io::SeekFrom::Start(pos)).await?;
    let mut partial: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut first = pos > 0;
    loop {
        let n = f.read(&mut buf).await?;
        if n == 0 {
            let now_len = tokio::fs::metadata(path).await?.len();
            if now_len < pos {
                return Ok(()); // truncated or replaced: reopen
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        pos += n as u64;
        partial.extend_from_slice(&buf[..n]);
        let mut lines: Vec<Vec<u8>> = Vec::new();
        let mut start = 0;
        while let Some(i) = memchr_nl(&partial[start..]) {
            let line = partial[start..start + i].to_vec();
            start += i + 1;
            if first {
                // The first line after seeking is probably cut.
                first = false;
                continue;
            }
            lines.push(line);
            if lines.len() >= BATCH
                && tx
                    .send(Update::LogLines(std::mem::take(&mut lines)))
                    .await
                    .is_err()
            {
                return Ok(());
            }
        }
        partial.drain(..start);
        if partial.len() > 64 * 1024 {
            lines.push(std::mem::take(&mut partial));
        }
        if !lines.is_empty() && tx.send(Update::LogLines(lines)).await.is_err() {
            return Ok(());
        }
    }
}

fn memchr_nl(b: &[u8]) -> Option<usize> {
    b.iter().position(|c| *c == b'\n')
}

/// `kubectl logs -f --tail=1000` of the pod (the first matching the selector).
async fn kube_logs(k: KubeTarget, tx: Sender<Update>) {
    let mut backoff = cc_proto::Backoff::default();
    // After a broken stream, ask only for what came since (not the last 1000 lines again).
    let mut resume: Option<Instant> = None;
    loop {
        let r = async {
            let facts = first_pod(&k, Duration::from_secs(10)).await?;
            let name = facts.pod.metadata.name.clone().unwrap_or_default();
            let api: kube::Api<k8s_openapi::api::core::v1::Pod> =
                kube::Api::namespaced(k.client.clone(), &k.namespace);
            let stream = api
                .log_stream(
                    &name,
                    &kube::api::LogParams {
                        follow: true,
                        tail_lines: if resume.is_none() { Some(1000) } else { None },
                        since_seconds: resume.map(|t| t.elapsed().as_secs() as i64 + 1),
                        ..Default::default()
                    },
                )
                .await
                .map_err(|e| format!("log stream of '{name}': {e}"))?;
            let mut lines = Box::pin(stream.lines());
            let mut batch = Vec::new();
            loop {
                let next = if batch.is_empty() {
                    lines.next().await
                } else {
                    match tokio::time::timeout(Duration::from_millis(50), lines.next()).await {
                        Ok(r) => r,
                        Err(_) => {
                            if tx
                                .send(Update::LogLines(std::mem::take(&mut batch)))
                                .await
                                .is_err()
                            {
                                return Ok(());
                            }
                            continue;
                        }
                    }
                };
                match next {
                    Some(Ok(l)) => {
                        batch.push(l.into_bytes());
                        if batch.len() >= BATCH
                            && tx
                                .send(Update::LogLines(std::mem::take(&mut batch)))
                                .await
                                .is_err()
                        {
                            return Ok(());
                        }
                    }
                    None => {
                        let _ = tx.send(Update::LogLines(batch)).await;
                        return Err(format!("the log stream of '{name}' ended"));
                    }
                    Some(Err(e)) => return Err(format!("log stream of '{name}': {e}")),
                }
            }
        }
        .await;
        if tx.is_closed() {
            return;
        }
        if let Err(e) = r {
            let _ = tx.send(Update::LogError(e)).await;
        } else {
            return;
        }
        resume = Some(Instant::now());
        tokio::time::sleep(backoff.next_delay()).await;
    }
}
