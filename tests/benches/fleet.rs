//! The fleet over 200 pods served by the test API server with 50 ms latency per request
//! (the pod proxy too: every pod's `/status` and `/metrics` answer through it from one
//! loopback stand-in), side by side with one pod:
//! - `doctor -l` (whole processes) against `doctor --pod` and the one-after-another total;
//! - the dashboard's fleet screen (`ccctl::doctor::live::Fleet`, what `tui -l` runs): its first full
//!   table over 200 pods against the same over 1 pod (the limit: ≤ 2×), and a refresh
//!   (the live fields only) per pod.
//!
//! Run with `scripts/bench` or `cargo bench -p cc-tests --bench fleet`.

use std::process::Command;
use std::time::{Duration, Instant};

use cc_tests::apiserver::{ApiServer, Objects, device_plugin, healthy_pod, labelled_node};
use cc_tests::bin;

const PODS: usize = 200;
const LATENCY: Duration = Duration::from_millis(50);

fn run(kubeconfig: &std::path::Path, args: &[&str]) -> Duration {
    let t = Instant::now();
    let o = Command::new(bin("ccctl"))
        .arg("doctor")
        .args(args)
        .arg("-o")
        .arg("json")
        .env("KUBECONFIG", kubeconfig)
        .output()
        .expect("ccctl");
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    t.elapsed()
}

/// One loopback server answering `/status` (unsealed, 3 of 3) and `/metrics` for every pod.
async fn signer_stand_in() -> std::net::SocketAddr {
    use cc_proto::status::*;
    let status = Status {
        state: SealState::Unsealed,
        reason: None,
        platform: Platform::Software,
        attestation: Some(AttestationSummary {
            module_id: "bench".into(),
            timestamp_ms: 0,
            pcrs: [("PCR0".to_owned(), "ab".repeat(48))].into(),
            debug_mode: false,
        }),
        threshold: 2,
        holders: Vec::new(),
        log_forwarding: LogForwarding::default(),
        validator_keys: 1,
        uptime_seconds: 1,
        version: "bench".into(),
    };
    let body = serde_json::to_string(&status).unwrap();
    let app = axum::Router::new()
        .route("/status", axum::routing::get(move || async move { body }))
        .route(
            "/metrics",
            axum::routing::get(|| async {
                "containment_enclave_log_events_dropped_total 0\ncontainment_signing_requests_total{status=\"200\"} 10\n"
            }),
        );
    cc_tests::serve(app).await
}

async fn objects(pods: usize, signer: std::net::SocketAddr) -> Objects {
    let nodes: Vec<String> = (0..10).map(|i| format!("node-{i}")).collect();
    let mut o = Objects {
        pods: (0..pods)
            .map(|i| healthy_pod(&format!("signer-{i}"), "chamber", &nodes[i % 10]))
            .collect(),
        nodes: nodes.iter().map(|n| labelled_node(n)).collect(),
        daemonsets: vec![device_plugin(10, 10)],
        events: vec![],
        ..Default::default()
    };
    for i in 0..pods {
        cc_tests::proxy_to(&mut o, &format!("signer-{i}"), signer);
    }
    o
}

async fn fleet_of(kc: &std::path::Path) -> ccctl::doctor::live::Fleet {
    let timeout = Duration::from_secs(10);
    cc_tests::fleet_through(kc, "chamber", timeout, timeout).await
}

