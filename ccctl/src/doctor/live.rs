//! The fleet, live: for every pod a selector matches — in one cluster or several — what its
//! signer says now, read through the API server's pod proxy ([`Source::PodProxy`]) or from a
//! Prometheus that scrapes the chambers ([`Source::Prometheus`]), judged with the pod's
//! API-side report by doctor's one verdict function, and one order: worst first. `doctor -l`
//! (JSON `live`) and the dashboard's fleet screen (`tui -l`) both read it from here.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;

use crate::doctor::cause::Level;
use crate::probe::http::Endpoint;
use crate::probe::k8s::PodFacts;

/// The pod ports read when the pod spec does not name them (DESIGN.md).
pub const API_PORT: u16 = 9000;
pub const METRICS_PORT: u16 = 3000;

/// The id of the check that shows the live fields in a report.
pub const CHECK_ID: &str = "enclave.live";

/// Live-field requests in flight at most, over the whole fleet: the API server's default
/// `--max-requests-inflight` for reads (400), so 200 pods are read in one round.
pub const MAX_IN_FLIGHT: usize = 400;

/// One cluster to look in: a kubeconfig context and the namespace there.
#[derive(Clone)]
pub struct Cluster {
    /// The context's name; `None`: the kubeconfig's current context.
    pub context: Option<String>,
    pub client: kube::Client,
    pub namespace: String,
}

impl Cluster {
    pub fn label(&self) -> String {
        self.context.clone().unwrap_or_else(|| "-".into())
    }
}

/// The clusters `--context` (repeatable) or `--all-contexts` name; none: the current context.
/// With several, a context whose client cannot be made (a certificate file gone, a bad server
/// URL) is returned beside the others as (name, why), so the rest are still looked at; Err
/// when none can be used.
pub async fn clusters(
    contexts: &[String],
    all: bool,
    namespace: Option<&str>,
) -> Result<(Vec<Cluster>, Vec<(String, String)>), String> {
    let names: Vec<Option<String>> = if all {
        let kc =
            kube::config::Kubeconfig::read().map_err(|e| format!("cannot read kubeconfig: {e}"))?;
        if kc.contexts.is_empty() {
            return Err("--all-contexts: the kubeconfig has no contexts".into());
        }
        kc.contexts.iter().map(|c| Some(c.name.clone())).collect()
    } else if contexts.is_empty() {
        vec![None]
    } else {
        contexts.iter().cloned().map(Some).collect()
    };
    let several = names.len() > 1;
    let mut out = Vec::new();
    let mut unusable = Vec::new();
    for c in names {
        let client = match crate::probe::k8s::client(c.as_deref()).await {
            Ok(client) => client,
            Err(e) => {
                let e = match &c {
                    Some(c) => format!("context '{c}': {e}"),
                    None => e,
                };
                if !several {
                    return Err(e);
                }
                unusable.push((c.unwrap_or_default(), e));
                continue;
            }
        };
        let namespace = match namespace {
            Some(n) => n.to_owned(),
            None => crate::probe::k8s::default_namespace(c.as_deref()).await,
        };
        out.push(Cluster {
            // The current context by its name (Prometheus' `cluster` label is matched to it).
            context: c.or_else(current_context),
            client,
            namespace,
        });
    }
    if out.is_empty() {
        let why: Vec<String> = unusable.into_iter().map(|(_, e)| e).collect();
        return Err(why.join("; "));
    }
    Ok((out, unusable))
}

/// The kubeconfig's current context.
pub fn current_context() -> Option<String> {
    kube::config::Kubeconfig::read().ok()?.current_context
}

/// `--prometheus URL` (env `CCCTL_PROMETHEUS`), for `doctor -l` and `tui -l`.
#[derive(Debug, Clone, clap::Args)]
pub struct SourceArgs {
    /// With -l: the pods' live fields (signer state, shares, drop and signing rates) from
    /// this Prometheus (`http://HOST:PORT`) instead of each pod's /status and /metrics
    /// through the API server's pod proxy.
    #[arg(
        long,
        env = "CCCTL_PROMETHEUS",
        value_name = "URL",
        requires = "selector"
    )]
    pub prometheus: Option<String>,
}

impl SourceArgs {
    pub fn source(&self) -> Result<Source, String> {
        match &self.prometheus {
            Some(url) => cc_proto::http::parse_base(url)
                .map(Source::Prometheus)
                .map_err(|e| format!("--prometheus: {e}")),
            None => Ok(Source::PodProxy),
        }
    }
}

/// Where the live fields come from.
#[derive(Clone, Debug)]
pub enum Source {
    /// Each pod's `/status` and `/metrics` through the API server (`pods/proxy`).
    PodProxy,
    /// The chambers' series in Prometheus (its HTTP API at this base address).
    Prometheus(cc_proto::Address),
}

