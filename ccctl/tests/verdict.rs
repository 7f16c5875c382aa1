//! `ccctl policy check` on the problems issue 12 listed, each checked through the real binary
//! (the evaluator's own rule tables are in cc-proto's `policy::{defects,table,differential}`).
//! Each case names the AWS documentation page it follows.

mod common;

use common::{ccctl, fixtures, stdout};

const ROLE: &str = "arn:aws:iam::222222222222:role/signer";
const NEW: &str = "9b2c11111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111";
const P8: &str = "7d2222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222";
const KEY_SAME: &str =
    "arn:aws:kms:us-east-1:222222222222:key/aaaaaaaa-0000-4000-8000-000000000001";
const KEY_OTHER_ACCOUNT: &str =
    "arn:aws:kms:eu-west-1:111111111111:key/bbbbbbbb-0000-4000-8000-000000000002";

fn attested_allow(extra: &str) -> String {
    format!(
        r#"{{"Sid":"AttestedDecrypt","Effect":"Allow","Principal":{{"AWS":"{ROLE}"}},"Action":"kms:Decrypt"{extra},
          "Condition":{{"StringEqualsIgnoreCase":{{"kms:RecipientAttestation:PCR0":"{NEW}","kms:RecipientAttestation:PCR8":"{P8}"}}}}}}"#
    )
}

/// `policy check` of one policy (as holder `h`) with extra flags: exit code and JSON.
fn check(policy: &str, extra: &[&str]) -> (Option<i32>, serde_json::Value) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("policy.json");
    std::fs::write(&p, policy).unwrap();
    let pf = format!("h={}", p.display());
    let mut args = vec![
        "-o",
        "json",
        "policy",
        "check",
        "--policy-file",
        &pf,
        "--pcr0",
        NEW,
        "--pcr8",
        P8,
        "--principal",
        ROLE,
        "--threshold",
        "1",
    ];
    args.extend_from_slice(extra);
    let o = ccctl(&args);
    let v = serde_json::from_str(&stdout(&o)).unwrap_or_else(|e| panic!("{e}: {o:?}"));
    (o.status.code(), v)
}

fn codes(v: &serde_json::Value) -> Vec<String> {
    v["holders"][0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap().to_owned())
        .collect()
}

fn wrap(statements: &[String]) -> String {
    format!(
        r#"{{"Version":"2012-10-17","Statement":[{}]}}"#,
        statements.join(",")
    )
}

/// Every holder that does not release has an error finding naming why and the holder.
fn says_why(v: &serde_json::Value) {
    let h = &v["holders"][0];
    assert_eq!(h["decrypt_allowed"], false, "{v:#}");
    assert!(
        h["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["severity"] == "error"
                && f["summary"].as_str().unwrap().contains("holder 'h'")),
        "no error finding naming the holder: {v:#}"
    );
}

/// Problem 1: Other condition keys are judged, not treated as absent.
/// https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-keys.html#condition-keys-principalarn
#[test]
fn other_condition_keys_are_judged() {
    let deny_others = format!(
        r#"{{"Sid":"OnlyTheRole","Effect":"Deny","Principal":"*","Action":"kms:Decrypt","Resource":"*",
            "Condition":{{"StringNotEquals":{{"aws:PrincipalArn":"{ROLE}"}}}}}}"#
    );
    let (code, v) = check(
        &wrap(&[attested_allow(r#","Resource":"*""#), deny_others]),
        &[],
    );
    assert_eq!(v["holders"][0]["decrypt_allowed"], true, "{v:#}");
    assert!(
        !codes(&v).contains(&"policy.deny-shadow".to_owned()),
        "{v:#}"
    );
    assert_eq!(code, Some(0), "{v:#}");
    // kms:EncryptionContext:purpose is the share's: a wrong value is a "no" that says why.
    let purpose = format!(
        r#"{{"Sid":"AttestedDecrypt","Effect":"Allow","Principal":{{"AWS":"{ROLE}"}},"Action":"kms:Decrypt","Resource":"*",
            "Condition":{{"StringEquals":{{"kms:EncryptionContext:purpose":"something-else"}},
                         "StringEqualsIgnoreCase":{{"kms:RecipientAttestation:PCR0":"{NEW}"}}}}}}"#
    );
    let (_, v) = check(&wrap(&[purpose]), &[]);
    says_why(&v);
    assert!(
        codes(&v).contains(&"policy.condition-unmet".to_owned()),
        "{v:#}"
    );
}

