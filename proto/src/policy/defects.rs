//! One test per defect of the evaluator as it was before the three-valued rewrite (commit
//! 3df7d85), written against the public API that existed then (`Policy::parse`, `evaluate`,
//! `Request`, `Measurements`, `analyse`), so that this file also compiles against the old code
//! and fails there. Every row names the AWS documentation page it follows.

use super::test_support::{OLD, ROLE, m, policy};
use super::{Policy, Request, analyse, evaluate};

const EVAL_LOGIC: &str =
    "https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html";
const CONDITION_OPERATORS: &str = "https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html";
const NULL: &str = "https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html#Conditions_Null";
const KEY_POLICY: &str =
    "https://docs.aws.amazon.com/kms/latest/developerguide/key-policy-overview.html";
const GLOBAL_KEYS: &str =
    "https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-keys.html";
const NOT_PRINCIPAL: &str = "https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_notprincipal.html";
const PRINCIPAL: &str =
    "https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_principal.html";

/// The attested grant every row starts from: the role may Decrypt with PCR0 = OLD.
fn attested_allow() -> String {
    format!(
        r#"{{"Sid":"AttestedDecrypt","Effect":"Allow","Principal":{{"AWS":"{ROLE}"}},"Action":"kms:Decrypt","Resource":"*","Condition":{{"StringEqualsIgnoreCase":{{"kms:RecipientAttestation:PCR0":"{OLD}"}}}}}}"#
    )
}

fn allowed(p: &Policy, principal: &str) -> bool {
    let ms = m(OLD, None);
    evaluate(
        p,
        &Request {
            principal,
            action: "kms:Decrypt",
            attestation: Some(&ms),
        },
    )
    .allowed
}

/// (doc, extra statements after the attested allow, caller, KMS allows?)
type Row<'a> = (&'a str, String, &'a str, bool);