/// What one pod's signer says now.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Live {
    /// `pod-proxy` or `prometheus`.
    pub source: &'static str,
    /// `unsealed`, `unsealing`, `sealed`, `failed`; `unreachable` when it did not answer;
    /// `unknown` when the source has nothing on it.
    pub signer: String,
    /// Why `unreachable` / `unknown`, or what could not be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pcr0: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pcr8: Option<String>,
    /// The key policies' verdict on the running PCR0/PCR8 (with `--config`): `released`,
    /// `not-released`, `unknown`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
    /// Shares released so far, and how many are needed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shares: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threshold: Option<u32>,
    /// Log events dropped per second (between two scrapes, or Prometheus' rate over 5m).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drop_rate: Option<f64>,
    /// Signing requests per second.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signing_rate: Option<f64>,
    /// Mean signing latency (milliseconds) over the same interval.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signing_latency_ms: Option<f64>,
    /// kms:Decrypt attempts so far by outcome (`decrypted`, `denied`, `unreachable`, `error`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub kms_decrypt: BTreeMap<String, f64>,
    /// Prometheus only (a range query): the highest drop rate over the last 5 minutes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drop_rate_peak_5m: Option<f64>,
    /// Unix milliseconds of the data (the read, or Prometheus' last scrape of the pod).
    pub at_ms: u64,
}

impl Live {
    fn unreachable(source: &'static str, error: String) -> Live {
        Live {
            signer: "unreachable".into(),
            ..Live::unknown(source, error)
        }
    }

    /// Not looked at: the source could not say (refused, no series).
    pub fn unknown(source: &'static str, error: String) -> Live {
        Live {
            source,
            signer: "unknown".into(),
            error: Some(crate::output::clean(&error)),
            pcr0: None,
            pcr8: None,
            release: None,
            shares: None,
            threshold: None,
            drop_rate: None,
            signing_rate: None,
            signing_latency_ms: None,
            kms_decrypt: BTreeMap::new(),
            drop_rate_peak_5m: None,
            at_ms: now_ms(),
        }
    }
}

impl Live {
    /// The signer's state for doctor's verdict: `None` when it was not looked at (`unknown`),
    /// so a refusal to proxy is not taken for a down signer.
    pub fn judged_signer(&self) -> Option<String> {
        (self.signer != "unknown").then(|| self.signer.clone())
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A pod's named container port (`api`, `metrics`), else the contract's default.
pub use crate::probe::k8s::named_port as port;

/// The pod's `/status` and `/metrics` through the API server's pod proxy.
pub fn endpoints(
    client: &kube::Client,
    namespace: &str,
    pod: &k8s_openapi::api::core::v1::Pod,
) -> (Endpoint, Endpoint) {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let at = |port| Endpoint::PodProxy {
        client: client.clone(),
        namespace: namespace.to_owned(),
        pod: name.clone(),
        port,
    };
    (
        at(port(pod, "api", API_PORT)),
        at(port(pod, "metrics", METRICS_PORT)),
    )
}

/// The counters a rate is taken from, and when they were read.
#[derive(Debug, Clone, Copy)]
pub struct Counters {
    pub at: Instant,
    pub dropped: Option<f64>,
    pub signing: Option<f64>,
    /// The signing latency histogram's `_sum` and `_count`.
    pub latency_sum: Option<f64>,
    pub latency_count: Option<f64>,
}

fn counters(s: &cc_proto::metrics::Samples) -> Counters {
    let sum = |prefix: &str| {
        let v: Vec<f64> = s
            .iter()
            .filter(|(k, _)| {
                k.as_str() == prefix || k.strip_prefix(prefix).is_some_and(|r| r.starts_with('{'))
            })
            .map(|(_, v)| *v)
            .collect();
        (!v.is_empty()).then(|| v.iter().sum())
    };
    let h = cc_proto::metrics::SIGNING_DURATION_SECONDS;
    Counters {
        at: Instant::now(),
        dropped: sum(cc_proto::metrics::LOG_EVENTS_DROPPED_TOTAL),
        signing: sum(cc_proto::metrics::SIGNING_REQUESTS_TOTAL),
        latency_sum: sum(&format!("{h}_sum")),
        latency_count: sum(&format!("{h}_count")),
    }
}

/// kms:Decrypt attempts by outcome, from one scrape.
fn kms_outcomes(s: &cc_proto::metrics::Samples) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for (k, v) in s {
        if let Some(labels) = k.strip_prefix(cc_proto::metrics::KMS_DECRYPT_TOTAL)
            && let Some(i) = labels.find("outcome=\"")
        {
            let rest = &labels[i + 9..];
            let outcome = rest.split('"').next().unwrap_or_default();
            *out.entry(crate::output::clean(outcome)).or_insert(0.0) += v;
        }
    }
    out
}

/// Mean milliseconds per request between two reads of the latency histogram.
fn mean_latency_ms(before: Option<Counters>, now: Counters) -> Option<f64> {
    let b = before?;
    let n = now.latency_count? - b.latency_count?;
    let t = now.latency_sum? - b.latency_sum?;
    (n > 0.0 && t >= 0.0).then(|| t / n * 1000.0)
}

/// Per second between two reads (a counter reset gives none).
fn rate(
    before: Option<Counters>,
    now: Counters,
    pick: fn(&Counters) -> Option<f64>,
) -> Option<f64> {
    let b = before?;
    let dt = now.at.duration_since(b.at).as_secs_f64();
    let (x, y) = (pick(&b)?, pick(&now)?);
    (dt > 0.0 && y >= x).then(|| (y - x) / dt)
}

/// Key-policy verdicts already taken, by (PCR0, PCR8): a fleet runs one release, so one
/// evaluation serves every pod that runs it — also on the first refresh, when every pod asks
/// at once: the first asks KMS, the others wait for its answer (one flight per pair).
#[derive(Default)]
pub struct ReleaseCache(std::sync::Mutex<BTreeMap<(String, String), ReleaseSlot>>);

type ReleaseSlot = std::sync::Arc<tokio::sync::Mutex<Option<(Instant, String)>>>;

/// How long a release verdict is reused.
const RELEASE_FOR: Duration = Duration::from_secs(60);

impl ReleaseCache {
    /// The key policies' verdict on the running `pcrs` (the enclave's `threshold` when the
    /// config gives none).
    async fn verdict(
        &self,
        config: &std::path::Path,
        pcrs: &cc_proto::pcr::PcrSet,
        threshold: Option<u32>,
        timeout: Duration,
    ) -> String {
        let hex = |i: u8| pcrs.get(i).map(|p| p.hex()).unwrap_or_default();
        self.get_or_judge((hex(0), hex(8)), async {
            match crate::policy::report_for_measurements(config, pcrs, threshold, timeout).await {
                Ok(r) if r.unreadable() => "unknown".to_owned(),
                Ok(r) if r.release_possible => "released".to_owned(),
                Ok(_) => "not-released".to_owned(),
                Err(_) => "unknown".to_owned(),
            }
        })
        .await
    }

