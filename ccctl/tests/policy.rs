//! `ccctl policy check` offline, with the shared policy fixtures and policies written here.

mod common;

use common::{ccctl, fixtures, stderr, stdout};

const ROLE: &str = "arn:aws:iam::222222222222:role/signer";
const OLD: &str = "5e1f00000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000";
const NEW: &str = "9b2c11111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111";
const P8: &str = "7d2222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222";

fn pf(name: &str, file: &str) -> String {
    format!(
        "{name}={}",
        fixtures().join("kms-policies").join(file).display()
    )
}

fn run(args: &[&str]) -> (i32, serde_json::Value, String) {
    let mut all = vec!["-o", "json", "policy", "check"];
    all.extend_from_slice(args);
    let o = ccctl(&all);
    let v = serde_json::from_str(&stdout(&o)).unwrap_or(serde_json::Value::Null);
    (o.status.code().unwrap_or(-1), v, stderr(&o))
}

fn codes(v: &serde_json::Value) -> Vec<String> {
    let mut c: Vec<String> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap().to_owned())
        .collect();
    for h in v["holders"].as_array().unwrap() {
        c.extend(
            h["findings"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f["code"].as_str().unwrap().to_owned()),
        );
    }
    c
}

#[test]
fn three_healthy_holders_mid_rotation_release() {
    let a = pf("a", "rotation-two-pcr0.json");
    let (code, v, e) = run(&[
        "--policy-file",
        &a,
        "--policy-file",
        &a.replacen("a=", "b=", 1),
        "--policy-file",
        &a.replacen("a=", "c=", 1),
        "--pcr0",
        OLD,
        "--pcr8",
        P8,
        "--principal",
        ROLE,
    ]);
    assert_eq!(code, 0, "{v:#} {e}");
    assert_eq!(v["holders_releasing"], 3);
    assert_eq!(v["release_possible"], true);
    assert_eq!(v["threshold"], 2);
    assert_eq!(v["principal"], ROLE);
    assert_eq!(v["measurements"]["PCR0"], OLD);
    let h = &v["holders"][0];
    assert_eq!(h["name"], "a");
    assert!(h["source"].as_str().unwrap().starts_with("file:"));
    assert_eq!(h["decrypt_allowed"], true);
    assert_eq!(h["allowed"]["PCR0"].as_array().unwrap().len(), 2);
    assert_eq!(h["allowed"]["PCR8"][0], P8);
    // Only the note that the IAM side was assumed (no key ARN, no identity policy given).
    assert_eq!(
        codes(&v),
        ["policy.identity-not-checked"; 3],
        "{:?}",
        codes(&v)
    );
    assert_eq!(v["holders"][0]["findings"][0]["severity"], "info");
}

#[test]
fn a_stale_holder_and_a_broken_one_lose_the_threshold() {
    let other = "ab".repeat(48);
    let (code, v, _) = run(&[
        "--policy-file",
        &pf("a", "rotation-two-pcr0.json"),
        "--policy-file",
        &pf("b", "string-equals-uppercase.json"),
        "--policy-file",
        &pf("c", "rotation-two-pcr0.json"),
        "--pcr0",
        &other,
        "--pcr8",
        P8,
        "--principal",
        ROLE,
        "--threshold",
        "2",
    ]);
    assert_eq!(code, 1);
    assert_eq!(v["holders_releasing"], 0);
    assert_eq!(v["release_possible"], false);
    let c = codes(&v);
    for want in [
        "policy.threshold-unmet",
        "policy.measurement-not-allowed",
        "policy.case-sensitive-operator",
        "policy.holder-disagreement",
    ] {
        assert!(c.iter().any(|x| x == want), "{want} missing in {c:?}");
    }
    let unmet = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == "policy.threshold-unmet")
        .unwrap();
    assert_eq!(unmet["severity"], "error");
    assert_eq!(
        unmet["runbook"],
        "runbooks/policy.md#policy-threshold-unmet"
    );
    assert_eq!(
        unmet["evidence"]["not_releasing"],
        serde_json::json!(["a", "b", "c"])
    );
}

#[test]
fn open_decrypt_is_a_security_error_even_when_it_releases() {
    let (code, v, _) = run(&[
        "--policy-file",
        &pf("a", "condition-on-encrypt-and-open-decrypt.json"),
        "--pcr0",
        NEW,
        "--principal",
        ROLE,
        "--threshold",
        "1",
    ]);
    assert_eq!(code, 1, "an error finding fails the check");
    assert_eq!(v["holders"][0]["decrypt_allowed"], true);
    let f = &v["holders"][0]["findings"];
    assert!(
        f.as_array()
            .unwrap()
            .iter()
            .any(|x| x["code"] == "policy.unattested-decrypt" && x["evidence"]["security"] == true)
    );
}

