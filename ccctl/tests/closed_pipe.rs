//! A reader that goes away (`ccctl … | head -c 1`) is a normal end: every command exits with
//! its own status (0 ok, 1 finding, 2 could not run), never 101 (a panic on a closed pipe).
//! stdout here is a pipe whose reading end is already closed, so every write fails with
//! EPIPE — deterministic, unlike racing a real `head`.

mod common;

use std::process::Command;

use common::fixtures;

const ROLE: &str = "arn:aws:iam::222222222222:role/signer";
const OLD: &str = "5e1f00000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000";
const P8: &str = "7d2222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222";

/// Exit status of `ccctl args` with stdout closed at the other end, and its stderr.
fn closed(args: &[&str]) -> (Option<i32>, String) {
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    let o = Command::new(env!("CARGO_BIN_EXE_ccctl"))
        .args(args)
        .env("NO_COLOR", "1")
        .env_remove("CCCTL_CONFIG")
        .stdout(writer)
        .output()
        .expect("run ccctl");
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// And the same through a real shell pipe into `head -c 1`.
fn head(cmdline: &str) -> Option<i32> {
    let o = Command::new("bash")
        .args([
            "-c",
            &format!("set -o pipefail; {cmdline} | head -c 1 >/dev/null; echo ${{PIPESTATUS[0]}}"),
        ])
        .env("CCCTL", env!("CARGO_BIN_EXE_ccctl"))
        .env("NO_COLOR", "1")
        .output()
        .expect("bash");
    String::from_utf8_lossy(&o.stdout).trim().parse().ok()
}

#[test]
fn eif_exits_with_its_own_status() {
    let signed = fixtures().join("eif/synthetic_signed.eif");
    let s = signed.display().to_string();
    let (code, err) = closed(&["eif", "describe", "--eif-path", &s, "-o", "json"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let (code, _) = closed(&["eif", "measure", &s, &s]);
    assert_eq!(code, Some(0));
    let (code, err) = closed(&["eif", "describe", "--eif-path", "/nonexistent.eif"]);
    assert_eq!(code, Some(2), "{err}");
    assert_eq!(
        head(&format!("\"$CCCTL\" eif describe --eif-path '{s}' -o json")),
        Some(0)
    );
}

#[test]
fn policy_exits_with_its_own_status() {
    let p = format!(
        "a={}",
        fixtures()
            .join("kms-policies/rotation-two-pcr0.json")
            .display()
    );
    let ok = [
        "policy",
        "check",
        "--policy-file",
        &p,
        "--pcr0",
        OLD,
        "--pcr8",
        P8,
        "--principal",
        ROLE,
        "--threshold",
        "1",
    ];
    let (code, err) = closed(&ok);
    assert_eq!(code, Some(0), "{err}");
    let (code, _) = closed(&[&ok[..], &["-o", "json"]].concat());
    assert_eq!(code, Some(0));
    let other = "ab".repeat(48);
    let (code, err) = closed(&[
        "policy",
        "check",
        "--policy-file",
        &p,
        "--pcr0",
        &other,
        "--principal",
        ROLE,
        "--threshold",
        "1",
    ]);
    assert_eq!(code, Some(1), "{err}");
    let (code, _) = closed(&["policy", "check", "--pcr0", "xyz", "--principal", ROLE]);
    assert_eq!(code, Some(2));
}

#[test]
fn doctor_exits_with_its_own_status() {
    let (code, err) = closed(&["doctor", "--list-checks"]);
    assert_eq!(code, Some(0), "{err}");
    // Nothing runs here: findings, exit 1, whatever the format.
    for fmt in ["human", "json", "junit"] {
        let (code, err) = closed(&[
            "doctor",
            "--local",
            "--api",
            "tcp://127.0.0.1:1",
            "--metrics",
            "tcp://127.0.0.1:1",
            "--nitro-cli",
            "/nonexistent/nitro-cli",
            "--device",
            "/nonexistent",
            "--allocator",
            "/nonexistent",
            "--timeout",
            "2s",
            "--scrape-interval",
            "10ms",
            "-o",
            fmt,
        ]);
        assert_eq!(code, Some(1), "{fmt}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[test]
fn help_and_errors_exit_with_their_own_status() {
    let (code, err) = closed(&["--help"]);
    assert_eq!(code, Some(0), "{err}");
    let (code, _) = closed(&["doctor", "--help"]);
    assert_eq!(code, Some(0));
    let (code, _) = closed(&["--version"]);
    assert_eq!(code, Some(0));
    let (code, _) = closed(&["no-such-command"]);
    assert_eq!(code, Some(2));
    assert_eq!(head("\"$CCCTL\" --help"), Some(0));
    assert_eq!(
        head("\"$CCCTL\" enclaves --nitro-cli /nonexistent"),
        Some(2)
    );
}