/// Problem 2: Resource matters: absent → no effect; another key → does not apply.
/// https://docs.aws.amazon.com/kms/latest/developerguide/key-policy-overview.html
#[test]
fn resource_matters() {
    let (_, v) = check(
        &wrap(&[attested_allow("")]),
        &["--key-arn", &format!("h={KEY_SAME}")],
    );
    says_why(&v);
    let other = r#","Resource":"arn:aws:kms:us-east-1:222222222222:key/someone-else""#;
    let (_, v) = check(
        &wrap(&[attested_allow(other)]),
        &["--key-arn", &format!("h={KEY_SAME}")],
    );
    says_why(&v);
    let this = format!(r#","Resource":"{KEY_SAME}""#);
    let (code, v) = check(
        &wrap(&[attested_allow(&this)]),
        &["--key-arn", &format!("h={KEY_SAME}")],
    );
    assert_eq!(v["holders"][0]["decrypt_allowed"], true, "{v:#}");
    assert_eq!(code, Some(0), "{v:#}");
    // Without the key ARN a Resource naming a key cannot be judged: said, not guessed.
    let (_, v) = check(&wrap(&[attested_allow(&this)]), &[]);
    assert_eq!(v["holders"][0]["verdict"], "depends_on", "{v:#}");
    assert!(
        codes(&v).contains(&"policy.condition-not-judged".to_owned()),
        "{v:#}"
    );
}

/// Problem 3: `Null` with a list of values is OR-ed (always true here).
/// https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html#Conditions_Null
#[test]
fn null_with_a_list_is_or() {
    let deny = r#"{"Sid":"DenyAll","Effect":"Deny","Principal":"*","Action":"kms:Decrypt","Resource":"*",
                  "Condition":{"Null":{"kms:RecipientAttestation:PCR0":["true","false"]}}}"#;
    let (_, v) = check(
        &wrap(&[attested_allow(r#","Resource":"*""#), deny.into()]),
        &[],
    );
    says_why(&v);
}

/// Problem 4: The IAM side: a cross-account key needs the role's identity policy too; not given, it is
/// an error that says so; given without Decrypt, the holder does not release.
/// https://docs.aws.amazon.com/kms/latest/developerguide/key-policy-modifying-external-accounts.html
#[test]
fn the_iam_side_is_judged_or_said_to_be_assumed() {
    let policy = wrap(&[attested_allow(r#","Resource":"*""#)]);
    let key = format!("h={KEY_OTHER_ACCOUNT}");
    let (code, v) = check(&policy, &["--key-arn", &key]);
    assert!(
        codes(&v).contains(&"policy.identity-not-checked".to_owned()),
        "{v:#}"
    );
    assert_eq!(
        code,
        Some(1),
        "cross-account with the IAM side assumed is an error"
    );
    // Not a plain "releases": the key policy allows, the IAM side was not looked at.
    assert_eq!(v["holders"][0]["verdict"], "allowed_if_iam_allows", "{v:#}");
    assert_eq!(v["holders"][0]["iam_assumed"], true, "{v:#}");
    let dir = tempfile::tempdir().unwrap();
    let id = dir.path().join("identity.json");
    std::fs::write(&id, r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"logs:*","Resource":"*"}]}"#).unwrap();
    let (_, v) = check(
        &policy,
        &["--key-arn", &key, "--identity-policy", id.to_str().unwrap()],
    );
    says_why(&v);
    assert!(
        codes(&v).contains(&"policy.identity-lacks-decrypt".to_owned()),
        "{v:#}"
    );
    std::fs::write(
        &id,
        format!(r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"kms:Decrypt","Resource":"{KEY_OTHER_ACCOUNT}"}}]}}"#),
    )
    .unwrap();
    let (code, v) = check(
        &policy,
        &["--key-arn", &key, "--identity-policy", id.to_str().unwrap()],
    );
    assert_eq!(v["holders"][0]["decrypt_allowed"], true, "{v:#}");
    assert_eq!(v["holders"][0]["verdict"], "allowed", "{v:#}");
    assert_eq!(code, Some(0), "{v:#}");
}

