//! Table tests of the full model (request context, three-valued verdict, IAM side, lints): one
//! row per documented rule, each naming the AWS documentation page it follows.

use std::collections::BTreeMap;

use super::test_support::{NEW, OLD, P8, ROLE, m};
use super::{
    Analysis, GrantConstraints, GrantRecord, IamPolicies, KEY_ARN_UNKNOWN, KeyGrant, NamedPolicy,
    Policy, Reason, RequestContext, SESSION_UNKNOWN, Verdict, analyse_with,
};
use crate::findings::Severity;

const EVAL: &str =
    "https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html";
const CROSS: &str = "https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic-cross-account.html";
const BOUNDARY: &str =
    "https://docs.aws.amazon.com/IAM/latest/UserGuide/access_policies_boundaries.html";
const KEY_POLICY: &str =
    "https://docs.aws.amazon.com/kms/latest/developerguide/key-policy-overview.html";
const ROOT: &str = "https://docs.aws.amazon.com/kms/latest/developerguide/key-policy-default.html#key-policy-default-allow-root-enable-iam";
const EXTERNAL: &str = "https://docs.aws.amazon.com/kms/latest/developerguide/key-policy-modifying-external-accounts.html";
const OPS: &str = "https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html";
const NULL: &str = "https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html#Conditions_Null";
const MULTI: &str = "https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-single-vs-multi-valued-context-keys.html";
const NITRO: &str =
    "https://docs.aws.amazon.com/kms/latest/developerguide/conditions-nitro-enclaves.html";
const KMS_KEYS: &str = "https://docs.aws.amazon.com/kms/latest/developerguide/conditions-kms.html";
const PRINCIPAL: &str =
    "https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_principal.html";
const NOT_PRINCIPAL: &str = "https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_notprincipal.html";
const GRANTS: &str = "https://docs.aws.amazon.com/kms/latest/developerguide/grants.html";

const SESSION: &str = "arn:aws:sts::222222222222:assumed-role/signer/i-0abc";
const KEY: &str = "arn:aws:kms:eu-west-1:222222222222:key/1111";
const XKEY: &str = "arn:aws:kms:eu-west-1:444455556666:key/9999";

/// What the row expects.
#[derive(Debug)]
enum Want {
    Allowed,
    /// Denied, with the finding code of the reason.
    Denied(&'static str),
    DependsOn(&'static [&'static str]),
}

fn key_policy(statements: &str) -> Policy {
    Policy::parse(&format!(
        r#"{{"Version":"2012-10-17","Statement":[{statements}]}}"#
    ))
    .unwrap_or_else(|e| panic!("{e}: {statements}"))
}

fn named(name: &str, statements: &str) -> NamedPolicy {
    NamedPolicy {
        name: name.to_owned(),
        policy: Policy::parse_identity(&format!(
            r#"{{"Version":"2012-10-17","Statement":[{statements}]}}"#
        ))
        .unwrap_or_else(|e| panic!("{e}: {statements}")),
    }
}

/// An Allow of kms:Decrypt to `principal` (a JSON Principal value) with `condition`.
fn allow(principal: &str, condition: &str) -> String {
    format!(
        r#"{{"Sid":"Grant","Effect":"Allow","Principal":{principal},"Action":"kms:Decrypt","Resource":"*","Condition":{condition}}}"#
    )
}