    /// The verdict for `key` if one younger than [`RELEASE_FOR`] is kept; else `judge`'s,
    /// kept. Callers with the same key wait for one judge rather than each running theirs.
    pub async fn get_or_judge(
        &self,
        key: (String, String),
        judge: impl std::future::Future<Output = String>,
    ) -> String {
        let slot = {
            let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
            m.entry(key).or_default().clone()
        };
        let mut kept = slot.lock().await;
        if let Some((t, v)) = kept.as_ref()
            && t.elapsed() < RELEASE_FOR
        {
            return v.clone();
        }
        let v = judge.await;
        *kept = Some((Instant::now(), v.clone()));
        v
    }
}

/// One pod's live fields through the pod proxy. `before`: the pod's counters at the last
/// read (for the rates); returns the counters read now.
pub async fn read_pod(
    api: &Endpoint,
    metrics: &Endpoint,
    before: Option<Counters>,
    config: Option<&std::path::Path>,
    releases: &ReleaseCache,
    timeout: Duration,
    release_timeout: Duration,
) -> (Live, Option<Counters>) {
    let (status, scrape) = tokio::join!(
        crate::probe::status::fetch_at(api, timeout),
        crate::probe::metrics::fetch_at(metrics, timeout)
    );
    let status = match status {
        Ok(s) => s,
        // The API server refused to proxy (RBAC without pods/proxy, no such pod): the signer
        // was not looked at. Anything else (refused connection, no answer) is unreachable.
        Err(e)
            if ["HTTP 401", "HTTP 403", "HTTP 404"]
                .iter()
                .any(|c| e.contains(c)) =>
        {
            return (Live::unknown("pod-proxy", e), None);
        }
        Err(e) => return (Live::unreachable("pod-proxy", e), None),
    };
    let (now, metrics_error) = match &scrape {
        Ok(s) => (Some(counters(s)), None),
        Err(e) => (None, Some(e.clone())),
    };
    // The registers as /status gives them (untrusted text): one that is not 96 hex digits is
    // not shown, and no release verdict is judged on it.
    let bad: Vec<&str> = status
        .attestation
        .iter()
        .flat_map(|a| a.pcrs.iter())
        .filter(|(_, v)| !cc_proto::pcr::Pcr::is_valid(v))
        .map(|(k, _)| k.as_str())
        .collect();
    let pcr_error = (!bad.is_empty()).then(|| {
        crate::output::clean(&format!(
            "/status gave {} not as 96 hex digits",
            bad.join(", ")
        ))
    });
    let valid = |n: &str| {
        status
            .attestation
            .as_ref()
            .and_then(|a| match a.pcrs.get(n) {
                Some(v) if cc_proto::pcr::Pcr::is_valid(v) => Some(v.to_ascii_lowercase()),
                Some(_) => None,
                // /status omits all-zero registers: a missing PCR0 is the debug value.
                None if n == "PCR0" => Some("0".repeat(96)),
                None => None,
            })
    };
    let release = match (config, &status.attestation) {
        (Some(c), Some(a)) if pcr_error.is_none() => Some(
            releases
                .verdict(c, &a.pcr_set(), Some(status.threshold), release_timeout)
                .await,
        ),
        _ => None,
    };
    let live = Live {
        source: "pod-proxy",
        signer: status.state.as_str().to_owned(),
        error: match (metrics_error.map(|e| crate::output::clean(&e)), pcr_error) {
            (Some(a), Some(b)) => Some(format!("{a}; {b}")),
            (a, b) => a.or(b),
        },
        pcr0: valid("PCR0"),
        pcr8: valid("PCR8"),
        release,
        shares: Some(status.decrypted() as u32),
        threshold: Some(status.threshold),
        drop_rate: now.and_then(|n| rate(before, n, |c| c.dropped)),
        signing_rate: now.and_then(|n| rate(before, n, |c| c.signing)),
        signing_latency_ms: now.and_then(|n| mean_latency_ms(before, n)),
        kms_decrypt: scrape.as_ref().map(kms_outcomes).unwrap_or_default(),
        drop_rate_peak_5m: None,
        at_ms: now_ms(),
    };
    (live, now)
}

/// A pod's live fields from what Prometheus says of it.
pub fn from_prometheus(
    view: crate::probe::prometheus::PodView,
    context: Option<&str>,
    namespace: &str,
    pod: &str,
) -> Live {
    use crate::probe::prometheus::PodView;
    let unknown = |why: String| Live {
        at_ms: 0,
        ..Live::unknown("prometheus", why)
    };
    match view {
        PodView::Missing => unknown(format!(
            "Prometheus has no `up` series with namespace=\"{namespace}\", pod=\"{pod}\"{}: is the pod scraped?",
            context
                .map(|c| format!(" (and cluster=\"{c}\" or none)"))
                .unwrap_or_default()
        )),
        PodView::Ambiguous => unknown(format!(
            "Prometheus' series for namespace=\"{namespace}\", pod=\"{pod}\" carry no `cluster` label, and several clusters are watched: which cluster's pod they describe is not known (give the series a `cluster` label equal to the context's name)"
        )),
        PodView::Stale(age) => unknown(format!(
            "Prometheus' last scrape of this pod is {} old",
            crate::output::duration_short(age as u64)
        )),
        PodView::Down { scraped_ms } => Live {
            at_ms: scraped_ms,
            ..Live::unreachable(
                "prometheus",
                "Prometheus' last scrape of this pod failed (up == 0)".into(),
            )
        },
        PodView::Up {
            scraped_ms,
            state,
            drop_rate,
            signing_rate,
            latency_ms,
            shares,
            kms,
            drop_peak,
            pcrs,
            threshold,
        } => Live {
            signer: state.clone().unwrap_or_else(|| "unknown".into()),
            error: state.is_none().then(|| {
                format!(
                    "the pod is scraped but has no {} series",
                    cc_proto::metrics::SIGNER_STATE
                )
            }),
            shares: Some(shares),
            drop_rate,
            signing_rate,
            signing_latency_ms: latency_ms,
            kms_decrypt: kms,
            drop_rate_peak_5m: drop_peak,
            at_ms: scraped_ms,
            pcr8: pcrs.as_ref().map(|p| p.1.clone()).filter(|p| !p.is_empty()),
            pcr0: pcrs.map(|p| p.0),
            threshold,
            ..Live::unknown("prometheus", String::new())
        },
    }
}

/// One row of the fleet: the pod, its API-side report, its live fields, and the verdict on
/// both.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// The kubeconfig context (`-` for the current one).
    pub cluster: String,
    pub namespace: String,
    pub pod: String,
    pub node: Option<String>,
    pub phase: Option<String>,
    pub live: Live,
    pub report: crate::doctor::Report,
    /// Where the dashboard reads the pod (its cluster among those watched, its ports).
    #[serde(skip)]
    pub cluster_index: usize,
    #[serde(skip)]
    pub api_port: u16,
    #[serde(skip)]
    pub metrics_port: u16,
}

