//! Arguments (clap derive). Every command takes `-o human|json`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::output::Format;

#[derive(Debug, Parser)]
#[command(
    name = "ccctl",
    version,
    about = "Diagnose, measure and compare the containment chamber (Nitro Enclave signer).",
    after_help = "Exit status: 0 ok, 1 a finding or mismatch, 2 ccctl could not run."
)]
pub struct Cli {
    /// Output format.
    #[arg(short = 'o', long, global = true, value_enum, default_value_t = Format::Human)]
    pub output: Format,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Enclave Image Files: measurements (PCR0/1/2/8), CRC and signature, without nitro-cli.
    #[command(subcommand)]
    Eif(EifCommand),
    /// What nitro-cli describe-enclaves says is running.
    Enclaves(EnclavesArgs),
    /// Attestation documents: verify signature and certificate chain, show what they attest.
    #[command(subcommand)]
    Attest(AttestCommand),
    /// KMS key policies: would each holder release its share to this enclave?
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Diagnose the chamber: run the checks and report findings with their fixes.
    Doctor(Box<DoctorArgs>),
    /// Guided, resumable PCR0/PCR8 rotation across the key holders, with interlocks.
    #[command(subcommand)]
    Rotate(crate::rotate::RotateCommand),
    /// Live dashboard: enclave state, PCRs against the key policies, egress, logs, metrics and
    /// doctor's findings (locally, for a pod, or a fleet).
    Tui(Box<crate::tui::TuiArgs>),
    /// Run the whole chamber on this machine (local KMS, enclave server, parent proxy) and
    /// diagnose it; --scenario injects a fault.
    Demo(crate::demo::DemoArgs),
}

#[derive(Debug, clap::Args)]
pub struct DoctorArgs {
    /// Probe this machine directly (inside the pod, or any host running the chamber).
    #[arg(long, conflicts_with = "pod")]
    pub local: bool,
    /// Check this pod through the Kubernetes API (pod spec, node, device plugin, events).
    #[arg(long, value_name = "NAME")]
    pub pod: Option<String>,
    /// Check every pod matching this label selector (fleet mode), concurrently.
    #[arg(short = 'l', long = "selector", value_name = "SELECTOR", conflicts_with_all = ["pod", "local"])]
    pub selector: Option<String>,
    /// Namespace of the pod (default: the context's, else `default`).
    #[arg(short = 'n', long, value_name = "NAMESPACE")]
    pub namespace: Option<String>,
    /// How to run the probes inside the pod: through the Kubernetes API (kube), or on this
    /// machine (local: for `ccctl demo`, where the pod is this machine), or not at all (none).
    #[arg(long, value_enum, default_value_t = ExecMode::Kube)]
    pub exec: ExecMode,
    /// kubeconfig context to use.
    #[arg(long, value_name = "CONTEXT")]
    pub context: Option<String>,
    /// List the checks and exit.
    #[arg(long)]
    pub list_checks: bool,
    /// Run only these checks or families (comma-separated ids like enclave.status, or families like kms).
    #[arg(long, value_delimiter = ',', value_name = "LIST")]
    pub checks: Vec<String>,
    /// Exit 1 when a finding at or above this severity exists.
    #[arg(long, value_enum, default_value_t = FailOn::Error)]
    pub fail_on: FailOn,
    /// Deadline for the whole run.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = crate::parse_duration)]
    pub timeout: std::time::Duration,
    /// Where the local probes look.
    #[command(flatten)]
    pub probes: Probes,
}

