//! kubectl is the proof of conformance: the real kubectl 1.20 (Debian `kubernetes-client`,
//! from `scripts/tools`) against `ccctl demo`'s cluster (its `kubeconfig`, as `env.sh` exports
//! it) runs the verbs an operator's first reflexes are — `get` (discovery, then server-side
//! Tables), `describe pod` (the pod and its events by field selector), `logs` (`--tail`, `-f`),
//! `get --raw` through the pod proxy, `get daemonset -n kube-system` — and `exec`, which kubectl
//! 1.20 asks over SPDY/3.1: the output, the exit code, a missing command as the API server
//! reports them; `-i` refused.
//! What the double does not serve answers as the API server does (404/405 `Status`).
//!
//! Each kubectl runs with a clean environment: HOME in a temporary folder (its discovery cache
//! lands there), KUBECONFIG the demo's, PATH the system's.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use cc_tests::apiserver::{ApiServer, Objects, healthy_pod, labelled_node, warning_event};
use cc_tests::{Proc, RunningDemo, tool, wait_until};

const POD: &str = "containment-chamber-0";
const NS: &str = "containment-chamber";

fn kubectl_cmd(home: &Path, kubeconfig: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(tool("kubectl"));
    cmd.args(args)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", home)
        .env("KUBECONFIG", kubeconfig)
        .env("NO_COLOR", "1");
    cmd
}

fn kubectl(home: &Path, kubeconfig: &Path, args: &[&str]) -> Output {
    kubectl_cmd(home, kubeconfig, args).output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// kubectl exited 0; its stdout.
fn ok(o: Output, what: &str) -> String {
    assert_eq!(
        o.status.code(),
        Some(0),
        "{what}\nstdout:\n{}\nstderr:\n{}",
        stdout(&o),
        stderr(&o)
    );
    stdout(&o)
}

/// The whitespace-separated words of the output line that holds `needle`.
fn row<'a>(out: &'a str, needle: &str) -> Vec<&'a str> {
    out.lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no line with {needle:?} in:\n{out}"))
        .split_whitespace()
        .collect()
}