impl Row {
    /// The pod's API-side report judged with its signer's live state (doctor's verdict).
    pub fn new(cluster: String, namespace: String, facts: &PodFacts, live: Live) -> Row {
        Row::with_base(
            cluster,
            namespace,
            facts,
            crate::doctor::pod_report(facts),
            live,
        )
    }

    /// The same from the pod's API-side report already made (`pod_report(facts)`): a refresh
    /// of the live fields alone does not judge the pod's facts and log again.
    pub fn with_base(
        cluster: String,
        namespace: String,
        facts: &PodFacts,
        base: crate::doctor::Report,
        live: Live,
    ) -> Row {
        // The pod's API-side report, with the live check in it, judged by doctor's verdict
        // (the same code as `doctor -l`).
        let report = judge(base, Some(&live), crate::doctor::Report::default(), &[]);
        Row {
            cluster,
            namespace,
            pod: facts.pod.metadata.name.clone().unwrap_or_default(),
            node: facts.pod.spec.as_ref().and_then(|s| s.node_name.clone()),
            phase: facts.pod.status.as_ref().and_then(|s| s.phase.clone()),
            live,
            report,
            cluster_index: 0,
            api_port: port(&facts.pod, "api", API_PORT),
            metrics_port: port(&facts.pod, "metrics", METRICS_PORT),
        }
    }

    /// The top problem: the verdict's cause.
    pub fn top(&self) -> String {
        self.report
            .verdict
            .cause
            .clone()
            .unwrap_or_else(|| "-".into())
    }

