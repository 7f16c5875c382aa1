//! The proxy's own log lines: tracing-subscriber's fmt format without colours on stdout, the
//! same format the enclave server emits, so `kubectl logs` shows parent and enclave lines
//! interleaved in one readable stream.

use tracing_subscriber::EnvFilter;

/// `RUST_LOG` overrides the default `info`.
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(std::io::stdout)
        .try_init();
}
