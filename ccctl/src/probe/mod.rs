//! The probe layer: one client for each thing ccctl looks at — the enclave's `/status` and
//! `/metrics` (over any transport), nitro-cli (here, or in a pod through [`exec::PodExec`]),
//! egress (forwarder listening, upstream TCP + TLS), key policies (KMS or file) and the
//! Kubernetes API. Doctor's checks, the dashboard and rotate all read through it.
//!
//! Every probe answers a [`Probe`]: the value or why there is none, when it was taken and how
//! long it took, so a caller can tell fresh data from stale and a failure from a success.
//! Probes never print and never judge: verdicts are doctor's, the policy evaluator's or
//! rotate's workflow's.

pub mod child;
pub mod egress;
pub mod exec;
pub mod http;
pub mod iam;
pub mod k8s;
pub mod metrics;
pub mod nitro_cli;
pub mod policy;
pub mod prometheus;
pub mod status;

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::{Duration, Instant, SystemTime};

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One observation: what was read (or why nothing was), and when.
#[derive(Debug, Clone)]
pub struct Probe<T> {
    /// Wall-clock time the probe finished (for JSON and people).
    pub taken_at: SystemTime,
    /// Monotonic time the probe finished (for ages).
    pub at: Instant,
    /// How long it took.
    pub took: Duration,
    pub result: Result<T, String>,
}

impl<T> Probe<T> {
    /// Run `f` and record when it finished and how long it took.
    pub async fn take<F: Future<Output = Result<T, String>>>(f: F) -> Probe<T> {
        let start = Instant::now();
        let result = f.await;
        Probe {
            taken_at: SystemTime::now(),
            at: Instant::now(),
            took: start.elapsed(),
            result,
        }
    }

    pub fn succeeded(&self) -> bool {
        self.result.is_ok()
    }

    pub fn value(&self) -> Option<&T> {
        self.result.as_ref().ok()
    }

    pub fn error(&self) -> Option<&str> {
        self.result.as_ref().err().map(String::as_str)
    }

    /// Time since the probe finished.
    pub fn age(&self) -> Duration {
        self.at.elapsed()
    }

    pub fn into_result(self) -> Result<T, String> {
        self.result
    }
}

/// Where the local probes (`doctor --local`, `tui`) find the chamber's parts. Each flag also
/// reads a `CCCTL_*` variable (the Helm chart and `ccctl demo`'s env.sh set them).
#[derive(Debug, Clone, clap::Args)]
pub struct Targets {
    /// The enclave API (/status).
    #[arg(
        long,
        env = "CCCTL_API",
        value_name = "ADDR",
        default_value = "tcp://127.0.0.1:9000"
    )]
    pub api: cc_proto::Address,
    /// The enclave metrics (/metrics).
    #[arg(
        long,
        env = "CCCTL_METRICS",
        value_name = "ADDR",
        default_value = "tcp://127.0.0.1:3000"
    )]
    pub metrics: cc_proto::Address,
    /// The parent's log listener to probe (skipped when not given).
    #[arg(long, env = "CCCTL_LOG_LISTENER", value_name = "ADDR")]
    pub log_listener: Option<cc_proto::Address>,
    #[arg(
        long,
        env = "CCCTL_NITRO_CLI",
        value_name = "PATH",
        default_value = "nitro-cli"
    )]
    pub nitro_cli: PathBuf,
    #[arg(
        long,
        env = "CCCTL_DEVICE",
        value_name = "PATH",
        default_value = "/dev/nitro_enclaves"
    )]
    pub device: PathBuf,
    /// The Nitro Enclaves allocator configuration.
    #[arg(
        long,
        env = "CCCTL_ALLOCATOR",
        value_name = "PATH",
        default_value = "/etc/nitro_enclaves/allocator.yaml"
    )]
    pub allocator: PathBuf,
    /// ccctl's config (holders, principal, threshold): the attested PCRs are checked against
    /// every holder's key policy (skipped when not given).
    #[arg(long, env = "CCCTL_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The parent proxy's run configuration: its egress endpoints and allowlist are checked
    /// (skipped when not given).
    #[arg(long, env = "CCCTL_PROXY_CONFIG", value_name = "FILE")]
    pub proxy_config: Option<PathBuf>,
    /// The pod's log as a file (the parent's stdout, e.g. `kubectl logs POD > f`): scanned for
    /// known failure signatures (skipped when not given).
    #[arg(long, env = "CCCTL_LOG_FILE", value_name = "FILE")]
    pub log_file: Option<PathBuf>,
    /// Time between the two scrapes that measure the log drop rate.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = cc_proto::parse_duration)]
    pub scrape_interval: Duration,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_probe_records_when_and_whether() {
        let p: Probe<u32> = Probe::take(async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            Ok(7)
        })
        .await;
        assert!(p.succeeded());
        assert_eq!(p.value(), Some(&7));
        assert!(p.took >= Duration::from_millis(20));
        assert!(p.age() < Duration::from_secs(5));
        let e: Probe<u32> = Probe::take(async { Err("down".to_owned()) }).await;
        assert!(!e.succeeded());
        assert_eq!(e.error(), Some("down"));
    }
}