/// Where the local probes (`doctor --local`, `tui`) find the chamber's parts. Each flag also
/// reads a `CCCTL_*` variable (the Helm chart and `ccctl demo`'s env.sh set them).
#[derive(Debug, Clone, clap::Args)]
pub struct Probes {
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
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = crate::parse_duration)]
    pub scrape_interval: std::time::Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExecMode {
    Kube,
    Local,
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FailOn {
    Info,
    Warn,
    Error,
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Evaluate kms:Decrypt with attestation for every holder's key policy, with findings.
    Check(PolicyCheckArgs),
}

#[derive(Debug, clap::Args)]
pub struct PolicyCheckArgs {
    /// Holders, principal and threshold ([[holder]] name, key_arn, region, profile?, endpoint?).
    #[arg(long, value_name = "FILE", env = "CCCTL_CONFIG")]
    pub config: Option<PathBuf>,
    /// A holder's policy from a file, offline (repeatable; replaces that holder's live policy).
    #[arg(long = "policy-file", value_name = "NAME=PATH")]
    pub policy_files: Vec<String>,
    /// PCR0 to check (96 hex digits).
    #[arg(long, value_name = "HEX")]
    pub pcr0: Option<String>,
    /// PCR8 to check (96 hex digits).
    #[arg(long, value_name = "HEX")]
    pub pcr8: Option<String>,
    /// Take PCR0/1/2/8 from this EIF.
    #[arg(long, value_name = "FILE")]
    pub eif: Option<PathBuf>,
    /// Take the PCRs from this attestation document (not verified here: see `ccctl attest verify`).
    #[arg(long, value_name = "FILE")]
    pub attestation: Option<PathBuf>,
    /// The enclave's role (default: the config's `principal`).
    #[arg(long, value_name = "ARN")]
    pub principal: Option<String>,
    /// Shares needed (default: the config's `threshold`, else 2).
    #[arg(long, value_name = "M")]
    pub threshold: Option<u32>,
    /// Deadline for each holder's KMS calls.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = crate::parse_duration)]
    pub timeout: std::time::Duration,
}

#[derive(Debug, Subcommand)]
pub enum AttestCommand {
    /// Verify a document (raw CBOR, hex or base64; `-` reads stdin).
    Verify {
        #[arg(value_name = "FILE|-")]
        file: PathBuf,
        #[command(flatten)]
        check: AttestCheck,
    },
    /// Fetch a fresh document from the enclave server's /attestation with a random nonce,
    /// check the nonce came back, and verify it.
    Fetch {
        /// http://HOST:PORT, tcp://HOST:PORT or unix:///path of the enclave API.
        #[arg(long, value_name = "URL")]
        url: String,
        /// Also write the document here.
        #[arg(long, value_name = "FILE")]
        save: Option<PathBuf>,
        #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = crate::parse_duration)]
        timeout: std::time::Duration,
        #[command(flatten)]
        check: AttestCheck,
    },
}

#[derive(Debug, clap::Args)]
pub struct AttestCheck {
    /// Trust this root (PEM) instead of the pinned AWS Nitro root G1, e.g. the software-mode
    /// development root.
    #[arg(long, value_name = "PEM")]
    pub root: Option<PathBuf>,
    /// Check validity at `now`, at `doc` (the document's own timestamp) or at an RFC 3339 time.
    #[arg(long, value_name = "WHEN", default_value = "now")]
    pub at: crate::attest::At,
    /// Expected PCR value (repeatable); a mismatch exits 1.
    #[arg(long = "expect-pcr", value_name = "N=HEX")]
    pub expect_pcr: Vec<crate::attest::ExpectPcr>,
    /// Show all PCRs, not only the non-zero ones.
    #[arg(long)]
    pub all_pcrs: bool,
}

#[derive(Debug, Subcommand)]
pub enum EifCommand {
    /// Describe one EIF with nitro-cli describe-eif's JSON keys.
    Describe {
        #[arg(long = "eif-path", value_name = "FILE")]
        eif_path: PathBuf,
    },
    /// Measure several EIFs.
    Measure {
        #[arg(value_name = "FILE", required = true)]
        files: Vec<PathBuf>,
    },
}

#[derive(Debug, clap::Args)]
pub struct EnclavesArgs {
    /// nitro-cli to run.
    #[arg(long, value_name = "PATH", default_value = "nitro-cli")]
    pub nitro_cli: PathBuf,
}
