//! The metrics contract: the names the enclave server exports (DESIGN.md: the drop counter is
//! always exposed) and the one parser of the Prometheus text exposition format that everything
//! reading `/metrics` uses.

use std::collections::BTreeMap;

/// Names as registered (prometheus-client appends `_total` to counters when exposing).
pub mod registered {
    pub const LOG_EVENTS_DROPPED: &str = "containment_enclave_log_events_dropped";
    pub const SIGNER_STATE: &str = "containment_signer_state";
    pub const KMS_DECRYPT: &str = "containment_kms_decrypt";
    pub const SIGNING_REQUESTS: &str = "containment_signing_requests";
    pub const SIGNING_DURATION_SECONDS: &str = "containment_signing_duration_seconds";
    pub const HEALTHY: &str = "containment_healthy";
    pub const CONNECTIONS_CLOSED: &str = "containment_enclave_connections_closed";
    pub const MEASUREMENT_INFO: &str = "containment_enclave_measurement_info";
    pub const SIGNER_THRESHOLD: &str = "containment_signer_threshold";
}

/// Log events the enclave dropped (counter, no labels).
pub const LOG_EVENTS_DROPPED_TOTAL: &str = "containment_enclave_log_events_dropped_total";
/// 1 for the signer's current seal state (`state` label), 0 for the others.
pub const SIGNER_STATE: &str = "containment_signer_state";
/// kms:Decrypt attempts per `holder` and `outcome` (counter).
pub const KMS_DECRYPT_TOTAL: &str = "containment_kms_decrypt_total";
/// Signing requests per HTTP `status` (counter).
pub const SIGNING_REQUESTS_TOTAL: &str = "containment_signing_requests_total";
/// Signing latency histogram (`_sum`, `_count`, `_bucket`).
pub const SIGNING_DURATION_SECONDS: &str = "containment_signing_duration_seconds";
/// 1 when unsealed and ready to sign.
pub const HEALTHY: &str = "containment_healthy";
/// 1, with the running image's measurements as labels (`pcr0`, `pcr8`: 96 hex, all zeros for
/// PCR0 in debug mode, `pcr8` empty when the image is unsigned), once the enclave attested:
/// what a Prometheus-backed fleet view judges the key policies against.
pub const MEASUREMENT_INFO: &str = "containment_enclave_measurement_info";
/// Shares needed to rebuild the master key (gauge).
pub const SIGNER_THRESHOLD: &str = "containment_signer_threshold";

/// Connections the enclave's HTTP servers closed themselves, per `server` (api, metrics) and
/// `reason` (limit, header_timeout, idle) (counter; appears once one was closed).
pub const CONNECTIONS_CLOSED_TOTAL: &str = "containment_enclave_connections_closed_total";

/// Every series family the enclave server exposes (for tests and dashboards).
pub const ENCLAVE_SERIES: &[&str] = &[
    LOG_EVENTS_DROPPED_TOTAL,
    SIGNER_STATE,
    KMS_DECRYPT_TOTAL,
    SIGNING_REQUESTS_TOTAL,
    SIGNING_DURATION_SECONDS,
    HEALTHY,
    SIGNER_THRESHOLD,
    MEASUREMENT_INFO,
];

/// One scrape: series with labels as written (`containment_kms_decrypt_total{holder="a"}`) →
/// value.
pub type Samples = BTreeMap<String, f64>;

/// Parse the text exposition format. Comments and blank lines are skipped; a line that is not
/// `series value [timestamp]` is an error naming its line number. Series names are sanitised
/// (they come from the enclave).
pub fn parse(text: &str) -> Result<Samples, String> {
    let mut out = Samples::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        // The value follows the last space outside the label braces.
        let split = match line.rfind('}') {
            Some(close) => line[close..].find(' ').map(|i| close + i),
            None => line.find(' '),
        };
        let Some(split) = split else {
            return Err(format!(
                "metrics line {}: expected 'series value', got '{}'",
                n + 1,
                crate::text::sanitize(line)
            ));
        };
        let (series, rest) = line.split_at(split);
        let value = rest.split_whitespace().next().unwrap_or_default();
        let v = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            "NaN" => f64::NAN,
            v => v.parse::<f64>().map_err(|_| {
                format!(
                    "metrics line {}: '{}' is not a number",
                    n + 1,
                    crate::text::sanitize(v)
                )
            })?,
        };
        if series.is_empty() || series.contains(char::is_whitespace) && !series.contains('{') {
            return Err(format!("metrics line {}: no series name", n + 1));
        }
        out.insert(crate::text::sanitize(series), v);
    }
    Ok(out)
}

/// The value of one series exactly as written (name plus labels, if any).
pub fn value(samples: &Samples, series: &str) -> Option<f64> {
    samples.get(series).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_labels_and_errors() {
        let s = parse(
            "# HELP x y\n# TYPE x counter\ncontainment_enclave_log_events_dropped_total 7\n\
             containment_kms_decrypt_total{holder=\"a b\",outcome=\"denied\"} 2 1700000000\n\
             up +Inf\n",
        )
        .unwrap();
        assert_eq!(value(&s, LOG_EVENTS_DROPPED_TOTAL), Some(7.0));
        assert_eq!(
            value(
                &s,
                "containment_kms_decrypt_total{holder=\"a b\",outcome=\"denied\"}"
            ),
            Some(2.0)
        );
        assert_eq!(value(&s, "up"), Some(f64::INFINITY));
        assert!(parse("x").unwrap_err().contains("line 1"));
        assert!(
            parse("\n\nx abc")
                .unwrap_err()
                .contains("line 3: 'abc' is not a number")
        );
    }
}
