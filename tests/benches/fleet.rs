//! Fleet doctor over 200 pods served by the test API server with 50 ms latency per request,
//! side by side with the slowest single pod (`doctor --pod`, its requests one after another)
//! and the one-after-another total for the fleet. Run with `scripts/bench`.

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

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let nodes: Vec<String> = (0..10).map(|i| format!("node-{i}")).collect();
    let objects = Objects {
        pods: (0..PODS)
            .map(|i| healthy_pod(&format!("signer-{i}"), "chamber", &nodes[i % 10]))
            .collect(),
        nodes: nodes.iter().map(|n| labelled_node(n)).collect(),
        daemonsets: vec![device_plugin(10, 10)],
        events: vec![],
        ..Default::default()
    };
    let api = ApiServer::start_with_latency(objects, LATENCY).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let kc = api.kubeconfig(dir.path(), "chamber");
    let (fleet, one) = tokio::task::spawn_blocking(move || {
        let fleet = median(
            (0..3)
                .map(|_| run(&kc, &["-l", "app=containment-chamber", "--exec", "none"]))
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
    // Requests a fleet run makes: the list, the DaemonSet, 10 nodes, per pod one events list
    // and one log read.
    let requests = 1 + 1 + 10 + 2 * PODS;
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
        "| `doctor -l` over {PODS} pods | {:.0} ms |",
        fleet.as_secs_f64() * 1e3
    );
    println!(
        "| the same {requests} requests one after another (computed) | {:.0} ms |",
        (requests as f64) * LATENCY.as_secs_f64() * 1e3
    );
}