    /// Worst first: DOWN, then DEGRADED, then HEALTHY; within a level, more errors, more
    /// warnings; then by cluster and name.
    pub fn rank(&self) -> impl Ord + use<> {
        let level = match self.report.verdict.level {
            Level::Down => 0u8,
            Level::Degraded => 1,
            Level::Healthy => 2,
        };
        (
            level,
            std::cmp::Reverse(self.report.summary.errors),
            std::cmp::Reverse(self.report.summary.warnings),
            self.cluster.clone(),
            self.pod.clone(),
        )
    }

    /// The pod's verdict level (doctor's).
    pub fn level(&self) -> Level {
        self.report.verdict.level
    }

    /// Words of the row that `/` filters on.
    pub fn haystack(&self) -> String {
        format!(
            "{} {}/{} {} {} {} {} {}",
            self.cluster,
            self.namespace,
            self.pod,
            self.node.as_deref().unwrap_or(""),
            self.phase.as_deref().unwrap_or(""),
            self.live.signer,
            self.level().as_str(),
            self.top()
        )
    }
}

/// A pod's report judged with what was read of it now: its API-side report (`base`), its
/// in-pod probes (`inside`, empty when not run) and its live read (`enclave.live`, leaving out
/// what the in-pod probes already raised). The signer judged is the in-pod probes' reading,
/// else the live one; then doctor's verdict. `doctor -l` and the fleet screen both call this.
/// `only`: `--checks` (empty: all).
pub fn judge(
    mut report: crate::doctor::Report,
    live: Option<&Live>,
    inside: crate::doctor::Report,
    only: &[String],
) -> crate::doctor::Report {
    let selected =
        |id: &str| only.is_empty() || only.iter().any(|o| crate::doctor::selects_id(id, o));
    report.signer = inside
        .signer
        .clone()
        .or_else(|| live.and_then(Live::judged_signer));
    if let Some(l) = live {
        let raised: std::collections::BTreeSet<String> = inside
            .checks
            .iter()
            .flat_map(|c| c.findings.iter().map(|f| f.code.clone()))
            .collect();
        let c = check_besides(l, &raised);
        if selected(&c.id) {
            report.checks.push(c);
        }
    }
    report
        .checks
        .extend(inside.checks.into_iter().filter(|c| selected(&c.id)));
    crate::doctor::merge_log_signatures(&mut report.checks);
    report.resummarise();
    report
}

/// Sort worst first: the fleet screen's order (`doctor -l` keeps the order the clusters list
/// their pods in, for scripts).
pub fn sort(rows: &mut [Row]) {
    rows.sort_by_key(|r| r.rank());
}

/// Doctor's row for the live read: what the signer said through the pod proxy (or
/// Prometheus), or why it said nothing.
pub fn check(live: &Live) -> crate::doctor::CheckResult {
    check_with(live, findings(live))
}

/// The same row when other checks of the pod (its in-pod probes) already raised some of
/// these codes: those are said once, by the other checks.
pub fn check_besides(
    live: &Live,
    raised: &std::collections::BTreeSet<String>,
) -> crate::doctor::CheckResult {
    let mut f = findings(live);
    f.retain(|f| !raised.contains(&f.code));
    check_with(live, f)
}

/// What the live fields show wrong, in the codes (and severities) doctor's local checks use
/// for the same thing.
fn findings(live: &Live) -> Vec<cc_proto::findings::Finding> {
    use cc_proto::findings::{Finding, Severity};
    let via = match live.source {
        "prometheus" => "in Prometheus",
        _ => "through the API server's pod proxy",
    };
    let mut findings = Vec::new();
    match live.signer.as_str() {
        // Nothing answered on the signer's port (as `enclave.api-unreachable` locally): an
        // error. `unknown` (the read was refused, or the source has nothing current): the
        // signer was not looked at, a warning.
        "unreachable" | "unknown" => findings.push(Finding::new(
            "enclave.pod-unreachable",
            if live.signer == "unreachable" {
                Severity::Error
            } else {
                Severity::Warn
            },
            format!(
                "the signer's /status could not be read {via}: {}",
                live.error.as_deref().unwrap_or(&live.signer)
            ),
        )),
        "failed" => findings.push(
            Finding::new(
                "enclave.failed",
                Severity::Error,
                format!("the signer failed (read {via})"),
            )
            .fix(
                "Read the reason and the kms and nsm findings of this pod",
                &["ccctl doctor --pod POD"],
            ),
        ),
        "sealed" | "unsealing" => findings.push(
            Finding::new(
                "enclave.sealed",
                Severity::Error,
                format!(
                    "the signer is {} (read {via}); signing answers 503",
                    live.signer
                ),
            )
            .with("state", live.signer.clone())
            .fix(
                "See the kms findings of this pod for the holders that did not release",
                &["ccctl doctor --pod POD"],
            ),
        ),
        _ => {}
    }
    // What the live fields show wrong, in the codes doctor's local checks use for it.
    if let Some(r) = live.drop_rate.filter(|r| *r > 0.0) {
        findings.push(
            Finding::new(
                "logs.events-dropped",
                Severity::Error,
                format!("the enclave is dropping log events: {r:.1}/s (read {via})"),
            )
            .with("rate_per_second", r),
        );
    }
    if live.release.as_deref() == Some("not-released") {
        findings.push(Finding::new(
            "policy.threshold-unmet",
            Severity::Error,
            format!(
                "fewer holders than the threshold would release their share to the running PCR0 {}…: after a restart the enclave cannot unseal (doctor --pod with --config, or the dashboard's overview of this pod, names the holders)",
                live.pcr0.as_deref().map(|p| p.chars().take(16).collect::<String>()).unwrap_or("?".into())
            ),
        ));
    }
    findings
}

