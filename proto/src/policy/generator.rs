//! A seeded generator of realistic key policies, identity-based policies and requests, for the
//! differential test (`fastrand`, so a seed replays a case exactly).

use std::collections::BTreeMap;

use fastrand::Rng;
use serde_json::{Value, json};

use super::reference::{Iam, World};

pub(super) const ACCT: &str = "222222222222";
pub(super) const OTHER: &str = "333333333333";
pub(super) const ROLE: &str = "arn:aws:iam::222222222222:role/signer";
pub(super) const ROLE_PATH: &str = "arn:aws:iam::222222222222:role/svc/signer";
pub(super) const SESSION: &str = "arn:aws:sts::222222222222:assumed-role/signer/i-0abc";
pub(super) const KEY: &str = "arn:aws:kms:eu-west-1:222222222222:key/1111";
pub(super) const OLD: &str = "5e1f00000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000";
pub(super) const NEW: &str = "9b2c11111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111";
pub(super) const P8: &str = "7d2222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222";

/// Callers: a role, a role with a path, sessions, another partition, another account.
const CALLERS: &[&str] = &[
    ROLE,
    ROLE_PATH,
    SESSION,
    "arn:aws:sts::222222222222:assumed-role/signer/other-session",
    "arn:aws-cn:iam::222222222222:role/signer",
    "arn:aws-cn:sts::222222222222:assumed-role/signer/i-0abc",
    "arn:aws-us-gov:sts::222222222222:assumed-role/signer/i-0abc",
    "arn:aws:iam::333333333333:role/signer",
];

const KEYS: &[Option<&str>] = &[
    None,
    Some(KEY),
    Some(KEY),
    Some("arn:aws:kms:eu-west-1:333333333333:key/1111"),
    Some("arn:aws:kms:us-east-1:222222222222:key/2222"),
    Some("arn:aws-cn:kms:cn-north-1:222222222222:key/1111"),
];

/// Entries of a Principal element.
const PRINCIPALS: &[&str] = &[
    ROLE,
    ROLE,
    ROLE_PATH,
    SESSION,
    "arn:aws:sts::222222222222:assumed-role/signer/nobody",
    "arn:aws:iam::222222222222:root",
    "222222222222",
    "arn:aws:iam::333333333333:root",
    "333333333333",
    "arn:aws:iam::222222222222:role/other",
    "arn:aws:iam::333333333333:role/signer",
    "arn:aws-cn:iam::222222222222:role/signer",
    "arn:aws-cn:iam::222222222222:root",
    "arn:aws-us-gov:iam::222222222222:role/svc/signer",
    "arn:aws:iam::222222222222:user/admin",
];

const ACTIONS: &[&str] = &[
    "kms:Decrypt",
    "kms:Decrypt",
    "kms:decrypt",
    "KMS:DECRYPT",
    "kms:*",
    "kms:De*",
    "kms:?ecrypt",
    "*",
    "kms:Encrypt",
    "kms:ReEncrypt*",
    "kms:GenerateDataKey",
    "kms:Decrypt?",
];

const RESOURCES: &[&str] = &[
    "*",
    "*",
    "*",
    KEY,
    "arn:aws:kms:eu-west-1:333333333333:key/1111",
    "arn:aws:kms:*:222222222222:key/*",
    "arn:aws:kms:eu-west-1:222222222222:key/2222",
    "arn:aws:kms:eu-west-1:222222222222:alias/share",
    "arn:aws*:kms:*:*:key/1111",
    "arn:aws-cn:kms:cn-north-1:222222222222:key/1111",
];

const OPERATORS: &[&str] = &[
    "StringEquals",
    "StringNotEquals",
    "StringEqualsIgnoreCase",
    "StringEqualsIgnoreCase",
    "StringNotEqualsIgnoreCase",
    "StringLike",
    "StringNotLike",
    "NumericEquals",
    "NumericNotEquals",
    "NumericLessThan",
    "NumericLessThanEquals",
    "NumericGreaterThan",
    "NumericGreaterThanEquals",
    "DateEquals",
    "DateNotEquals",
    "DateLessThan",
    "DateLessThanEquals",
    "DateGreaterThan",
    "DateGreaterThanEquals",
    "Bool",
    "BinaryEquals",
    "IpAddress",
    "NotIpAddress",
    "ArnEquals",
    "ArnLike",
    "ArnNotEquals",
    "ArnNotLike",
    "Null",
    "Null",
    "StringEqualsTypo",
];

