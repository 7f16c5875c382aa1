//! The data sources: each runs in its own task, sends [`Update`]s, and on failure sends the
//! error and retries with the shared backoff — so a slow or dead source never holds a frame.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{AsyncBufReadExt as _, StreamExt as _};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::sync::mpsc::Sender;

use super::app::{FleetView, PodKey, PodRow, Update};
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
    /// The clusters watched (`--context`…, `--all-contexts`); the first is the default.
    pub clusters: Vec<crate::doctor::live::Cluster>,
    pub pod: Option<String>,
    pub selector: Option<String>,
    /// The pod the per-pod screens watch (`--pod`, or the fleet row Enter chose).
    pub watching: Arc<tokio::sync::watch::Sender<Option<PodKey>>>,
    /// Read `/status` and `/metrics` at `--api`/`--metrics` (a port-forward) instead of
    /// through the API server's pod proxy.
    pub direct: bool,
    /// How the watched pod's in-pod probes run (`--exec`).
    pub exec: crate::probe::exec::ExecMode,
    /// Contexts asked for whose client could not be made, with why: not watched, and named
    /// on the fleet screen.
    pub unusable: Vec<String>,
    /// Where the fleet screen's live fields come from.
    pub source: crate::doctor::live::Source,
}

impl KubeTarget {
    /// `pod`'s cluster (the first cluster's until one is chosen).
    fn cluster_of(&self, pod: Option<&PodKey>) -> &crate::doctor::live::Cluster {
        let i = pod.map_or(0, |p| p.cluster);
        &self.clusters[i.min(self.clusters.len() - 1)]
    }
}

/// The pod the per-pod screens watch now (none locally, or before the fleet picks one). A
/// per-pod read takes it once, reads that pod, and sends its answer [`Update::About`] it.
fn watched(s: &Settings) -> Option<PodKey> {
    s.kube.as_ref().and_then(|k| k.watching.borrow().clone())
}

fn about(pod: &Option<PodKey>, u: Update) -> Update {
    Update::About(pod.clone(), Box::new(u))
}

/// Where the per-pod screens read `what` (`api` or `metrics`): the `--api`/`--metrics`
/// address locally or with `--direct`; else the watched pod's port through the API server.
fn endpoint(
    s: &Settings,
    pod: &Option<PodKey>,
    what: &str,
) -> Result<crate::probe::http::Endpoint, String> {
    use crate::probe::http::Endpoint;
    let direct = |a: &cc_proto::Address| Ok(Endpoint::Direct(a.clone()));
    let addr = if what == "api" {
        &s.probes.api
    } else {
        &s.probes.metrics
    };
    match &s.kube {
        None => direct(addr),
        Some(k) if k.direct => direct(addr),
        Some(k) => {
            let Some(p) = pod else {
                return Err("no pod chosen yet (the fleet's first answer picks the worst)".into());
            };
            let c = k.cluster_of(Some(p));
            Ok(Endpoint::PodProxy {
                client: c.client.clone(),
                namespace: p.namespace.clone(),
                pod: p.name.clone(),
                port: if what == "api" {
                    p.api_port
                } else {
                    p.metrics_port
                },
            })
        }
    }
}

