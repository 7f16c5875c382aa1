//! Prometheus as the fleet's source (`--prometheus URL`): the chambers' series read with the
//! HTTP API's instant queries (`GET /api/v1/query`) instead of scraping every pod.
//!
//! Series are mapped to pods by their `namespace` and `pod` labels (what Prometheus'
//! Kubernetes service discovery and a prometheus-operator ServiceMonitor attach to every
//! target), and by `cluster` when the series carry one (an external label, or a relabelling
//! in a multi-cluster setup): it must equal the kubeconfig context's name. Series without
//! `cluster` match a pod of that namespace and name when one cluster is watched; with
//! several they are ambiguous ([`PodView::Ambiguous`]). Two `up` series for one pod: the
//! failing one and the older scrape count.
//!
//! What is read, per pod (ten instant queries and one range query per refresh, at once):
//! - `up` and `timestamp(up)`: whether Prometheus' last scrape of the pod answered, and when;
//! - `containment_signer_state == 1`: the signer's state (its `state` label);
//! - `sum by (cluster, namespace, pod) (rate(containment_enclave_log_events_dropped_total[5m]))`;
//! - `sum by (cluster, namespace, pod) (rate(containment_signing_requests_total[5m]))`;
//! - `count by (cluster, namespace, pod) (containment_kms_decrypt_total{outcome="decrypted"} > 0)`:
//!   holders whose share was released;
//! - `sum by (cluster, namespace, pod, outcome) (containment_kms_decrypt_total)`: decrypt
//!   attempts by outcome;
//! - the mean signing latency, `rate(…_sum[5m]) / rate(…_count[5m])` of
//!   `containment_signing_duration_seconds`;
//! - a range query (`/api/v1/query_range`, the last 5 minutes at 15 s steps) of the drop
//!   rate over 1m windows: its peak;
//! - `containment_enclave_measurement_info == 1`: the running PCR0 and PCR8 (its `pcr0` and
//!   `pcr8` labels), and `max by (cluster, namespace, pod) (containment_signer_threshold)`.
//!
//! An enclave server older than these two series gives no PCRs or threshold: those columns
//! then say `not exported` instead of guessing.

use std::collections::BTreeMap;
use std::time::Duration;

use cc_proto::Address;

/// A scrape older than this is not current: the signer's state is then `unknown`.
pub const STALE_AFTER: Duration = Duration::from_secs(60);

type Key = (Option<String>, String, String);

/// Sets one field of a pod's series from a sample (its labels, its value).
type Setter = dyn Fn(&mut PodSeries, &BTreeMap<String, String>, f64);

/// One instant query's answer: each series' labels and (sample time, value).
pub type Vector = Vec<(BTreeMap<String, String>, f64, f64)>;

/// Run an instant query.
pub async fn query(base: &Address, promql: &str, timeout: Duration) -> Result<Vector, String> {
    let q = percent_encoding::utf8_percent_encode(promql, percent_encoding::NON_ALPHANUMERIC);
    let v = api(base, &format!("/api/v1/query?query={q}"), promql, timeout).await?;
    let result = v["data"]["result"]
        .as_array()
        .ok_or_else(|| format!("Prometheus at {base}: '{promql}' gave no vector"))?;
    let mut out = Vector::new();
    for s in result {
        let labels = labels(&s["metric"]);
        let at = s["value"][0].as_f64();
        let val = s["value"][1].as_str().and_then(|x| x.parse::<f64>().ok());
        if let (Some(at), Some(val)) = (at, val) {
            out.push((labels, at, val));
        }
    }
    Ok(out)
}

fn key(labels: &BTreeMap<String, String>) -> Option<Key> {
    Some((
        labels.get("cluster").cloned(),
        labels.get("namespace")?.clone(),
        labels.get("pod")?.clone(),
    ))
}

/// Run a range query over the last `window` at `step`: each series' labels and values.
pub async fn query_range(
    base: &Address,
    promql: &str,
    window: Duration,
    step: Duration,
    timeout: Duration,
) -> Result<Vec<(BTreeMap<String, String>, Vec<f64>)>, String> {
    let end = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    let q = percent_encoding::utf8_percent_encode(promql, percent_encoding::NON_ALPHANUMERIC);
    let path = format!(
        "/api/v1/query_range?query={q}&start={:.3}&end={end:.3}&step={}",
        end - window.as_secs_f64(),
        step.as_secs_f64()
    );
    let v = api(base, &path, promql, timeout).await?;
    let result = v["data"]["result"]
        .as_array()
        .ok_or_else(|| format!("Prometheus at {base}: '{promql}' gave no matrix"))?;
    Ok(result
        .iter()
        .map(|s| {
            let values = s["values"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|p| p[1].as_str().and_then(|x| x.parse::<f64>().ok()))
                        .collect()
                })
                .unwrap_or_default();
            (labels(&s["metric"]), values)
        })
        .collect())
}

