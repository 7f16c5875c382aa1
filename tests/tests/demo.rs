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
    finding_codes(&out)
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
    let (_, out, _) = demo(&["--scenario", "debug-in-production"]);
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
}

#[test]
fn log_listener_down() {
    let c = scenario("log-listener-down");
    has(&c, &["logs.listener-down", "logs.events-dropped"]);
}

#[test]
fn nsm_missing() {
    let c = scenario("nsm-missing");
    has(
        &c,
        &["nsm.device-missing", "nsm.init-failed", "enclave.failed"],
    );
    assert!(!c.contains("logs.nsm-init-failed"), "{c:?}");
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
    let status = demo.stop().unwrap();
    assert_eq!(status.code(), Some(0));
    for s in ["log.sock", "api.sock", "metrics.sock", "egress-kms.sock"] {
        assert!(!d.join(s).exists(), "{s} left behind");
    }
}
