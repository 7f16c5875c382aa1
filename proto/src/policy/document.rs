//! The policy document: its types, and parsing the JSON KMS (key policies) and IAM
//! (identity-based policies, permissions boundaries) take into them.
//!
//! Parsing keeps what the evaluator needs (effect, principal or not-principal, actions,
//! resources, conditions). A statement without `Action`/`NotAction` or without
//! `Resource`/`NotResource` parses (KMS accepts it) and has no effect: "If either of the
//! required Resource or Action elements are missing from a key policy statement, the policy
//! statement has no effect" (PutKeyPolicy, KMS API reference). Whether a statement matches a
//! request is `evaluation`'s business.

use serde_json::Value;

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

/// Which grammar a document follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyKind {
    /// A KMS key policy (resource-based): every statement names a `Principal` or
    /// `NotPrincipal`.
    Key,
    /// An identity-based policy or a permissions boundary: no `Principal` (the identity it is
    /// attached to is implied).
    Identity,
}

/// The condition operators of the IAM grammar (without `ForAnyValue:`/`ForAllValues:` and
/// `IfExists`, which [`Operator`] carries).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BaseOp {
    StringEquals,
    StringNotEquals,
    StringEqualsIgnoreCase,
    StringNotEqualsIgnoreCase,
    StringLike,
    StringNotLike,
    NumericEquals,
    NumericNotEquals,
    NumericLessThan,
    NumericLessThanEquals,
    NumericGreaterThan,
    NumericGreaterThanEquals,
    DateEquals,
    DateNotEquals,
    DateLessThan,
    DateLessThanEquals,
    DateGreaterThan,
    DateGreaterThanEquals,
    Bool,
    BinaryEquals,
    IpAddress,
    NotIpAddress,
    ArnEquals,
    ArnLike,
    ArnNotEquals,
    ArnNotLike,
    Null,
    /// A name IAM does not define (a typo): never judged, the verdict depends on it.
    Other,
}

impl BaseOp {
    /// The negated operators: true when the key is absent, and true when no policy value
    /// matches.
    pub fn negated(self) -> bool {
        matches!(
            self,
            BaseOp::StringNotEquals
                | BaseOp::StringNotEqualsIgnoreCase
                | BaseOp::StringNotLike
                | BaseOp::NumericNotEquals
                | BaseOp::DateNotEquals
                | BaseOp::NotIpAddress
                | BaseOp::ArnNotEquals
                | BaseOp::ArnNotLike
        )
    }

    fn from_name(core: &str) -> BaseOp {
        match core {
            "StringEquals" => BaseOp::StringEquals,
            "StringNotEquals" => BaseOp::StringNotEquals,
            "StringEqualsIgnoreCase" => BaseOp::StringEqualsIgnoreCase,
            "StringNotEqualsIgnoreCase" => BaseOp::StringNotEqualsIgnoreCase,
            "StringLike" => BaseOp::StringLike,
            "StringNotLike" => BaseOp::StringNotLike,
            "NumericEquals" => BaseOp::NumericEquals,
            "NumericNotEquals" => BaseOp::NumericNotEquals,
            "NumericLessThan" => BaseOp::NumericLessThan,
            "NumericLessThanEquals" => BaseOp::NumericLessThanEquals,
            "NumericGreaterThan" => BaseOp::NumericGreaterThan,
            "NumericGreaterThanEquals" => BaseOp::NumericGreaterThanEquals,
            "DateEquals" => BaseOp::DateEquals,
            "DateNotEquals" => BaseOp::DateNotEquals,
            "DateLessThan" => BaseOp::DateLessThan,
            "DateLessThanEquals" => BaseOp::DateLessThanEquals,
            "DateGreaterThan" => BaseOp::DateGreaterThan,
            "DateGreaterThanEquals" => BaseOp::DateGreaterThanEquals,
            "Bool" => BaseOp::Bool,
            "BinaryEquals" => BaseOp::BinaryEquals,
            "IpAddress" => BaseOp::IpAddress,
            "NotIpAddress" => BaseOp::NotIpAddress,
            "ArnEquals" => BaseOp::ArnEquals,
            "ArnLike" => BaseOp::ArnLike,
            "ArnNotEquals" => BaseOp::ArnNotEquals,
            "ArnNotLike" => BaseOp::ArnNotLike,
            "Null" => BaseOp::Null,
            _ => BaseOp::Other,
        }
    }
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
    /// `Principal`, or the `NotPrincipal` list when `not_principal`. Identity-based policies
    /// have none: [`Principal::Any`] (the identity they are attached to).
    pub principal: Principal,
    pub not_principal: bool,
    /// `Action` patterns, or `NotAction` patterns when `not_action`. Neither element: empty
    /// and not negated, so the statement covers no action (it has no effect).
    pub actions: Vec<String>,
    pub not_action: bool,
    /// `Resource` patterns, or `NotResource` patterns when `not_resource`; `None` when the
    /// statement has neither (it has no effect).
    pub resources: Option<Vec<String>>,
    pub not_resource: bool,
    pub conditions: Vec<Condition>,
}