/// Problem 5: A "does NOT release" always says why (here: the principal is not granted).
#[test]
fn a_no_always_says_why() {
    let p = format!(
        "r={}",
        fixtures()
            .join("kms-policies/rotation-two-pcr0.json")
            .display()
    );
    let o = ccctl(&[
        "policy",
        "check",
        "--policy-file",
        &p,
        "--principal",
        "arn:aws:iam::111111111111:role/chamber-enclave",
        "--pcr0",
        NEW,
        "--pcr8",
        P8,
        "--threshold",
        "1",
    ]);
    let out = stdout(&o);
    assert!(out.contains("policy.principal-not-granted"), "{out}");
    assert!(out.contains("holder 'r'"), "{out}");
    assert!(
        out.contains("does NOT release: no Allow statement"),
        "{out}"
    );
    assert!(out.contains("(not releasing: r)"), "{out}");
}

#[test]
fn bad_key_arn_flags_are_named() {
    let o = ccctl(&[
        "policy",
        "check",
        "--policy-file",
        "h=/nonexistent",
        "--key-arn",
        "h=not-an-arn",
        "--pcr0",
        NEW,
        "--principal",
        ROLE,
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(common::stderr(&o).contains("--key-arn 'h=not-an-arn'"));
    let o = ccctl(&[
        "policy",
        "check",
        "--policy-file",
        "h=/nonexistent",
        "--key-arn",
        &format!("x={KEY_SAME}"),
        "--pcr0",
        NEW,
        "--principal",
        ROLE,
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(common::stderr(&o).contains("no holder named 'x'"));
}

/// Debug mode (all-zero PCR0, no PCR8): never the advice to add the zero value to a policy,
/// and no "sign the EIF" for the missing PCR8 (issue 13, defect 3).
#[test]
fn debug_mode_never_gets_advice_that_weakens_the_policy() {
    let zero = "0".repeat(96);
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("policy.json");
    std::fs::write(&p, wrap(&[attested_allow(r#","Resource":"*""#)])).unwrap();
    let pf = format!("h={}", p.display());
    let o = ccctl(&[
        "-o",
        "json",
        "policy",
        "check",
        "--policy-file",
        &pf,
        "--pcr0",
        &zero,
        "--principal",
        ROLE,
        "--threshold",
        "1",
    ]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let findings = v["holders"][0]["findings"].as_array().unwrap();
    let m = findings
        .iter()
        .find(|f| f["code"] == "policy.measurement-not-allowed")
        .unwrap_or_else(|| panic!("{v:#}"));
    let fix = m["remediation"]["text"].as_str().unwrap();
    assert!(
        fix.contains("debug mode") && fix.contains("Never add"),
        "{fix}"
    );
    assert!(m["remediation"]["commands"].as_array().unwrap().is_empty());
    assert!(
        !findings.iter().any(|f| f["code"] == "policy.pcr8-unsigned"),
        "{v:#}"
    );
    assert!(!stdout(&o).contains("add the new value"));
    // A real new value gets a rotate command that runs as printed.
    let o = ccctl(&[
        "-o",
        "json",
        "policy",
        "check",
        "--policy-file",
        &pf,
        "--pcr0",
        &"ab".repeat(48),
        "--pcr8",
        P8,
        "--principal",
        ROLE,
        "--threshold",
        "1",
    ]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let m = v["holders"][0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == "policy.measurement-not-allowed")
        .unwrap_or_else(|| panic!("{v:#}"))
        .clone();
    let cmd = m["remediation"]["commands"][0].as_str().unwrap();
    assert_eq!(
        cmd,
        format!(
            "ccctl rotate pcr0 start --new {} --config ccctl.toml",
            "ab".repeat(48)
        )
    );
    // The real parser takes it (subcommand and flags exist); only the config is missing here.
    let o = ccctl(&[
        "rotate",
        "pcr0",
        "start",
        "--new",
        &"ab".repeat(48),
        "--config",
        "/nonexistent/ccctl.toml",
        "--state",
        dir.path().join("s.json").to_str().unwrap(),
    ]);
    let err = common::stderr(&o);
    assert!(
        !err.contains("unexpected argument") && !err.contains("unrecognized"),
        "{err}"
    );
}
