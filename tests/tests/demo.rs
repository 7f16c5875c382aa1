//! `ccctl demo --once` end to end: the real ccctl, enclave server and proxy binaries, the
//! demo's local KMS; each scenario injects a real fault and doctor must name it.

use std::collections::BTreeSet;
use std::process::Command;

use cc_tests::{bin, finding_codes};

/// Run the demo once; (exit status, stdout, stderr).
fn demo(extra: &[&str]) -> (i32, String, String) {
    let o = Command::new(bin("ccctl"))
        .args(["demo", "--once", "--api-port", "0", "--metrics-port", "0"])
        .args(extra)
        .env_remove("PRODUCTION")
        .env_remove("ENCLAVE_DEBUG")
        .output()
        .unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn scenario(name: &str) -> BTreeSet<String> {
    let (code, out, err) = demo(&["--scenario", name, "-o", "json"]);
    assert_eq!(code, 1, "scenario {name} must be a finding\n{out}\n{err}");
    every_ccctl_command_parses(&out);
    finding_codes(&out)
}

/// Every `ccctl …` fix command in a report, as printed, parses with the real clap parser and
/// has no `<placeholder>` (issue 13 #6).
fn every_ccctl_command_parses(json: &str) {
    use clap::Parser as _;
    let v: serde_json::Value = serde_json::from_str(json).unwrap();
    for f in v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["findings"].as_array().unwrap())
    {
        for cmd in f["remediation"]["commands"].as_array().unwrap() {
            let cmd = cmd.as_str().unwrap();
            assert!(!cmd.contains('<'), "placeholder in {cmd}");
            if !cmd.starts_with("ccctl ") {
                continue;
            }
            let mut words: Vec<String> = cmd
                .split_whitespace()
                .map(|w| w.trim_matches('\'').to_owned())
                .collect();
            if let Some(end) = words.iter().position(|w| w == "|") {
                words.truncate(end);
            }
            if let Err(e) = ccctl::cli::Cli::try_parse_from(&words) {
                panic!("{}: {cmd} does not parse:\n{e}", f["code"]);
            }
        }
    }
}

/// The human output of a scenario puts its true cause first: in the verdict line on top and as
/// problem 1 (issue 13: cause → consequence).
fn cause_first(name: &str, level: &str, cause: &str) -> String {
    let (code, out, err) = demo(&["--scenario", name]);
    assert_eq!(code, 1, "scenario {name} must be a finding\n{out}\n{err}");
    let first = out.lines().next().unwrap_or_default();
    assert!(
        first.starts_with(&format!("{level} — {cause}: ")),
        "{name}: the verdict line must name {cause}:\n{out}"
    );
    let problem1 = out
        .lines()
        .skip_while(|l| !l.starts_with("Problems, causes first"))
        .nth(1)
        .unwrap_or_default();
    assert!(
        problem1.contains(&format!("1. [✗] error {cause}: "))
            || problem1.contains(&format!("1. [!] warn  {cause}: ")),
        "{name}: problem 1 must be {cause}:\n{out}"
    );
    out
}

fn has(codes: &BTreeSet<String>, want: &[&str]) {
    for w in want {
        assert!(codes.contains(*w), "missing {w} in {codes:?}");
    }
}

