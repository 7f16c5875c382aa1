//! The enclave server's `GET /status` JSON, what `ccctl` reads. Defined once here and
//! round-trip tested; fields are only ever added (with defaults), never renamed.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Seal state of the signer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SealState {
    /// Started, no attempt to unseal yet.
    Sealed,
    /// Asking the key holders for shares; fewer than the threshold so far.
    Unsealing,
    /// Master key reconstructed; signing works.
    Unsealed,
    /// Cannot unseal without an operator (see `reason`).
    Failed,
}

impl SealState {
    pub const ALL: [SealState; 4] = [
        SealState::Sealed,
        SealState::Unsealing,
        SealState::Unsealed,
        SealState::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SealState::Sealed => "sealed",
            SealState::Unsealing => "unsealing",
            SealState::Unsealed => "unsealed",
            SealState::Failed => "failed",
        }
    }
}

/// Where attestation documents come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Platform {
    /// The Nitro Security Module (`/dev/nsm`).
    Nitro,
    /// A local development root; never accepted by default.
    Software,
}

/// What the last `kms:Decrypt` for one holder's share gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HolderOutcome {
    /// Not asked yet (or still in flight).
    Pending,
    /// The share was released.
    Decrypted,
    /// KMS refused (AccessDeniedException: this PCR0/PCR8 is not in the key policy).
    Denied,
    /// KMS could not be reached (egress, DNS, timeout).
    Unreachable,
    /// Anything else (disabled key, bad ciphertext, malformed answer, ...).
    Error,
}

impl HolderOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            HolderOutcome::Pending => "pending",
            HolderOutcome::Decrypted => "decrypted",
            HolderOutcome::Denied => "denied",
            HolderOutcome::Unreachable => "unreachable",
            HolderOutcome::Error => "error",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HolderStatus {
    pub name: String,
    pub key_arn: String,
    pub region: String,
    pub outcome: HolderOutcome,
    /// KMS error code, e.g. `AccessDeniedException`, `DisabledException`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    /// Decrypt attempts so far.
    pub attempts: u32,
    /// Unix milliseconds of the last attempt's end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_attempt_ms: Option<u64>,
}

/// The measurements the latest attestation document carried.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttestationSummary {
    pub module_id: String,
    pub timestamp_ms: u64,
    /// Non-zero PCRs by name (`PCR0`, ...), lowercase hex.
    pub pcrs: BTreeMap<String, String>,
    /// PCR0 is all zero: the enclave runs in debug mode and no policy should release to it.
    pub debug_mode: bool,
}

impl AttestationSummary {
    /// The attested PCRs as a set. `/status` omits all-zero registers, so a missing PCR0 is
    /// the all-zero value (a debug-mode enclave); values that are not measurements are
    /// skipped.
    pub fn pcr_set(&self) -> crate::pcr::PcrSet {
        let mut out = crate::pcr::PcrSet::new();
        for (k, v) in &self.pcrs {
            if let Ok(one) = crate::pcr::PcrSet::from_named([(k.as_str(), v.as_str())]) {
                out.0.extend(one.0);
            }
        }
        if out.get(0).is_none() {
            out.set(0, crate::pcr::Pcr::ZERO);
        }
        out
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogForwarding {
    /// Address the log sink sends to (`vsock://3:7000` in production).
    pub target: String,
    pub connected: bool,
    /// Events dropped (disconnected, backing off, channel full, write failed).
    pub dropped_total: u64,
    pub delivered_total: u64,
}

/// `GET /status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    pub state: SealState,
    /// Why `failed` (or what `unsealing` waits for). Never contains key material.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub platform: Platform,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attestation: Option<AttestationSummary>,
    pub threshold: u32,
    pub holders: Vec<HolderStatus>,
    pub log_forwarding: LogForwarding,
    pub validator_keys: usize,
    pub uptime_seconds: u64,
    pub version: String,
}

impl Status {
    /// Holders whose share was released.
    pub fn decrypted(&self) -> usize {
        self.holders
            .iter()
            .filter(|h| h.outcome == HolderOutcome::Decrypted)
            .count()
    }
}

/// `GET /healthcheck` body when not unsealed (503).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    pub state: SealState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// GET `/status` at `api` within `timeout`: the one client of the enclave server's status.
pub async fn fetch(api: &crate::Address, timeout: std::time::Duration) -> Result<Status, String> {
    let r = crate::http::get(api, "/status", timeout).await?;
    if r.status != 200 {
        return Err(format!("{api}/status answered {}", r.status));
    }
    serde_json::from_slice(&r.body)
        .map_err(|e| format!("{api}/status is not the expected JSON: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Status {
        Status {
            state: SealState::Unsealing,
            reason: Some("1 of 2 shares; waiting for holders: b (denied), c (unreachable)".into()),
            platform: Platform::Software,
            attestation: Some(AttestationSummary {
                module_id: "i-0-enc1".into(),
                timestamp_ms: 1_732_983_768_387,
                pcrs: BTreeMap::from([("PCR0".into(), "ab".repeat(48))]),
                debug_mode: false,
            }),
            threshold: 2,
            holders: vec![HolderStatus {
                name: "b".into(),
                key_arn: "arn:aws:kms:us-east-1:111122223333:key/x".into(),
                region: "us-east-1".into(),
                outcome: HolderOutcome::Denied,
                error_code: Some("AccessDeniedException".into()),
                error_message: Some("not allowed".into()),
                attempts: 3,
                last_attempt_ms: Some(1),
            }],
            log_forwarding: LogForwarding {
                target: "vsock://3:7000".into(),
                connected: true,
                dropped_total: 4,
                delivered_total: 10,
            },
            validator_keys: 2,
            uptime_seconds: 12,
            version: "0.1.0".into(),
        }
    }

    #[test]
    fn status_round_trips_through_json() {
        let s = sample();
        let text = serde_json::to_string(&s).unwrap();
        let back: Status = serde_json::from_str(&text).unwrap();
        assert_eq!(back, s);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["state"], "unsealing");
        assert_eq!(v["holders"][0]["outcome"], "denied");
        assert_eq!(v["holders"][0]["error_code"], "AccessDeniedException");
        assert_eq!(v["log_forwarding"]["dropped_total"], 4);
    }

    #[test]
    fn unknown_fields_from_a_newer_server_are_ignored() {
        let mut v = serde_json::to_value(sample()).unwrap();
        v["future_field"] = serde_json::json!(1);
        let back: Status = serde_json::from_value(v).unwrap();
        assert_eq!(back.state, SealState::Unsealing);
    }
}
