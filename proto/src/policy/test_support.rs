//! Fixtures and helpers shared by the policy tests.

use std::collections::BTreeMap;

use super::{Analysis, Measurements, Policy};
use crate::findings::Severity;

pub(super) const ROLE: &str = "arn:aws:iam::222222222222:role/signer";
pub(super) const OLD: &str = "5e1f00000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000";
pub(super) const NEW: &str = "9b2c11111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111";
pub(super) const P8: &str = "7d2222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222";

pub(super) fn fixture(name: &str) -> Policy {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/fixtures/kms-policies")
        .join(name);
    Policy::parse(&std::fs::read_to_string(p).unwrap()).unwrap()
}

pub(super) fn m(pcr0: &str, pcr8: Option<&str>) -> Measurements {
    let mut pcrs = BTreeMap::from([(0u8, pcr0.to_owned())]);
    if let Some(p8) = pcr8 {
        pcrs.insert(8, p8.to_owned());
    }
    Measurements { pcrs }
}

pub(super) fn codes(a: &Analysis) -> Vec<(String, Severity)> {
    a.findings
        .iter()
        .map(|f| (f.code.clone(), f.severity))
        .collect()
}

pub(super) fn has(a: &Analysis, code: &str, sev: Severity) -> bool {
    a.findings
        .iter()
        .any(|f| f.code == code && f.severity == sev)
}

pub(super) fn policy(statements: &str) -> Policy {
    Policy::parse(&format!(
        r#"{{"Version":"2012-10-17","Statement":{statements}}}"#
    ))
    .unwrap()
}

pub(super) fn allow_decrypt(cond: &str) -> String {
    format!(
        r#"{{"Effect":"Allow","Principal":{{"AWS":"{ROLE}"}},"Action":"kms:Decrypt","Resource":"*","Condition":{cond}}}"#
    )
}
