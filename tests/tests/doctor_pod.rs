//! `ccctl doctor --pod`: the real `kube` client (kubeconfig, context namespace, `-n`) against a
//! loopback server that answers like the Kubernetes API server with k8s-openapi objects.

use std::collections::BTreeSet;
use std::process::Command;

use cc_tests::apiserver::{
    ApiServer, Objects, device_plugin, healthy_pod, labelled_node, warning_event,
};
use cc_tests::bin;

/// A signer stand-in: `/status` answers `status`, `/metrics` no drops.
fn signer_answering(status: String) -> axum::Router {
    axum::Router::new()
        .route("/status", axum::routing::get(move || async move { status }))
        .route(
            "/metrics",
            axum::routing::get(|| async { "containment_enclave_log_events_dropped_total 0\n" }),
        )
}

/// `doctor -l` over the chamber pods, API side and live fields, as JSON.
const FLEET_JSON: &[&str] = &[
    "-l",
    "app=containment-chamber",
    "--exec",
    "none",
    "-o",
    "json",
];

/// `doctor ARGS` off the async runtime (the API double runs on it).
async fn doctor_off(kubeconfig: &std::path::Path, args: &[&str]) -> (Option<i32>, String, String) {
    let kc = kubeconfig.to_owned();
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        doctor(&kc, &args)
    })
    .await
    .unwrap()
}

