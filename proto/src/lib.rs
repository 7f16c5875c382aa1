//! The shared contract of the containment chamber.
//!
//! Whatever crosses a process boundary between `ccctl`, the enclave server and the parent-side
//! proxy is defined here once: addresses and the transports behind them, the fixed port
//! numbers, and the reconnect backoff every client uses. This crate has no kube, AWS SDK or
//! terminal dependencies.

pub mod address;
pub mod attestation;
pub mod backoff;
pub mod eif;
pub mod findings;
pub mod holders;
pub mod http;
pub mod metrics;
pub mod nitro_cli;
pub mod pcr;
pub mod policy;
pub mod ports;
pub mod shares;
pub mod status;
pub mod text;
pub mod transport;

pub use address::{Address, AddressError};
pub use backoff::Backoff;
pub use transport::{Listener, Stream, connect, listen};

/// Parse `250ms`, `5s`, `2m` or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, "s"),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| format!("'{s}' is not a duration (expected e.g. 500ms, 5s, 2m)"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        _ => {
            return Err(format!(
                "'{s}' has unknown unit '{unit}' (expected ms, s or m)"
            ));
        }
    };
    if !secs.is_finite() || !(0.0..=86_400.0).contains(&secs) {
        return Err(format!("'{s}' is out of range (0 to 24h)"));
    }
    Ok(std::time::Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("3").unwrap(), Duration::from_secs(3));
        assert!(
            parse_duration("5h")
                .unwrap_err()
                .contains("unknown unit 'h'")
        );
        assert!(
            parse_duration("fast")
                .unwrap_err()
                .contains("not a duration")
        );
        assert!(parse_duration("").unwrap_err().contains("not a duration"));
    }
}
