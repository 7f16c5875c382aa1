//! Command-line arguments. Every listen/target address defaults to the production vsock value
//! of the fixed contract (DESIGN.md); tests and the demo pass unix:// and tcp:// addresses.

use std::path::PathBuf;
use std::time::Duration;

use cc_proto::Address;
use clap::{Parser, Subcommand};

use crate::parse_duration;

#[derive(Debug, Parser)]
#[command(
    name = "containment-chamber-enclave-proxy",
    version,
    about = "Parent-side proxy of the containment chamber: enclave logs to stdout, egress \
             (vsock -> TCP), ingress (TCP -> vsock), and a supervised start of all of them \
             with nitro-cli run-enclave.",
    after_help = "Addresses: vsock://CID:PORT (4294967295 = any CID), unix:///path, tcp://HOST:PORT.\n\
                  Exit status: 0 stopped cleanly, 1 failed while running, 2 bad arguments or configuration."
)]
pub struct Cli {
    /// Serve Prometheus metrics (/metrics) on this address, e.g. tcp://0.0.0.0:9102.
    #[arg(long, global = true, value_name = "ADDR")]
    pub metrics: Option<Address>,

    /// Create this file once every listener is bound (scripts wait for it before starting the
    /// enclave, so no early log line or KMS call finds nobody listening).
    #[arg(long, global = true, value_name = "FILE")]
    pub ready_file: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Receive the enclave's log lines (vsock port 7000) and write them to stdout unchanged.
    VsockStdout(VsockStdoutArgs),
    /// Forward connections from the enclave (vsock) to one upstream TCP endpoint.
    Egress(EgressArgs),
    /// Forward TCP connections (API 9000, metrics 3000) into the enclave (vsock).
    Ingress(IngressArgs),
    /// Start vsock-stdout, egress, ingress and nitro-cli run-enclave from one config file.
    Run(RunArgs),
}

#[derive(Debug, clap::Args)]
pub struct VsockStdoutArgs {
    #[arg(long, value_name = "ADDR", default_value = "vsock://4294967295:7000")]
    pub listen: Address,
    /// Lines longer than this many bytes are cut and marked.
    #[arg(long, value_name = "BYTES", default_value_t = cc_proto::ports::MAX_LOG_LINE,
          value_parser = clap::value_parser!(usize))]
    pub max_line: usize,
    /// After SIGTERM, how long open connections may keep sending.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    pub shutdown_grace: Duration,
}

#[derive(Debug, clap::Args)]
pub struct EgressArgs {
    #[arg(long, value_name = "ADDR", default_value = "vsock://4294967295:8000")]
    pub listen: Address,
    /// Upstream endpoint, tcp://HOST:PORT (e.g. tcp://kms.us-east-1.amazonaws.com:443).
    #[arg(long, value_name = "ADDR")]
    pub target: Address,
    /// vsock-proxy allowlist (YAML); the target must be listed.
    #[arg(long, value_name = "FILE")]
    pub allowlist: Option<PathBuf>,
    /// Name used in logs and metrics (default: the target's host).
    #[arg(long)]
    pub name: Option<String>,
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    pub connect_timeout: Duration,
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    pub shutdown_grace: Duration,
    #[command(flatten)]
    pub limits: LimitArgs,
}

#[derive(Debug, clap::Args)]
pub struct IngressArgs {
    #[arg(long, value_name = "ADDR", default_value = "tcp://0.0.0.0:9000")]
    pub listen: Address,
    /// The enclave's address (CID as given to run-enclave --enclave-cid).
    #[arg(long, value_name = "ADDR", default_value = "vsock://16:9000")]
    pub target: Address,
    #[arg(long)]
    pub name: Option<String>,
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    pub connect_timeout: Duration,
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    pub shutdown_grace: Duration,
    #[command(flatten)]
    pub limits: LimitArgs,
}

/// Connection limits of a forwarder (README, "Reliability").
#[derive(Debug, clap::Args)]
pub struct LimitArgs {
    /// Connections open at once; more are closed on accept (counted in
    /// containment_proxy_connections_closed_total{reason="limit"}).
    #[arg(long, env = "CC_PROXY_MAX_CONNECTIONS", value_name = "N",
          default_value_t = crate::forward::DEFAULT_MAX_CONNECTIONS, value_parser = parse_cap)]
    pub max_connections: usize,
    /// A connection that moves no byte in either direction for this long is closed.
    #[arg(long, env = "CC_PROXY_IDLE_TIMEOUT", value_name = "DURATION", default_value = "300s",
          value_parser = parse_duration)]
    pub idle_timeout: Duration,
    /// A request path (e.g. /upcheck) whose GET may still pass at the cap, through one of the
    /// --probe-slots reserved connections. Repeatable.
    #[arg(long = "probe-path", value_name = "PATH")]
    pub probe_paths: Vec<String>,
    /// Connections kept beyond the cap for --probe-path requests.
    #[arg(long, env = "CC_PROXY_PROBE_SLOTS", value_name = "N",
          default_value_t = crate::forward::DEFAULT_PROBE_SLOTS)]
    pub probe_slots: usize,
}

fn parse_cap(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("the cap must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("'{s}' is not a number of connections")),
    }
}

impl LimitArgs {
    pub fn limits(&self) -> crate::forward::Limits {
        crate::forward::Limits {
            max_connections: self.max_connections,
            idle_timeout: self.idle_timeout,
            probe_paths: self.probe_paths.clone(),
            probe_slots: self.probe_slots,
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The run configuration (TOML); see parent-proxy/examples/run.toml.
    #[arg(long, short, value_name = "FILE")]
    pub config: PathBuf,
}
