//! A check's status is passed, failed, skipped (input not given: which flag or variable) or
//! unknown (input unreachable) — never a ✓ for what was not looked at (issue 13, defect 2).

mod common;

use std::process::Command;

fn doctor(extra: &[&str]) -> (Option<i32>, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_ccctl"))
        .args([
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
            "3s",
            "--scrape-interval",
            "10ms",
        ])
        .args(extra)
        .env("NO_COLOR", "1")
        .env_remove("CCCTL_CONFIG")
        .env_remove("CCCTL_LOG_FILE")
        .env_remove("CCCTL_PROXY_CONFIG")
        .output()
        .unwrap();
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
    )
}

fn status_of(v: &serde_json::Value, id: &str) -> (String, String) {
    let c = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("no {id}: {v:#}"));
    (
        c["status"].as_str().unwrap().to_owned(),
        c["note"].as_str().unwrap_or_default().to_owned(),
    )
}

#[test]
fn checks_without_their_input_are_skipped_and_say_which_flag() {
    let (_, out) = doctor(&["-o", "json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    for (id, flag) in [
        ("pcr.policies", "--config (CCCTL_CONFIG)"),
        ("logs.signatures", "--log-file (CCCTL_LOG_FILE)"),
        ("egress.endpoints", "--proxy-config (CCCTL_PROXY_CONFIG)"),
    ] {
        let (status, note) = status_of(&v, id);
        assert_eq!(status, "skipped", "{id}: {v:#}");
        assert!(note.contains(flag), "{id}: {note}");
    }
    assert!(v["summary"]["skipped"].as_u64().unwrap() >= 3);
    let (_, human) = doctor(&[]);
    assert!(human.contains("[–] pcr.policies"), "{human}");
    assert!(!human.contains("[✓] pcr.policies"), "{human}");
    assert!(
        human.contains("skipped: no --config (CCCTL_CONFIG)"),
        "{human}"
    );
    let (_, junit) = doctor(&["-o", "junit"]);
    assert!(junit.contains("<skipped message=\"no --config"), "{junit}");
}

#[test]
fn checks_whose_input_is_unreachable_are_unknown() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("ccctl.toml");
    std::fs::write(&cfg, "principal = \"arn:aws:iam::1:role/r\"\n").unwrap();
    let (code, out) = doctor(&["-o", "json", "--config", cfg.to_str().unwrap()]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    for id in ["kms.holders", "pcr.policies"] {
        let (status, note) = status_of(&v, id);
        assert_eq!(status, "unknown", "{id}: {v:#}");
        assert!(note.contains("did not answer /status"), "{note}");
    }
    assert_eq!(code, Some(1));
    // Unknown alone fails --fail-on warn (the API check itself is excluded here).
    let (code, out) = doctor(&[
        "-o",
        "json",
        "--config",
        cfg.to_str().unwrap(),
        "--checks",
        "kms",
        "--fail-on",
        "warn",
    ]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(status_of(&v, "kms.holders").0, "unknown");
    assert_eq!(v["summary"]["errors"], 0, "{v:#}");
    assert_eq!(code, Some(1), "unknown is at least a warning");
    let (_, human) = doctor(&["--config", cfg.to_str().unwrap(), "--checks", "kms"]);
    assert!(human.contains("[?] kms.holders"), "{human}");
}

/// Check rows say what was observed, not the rule, in every status (issue 17): passed and
/// failed with their observation, skipped and unknown with why, crashed and timed out; the
/// rule stays in --list-checks.
#[test]
fn check_rows_show_what_was_observed_in_every_status() {
    use cc_proto::findings::{Finding, Severity};
    use ccctl::doctor::{CheckResult, CheckStatus, Report};
    let with = |id: &str,
                status: CheckStatus,
                observed: Option<&str>,
                note: Option<&str>,
                findings: Vec<Finding>| {
        let mut c = CheckResult::of(
            id,
            "the rule, not shown when something was observed",
            findings,
        );
        c.status = status;
        c.observed = observed.map(str::to_owned);
        c.note = note.map(str::to_owned);
        c
    };
    let mut r = Report {
        checks: vec![
            with(
                "kms.holders",
                CheckStatus::Passed,
                Some("3/3 holders released"),
                None,
                vec![],
            ),
            with(
                "enclave.nitro-cli",
                CheckStatus::Findings,
                Some("1 enclave RUNNING (debug)"),
                None,
                vec![Finding::new(
                    "enclave.debug-mode",
                    Severity::Error,
                    "debug mode",
                )],
            ),
            with(
                "pcr.policies",
                CheckStatus::Skipped,
                None,
                Some("no --config (CCCTL_CONFIG)"),
                vec![],
            ),
            with(
                "logs.forwarding",
                CheckStatus::Unknown,
                None,
                Some("/metrics did not answer"),
                vec![],
            ),
            with(
                "egress.endpoints",
                CheckStatus::Crashed,
                None,
                None,
                vec![Finding::new(
                    "doctor.check-crashed",
                    Severity::Error,
                    "check egress.endpoints crashed: boom",
                )],
            ),
            with(
                "nsm.allocator",
                CheckStatus::TimedOut,
                None,
                None,
                vec![Finding::new(
                    "doctor.check-timed-out",
                    Severity::Error,
                    "did not finish",
                )],
            ),
            with("nsm.device", CheckStatus::Passed, None, None, vec![]),
        ],
        signer: Some("unsealed".into()),
        ..Report::default()
    };
    r.resummarise();
    let out = ccctl::doctor::render::human(&r, ccctl::doctor::render::Style { color: false });
    insta::assert_snapshot!("check_rows_every_status", out);
    assert!(
        out.contains("[✓] kms.holders          3/3 holders released"),
        "{out}"
    );
    assert!(
        out.contains("[•] enclave.nitro-cli    1 enclave RUNNING (debug)  → #"),
        "{out}"
    );
    assert!(
        out.contains("[–] pcr.policies         skipped: no --config (CCCTL_CONFIG)"),
        "{out}"
    );
    assert!(
        out.contains("[?] logs.forwarding      unknown: /metrics did not answer"),
        "{out}"
    );
    // Nothing observed: the rule.
    assert!(out.contains("[✓] nsm.device           the rule"), "{out}");
    assert_eq!(out.matches("the rule").count(), 1, "{out}");
    assert!(out.contains("[☠] egress.endpoints     crashed"), "{out}");
    assert!(out.contains("[⏱] nsm.allocator        timed out"), "{out}");
}

/// Run for real: the demo-less local doctor says what it saw on each row it could look at.
#[test]
fn a_local_run_reports_observations() {
    let (_, out) = doctor(&["-o", "json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let observed = |id: &str| {
        v["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == id)
            .and_then(|c| c["observed"].as_str())
            .map(str::to_owned)
    };
    assert_eq!(
        observed("nsm.device").as_deref(),
        Some("/nonexistent missing"),
        "{out}"
    );
    assert!(
        observed("config.debug").is_some_and(|o| o.starts_with("PRODUCTION=")),
        "{out}"
    );
}

/// `-o` only where it means something, and `--checks` names that select nothing list what
/// exists (issue 17).
#[test]
fn output_formats_and_check_names_are_checked() {
    let o = common::ccctl(&["tui", "-o", "json"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        common::stderr(&o).contains("-o is not for ccctl tui"),
        "{}",
        common::stderr(&o)
    );
    let (code, out) = doctor(&["--checks", "nothing-like-this"]);
    assert_eq!(code, Some(2), "{out}");
    let o = common::ccctl(&["doctor", "--local", "--checks", "nothing-like-this"]);
    let err = common::stderr(&o);
    assert!(
        err.contains("names no check (families: config, egress, enclave, kms, logs, nsm, pcr"),
        "{err}"
    );
    // A family of a code a check emits, and a prefix of an id, select.
    let (_, out) = doctor(&["--checks", "metrics", "-o", "json"]);
    assert!(out.contains("\"logs.forwarding\""), "{out}");
    let (_, out) = doctor(&["--checks", "enclave.nitro", "-o", "json"]);
    assert!(
        out.contains("\"enclave.nitro-cli\"") && !out.contains("\"enclave.status\""),
        "{out}"
    );
}

/// Several clusters are for the fleet: one pod is in one cluster, and --all-contexts needs -l.
#[test]
fn several_contexts_are_for_the_fleet_only() {
    let o = common::ccctl(&["doctor", "--pod", "p", "--context", "a", "--context", "b"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        common::stderr(&o).contains("one --context here (several are for -l"),
        "{}",
        common::stderr(&o)
    );
    let o = common::ccctl(&["doctor", "--pod", "p", "--all-contexts"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        common::stderr(&o).contains("--selector"),
        "{}",
        common::stderr(&o)
    );
}

/// The one exit path sanitises its reason: an error quoting untrusted text (a path, the
/// cluster's or KMS's words) cannot move the cursor, retitle or clear the terminal.
#[test]
fn an_error_quoting_untrusted_text_reaches_the_terminal_sanitised() {
    let path = "/nonexistent/\u{1b}]0;owned\u{7}\u{1b}[2Jred";
    let o = common::ccctl(&["eif", "describe", "--eif-path", path]);
    assert_eq!(o.status.code(), Some(2));
    let err = common::stderr(&o);
    assert!(err.starts_with("error: "), "{err}");
    assert!(
        err.contains("/nonexistent/") && err.contains("red"),
        "{err}"
    );
    assert!(!err.contains('\u{1b}') && !err.contains('\u{7}'), "{err:?}");
}