fn role() -> String {
    format!(r#"{{"AWS":"{ROLE}"}}"#)
}

/// The attested request this project makes: the role's session, PCR0 = OLD, PCR8 = P8.
fn attested(key: &str) -> RequestContext {
    RequestContext::decrypt(ROLE)
        .key(key)
        .attested(m(OLD, Some(P8)))
        .current_time(1_700_000_000)
        .encryption_context(BTreeMap::from([("purpose".into(), "share".into())]))
}

const PCR0: &str = r#"{"StringEqualsIgnoreCase":{"kms:RecipientAttestation:PCR0":"5e1f00000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"}}"#;

fn decrypt_on(key: &str) -> String {
    format!(r#"{{"Effect":"Allow","Action":"kms:Decrypt","Resource":"{key}"}}"#)
}

fn check(
    doc: &str,
    what: &str,
    p: &Policy,
    ctx: &RequestContext,
    iam: &IamPolicies,
    want: Want,
) -> Analysis {
    let a = analyse_with(p, ctx, iam, &[]);
    let ok = match (&want, &a.decision.verdict) {
        (Want::Allowed, Verdict::Allowed) => true,
        (Want::Denied(code), Verdict::Denied { reason }) => {
            reason.code() == *code
                && a.findings
                    .iter()
                    .any(|f| f.code == *code && f.severity == Severity::Error)
        }
        (Want::DependsOn(keys), Verdict::DependsOn { keys: got }) => {
            let mut want: Vec<String> = keys.iter().map(|k| k.to_ascii_lowercase()).collect();
            let mut got: Vec<String> = got.iter().map(|k| k.to_ascii_lowercase()).collect();
            want.sort();
            got.sort();
            want == got
        }
        _ => false,
    };
    assert!(
        ok,
        "per {doc}: {what}: want {want:?}, got {:#?}\nfindings: {:#?}",
        a.decision, a.findings
    );
    a
}

#[test]
fn iam_side() {
    let none = || IamPolicies::checked(vec![]);
    let grants_decrypt = || IamPolicies::checked(vec![named("kms-use", &decrypt_on(KEY))]);
    let no_kms_boundary = || {
        named(
            "boundary",
            r#"{"Effect":"Allow","Action":"s3:*","Resource":"*"}"#,
        )
    };
    let root = r#"{"AWS":"arn:aws:iam::222222222222:root"}"#;
    let rows: Vec<(&str, &str, String, RequestContext, IamPolicies, Want)> = vec![
        (EVAL, "same account, key policy names the role: enough without any identity policy",
            allow(&role(), PCR0), attested(KEY), none(), Want::Allowed),
        (ROOT, "same account, key policy delegates to the account: an identity policy must allow",
            allow(root, PCR0), attested(KEY), none(), Want::Denied("policy.identity-lacks-decrypt")),
        (ROOT, "same account, delegated, identity policy allows Decrypt on the key",
            allow(root, PCR0), attested(KEY), grants_decrypt(), Want::Allowed),
        (ROOT, "a bare account id is the account root",
            allow(r#"{"AWS":"222222222222"}"#, PCR0), attested(KEY), grants_decrypt(), Want::Allowed),
        (ROOT, "delegated, identity policy allows Decrypt on another key only",
            allow(root, PCR0), attested(KEY),
            IamPolicies::checked(vec![named("other", &decrypt_on(XKEY))]),
            Want::Denied("policy.identity-lacks-decrypt")),
        (EXTERNAL, "key in another account naming the role: the role's identity policy must allow too",
            allow(&role(), PCR0), attested(XKEY), none(), Want::Denied("policy.identity-lacks-decrypt")),
        (EXTERNAL, "key in another account naming the role, identity policy allows Decrypt on it",
            allow(&role(), PCR0), attested(XKEY),
            IamPolicies::checked(vec![named("x", &decrypt_on(XKEY))]), Want::Allowed),
        (EXTERNAL, "key in another account naming the caller's account, identity policy allows",
            allow(root, PCR0), attested(XKEY),
            IamPolicies::checked(vec![named("x", &decrypt_on("*"))]), Want::Allowed),
        (CROSS, "key in another account naming only its own account: not granted to us",
            allow(r#"{"AWS":"arn:aws:iam::444455556666:root"}"#, PCR0), attested(XKEY),
            IamPolicies::checked(vec![named("x", &decrypt_on("*"))]),
            Want::Denied("policy.principal-not-granted")),
        (ROOT, "the key policy must allow: an identity policy alone never opens a KMS key",
            allow(r#"{"AWS":"arn:aws:iam::222222222222:role/other"}"#, "{}"), attested(KEY),
            grants_decrypt(), Want::Denied("policy.principal-not-granted")),
        (EVAL, "explicit deny in an identity policy wins",
            allow(&role(), PCR0), attested(KEY),
            IamPolicies::checked(vec![named("guard", r#"{"Sid":"NoKms","Effect":"Deny","Action":"kms:*","Resource":"*"}"#)]),
            Want::Denied("policy.explicit-deny")),
        (BOUNDARY, "explicit deny in the permissions boundary wins",
            allow(&role(), PCR0), attested(KEY),
            none().with_boundary(named("boundary", r#"{"Effect":"Allow","Action":"*","Resource":"*"},{"Effect":"Deny","Action":"kms:Decrypt","Resource":"*"}"#)),
            Want::Denied("policy.explicit-deny")),
        (BOUNDARY, "key policy names the role ARN: an implicit deny in the boundary limits it",
            allow(&role(), PCR0), attested(KEY), none().with_boundary(no_kms_boundary()),
            Want::Denied("policy.boundary-lacks-decrypt")),
        (BOUNDARY, "key policy names the session ARN: the boundary does not limit it",
            allow(&format!(r#"{{"AWS":"{SESSION}"}}"#), PCR0),
            RequestContext { principal_arn: SESSION.into(), ..attested(KEY) },
            none().with_boundary(no_kms_boundary()), Want::Allowed),
        (BOUNDARY, "delegated: identity policy and boundary must both allow",
            allow(root, PCR0), attested(KEY), grants_decrypt().with_boundary(no_kms_boundary()),
            Want::Denied("policy.boundary-lacks-decrypt")),
        (BOUNDARY, "delegated, identity policy and boundary allow",
            allow(root, PCR0), attested(KEY),
            grants_decrypt().with_boundary(named("b", r#"{"Effect":"Allow","Action":"kms:*","Resource":"*"}"#)),
            Want::Allowed),
        (BOUNDARY, "a Deny with NotPrincipal always denies a principal with a permissions boundary",
            format!(r#"{},{{"Effect":"Deny","NotPrincipal":{{"AWS":["{SESSION}","{ROLE}","arn:aws:iam::222222222222:root"]}},"Action":"kms:*","Resource":"*"}}"#, allow(&role(), PCR0)),
            RequestContext { principal_arn: SESSION.into(), ..attested(KEY) },
            none().with_boundary(named("b", r#"{"Effect":"Allow","Action":"*","Resource":"*"}"#)),
            Want::Denied("policy.deny-shadow")),
        (CROSS, "identity policies given but the key's ARN unknown: same or other account decides",
            allow(&role(), PCR0), RequestContext { key_arn: None, ..attested(KEY) }, none(),
            Want::DependsOn(&[KEY_ARN_UNKNOWN])),
    ];
    for (doc, what, statements, ctx, iam, want) in rows {
        check(doc, what, &key_policy(&statements), &ctx, &iam, want);
    }
}

#[test]
fn iam_side_not_checked_is_said() {
    let root = r#"{"AWS":"arn:aws:iam::222222222222:root"}"#;
    for (doc, what, statements, key, grant, iam_decides, severity) in [
        (
            EVAL,
            "same account, the role named",
            allow(&role(), PCR0),
            Some(KEY),
            KeyGrant::Direct,
            false,
            Some(Severity::Info),
        ),
        (
            ROOT,
            "delegated to the account",
            allow(root, PCR0),
            Some(KEY),
            KeyGrant::Account,
            true,
            Some(Severity::Error),
        ),
        (
            EXTERNAL,
            "another account",
            allow(&role(), PCR0),
            Some(XKEY),
            KeyGrant::Direct,
            true,
            Some(Severity::Error),
        ),
        (
            EXTERNAL,
            "key ARN unknown, the role named: said as info (the IAM side assumed)",
            allow(&role(), PCR0),
            None,
            KeyGrant::Direct,
            true,
            Some(Severity::Info),
        ),
    ] {
        let mut ctx = attested(KEY);
        ctx.key_arn = key.map(str::to_owned);
        let a = check(
            doc,
            what,
            &key_policy(&statements),
            &ctx,
            &IamPolicies::assumed(),
            Want::Allowed,
        );
        assert!(!a.decision.identity_checked, "{what}");
        assert_eq!(a.decision.iam_decides, iam_decides, "per {doc}: {what}");
        assert_eq!(a.decision.key_grant, grant, "per {doc}: {what}");
        let f: Vec<Severity> = a
            .findings
            .iter()
            .filter(|f| f.code == "policy.identity-not-checked")
            .map(|f| f.severity)
            .collect();
        assert_eq!(
            f,
            severity.into_iter().collect::<Vec<_>>(),
            "per {doc}: {what}"
        );
    }
}

/// A key policy that refuses by itself needs no word about the IAM side.
#[test]
fn iam_side_not_mentioned_when_the_key_policy_refuses() {
    let statements = format!(
        r#"{},{{"Sid":"Off","Effect":"Deny","Principal":"*","Action":"kms:*","Resource":"*"}}"#,
        allow(r#"{"AWS":"arn:aws:iam::222222222222:root"}"#, PCR0)
    );
    let a = check(
        EVAL,
        "explicit deny in the key policy",
        &key_policy(&statements),
        &attested(XKEY),
        &IamPolicies::assumed(),
        Want::Denied("policy.deny-shadow"),
    );
    assert!(
        !a.findings
            .iter()
            .any(|f| f.code == "policy.identity-not-checked"),
        "{:#?}",
        a.findings
    );
}

#[test]
fn conditions_three_valued() {
    let iam = IamPolicies::checked(vec![]);
    let c = |cond: &str| allow(&role(), cond);
    let rows: Vec<(&str, &str, String, RequestContext, Want)> = vec![
        (
            OPS,
            "Bool on aws:SecureTransport (KMS is TLS only)",
            c(r#"{"Bool":{"aws:SecureTransport":"true"}}"#),
            attested(KEY),
            Want::Allowed,
        ),
        (
            OPS,
            "Bool on aws:SecureTransport unknown",
            c(r#"{"Bool":{"aws:SecureTransport":"true"}}"#),
            attested(KEY).secure_transport(None),
            Want::DependsOn(&["aws:SecureTransport"]),
        ),
        (
            OPS,
            "NumericLessThan on aws:EpochTime",
            c(r#"{"NumericLessThan":{"aws:EpochTime":"1800000000"}}"#),
            attested(KEY),
            Want::Allowed,
        ),
        (
            OPS,
            "DateLessThan on aws:CurrentTime, before",
            c(r#"{"DateLessThan":{"aws:CurrentTime":"2024-01-01T00:00:00Z"}}"#),
            attested(KEY),
            Want::Allowed,
        ),
        (
            OPS,
            "DateLessThan on aws:CurrentTime, after",
            c(r#"{"DateLessThan":{"aws:CurrentTime":"2024-01-01T00:00:00Z"}}"#),
            attested(KEY).current_time(1_800_000_000),
            Want::Denied("policy.condition-unmet"),
        ),
        (
            OPS,
            "DateLessThan on aws:CurrentTime, time unknown",
            c(r#"{"DateLessThan":{"aws:CurrentTime":"2024-01-01T00:00:00Z"}}"#),
            RequestContext {
                current_time: None,
                ..attested(KEY)
            },
            Want::DependsOn(&["aws:CurrentTime"]),
        ),
        (
            OPS,
            "ArnLike on aws:PrincipalArn",
            c(r#"{"ArnLike":{"aws:PrincipalArn":"arn:aws:iam::*:role/sig*"}}"#),
            attested(KEY),
            Want::Allowed,
        ),
        (
            OPS,
            "ArnNotEquals on aws:PrincipalArn naming us",
            c(&format!(
                r#"{{"ArnNotEquals":{{"aws:PrincipalArn":"{ROLE}"}}}}"#
            )),
            attested(KEY),
            Want::Denied("policy.condition-unmet"),
        ),
        (
            OPS,
            "IpAddress on aws:SourceIp: not knowable",
            c(r#"{"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}"#),
            attested(KEY),
            Want::DependsOn(&["aws:SourceIp"]),
        ),
        (
            OPS,
            "an operator IAM does not define: not judged",
            c(r#"{"StringEqualsTypo":{"aws:PrincipalAccount":"222222222222"}}"#),
            attested(KEY),
            Want::DependsOn(&["aws:PrincipalAccount"]),
        ),
        (
            OPS,
            "IfExists on an unknowable key is still unknown",
            c(r#"{"StringEqualsIfExists":{"aws:PrincipalTag/team":"crypto"}}"#),
            attested(KEY),
            Want::DependsOn(&["aws:PrincipalTag/team"]),
        ),
        (
            NULL,
            "Null with [\"true\",\"false\"] is true whatever the key (OR)",
            c(r#"{"Null":{"aws:SourceIp":["true","false"]}}"#),
            attested(KEY),
            Want::Allowed,
        ),
        (
            NULL,
            "Null \"true\" on an unknowable key depends on it",
            c(r#"{"Null":{"aws:SourceVpce":"true"}}"#),
            attested(KEY),
            Want::DependsOn(&["aws:SourceVpce"]),
        ),
        (
            NULL,
            "Null \"false\" on PCR0 without attestation",
            c(r#"{"Null":{"kms:RecipientAttestation:PCR0":"false"}}"#),
            attested(KEY).unattested(),
            Want::Denied("policy.measurement-not-allowed"),
        ),
        (
            KMS_KEYS,
            "kms:EncryptionContext:purpose equal",
            c(r#"{"StringEquals":{"kms:EncryptionContext:purpose":"share"}}"#),
            attested(KEY),
            Want::Allowed,
        ),
        (
            KMS_KEYS,
            "kms:EncryptionContext:purpose absent",
            c(r#"{"StringEquals":{"kms:EncryptionContext:purpose":"share"}}"#),
            attested(KEY).encryption_context(BTreeMap::new()),
            Want::Denied("policy.condition-unmet"),
        ),
        (
            KMS_KEYS,
            "kms:EncryptionContext:purpose unknown",
            c(r#"{"StringEquals":{"kms:EncryptionContext:purpose":"share"}}"#),
            RequestContext {
                encryption_context: None,
                ..attested(KEY)
            },
            Want::DependsOn(&["kms:EncryptionContext:purpose"]),
        ),
        (
            MULTI,
            "ForAllValues over kms:EncryptionContextKeys",
            c(
                r#"{"ForAllValues:StringEquals":{"kms:EncryptionContextKeys":["purpose","holder"]}}"#,
            ),
            attested(KEY),
            Want::Allowed,
        ),
        (
            MULTI,
            "ForAllValues is true on an empty context",
            c(r#"{"ForAllValues:StringEquals":{"kms:EncryptionContextKeys":["holder"]}}"#),
            attested(KEY).encryption_context(BTreeMap::new()),
            Want::Allowed,
        ),
        (
            MULTI,
            "ForAnyValue is false on an empty context",
            c(r#"{"ForAnyValue:StringEquals":{"kms:EncryptionContextKeys":["purpose"]}}"#),
            attested(KEY).encryption_context(BTreeMap::new()),
            Want::Denied("policy.condition-unmet"),
        ),
        (
            MULTI,
            "a plain operator on a multivalued key is not judged",
            c(r#"{"StringEquals":{"kms:EncryptionContextKeys":"purpose"}}"#),
            attested(KEY).encryption_context(BTreeMap::from([
                ("purpose".into(), "s".into()),
                ("holder".into(), "a".into()),
            ])),
            Want::DependsOn(&["kms:EncryptionContextKeys"]),
        ),
        (
            EVAL,
            "a Deny on an unknowable key cannot matter when nothing allows",
            r#"{"Effect":"Deny","Principal":"*","Action":"kms:*","Resource":"*","Condition":{"NotIpAddress":{"aws:SourceIp":"10.0.0.0/8"}}}"#.to_owned(),
            attested(KEY),
            Want::Denied("policy.principal-not-granted"),
        ),
        (
            EVAL,
            "a Deny on an unknowable key beside a definite Allow",
            format!(
                r#"{},{{"Effect":"Deny","Principal":"*","Action":"kms:*","Resource":"*","Condition":{{"NotIpAddress":{{"aws:SourceIp":"10.0.0.0/8"}}}}}}"#,
                c(PCR0)
            ),
            attested(KEY),
            Want::DependsOn(&["aws:SourceIp"]),
        ),
        (
            NITRO,
            "ImageSha384 is PCR0",
            c(&format!(
                r#"{{"StringEqualsIgnoreCase":{{"kms:RecipientAttestation:ImageSha384":"{OLD}"}}}}"#
            )),
            attested(KEY),
            Want::Allowed,
        ),
        (
            NITRO,
            "attestation keys exist only with a Recipient",
            c(PCR0),
            attested(KEY).unattested(),
            Want::Denied("policy.measurement-not-allowed"),
        ),
        (
            NITRO,
            "another PCR0",
            c(&format!(
                r#"{{"StringEqualsIgnoreCase":{{"kms:RecipientAttestation:PCR0":"{NEW}"}}}}"#
            )),
            attested(KEY),
            Want::Denied("policy.measurement-not-allowed"),
        ),
        (
            NITRO,
            "PCR8 required, unsigned image",
            c(&format!(
                r#"{{"StringEqualsIgnoreCase":{{"kms:RecipientAttestation:PCR8":"{P8}"}}}}"#
            )),
            RequestContext::decrypt(ROLE)
                .key(KEY)
                .attested(m(OLD, None)),
            Want::Denied("policy.pcr8-unsigned"),
        ),
    ];
    for (doc, what, statements, ctx, want) in rows {
        check(doc, what, &key_policy(&statements), &ctx, &iam, want);
    }
}

#[test]
fn principals_and_resources() {
    let iam = IamPolicies::assumed();
    let grant = |principal: &str, resource: &str| {
        format!(r#"{{"Effect":"Allow","Principal":{principal},"Action":"kms:Decrypt",{resource}}}"#)
    };
    let any = r#""Resource":"*""#;
    let session_ctx = || RequestContext {
        principal_arn: SESSION.into(),
        ..attested(KEY)
    };
    let rows: Vec<(&str, &str, String, RequestContext, Want)> = vec![
        (PRINCIPAL, "\"*\"", grant(r#""*""#, any), attested(KEY), Want::Allowed),
        (PRINCIPAL, "{\"AWS\":\"*\"}", grant(r#"{"AWS":"*"}"#, any), attested(KEY), Want::Allowed),
        (PRINCIPAL, "a role with a path covers its sessions (which drop the path)",
            grant(r#"{"AWS":"arn:aws:iam::222222222222:role/svc/signer"}"#, any), session_ctx(), Want::Allowed),
        (PRINCIPAL, "one session, exactly",
            grant(&format!(r#"{{"AWS":"{SESSION}"}}"#), any), session_ctx(), Want::Allowed),
        (PRINCIPAL, "another session of the role",
            grant(r#"{"AWS":"arn:aws:sts::222222222222:assumed-role/signer/other"}"#, any), session_ctx(),
            Want::Denied("policy.principal-not-granted")),
        (PRINCIPAL, "one session of the role, ours unnamed",
            grant(&format!(r#"{{"AWS":"{SESSION}"}}"#), any), attested(KEY), Want::DependsOn(&[SESSION_UNKNOWN])),
        (PRINCIPAL, "a service principal is never the role",
            grant(r#"{"Service":"ec2.amazonaws.com"}"#, any), attested(KEY), Want::Denied("policy.principal-not-granted")),
        (NOT_PRINCIPAL, "NotPrincipal with Allow grants nothing",
            r#"{"Effect":"Allow","NotPrincipal":{"AWS":"arn:aws:iam::222222222222:role/other"},"Action":"kms:Decrypt","Resource":"*"}"#.to_owned(),
            attested(KEY), Want::Denied("policy.principal-not-granted")),
        (KEY_POLICY, "Resource \"*\" is this key", grant(&role(), any), attested(KEY), Want::Allowed),
        (KEY_POLICY, "Resource naming this key", grant(&role(), &format!(r#""Resource":"{KEY}""#)), attested(KEY), Want::Allowed),
        (KEY_POLICY, "Resource pattern covering this key",
            grant(&role(), r#""Resource":"arn:aws:kms:*:222222222222:key/*""#), attested(KEY), Want::Allowed),
        (KEY_POLICY, "Resource naming another key",
            grant(&role(), &format!(r#""Resource":"{XKEY}""#)), attested(KEY), Want::Denied("policy.principal-not-granted")),
        (KEY_POLICY, "Resource naming an alias, not the key",
            grant(&role(), r#""Resource":"arn:aws:kms:eu-west-1:222222222222:alias/share""#), attested(KEY),
            Want::Denied("policy.principal-not-granted")),
        (KEY_POLICY, "no Resource: no effect", grant(&role(), r#""Sid":"NoResource""#), attested(KEY),
            Want::Denied("policy.principal-not-granted")),
        (KEY_POLICY, "NotResource naming another key", grant(&role(), &format!(r#""NotResource":"{XKEY}""#)),
            attested(KEY), Want::Allowed),
        (KEY_POLICY, "NotResource naming this key", grant(&role(), &format!(r#""NotResource":"{KEY}""#)),
            attested(KEY), Want::Denied("policy.principal-not-granted")),
        (KEY_POLICY, "Resource naming a key, key ARN unknown",
            grant(&role(), &format!(r#""Resource":"{KEY}""#)), RequestContext { key_arn: None, ..attested(KEY) },
            Want::DependsOn(&[KEY_ARN_UNKNOWN])),
        (KEY_POLICY, "no Action: no effect",
            format!(r#"{{"Effect":"Allow","Principal":{},"Resource":"*"}}"#, role()), attested(KEY),
            Want::Denied("policy.principal-not-granted")),
        (KEY_POLICY, "NotAction covering everything but Encrypt",
            format!(r#"{{"Effect":"Allow","Principal":{},"NotAction":"kms:Encrypt","Resource":"*"}}"#, role()),
            attested(KEY), Want::Allowed),
    ];
    for (doc, what, statements, ctx, want) in rows {
        check(doc, what, &key_policy(&statements), &ctx, &iam, want);
    }
}

/// Every "no" names why, in a reason and in an error finding's summary.
#[test]
fn reasons_name_why() {
    let iam = IamPolicies::checked(vec![]);
    for (statements, ctx, needle) in [
        (
            allow(r#"{"AWS":"arn:aws:iam::222222222222:role/other"}"#, "{}"),
            attested(KEY),
            "names",
        ),
        (
            format!(
                r#"{{"Effect":"Allow","Principal":{},"Action":"kms:Encrypt","Resource":"*"}}"#,
                role()
            ),
            attested(KEY),
            "do not cover kms:Decrypt",
        ),
        (
            format!(
                r#"{{"Effect":"Allow","Principal":{},"Action":"kms:Decrypt"}}"#,
                role()
            ),
            attested(KEY),
            "no Resource element",
        ),
        (
            allow(
                &role(),
                &format!(
                    r#"{{"StringEqualsIgnoreCase":{{"kms:RecipientAttestation:PCR0":"{NEW}"}}}}"#
                ),
            ),
            attested(KEY),
            "PCR0",
        ),
        (
            allow(
                &role(),
                r#"{"StringEquals":{"kms:CallerAccount":"444455556666"}}"#,
            ),
            attested(KEY),
            "kms:CallerAccount",
        ),
        (
            format!(
                r#"{},{{"Sid":"Guard","Effect":"Deny","Principal":"*","Action":"kms:*","Resource":"*"}}"#,
                allow(&role(), PCR0)
            ),
            attested(KEY),
            "'Guard'",
        ),
    ] {
        let a = analyse_with(&key_policy(&statements), &ctx, &iam, &[]);
        let Verdict::Denied { reason } = &a.decision.verdict else {
            panic!("{statements}: {:?}", a.decision.verdict)
        };
        assert!(reason.sentence().contains(needle), "{}", reason.sentence());
        assert!(
            a.findings.iter().any(|f| f.severity == Severity::Error
                && f.code == reason.code()
                && f.summary.contains(needle)),
            "{statements}: {:#?}",
            a.findings
        );
    }
    // The explicit deny of an identity policy names the policy and the SID.
    let a = analyse_with(
        &key_policy(&allow(&role(), PCR0)),
        &attested(KEY),
        &IamPolicies::checked(vec![named(
            "guard-rails",
            r#"{"Sid":"NoKms","Effect":"Deny","Action":"kms:*","Resource":"*"}"#,
        )]),
        &[],
    );
    assert!(
        matches!(&a.decision.verdict, Verdict::Denied { reason: Reason::ExplicitDeny { sid: Some(s), .. } } if s == "NoKms")
    );
    let f = a
        .findings
        .iter()
        .find(|f| f.code == "policy.explicit-deny")
        .expect("explicit-deny");
    assert!(
        f.summary.contains("'NoKms'") && f.summary.contains("guard-rails"),
        "{}",
        f.summary
    );
}

#[test]
fn lints_of_the_new_model() {
    // Unattested decrypt that depends on an unknowable key: a security error.
    let p = key_policy(&allow(
        &role(),
        r#"{"StringEquals":{"aws:SourceVpce":"vpce-1"}}"#,
    ));
    let a = analyse_with(&p, &attested(KEY), &IamPolicies::assumed(), &[]);
    let f = a
        .findings
        .iter()
        .find(|f| f.code == "policy.unattested-decrypt")
        .expect("unattested");
    assert_eq!(f.severity, Severity::Error);
    assert!(f.summary.contains("aws:SourceVpce"), "{}", f.summary);
    let f = a
        .findings
        .iter()
        .find(|f| f.code == "policy.condition-not-judged")
        .expect("not judged");
    assert_eq!(f.severity, Severity::Warn);
    assert_eq!(f.evidence["key"], "aws:SourceVpce");

    // Grants: any Decrypt grant to the principal bypasses attestation (GRANTS).
    let grants = [
        GrantRecord {
            grant_id: "g-1".into(),
            grantee_principal: ROLE.into(),
            operations: vec!["Decrypt".into()],
            constraints: Some(GrantConstraints {
                encryption_context_equals: Some(BTreeMap::from([(
                    "purpose".into(),
                    "share".into(),
                )])),
                encryption_context_subset: None,
            }),
        },
        GrantRecord {
            grant_id: "g-2".into(),
            grantee_principal: ROLE.into(),
            operations: vec!["Encrypt".into()],
            constraints: None,
        },
    ];
    let a = analyse_with(
        &key_policy(&allow(&role(), PCR0)),
        &attested(KEY),
        &IamPolicies::assumed(),
        &grants,
    );
    let g: Vec<_> = a
        .findings
        .iter()
        .filter(|f| f.code == "policy.grant-bypasses-attestation")
        .collect();
    assert_eq!(g.len(), 1, "per {GRANTS}: {g:?}");
    assert_eq!(g[0].evidence["grant_id"], "g-1");
    assert_eq!(g[0].severity, Severity::Error);
}
