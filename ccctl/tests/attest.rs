//! `ccctl attest verify` against the genuine and deliberately bad documents in the shared
//! fixtures.

mod common;

use common::{ccctl, fixtures, stderr, stdout};

fn manifest() -> Vec<serde_json::Value> {
    serde_json::from_slice(&std::fs::read(fixtures().join("attestation/MANIFEST.json")).unwrap())
        .unwrap()
}

fn verify(file: &str, extra: &[&str]) -> (i32, serde_json::Value) {
    let p = fixtures().join("attestation").join(file);
    let mut args = vec!["-o", "json", "attest", "verify", p.to_str().unwrap()];
    args.extend_from_slice(extra);
    let o = ccctl(&args);
    let v = serde_json::from_str(&stdout(&o)).unwrap_or(serde_json::Value::Null);
    (o.status.code().unwrap_or(-1), v)
}

#[test]
fn every_genuine_document_verifies_at_its_own_time_and_not_today() {
    let mut genuine = 0;
    for e in manifest() {
        let file = e["file"].as_str().unwrap();
        let kind = e["kind"].as_str().unwrap();
        if !kind.starts_with("genuine") {
            continue;
        }
        genuine += 1;
        let (code, v) = verify(file, &["--at", "doc"]);
        assert_eq!(code, 0, "{file}: {v:#}");
        assert_eq!(v["valid"], true, "{file}");
        assert_eq!(v["module_id"], e["module_id"], "{file}");
        let debug = kind.contains("debug mode");
        assert_eq!(v["debug_mode"], debug, "{file}");
        if !debug {
            assert_eq!(v["pcrs"]["PCR0"], e["pcr0"], "{file}");
        } else {
            assert!(
                v["pcrs"].get("PCR0").is_none(),
                "zero PCRs are hidden by default"
            );
        }
        assert_eq!(v["chain"][0]["role"], "root");
        assert_eq!(
            v["chain"].as_array().unwrap().last().unwrap()["role"],
            "leaf"
        );
        // Today the leaf (about 3 hours) has long expired.
        let (code, v) = verify(file, &[]);
        assert_eq!(code, 1, "{file}");
        assert!(
            v["reason"].as_str().unwrap().contains("expired"),
            "{file}: {}",
            v["reason"]
        );
    }
    assert!(genuine >= 15, "manifest lists {genuine} genuine documents");
}

#[test]
fn the_deliberately_bad_documents_are_rejected_with_the_right_reason() {
    for (file, reason) in [
        (
            "eternis_invalid_attestation.bin",
            "COSE signature does not verify",
        ),
        (
            "fortanix_tampered_signature.bin",
            "COSE signature does not verify",
        ),
        (
            "fortanix_tampered_certificate.bin",
            "leaf certificate does not parse",
        ),
    ] {
        for at in ["doc", "now"] {
            let (code, v) = verify(file, &["--at", at]);
            assert_eq!(code, 1, "{file}");
            assert!(
                v["reason"].as_str().unwrap().contains(reason),
                "{file}: {}",
                v["reason"]
            );
        }
    }
}

#[test]
fn expected_pcrs_turn_a_mismatch_into_exit_1() {
    let file = "base_nitro_validator_2024-11-30.bin";
    let pcr0 = "ec74bfbe7f7445a6c7610e152935e028276f638042b74797b119648e13f7a3675796b721034c320f140ea001b41aeae2";
    let (code, v) = verify(file, &["--at", "doc", "--expect-pcr", &format!("0={pcr0}")]);
    assert_eq!(code, 0);
    assert_eq!(v["expected_pcrs"][0]["ok"], true);
    let other = "ab".repeat(48);
    let (code, v) = verify(
        file,
        &["--at", "doc", "--expect-pcr", &format!("0={other}")],
    );
    assert_eq!(code, 1);
    assert_eq!(v["expected_pcrs"][0]["actual"], pcr0);
    let p = fixtures().join("attestation").join(file);
    let o = ccctl(&[
        "attest",
        "verify",
        p.to_str().unwrap(),
        "--expect-pcr",
        "0=abc",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("96 hex digits"), "{}", stderr(&o));
}

#[test]
fn at_takes_rfc3339_and_all_pcrs_shows_zeros() {
    let file = "base_nitro_validator_2024-11-30.bin";
    let (code, _) = verify(file, &["--at", "2024-11-30T17:00:00Z"]);
    assert_eq!(code, 0);
    let (code, v) = verify(file, &["--at", "2024-11-30T20:00:00Z"]);
    assert_eq!(code, 1, "leaf expired 19:22:48");
    assert!(v["reason"].as_str().unwrap().contains("expired"));
    let (_, v) = verify(file, &["--at", "doc", "--all-pcrs"]);
    assert_eq!(v["pcrs"].as_object().unwrap().len(), 16);
    let p = fixtures().join("attestation").join(file);
    let o = ccctl(&["attest", "verify", p.to_str().unwrap(), "--at", "yesterday"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("'yesterday' is not 'now', 'doc' or an RFC 3339 time"));
}

#[test]
fn another_root_is_not_trusted_and_hex_input_is_accepted() {
    let (code, v) = verify("oyster_verifier_test_attestation_hex.bin", &["--at", "doc"]);
    assert_eq!(code, 0, "{v:#}");
    let other = fixtures().join("eif/synthetic_signer_cert.pem");
    let (code, v) = verify(
        "oyster_sdks_rs_aws.bin",
        &["--at", "doc", "--root", other.to_str().unwrap()],
    );
    assert_eq!(code, 1);
    assert!(
        v["reason"]
            .as_str()
            .unwrap()
            .contains("does not lead to the pinned root"),
        "{}",
        v["reason"]
    );
}

#[test]
fn garbage_is_exit_2_and_stdin_works() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("junk.bin");
    std::fs::write(&p, b"\x84\x01\x02").unwrap();
    let o = ccctl(&["attest", "verify", p.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("not an attestation document"),
        "{}",
        stderr(&o)
    );
    let doc = std::fs::read(fixtures().join("attestation/oyster_sdks_rs_aws.bin")).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ccctl"))
        .args(["attest", "verify", "-", "--at", "doc"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(&doc).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("valid        yes"));
}