fn doctor(kubeconfig: &std::path::Path, args: &[&str]) -> (Option<i32>, String, String) {
    let o = Command::new(bin("ccctl"))
        .args(["doctor"])
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_deployed_as_the_chart_does_passes() {
    let dir = tempfile::tempdir().unwrap();
    let api = ApiServer::start(Objects {
        pods: vec![healthy_pod("signer-0", "chamber", "node-a")],
        nodes: vec![labelled_node("node-a")],
        daemonsets: vec![device_plugin(3, 3)],
        events: vec![],
        ..Default::default()
    })
    .await;
    let kc = api.kubeconfig(dir.path(), "chamber");
    // The namespace comes from the context.
    let (code, out, err) =
        tokio::task::spawn_blocking(move || doctor(&kc, &["--pod", "signer-0", "-o", "json"]))
            .await
            .unwrap();
    // The in-pod probes go through the API's exec (WebSocket), which this test server refuses
    // here (403, as without RBAC for pods/exec): reported as a warning; the API-side checks
    // all pass.
    assert_eq!(code, Some(0), "{out}{err}");
    assert_eq!(
        cc_tests::finding_codes(&out),
        BTreeSet::from(["enclave.in-pod-probe-failed".to_owned()]),
        "{out}"
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["summary"]["checks"], 8);
    // The failed exec in words, one line: not the client's `ApiError … Status {…}` dump
    // (issue 13 #8).
    let summary = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["findings"].as_array().unwrap())
        .find(|f| f["code"] == "enclave.in-pod-probe-failed")
        .and_then(|f| f["summary"].as_str())
        .unwrap_or_default()
        .to_owned();
    assert!(
        summary
            .contains("the API server answered HTTP 403 Forbidden: pods \"signer-0\" is forbidden"),
        "{out}"
    );
    assert!(
        !summary.contains("Status {") && !summary.contains("ApiError"),
        "{summary}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_pod_level_fault_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let mut pod = healthy_pod("signer-1", "prod", "node-b");
    let spec = pod.spec.as_mut().unwrap();
    spec.volumes = None;
    spec.containers[0].resources = None;
    pod.status.as_mut().unwrap().phase = Some("Pending".into());
    let mut node = labelled_node("node-b");
    node.metadata.labels = None;
    let api = ApiServer::start(Objects {
        pods: vec![pod],
        nodes: vec![node],
        daemonsets: vec![],
        events: vec![warning_event(
            "prod",
            "signer-1",
            "FailedScheduling",
            "0/3 nodes are available: \u{1b}[31minsufficient aws.ec2.nitro/nitro_enclaves\u{1b}[0m",
        )],
        ..Default::default()
    })
    .await;
    let kc = api.kubeconfig(dir.path(), "default");
    let kc2 = kc.clone();
    let (code, out, _) = tokio::task::spawn_blocking(move || {
        doctor(
            &kc2,
            &[
                "--pod", "signer-1", "-n", "prod", "-o", "json", "--exec", "none",
            ],
        )
    })
    .await
    .unwrap();
    assert_eq!(code, Some(1));
    let want: BTreeSet<String> = [
        "enclave.pod-not-running",
        "nsm.device-not-requested",
        "enclave.hugepages-not-requested",
        "enclave.hugepages-not-mounted",
        "nsm.device-plugin-missing",
        "nsm.node-not-labelled",
        "enclave.pod-warnings",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    assert_eq!(cc_tests::finding_codes(&out), want);
    // The event text from the cluster is shown without its escape sequences.
    let (_, human, _) =
        doctor_off(&kc, &["--pod", "signer-1", "-n", "prod", "--exec", "none"]).await;
    assert!(
        human.contains("FailedScheduling: 0/3 nodes are available: insufficient"),
        "{human}"
    );
    assert!(!human.contains('\u{1b}'));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_plugin_not_ready_and_a_missing_pod() {
    let dir = tempfile::tempdir().unwrap();
    let api = ApiServer::start(Objects {
        pods: vec![healthy_pod("signer-0", "chamber", "node-a")],
        nodes: vec![labelled_node("node-a")],
        daemonsets: vec![device_plugin(1, 3)],
        events: vec![],
        ..Default::default()
    })
    .await;
    let kc = api.kubeconfig(dir.path(), "chamber");
    let kc2 = kc.clone();
    let (code, out, _) = tokio::task::spawn_blocking(move || {
        doctor(
            &kc2,
            &["--pod", "signer-0", "-o", "json", "--checks", "nsm"],
        )
    })
    .await
    .unwrap();
    assert_eq!(code, Some(1));
    assert_eq!(
        cc_tests::finding_codes(&out),
        BTreeSet::from(["nsm.device-plugin-not-ready".to_owned()])
    );
    let (code, _, err) =
        tokio::task::spawn_blocking(move || doctor(&kc, &["--pod", "nope", "-n", "chamber"]))
            .await
            .unwrap();
    assert_eq!(code, Some(2));
    assert!(
        err.contains("pod 'nope' not found in namespace 'chamber'"),
        "{err}"
    );
}

/// A PATH whose only extra entry holds a `nitro-cli` that prints `fixture` (and no ccctl).
fn path_with_fake_nitro_cli(dir: &std::path::Path, fixture: &str) -> String {
    use std::os::unix::fs::PermissionsExt;
    let bin_dir = dir.join("bin");
    std::fs::create_dir_all(&bin_dir).unwrap();
    let nitro = bin_dir.join("nitro-cli");
    let script = format!(
        "#!/bin/sh\ncat '{}'\n",
        cc_tests::fixtures().join(fixture).display()
    );
    std::fs::write(&nitro, script).unwrap();
    std::fs::set_permissions(&nitro, std::fs::Permissions::from_mode(0o755)).unwrap();
    format!("{}:/usr/bin:/bin", bin_dir.display())
}

fn fleet(n: usize) -> Objects {
    let mut pods = Vec::new();
    for i in 0..n {
        pods.push(healthy_pod(
            &format!("signer-{i}"),
            "chamber",
            if i % 2 == 0 { "node-a" } else { "node-b" },
        ));
    }
    Objects {
        pods,
        nodes: vec![labelled_node("node-a"), labelled_node("node-b")],
        daemonsets: vec![device_plugin(2, 2)],
        events: vec![],
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_mode_reports_each_pod_and_a_summary() {
    let dir = tempfile::tempdir().unwrap();
    let mut objects = fleet(5);
    objects.pods[1].spec.as_mut().unwrap().containers[0].resources = None;
    objects.nodes[1].metadata.labels = None; // node-b: pods 1 and 3
    let mut other = healthy_pod("not-ours", "chamber", "node-a");
    other.metadata.labels = Some([("app".to_owned(), "other".to_owned())].into());
    objects.pods.push(other);
    let api = ApiServer::start(objects).await;
    let kc = api.kubeconfig(dir.path(), "chamber");
    let kc2 = kc.clone();
    let (code, out, err) = tokio::task::spawn_blocking(move || {
        doctor(
            &kc2,
            &[
                "-l",
                "app=containment-chamber",
                "-o",
                "json",
                "--exec",
                "none",
                // The API side only: these pods have no signer behind the pod proxy.
                "--no-live",
            ],
        )
    })
    .await
    .unwrap();
    assert_eq!(code, Some(1), "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let pods = v["pods"].as_array().unwrap();
    assert_eq!(pods.len(), 5, "the selector keeps only our pods");
    let by = |name: &str| {
        pods.iter().find(|p| p["pod"] == name).unwrap()["report"]["summary"]["errors"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(by("signer-0"), 0);
    assert_eq!(
        by("signer-1"),
        3,
        "no device limit, no hugepages limit, unlabelled node"
    );
    assert_eq!(by("signer-3"), 1, "unlabelled node");
    let (_, human, _) = doctor_off(
        &kc,
        &[
            "-l",
            "app=containment-chamber",
            "--exec",
            "none",
            "--no-live",
        ],
    )
    .await;
    assert!(
        human.contains("5 pods matching 'app=containment-chamber' in 'chamber'"),
        "{human}"
    );
    assert!(human.contains("== signer-1 =="), "{human}");
}

/// A selector that matches nothing says so and lists the pods here that look like chambers,
/// with their labels (issue 17); exit 1 (nothing was checked).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_selector_matching_nothing_lists_the_chamber_like_pods() {
    let dir = tempfile::tempdir().unwrap();
    let objects = fleet(2);
    let api = ApiServer::start(objects).await;
    let kc = api.kubeconfig(dir.path(), "chamber");
    let (code, out, _) = doctor_off(&kc, &["-l", "app=containment", "--exec", "none"]).await;
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("0 pods matching 'app=containment' in 'chamber'"),
        "{out}"
    );
    assert!(
        out.contains(
            "No pod matches 'app=containment' in 'chamber'. Pods here that look like chambers"
        ),
        "{out}"
    );
    assert!(out.contains("signer-0  app=containment-chamber"), "{out}");
}

/// Fleet requests go out concurrently: 50 pods behind 100 ms per answer take far less than
/// the 5 s one-after-another would (only a lower bound on the sequential time is assumed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_mode_is_concurrent() {
    let dir = tempfile::tempdir().unwrap();
    let api = ApiServer::start_with_latency(fleet(50), std::time::Duration::from_millis(100)).await;
    let kc = api.kubeconfig(dir.path(), "chamber");
    let t = std::time::Instant::now();
    let (code, out, err) = doctor_off(
        &kc,
        &[
            "-l",
            "app=containment-chamber",
            "-o",
            "json",
            "--exec",
            "none",
            // The API side only: these pods have no signer behind the pod proxy.
            "--no-live",
        ],
    )
    .await;
    let took = t.elapsed();
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(
        took < std::time::Duration::from_millis(2500),
        "took {took:?}"
    );
}

/// `--exec local` runs the in-pod probes on this machine: `ccctl doctor --local` when ccctl is
/// on PATH (its report is merged), else the raw commands (nitro-cli, the device test).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_pod_probes_merge_into_the_pod_report() {
    let dir = tempfile::tempdir().unwrap();
    let api = ApiServer::start(Objects {
        pods: vec![healthy_pod("signer-0", "chamber", "node-a")],
        nodes: vec![labelled_node("node-a")],
        daemonsets: vec![device_plugin(1, 1)],
        events: vec![],
        ..Default::default()
    })
    .await;
    let kc = api.kubeconfig(dir.path(), "chamber");
    let ccctl_dir = bin("ccctl").parent().unwrap().to_owned();
    // 1. ccctl in the "image": its local report (nothing runs here) is merged.
    let (kc1, path1) = (kc.clone(), format!("{}:/usr/bin:/bin", ccctl_dir.display()));
    let out = tokio::task::spawn_blocking(move || {
        Command::new(bin("ccctl"))
            .args([
                "doctor",
                "--pod",
                "signer-0",
                "-o",
                "json",
                "--exec",
                "local",
                "--timeout",
                "3s",
            ])
            .env("KUBECONFIG", &kc1)
            .env("PATH", path1)
            // Nothing answers here (not whatever may run on the default 127.0.0.1:9000).
            .env(
                "CCCTL_API",
                format!("tcp://127.0.0.1:{}", cc_tests::free_port()),
            )
            .env(
                "CCCTL_METRICS",
                format!("tcp://127.0.0.1:{}", cc_tests::free_port()),
            )
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let codes = cc_tests::finding_codes(&text);
    assert!(codes.contains("enclave.api-unreachable"), "{codes:?}");
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let ids: Vec<&str> = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert!(
        ids.contains(&"nsm.device-plugin") && ids.contains(&"logs.forwarding"),
        "{ids:?}"
    );
    // 2. No ccctl, a nitro-cli that reports a debug-mode enclave: the raw commands.
    let path2 = path_with_fake_nitro_cli(dir.path(), "nitro-cli/describe-enclaves.debug.json");
    let out = tokio::task::spawn_blocking(move || {
        Command::new(bin("ccctl"))
            .args([
                "doctor", "--pod", "signer-0", "-o", "json", "--exec", "local",
            ])
            .env("KUBECONFIG", &kc)
            .env("PATH", path2)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let codes = cc_tests::finding_codes(&String::from_utf8_lossy(&out.stdout));
    assert!(codes.contains("enclave.debug-mode"), "{codes:?}");
    assert_eq!(
        codes.contains("nsm.device-missing"),
        !std::path::Path::new("/dev/nitro_enclaves").exists()
    );
}

/// Fleet mode runs each pod's in-pod probes too (here `--exec local` with the raw commands).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_mode_merges_each_pods_in_pod_probes() {
    let dir = tempfile::tempdir().unwrap();
    let api = ApiServer::start(fleet(3)).await;
    let kc = api.kubeconfig(dir.path(), "chamber");
    let path = path_with_fake_nitro_cli(dir.path(), "nitro-cli/describe-enclaves.running.json");
    let out = tokio::task::spawn_blocking(move || {
        Command::new(bin("ccctl"))
            .args([
                "doctor",
                "-l",
                "app=containment-chamber",
                "-o",
                "json",
                "--exec",
                "local",
            ])
            .env("KUBECONFIG", &kc)
            .env("PATH", path)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let pods = v["pods"].as_array().unwrap();
    assert_eq!(pods.len(), 3);
    for p in pods {
        let checks = p["report"]["checks"].as_array().unwrap();
        let nitro = checks
            .iter()
            .find(|c| c["id"] == "enclave.nitro-cli")
            .expect("in-pod nitro-cli check");
        assert_eq!(nitro["status"], "passed", "{p:#}");
        // 8 API-side and in-pod checks, and the live read (no pod proxy here: unreachable).
        assert_eq!(p["report"]["summary"]["checks"], 10);
        let live = checks.iter().find(|c| c["id"] == "enclave.live").unwrap();
        assert_eq!(
            live["findings"][0]["code"], "enclave.pod-unreachable",
            "{p:#}"
        );
        assert_eq!(p["live"]["signer"], "unreachable", "{p:#}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failure_lines_in_the_pod_log_are_found_through_the_log_api() {
    let dir = tempfile::tempdir().unwrap();
    let mut objects = Objects {
        pods: vec![healthy_pod("signer-2", "chamber", "node-a")],
        nodes: vec![labelled_node("node-a")],
        daemonsets: vec![device_plugin(3, 3)],
        ..Default::default()
    };
    // An old failure beyond the tail is not reported; recent ones are.
    let mut log = String::from("2026-11-25T00:00:00Z thread 'main' panicked at old.rs:1:1\n");
    for i in 0..600 {
        log.push_str(&format!("2026-11-25T00:00:01Z INFO request {i}\n"));
    }
    log.push_str("2026-11-25T00:00:02Z ERROR containment_chamber_enclave::server: cannot unseal reason=NSM initialization failed: cannot open /dev/nsm: \u{1b}[31mNo such file\n");
    objects
        .logs
        .insert(("chamber".into(), "signer-2".into()), log);
    let api = ApiServer::start(objects).await;
    let kc = api.kubeconfig(dir.path(), "chamber");
    let (code, out, err) =
        doctor_off(&kc, &["--pod", "signer-2", "--exec", "none", "-o", "json"]).await;
    assert_eq!(code, Some(1), "{out}{err}");
    let codes = cc_tests::finding_codes(&out);
    assert!(codes.contains("logs.nsm-init-failed"), "{codes:?}");
    assert!(
        !codes.contains("logs.panic"),
        "beyond the 500-line tail: {codes:?}"
    );
    assert!(
        !out.contains("\\u001b"),
        "escape sequence passed through: {out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_log_the_doctor_may_not_read_is_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let api = ApiServer::start(Objects {
        pods: vec![healthy_pod("signer-3", "chamber", "node-a")],
        nodes: vec![labelled_node("node-a")],
        daemonsets: vec![device_plugin(3, 3)],
        forbidden: vec!["pods/log"],
        ..Default::default()
    })
    .await;
    let kc = api.kubeconfig(dir.path(), "chamber");
    let (code, out, err) =
        doctor_off(&kc, &["--pod", "signer-3", "--exec", "none", "-o", "json"]).await;
    assert_eq!(code, Some(0), "{out}{err}");
    assert_eq!(
        cc_tests::finding_codes(&out),
        BTreeSet::from(["logs.pod-log-unreadable".to_owned()]),
        "{out}"
    );
}

/// `pods/exec` over WebSocket, as the API server speaks it (`v5`/`v4.channel.k8s.io`, stdout,
/// stderr and the Status on channel 3), through the real kube client ccctl uses: output, a
/// non-zero exit code, and a command that is not found (issue 14).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_exec_over_websocket_carries_output_exit_codes_and_not_found() {
    use ccctl::probe::exec::{KubeExec, PodExec};
    let dir = tempfile::tempdir().unwrap();
    let mut objects = fleet(1);
    objects.exec_local = true;
    objects.exec_env = vec![("CC_EXEC_TEST".into(), "from-the-pod".into())];
    let api = ApiServer::start(objects).await;
    let kc = api.kubeconfig(dir.path(), "chamber");
    let config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(&kc).unwrap(),
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .unwrap();
    let exec = KubeExec(kube::Client::try_from(config).unwrap());
    let sh = |script: &str| vec!["sh".to_owned(), "-c".to_owned(), script.to_owned()];
    let o = exec
        .exec(
            "chamber",
            "signer-0",
            sh("echo \"out $CC_EXEC_TEST\"; echo err >&2; exit 3"),
        )
        .await
        .unwrap();
    assert_eq!(o.status, Some(3));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "out from-the-pod\n");
    assert_eq!(String::from_utf8_lossy(&o.stderr), "err\n");
    let o = exec
        .exec("chamber", "signer-0", sh("printf ok"))
        .await
        .unwrap();
    assert_eq!((o.status, o.stdout.as_slice()), (Some(0), b"ok".as_slice()));
    // More than kube's stream buffers on both streams: read together, not stdout to its end
    // and then stderr (stdout ends only when the connection does, and kube's stderr buffer
    // filled first: that waited forever).
    let o = tokio::time::timeout(
        std::time::Duration::from_secs(20),
        exec.exec(
            "chamber",
            "signer-0",
            sh("head -c 200000 /dev/zero | tr '\\0' e >&2; head -c 100000 /dev/zero | tr '\\0' o"),
        ),
    )
    .await
    .expect("an exec with 200 kB of stderr did not finish")
    .unwrap();
    assert_eq!(
        (o.status, o.stdout.len(), o.stderr.len()),
        (Some(0), 100_000, 200_000)
    );
    assert!(o.stdout.iter().all(|&b| b == b'o') && o.stderr.iter().all(|&b| b == b'e'));
    // Not found: no exit status (the runtime could not start it).
    let o = exec
        .exec(
            "chamber",
            "signer-0",
            vec!["no-such-command-in-the-pod".into()],
        )
        .await
        .unwrap();
    assert_eq!(o.status, None, "{o:?}");
    // A connection that ends without the Status: the outcome is not known — an error, not
    // exit 0.
    api.objects.lock().unwrap().exec_cut_before_status = true;
    let e = exec
        .exec("chamber", "signer-0", sh("printf ok"))
        .await
        .unwrap_err();
    assert!(e.contains("without the command's exit status"), "{e}");
    api.objects.lock().unwrap().exec_cut_before_status = false;
    // A pod that does not exist: the API server's 404, in words.
    let e = exec
        .exec("chamber", "nobody", vec!["true".into()])
        .await
        .unwrap_err();
    assert!(e.contains("HTTP 404"), "{e}");
}

/// In-pod probes that hang (the pod's `ccctl` never answers): past `--timeout` (+2 s for the
/// exec) they are `enclave.in-pod-probe-failed`, a warning, not an empty list that reads as
/// "nothing wrong inside"; doctor still ends soon after the deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_pod_probes_past_the_deadline_are_a_finding_not_silence() {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("image");
    std::fs::create_dir(&image).unwrap();
    let ccctl = image.join("ccctl");
    std::fs::write(&ccctl, "#!/bin/sh\nexec sleep 30\n").unwrap();
    let mut perms = std::fs::metadata(&ccctl).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&ccctl, perms).unwrap();
    let mut objects = fleet(1);
    objects.exec_local = true;
    objects.exec_env = vec![("PATH".into(), format!("{}:/usr/bin:/bin", image.display()))];
    let api = ApiServer::start(objects).await;
    let kc = api.kubeconfig(dir.path(), "chamber");
    let start = std::time::Instant::now();
    let (code, out, err) =
        doctor_off(&kc, &["--pod", "signer-0", "--timeout", "1s", "-o", "json"]).await;
    let took = start.elapsed();
    let report: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}{err}"));
    let finding = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["findings"].as_array().cloned().unwrap_or_default())
        .find(|f| f["code"] == "enclave.in-pod-probe-failed")
        .unwrap_or_else(|| panic!("no in-pod-probe-failed: {out}"));
    assert_eq!(finding["severity"], "warn", "{finding}");
    assert!(
        finding["summary"]
            .as_str()
            .unwrap()
            .contains("did not answer within 3s"),
        "{finding}"
    );
    // Not HEALTHY: the signer was not read inside the pod.
    assert_ne!(report["verdict"]["level"], "HEALTHY", "{out}");
    assert_eq!(
        code,
        Some(0),
        "warnings do not fail the default --fail-on error: {err}"
    );
    assert!(took < std::time::Duration::from_secs(10), "{took:?}");
}

/// A signer behind the pod proxy whose /status gives registers that are not 96 hex digits
/// (multi-byte text, an escape sequence): no panic, no PCR shown, no release judged on it,
/// and the reason in the live fields, sanitised.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signer_giving_malformed_pcrs_is_reported_not_trusted() {
    let status = serde_json::json!({
        "state": "unsealed", "platform": "software",
        "attestation": {"module_id": "m", "timestamp_ms": 1, "debug_mode": false,
            "pcrs": {"PCR0": format!("a{}", "é".repeat(47)), "PCR8": "\u{1b}]0;pwned\u{7}"}},
        "threshold": 2, "holders": [],
        "log_forwarding": {"target": "t", "connected": true, "dropped_total": 0, "delivered_total": 1},
        "validator_keys": 1, "uptime_seconds": 1, "version": "x"
    })
    .to_string();
    let signer = cc_tests::serve(signer_answering(status)).await;
    let dir = tempfile::tempdir().unwrap();
    let mut objects = fleet(1);
    cc_tests::proxy_to(&mut objects, "signer-0", signer);
    let api = ApiServer::start(objects).await;
    let kc = api.kubeconfig(dir.path(), "chamber");
    let (code, out, err) = doctor_off(&kc, FLEET_JSON).await;
    assert!(matches!(code, Some(0 | 1)), "{code:?} {err}");
    assert!(!out.contains('\u{1b}') && !out.contains("pwned"), "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let live = &v["pods"][0]["live"];
    assert_eq!(live["signer"], "unsealed", "{live}");
    assert!(live["pcr0"].is_null() && live["pcr8"].is_null(), "{live}");
    assert!(live["release"].is_null(), "{live}");
    let error = live["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("PCR0") && error.contains("PCR8") && error.contains("96 hex digits"),
        "{live}"
    );
}

/// RBAC without nodes, daemonsets and events (not among the verbs the README asks for): the
/// checks that need them are unknown with the API server's reason — never a ✓ for what was
/// not read, and never the whole cluster lost (`doctor -l` still checks every pod).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn facts_the_user_may_not_read_are_unknown_not_passed() {
    let dir = tempfile::tempdir().unwrap();
    let mut objects = fleet(2);
    objects.forbidden = vec!["nodes", "daemonsets", "events"];
    let api = ApiServer::start(objects).await;
    let kc = api.kubeconfig(dir.path(), "chamber");
    let status_of = |report: &serde_json::Value, id: &str| {
        let c = report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == id)
            .unwrap_or_else(|| panic!("no {id}: {report}"))
            .clone();
        (
            c["status"].as_str().unwrap().to_owned(),
            c["note"].as_str().unwrap_or_default().to_owned(),
        )
    };
    let want = [
        ("nsm.node-label", "reading node 'node-"),
        ("nsm.device-plugin", "reading DaemonSet kube-system/"),
        ("enclave.pod-events", "events"),
    ];
    for args in [
        vec!["--pod", "signer-0"],
        vec!["-l", "app=containment-chamber", "--no-live"],
    ] {
        let a: Vec<&str> = args
            .iter()
            .copied()
            .chain(["--exec", "none", "-o", "json"])
            .collect();
        let (code, out, err) = doctor_off(&kc, &a).await;
        assert_eq!(code, Some(0), "{args:?}: {out}{err}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        let reports: Vec<serde_json::Value> = match v["pods"].as_array() {
            Some(pods) => pods.iter().map(|p| p["report"].clone()).collect(),
            None => vec![v.clone()],
        };
        assert_eq!(reports.len(), if args[0] == "-l" { 2 } else { 1 }, "{out}");
        for r in &reports {
            for (id, why) in want {
                let (status, note) = status_of(r, id);
                assert_eq!(status, "unknown", "{args:?} {id}: {r}");
                assert!(
                    note.contains(why) && note.contains("forbidden"),
                    "{id}: {note}"
                );
            }
            assert_ne!(r["verdict"]["level"], "HEALTHY", "{r}");
        }
    }
}

/// The fleet screen's live read of a signer that hangs (accepts, never answers) gives up at
/// the per-pod deadline (two refreshes, at least 2 s) — that pod unreachable, the others read
/// — instead of holding every row for the whole `--timeout`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_signer_holds_the_fleet_no_longer_than_the_pod_deadline() {
    let status = serde_json::json!({
        "state": "unsealed", "platform": "software", "threshold": 2, "holders": [],
        "log_forwarding": {"target": "t", "connected": true, "dropped_total": 0, "delivered_total": 1},
        "validator_keys": 1, "uptime_seconds": 1, "version": "x"
    })
    .to_string();
    let good = signer_answering(status);
    let hung = axum::Router::new().fallback(|| async {
        tokio::time::sleep(std::time::Duration::from_secs(60)).await;
        "too late"
    });
    let mut objects = fleet(2);
    for (pod, app) in [("signer-0", good), ("signer-1", hung)] {
        cc_tests::proxy_to(&mut objects, pod, cc_tests::serve(app).await);
    }
    let api = ApiServer::start(objects).await;
    let dir = tempfile::tempdir().unwrap();
    let kc = api.kubeconfig(dir.path(), "chamber");
    let timeout = std::time::Duration::from_secs(10);
    let pod_timeout = ccctl::tui::sources::pod_deadline(std::time::Duration::from_secs(1), timeout);
    assert_eq!(pod_timeout, std::time::Duration::from_secs(2));
    let fleet = cc_tests::fleet_through(&kc, "chamber", timeout, pod_timeout).await;
    let start = std::time::Instant::now();
    let snap = fleet.snapshot(&Default::default()).await;
    let took = start.elapsed();
    assert!(took < std::time::Duration::from_secs(5), "{took:?}");
    let row = |name: &str| snap.rows.iter().find(|r| r.pod == name).unwrap();
    assert_eq!(row("signer-0").live.signer, "unsealed");
    let hung = &row("signer-1").live;
    assert_eq!(hung.signer, "unreachable", "{hung:?}");
    assert!(
        hung.error
            .as_deref()
            .unwrap_or_default()
            .contains("within 2s"),
        "{hung:?}"
    );
    // Unreachable is judged DOWN, the top row.
    assert_eq!(snap.rows[0].pod, "signer-1");
}

/// `doctor -l` runs the in-pod probes of many pods a bounded number at a time
/// (`ccctl::doctor::inpod::MAX_EXECS`): each is an exec session and a process in its pod.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_pod_probes_of_a_large_fleet_run_a_bounded_number_at_once() {
    let pods = ccctl::doctor::inpod::MAX_EXECS + 16;
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("image");
    let running = dir.path().join("running");
    std::fs::create_dir_all(&image).unwrap();
    std::fs::create_dir_all(&running).unwrap();
    // The pod's ccctl: note itself running, record how many are, wait, leave.
    let ccctl = image.join("ccctl");
    std::fs::write(
        &ccctl,
        format!(
            "#!/bin/sh\nd={r}\ntouch $d/$$\nls $d | wc -l >> {max}\nsleep 0.4\nrm -f $d/$$\nexit 1\n",
            r = running.display(),
            max = dir.path().join("seen").display()
        ),
    )
    .unwrap();
    let mut perms = std::fs::metadata(&ccctl).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&ccctl, perms).unwrap();
    let mut objects = fleet(pods);
    objects.exec_local = true;
    objects.exec_env = vec![("PATH".into(), format!("{}:/usr/bin:/bin", image.display()))];
    let api = ApiServer::start(objects).await;
    let kc = api.kubeconfig(dir.path(), "chamber");
    let (_, out, err) = doctor_off(
        &kc,
        &["-l", "app=containment-chamber", "--no-live", "-o", "json"],
    )
    .await;
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {err}"));
    assert_eq!(v["pods"].as_array().unwrap().len(), pods);
    let seen: Vec<usize> = std::fs::read_to_string(dir.path().join("seen"))
        .unwrap()
        .lines()
        .map(|l| l.trim().parse().unwrap())
        .collect();
    assert_eq!(seen.len(), pods, "every pod's probes ran once");
    let most = seen.iter().copied().max().unwrap();
    assert!(
        most <= ccctl::doctor::inpod::MAX_EXECS,
        "{most} in-pod runs at once"
    );
    // Each pod's failed run is said, not dropped.
    assert!(
        out.matches("enclave.in-pod-probe-failed").count() >= pods,
        "{out}"
    );
}

