//! One case, every part that judges "would this holder release its share?": the demo's
//! `role-lacks-decrypt` chamber (holder-b's key policy admits the running PCRs, but the signer
//! role's IAM policy lacks kms:Decrypt on holder-b's key, a cross-account key). The local KMS
//! (what the enclave really got), `ccctl policy check`, doctor's pcr family, the dashboard's
//! measurements panel and rotate's holder views (what its interlocks count) must all say:
//! holder-a and holder-c release, holder-b does not, because of the IAM side.

// Setting the demo's AWS variables for the in-process parts (the only test in this binary, before
// any other thread starts).
#![allow(unsafe_code)]

use std::process::Command;
use std::time::Duration;

use cc_tests::{RunningDemo, bin};

fn ccctl(demo: &RunningDemo, args: &[&str]) -> (Option<i32>, serde_json::Value) {
    let o = Command::new(bin("ccctl"))
        .args(args)
        .envs(demo.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let v = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    });
    (o.status.code(), v)
}

const WANT: [(&str, bool); 3] = [("holder-a", true), ("holder-b", false), ("holder-c", true)];

#[test]
fn every_part_gives_the_same_verdict() {
    let dir = tempfile::tempdir().unwrap();
    let demo = RunningDemo::start_with(
        &dir.path().join("demo"),
        &["--scenario", "role-lacks-decrypt"],
    );
    for (k, v) in &demo.env {
        if k.starts_with("AWS_") {
            // SAFETY: single-threaded so far: no runtime or other test thread reads the
            // environment while it is written.
            unsafe { std::env::set_var(k, v) };
        }
    }
    let api: cc_proto::Address = demo.var("CCCTL_API").parse().unwrap();
    let config = std::path::PathBuf::from(demo.var("CCCTL_CONFIG"));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let status = rt
        .block_on(cc_proto::status::fetch(&api, Duration::from_secs(5)))
        .unwrap();
    let pcrs = status.attestation.as_ref().unwrap().pcr_set();
    let pcr0 = pcrs.get(0).unwrap().hex();
    let pcr8 = pcrs.get(8).unwrap().hex();

    // 1. The local KMS: what the enclave really got.
    for (name, releases) in WANT {
        let h = status.holders.iter().find(|h| h.name == name).unwrap();
        assert_eq!(
            h.outcome == cc_proto::status::HolderOutcome::Decrypted,
            releases,
            "local KMS, {name}: {h:?}"
        );
    }

    // 2. ccctl policy check (live, the demo's ccctl.toml with its [iam] side).
    let (_, v) = ccctl(
        &demo,
        &[
            "-o", "json", "policy", "check", "--pcr0", &pcr0, "--pcr8", &pcr8,
        ],
    );
    for (name, releases) in WANT {
        let h = v["holders"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["name"] == name)
            .unwrap();
        assert_eq!(
            h["decrypt_allowed"], releases,
            "policy check, {name}: {v:#}"
        );
    }
    let b = &v["holders"][1];
    assert!(
        b["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["code"] == "policy.identity-lacks-decrypt"),
        "{v:#}"
    );

    // 3. doctor's pcr family: the same holder, the same reason.
    let (_, d) = ccctl(
        &demo,
        &["-o", "json", "doctor", "--local", "--checks", "pcr"],
    );
    let findings: Vec<&serde_json::Value> = d["checks"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["findings"].as_array().unwrap())
        .collect();
    let denied: Vec<&str> = findings
        .iter()
        .filter(|f| f["code"] == "policy.identity-lacks-decrypt")
        .map(|f| f["evidence"]["holder"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(denied, ["holder-b"], "doctor: {d:#}");

    // 4. The dashboard: its measurements panel is fed by policy::report_for_status.
    let report = rt
        .block_on(ccctl::policy::report_for_status(
            &config,
            &status,
            Duration::from_secs(10),
        ))
        .unwrap();
    let mut app = ccctl::tui::app::App::new("demo", 100);
    app.apply(ccctl::tui::app::Update::Status(Ok(status.clone())));
    app.apply(ccctl::tui::app::Update::Policy(Ok(report.clone())));
    let mut t = ratatui::Terminal::new(ratatui::backend::TestBackend::new(160, 45)).unwrap();
    t.draw(|f| ccctl::tui::ui::render(&app, f)).unwrap();
    let screen = format!("{}", t.backend());
    assert!(screen.contains("2 of 3 holders release"), "{screen}");
    assert!(screen.contains("holder-b does NOT release"), "{screen}");
    for (name, releases) in WANT {
        let h = report.holders.iter().find(|h| h.name == name).unwrap();
        assert_eq!(h.decrypt_allowed, Some(releases), "dashboard, {name}");
    }

    // 5. rotate: the holder views its interlocks count (NEW = the running PCR0).
    let (views, threshold) = rt
        .block_on(ccctl::rotate::holder_views(
            &config,
            0,
            &pcr0,
            &"ab".repeat(48),
            &[(8u8, pcr8.clone())].into(),
            Duration::from_secs(10),
        ))
        .unwrap();
    assert_eq!(threshold, 2);
    for (name, releases) in WANT {
        let h = views.iter().find(|h| h.holder == name).unwrap();
        assert_eq!(h.allows_new, Some(releases), "rotate, {name}: {views:?}");
    }
}
