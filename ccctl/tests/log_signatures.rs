//! `ccctl doctor --local --checks logs.signatures --log-file FILE`: pass on a clean log, each
//! failure signature found in a real file (only in the last MiB), and an unreadable file.

use std::process::Command;

fn doctor(file: &std::path::Path) -> (i32, serde_json::Value) {
    let o = Command::new(env!("CARGO_BIN_EXE_ccctl"))
        .args([
            "doctor",
            "--local",
            "--checks",
            "logs.signatures",
            "-o",
            "json",
            "--log-file",
        ])
        .arg(file)
        .output()
        .unwrap();
    let v = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&o.stdout)));
    (o.status.code().unwrap_or(-1), v)
}

fn codes(v: &serde_json::Value) -> Vec<String> {
    v["checks"][0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn clean_failing_and_unreadable_logs() {
    let dir = tempfile::tempdir().unwrap();
    let clean = dir.path().join("clean.log");
    std::fs::write(&clean, "2026-11-25T00:00:00Z  INFO x: unsealed\n").unwrap();
    let (code, v) = doctor(&clean);
    assert_eq!(code, 0);
    assert_eq!(codes(&v), Vec::<String>::new());

    // An old panic more than 1 MiB back is not "recent"; the NSM failure at the end is.
    let bad = dir.path().join("bad.log");
    let mut text = String::from("thread 'main' panicked at old.rs:1:1\n");
    while text.len() < (1 << 20) + 1000 {
        text.push_str(
            "2026-11-25T00:00:00Z  INFO containment_chamber_enclave::api: sign status=200\n",
        );
    }
    text.push_str("2026-11-25T00:00:01Z ERROR containment_chamber_enclave::server: cannot unseal reason=NSM initialization failed: cannot open /dev/nsm\n");
    std::fs::write(&bad, text).unwrap();
    let (code, v) = doctor(&bad);
    assert_eq!(code, 1, "{v}");
    assert_eq!(codes(&v), ["logs.nsm-init-failed"]);
    let f = &v["checks"][0]["findings"][0];
    assert_eq!(f["evidence"]["lines"], 1);
    assert!(
        f["remediation"]["commands"][0]
            .as_str()
            .unwrap()
            .contains("--checks nsm")
    );

    let (code, v) = doctor(&dir.path().join("missing.log"));
    assert_eq!(code, 0, "an unreadable log is a warning");
    assert_eq!(codes(&v), ["logs.file-unreadable"]);
}