#[test]
fn kubectl_runs_its_verbs_against_the_demo_cluster() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let demo = RunningDemo::start(&dir.path().join("demo"));
    let kc = std::path::PathBuf::from(demo.var("KUBECONFIG"));
    assert_eq!(kc, demo.dir.join("kubeconfig"));
    let home = dir.path().join("home");
    std::fs::create_dir(&home).unwrap();
    let log_file = demo.dir.join("logs/enclave.log");

    // 1. get pods,nodes,events -o wide: discovery, then one Table per resource.
    let out = ok(
        kubectl(&home, &kc, &["get", "pods,nodes,events", "-o", "wide"]),
        "get pods,nodes,events -o wide",
    );
    for header in [
        "NAME",
        "READY",
        "STATUS",
        "RESTARTS",
        "AGE",
        "IP",
        "NODE",
        "NOMINATED NODE",
        "READINESS GATES",
    ] {
        assert!(out.lines().next().unwrap_or("").contains(header), "{out}");
    }
    let pod = row(&out, &format!("pod/{POD}"));
    assert_eq!(pod[1..4], ["1/1", "Running", "0"], "{out}");
    assert!(pod.contains(&"demo-node"), "{out}");
    let node = row(&out, "node/demo-node");
    assert_eq!(node[1..3], ["Ready", "<none>"], "{out}");
    assert!(node.contains(&"v1.31.0"), "{out}");
    assert!(out.contains("LAST SEEN"), "{out}");
    let scheduled = row(&out, "Scheduled");
    assert_eq!(
        scheduled[1..4],
        ["Normal", "Scheduled", &format!("pod/{POD}")]
    );
    assert!(
        out.contains(&format!("Successfully assigned {NS}/{POD} to demo-node")),
        "{out}"
    );
    assert!(
        row(&out, "Started").contains(&"spec.containers{parent}"),
        "{out}"
    );
    // The discovery kubectl did is cached under the clean HOME.
    let cache = home.join(".kube/cache/discovery");
    let cached: Vec<_> = std::fs::read_dir(&cache)
        .unwrap_or_else(|e| panic!("{}: {e}", cache.display()))
        .flatten()
        .collect();
    assert_eq!(cached.len(), 1, "{cached:?}");
    assert!(
        cached[0]
            .path()
            .join("apps/v1/serverresources.json")
            .exists()
    );

    // 2. describe pod: the pod, and its events found by the comma-separated field selector
    // (`involvedObject.name=…,involvedObject.namespace=…,involvedObject.uid=…`).
    let out = ok(
        kubectl(&home, &kc, &["describe", "pod", POD]),
        "describe pod",
    );
    for want in [
        format!("Name:         {POD}"),
        format!("Namespace:    {NS}"),
        "Node:         demo-node".into(),
        "Status:       Running".into(),
        "app=containment-chamber".into(),
        "aws.ec2.nitro/nitro_enclaves:  1".into(),
        "Ports:          9000/TCP, 3000/TCP".into(),
        "Medium:      HugePages".into(),
        "Events:".into(),
        format!("Successfully assigned {NS}/{POD} to demo-node"),
        "Started container parent".into(),
    ] {
        assert!(out.contains(&want), "{want:?} not in:\n{out}");
    }
    let events = out.split("Events:").nth(1).unwrap_or_default();
    assert!(row(events, "Scheduled").contains(&"Normal"), "{out}");
    assert!(row(events, "Started").contains(&"kubelet"), "{out}");

    // 3. logs: the pod log is the demo's enclave log.
    let out = ok(kubectl(&home, &kc, &["logs", POD]), "logs");
    let file = std::fs::read_to_string(&log_file).unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines.len() >= 5, "{out}");
    assert_eq!(lines[0], file.lines().next().unwrap(), "{out}");
    assert!(
        file.starts_with(&out),
        "kubectl logs is not the log file's start:\n{out}"
    );

    let out = ok(
        kubectl(&home, &kc, &["logs", "--tail=5", POD]),
        "logs --tail=5",
    );
    let file = std::fs::read_to_string(&log_file).unwrap();
    let tail: Vec<&str> = out.lines().collect();
    assert_eq!(tail.len(), 5, "{out}");
    for l in &tail {
        assert!(file.lines().any(|f| f == *l), "{l:?} is not in the log");
    }

    // logs -f: what is in the log, then what the enclave appends while kubectl follows.
    let before = std::fs::read_to_string(&log_file).unwrap().lines().count();
    let mut follow = Proc::start(&mut kubectl_cmd(&home, &kc, &["logs", "-f", POD]));
    wait_until(
        "kubectl logs -f to show lines appended after it started",
        Duration::from_secs(20),
        || follow.stdout().lines().count() >= before + 3,
    );
    assert!(
        follow.child.try_wait().unwrap().is_none(),
        "kubectl logs -f exited: {}",
        follow.stderr()
    );
    follow.signal(libc::SIGTERM);
    follow.wait(Duration::from_secs(10));
    let file = std::fs::read_to_string(&log_file).unwrap();
    let followed = follow.stdout();
    assert!(
        file.starts_with(&followed[..followed.rfind('\n').map_or(0, |i| i + 1)]),
        "followed output is not the log:\n{}",
        cc_tests::tail(&followed)
    );

    // 4. get --raw through the pod proxy: the enclave's /status.
    let out = ok(
        kubectl(
            &home,
            &kc,
            &[
                "get",
                "--raw",
                &format!("/api/v1/namespaces/{NS}/pods/{POD}:9000/proxy/status"),
            ],
        ),
        "get --raw …/proxy/status",
    );
    let status: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(status["state"], "unsealed", "{out}");
    assert_eq!(status["threshold"], 2, "{out}");

    // 5. get daemonset -n kube-system: the device plugin.
    let out = ok(
        kubectl(&home, &kc, &["get", "daemonset", "-n", "kube-system"]),
        "get daemonset -n kube-system",
    );
    let ds = row(&out, "aws-nitro-enclaves-k8s-daemonset");
    assert_eq!(
        ds[1..7],
        ["1", "1", "1", "1", "1", "aws-nitro-enclaves-k8s-dp=enabled"],
        "{out}"
    );
    assert!(out.starts_with("NAME"), "{out}");

    // 6. exec: kubectl 1.20 asks for SPDY/3.1 (POST …/exec, `Upgrade: SPDY/3.1`,
    // `X-Stream-Protocol-Version: v4.channel.k8s.io`…); the double runs the command on this
    // machine with the pod's PATH (the demo's nitro-cli stand-in) and ends with the v4 Status.
    let out = ok(
        kubectl(
            &home,
            &kc,
            &["exec", POD, "--", "nitro-cli", "describe-enclaves"],
        ),
        "exec nitro-cli describe-enclaves",
    );
    let enclaves: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(enclaves[0]["State"], "RUNNING", "{out}");
    assert_eq!(enclaves[0]["EnclaveCID"], 16, "{out}");
    // Standard error comes back on its own stream.
    let o = kubectl(
        &home,
        &kc,
        &["exec", POD, "--", "sh", "-c", "echo out; echo err >&2"],
    );
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert_eq!(
        (stdout(&o).as_str(), stderr(&o).as_str()),
        ("out\n", "err\n")
    );
    // A non-zero exit is kubectl's exit code (Status reason NonZeroExitCode, cause ExitCode).
    let o = kubectl(&home, &kc, &["exec", POD, "--", "sh", "-c", "exit 3"]);
    assert_eq!(o.status.code(), Some(3), "{}{}", stdout(&o), stderr(&o));
    assert_eq!(stderr(&o), "command terminated with exit code 3\n");
    // A command that is not there fails as the container runtime says it.
    let o = kubectl(&home, &kc, &["exec", POD, "--", "no-such-command"]);
    assert_ne!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert!(
        stderr(&o).contains("exec: \"no-such-command\": executable file not found in $PATH"),
        "{}",
        stderr(&o)
    );
    // stdin (and so a TTY) is not served: refused before the upgrade, with the reason.
    let o = kubectl(&home, &kc, &["exec", "-i", POD, "--", "cat"]);
    assert_eq!(o.status.code(), Some(1), "{}{}", stdout(&o), stderr(&o));
    assert!(
        stderr(&o).contains("stdin and TTY are not served"),
        "{}",
        stderr(&o)
    );

    eprintln!("kubectl against the demo: {:?}", started.elapsed());
}