pub fn start(s: Arc<Settings>, tx: Sender<Update>) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = Vec::new();
    let timeout = s.timeout.min(Duration::from_secs(5));
    {
        let s = s.clone();
        tasks.push(poll(tx.clone(), s.refresh, move || {
            let pod = watched(&s);
            let at = endpoint(&s, &pod, "api");
            async move {
                let r = match at {
                    Ok(at) => crate::probe::status::fetch_at(&at, timeout).await,
                    Err(e) => Err(e),
                };
                let ok = r.is_ok();
                (about(&pod, Update::Status(r)), ok)
            }
        }));
    }
    {
        let s = s.clone();
        tasks.push(poll(tx.clone(), s.refresh, move || {
            let pod = watched(&s);
            let at = endpoint(&s, &pod, "metrics");
            async move {
                let r = match at {
                    Ok(at) => crate::probe::metrics::fetch_at(&at, timeout).await,
                    Err(e) => Err(e),
                };
                let ok = r.is_ok();
                (about(&pod, Update::Metrics(r)), ok)
            }
        }));
    }
    if let Some(k) = s.kube.clone().filter(|k| k.selector.is_some()) {
        tasks.push(tokio::spawn(fleet(
            k,
            s.probes.config.clone(),
            s.refresh,
            s.timeout,
            tx.clone(),
        )));
    }
    if let Some(k) = s.kube.clone() {
        // The watched pod's enclaves, by nitro-cli inside it (as rotate's watch reads them).
        let s = s.clone();
        tasks.push(poll(tx.clone(), s.refresh * 5, move || {
            let pod = watched(&s);
            let c = k.cluster_of(pod.as_ref());
            let exec = crate::probe::exec::exec_for(k.exec, &c.client);
            let target = pod
                .as_ref()
                .map(|p| (p.namespace.clone(), p.name.clone()))
                .or_else(|| k.pod.clone().map(|p| (c.namespace.clone(), p)));
            async move {
                let r = match (exec, target) {
                    (None, _) => Err("not read: --exec none runs nothing in the pod".into()),
                    (Some(_), None) => Err("no pod chosen yet".into()),
                    (Some(exec), Some((ns, name))) => {
                        crate::probe::nitro_cli::describe_in_pod(&*exec, &ns, &name, timeout).await
                    }
                };
                let ok = r.is_ok();
                (about(&pod, Update::Enclaves(r)), ok)
            }
        }));
    } else {
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
        let s = s.clone();
        tasks.push(poll(tx.clone(), s.refresh * 15, move || {
            let pod = watched(&s);
            let (at, cfg) = (endpoint(&s, &pod, "api"), cfg.clone());
            async move {
                let r = async {
                    let status = crate::probe::status::fetch_at(&at?, timeout).await?;
                    crate::policy::report_for_status(&cfg, &status, timeout)
                        .await
                        .map_err(|f| f.summary)
                }
                .await;
                let ok = r.is_ok();
                (about(&pod, Update::Policy(r)), ok)
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
            // -l: the fleet screen lists the pods; --pod: this table.
            if k.selector.is_none() {
                tasks.push(poll(tx.clone(), s.refresh * 10, move || {
                    let k = k2.clone();
                    async move {
                        let r = pods(&k, timeout * 2).await;
                        let ok = r.is_ok();
                        (Update::Pods(r), ok)
                    }
                }));
            }
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
        let pod = watched(&s);
        let report = match &s.kube {
            None => crate::doctor::run_local(&s.probes, s.timeout).await,
            // As `doctor --pod` judges it: API-side checks and the in-pod probes.
            Some(k) => match pod_facts(k, pod.as_ref(), s.timeout).await {
                Ok(facts) => {
                    let c = k.cluster_of(pod.as_ref());
                    let exec = crate::probe::exec::exec_for(k.exec, &c.client);
                    crate::doctor::inpod::judge_pod(&facts, exec, s.timeout, &[]).await
                }
                Err(e) => {
                    // --pod: the pod table says why; -l: the fleet screen does.
                    if k.selector.is_none() {
                        let _ = tx.send(Update::Pods(Err(e))).await;
                    }
                    crate::doctor::Report::default()
                }
            },
        };
        let _ = tx.send(about(&pod, Update::Findings(report))).await;
    })
}

/// The facts of `pod` (`--pod`, or the fleet row chosen).
async fn pod_facts(
    k: &KubeTarget,
    pod: Option<&PodKey>,
    timeout: Duration,
) -> Result<crate::probe::k8s::PodFacts, String> {
    let c = k.cluster_of(pod);
    let ns = pod.map_or(&c.namespace, |p| &p.namespace);
    match pod.map(|p| p.name.clone()).or(k.pod.clone()) {
        Some(p) => crate::probe::k8s::pod_facts(&c.client, ns, &p, timeout).await,
        None => Err("no pod chosen yet (the fleet's first answer picks the worst)".into()),
    }
}

async fn pods(k: &KubeTarget, timeout: Duration) -> Result<Vec<PodRow>, String> {
    // --pod: one cluster.
    let c = k.cluster_of(None);
    let facts = match (&k.pod, &k.selector) {
        (Some(p), _) => {
            vec![crate::probe::k8s::pod_facts(&c.client, &c.namespace, p, timeout).await?]
        }
        (None, Some(sel)) => {
            crate::probe::k8s::fleet_facts(&c.client, &c.namespace, sel, timeout).await?
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
                unknown: r.summary.unknown + r.summary.crashed + r.summary.timed_out,
                first_problem: first,
            }
        })
        .collect())
}

/// A pod's live read on the fleet screen gives up after two refreshes (at least 2 s, at most
/// `--timeout`): one signer that hangs then shows as unreachable instead of holding every
/// row's refresh for the whole `--timeout`.
pub fn pod_deadline(refresh: Duration, timeout: Duration) -> Duration {
    (refresh * 2).max(Duration::from_secs(2)).min(timeout)
}