#[test]
fn a_healthy_chamber_passes_every_check_and_cleans_up() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("demo");
    let (code, out, err) = demo(&["--dir", d.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("0 errors, 0 warnings"), "{out}");
    assert!(out.starts_with("HEALTHY — "), "{out}");
    assert!(err.contains("unsealed"), "{err}");
    // The enclave asked as a Recipient: the local KMS judged the attested PCR0 and released.
    let log = std::fs::read_to_string(d.join("logs/enclave.log")).unwrap();
    assert!(log.contains("unsealed"), "{log}");
    // Every process stopped: the sockets are gone.
    for s in ["log.sock", "api.sock", "metrics.sock", "egress-kms.sock"] {
        assert!(!d.join(s).exists(), "{s} left behind");
    }
    let pid: i32 = std::fs::read_to_string(d.join("enclave.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists()
            || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .is_ok_and(|s| s.contains(") Z ")),
        "the enclave server {pid} is still running"
    );
}

#[test]
fn json_output_is_doctors_report_and_nothing_else() {
    let (code, out, _) = demo(&["-o", "json"]);
    assert_eq!(code, 0, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["summary"]["errors"], 0, "{out}");
    assert!(v["checks"].as_array().unwrap().len() >= 10);
}

#[test]
fn stale_policy() {
    let c = scenario("stale-policy");
    has(
        &c,
        &[
            "policy.measurement-not-allowed",
            "kms.access-denied",
            "policy.holder-disagreement",
        ],
    );
    assert!(!c.contains("policy.threshold-unmet"), "{c:?}");
    assert!(
        !c.contains("logs.kms-access-denied"),
        "one denial, one finding: {c:?}"
    );
    assert!(!c.contains("enclave.sealed"), "2 of 3 still unseal: {c:?}");
    // Still unsealed (2 of 3): degraded, the stale holder's policy first, its denial under it.
    let out = cause_first("stale-policy", "DEGRADED", "policy.measurement-not-allowed");
    assert!(
        out.contains("because of policy.measurement-not-allowed:"),
        "{out}"
    );
}

#[test]
fn threshold_lost() {
    let (code, out, err) = demo(&["--scenario", "threshold-lost", "-o", "json"]);
    assert_eq!(code, 1, "{out}\n{err}");
    let c = finding_codes(&out);
    has(&c, &["policy.threshold-unmet", "enclave.sealed"]);
    // Each holder lacking the PCR0 keeps its own finding (not collapsed into one), and the
    // threshold finding names them (issue 13, defect 5).
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let summaries: Vec<String> = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["findings"].as_array().unwrap().clone())
        .filter(|f| f["code"] == "policy.measurement-not-allowed")
        .map(|f| f["summary"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(summaries.len(), 2, "{summaries:?}");
    assert!(
        summaries[0].contains("holder 'holder-b'") && summaries[1].contains("holder 'holder-c'")
    );
    assert!(out.contains("(not releasing: holder-b, holder-c)"), "{out}");
    cause_first("threshold-lost", "DOWN", "policy.measurement-not-allowed");
}

#[test]
fn debug_in_production() {
    let c = scenario("debug-in-production");
    has(
        &c,
        &[
            "config.debug-in-production",
            "enclave.debug-mode",
            "policy.threshold-unmet",
        ],
    );
    // Never the advice to add the all-zero value, never "sign the EIF" (issue 13, defect 3).
    let out = cause_first("debug-in-production", "DOWN", "config.debug-in-production");
    assert!(
        out.contains("because of config.debug-in-production:"),
        "{out}"
    );
    assert!(!out.contains("add the new value"), "{out}");
    assert!(out.contains("Never add the all-zero value"), "{out}");
    assert!(!out.contains("policy.pcr8-unsigned"), "{out}");
}

#[test]
fn egress_down() {
    let c = scenario("egress-down");
    has(
        &c,
        &["egress.proxy-down", "kms.unreachable", "enclave.sealed"],
    );
    // One cause, one finding: the log lines are evidence of kms.unreachable (issue 13 #4).
    assert!(!c.contains("logs.kms-unreachable"), "{c:?}");
    // The cause first (it was the last of six), kms.unreachable and sealed under it.
    let out = cause_first("egress-down", "DOWN", "egress.proxy-down");
    let under = out
        .split("because of egress.proxy-down:")
        .nth(1)
        .unwrap_or_default();
    assert!(
        under.contains("kms.unreachable") && under.contains("enclave.sealed"),
        "{out}"
    );
}

#[test]
fn log_listener_down() {
    let c = scenario("log-listener-down");
    has(&c, &["logs.listener-down", "logs.events-dropped"]);
    cause_first("log-listener-down", "DEGRADED", "logs.listener-down");
}

#[test]
fn nsm_missing() {
    let c = scenario("nsm-missing");
    has(
        &c,
        &["nsm.device-missing", "nsm.init-failed", "enclave.failed"],
    );
    assert!(!c.contains("logs.nsm-init-failed"), "{c:?}");
    let out = cause_first("nsm-missing", "DOWN", "nsm.device-missing");
    let under = out
        .split("because of nsm.device-missing:")
        .nth(1)
        .unwrap_or_default();
    assert!(under.contains("enclave.failed"), "{out}");
}

#[test]
fn role_lacks_decrypt() {
    let (code, out, err) = demo(&["--scenario", "role-lacks-decrypt", "-o", "json"]);
    assert_eq!(code, 1, "{out}\n{err}");
    let c = finding_codes(&out);
    has(
        &c,
        &["kms.role-lacks-decrypt", "policy.identity-lacks-decrypt"],
    );
    assert!(!c.contains("kms.access-denied"), "{c:?}");
    // The log's AccessDeniedException lines are that finding's evidence, not a second finding
    // with a contradicting fix at a higher severity (issue 13 #4).
    assert!(!c.contains("logs.kms-access-denied"), "{c:?}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let f = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["findings"].as_array().unwrap().clone())
        .find(|f| f["code"] == "kms.role-lacks-decrypt")
        .unwrap();
    assert!(f["evidence"]["log_lines"].as_u64().unwrap() >= 1, "{f:#}");
    // The JSON carries the same verdict.
    assert_eq!(
        v["verdict"]["cause"], "policy.identity-lacks-decrypt",
        "{out}"
    );
    cause_first(
        "role-lacks-decrypt",
        "DEGRADED",
        "policy.identity-lacks-decrypt",
    );
}

/// Ctrl-C at a terminal sends SIGINT to the whole foreground process group: the chamber stops
/// in order and nothing "had already stopped" (issue 13 #10).
#[test]
fn ctrl_c_at_the_terminal_stops_the_chamber_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let mut demo = cc_tests::RunningDemo::start_as_job(&dir.path().join("demo"));
    let (status, rest) = demo.interrupt_group();
    assert!(status.is_some_and(|s| s.success()), "{status:?}\n{rest}");
    assert!(!rest.contains("had already stopped"), "{rest}");
}

/// Every command the demo prints runs exactly as printed, after `. env.sh`, in a shell whose
/// PATH lacks the build folder (env.sh puts the demo's own ccctl first) — issue 17.
#[test]
fn every_command_the_demo_prints_runs_as_printed() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("demo");
    let demo = cc_tests::RunningDemo::start(&d);
    let lines: Vec<&str> = demo
        .banner
        .lines()
        .skip_while(|l| !l.contains("In another terminal:"))
        .skip(1)
        .take_while(|l| !l.starts_with("Ctrl-C"))
        .map(str::trim)
        .collect();
    assert!(lines.len() >= 7, "{}", demo.banner);
    assert!(
        lines[0].starts_with(". ") && lines[0].ends_with("/env.sh"),
        "{lines:?}"
    );
    assert!(
        lines
            .contains(&"ccctl tui -l app=containment-chamber      # the fleet screen (a terminal)"),
        "{lines:?}"
    );
    for cmd in &lines[1..] {
        // The dashboard needs a terminal: tests/tests/tui.rs runs this line in tmux
        // (`the_demo_fleet_with_no_other_flag`).
        if cmd.starts_with("ccctl tui") {
            continue;
        }
        let script = format!("set -e\n{}\n{cmd}\n", lines[0]);
        let o = Command::new("/bin/bash")
            .args(["-c", &script])
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("HOME", dir.path())
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "`{cmd}` failed as printed:\n{}\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    }
    // The build folder was not on PATH: env.sh's ccctl ran them.
    let o = Command::new("/bin/bash")
        .args(["-c", &format!("{}\ncommand -v ccctl", lines[0])])
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        bin("ccctl").display().to_string()
    );
}

#[test]
fn a_missing_binary_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = demo(&["--bin-dir", dir.path().to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("'containment-chamber-enclave' not found in --bin-dir"),
        "{err}"
    );
}

#[test]
fn without_once_it_keeps_running_until_sigterm_then_stops_everything() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("demo");
    let mut demo = cc_tests::RunningDemo::start(&d);
    // While it runs, env.sh points ccctl at it: doctor --local with no flags, and doctor --pod
    // through the demo's Kubernetes API with the in-pod probes run here (--exec local).
    let env = demo.env.clone();
    let ccctl_dir = bin("ccctl").parent().unwrap().to_owned();
    let path = format!(
        "{}:{}",
        ccctl_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let run = |args: &[&str]| {
        let o = Command::new(bin("ccctl"))
            .args(args)
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("PATH", &path)
            .output()
            .unwrap();
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
        )
    };
    let (code, out) = run(&["doctor", "--local", "-o", "json"]);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(finding_codes(&out), BTreeSet::new(), "{out}");
    // Every command reads the same CCCTL_* as doctor: attest fetch needs no flag after
    // `. env.sh` (the API from CCCTL_API, the development root from CCCTL_ROOT).
    let (code, out) = run(&["attest", "fetch"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("development root"), "{out}");
    // policy check takes a fresh document from the API address (issue 17).
    let api = demo.var("CCCTL_API");
    let (code, out) = run(&["policy", "check", "--attestation", &api]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("3 of 3 holders release"), "{out}");
    // … or from the pod's, through the API server's pod proxy (the demo's kubeconfig).
    let (code, out) = run(&["policy", "check", "--pod", "containment-chamber-0"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("3 of 3 holders release"), "{out}");
    // Without the demo's root, the chain failure says which root would verify it.
    let o = Command::new(bin("ccctl"))
        .args(["attest", "fetch"])
        .envs(
            env.iter()
                .filter(|(k, _)| k != "CCCTL_ROOT")
                .map(|(k, v)| (k.as_str(), v.as_str())),
        )
        .env_remove("CCCTL_ROOT")
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.contains("containment-chamber development root")
            && out.contains("--root DEMO_DIR/root/root.pem"),
        "{out}"
    );
    let (code, out) = run(&[
        "doctor",
        "--pod",
        "containment-chamber-0",
        "--exec",
        "local",
        "-o",
        "json",
    ]);
    assert_eq!(code, Some(0), "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let ids: BTreeSet<String> = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .collect();
    for id in [
        "nsm.device-plugin",
        "logs.pod-log",
        "enclave.status",
        "pcr.policies",
    ] {
        assert!(ids.contains(id), "{id} missing from {ids:?}");
    }
    let (code, out) = run(&["doctor", "-l", "app=containment-chamber", "--exec", "none"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("containment-chamber-0"), "{out}");
    // The default, --exec kube: the in-pod probes through pods/exec over WebSocket (issue
    // 14), for one pod and for the fleet.
    for args in [
        &["doctor", "--pod", "containment-chamber-0", "-o", "json"][..],
        &["doctor", "-l", "app=containment-chamber", "-o", "json"][..],
    ] {
        let (code, out) = run(args);
        assert_eq!(code, Some(0), "{args:?}: {out}");
        assert!(!out.contains("enclave.in-pod-probe-failed"), "{out}");
        for id in ["\"enclave.status\"", "\"pcr.policies\"", "\"kms.holders\""] {
            assert!(
                out.contains(id),
                "{args:?}: {id} missing (no in-pod probes?): {out}"
            );
        }
    }
    let status = demo.stop().unwrap();
    assert_eq!(status.code(), Some(0));
    for s in ["log.sock", "api.sock", "metrics.sock", "egress-kms.sock"] {
        assert!(!d.join(s).exists(), "{s} left behind");
    }
}

/// The processes (pid, command line) whose command line mentions `path`.
fn processes_mentioning(path: &std::path::Path) -> Vec<(u32, String)> {
    let needle = path.display().to_string();
    let me = std::process::id();
    std::fs::read_dir("/proc")
        .map(|d| d.flatten().collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let cmd = std::fs::read(e.path().join("cmdline")).ok()?;
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            (pid != me && cmd.contains(&needle)).then_some((pid, cmd))
        })
        .collect()
}

/// A signal at any moment of start-up (before doctor has run, while it runs) stops every
/// process the demo started; SIGKILL of ccctl itself takes its children with it. The demo's
/// folder (it holds the development root key) is readable by its owner only.
#[test]
fn a_signal_during_start_up_leaves_no_process_behind() {
    use std::os::unix::fs::PermissionsExt;
    use std::time::{Duration, Instant};
    for (delay_ms, sig) in [
        (200, "TERM"),
        (500, "TERM"),
        (1000, "TERM"),
        (2500, "TERM"),
        (1000, "KILL"),
        (2500, "KILL"),
    ] {
        // The demo's temporary folder is made under TMPDIR: here, one folder per attempt.
        let tmp = tempfile::tempdir().unwrap();
        let mut child = Command::new(bin("ccctl"))
            .args(["demo", "--no-tui", "--api-port", "0", "--metrics-port", "0"])
            .env("TMPDIR", tmp.path())
            .env_remove("PRODUCTION")
            .env_remove("ENCLAVE_DEBUG")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        for e in std::fs::read_dir(tmp.path()).unwrap().flatten() {
            let mode = e.metadata().unwrap().permissions().mode() & 0o777;
            assert_eq!(
                mode,
                0o700,
                "{} is readable by others ({mode:o})",
                e.path().display()
            );
        }
        let running = processes_mentioning(tmp.path());
        Command::new("kill")
            .args([&format!("-{sig}"), &child.id().to_string()])
            .status()
            .unwrap();
        let t = Instant::now();
        loop {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "ccctl demo did not exit within 20 s of SIG{sig} at {delay_ms} ms"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let t = Instant::now();
        loop {
            let left = processes_mentioning(tmp.path());
            if left.is_empty() {
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(5),
                "SIG{sig} at {delay_ms} ms left {left:#?} running (running before: {running:#?})"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        if sig == "TERM" {
            // A handled signal also removes the folder (and the key in it).
            let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().flatten().collect();
            assert!(
                left.is_empty(),
                "SIGTERM at {delay_ms} ms left {:?}",
                left.iter().map(|e| e.path()).collect::<Vec<_>>()
            );
        }
    }
}
/// Idle connections (no byte sent, no TLS handshake) do not hold up the local KMS: a request
/// after them is answered at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_do_not_freeze_the_local_kms() {
    use std::time::{Duration, Instant};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let verifier: cc_sandbox::kms::Verifier =
        std::sync::Arc::new(|_: &[u8], _: &str| Err("not used".to_owned()));
    let kms = cc_sandbox::kms::LocalKms::new(
        Vec::new(),
        cc_sandbox::chamber::SIGNER_ROLE,
        dir.path().join("root.pem"),
        verifier,
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = kms.serve(listener);
    let mut idle = Vec::new();
    for _ in 0..12 {
        idle.push(tokio::net::TcpStream::connect(addr).await.unwrap());
    }
    // A TLS client that stops after its first byte.
    let mut half = tokio::net::TcpStream::connect(addr).await.unwrap();
    half.write_all(&[0x16]).await.unwrap();
    idle.push(half);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let t = Instant::now();
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(
        b"POST / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
          X-Amz-Target: TrentService.ListKeys\r\nContent-Length: 2\r\n\r\n{}",
    )
    .await
    .unwrap();
    let mut resp = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut resp))
        .await
        .expect("the local KMS did not answer within 10 s")
        .unwrap();
    let took = t.elapsed();
    let resp = String::from_utf8_lossy(&resp);
    assert!(resp.starts_with("HTTP/1.1 400"), "{resp}");
    assert!(resp.contains("UnrecognizedClientException"), "{resp}");
    assert!(
        took < Duration::from_secs(1),
        "answered after {took:?} behind 13 idle connections"
    );
    drop(idle);
    task.abort();
}
/// One byte that is not UTF-8 in the pod's log does not empty the answer: the API server's
/// double answers with the text, the byte replaced, as the real one does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_log_with_an_invalid_byte_is_served_lossily() {
    use cc_sandbox::apiserver;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("pod.log");
    std::fs::write(&log, b"first line\nbad \xff byte\nlast line\n").unwrap();
    let mut objects = apiserver::Objects {
        pods: vec![apiserver::healthy_pod("p-0", "ns", "node")],
        ..Default::default()
    };
    objects
        .log_files
        .insert(("ns".into(), "p-0".into()), log.clone());
    let server = apiserver::ApiServer::start(objects).await;
    let addr = cc_proto::Address::Tcp {
        host: "127.0.0.1".into(),
        port: server.port,
    };
    for (query, want) in [
        ("", "first line\nbad \u{fffd} byte\nlast line\n"),
        ("?tailLines=1", "last line\n"),
    ] {
        let path = format!("/api/v1/namespaces/ns/pods/p-0/log{query}");
        let addr = addr.clone();
        let (status, body) =
            tokio::task::spawn_blocking(move || cc_tests::http(&addr, "GET", &path, None))
                .await
                .unwrap()
                .unwrap();
        assert_eq!(status, 200);
        assert_eq!(String::from_utf8(body).unwrap(), want);
    }
}

/// Anyone who can reach the API must not be able to write into the pod log: a public key of
/// `panicked at`, `FATAL:`, `[ E19` or a CR/LF and ESC is logged as `(invalid)`, so doctor finds
/// nothing (issue 16 #3).
#[test]
fn request_data_cannot_forge_log_findings() {
    let dir = tempfile::tempdir().unwrap();
    let demo = cc_tests::RunningDemo::start(&dir.path().join("demo"));
    let api: cc_proto::Address = demo.var("CCCTL_API").parse().unwrap();
    for evil in [
        "panicked%20at%20main.rs:1:1",
        "FATAL:%20refusing",
        "%5B%20E19%20%5D%20Device%20file",
        "x%0D%0A2026-01-01T00:00:00Z%20ERROR%20panicked%20at%20y",
        "%1B%5B2J%00",
    ] {
        let (status, _) = cc_tests::http(
            &api,
            "POST",
            &format!("/api/v1/eth2/sign/{evil}"),
            Some("{\"signingRoot\":\"0x00\"}"),
        )
        .unwrap();
        assert_eq!(status, 400, "{evil}");
    }
    // The log line is forwarded (vsock-stdout → the pod log) within moments.
    std::thread::sleep(std::time::Duration::from_secs(2));
    let log = std::fs::read_to_string(demo.var("CCCTL_LOG_FILE")).unwrap();
    assert!(log.contains("pubkey=\"(invalid)\""), "{log}");
    assert!(!log.contains("panicked at main.rs") && !log.contains("FATAL: refusing"));
    let o = Command::new(bin("ccctl"))
        .args([
            "-o",
            "json",
            "doctor",
            "--local",
            "--checks",
            "logs.signatures",
        ])
        .envs(demo.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let codes = finding_codes(&out);
    assert!(
        codes.is_empty(),
        "request data produced findings: {codes:?}\n{out}"
    );
    assert_eq!(o.status.code(), Some(0), "{out}");
}
