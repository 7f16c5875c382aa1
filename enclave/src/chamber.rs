//! The signer's shared state: seal state and reason, per-holder share status, the latest
//! attestation's measurements, and (once unsealed) the validator keys. Everything `/status`
//! shows comes from here; the keys never leave it.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use cc_proto::status::{
    AttestationSummary, HolderOutcome, HolderStatus, LogForwarding, Platform, SealState, Status,
};

use crate::keys::ValidatorKey;
use crate::log_forward::LogSink;
use crate::metrics::Metrics;
use crate::nsm::Nsm;

struct Inner {
    state: SealState,
    reason: Option<String>,
    holders: Vec<HolderStatus>,
    attestation: Option<AttestationSummary>,
}

pub struct Chamber {
    inner: RwLock<Inner>,
    keys: RwLock<HashMap<[u8; 48], ValidatorKey>>,
    pub metrics: Metrics,
    pub platform: Platform,
    pub threshold: u32,
    pub nsm: Option<Arc<dyn Nsm>>,
    pub logs: Option<LogSink>,
    started: Instant,
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Chamber {
    pub fn new(
        platform: Platform,
        threshold: u32,
        holders: &[crate::config::Holder],
        nsm: Option<Arc<dyn Nsm>>,
        logs: Option<LogSink>,
    ) -> Chamber {
        let metrics = Metrics::new();
        metrics.set_state(SealState::Sealed);
        metrics.threshold.set(i64::from(threshold));
        Chamber {
            inner: RwLock::new(Inner {
                state: SealState::Sealed,
                reason: None,
                holders: holders
                    .iter()
                    .map(|h| HolderStatus {
                        name: h.name.clone(),
                        key_arn: h.key_arn.clone(),
                        region: h.region.clone(),
                        outcome: HolderOutcome::Pending,
                        error_code: None,
                        error_message: None,
                        attempts: 0,
                        last_attempt_ms: None,
                    })
                    .collect(),
                attestation: None,
            }),
            keys: RwLock::new(HashMap::new()),
            metrics,
            platform,
            threshold,
            nsm,
            logs,
            started: Instant::now(),
        }
    }

    pub fn state(&self) -> (SealState, Option<String>) {
        let g = self.inner.read().unwrap_or_else(|e| e.into_inner());
        (g.state, g.reason.clone())
    }

    pub fn set_state(&self, state: SealState, reason: Option<String>) {
        {
            let mut g = self.inner.write().unwrap_or_else(|e| e.into_inner());
            if g.state == state && g.reason == reason {
                return;
            }
            g.state = state;
            g.reason = reason.clone();
        }
        self.metrics.set_state(state);
        match state {
            SealState::Failed => {
                tracing::error!(
                    state = state.as_str(),
                    reason = reason.as_deref().unwrap_or(""),
                    "signer state"
                )
            }
            _ => tracing::info!(
                state = state.as_str(),
                reason = reason.as_deref().unwrap_or(""),
                "signer state"
            ),
        }
    }

    pub fn record_holder(
        &self,
        name: &str,
        outcome: HolderOutcome,
        code: Option<String>,
        message: Option<String>,
    ) {
        self.metrics.kms(name, outcome);
        let mut g = self.inner.write().unwrap_or_else(|e| e.into_inner());
        if let Some(h) = g.holders.iter_mut().find(|h| h.name == name) {
            h.outcome = outcome;
            h.error_code = code;
            h.error_message = message;
            h.attempts += 1;
            h.last_attempt_ms = Some(now_ms());
        }
    }

    pub fn holders(&self) -> Vec<HolderStatus> {
        self.inner
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .holders
            .clone()
    }

    pub fn set_attestation(&self, doc: &cc_proto::attestation::AttestationDoc) {
        let summary = AttestationSummary {
            module_id: doc.module_id.clone(),
            timestamp_ms: doc.timestamp,
            pcrs: doc
                .pcrs
                .iter()
                .filter(|(_, v)| v.iter().any(|b| *b != 0))
                .map(|(k, v)| (format!("PCR{k}"), hex::encode(v)))
                .collect(),
            debug_mode: doc.debug_mode(),
        };
        let hex = |i: u16| doc.pcrs.get(&i).map(hex::encode).unwrap_or_default();
        // PCR8 all zeros: an unsigned image (as /status, which omits it).
        let pcr8 = Some(hex(8)).filter(|h| h.bytes().any(|b| b != b'0'));
        self.metrics
            .set_measurement(&hex(0), pcr8.as_deref().unwrap_or(""));
        self.inner
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .attestation = Some(summary);
    }

    pub fn install_keys(&self, keys: Vec<ValidatorKey>) {
        let mut g = self.keys.write().unwrap_or_else(|e| e.into_inner());
        g.clear();
        for k in keys {
            g.insert(k.pubkey, k);
        }
    }

    pub fn public_keys(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .keys
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .map(|k| format!("0x{}", hex::encode(k)))
            .collect();
        v.sort();
        v
    }

    /// Sign with the key for `pubkey`; `None` if there is no such key.
    pub fn sign(&self, pubkey: &[u8; 48], message: &[u8]) -> Option<[u8; 96]> {
        self.keys
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(pubkey)
            .map(|k| k.sign(message))
    }

    pub fn validator_key_count(&self) -> usize {
        self.keys.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn sync_log_metrics(&self) {
        if let Some(l) = &self.logs {
            self.metrics.sync_dropped(l.dropped_total());
        }
    }

    pub fn status(&self) -> Status {
        self.sync_log_metrics();
        let g = self.inner.read().unwrap_or_else(|e| e.into_inner());
        Status {
            state: g.state,
            reason: g.reason.clone(),
            platform: self.platform,
            attestation: g.attestation.clone(),
            threshold: self.threshold,
            holders: g.holders.clone(),
            log_forwarding: match &self.logs {
                Some(l) => LogForwarding {
                    target: l.target.to_string(),
                    connected: l.connected(),
                    dropped_total: l.dropped_total(),
                    delivered_total: l.delivered_total(),
                },
                None => LogForwarding::default(),
            },
            validator_keys: self.validator_key_count(),
            uptime_seconds: self.started.elapsed().as_secs(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
        }
    }
}
