//! The key-policy document: its types, and parsing the JSON KMS takes into them.
//!
//! Parsing keeps what the evaluator needs (effect, principal, actions, conditions). Whether a
//! statement matches a request (`Statement::covers_action`, `Statement::covers_principal`) is
//! `evaluation`'s business.

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
}
