//! The enclave's Prometheus metrics (port 3000). Names are part of the fixed contract:
//! `containment_enclave_log_events_dropped_total` is always registered, with or without the
//! `nitro` feature.

use std::sync::Arc;

use cc_proto::metrics::registered as names;
use cc_proto::status::{HolderOutcome, SealState};
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabel {
    pub state: StateValue,
}

#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum StateValue {
    sealed,
    unsealing,
    unsealed,
    failed,
}

impl From<SealState> for StateValue {
    fn from(s: SealState) -> Self {
        match s {
            SealState::Sealed => StateValue::sealed,
            SealState::Unsealing => StateValue::unsealing,
            SealState::Unsealed => StateValue::unsealed,
            SealState::Failed => StateValue::failed,
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KmsLabel {
    pub holder: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabel {
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MeasurementLabel {
    pub pcr0: String,
    pub pcr8: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClosedLabel {
    pub server: &'static str,
    pub reason: &'static str,
}

#[derive(Clone, Debug)]
pub struct Metrics {
    registry: Arc<Registry>,
    pub log_events_dropped: Counter,
    pub state: Family<StateLabel, Gauge>,
    pub kms_decrypt: Family<KmsLabel, Counter>,
    pub signing_requests: Family<StatusLabel, Counter>,
    pub signing_duration: Histogram,
    pub healthy: Gauge,
    pub connections_closed: Family<ClosedLabel, Counter>,
    pub measurement: Family<MeasurementLabel, Gauge>,
    pub threshold: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut r = Registry::default();
        let log_events_dropped = Counter::default();
        let state = Family::<StateLabel, Gauge>::default();
        let kms_decrypt = Family::<KmsLabel, Counter>::default();
        let signing_requests = Family::<StatusLabel, Counter>::default();
        // 50 µs .. ~100 ms.
        let signing_duration = Histogram::new(
            prometheus_client::metrics::histogram::exponential_buckets(0.00005, 2.0, 12),
        );
        let healthy = Gauge::default();
        let connections_closed = Family::<ClosedLabel, Counter>::default();
        let measurement = Family::<MeasurementLabel, Gauge>::default();
        let threshold = Gauge::default();
        r.register(
            names::LOG_EVENTS_DROPPED,
            "Log events dropped (log listener down or backing off, buffer full, write failed)",
            log_events_dropped.clone(),
        );
        r.register(
            names::SIGNER_STATE,
            "1 for the signer's current seal state, 0 for the others",
            state.clone(),
        );
        r.register(
            names::KMS_DECRYPT,
            "kms:Decrypt attempts per key holder and outcome",
            kms_decrypt.clone(),
        );
        r.register(
            names::SIGNING_REQUESTS,
            "Signing requests by HTTP status",
            signing_requests.clone(),
        );
        r.register(
            names::SIGNING_DURATION_SECONDS,
            "Time to answer a signing request",
            signing_duration.clone(),
        );
        r.register(
            names::HEALTHY,
            "1 when unsealed and ready to sign",
            healthy.clone(),
        );
        r.register(
            names::CONNECTIONS_CLOSED,
            "Connections the HTTP servers closed themselves, per server and reason (limit, \
             header_timeout, idle)",
            connections_closed.clone(),
        );
        r.register(
            names::MEASUREMENT_INFO,
            "1, labelled with the running image's PCR0 and PCR8 (hex; pcr8 empty when unsigned), \
             once the enclave attested",
            measurement.clone(),
        );
        r.register(
            names::SIGNER_THRESHOLD,
            "Shares needed to rebuild the master key",
            threshold.clone(),
        );
        let m = Metrics {
            registry: Arc::new(r),
            log_events_dropped,
            state,
            kms_decrypt,
            signing_requests,
            signing_duration,
            healthy,
            connections_closed,
            measurement,
            threshold,
        };
        m.set_state(SealState::Sealed);
        m
    }

    pub fn set_state(&self, s: SealState) {
        for each in SealState::ALL {
            self.state
                .get_or_create(&StateLabel { state: each.into() })
                .set(i64::from(each == s));
        }
        self.healthy.set(i64::from(s == SealState::Unsealed));
    }

    /// The running image's measurements (one series: the last attestation's).
    pub fn set_measurement(&self, pcr0: &str, pcr8: &str) {
        self.measurement.clear();
        self.measurement
            .get_or_create(&MeasurementLabel {
                pcr0: pcr0.to_owned(),
                pcr8: pcr8.to_owned(),
            })
            .set(1);
    }

    pub fn kms(&self, holder: &str, outcome: HolderOutcome) {
        self.kms_decrypt
            .get_or_create(&KmsLabel {
                holder: holder.to_owned(),
                outcome: outcome.as_str().to_owned(),
            })
            .inc();
    }

    /// Raise the drop counter to `total` (it is fed from two monotonic sources).
    pub fn sync_dropped(&self, total: u64) {
        let now = self.log_events_dropped.get();
        if total > now {
            self.log_events_dropped.inc_by(total - now);
        }
    }

    /// A server closed a connection itself (see [`crate::http`]).
    pub fn closed(&self, server: &'static str, reason: &'static str) {
        self.connections_closed
            .get_or_create(&ClosedLabel { server, reason })
            .inc();
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