#[test]
fn measurements_from_an_eif_and_from_an_attestation_document() {
    let dir = tempfile::tempdir().unwrap();
    let eif = fixtures().join("eif/synthetic_signed.eif");
    let expected: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixtures().join("eif/expected_pcrs.json")).unwrap())
            .unwrap();
    let pcr0 = expected["synthetic_signed.eif"]["PCR0"].as_str().unwrap();
    let pcr8 = expected["synthetic_signed.eif"]["PCR8"].as_str().unwrap();
    let policy = dir.path().join("p.json");
    std::fs::write(&policy, format!(r#"{{"Statement":[{{"Effect":"Allow","Principal":{{"AWS":"{ROLE}"}},"Action":"kms:Decrypt","Resource":"*","Condition":{{"StringEqualsIgnoreCase":{{"kms:RecipientAttestation:PCR0":"{pcr0}","kms:RecipientAttestation:PCR8":"{pcr8}"}}}}}}]}}"#)).unwrap();
    let p = format!("x={}", policy.display());
    let (code, v, e) = run(&[
        "--policy-file",
        &p,
        "--eif",
        eif.to_str().unwrap(),
        "--principal",
        ROLE,
        "--threshold",
        "1",
    ]);
    assert_eq!(code, 0, "{v:#} {e}");
    assert_eq!(v["measurements"]["PCR8"], pcr8);
    // The unsigned image has no PCR8: the policy can never release to it.
    let unsigned = fixtures().join("eif/synthetic_unsigned.eif");
    let (code, v, _) = run(&[
        "--policy-file",
        &p,
        "--eif",
        unsigned.to_str().unwrap(),
        "--principal",
        ROLE,
        "--threshold",
        "1",
    ]);
    assert_eq!(code, 1);
    assert!(codes(&v).contains(&"policy.pcr8-unsigned".to_owned()));
    // Only --pcr0 given: PCR8 is not known, which is not "unsigned" (issue 13 #3).
    let only_pcr0 = [
        "--policy-file",
        &p,
        "--pcr0",
        pcr0,
        "--principal",
        ROLE,
        "--threshold",
        "1",
    ];
    let (code, v, _) = run(&only_pcr0);
    assert_eq!(code, 1, "{v:#}");
    let c = codes(&v);
    assert!(!c.contains(&"policy.pcr8-unsigned".to_owned()), "{c:?}");
    assert!(c.contains(&"policy.pcr8-not-given".to_owned()), "{c:?}");
    assert!(c.contains(&"policy.release-unknown".to_owned()), "{c:?}");
    assert!(!c.contains(&"policy.threshold-unmet".to_owned()), "{c:?}");
    assert_eq!(v["holders"][0]["verdict"], "unknown", "{v:#}");
    let human = stdout(&ccctl(&[&["policy", "check"][..], &only_pcr0[..]].concat()));
    assert!(!human.contains("unsigned"), "{human}");
    assert!(
        human.contains("UNKNOWN whether the enclave can unseal (PCR8 not given)"),
        "{human}"
    );
    // A debug-mode document attests all-zero PCRs.
    let doc = fixtures().join("attestation/eternis_example_attestation.bin");
    let (code, v, _) = run(&[
        "--policy-file",
        &p,
        "--attestation",
        doc.to_str().unwrap(),
        "--principal",
        ROLE,
        "--threshold",
        "1",
    ]);
    assert_eq!(code, 1);
    assert_eq!(v["measurements"]["PCR0"], "0".repeat(96));
}

#[test]
fn bad_input_exits_2() {
    for (args, needle) in [
        (vec!["--pcr0", OLD, "--principal", ROLE], "no holders"),
        (
            vec!["--policy-file", "a=/nonexistent.json", "--principal", ROLE],
            "no measurements",
        ),
        (
            vec!["--policy-file", "a", "--pcr0", OLD, "--principal", ROLE],
            "expected NAME=PATH",
        ),
        (
            vec![
                "--policy-file",
                "a=/x",
                "--pcr0",
                "abc",
                "--principal",
                ROLE,
            ],
            "--pcr0 'abc': expected 96 hex digits",
        ),
        (vec!["--policy-file", "a=/x", "--pcr0", OLD], "no principal"),
        (
            vec![
                "--policy-file",
                "a=/nonexistent.json",
                "--pcr0",
                OLD,
                "--principal",
                ROLE,
                "--threshold",
                "1",
            ],
            "cannot read '/nonexistent.json'",
        ),
        (
            vec!["--config", "/nonexistent.toml", "--pcr0", OLD],
            "cannot read config",
        ),
    ] {
        let mut all = vec!["policy", "check"];
        all.extend_from_slice(&args);
        let o = ccctl(&all);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stdout(&o));
        let text = stderr(&o) + &stdout(&o);
        assert!(
            text.contains(needle),
            "{args:?}: expected '{needle}' in {text}"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, r#"{"Statement": 3}"#).unwrap();
    let o = ccctl(&[
        "policy",
        "check",
        "--policy-file",
        &format!("a={}", bad.display()),
        "--pcr0",
        OLD,
        "--principal",
        ROLE,
        "--threshold",
        "1",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stdout(&o).contains("'Statement' must be an object or a list"),
        "{}",
        stdout(&o)
    );
}

/// Text from a key policy reaches the terminal without its control sequences.
#[test]
fn escape_sequences_in_a_policy_are_neutralised() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("evil.json");
    std::fs::write(&p, r#"{"Statement":[{"Sid":"x\u001b[2J\u001b]0;pwned\u0007","Effect":"Allow","Principal":"*","Action":"kms:Decrypt","Resource":"*"}]}"#).unwrap();
    let o = ccctl(&[
        "policy",
        "check",
        "--policy-file",
        &format!("a={}", p.display()),
        "--pcr0",
        OLD,
        "--principal",
        ROLE,
        "--threshold",
        "1",
    ]);
    let out = stdout(&o);
    assert!(out.contains("'x'") && !out.contains("pwned"), "{out}");
    assert!(!out.contains('\x1b') && !out.contains('\x07'));
}
