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
//!
//! The code is in three parts, all re-exported here (`cc_proto::policy::X` is the only path):
//! - `document`: the policy's types and [`Policy::parse`];
//! - `evaluation`: a [`Request`] judged against a policy ([`evaluate`] → [`Decision`]);
//! - `lint`: [`analyse`] → [`Analysis`], one function per finding code.

mod document;
mod evaluation;
mod lint;
#[cfg(test)]
mod test_support;

pub use document::{
    ATTESTATION_PREFIX, AttKey, BaseOp, Condition, Effect, Operator, Policy, PolicyError,
    Principal, SetOp, Statement, attestation_key,
};
pub use evaluation::{
    Decision, Measurements, Request, condition_holds, evaluate, glob, principal_matches,
    statement_applies,
};
pub use lint::{Analysis, allowed_values, analyse};