fn check(rows: &[Row<'_>]) {
    for (doc, extra, principal, kms_allows) in rows {
        let p = policy(&format!("[{},{extra}]", attested_allow()));
        assert_eq!(
            allowed(&p, principal),
            *kms_allows,
            "per {doc}: {extra} for {principal}"
        );
    }
}

/// Defect 1: condition keys other than `kms:RecipientAttestation:*` were treated as absent.
#[test]
fn defect_1_known_non_attestation_keys_are_evaluated() {
    let deny = |op: &str, key: &str, value: &str| {
        format!(
            r#"{{"Sid":"OnlyTheSigner","Effect":"Deny","Principal":"*","Action":"kms:Decrypt","Resource":"*","Condition":{{"{op}":{{"{key}":"{value}"}}}}}}"#
        )
    };
    check(&[
        // The brief's example: the Deny excludes everyone but the role; the role is allowed.
        (
            GLOBAL_KEYS,
            deny("StringNotEquals", "aws:PrincipalArn", ROLE),
            ROLE,
            true,
        ),
        (
            GLOBAL_KEYS,
            deny("StringNotEquals", "aws:PrincipalAccount", "222222222222"),
            ROLE,
            true,
        ),
        (
            "https://docs.aws.amazon.com/kms/latest/developerguide/conditions-kms.html#conditions-kms-caller-account",
            deny("StringNotEquals", "kms:CallerAccount", "222222222222"),
            ROLE,
            true,
        ),
        // And the Deny does apply to someone else.
        (
            GLOBAL_KEYS,
            deny("StringNotEquals", "aws:PrincipalArn", ROLE),
            "arn:aws:iam::222222222222:role/other",
            false,
        ),
    ]);
}

/// Defect 2: `Resource` was ignored.
#[test]
fn defect_2_resource_matters() {
    let p = policy(&format!(
        r#"[{{"Effect":"Allow","Principal":{{"AWS":"{ROLE}"}},"Action":"kms:Decrypt"}}]"#
    ));
    assert!(
        !allowed(&p, ROLE),
        "per {KEY_POLICY}: a statement without Resource has no effect"
    );
    // A Resource naming a specific key: with the key's ARN unknown, KMS's answer depends on it
    // (not "allowed").
    let p = policy(&format!(
        r#"[{{"Effect":"Allow","Principal":{{"AWS":"{ROLE}"}},"Action":"kms:Decrypt","Resource":"arn:aws:kms:eu-west-1:222222222222:key/other"}}]"#
    ));
    assert!(
        !allowed(&p, ROLE),
        "per {KEY_POLICY}: Resource names a key that may not be this one"
    );
}

/// Defect 3: `Null` with a list of values required every value; IAM ORs them.
#[test]
fn defect_3_null_list_is_or() {
    check(&[(
        NULL,
        r#"{"Effect":"Deny","Principal":"*","Action":"kms:Decrypt","Resource":"*","Condition":{"Null":{"kms:RecipientAttestation:PCR0":["true","false"]}}}"#.to_owned(),
        ROLE,
        false,
    )]);
}

/// Defect 4: unmodelled operators (Bool, Numeric*, Date*, Arn*, IpAddress) were always false,
/// so a Deny using one never applied.
#[test]
fn defect_4_other_operators_are_evaluated_or_not_guessed() {
    let deny = |cond: &str| {
        format!(
            r#"{{"Effect":"Deny","Principal":"*","Action":"kms:Decrypt","Resource":"*","Condition":{cond}}}"#
        )
    };
    check(&[
        // A known key: judged.
        (
            CONDITION_OPERATORS,
            deny(r#"{"ArnNotEquals":{"aws:PrincipalArn":"arn:aws:iam::222222222222:role/admin"}}"#),
            ROLE,
            false,
        ),
        (
            CONDITION_OPERATORS,
            deny(r#"{"ArnLike":{"aws:PrincipalArn":"arn:aws:iam::*:role/sig*"}}"#),
            ROLE,
            false,
        ),
        (
            CONDITION_OPERATORS,
            deny(r#"{"NumericNotEquals":{"aws:PrincipalAccount":"222222222222"}}"#),
            ROLE,
            true,
        ),
        (
            CONDITION_OPERATORS,
            deny(r#"{"NumericEquals":{"kms:CallerAccount":"222222222222"}}"#),
            ROLE,
            false,
        ),
        // Keys ccctl cannot know (time, source IP) are not guessed: not "allowed".
        (
            CONDITION_OPERATORS,
            deny(r#"{"DateGreaterThan":{"aws:CurrentTime":"2020-01-01T00:00:00Z"}}"#),
            ROLE,
            false,
        ),
        (
            CONDITION_OPERATORS,
            deny(r#"{"NotIpAddress":{"aws:SourceIp":"10.0.0.0/8"}}"#),
            ROLE,
            false,
        ),
    ]);
}

/// Defect 5: `NotPrincipal` was read as "never us".
#[test]
fn defect_5_not_principal_deny_applies_to_everyone_not_listed() {
    check(&[
        (
            NOT_PRINCIPAL,
            r#"{"Effect":"Deny","NotPrincipal":{"AWS":["arn:aws:iam::222222222222:role/admin","arn:aws:iam::222222222222:root"]},"Action":"kms:*","Resource":"*"}"#.to_owned(),
            ROLE,
            false,
        ),
        // Listing the role is not enough for its session: the session ARN must be listed too.
        (
            NOT_PRINCIPAL,
            format!(
                r#"{{"Effect":"Deny","NotPrincipal":{{"AWS":["{ROLE}","arn:aws:iam::222222222222:root"]}},"Action":"kms:*","Resource":"*"}}"#
            ),
            "arn:aws:sts::222222222222:assumed-role/signer/i-0abc",
            false,
        ),
        // Session, role and account listed: the Deny does not apply.
        (
            NOT_PRINCIPAL,
            format!(
                r#"{{"Effect":"Deny","NotPrincipal":{{"AWS":["arn:aws:sts::222222222222:assumed-role/signer/i-0abc","{ROLE}","arn:aws:iam::222222222222:root"]}},"Action":"kms:*","Resource":"*"}}"#
            ),
            "arn:aws:sts::222222222222:assumed-role/signer/i-0abc",
            true,
        ),
    ]);
    // NotPrincipal with Allow grants nothing (not supported by KMS).
    let p = policy(
        r#"[{"Effect":"Allow","NotPrincipal":{"AWS":"arn:aws:iam::222222222222:role/other"},"Action":"kms:Decrypt","Resource":"*"}]"#,
    );
    assert!(!allowed(&p, ROLE), "per {NOT_PRINCIPAL}");
}

/// Defect 6: a role with a path did not match its sessions; only the `aws` partition was
/// understood.
#[test]
fn defect_6_role_paths_and_partitions() {
    let grant = |principal: &str| {
        policy(&format!(
            r#"[{{"Effect":"Allow","Principal":{{"AWS":"{principal}"}},"Action":"kms:Decrypt","Resource":"*"}}]"#
        ))
    };
    for (doc, entry, caller, kms_allows) in [
        (
            PRINCIPAL,
            "arn:aws:iam::222222222222:role/svc/signer",
            "arn:aws:sts::222222222222:assumed-role/signer/i-0abc",
            true,
        ),
        (
            PRINCIPAL,
            "arn:aws-cn:iam::222222222222:role/signer",
            "arn:aws-cn:sts::222222222222:assumed-role/signer/i-0abc",
            true,
        ),
        (
            PRINCIPAL,
            "arn:aws-us-gov:iam::222222222222:role/svc/signer",
            "arn:aws-us-gov:sts::222222222222:assumed-role/signer/i-0abc",
            true,
        ),
        // Another partition is another principal.
        (
            PRINCIPAL,
            "arn:aws:iam::222222222222:role/signer",
            "arn:aws-cn:sts::222222222222:assumed-role/signer/i-0abc",
            false,
        ),
        (
            EVAL_LOGIC,
            "arn:aws-cn:iam::222222222222:root",
            "arn:aws:sts::222222222222:assumed-role/signer/i-0abc",
            false,
        ),
    ] {
        assert_eq!(
            allowed(&grant(entry), caller),
            kms_allows,
            "per {doc}: {entry} for {caller}"
        );
    }
}

/// The lint false positives: `pcr8-unsigned` claimed "never released" for a policy that
/// releases; `deny-shadow` claimed an Allow would match when none did.
#[test]
fn lint_false_positives() {
    let p = policy(&format!(
        r#"[{},{{"Effect":"Allow","Principal":{{"AWS":"{ROLE}"}},"Action":"kms:Decrypt","Resource":"*","Condition":{{"StringEqualsIgnoreCase":{{"kms:RecipientAttestation:PCR0":"{OLD}","kms:RecipientAttestation:PCR8":"{}"}}}}}}]"#,
        attested_allow(),
        "7d".repeat(48)
    ));
    let a = analyse(&p, ROLE, &m(OLD, None));
    assert!(a.decision.allowed);
    assert!(
        !a.findings.iter().any(|f| f.code == "policy.pcr8-unsigned"),
        "{:?}",
        a.findings
    );
    let p = policy(
        r#"[{"Sid":"NoOne","Effect":"Deny","Principal":"*","Action":"kms:Decrypt","Resource":"*"}]"#,
    );
    let a = analyse(&p, ROLE, &m(OLD, None));
    let f = a
        .findings
        .iter()
        .find(|f| f.code == "policy.deny-shadow")
        .expect("deny-shadow");
    assert!(!f.summary.contains("Allow would match"), "{}", f.summary);
}
