//! `ccctl enclaves` with a fake nitro-cli that prints the shared fixtures.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use common::{ccctl, fixtures, stderr, stdout};

/// A nitro-cli that prints `stdout_fixture` (or `stderr_fixture` and exits `status`).
fn fake(
    dir: &std::path::Path,
    stdout_fixture: Option<&str>,
    stderr_fixture: Option<(&str, i32)>,
) -> PathBuf {
    let fx = fixtures().join("nitro-cli");
    let mut script = String::from("#!/bin/sh\n[ \"$1\" = describe-enclaves ] || exit 99\n");
    if let Some(f) = stdout_fixture {
        script += &format!("cat '{}'\n", fx.join(f).display());
    }
    if let Some((f, status)) = stderr_fixture {
        script += &format!("cat '{}' >&2\nexit {status}\n", fx.join(f).display());
    }
    let p = dir.join("nitro-cli");
    std::fs::write(&p, script).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

#[test]
fn running_enclave_is_listed_and_exit_0() {
    let dir = tempfile::tempdir().unwrap();
    let n = fake(dir.path(), Some("describe-enclaves.running.json"), None);
    let o = ccctl(&["enclaves", "--nitro-cli", n.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("i-0123456789abcdef0-enc18f0a1b2c3d4e5f6"));
    assert!(
        out.contains("RUNNING") && out.contains("f50ca4f69fb893ad…"),
        "{out}"
    );
    let o = ccctl(&["-o", "json", "enclaves", "--nitro-cli", n.to_str().unwrap()]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["enclaves"][0]["EnclaveCID"], 16);
    assert_eq!(
        v["enclaves"][0]["Measurements"]["PCR8"]
            .as_str()
            .unwrap()
            .len(),
        96
    );
    assert_eq!(v["notes"], serde_json::json!([]));
}

#[test]
fn debug_mode_is_called_out_as_a_finding() {
    let dir = tempfile::tempdir().unwrap();
    let n = fake(dir.path(), Some("describe-enclaves.debug.json"), None);
    let o = ccctl(&["enclaves", "--nitro-cli", n.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stdout(&o).contains("DEBUG_MODE: its attested PCRs are all zero"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn legacy_and_empty_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let n = fake(dir.path(), Some("describe-enclaves.legacy.json"), None);
    let o = ccctl(&["-o", "json", "enclaves", "--nitro-cli", n.to_str().unwrap()]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert!(v["enclaves"][0]["Measurements"].is_null());
    let n = fake(dir.path(), Some("describe-enclaves.empty.json"), None);
    let o = ccctl(&["enclaves", "--nitro-cli", n.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains("no enclave is running"));
}

#[test]
fn nitro_cli_errors_are_parsed() {
    let dir = tempfile::tempdir().unwrap();
    let n = fake(dir.path(), None, Some(("error.E19.stderr.txt", 19)));
    let o = ccctl(&["enclaves", "--nitro-cli", n.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(e.contains("failed with E19 (exit 19)"), "{e}");
    assert!(
        e.contains("'/dev/nitro_enclaves'") && e.contains("device is missing"),
        "{e}"
    );
    let o = ccctl(&["-o", "json", "enclaves", "--nitro-cli", n.to_str().unwrap()]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["error"]["code"], "E19");
    assert_eq!(v["exit_status"], 19);
}
