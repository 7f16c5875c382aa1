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

/// A nitro-cli that prints `json` verbatim (written to a file: no shell quoting in the way).
fn fake_printing(dir: &std::path::Path, json: &str) -> PathBuf {
    let out = dir.join("describe.json");
    std::fs::write(&out, json).unwrap();
    let p = dir.join("nitro-cli");
    std::fs::write(&p, format!("#!/bin/sh\ncat '{}'\n", out.display())).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

const HOSTILE: &str = r#"[
  {"EnclaveName": "chamber\nforged-enclave   evil   99 RUNNING      NONE          2    3524  ffffffffffffffff… ffffffffffffffff…",
   "EnclaveID": "i-1\u202e0fedcba", "EnclaveCID": 16, "State": "RUNNING\u2066", "Flags": "NONE\u0085",
   "Measurements": {"PCR0": "ééééééééééééééééé", "PCR8": "\u001b[31mred"}}
]"#;

/// Issue 16 #9: a line feed in an enclave name forged a table row (the sanitiser ran over the
/// whole table, keeping line feeds); fields are now sanitised one by one before the layout.
#[test]
fn hostile_enclave_fields_cannot_forge_rows_or_reorder_text() {
    let dir = tempfile::tempdir().unwrap();
    let n = fake_printing(dir.path(), HOSTILE);
    let o = ccctl(&["enclaves", "--nitro-cli", n.to_str().unwrap()]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "{out}{}", stderr(&o));
    // Header, one row for the one enclave, and the notes ("! …").
    let rows: Vec<&str> = out.lines().filter(|l| !l.starts_with("! ")).collect();
    assert_eq!(rows.len(), 2, "{out}");
    assert!(!out.lines().any(|l| l.starts_with("forged")), "{out}");
    for bad in ['\u{202e}', '\u{2066}', '\u{85}', '\u{1b}'] {
        assert!(!out.contains(bad), "{bad:?} in {out:?}");
    }
    assert!(out.contains("chamber\u{fffd}forged"), "{out}");
}

/// Issue 16 #9: serde_json writes U+202E, DEL and C1 raw; `-o json` escapes them as `\uXXXX`
/// and the document still parses back to the exact strings.
#[test]
fn json_output_escapes_bidi_and_c1_and_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let n = fake_printing(dir.path(), HOSTILE);
    let o = ccctl(&["-o", "json", "enclaves", "--nitro-cli", n.to_str().unwrap()]);
    let out = stdout(&o);
    for bad in ['\u{202e}', '\u{2066}', '\u{85}', '\u{1b}'] {
        assert!(!out.contains(bad), "{bad:?} in {out:?}");
    }
    assert!(out.contains(r"i-1\u202e0fedcba"), "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["enclaves"][0]["EnclaveID"], "i-1\u{202e}0fedcba");
    assert_eq!(v["enclaves"][0]["Flags"], "NONE\u{85}");
}

/// Issue 16 #9: doctor's JSON evidence carried U+202E from nitro-cli's output raw.
#[test]
fn doctor_json_evidence_escapes_bidi_controls() {
    let dir = tempfile::tempdir().unwrap();
    let n = fake_printing(dir.path(), HOSTILE);
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_ccctl"))
        .args([
            "-o",
            "json",
            "doctor",
            "--local",
            "--api",
            "tcp://127.0.0.1:1",
            "--metrics",
            "tcp://127.0.0.1:1",
            "--device",
            "/nonexistent",
            "--allocator",
            "/nonexistent",
            "--timeout",
            "3s",
            "--nitro-cli",
            n.to_str().unwrap(),
        ])
        .env("NO_COLOR", "1")
        .env_remove("CCCTL_CONFIG")
        .env_remove("CCCTL_LOG_FILE")
        .env_remove("CCCTL_PROXY_CONFIG")
        .output()
        .unwrap();
    let out = stdout(&o);
    assert!(
        out.contains(r"\u202e"),
        "the enclave ID is in the evidence: {out}"
    );
    assert!(!out.contains('\u{202e}'), "{out:?}");
    assert!(!out.contains('\u{2066}'), "{out:?}");
    let _: serde_json::Value = serde_json::from_str(&out).unwrap();
}

/// Run ccctl, killing it if it is still running after `limit` (the old code hung for good).
fn ccctl_within(args: &[&str], limit: std::time::Duration) -> std::process::Output {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_ccctl"))
        .args(args)
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let t = std::time::Instant::now();
    while c.try_wait().unwrap().is_none() {
        if t.elapsed() > limit {
            let _ = c.kill();
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    c.wait_with_output().unwrap()
}

fn script(dir: &std::path::Path, body: &str) -> PathBuf {
    let p = dir.join("nitro-cli");
    std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

/// Issue 16 #2: a nitro-cli that prints without end took `ccctl enclaves` to 22.8 GB. The
/// output is capped (here 1 MiB; the script stops at 64 MiB so the old code ends too) and the
/// error names the cap: exit 2.
#[test]
fn nitro_cli_printing_without_end_is_stopped_at_the_output_cap() {
    let dir = tempfile::tempdir().unwrap();
    let n = script(dir.path(), "yes '[' | head -c 67108864");
    let t = std::time::Instant::now();
    let o = ccctl_within(
        &[
            "enclaves",
            "--max-output",
            "1MiB",
            "--nitro-cli",
            n.to_str().unwrap(),
        ],
        std::time::Duration::from_secs(30),
    );
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert!(e.contains("stdout exceeded the output cap of 1 MiB"), "{e}");
    assert!(e.contains("--max-output"), "{e}");
    assert!(t.elapsed() < std::time::Duration::from_secs(20));
}

/// Issue 16 #2: a nitro-cli that hangs hung `ccctl enclaves` for good. It is stopped at the
/// deadline and the error names it: exit 2.
#[test]
fn hanging_nitro_cli_is_stopped_at_the_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let n = script(dir.path(), "sleep 60");
    let t = std::time::Instant::now();
    let o = ccctl_within(
        &[
            "enclaves",
            "--timeout",
            "500ms",
            "--nitro-cli",
            n.to_str().unwrap(),
        ],
        std::time::Duration::from_secs(20),
    );
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert!(
        e.contains("did not finish within the deadline of 500ms"),
        "{e}"
    );
    assert!(t.elapsed() < std::time::Duration::from_secs(10));
}

/// A bad limit is named and exits 2, never a panic.
#[test]
fn bad_limits_are_named() {
    let o = ccctl(&["enclaves", "--max-output", "lots"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("'lots'"), "{}", stderr(&o));
}

/// Issue 16 #2 with the defaults (no flags): 64 MiB of output is stopped at the 8 MiB cap and
/// the error says so (the old code read it all and failed on the JSON instead).
#[test]
fn the_default_output_cap_applies() {
    let dir = tempfile::tempdir().unwrap();
    let n = script(dir.path(), "yes '[' | head -c 67108864");
    let o = ccctl_within(
        &["enclaves", "--nitro-cli", n.to_str().unwrap()],
        std::time::Duration::from_secs(30),
    );
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert!(e.contains("stdout exceeded the output cap of 8 MiB"), "{e}");
}