/// Condition keys and plausible values for each (some match, some do not).
fn key_and_values(rng: &mut Rng) -> (&'static str, Vec<String>) {
    let pcr0 = || -> Vec<String> {
        vec![
            OLD.into(),
            NEW.into(),
            OLD.to_uppercase(),
            "5e1f*".into(),
            "ab".repeat(48),
            "0".repeat(96),
        ]
    };
    let (key, pool): (&str, Vec<String>) = match rng.usize(0..20) {
        0 | 1 => ("kms:RecipientAttestation:PCR0", pcr0()),
        2 => ("kms:RecipientAttestation:ImageSha384", pcr0()),
        3 => (
            "kms:RecipientAttestation:PCR8",
            vec![P8.into(), "cd".repeat(48)],
        ),
        4 => ("kms:RecipientAttestation:PCR1", pcr0()),
        5 => ("kms:RecipientAttestation:PCR99", pcr0()),
        6 => (
            "aws:PrincipalArn",
            vec![
                ROLE.into(),
                ROLE_PATH.into(),
                "arn:aws:iam::*:role/*signer".into(),
                "arn:aws:iam::222222222222:role/other".into(),
                "arn:aws*:iam::222222222222:role/*".into(),
                SESSION.into(),
            ],
        ),
        7 => (
            "aws:PrincipalAccount",
            vec![ACCT.into(), OTHER.into(), "2222*".into()],
        ),
        8 => ("kms:CallerAccount", vec![ACCT.into(), OTHER.into()]),
        9 => (
            "kms:EncryptionContext:purpose",
            vec![
                "share".into(),
                "SHARE".into(),
                "sh*".into(),
                "other".into(),
                "5".into(),
            ],
        ),
        10 => ("kms:EncryptionContext:Holder", vec!["a".into(), "b".into()]),
        11 => (
            "kms:EncryptionContextKeys",
            vec![
                "purpose".into(),
                "holder".into(),
                "Purpose".into(),
                "p*".into(),
            ],
        ),
        12 => (
            "aws:SecureTransport",
            vec!["true".into(), "false".into(), "TRUE".into()],
        ),
        13 => (
            "aws:CurrentTime",
            vec![
                "2024-01-01T00:00:00Z".into(),
                "2023-11-14T22:13:20Z".into(),
                "2023-11-14T23:13:20+01:00".into(),
                "2030-01-01".into(),
                "1700000000".into(),
                "2023-11-14T22:13:20.500Z".into(),
                "not a date".into(),
            ],
        ),
        14 => (
            "aws:EpochTime",
            vec![
                "1700000000".into(),
                "1750000000".into(),
                "1.7".into(),
                "-3".into(),
            ],
        ),
        15 => ("aws:ResourceAccount", vec![ACCT.into(), OTHER.into()]),
        16 => (
            "aws:RequestedRegion",
            vec!["eu-west-1".into(), "us-*".into()],
        ),
        17 => (
            "aws:SourceIp",
            vec!["10.0.0.0/8".into(), "192.0.2.1".into()],
        ),
        18 => ("aws:SourceVpce", vec!["vpce-1234".into()]),
        _ => ("aws:PrincipalTag/team", vec!["crypto".into()]),
    };
    let n = 1 + usize::from(rng.u8(0..4) == 0) + usize::from(rng.u8(0..8) == 0);
    let mut values: Vec<String> = (0..n)
        .map(|_| pool[rng.usize(0..pool.len())].clone())
        .collect();
    // Sometimes a value meant for another key (an ARN, an IP, a number...).
    if rng.u8(0..10) == 0 {
        let stray = [
            "10.1.2.3",
            "arn:aws:iam::222222222222:role/signer",
            "42",
            "true",
            "*",
        ];
        values.push(stray[rng.usize(0..stray.len())].into());
    }
    (key, values)
}

/// Operators people use with a key (half the time), else any operator.
fn typical(key: &str) -> &'static [&'static str] {
    match key {
        k if k.starts_with("kms:RecipientAttestation") => &[
            "StringEqualsIgnoreCase",
            "StringEquals",
            "StringLike",
            "Null",
            "StringNotEquals",
        ],
        "aws:CurrentTime" => &[
            "DateLessThan",
            "DateGreaterThan",
            "DateEquals",
            "DateNotEquals",
            "DateLessThanEquals",
            "DateGreaterThanEquals",
        ],
        "aws:EpochTime" => &[
            "NumericLessThan",
            "NumericGreaterThanEquals",
            "DateLessThan",
        ],
        "aws:PrincipalArn" => &["ArnLike", "ArnNotLike", "ArnEquals", "ArnNotEquals"],
        "aws:SecureTransport" => &["Bool"],
        "aws:SourceIp" => &["IpAddress", "NotIpAddress"],
        _ => OPERATORS,
    }
}