impl Statement {
    pub fn label(&self) -> String {
        match &self.sid {
            Some(s) => format!("'{s}' (statement {})", self.index),
            None => format!("statement {}", self.index),
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
    pub kind: PolicyKind,
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
    let base = BaseOp::from_name(core);
    Operator {
        name: name.to_owned(),
        base,
        if_exists,
        set,
    }
}

fn principal_element(v: &Value, index: usize, name: &str) -> Result<Principal, PolicyError> {
    match v {
        Value::String(p) if p == "*" => Ok(Principal::Any),
        Value::Object(m) => match m.get("AWS") {
            Some(a) => {
                let l = strings(a, &format!("statement {index} {name}.AWS"))?;
                Ok(if l.iter().any(|p| p == "*") {
                    Principal::Any
                } else {
                    Principal::Aws(l)
                })
            }
            None => Ok(Principal::Other),
        },
        _ => Err(PolicyError(format!(
            "statement {index}: '{name}' must be \"*\" or {{\"AWS\": ...}}"
        ))),
    }
}

/// `X` or `NotX` (at most one): the strings and whether they are negated; `None` if neither.
fn either(s: &Value, index: usize, name: &str) -> Result<Option<(Vec<String>, bool)>, PolicyError> {
    let not = format!("Not{name}");
    match (s.get(name), s.get(&not)) {
        (Some(a), None) => Ok(Some((
            strings(a, &format!("statement {index} {name}"))?,
            false,
        ))),
        (None, Some(a)) => Ok(Some((
            strings(a, &format!("statement {index} {not}"))?,
            true,
        ))),
        (None, None) => Ok(None),
        (Some(_), Some(_)) => Err(PolicyError(format!(
            "statement {index}: only one of '{name}' and '{not}' is allowed"
        ))),
    }
}

impl Policy {
    /// Parse a KMS key policy.
    pub fn parse(text: &str) -> Result<Policy, PolicyError> {
        Policy::parse_as(text, PolicyKind::Key)
    }

    /// Parse an identity-based policy (inline or attached) or a permissions boundary: the same
    /// grammar without `Principal`.
    pub fn parse_identity(text: &str) -> Result<Policy, PolicyError> {
        Policy::parse_as(text, PolicyKind::Identity)
    }

    pub fn parse_as(text: &str, kind: PolicyKind) -> Result<Policy, PolicyError> {
        let v: Value =
            serde_json::from_str(text).map_err(|e| PolicyError(format!("not JSON: {e}")))?;
        Policy::from_json(&v, kind)
    }

    /// A policy document already read as JSON.
    pub fn from_json(v: &Value, kind: PolicyKind) -> Result<Policy, PolicyError> {
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
            let (principal, not_principal) = match (kind, s.get("Principal"), s.get("NotPrincipal"))
            {
                (PolicyKind::Key, Some(p), None) => {
                    (principal_element(p, index, "Principal")?, false)
                }
                (PolicyKind::Key, None, Some(p)) => {
                    (principal_element(p, index, "NotPrincipal")?, true)
                }
                (PolicyKind::Key, Some(_), Some(_)) => {
                    return Err(at("only one of 'Principal' and 'NotPrincipal' is allowed"));
                }
                (PolicyKind::Key, None, None) => {
                    return Err(at("'Principal' must be \"*\" or {\"AWS\": ...}"));
                }
                (PolicyKind::Identity, None, None) => (Principal::Any, false),
                (PolicyKind::Identity, _, _) => {
                    return Err(at(
                        "an identity-based policy cannot name a 'Principal' or 'NotPrincipal'",
                    ));
                }
            };
            let (actions, not_action) = either(s, index, "Action")?.unwrap_or_default();
            let (resources, not_resource) = match either(s, index, "Resource")? {
                Some((r, not)) => (Some(r), not),
                None => (None, false),
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
                not_principal,
                actions,
                not_action,
                resources,
                not_resource,
                conditions,
            });
        }
        Ok(Policy { kind, statements })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
                r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"x","NotAction":"y"}]}"#,
                "'Action' and 'NotAction'",
            ),
            (
                r#"{"Statement":[{"Effect":"Allow","Principal":"*","NotPrincipal":"*","Action":"x"}]}"#,
                "'Principal' and 'NotPrincipal'",
            ),
            (
                r#"{"Statement":[{"Effect":"Allow","Action":"x"}]}"#,
                "'Principal'",
            ),
            (
                r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"x","Condition":[]}]}"#,
                "'Condition' must be an object",
            ),
        ] {
            let e = Policy::parse(text).unwrap_err().to_string();
            assert!(e.contains(needle), "{text}: {e}");
        }
        let e = Policy::parse_identity(
            r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"x","Resource":"*"}]}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("cannot name a 'Principal'"), "{e}");
    }

    /// KMS accepts a statement without Action or Resource (PutKeyPolicy: "the policy statement
    /// has no effect"); it parses, with nothing to match.
    #[test]
    fn statements_without_action_or_resource_parse() {
        let p = Policy::parse(
            r#"{"Statement":[{"Effect":"Allow","Principal":"*","Resource":"*"},{"Effect":"Allow","Principal":"*","Action":"kms:Decrypt"},{"Effect":"Deny","NotPrincipal":{"AWS":"111122223333"},"NotAction":"kms:Encrypt","NotResource":"arn:aws:kms:*"}]}"#,
        )
        .unwrap();
        assert!(p.statements[0].actions.is_empty() && !p.statements[0].not_action);
        assert_eq!(p.statements[1].resources, None);
        let s = &p.statements[2];
        assert!(s.not_principal && s.not_action && s.not_resource);
        assert_eq!(s.principal, Principal::Aws(vec!["111122223333".into()]));
    }
}