/// RBAC without `pods/proxy`: the API server refuses to proxy, so the signer was not looked
/// at — `unknown` and a warning (`enclave.pod-unreachable`), neither green nor "down".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_proxy_the_user_may_not_use_leaves_the_signer_unknown() {
    let dir = tempfile::tempdir().unwrap();
    let mut objects = fleet(1);
    objects.forbidden = vec!["pods/proxy"];
    let api = ApiServer::start(objects).await;
    let kc = api.kubeconfig(dir.path(), "chamber");
    let (code, out, err) = doctor_off(&kc, FLEET_JSON).await;
    assert_eq!(
        code,
        Some(0),
        "a warning does not fail --fail-on error: {out}{err}"
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let pod = &v["pods"][0];
    assert_eq!(pod["live"]["signer"], "unknown", "{pod:#}");
    assert!(
        pod["live"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("HTTP 403")
                && e.contains(
                    r#"cannot get resource "pods/proxy" in API group "" in the namespace "chamber""#
                )),
        "{pod:#}"
    );
    let f = pod["report"]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["findings"].as_array().cloned().unwrap_or_default())
        .find(|f| f["code"] == "enclave.pod-unreachable")
        .unwrap_or_else(|| panic!("{pod:#}"));
    assert_eq!(f["severity"], "warn", "{f}");
    assert_eq!(pod["report"]["verdict"]["level"], "DEGRADED", "{pod:#}");
}