/// The fleet screen's source: the pods' API-side facts every 10 refreshes (pods, nodes, the
/// device plugin, events, logs), their live fields every refresh.
async fn fleet(
    k: KubeTarget,
    config: Option<std::path::PathBuf>,
    refresh: Duration,
    timeout: Duration,
    tx: Sender<Update>,
) {
    let fleet = crate::doctor::live::Fleet {
        clusters: k.clusters.clone(),
        selector: k.selector.clone().unwrap_or_default(),
        source: k.source.clone(),
        config,
        timeout,
        pod_timeout: pod_deadline(refresh, timeout),
        releases: Default::default(),
    };
    let mut listed: Option<(Instant, crate::doctor::live::Listed)> = None;
    // Each listed pod's API-side report, made once per listing (not every refresh).
    let mut bases: Vec<crate::doctor::Report> = Vec::new();
    let mut counters = Default::default();
    let mut backoff = cc_proto::Backoff::default();
    loop {
        // Every 10 refreshes the pods and their facts again (with the live fields, in the
        // same two rounds); in between the live fields alone.
        let mut rows: Vec<crate::doctor::live::Row> = match &listed {
            Some((t, _)) if t.elapsed() < refresh * 10 => {
                let Some((_, (pods, _))) = &listed else {
                    continue;
                };
                let refs: Vec<(usize, &k8s_openapi::api::core::v1::Pod)> =
                    pods.iter().map(|(i, f)| (*i, &f.pod)).collect();
                let (lives, c) = fleet.live(&refs, &counters).await;
                counters = c;
                pods.iter()
                    .zip(lives)
                    .zip(bases.iter().cloned())
                    .map(|(((i, f), live), base)| {
                        let cl = &fleet.clusters[*i];
                        let mut r = crate::doctor::live::Row::with_base(
                            cl.label(),
                            cl.namespace.clone(),
                            f,
                            base,
                            live,
                        );
                        r.cluster_index = *i;
                        r
                    })
                    .collect()
            }
            _ => {
                let snap = fleet.snapshot(&counters).await;
                counters = snap.counters;
                bases = snap
                    .listed
                    .iter()
                    .map(|(_, f)| crate::doctor::pod_report(f))
                    .collect();
                listed = Some((Instant::now(), (snap.listed, snap.errors)));
                snap.rows
            }
        };
        let Some((_, (_, errors))) = &listed else {
            continue;
        };
        crate::doctor::live::sort(&mut rows);
        // Every cluster failed to list: the table is not current.
        let all_failed = errors.len() == fleet.clusters.len();
        let update = if all_failed {
            Err(errors.join("; "))
        } else {
            Ok(FleetView {
                rows,
                errors: errors.iter().chain(&k.unusable).cloned().collect(),
                clusters: fleet.clusters.len() + k.unusable.len(),
            })
        };
        if tx.send(Update::Fleet(update)).await.is_err() {
            return;
        }
        if all_failed {
            listed = None;
            tokio::time::sleep(backoff.next_delay().max(refresh)).await;
        } else {
            backoff.reset();
            tokio::time::sleep(refresh).await;
        }
    }
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
        // The pod this stream is of; its lines are sent about it.
        let mut watching = k.watching.subscribe();
        let pod = watching.borrow_and_update().clone();
        let lines_of = |b: Vec<Vec<u8>>| about(&pod, Update::LogLines(b));
        let r = async {
            let facts = pod_facts(&k, pod.as_ref(), Duration::from_secs(10)).await?;
            let name = facts.pod.metadata.name.clone().unwrap_or_default();
            let c = k.cluster_of(pod.as_ref());
            let ns = facts
                .pod
                .metadata
                .namespace
                .as_deref()
                .unwrap_or(&c.namespace);
            let api: kube::Api<k8s_openapi::api::core::v1::Pod> =
                kube::Api::namespaced(c.client.clone(), ns);
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
                // Another pod chosen (even while this one's log is quiet): its log starts over.
                // A batch waits at most 50 ms for more lines.
                let wait = if batch.is_empty() {
                    Duration::from_secs(3600)
                } else {
                    Duration::from_millis(50)
                };
                let next = tokio::select! {
                    biased;
                    Ok(()) = watching.changed() => return Err(String::new()),
                    r = tokio::time::timeout(wait, lines.next()) => match r {
                        Ok(r) => r,
                        Err(_) => {
                            if !batch.is_empty()
                                && tx.send(lines_of(std::mem::take(&mut batch))).await.is_err()
                            {
                                return Ok(());
                            }
                            continue;
                        }
                    },
                };
                match next {
                    Some(Ok(l)) => {
                        batch.push(l.into_bytes());
                        if batch.len() >= BATCH
                            && tx.send(lines_of(std::mem::take(&mut batch))).await.is_err()
                        {
                            return Ok(());
                        }
                    }
                    None => {
                        let _ = tx.send(lines_of(batch)).await;
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
        match r {
            Err(e) if e.is_empty() => {
                resume = None;
                backoff.reset();
                continue;
            }
            Err(e) => {
                let _ = tx.send(about(&pod, Update::LogError(e))).await;
            }
            Ok(()) => return,
        }
        resume = Some(Instant::now());
        // Wait the backoff, or less when another pod is chosen meanwhile.
        tokio::select! {
            _ = tokio::time::sleep(backoff.next_delay()) => {}
            _ = watching.changed() => { resume = None; }
        }
    }
}