fn check_with(
    live: &Live,
    findings: Vec<cc_proto::findings::Finding>,
) -> crate::doctor::CheckResult {
    let mut c = crate::doctor::CheckResult::of(
        CHECK_ID,
        "the signer's /status and /metrics, read through the API server's pod proxy or from Prometheus",
        findings,
    );
    c.observed = Some(live.observed());
    // The signer answered but part of the read did not (e.g. /metrics): the drop and signing
    // rates were not looked at, so the row is unknown, not passed.
    if c.findings.is_empty()
        && let Some(e) = &live.error
    {
        c.status = crate::doctor::CheckStatus::Unknown;
        // `render::check_text` says "unknown: " in front of it.
        c.note = Some(e.clone());
    }
    c
}

impl Live {
    /// A few words: `unsealed, 3 of 3 shares (threshold 2), 0 drops/s`.
    pub fn observed(&self) -> String {
        let mut out = self.signer.clone();
        if let Some(s) = self.shares {
            out += &format!(
                ", {s} of {} shares",
                self.threshold.map(|t| t.to_string()).unwrap_or("?".into())
            );
        }
        if let Some(r) = self.drop_rate {
            out += &format!(", {r:.1} drops/s");
        }
        if let Some(r) = &self.release {
            out += &format!(", release {r}");
        }
        out + &format!(" ({})", self.source)
    }
}

/// The fleet's rows and the counters each pod's rates continue from.
pub struct Snapshot {
    pub rows: Vec<Row>,
    /// Errors of clusters that could not be listed (each row of a cluster that answered
    /// stands).
    pub errors: Vec<String>,
    pub counters: BTreeMap<(String, String, String), Counters>,
    /// The pods' facts (for refreshes of the live fields alone).
    pub listed: Vec<(usize, PodFacts)>,
}

/// The pods listed (with their cluster's index) and the clusters that could not be listed.
pub type Listed = (Vec<(usize, PodFacts)>, Vec<String>);

/// Everything one refresh needs.
pub struct Fleet {
    pub clusters: Vec<Cluster>,
    pub selector: String,
    pub source: Source,
    pub config: Option<std::path::PathBuf>,
    /// Deadline of a listing, of the facts and of a release verdict.
    pub timeout: Duration,
    /// Deadline of one pod's live read: a signer that hangs is `unreachable` after this, and
    /// holds the refresh no longer (the fleet screen keeps it near its refresh).
    pub pod_timeout: Duration,
    pub releases: ReleaseCache,
}

impl Fleet {
    fn key(
        &self,
        cluster: usize,
        pod: &k8s_openapi::api::core::v1::Pod,
    ) -> (String, String, String) {
        let c = &self.clusters[cluster];
        (
            c.label(),
            c.namespace.clone(),
            pod.metadata.name.clone().unwrap_or_default(),
        )
    }

