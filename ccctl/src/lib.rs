//! `ccctl`: the operator's tool. The binary parses arguments and renders; the measuring and
//! comparing live in these modules so `doctor`, `tui` and `rotate` call them directly.

pub mod attest;
pub mod cli;
pub mod config;
pub mod eif;
pub mod enclaves;
pub mod http;
pub mod output;
pub mod policy;
pub mod x509;

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