/// What the double does not serve answers as the API server does, and `describe` finds only
/// the described pod's events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_sees_what_the_double_does_not_serve_as_the_api_server_says_it() {
    let api = ApiServer::start(Objects {
        pods: vec![
            healthy_pod("signer-0", "chamber", "node-a"),
            healthy_pod("signer-1", "chamber", "node-a"),
        ],
        nodes: vec![labelled_node("node-a")],
        events: vec![
            warning_event("chamber", "signer-0", "FailedMount", "hugepages missing"),
            warning_event("chamber", "signer-1", "BackOff", "restarting"),
            warning_event("other", "signer-0", "Evicted", "another namespace"),
        ],
        ..Default::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let kc = api.kubeconfig(dir.path(), "chamber");
    let home = dir.path().join("home");
    std::fs::create_dir(&home).unwrap();
    let run = |args: &'static [&'static str]| {
        let (home, kc) = (home.clone(), kc.clone());
        async move {
            tokio::task::spawn_blocking(move || kubectl(&home, &kc, args))
                .await
                .unwrap()
        }
    };

    let o = run(&["version"]).await;
    assert!(
        stdout(&o).contains(
            "Server Version: version.Info{Major:\"1\", Minor:\"31\", GitVersion:\"v1.31.0\""
        ),
        "{}{}",
        stdout(&o),
        stderr(&o)
    );

    let out = ok(run(&["describe", "pod", "signer-0"]).await, "describe");
    assert!(out.contains("FailedMount"), "{out}");
    assert!(!out.contains("BackOff"), "{out}");
    assert!(!out.contains("Evicted"), "{out}");

    // Without a human-readable printer kubectl asks for plain JSON: the PodList's objects.
    let out = ok(
        run(&["get", "pods", "-o", "json"]).await,
        "get pods -o json",
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    let names: Vec<&str> = v["items"]
        .as_array()
        .unwrap_or_else(|| panic!("{out}"))
        .iter()
        .filter_map(|p| p["metadata"]["name"].as_str())
        .collect();
    assert_eq!(names, ["signer-0", "signer-1"], "{out}");
    assert_eq!(v["items"][0]["kind"], "Pod", "{out}");

    // Lists across namespaces (`-A`) and the namespaces there are.
    let out = ok(run(&["get", "pods", "-A"]).await, "get pods -A");
    assert_eq!(
        // No container statuses in this fixture: none of its one container is ready yet.
        row(&out, "signer-1")[..4],
        ["chamber", "signer-1", "0/1", "Running"],
        "{out}"
    );
    assert!(out.starts_with("NAMESPACE"), "{out}");
    let out = ok(run(&["get", "ns"]).await, "get ns");
    for ns in ["chamber", "other", "default", "kube-system"] {
        assert_eq!(row(&out, &format!("{ns} "))[..2], [ns, "Active"], "{out}");
    }
    let o = run(&["get", "pod", "signer-0", "-n", "nowhere"]).await;
    assert_eq!(
        stderr(&o),
        "Error from server (NotFound): namespaces \"nowhere\" not found\n"
    );

    // A resource the double does not list in discovery.
    let o = run(&["get", "configmaps"]).await;
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o),
        "error: the server doesn't have a resource type \"configmaps\"\n"
    );
    // A path it does not serve: 404 Status.
    let o = run(&["get", "--raw", "/api/v1/namespaces/chamber/configmaps"]).await;
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o),
        "Error from server (NotFound): the server could not find the requested resource\n"
    );
    // A pod that does not exist.
    let o = run(&["get", "pod", "signer-9"]).await;
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o),
        "Error from server (NotFound): pods \"signer-9\" not found\n"
    );
    // Verbs it does not serve on paths it does: 405 Status.
    let o = run(&["get", "pods", "--watch"]).await;
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).ends_with(
            "Error from server (MethodNotAllowed): the server does not allow this method on the requested resource (get pods)\n"
        ),
        "{}",
        stderr(&o)
    );
    let o = run(&["delete", "pod", "signer-0"]).await;
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o),
        "Error from server (MethodNotAllowed): the server does not allow this method on the requested resource\n"
    );
}