    /// Every listed pod's live fields (through the pod proxy at most [`MAX_IN_FLIGHT`]
    /// requests at once, or from Prometheus in one set of queries), and the counters the
    /// next read's rates continue from.
    pub async fn live(
        &self,
        listed: &[(usize, &k8s_openapi::api::core::v1::Pod)],
        before: &BTreeMap<(String, String, String), Counters>,
    ) -> (Vec<Live>, BTreeMap<(String, String, String), Counters>) {
        let mut counters = BTreeMap::new();
        match &self.source {
            Source::PodProxy => {
                // Two requests per pod.
                let sem = std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT / 2));
                let reads = futures::future::join_all(listed.iter().map(|(i, f)| {
                    let sem = sem.clone();
                    let k = self.key(*i, f);
                    let c = &self.clusters[*i];
                    async move {
                        let _permit = sem.acquire().await;
                        let (api, metrics) = endpoints(&c.client, &c.namespace, f);
                        read_pod(
                            &api,
                            &metrics,
                            before.get(&k).copied(),
                            self.config.as_deref(),
                            &self.releases,
                            self.pod_timeout,
                            self.timeout,
                        )
                        .await
                    }
                }))
                .await;
                let mut out = Vec::with_capacity(reads.len());
                for ((i, f), (live, now)) in listed.iter().zip(reads) {
                    if let Some(n) = now {
                        counters.insert(self.key(*i, f), n);
                    }
                    out.push(live);
                }
                (out, counters)
            }
            Source::Prometheus(base) => {
                let all = crate::probe::prometheus::fleet(base, self.timeout).await;
                let out = listed
                    .iter()
                    .map(|(i, f)| {
                        let c = &self.clusters[*i];
                        let name = f.metadata.name.clone().unwrap_or_default();
                        match &all {
                            Ok(series) => from_prometheus(
                                series.pod(
                                    c.context.as_deref(),
                                    &c.namespace,
                                    &name,
                                    self.clusters.len(),
                                ),
                                c.context.as_deref(),
                                &c.namespace,
                                &name,
                            ),
                            Err(e) => Live::unknown("prometheus", e.clone()),
                        }
                    })
                    .collect::<Vec<Live>>();
                // The key policies' verdict on each running PCR pair (once per pair a minute).
                let out = futures::future::join_all(out.into_iter().map(|mut l| async {
                    if let (Some(c), Some(p0)) = (&self.config, &l.pcr0) {
                        let mut pcrs = cc_proto::pcr::PcrSet::new();
                        for (i, hex) in [(0, Some(p0)), (8, l.pcr8.as_ref())] {
                            if let Some(p) = hex.and_then(|h| cc_proto::pcr::Pcr::parse(h).ok()) {
                                pcrs.set(i, p);
                            }
                        }
                        l.release = Some(
                            self.releases
                                .verdict(c, &pcrs, l.threshold, self.timeout)
                                .await,
                        );
                    }
                    l
                }))
                .await;
                (out, counters)
            }
        }
    }

    /// List, read live, judge and sort worst first: one refresh of the fleet screen. The
    /// pods are listed first; then their other facts (DaemonSet, nodes, events, logs) and
    /// their live fields are read at the same time: two rounds of requests in all.
    pub async fn snapshot(
        &self,
        before: &BTreeMap<(String, String, String), Counters>,
    ) -> Snapshot {
        let lists = futures::future::join_all(self.clusters.iter().map(|c| {
            crate::probe::k8s::list_pods(&c.client, &c.namespace, &self.selector, self.timeout)
        }))
        .await;
        let mut errors = Vec::new();
        let mut pods: Vec<(usize, k8s_openapi::api::core::v1::Pod)> = Vec::new();
        let mut per_cluster = Vec::new();
        for (i, r) in lists.into_iter().enumerate() {
            match r {
                Ok(items) => {
                    pods.extend(items.iter().cloned().map(|p| (i, p)));
                    per_cluster.push((i, items));
                }
                Err(e) => errors.push(format!("{}: {e}", self.clusters[i].label())),
            }
        }
        let refs: Vec<(usize, &k8s_openapi::api::core::v1::Pod)> =
            pods.iter().map(|(i, p)| (*i, p)).collect();
        let facts = futures::future::join_all(per_cluster.into_iter().map(|(i, items)| {
            let c = &self.clusters[i];
            async move {
                (
                    i,
                    crate::probe::k8s::facts_of(&c.client, &c.namespace, items, self.timeout).await,
                )
            }
        }));
        let (facts, (lives, counters)) = tokio::join!(facts, self.live(&refs, before));
        // Facts come back per cluster in the listed order, as the live fields do.
        let mut listed = Vec::new();
        let mut lives = lives.into_iter();
        let mut rows = Vec::new();
        for (i, r) in facts {
            let c = &self.clusters[i];
            let n = pods.iter().filter(|(j, _)| *j == i).count();
            let cluster_lives: Vec<Live> = lives.by_ref().take(n).collect();
            match r {
                Ok(fs) => {
                    for (f, live) in fs.into_iter().zip(cluster_lives) {
                        let mut row = Row::new(c.label(), c.namespace.clone(), &f, live);
                        row.cluster_index = i;
                        rows.push(row);
                        listed.push((i, f));
                    }
                }
                Err(e) => errors.push(format!("{}: {e}", c.label())),
            }
        }
        sort(&mut rows);
        Snapshot {
            rows,
            errors,
            counters,
            listed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cc_proto::findings::Severity;

    /// The first refresh: 50 pods running one release ask at once; the key policies are
    /// judged once, and every pod gets that verdict.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_release_is_judged_once_however_many_pods_ask_at_once() {
        let cache = ReleaseCache::default();
        let judged = std::sync::atomic::AtomicUsize::new(0);
        let key = ("ab".repeat(48), String::new());
        let verdicts = futures::future::join_all((0..50).map(|_| {
            cache.get_or_judge(key.clone(), async {
                judged.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(50)).await;
                "released".to_owned()
            })
        }))
        .await;
        assert_eq!(judged.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert!(verdicts.iter().all(|v| v == "released"));
        // Another release is judged on its own.
        let other = cache
            .get_or_judge(("cd".repeat(48), String::new()), async {
                "not-released".to_owned()
            })
            .await;
        assert_eq!(other, "not-released");
    }

    fn live(signer: &str) -> Live {
        Live {
            source: "pod-proxy",
            signer: signer.into(),
            error: None,
            pcr0: None,
            pcr8: None,
            release: None,
            shares: Some(3),
            threshold: Some(2),
            drop_rate: Some(0.0),
            signing_rate: Some(0.0),
            signing_latency_ms: None,
            kms_decrypt: BTreeMap::new(),
            drop_rate_peak_5m: None,
            at_ms: 0,
        }
    }

    #[test]
    fn worst_first_and_judged_by_doctors_verdict() {
        let facts = |n: &str| PodFacts {
            pod: cc_sandbox_free_pod(n),
            node: None,
            device_plugin: None,
            events: vec![],
            logs: None,
            unread: Default::default(),
        };
        let mut dropping = live("unsealed");
        dropping.drop_rate = Some(4.0);
        let mut refused = live("unsealed");
        refused.release = Some("not-released".into());
        let mut rows = vec![
            Row::new("a".into(), "ns".into(), &facts("p-ok"), live("unsealed")),
            Row::new("a".into(), "ns".into(), &facts("p-drop"), dropping),
            Row::new(
                "b".into(),
                "ns".into(),
                &facts("p-down"),
                live("unreachable"),
            ),
            Row::new("a".into(), "ns".into(), &facts("p-refused"), refused),
            Row::new("a".into(), "ns".into(), &facts("p-sealed"), live("sealed")),
        ];
        sort(&mut rows);
        let order: Vec<&str> = rows.iter().map(|r| r.pod.as_str()).collect();
        // DOWN first (one error each, as doctor's local checks raise it: enclave.sealed and
        // enclave.pod-unreachable; then by cluster), then the two whose live fields raised an
        // error, then the rest.
        assert_eq!(order, ["p-sealed", "p-down", "p-drop", "p-refused", "p-ok"]);
        let codes = |r: &Row| -> Vec<(String, Severity)> {
            r.report
                .findings()
                .map(|f| (f.code.clone(), f.severity))
                .collect()
        };
        let has = |r: &Row, code: &str, s: Severity| codes(r).contains(&(code.to_owned(), s));
        assert!(has(&rows[0], "enclave.sealed", Severity::Error));
        assert!(has(&rows[1], "enclave.pod-unreachable", Severity::Error));
        assert!(has(&rows[2], "logs.events-dropped", Severity::Error));
        assert!(has(&rows[3], "policy.threshold-unmet", Severity::Error));
        assert_eq!(rows[0].level(), Level::Down);
        assert_eq!(rows[1].level(), Level::Down);
        assert_eq!(rows[3].level(), Level::Degraded);
        // Not looked at (the read refused): a warning, and the signer not judged.
        let unknown = Row::new(
            "a".into(),
            "ns".into(),
            &facts("p-403"),
            Live::unknown("pod-proxy", "HTTP 403 Forbidden".into()),
        );
        assert!(has(&unknown, "enclave.pod-unreachable", Severity::Warn));
        assert_eq!(unknown.report.signer, None);
    }

    /// What the pod's in-pod probes already raised, the live row does not say again.
    #[test]
    fn the_live_row_leaves_to_the_in_pod_probes_what_they_said() {
        let mut l = live("sealed");
        l.drop_rate = Some(2.0);
        let raised = ["enclave.sealed".to_owned()].into_iter().collect();
        let c = check_besides(&l, &raised);
        let codes: Vec<&str> = c.findings.iter().map(|f| f.code.as_str()).collect();
        assert_eq!(codes, ["logs.events-dropped"]);
        assert_eq!(check(&l).findings.len(), 2);
    }

    /// A pod without the device plugin facts: the pod checks judge only what they see.
    fn cc_sandbox_free_pod(name: &str) -> k8s_openapi::api::core::v1::Pod {
        let mut p = k8s_openapi::api::core::v1::Pod::default();
        p.metadata.name = Some(name.into());
        p
    }

    #[test]
    fn rates_need_two_reads_and_no_reset() {
        let t = Instant::now();
        let a = Counters {
            at: t,
            dropped: Some(10.0),
            signing: Some(5.0),
            latency_sum: Some(1.0),
            latency_count: Some(5.0),
        };
        let b = Counters {
            at: t + Duration::from_secs(2),
            dropped: Some(14.0),
            signing: Some(1.0),
            latency_sum: Some(1.5),
            latency_count: Some(10.0),
        };
        assert_eq!(rate(None, b, |c| c.dropped), None);
        assert_eq!(rate(Some(a), b, |c| c.dropped), Some(2.0));
        // A restarted enclave's counter went down: no rate, not a negative one.
        assert_eq!(rate(Some(a), b, |c| c.signing), None);
        // 0.5 s over 5 requests.
        assert_eq!(mean_latency_ms(Some(a), b), Some(100.0));
        let s = cc_proto::metrics::parse(
            "containment_kms_decrypt_total{holder=\"a\",outcome=\"denied\"} 2\n\
             containment_kms_decrypt_total{holder=\"b\",outcome=\"denied\"} 1\n\
             containment_kms_decrypt_total{holder=\"c\",outcome=\"decrypted\"} 1\n",
        )
        .unwrap();
        assert_eq!(
            kms_outcomes(&s),
            BTreeMap::from([("decrypted".into(), 1.0), ("denied".into(), 3.0)])
        );
    }
}