fn operator(rng: &mut Rng, key: &str) -> String {
    let base = if rng.bool() {
        let t = typical(key);
        t[rng.usize(0..t.len())]
    } else {
        OPERATORS[rng.usize(0..OPERATORS.len())]
    };
    if base == "Null" {
        return base.into();
    }
    let mut op = String::new();
    match rng.u8(0..10) {
        0 => op.push_str("ForAnyValue:"),
        1 => op.push_str("ForAllValues:"),
        _ => {}
    }
    op.push_str(base);
    if rng.u8(0..7) == 0 {
        op.push_str("IfExists");
    }
    op
}

fn null_values(rng: &mut Rng) -> Value {
    match rng.u8(0..5) {
        0 => json!("true"),
        1 => json!("false"),
        2 => json!(["true", "false"]),
        3 => json!(true),
        _ => json!(["false"]),
    }
}

fn one_or_list(rng: &mut Rng, items: Vec<String>) -> Value {
    if items.len() == 1 && rng.bool() {
        json!(items[0])
    } else {
        json!(items)
    }
}

fn pick_some(rng: &mut Rng, pool: &[&str], max: usize) -> Vec<String> {
    let n = 1 + rng.usize(0..max);
    (0..n)
        .map(|_| pool[rng.usize(0..pool.len())].to_owned())
        .collect()
}

fn some_of(rng: &mut Rng, pool: &[&str], max: usize) -> Value {
    let v = pick_some(rng, pool, max);
    one_or_list(rng, v)
}

fn conditions(rng: &mut Rng) -> Option<Value> {
    let n = [0, 0, 1, 1, 1, 2, 2, 3][rng.usize(0..8)];
    if n == 0 {
        return None;
    }
    let mut ops = serde_json::Map::new();
    for _ in 0..n {
        let (key, values) = key_and_values(rng);
        let op = operator(rng, key);
        let v = if op == "Null" {
            null_values(rng)
        } else {
            one_or_list(rng, values)
        };
        ops.entry(op)
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .expect("an object")
            .insert(key.into(), v);
    }
    Some(Value::Object(ops))
}

fn statement(rng: &mut Rng, key_policy: bool) -> Value {
    let mut s = serde_json::Map::new();
    if rng.u8(0..3) == 0 {
        s.insert("Sid".into(), json!(format!("S{}", rng.u16(..))));
    }
    let allow = rng.u8(0..10) < 7;
    s.insert("Effect".into(), json!(if allow { "Allow" } else { "Deny" }));
    if key_policy {
        let element = if rng.u8(0..10) == 0 {
            "NotPrincipal"
        } else {
            "Principal"
        };
        let p = match rng.u8(0..12) {
            0 => json!("*"),
            1 => json!({"AWS": "*"}),
            2 => json!({"Service": "ec2.amazonaws.com"}),
            _ => json!({"AWS": some_of(rng, PRINCIPALS, 3)}),
        };
        s.insert(element.into(), p);
    }
    match rng.u8(0..20) {
        0 => {}
        1 | 2 => {
            s.insert("NotAction".into(), some_of(rng, ACTIONS, 2));
        }
        _ => {
            s.insert("Action".into(), some_of(rng, ACTIONS, 3));
        }
    }
    match rng.u8(0..20) {
        0 => {}
        1 => {
            s.insert("NotResource".into(), some_of(rng, RESOURCES, 2));
        }
        _ => {
            s.insert("Resource".into(), some_of(rng, RESOURCES, 2));
        }
    }
    if let Some(c) = conditions(rng) {
        s.insert("Condition".into(), c);
    }
    Value::Object(s)
}

/// A realistic starting point: the attested Decrypt grant of this project, with or without the
/// guard rails people add.
fn template(rng: &mut Rng) -> Vec<Value> {
    let grantee = [ROLE, ROLE_PATH, "arn:aws:iam::222222222222:root"][rng.usize(0..3)];
    let op = ["StringNotEquals", "ArnNotLike", "StringNotEqualsIfExists"][rng.usize(0..3)];
    let who = [ROLE, ROLE_PATH, "arn:aws:iam::*:role/*signer"][rng.usize(0..3)];
    let mut out = vec![json!({
        "Sid": "AttestedDecrypt", "Effect": "Allow",
        "Principal": {"AWS": grantee},
        "Action": "kms:Decrypt", "Resource": "*",
        "Condition": {"StringEqualsIgnoreCase": {
            "kms:RecipientAttestation:PCR0": [OLD, NEW],
            "kms:RecipientAttestation:PCR8": P8}}
    })];
    if rng.bool() {
        out.push(json!({
            "Sid": "OnlyTheSigner", "Effect": "Deny", "Principal": "*",
            "Action": "kms:Decrypt", "Resource": "*",
            "Condition": {op: {"aws:PrincipalArn": who}}
        }));
    }
    if rng.bool() {
        out.push(json!({
            "Sid": "NoUnattested", "Effect": "Deny", "Principal": "*",
            "Action": "kms:Decrypt", "Resource": "*",
            "Condition": {"Null": {"kms:RecipientAttestation:PCR0": "true"}}
        }));
    }
    out
}