/// GET an API path; the JSON when `status` is `success`.
async fn api(
    base: &Address,
    path: &str,
    promql: &str,
    timeout: Duration,
) -> Result<serde_json::Value, String> {
    let r = super::http::get(base, path, timeout)
        .await
        .map_err(|e| format!("Prometheus at {base}: {e}"))?;
    let v: serde_json::Value = serde_json::from_slice(&r.body).map_err(|e| {
        format!(
            "Prometheus at {base} answered HTTP {} with something that is not its API's JSON: {e}",
            r.status
        )
    })?;
    if v["status"] != "success" {
        return Err(format!(
            "Prometheus at {base}: query '{promql}' failed: {}",
            crate::output::clean(v["error"].as_str().unwrap_or("no error given"))
        ));
    }
    Ok(v)
}

fn labels(m: &serde_json::Value) -> BTreeMap<String, String> {
    m.as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), crate::output::clean(v.as_str().unwrap_or(""))))
                .collect()
        })
        .unwrap_or_default()
}

#[derive(Debug, Default, Clone)]
struct PodSeries {
    up: Option<f64>,
    scraped: Option<f64>,
    state: Option<String>,
    drop_rate: Option<f64>,
    signing_rate: Option<f64>,
    latency_ms: Option<f64>,
    shares: Option<u32>,
    kms: BTreeMap<String, f64>,
    drop_peak: Option<f64>,
    pcrs: Option<(String, String)>,
    threshold: Option<u32>,
}

/// The chambers' series, by pod.
#[derive(Debug, Default)]
pub struct Series {
    pods: BTreeMap<Key, PodSeries>,
    /// Prometheus' clock at the query (the "now" sample ages are taken from).
    now: f64,
}

/// Read every chamber's series (one query per field, concurrently).
pub async fn fleet(base: &Address, timeout: Duration) -> Result<Series, String> {
    const BY: &str = "sum by (cluster, namespace, pod)";
    // Per pod, the per-second rate of a counter over `window`.
    let rate = |series: &str, window: &str| format!("{BY} (rate({series}[{window}]))");
    let drops = rate(cc_proto::metrics::LOG_EVENTS_DROPPED_TOTAL, "5m");
    let signing = rate(cc_proto::metrics::SIGNING_REQUESTS_TOTAL, "5m");
    let shares = format!(
        "count by (cluster, namespace, pod) ({}{{outcome=\"decrypted\"}} > 0)",
        cc_proto::metrics::KMS_DECRYPT_TOTAL
    );
    let state = format!("{} == 1", cc_proto::metrics::SIGNER_STATE);
    let h = cc_proto::metrics::SIGNING_DURATION_SECONDS;
    let latency = format!(
        "1000 * {} / {}",
        rate(&format!("{h}_sum"), "5m"),
        rate(&format!("{h}_count"), "5m")
    );
    let kms = format!(
        "sum by (cluster, namespace, pod, outcome) ({})",
        cc_proto::metrics::KMS_DECRYPT_TOTAL
    );
    let peak = rate(cc_proto::metrics::LOG_EVENTS_DROPPED_TOTAL, "1m");
    let measured = format!("{} == 1", cc_proto::metrics::MEASUREMENT_INFO);
    let threshold = format!(
        "max by (cluster, namespace, pod) ({})",
        cc_proto::metrics::SIGNER_THRESHOLD
    );
    let (up, scraped, state, drops, signing, shares, latency, kms, measured, threshold, peak) = tokio::join!(
        query(base, "up", timeout),
        query(base, "timestamp(up)", timeout),
        query(base, &state, timeout),
        query(base, &drops, timeout),
        query(base, &signing, timeout),
        query(base, &shares, timeout),
        query(base, &latency, timeout),
        query(base, &kms, timeout),
        query(base, &measured, timeout),
        query(base, &threshold, timeout),
        query_range(
            base,
            &peak,
            Duration::from_secs(300),
            Duration::from_secs(15),
            timeout
        ),
    );
    let mut out = Series::default();
    let mut each = |v: Vector, f: &Setter| absorb(&mut out, v, f);
    each(up?, &worst_up);
    each(scraped?, &oldest_scrape);
    each(state?, &|p, l, _| p.state = l.get("state").cloned());
    each(drops?, &|p, _, v| p.drop_rate = Some(v));
    each(signing?, &|p, _, v| p.signing_rate = Some(v));
    each(shares?, &|p, _, v| p.shares = Some(v as u32));
    each(latency?, &|p, _, v| {
        p.latency_ms = v.is_finite().then_some(v)
    });
    each(kms?, &|p, l, v| {
        if let Some(o) = l.get("outcome") {
            p.kms.insert(o.clone(), v);
        }
    });
    each(measured?, &|p, l, _| {
        // Only a well-formed register is taken (the labels are the pod's own words).
        let pcr = |n: &str| {
            l.get(n)
                .filter(|v| v.is_empty() || cc_proto::pcr::Pcr::parse(v).is_ok())
                .cloned()
        };
        if let (Some(p0), Some(p8)) = (pcr("pcr0"), pcr("pcr8"))
            && !p0.is_empty()
        {
            p.pcrs = Some((p0, p8));
        }
    });
    each(threshold?, &|p, _, v| {
        p.threshold = (v.is_finite() && v >= 0.0 && v <= f64::from(u32::MAX)).then_some(v as u32)
    });
    for (labels, values) in peak? {
        if let Some(k) = key(&labels) {
            out.pods.entry(k).or_default().drop_peak = values.into_iter().reduce(f64::max);
        }
    }
    Ok(out)
}

