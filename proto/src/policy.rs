//! KMS key-policy evaluation for attestation-gated `kms:Decrypt`, the way KMS decides it, and
//! the lints that explain why a holder's key would (not) release its share.
//!
//! What KMS does (and this reproduces): `Statement` is an object or a list; `Action` /
//! `NotAction` take wildcards and compare case-insensitively; a list of values for one key is
//! OR, several keys or operators in one `Condition` are AND, several Allow statements are OR,
//! any matching Deny wins. The attestation keys `kms:RecipientAttestation:ImageSha384` (= PCR0)
//! and `…:PCR0`–`PCR31` exist only on requests that carry a Recipient. When a key is absent:
//! positive string operators are false; negated ones (`StringNot…`) are true; `…IfExists` is
//! true; `ForAllValues:` is true; `ForAnyValue:` is false; `Null` tests exactly that.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::findings::{Finding, Severity};

pub const ATTESTATION_PREFIX: &str = "kms:recipientattestation:";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    Allow,
    Deny,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    Any,
    /// ARNs or account ids.
    Aws(Vec<String>),
    /// Service or federated principals: never our role.
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BaseOp {
    StringEquals,
    StringNotEquals,
    StringEqualsIgnoreCase,
    StringNotEqualsIgnoreCase,
    StringLike,
    StringNotLike,
    Null,
    /// An operator this evaluator does not model (numeric, date, ARN, ...).
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetOp {
    None,
    ForAnyValue,
    ForAllValues,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operator {
    pub name: String,
    pub base: BaseOp,
    pub if_exists: bool,
    pub set: SetOp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    pub op: Operator,
    /// The key as written.
    pub key: String,
    pub values: Vec<String>,
}

impl Condition {
    pub fn key_lower(&self) -> String {
        self.key.to_ascii_lowercase()
    }

    /// The attestation key this condition tests, if any.
    pub fn attestation(&self) -> Option<AttKey> {
        attestation_key(&self.key)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttKey {
    ImageSha384,
    Pcr(u8),
    /// `kms:RecipientAttestation:` followed by something KMS does not define.
    Unknown,
}

impl AttKey {
    /// The PCR this key measures (ImageSha384 ≡ PCR0).
    pub fn pcr(self) -> Option<u8> {
        match self {
            AttKey::ImageSha384 => Some(0),
            AttKey::Pcr(n) => Some(n),
            AttKey::Unknown => None,
        }
    }
}

pub fn attestation_key(key: &str) -> Option<AttKey> {
    let k = key.to_ascii_lowercase();
    let rest = k.strip_prefix(ATTESTATION_PREFIX)?;
    if rest == "imagesha384" {
        return Some(AttKey::ImageSha384);
    }
    if let Some(n) = rest.strip_prefix("pcr")
        && !n.is_empty()
        && n.bytes().all(|b| b.is_ascii_digit())
        && (n == "0" || !n.starts_with('0'))
        && let Ok(v) = n.parse::<u8>()
        && v <= 31
    {
        return Some(AttKey::Pcr(v));
    }
    Some(AttKey::Unknown)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    pub index: usize,
    pub sid: Option<String>,
    pub effect: Effect,
    pub principal: Principal,
    /// `Action` patterns, or `NotAction` patterns when `not_action`.
    pub actions: Vec<String>,
    pub not_action: bool,
    pub conditions: Vec<Condition>,
}

impl Statement {
    pub fn label(&self) -> String {
        match &self.sid {
            Some(s) => format!("'{s}' (statement {})", self.index),
            None => format!("statement {}", self.index),
        }
    }

    pub fn covers_action(&self, action: &str) -> bool {
        let hit = self
            .actions
            .iter()
            .any(|p| glob(&p.to_ascii_lowercase(), &action.to_ascii_lowercase()));
        hit != self.not_action
    }

    pub fn covers_principal(&self, principal: &str) -> bool {
        match &self.principal {
            Principal::Any => true,
            Principal::Other => false,
            Principal::Aws(list) => list.iter().any(|p| principal_matches(p, principal)),
        }
    }

    pub fn attestation_conditions(&self) -> impl Iterator<Item = (&Condition, AttKey)> {
        self.conditions
            .iter()
            .filter_map(|c| c.attestation().map(|a| (c, a)))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub statements: Vec<Statement>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("key policy is not valid: {0}")]
pub struct PolicyError(pub String);

fn strings(v: &Value, what: &str) -> Result<Vec<String>, PolicyError> {
    match v {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(a) => a
            .iter()
            .map(|x| match x {
                Value::String(s) => Ok(s.clone()),
                Value::Bool(b) => Ok(b.to_string()),
                Value::Number(n) => Ok(n.to_string()),
                _ => Err(PolicyError(format!("{what}: expected strings"))),
            })
            .collect(),
        Value::Bool(b) => Ok(vec![b.to_string()]),
        Value::Number(n) => Ok(vec![n.to_string()]),
        _ => Err(PolicyError(format!(
            "{what}: expected a string or a list of strings"
        ))),
    }
}

fn operator(name: &str) -> Operator {
    let (set, rest) = if let Some(r) = name.strip_prefix("ForAnyValue:") {
        (SetOp::ForAnyValue, r)
    } else if let Some(r) = name.strip_prefix("ForAllValues:") {
        (SetOp::ForAllValues, r)
    } else {
        (SetOp::None, name)
    };
    let (if_exists, core) = match rest.strip_suffix("IfExists") {
        Some(c) => (true, c),
        None => (false, rest),
    };
    let base = match core {
        "StringEquals" => BaseOp::StringEquals,
        "StringNotEquals" => BaseOp::StringNotEquals,
        "StringEqualsIgnoreCase" => BaseOp::StringEqualsIgnoreCase,
        "StringNotEqualsIgnoreCase" => BaseOp::StringNotEqualsIgnoreCase,
        "StringLike" => BaseOp::StringLike,
        "StringNotLike" => BaseOp::StringNotLike,
        "Null" => BaseOp::Null,
        _ => BaseOp::Other,
    };
    Operator {
        name: name.to_owned(),
        base,
        if_exists,
        set,
    }
}

impl Policy {
    pub fn parse(text: &str) -> Result<Policy, PolicyError> {
        let v: Value =
            serde_json::from_str(text).map_err(|e| PolicyError(format!("not JSON: {e}")))?;
        let st = v
            .get("Statement")
            .ok_or_else(|| PolicyError("no 'Statement'".into()))?;
        let list: Vec<&Value> = match st {
            Value::Array(a) => a.iter().collect(),
            Value::Object(_) => vec![st],
            _ => {
                return Err(PolicyError(
                    "'Statement' must be an object or a list".into(),
                ));
            }
        };
        let mut statements = Vec::new();
        for (index, s) in list.into_iter().enumerate() {
            let at = |m: &str| PolicyError(format!("statement {index}: {m}"));
            let effect = match s.get("Effect").and_then(Value::as_str) {
                Some("Allow") => Effect::Allow,
                Some("Deny") => Effect::Deny,
                _ => return Err(at("'Effect' must be \"Allow\" or \"Deny\"")),
            };
            let principal = match s.get("Principal") {
                Some(Value::String(p)) if p == "*" => Principal::Any,
                Some(Value::Object(m)) => match m.get("AWS") {
                    Some(a) => {
                        let l = strings(a, &format!("statement {index} Principal.AWS"))?;
                        if l.iter().any(|p| p == "*") {
                            Principal::Any
                        } else {
                            Principal::Aws(l)
                        }
                    }
                    None => Principal::Other,
                },
                None if s.get("NotPrincipal").is_some() => Principal::Other,
                _ => return Err(at("'Principal' must be \"*\" or {\"AWS\": ...}")),
            };
            let (actions, not_action) = match (s.get("Action"), s.get("NotAction")) {
                (Some(a), None) => (strings(a, &format!("statement {index} Action"))?, false),
                (None, Some(a)) => (strings(a, &format!("statement {index} NotAction"))?, true),
                _ => return Err(at("exactly one of 'Action' and 'NotAction' is needed")),
            };
            let mut conditions = Vec::new();
            if let Some(c) = s.get("Condition") {
                let ops = c
                    .as_object()
                    .ok_or_else(|| at("'Condition' must be an object"))?;
                for (op, keys) in ops {
                    let keys = keys
                        .as_object()
                        .ok_or_else(|| at(&format!("condition '{op}' must map keys to values")))?;
                    for (key, values) in keys {
                        conditions.push(Condition {
                            op: operator(op),
                            key: key.clone(),
                            values: strings(values, &format!("statement {index} {op} {key}"))?,
                        });
                    }
                }
            }
            statements.push(Statement {
                index,
                sid: s.get("Sid").and_then(Value::as_str).map(str::to_owned),
                effect,
                principal,
                actions,
                not_action,
                conditions,
            });
        }
        Ok(Policy { statements })
    }
}

/// `*` and `?` wildcards, as IAM's `StringLike` and action patterns use them.
pub fn glob(pattern: &str, s: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), s.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0usize, 0usize, None, 0usize);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(sp) = star {
            pi = sp + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

fn account_of(arn: &str) -> Option<&str> {
    // arn:aws:iam::ACCOUNT:... / arn:aws:sts::ACCOUNT:...
    arn.split(':').nth(4).filter(|a| !a.is_empty())
}

/// Does a policy principal entry cover the request's principal? The account root (or a bare
/// account id) covers every principal in that account (KMS delegates to IAM there); an
/// assumed-role session matches its role.
pub fn principal_matches(entry: &str, principal: &str) -> bool {
    if entry == principal {
        return true;
    }
    let entry_account = if entry.chars().all(|c| c.is_ascii_digit()) {
        Some(entry)
    } else if entry.ends_with(":root") {
        account_of(entry)
    } else {
        None
    };
    if let Some(acct) = entry_account {
        return account_of(principal) == Some(acct);
    }
    // arn:aws:sts::ACCT:assumed-role/NAME/SESSION ≡ arn:aws:iam::ACCT:role/NAME
    if let Some(rest) = principal.strip_prefix("arn:aws:sts::")
        && let Some((acct, tail)) = rest.split_once(":assumed-role/")
    {
        let name = tail.split('/').next().unwrap_or("");
        return entry == format!("arn:aws:iam::{acct}:role/{name}");
    }
    false
}

/// The measurements a request would carry (lowercase hex), by PCR index.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Measurements {
    pub pcrs: BTreeMap<u8, String>,
}

impl Measurements {
    pub fn get(&self, key: AttKey) -> Option<&String> {
        key.pcr().and_then(|n| self.pcrs.get(&n))
    }
}

/// A `kms:Decrypt` request to judge.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    pub principal: &'a str,
    pub action: &'a str,
    /// `None`: no Recipient, so no attestation keys at all.
    pub attestation: Option<&'a Measurements>,
}

fn context_value(req: &Request<'_>, key: &str) -> Option<String> {
    let att = attestation_key(key)?;
    req.attestation?.get(att).cloned()
}

fn value_matches(base: BaseOp, pattern: &str, actual: &str) -> bool {
    match base {
        BaseOp::StringEquals | BaseOp::StringNotEquals => pattern == actual,
        BaseOp::StringEqualsIgnoreCase | BaseOp::StringNotEqualsIgnoreCase => {
            pattern.eq_ignore_ascii_case(actual)
        }
        BaseOp::StringLike | BaseOp::StringNotLike => glob(pattern, actual),
        _ => false,
    }
}

/// Does one condition hold for the request?
pub fn condition_holds(c: &Condition, req: &Request<'_>) -> bool {
    let actual = context_value(req, &c.key);
    if c.op.base == BaseOp::Null {
        let want_absent = c.values.iter().any(|v| v.eq_ignore_ascii_case("true"));
        return actual.is_none() == want_absent;
    }
    if c.op.base == BaseOp::Other {
        // Unmodelled operators on keys we do not know: treat as not holding (conservative
        // for Allow) — reported separately when they touch attestation keys.
        return false;
    }
    let negated = matches!(
        c.op.base,
        BaseOp::StringNotEquals | BaseOp::StringNotEqualsIgnoreCase | BaseOp::StringNotLike
    );
    let Some(actual) = actual else {
        return match c.op.set {
            SetOp::ForAllValues => true,
            SetOp::ForAnyValue => false,
            SetOp::None => c.op.if_exists || negated,
        };
    };
    let any = c
        .values
        .iter()
        .any(|p| value_matches(c.op.base, p, &actual));
    if negated { !any } else { any }
}

pub fn statement_applies(s: &Statement, req: &Request<'_>) -> bool {
    s.covers_action(req.action)
        && s.covers_principal(req.principal)
        && s.conditions.iter().all(|c| condition_holds(c, req))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub allowing: Vec<usize>,
    pub denying: Vec<usize>,
}

pub fn evaluate(p: &Policy, req: &Request<'_>) -> Decision {
    let mut allowing = Vec::new();
    let mut denying = Vec::new();
    for s in &p.statements {
        if statement_applies(s, req) {
            match s.effect {
                Effect::Allow => allowing.push(s.index),
                Effect::Deny => denying.push(s.index),
            }
        }
    }
    Decision {
        allowed: denying.is_empty() && !allowing.is_empty(),
        allowing,
        denying,
    }
}

fn is_measurement(v: &str) -> bool {
    v.len() == 96 && v.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The PCR values an Allow statement for Decrypt admits, by PCR (positive equality operators
/// only; a key with no such condition is unconstrained and absent from the map).
pub fn allowed_values(s: &Statement) -> BTreeMap<u8, BTreeSet<String>> {
    let mut out: BTreeMap<u8, BTreeSet<String>> = BTreeMap::new();
    for (c, att) in s.attestation_conditions() {
        let Some(pcr) = att.pcr() else { continue };
        if matches!(
            c.op.base,
            BaseOp::StringEquals | BaseOp::StringEqualsIgnoreCase | BaseOp::StringLike
        ) {
            let vals: BTreeSet<String> = c.values.iter().map(|v| v.to_ascii_lowercase()).collect();
            out.entry(pcr)
                .and_modify(|e| *e = e.intersection(&vals).cloned().collect())
                .or_insert(vals);
        }
    }
    out
}

/// Everything the lints need about one holder's key policy.
pub struct Analysis {
    pub decision: Decision,
    /// Would Decrypt also be allowed without any attestation?
    pub unattested: Decision,
    /// PCR → values admitted by some Allow statement for Decrypt to the principal.
    pub allowed: BTreeMap<u8, BTreeSet<String>>,
    pub findings: Vec<Finding>,
}

const DECRYPT: &str = "kms:Decrypt";

/// Judge `kms:Decrypt` by `principal` with `measurements`, and lint the policy.
pub fn analyse(p: &Policy, principal: &str, measurements: &Measurements) -> Analysis {
    let req = Request {
        principal,
        action: DECRYPT,
        attestation: Some(measurements),
    };
    let decision = evaluate(p, &req);
    let unattested = evaluate(
        p,
        &Request {
            principal,
            action: DECRYPT,
            attestation: None,
        },
    );
    let mut findings = Vec::new();
    let mut allowed: BTreeMap<u8, BTreeSet<String>> = BTreeMap::new();
    let decrypt_allows: Vec<&Statement> = p
        .statements
        .iter()
        .filter(|s| {
            s.effect == Effect::Allow && s.covers_action(DECRYPT) && s.covers_principal(principal)
        })
        .collect();
    for s in &decrypt_allows {
        for (pcr, vals) in allowed_values(s) {
            allowed.entry(pcr).or_default().extend(vals);
        }
    }

    if unattested.allowed {
        let s = &p.statements[unattested.allowing[0]];
        findings.push(
            Finding::new(
                "policy.unattested-decrypt",
                Severity::Error,
                format!(
                    "kms:Decrypt is allowed to '{principal}' without any attestation by {}: the \
                     share can be decrypted outside the enclave",
                    s.label()
                ),
            )
            .with("statement", s.index)
            .with("sid", s.sid.clone())
            .with("security", true)
            .fix(
                "Condition every Decrypt grant on kms:RecipientAttestation:PCR0 (and PCR8), or add a \
                 Deny for Decrypt when kms:RecipientAttestation:PCR0 is Null",
                &[],
            ),
        );
    }

    for s in &p.statements {
        let att: Vec<(&Condition, AttKey)> = s.attestation_conditions().collect();
        if att.is_empty() {
            continue;
        }
        if !s.covers_action(DECRYPT) {
            findings.push(
                Finding::new(
                    "policy.wrong-action",
                    Severity::Error,
                    format!(
                        "{} conditions on attestation but does not cover kms:Decrypt (actions {:?}); \
                         KMS attaches attestation only to Decrypt-like calls, so it never applies",
                        s.label(),
                        s.actions
                    ),
                )
                .with("statement", s.index)
                .with("sid", s.sid.clone())
                .with("actions", s.actions.clone())
                .fix("Move the attestation condition to the statement that allows kms:Decrypt", &[]),
            );
        }
        for (c, key) in &att {
            let ev = |f: Finding| {
                f.with("statement", s.index)
                    .with("sid", s.sid.clone())
                    .with("key", c.key.clone())
                    .with("operator", c.op.name.clone())
            };
            if *key == AttKey::Unknown {
                findings.push(
                    ev(Finding::new(
                        "policy.unknown-condition-key",
                        Severity::Error,
                        format!(
                            "{} uses '{}', a key KMS never sets (known: ImageSha384, PCR0–PCR31)",
                            s.label(),
                            c.key
                        ),
                    ))
                    .fix(
                        "Use kms:RecipientAttestation:PCR0 / PCR8 (or ImageSha384)",
                        &[],
                    ),
                );
                continue;
            }
            if c.op.if_exists {
                findings.push(ev(Finding::new(
                    "policy.if-exists",
                    Severity::Error,
                    format!("{} uses {} on '{}': true when the key is absent, i.e. for requests without attestation", s.label(), c.op.name, c.key),
                ))
                .with("security", true)
                .fix("Drop the IfExists suffix", &[]));
            }
            match c.op.set {
                SetOp::ForAllValues => findings.push(ev(Finding::new(
                    "policy.set-operator",
                    Severity::Error,
                    format!("{} uses {} on the single-valued key '{}': ForAllValues is true when the key is absent (no attestation)", s.label(), c.op.name, c.key),
                )).fix("Use the plain operator (StringEqualsIgnoreCase)", &[])),
                SetOp::ForAnyValue => findings.push(ev(Finding::new(
                    "policy.set-operator",
                    Severity::Warn,
                    format!("{} uses {} on the single-valued key '{}'; the plain operator says the same more clearly", s.label(), c.op.name, c.key),
                )).fix("Use the plain operator (StringEqualsIgnoreCase)", &[])),
                SetOp::None => {}
            }
            let case_sensitive = matches!(c.op.base, BaseOp::StringEquals | BaseOp::StringLike);
            for v in &c.values {
                let wildcard =
                    c.op.base == BaseOp::StringLike && (v.contains('*') || v.contains('?'));
                if !wildcard && !is_measurement(v) && c.op.base != BaseOp::Null {
                    findings.push(ev(Finding::new(
                        "policy.malformed-measurement",
                        Severity::Error,
                        format!("{} lists '{}' for '{}': not 96 hex digits (SHA-384), it can never match", s.label(), v, c.key),
                    )).with("value", v.clone()).fix("Use the 96-hex-digit value from `ccctl eif describe`", &["ccctl eif describe --eif-path enclave.eif -o json | jq -r .Measurements.PCR0"]));
                }
                if is_measurement(v) && v.bytes().all(|b| b == b'0') && s.effect == Effect::Allow {
                    findings.push(ev(Finding::new(
                        "policy.debug-measurement",
                        Severity::Error,
                        format!("{} allows the all-zero value for '{}': that is what a debug-mode enclave attests", s.label(), c.key),
                    )).with("value", v.clone()).with("security", true).fix("Remove the all-zero value", &[]));
                }
                if case_sensitive && v.bytes().any(|b| b.is_ascii_uppercase()) {
                    findings.push(ev(Finding::new(
                        "policy.case-sensitive-operator",
                        Severity::Error,
                        format!("{} compares '{}' with {} against upper-case '{}': attested values are lower case, so it never matches", s.label(), c.key, c.op.name, v),
                    )).with("value", v.clone()).fix("Use StringEqualsIgnoreCase (or lower-case values)", &[]));
                } else if case_sensitive && c.op.base == BaseOp::StringEquals {
                    findings.push(ev(Finding::new(
                        "policy.case-sensitive-operator",
                        Severity::Warn,
                        format!("{} uses case-sensitive {} on '{}': it works with lower-case values but breaks the day someone pastes upper case", s.label(), c.op.name, c.key),
                    )).fix("Prefer StringEqualsIgnoreCase", &[]));
                }
            }
        }
        // ImageSha384 and PCR0 are the same measurement: disjoint lists in one statement
        // (AND) can never both hold.
        let img: Option<BTreeSet<String>> = att
            .iter()
            .find(|(_, k)| *k == AttKey::ImageSha384)
            .map(|(c, _)| c.values.iter().map(|v| v.to_ascii_lowercase()).collect());
        let pcr0: Option<BTreeSet<String>> = att
            .iter()
            .find(|(_, k)| *k == AttKey::Pcr(0))
            .map(|(c, _)| c.values.iter().map(|v| v.to_ascii_lowercase()).collect());
        if let (Some(a), Some(b)) = (img, pcr0)
            && a.is_disjoint(&b)
        {
            findings.push(
                Finding::new(
                    "policy.pcr0-imagesha384-conflict",
                    Severity::Error,
                    format!("{} requires ImageSha384 and PCR0 (the same measurement) to take disjoint values: it can never match", s.label()),
                )
                .with("statement", s.index)
                .with("sid", s.sid.clone())
                .fix("Condition on PCR0 only, or list the same values for both", &[]),
            );
        }
    }

    for s in &decrypt_allows {
        if s.principal == Principal::Any {
            findings.push(
                Finding::new(
                    "policy.broad-principal",
                    Severity::Warn,
                    format!("{} allows kms:Decrypt to any principal (\"*\"); only the attestation condition protects the share", s.label()),
                )
                .with("statement", s.index)
                .with("sid", s.sid.clone())
                .fix("Name the enclave's role as Principal", &[]),
            );
        }
    }

    // Allow statements for Decrypt that constrain PCR0 and PCR8 separately: OR, not AND.
    let pcr0_only = decrypt_allows.iter().find(|s| {
        let a = allowed_values(s);
        a.contains_key(&0) && !a.contains_key(&8)
    });
    let pcr8_only = decrypt_allows.iter().find(|s| {
        let a = allowed_values(s);
        a.contains_key(&8) && !a.contains_key(&0)
    });
    if let (Some(a), Some(b)) = (pcr0_only, pcr8_only) {
        findings.push(
            Finding::new(
                "policy.split-conditions",
                Severity::Warn,
                format!("PCR0 is required by {} and PCR8 by {}: separate Allow statements are OR, so either measurement alone releases the share", a.label(), b.label()),
            )
            .with("statements", vec![a.index, b.index])
            .fix("Put both conditions in one statement (AND)", &[]),
        );
    }

    if let Some(p8) = allowed.get(&8)
        && !p8.is_empty()
        && !measurements.pcrs.contains_key(&8)
    {
        findings.push(
            Finding::new(
                "policy.pcr8-unsigned",
                Severity::Error,
                "the policy requires PCR8 (a signed image) but the measured image is unsigned: it can never be released".to_owned(),
            )
            .with("allowed_pcr8", p8.iter().cloned().collect::<Vec<_>>())
            .fix("Sign the EIF with the certificate whose PCR8 the policy lists", &["nitro-cli build-enclave ... --signing-certificate cert.pem --private-key key.pem"]),
        );
    }

    if !decision.allowed {
        if !decision.denying.is_empty() {
            let s = &p.statements[decision.denying[0]];
            findings.push(
                Finding::new(
                    "policy.deny-shadow",
                    Severity::Error,
                    format!(
                        "{} denies kms:Decrypt to this enclave even though an Allow would match",
                        s.label()
                    ),
                )
                .with("statement", s.index)
                .with("sid", s.sid.clone())
                .fix(
                    "Narrow the Deny so it does not cover the attested measurements",
                    &[],
                ),
            );
        }
        for (pcr, vals) in &allowed {
            let measured = measurements.pcrs.get(pcr);
            if let Some(m) = measured
                && !vals.is_empty()
                && !vals.iter().any(|v| glob(v, &m.to_ascii_lowercase()))
            {
                findings.push(
                    Finding::new(
                        "policy.measurement-not-allowed",
                        Severity::Error,
                        format!("PCR{pcr} {m} is not among the values this key policy allows for kms:Decrypt"),
                    )
                    .with("pcr", format!("PCR{pcr}"))
                    .with("value", m.clone())
                    .with("allowed", vals.iter().cloned().collect::<Vec<_>>())
                    .fix("Ask the key holder to add the new value (keep the old one until the rollout is done)", &["ccctl rotate pcr0 --eif enclave.eif"]),
                );
            }
        }
    }

    Analysis {
        decision,
        unattested,
        allowed,
        findings,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROLE: &str = "arn:aws:iam::222222222222:role/signer";
    const OLD: &str = "5e1f00000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000";
    const NEW: &str = "9b2c11111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111";
    const P8: &str = "7d2222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222";

    fn fixture(name: &str) -> Policy {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../shared/fixtures/kms-policies")
            .join(name);
        Policy::parse(&std::fs::read_to_string(p).unwrap()).unwrap()
    }

    fn m(pcr0: &str, pcr8: Option<&str>) -> Measurements {
        let mut pcrs = BTreeMap::from([(0u8, pcr0.to_owned())]);
        if let Some(p8) = pcr8 {
            pcrs.insert(8, p8.to_owned());
        }
        Measurements { pcrs }
    }

    fn codes(a: &Analysis) -> Vec<(String, Severity)> {
        a.findings
            .iter()
            .map(|f| (f.code.clone(), f.severity))
            .collect()
    }

    fn has(a: &Analysis, code: &str, sev: Severity) -> bool {
        a.findings
            .iter()
            .any(|f| f.code == code && f.severity == sev)
    }

    fn policy(statements: &str) -> Policy {
        Policy::parse(&format!(
            r#"{{"Version":"2012-10-17","Statement":{statements}}}"#
        ))
        .unwrap()
    }

    fn allow_decrypt(cond: &str) -> String {
        format!(
            r#"{{"Effect":"Allow","Principal":{{"AWS":"{ROLE}"}},"Action":"kms:Decrypt","Resource":"*","Condition":{cond}}}"#
        )
    }

    #[test]
    fn rotation_policy_admits_old_and_new_and_nothing_else() {
        let p = fixture("rotation-two-pcr0.json");
        for pcr0 in [OLD, NEW, &NEW.to_uppercase()] {
            let a = analyse(&p, ROLE, &m(&pcr0.to_ascii_lowercase(), Some(P8)));
            assert!(a.decision.allowed, "{pcr0}");
            assert_eq!(a.decision.allowing, vec![2]);
            assert!(!a.unattested.allowed);
            assert!(a.findings.is_empty(), "{:?}", codes(&a));
        }
        let other = "ab".repeat(48);
        let a = analyse(&p, ROLE, &m(&other, Some(P8)));
        assert!(!a.decision.allowed);
        assert!(has(&a, "policy.measurement-not-allowed", Severity::Error));
        let f = a
            .findings
            .iter()
            .find(|f| f.code == "policy.measurement-not-allowed")
            .unwrap();
        assert_eq!(f.evidence["pcr"], "PCR0");
        assert_eq!(a.allowed[&0].len(), 2);
        // Right PCR0, wrong PCR8 (another signing certificate).
        let a = analyse(&p, ROLE, &m(OLD, Some(&"cd".repeat(48))));
        assert!(!a.decision.allowed);
        // Another principal gets nothing.
        let a = analyse(
            &p,
            "arn:aws:iam::222222222222:role/other",
            &m(OLD, Some(P8)),
        );
        assert!(!a.decision.allowed);
        // The role's session is the role.
        let a = analyse(
            &p,
            "arn:aws:sts::222222222222:assumed-role/signer/i-0abc",
            &m(OLD, Some(P8)),
        );
        assert!(a.decision.allowed);
        // Unsigned image: PCR8 required but absent.
        let a = analyse(&p, ROLE, &m(OLD, None));
        assert!(!a.decision.allowed);
        assert!(has(&a, "policy.pcr8-unsigned", Severity::Error));
    }

    #[test]
    fn condition_on_encrypt_and_open_decrypt() {
        let a = analyse(
            &fixture("condition-on-encrypt-and-open-decrypt.json"),
            ROLE,
            &m(OLD, None),
        );
        assert!(a.decision.allowed);
        assert!(a.unattested.allowed);
        assert!(has(&a, "policy.unattested-decrypt", Severity::Error));
        assert!(has(&a, "policy.wrong-action", Severity::Error));
    }

    #[test]
    fn upper_case_with_string_equals_never_matches() {
        let a = analyse(
            &fixture("string-equals-uppercase.json"),
            ROLE,
            &m(OLD, Some(P8)),
        );
        assert!(!a.decision.allowed);
        assert!(has(&a, "policy.case-sensitive-operator", Severity::Error));
    }

    #[test]
    fn lower_case_with_string_equals_works_but_warns() {
        let p = policy(&format!(
            "[{}]",
            allow_decrypt(&format!(
                r#"{{"StringEquals":{{"kms:RecipientAttestation:PCR0":"{OLD}"}}}}"#
            ))
        ));
        let a = analyse(&p, ROLE, &m(OLD, None));
        assert!(a.decision.allowed);
        assert!(has(&a, "policy.case-sensitive-operator", Severity::Warn));
    }

    #[test]
    fn statement_as_object_wildcards_and_case_insensitive_actions() {
        for action in [
            r#""kms:De*""#,
            r#""KMS:DECRYPT""#,
            r#"["kms:Encrypt","kms:*"]"#,
            r#""*""#,
        ] {
            let p = policy(&format!(
                r#"{{"Effect":"Allow","Principal":{{"AWS":"{ROLE}"}},"Action":{action},"Resource":"*","Condition":{{"StringEqualsIgnoreCase":{{"kms:RecipientAttestation:ImageSha384":"{OLD}"}}}}}}"#
            ));
            let a = analyse(&p, ROLE, &m(OLD, None));
            assert!(a.decision.allowed, "{action}");
        }
        let p = policy(&format!(
            r#"{{"Effect":"Allow","Principal":{{"AWS":"{ROLE}"}},"NotAction":"kms:Decrypt","Resource":"*"}}"#
        ));
        assert!(!analyse(&p, ROLE, &m(OLD, None)).decision.allowed);
    }

    #[test]
    fn absent_keys_follow_kms_rules() {
        let cases = [
            (
                format!(
                    r#"{{"StringEqualsIgnoreCaseIfExists":{{"kms:RecipientAttestation:PCR0":"{OLD}"}}}}"#
                ),
                true,
                "policy.if-exists",
                Severity::Error,
            ),
            (
                format!(
                    r#"{{"ForAllValues:StringEqualsIgnoreCase":{{"kms:RecipientAttestation:PCR0":"{OLD}"}}}}"#
                ),
                true,
                "policy.set-operator",
                Severity::Error,
            ),
            (
                format!(
                    r#"{{"ForAnyValue:StringEqualsIgnoreCase":{{"kms:RecipientAttestation:PCR0":"{OLD}"}}}}"#
                ),
                false,
                "policy.set-operator",
                Severity::Warn,
            ),
            (
                format!(r#"{{"StringNotEquals":{{"kms:RecipientAttestation:PCR0":"{NEW}"}}}}"#),
                true,
                "policy.unattested-decrypt",
                Severity::Error,
            ),
        ];
        for (cond, unattested, code, sev) in cases {
            let p = policy(&format!("[{}]", allow_decrypt(&cond)));
            let a = analyse(&p, ROLE, &m(OLD, None));
            assert_eq!(a.unattested.allowed, unattested, "{cond}");
            assert!(
                a.decision.allowed,
                "{cond}: attested request with the right value"
            );
            assert!(has(&a, code, sev), "{cond}: {:?}", codes(&a));
        }
        // Null closes the unattested path.
        let deny = r#"{"Effect":"Deny","Principal":"*","Action":"kms:Decrypt","Resource":"*","Condition":{"Null":{"kms:RecipientAttestation:PCR0":"true"}}}"#;
        let open = format!(
            r#"{{"Effect":"Allow","Principal":{{"AWS":"{ROLE}"}},"Action":"kms:Decrypt","Resource":"*"}}"#
        );
        let p = policy(&format!("[{open},{deny}]"));
        let a = analyse(&p, ROLE, &m(OLD, None));
        assert!(a.decision.allowed && !a.unattested.allowed);
        assert!(!has(&a, "policy.unattested-decrypt", Severity::Error));
    }

    #[test]
    fn deny_wins_and_is_reported() {
        let allow = allow_decrypt(&format!(
            r#"{{"StringEqualsIgnoreCase":{{"kms:RecipientAttestation:PCR0":["{OLD}","{NEW}"]}}}}"#
        ));
        let deny = format!(
            r#"{{"Sid":"NoOld","Effect":"Deny","Principal":"*","Action":"kms:*","Resource":"*","Condition":{{"StringEqualsIgnoreCase":{{"kms:RecipientAttestation:PCR0":"{OLD}"}}}}}}"#
        );
        let p = policy(&format!("[{allow},{deny}]"));
        let a = analyse(&p, ROLE, &m(OLD, None));
        assert!(!a.decision.allowed);
        assert!(has(&a, "policy.deny-shadow", Severity::Error));
        assert!(analyse(&p, ROLE, &m(NEW, None)).decision.allowed);
    }

    #[test]
    fn value_lints() {
        let zero = "0".repeat(96);
        let p = policy(&format!(
            "[{}]",
            allow_decrypt(&format!(
                r#"{{"StringEqualsIgnoreCase":{{"kms:RecipientAttestation:PCR0":["{OLD}","{zero}","abc"],"kms:RecipientAttestation:PCR99":"{OLD}"}}}}"#
            ))
        ));
        let a = analyse(&p, ROLE, &m(OLD, None));
        assert!(has(&a, "policy.debug-measurement", Severity::Error));
        assert!(has(&a, "policy.malformed-measurement", Severity::Error));
        assert!(has(&a, "policy.unknown-condition-key", Severity::Error));
        let p = policy(&format!(
            "[{}]",
            allow_decrypt(&format!(
                r#"{{"StringEqualsIgnoreCase":{{"kms:RecipientAttestation:PCR0":"{OLD}","kms:RecipientAttestation:ImageSha384":"{NEW}"}}}}"#
            ))
        ));
        let a = analyse(&p, ROLE, &m(OLD, None));
        assert!(!a.decision.allowed);
        assert!(has(&a, "policy.pcr0-imagesha384-conflict", Severity::Error));
    }

    #[test]
    fn split_conditions_and_broad_principal() {
        let s0 = allow_decrypt(&format!(
            r#"{{"StringEqualsIgnoreCase":{{"kms:RecipientAttestation:PCR0":"{OLD}"}}}}"#
        ));
        let s8 = format!(
            r#"{{"Effect":"Allow","Principal":"*","Action":"kms:Decrypt","Resource":"*","Condition":{{"StringEqualsIgnoreCase":{{"kms:RecipientAttestation:PCR8":"{P8}"}}}}}}"#
        );
        let p = policy(&format!("[{s0},{s8}]"));
        let a = analyse(&p, ROLE, &m(&"ab".repeat(48), Some(P8)));
        assert!(
            a.decision.allowed,
            "PCR8 alone suffices: that is the problem"
        );
        assert!(has(&a, "policy.split-conditions", Severity::Warn));
        assert!(has(&a, "policy.broad-principal", Severity::Warn));
    }

    #[test]
    fn root_principal_delegates_to_the_account() {
        let p = policy(
            r#"[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::222222222222:root"},"Action":"kms:*","Resource":"*"}]"#,
        );
        let a = analyse(&p, ROLE, &m(OLD, None));
        assert!(a.unattested.allowed);
        assert!(has(&a, "policy.unattested-decrypt", Severity::Error));
        assert!(
            !analyse(&p, "arn:aws:iam::333333333333:role/signer", &m(OLD, None))
                .decision
                .allowed
        );
    }

    #[test]
    fn malformed_policies_are_errors() {
        for (text, needle) in [
            ("nope", "not JSON"),
            ("{}", "no 'Statement'"),
            (
                r#"{"Statement":[{"Effect":"Maybe","Principal":"*","Action":"x"}]}"#,
                "'Effect'",
            ),
            (
                r#"{"Statement":[{"Effect":"Allow","Principal":"*"}]}"#,
                "'Action' and 'NotAction'",
            ),
            (
                r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"x","Condition":[]}]}"#,
                "'Condition' must be an object",
            ),
        ] {
            let e = Policy::parse(text).unwrap_err().to_string();
            assert!(e.contains(needle), "{text}: {e}");
        }
    }

    #[test]
    fn glob_matches_like_iam() {
        assert!(glob("kms:de*", "kms:decrypt"));
        assert!(glob("*", ""));
        assert!(glob("a?c", "abc"));
        assert!(!glob("a?c", "ac"));
        assert!(glob("5e1f*", OLD));
        assert!(!glob("kms:encrypt", "kms:decrypt"));
    }
}
