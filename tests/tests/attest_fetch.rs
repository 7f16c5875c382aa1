//! `ccctl attest fetch` against the real enclave server in software mode: a fresh document
//! with our nonce, verified against the server's development root — and refused against the
//! pinned AWS root.

use std::process::Command;
use std::time::Duration;

use cc_tests::{Proc, bin, free_port, wait_until};

#[test]
fn fetch_verifies_a_fresh_software_document_with_its_root_only() {
    let dir = tempfile::tempdir().unwrap();
    let api = dir.path().join("api.sock");
    let root_dir = dir.path().join("root");
    let cfg = dir.path().join("enclave.toml");
    let dead = free_port();
    std::fs::write(
        &cfg,
        format!(
            r#"platform = "software"
shares_file = "{shares}"
[listen]
api = "unix://{api}"
metrics = "tcp://127.0.0.1:{metrics}"
[logs]
target = "unix://{logs}"
[software]
root_dir = "{root}"
[software.pcrs]
0 = "{pcr0}"
[[holder]]
name = "a"
key_arn = "arn:aws:kms:us-east-1:111111111111:key/a"
region = "us-east-1"
endpoint = "http://127.0.0.1:{dead}"
[[holder]]
name = "b"
key_arn = "arn:aws:kms:us-east-1:111111111111:key/b"
region = "us-east-1"
endpoint = "http://127.0.0.1:{dead}"
"#,
            shares = dir.path().join("missing-shares.json").display(),
            api = api.display(),
            metrics = free_port(),
            logs = dir.path().join("nobody.sock").display(),
            root = root_dir.display(),
            pcr0 = "5e".repeat(48),
        ),
    )
    .unwrap();
    let _enclave = Proc::start(
        Command::new(bin("containment-chamber-enclave"))
            .args(["serve", "--config", cfg.to_str().unwrap()])
            .env_remove("PRODUCTION")
            .env("AWS_EC2_METADATA_DISABLED", "true"),
    );
    wait_until("api socket", Duration::from_secs(30), || {
        std::os::unix::net::UnixStream::connect(&api).is_ok()
    });
    let url = format!("unix://{}", api.display());
    let root = root_dir.join("root.pem");
    let saved = dir.path().join("doc.cbor");
    let o = Command::new(bin("ccctl"))
        .args([
            "-o",
            "json",
            "attest",
            "fetch",
            "--url",
            &url,
            "--root",
            root.to_str().unwrap(),
        ])
        .args([
            "--save",
            saved.to_str().unwrap(),
            "--expect-pcr",
            &format!("0={}", "5e".repeat(48)),
        ])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{v:#}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(v["valid"], true);
    assert_eq!(
        v["nonce"].as_str().unwrap().len(),
        64,
        "our 32-byte nonce came back"
    );
    assert_eq!(v["expected_pcrs"][0]["ok"], true);
    // The same document is not trusted under the pinned AWS root.
    let o = Command::new(bin("ccctl"))
        .args(["-o", "json", "attest", "verify", saved.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    // … and the reason says which root would verify it (issue 17).
    let reason = v["reason"].as_str().unwrap();
    assert!(
        reason.contains("leads to 'CN=containment-chamber development root (NOT AWS)")
            && reason.contains("--root DEMO_DIR/root/root.pem")
            && reason.contains("never genuine Nitro"),
        "{v:#}"
    );
    // A wrong PCR expectation is a mismatch.
    let o = Command::new(bin("ccctl"))
        .args([
            "attest",
            "fetch",
            "--url",
            &url,
            "--root",
            root.to_str().unwrap(),
        ])
        .args(["--expect-pcr", &format!("0={}", "00".repeat(48))])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stdout).contains("MISMATCH"));
    // Nobody listening: exit 2 naming the address.
    let o = Command::new(bin("ccctl"))
        .args([
            "attest",
            "fetch",
            "--url",
            &format!("http://127.0.0.1:{}", free_port()),
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("127.0.0.1"));
}

/// `attest fetch --pod`: the document from a pod's enclave API through the Kubernetes API
/// server's pod proxy (the demo's), bytes intact, verified with our nonce in it; a pod whose
/// API does not answer is an error naming the proxy's answer.
#[test]
fn fetch_through_the_pod_proxy() {
    let dir = tempfile::tempdir().unwrap();
    let demo = cc_tests::RunningDemo::start(&dir.path().join("demo"));
    let run = |args: &[&str]| {
        Command::new(bin("ccctl"))
            .args(["attest", "fetch"])
            .args(args)
            .envs(demo.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .output()
            .unwrap()
    };
    let o = run(&["--pod", "containment-chamber-0", "-o", "json"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    // Verified, with our nonce in it (the query went through the proxy).
    assert_eq!(v["valid"], true, "{v:#}");
    assert_eq!(v["nonce"].as_str().map(str::len), Some(64), "{v:#}");
    let o = run(&["--pod", "no-such-pod"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("HTTP 404"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}