pub(super) struct Case {
    pub key_policy: Value,
    pub world: World,
    pub iam: Iam,
}

fn identity_policy(rng: &mut Rng) -> Value {
    let n = 1 + rng.usize(0..3);
    let statements: Vec<Value> = (0..n).map(|_| statement(rng, false)).collect();
    json!({"Version": "2012-10-17", "Statement": statements})
}

pub(super) fn case(rng: &mut Rng) -> Case {
    let mut statements = if rng.u8(0..3) == 0 {
        template(rng)
    } else {
        Vec::new()
    };
    for _ in 0..rng.usize(1..5) {
        statements.push(statement(rng, true));
    }
    rng.shuffle(&mut statements);
    let key_policy = if statements.len() == 1 && rng.bool() {
        json!({"Version": "2012-10-17", "Statement": statements[0]})
    } else {
        json!({"Version": "2012-10-17", "Statement": statements})
    };

    let principal = CALLERS[rng.usize(0..CALLERS.len())].to_owned();
    let account = super::reference::caller_account_of(&principal);
    let key_arn = KEYS[rng.usize(0..KEYS.len())].map(str::to_owned);
    let region = key_arn
        .as_deref()
        .and_then(|k| k.split(':').nth(3))
        .map(str::to_owned);
    let ec = match rng.u8(0..6) {
        0 => None,
        1 => Some(vec![]),
        2 => Some(vec![("purpose".to_owned(), "share".to_owned())]),
        3 => Some(vec![
            ("purpose".to_owned(), "share".to_owned()),
            ("holder".to_owned(), "a".to_owned()),
        ]),
        4 => Some(vec![
            ("Purpose".to_owned(), "share".to_owned()),
            ("purpose".to_owned(), "other".to_owned()),
        ]),
        _ => Some(vec![("purpose".to_owned(), "5".to_owned())]),
    };
    let mut pcrs = vec![(
        0u8,
        [OLD, NEW, &"ab".repeat(48)][rng.usize(0..3)].to_owned(),
    )];
    if rng.u8(0..3) > 0 {
        pcrs.push((8, P8.to_owned()));
    }
    let world = World {
        principal,
        principal_account: if rng.u8(0..15) == 0 {
            None
        } else {
            account.clone()
        },
        caller_account: if rng.u8(0..15) == 0 { None } else { account },
        key_arn,
        region,
        action: if rng.u8(0..20) == 0 {
            "kms:Encrypt".into()
        } else {
            "kms:Decrypt".into()
        },
        ec,
        pcrs,
        recipient: rng.u8(0..7) > 0,
        tls: [Some(true), Some(true), Some(false), None][rng.usize(0..4)],
        now: [Some(1_700_000_000), Some(1_800_000_000), None][rng.usize(0..3)],
        forced: BTreeMap::new(),
    };
    let iam = if rng.u8(0..5) < 2 {
        Iam::default()
    } else {
        let identity = (0..rng.usize(0..3))
            .map(|i| (format!("identity-{i}"), identity_policy(rng)))
            .collect();
        Iam {
            identity: Some(identity),
            boundary: (rng.u8(0..10) < 3).then(|| ("boundary".to_owned(), identity_policy(rng))),
        }
    };
    Case {
        key_policy,
        world,
        iam,
    }
}

/// Plausible concrete values for a key ccctl cannot know (for the soundness check).
pub(super) fn concrete_value(rng: &mut Rng, key: &str) -> Option<Vec<String>> {
    if rng.u8(0..3) == 0 {
        return None;
    }
    let pool: &[&str] = match key {
        "aws:sourceip" => &["10.1.2.3", "192.0.2.1", "2001:db8::1"],
        "aws:sourcevpce" => &["vpce-1234", "vpce-9"],
        "aws:currenttime" => &["2023-11-14T22:13:20Z", "2031-01-01T00:00:00Z"],
        "aws:epochtime" => &["1700000000", "1900000000"],
        "aws:principalarn" => &[ROLE, ROLE_PATH, "arn:aws:iam::222222222222:role/other"],
        "kms:encryptioncontextkeys" => &["purpose", "holder"],
        _ => &[
            "share",
            "a",
            "true",
            "222222222222",
            "crypto",
            "eu-west-1",
            "5",
        ],
    };
    let n = if key == "kms:encryptioncontextkeys" {
        1 + rng.usize(0..2)
    } else {
        1
    };
    Some(
        (0..n)
            .map(|_| pool[rng.usize(0..pool.len())].to_owned())
            .collect(),
    )
}