/// `up` of a pod; several series for one pod (two scrape jobs): the worst counts.
fn worst_up(p: &mut PodSeries, _: &BTreeMap<String, String>, v: f64) {
    p.up = Some(p.up.map_or(v, |u| u.min(v)));
}

/// `timestamp(up)` of a pod; several: the oldest counts.
fn oldest_scrape(p: &mut PodSeries, _: &BTreeMap<String, String>, v: f64) {
    p.scraped = Some(p.scraped.map_or(v, |u| u.min(v)));
}

/// Take one query's answer into `out`: each sample into its pod's series by `f`.
fn absorb(out: &mut Series, v: Vector, f: &Setter) {
    for (labels, at, val) in v {
        out.now = out.now.max(at);
        if let Some(k) = key(&labels) {
            f(out.pods.entry(k).or_default(), &labels, val);
        }
    }
}

/// What Prometheus says of one pod.
#[derive(Debug, Clone, PartialEq)]
pub enum PodView {
    /// No `up` series for the pod (not scraped, or labelled otherwise).
    Missing,
    /// Only series without a `cluster` label, while several clusters are watched: which
    /// cluster's pod of that name they describe is not known.
    Ambiguous,
    /// The last scrape is this many seconds old (older than [`STALE_AFTER`]).
    Stale(f64),
    /// The last scrape failed (`up == 0`).
    Down { scraped_ms: u64 },
    /// The last scrape answered.
    Up {
        scraped_ms: u64,
        /// The `state` label of `containment_signer_state == 1`, when there is one.
        state: Option<String>,
        drop_rate: Option<f64>,
        signing_rate: Option<f64>,
        latency_ms: Option<f64>,
        shares: u32,
        kms: BTreeMap<String, f64>,
        drop_peak: Option<f64>,
        /// The running PCR0 and PCR8 (empty: unsigned), when the enclave exports them.
        pcrs: Option<(String, String)>,
        threshold: Option<u32>,
    },
}

