//! KMS key-policy evaluation for attestation-gated `kms:Decrypt`, the way KMS decides it, and
//! the lints that explain why a holder's key would (not) release its share.
//!
//! What KMS does (and this reproduces): `Statement` is an object or a list; `Action` /
//! `NotAction` take wildcards and compare case-insensitively; `Resource` is `"*"` (this key) or
//! a pattern matched against the key's ARN, and a statement without `Action` or `Resource`
//! has no effect; a list of values for one key is OR, several keys or operators in one
//! `Condition` are AND, several Allow statements are OR, any matching Deny wins. The
//! attestation keys `kms:RecipientAttestation:ImageSha384` (= PCR0) and `…:PCR0`–`PCR31` exist
//! only on requests that carry a Recipient. When a key is absent: positive operators are
//! false; negated ones (`StringNot…`, `ArnNot…`, `NotIpAddress`, …) are true; `…IfExists` is
//! true; `ForAllValues:` is true; `ForAnyValue:` is false; `Null` tests exactly that (a list
//! of values is OR). Keys ccctl cannot know (`aws:SourceIp`, tags, …) are not guessed: the
//! policy is judged both ways (three-valued logic) and the verdict may be
//! [`Verdict::DependsOn`] them.
//!
//! The code is in parts, all re-exported here (`cc_proto::policy::X` is the only path):
//! - `document`: the policy's types, [`Policy::parse`] and [`Policy::parse_identity`];
//! - `context`: the [`RequestContext`] (principal, key, attestation, encryption context, …);
//! - `conditions`: [`Truth`] and the condition operators;
//! - `evaluation`: statements and one document judged against a request (and the original
//!   [`Request`] / [`evaluate`] API);
//! - `verdict`: the final KMS [`Decision`] with the IAM side ([`judge`]), [`Verdict`] and
//!   [`Reason`];
//! - `grants`: [`grant_bypasses_attestation`];
//! - `lint`: [`analyse`] / [`analyse_with`] → [`Analysis`], one function per finding code.

mod conditions;
mod context;
mod document;
mod evaluation;
mod grants;
mod lint;
mod verdict;

#[cfg(test)]
mod defects;
#[cfg(test)]
mod differential;
#[cfg(test)]
mod generator;
#[cfg(test)]
mod reference;
#[cfg(test)]
mod table;
#[cfg(test)]
mod test_support;

pub use conditions::{
    Truth, arn_matches, condition_truth, glob, ip_matches, parse_date, parse_number,
};
pub use context::{
    Arn, Identity, KEY_ARN_UNKNOWN, KeyValue, Measurements, RequestContext, SESSION_UNKNOWN,
    iso8601,
};
pub use document::{
    ATTESTATION_PREFIX, AttKey, BaseOp, Condition, Effect, Operator, Policy, PolicyError,
    PolicyKind, Principal, SetOp, Statement, attestation_key,
};
pub use evaluation::{
    PolicyEval, PrincipalMatch, Request, StatementEval, condition_holds, evaluate, evaluate_policy,
    evaluate_statement, not_principal_lists, principal_entry, principal_match, principal_matches,
    statement_applies,
};
pub use grants::{GrantConstraints, GrantRecord, grant_bypasses_attestation};
pub use lint::{Analysis, allowed_values, analyse, analyse_with};
pub use verdict::{
    Decision, IamPolicies, KeyGrant, NamedPolicy, PolicySource, Reason, Verdict, evaluate_context,
    judge,
};