/// The fleet screen's first full table (a fresh client each time: connections included), and
/// one refresh of the live fields; medians of 5.
async fn screen(kc: &std::path::Path, pods: usize) -> (Duration, Duration) {
    let mut first = Vec::new();
    let mut refresh = Vec::new();
    for _ in 0..5 {
        let fleet = fleet_of(kc).await;
        let t = Instant::now();
        let snap = fleet.snapshot(&Default::default()).await;
        first.push(t.elapsed());
        assert_eq!(snap.rows.len(), pods);
        assert!(snap.rows.iter().all(|r| r.live.signer == "unsealed"));
        let refs: Vec<(usize, &k8s_openapi::api::core::v1::Pod)> =
            snap.listed.iter().map(|(i, f)| (*i, &f.pod)).collect();
        let t = Instant::now();
        let (lives, _) = fleet.live(&refs, &snap.counters).await;
        refresh.push(t.elapsed());
        assert!(lives.iter().all(|l| l.signing_rate.is_some()));
    }
    (median(first), median(refresh))
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let signer = signer_stand_in().await;
    let objects = objects(PODS, signer).await;
    let api = ApiServer::start_with_latency(objects, LATENCY).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let kc = api.kubeconfig(dir.path(), "chamber");
    let one_api = ApiServer::start_with_latency(objects_one(signer).await, LATENCY).await;
    let one_dir = tempfile::tempdir().expect("tempdir");
    let one_kc = one_api.kubeconfig(one_dir.path(), "chamber");
    let (screen_many, refresh_many) = screen(&kc, PODS).await;
    let (screen_one, refresh_one) = screen(&one_kc, 1).await;
    let (fleet, one) = tokio::task::spawn_blocking(move || {
        let fleet = median(
            (0..3)
                .map(|_| {
                    run(
                        &kc,
                        &[
                            "-l",
                            "app=containment-chamber",
                            "--exec",
                            "none",
                            "--scrape-interval",
                            "100ms",
                        ],
                    )
                })
                .collect(),
        );
        let one = median(
            (0..3)
                .map(|_| run(&kc, &["--pod", "signer-7", "--exec", "none"]))
                .collect(),
        );
        (fleet, one)
    })
    .await
    .expect("join");
    // Requests a fleet run makes: the list, the DaemonSet, 10 nodes, the namespace's pod
    // events, per pod one log read, and the live fields: /status and /metrics through the pod
    // proxy, twice (the rates).
    let requests = 1 + 1 + 10 + 1 + PODS + 4 * PODS;
    println!(
        "Fleet doctor, {PODS} pods on 10 nodes, test API server answering after {LATENCY:?}, median of 3 (whole processes):\n"
    );
    println!("| run | wall time |");
    println!("|---|---:|");
    println!(
        "| `doctor --pod` (one pod: pod, node, DaemonSet, events, log in sequence) | {:.0} ms |",
        one.as_secs_f64() * 1e3
    );
    println!(
        "| `doctor -l` over {PODS} pods (live fields: two reads 100 ms apart) | {:.0} ms |",
        fleet.as_secs_f64() * 1e3
    );
    println!(
        "| the same {requests} requests one after another (computed) | {:.0} ms |",
        (requests as f64) * LATENCY.as_secs_f64() * 1e3
    );
    println!(
        "\nFleet screen (`tui -l`), in process, median of 5 (fresh client each: connections included):\n"
    );
    println!("| run | 1 pod | {PODS} pods | ratio | limit |");
    println!("|---|---:|---:|---:|---:|");
    println!(
        "| first full table (list, facts, live) | {:.0} ms | {:.0} ms | {:.2}× | 2× |",
        screen_one.as_secs_f64() * 1e3,
        screen_many.as_secs_f64() * 1e3,
        screen_many.as_secs_f64() / screen_one.as_secs_f64(),
    );
    println!(
        "| refresh (live fields: 2 requests per pod, ≤ {} in flight) | {:.0} ms | {:.0} ms ({:.2} ms per pod) | {:.2}× | - |",
        ccctl::doctor::live::MAX_IN_FLIGHT,
        refresh_one.as_secs_f64() * 1e3,
        refresh_many.as_secs_f64() * 1e3,
        refresh_many.as_secs_f64() * 1e3 / PODS as f64,
        refresh_many.as_secs_f64() / refresh_one.as_secs_f64(),
    );
}

async fn objects_one(signer: std::net::SocketAddr) -> Objects {
    objects(1, signer).await
}