impl Series {
    /// The pod's series: those whose `cluster` label is `context`; else, when one cluster is
    /// watched (`clusters`), those without a `cluster` label. With several clusters a series
    /// without one could be any cluster's pod of that name (StatefulSets name them alike):
    /// [`PodView::Ambiguous`], never another cluster's data under this row.
    pub fn pod(
        &self,
        context: Option<&str>,
        namespace: &str,
        pod: &str,
        clusters: usize,
    ) -> PodView {
        let exact = context.and_then(|c| {
            self.pods
                .get(&(Some(c.to_owned()), namespace.to_owned(), pod.to_owned()))
        });
        let any = self.pods.get(&(None, namespace.to_owned(), pod.to_owned()));
        let s = match (exact, any) {
            (Some(s), _) => s,
            (None, Some(_)) if clusters > 1 => return PodView::Ambiguous,
            (None, Some(s)) => s,
            (None, None) => return PodView::Missing,
        };
        let (Some(up), Some(scraped)) = (s.up, s.scraped) else {
            return PodView::Missing;
        };
        let age = self.now - scraped;
        let scraped_ms = (scraped * 1000.0) as u64;
        if age > STALE_AFTER.as_secs_f64() {
            PodView::Stale(age)
        } else if up < 1.0 {
            PodView::Down { scraped_ms }
        } else {
            PodView::Up {
                scraped_ms,
                state: s.state.clone(),
                drop_rate: s.drop_rate,
                signing_rate: s.signing_rate,
                latency_ms: s.latency_ms,
                shares: s.shares.unwrap_or(0),
                kms: s.kms.clone(),
                drop_peak: s.drop_peak,
                pcrs: s.pcrs.clone(),
                threshold: s.threshold,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(labels: &[(&str, &str)], at: f64, v: f64) -> (BTreeMap<String, String>, f64, f64) {
        (
            labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            at,
            v,
        )
    }

    /// `up` and `timestamp(up)` as `fleet` takes them in.
    fn series(up: Vector, scraped: Vector) -> Series {
        let mut out = Series::default();
        absorb(&mut out, up, &worst_up);
        absorb(&mut out, scraped, &oldest_scrape);
        out
    }

    const POD: [(&str, &str); 2] = [("namespace", "ns"), ("pod", "signer-0")];

    #[test]
    fn a_series_without_cluster_label_is_one_clusters_not_several() {
        let s = series(
            vec![sample(&POD, 100.0, 1.0)],
            vec![sample(&POD, 100.0, 99.0)],
        );
        assert!(matches!(
            s.pod(Some("eu-1"), "ns", "signer-0", 1),
            PodView::Up { .. }
        ));
        // Two clusters watched, both with a signer-0: whose is it? Neither row takes it.
        assert_eq!(s.pod(Some("eu-1"), "ns", "signer-0", 2), PodView::Ambiguous);
        assert_eq!(s.pod(Some("eu-1"), "ns", "signer-1", 1), PodView::Missing);
    }

    #[test]
    fn a_series_labelled_with_the_cluster_is_that_clusters() {
        let eu = [POD[0], POD[1], ("cluster", "eu-1")];
        let us = [POD[0], POD[1], ("cluster", "us-2")];
        let s = series(
            vec![sample(&eu, 100.0, 1.0), sample(&us, 100.0, 0.0)],
            vec![sample(&eu, 100.0, 99.0), sample(&us, 100.0, 99.0)],
        );
        assert!(matches!(
            s.pod(Some("eu-1"), "ns", "signer-0", 2),
            PodView::Up { .. }
        ));
        assert_eq!(
            s.pod(Some("us-2"), "ns", "signer-0", 2),
            PodView::Down { scraped_ms: 99_000 }
        );
        assert_eq!(s.pod(Some("ap-3"), "ns", "signer-0", 2), PodView::Missing);
    }

    #[test]
    fn stale_and_duplicate_scrapes_count_the_worst() {
        // Two scrape jobs of one pod: one answers, one does not; the older scrape counts.
        let s = series(
            vec![sample(&POD, 200.0, 1.0), sample(&POD, 200.0, 0.0)],
            vec![sample(&POD, 200.0, 190.0), sample(&POD, 200.0, 195.0)],
        );
        assert_eq!(
            s.pod(None, "ns", "signer-0", 1),
            PodView::Down {
                scraped_ms: 190_000
            }
        );
        // The last scrape older than STALE_AFTER: stale, whatever `up` says.
        let old = 200.0 - STALE_AFTER.as_secs_f64() - 1.0;
        let s = series(
            vec![sample(&POD, 200.0, 1.0)],
            vec![sample(&POD, 200.0, old)],
        );
        assert!(matches!(s.pod(None, "ns", "signer-0", 1), PodView::Stale(a) if a > 60.0));
        // No `up` at all, only another series: missing.
        let s = series(Vec::new(), vec![sample(&POD, 200.0, 199.0)]);
        assert_eq!(s.pod(None, "ns", "signer-0", 1), PodView::Missing);
    }
}
