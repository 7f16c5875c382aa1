//! The command line: composes each command's own arguments (every command module defines its
//! clap `Args`) and dispatches. Nothing but `main.rs` imports this module.

use std::ffi::OsStr;
use std::path::Path;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::output::{CannotRun, Format, Outcome};

/// `ccctl --version`: the crate version and the git commit it was built from (build.rs;
/// "unknown" outside a git checkout).
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("CCCTL_GIT_COMMIT"),
    ")"
);

#[derive(Debug, Parser)]
#[command(
    name = "ccctl",
    version = VERSION,
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
    Eif(crate::eif::EifCommand),
    /// What nitro-cli describe-enclaves says is running.
    Enclaves(crate::enclaves::EnclavesArgs),
    /// Attestation documents: verify signature and certificate chain, show what they attest.
    #[command(subcommand)]
    Attest(crate::attest::AttestCommand),
    /// KMS key policies: would each holder release its share to this enclave?
    #[command(subcommand)]
    Policy(crate::policy::PolicyCommand),
    /// Diagnose the chamber: run the checks and report findings with their fixes.
    Doctor(Box<crate::doctor::command::DoctorArgs>),
    /// Guided, resumable PCR0/PCR8 rotation across the key holders, with interlocks.
    #[command(subcommand)]
    Rotate(crate::rotate::RotateCommand),
    /// Live dashboard: enclave state, PCRs against the key policies, egress, logs, metrics and
    /// doctor's findings (locally, for a pod, or a fleet).
    Tui(Box<crate::tui::TuiArgs>),
    /// Run the whole chamber on this machine (local KMS, enclave server, parent proxy) and
    /// diagnose it; --scenario injects a fault.
    Demo(crate::demo::DemoArgs),
    /// The runbook section of a finding code (embedded: works inside a pod), or --list.
    Explain(crate::explain::ExplainArgs),
    /// Print a shell completion script (bash, zsh, fish, powershell, elvish) for ccctl.
    Completion(crate::shell::CompletionArgs),
    /// Man pages for ccctl and every subcommand, from the same definitions as --help.
    Man(crate::shell::ManArgs),
}

/// The process arguments, parsed. The name in usage lines and errors follows argv[0]:
/// `ccctl`, or `kubectl ccctl` when kubectl runs it as the plugin `kubectl-ccctl`.
pub fn parse() -> Cli {
    let argv0 = std::env::args_os().next();
    let matches = Cli::command()
        .bin_name(bin_name(argv0.as_deref()))
        .get_matches();
    Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}

/// The name a user typed, from argv[0]'s file name: a kubectl plugin file `kubectl-a-b_c` is
/// typed `kubectl a b-c` (kubectl's plugin naming).
pub fn bin_name(argv0: Option<&OsStr>) -> String {
    let base = argv0
        .and_then(|a| Path::new(a).file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "ccctl".to_owned());
    match base.strip_prefix("kubectl-") {
        Some(plugin) if !plugin.is_empty() => {
            format!("kubectl {}", plugin.replace('-', " ").replace('_', "-"))
        }
        _ => base,
    }
}

/// Run the command the arguments name.
pub fn dispatch(cli: Cli) -> Result<Outcome, CannotRun> {
    let fmt = cli.output;
    if fmt == Format::Junit && !matches!(cli.command, Command::Doctor(_) | Command::Demo(_)) {
        return Err(CannotRun::new("-o junit is only for doctor and demo"));
    }
    // -o only where it means something: the dashboard draws a terminal.
    if fmt != Format::Human && matches!(cli.command, Command::Tui(_)) {
        return Err(CannotRun::new(
            "-o is not for ccctl tui (it draws a terminal dashboard); for JSON: ccctl doctor -o json",
        ));
    }
    match cli.command {
        Command::Eif(c) => crate::eif::run(c, fmt),
        Command::Enclaves(a) => crate::enclaves::run(a, fmt),
        Command::Attest(c) => crate::attest::run(c, fmt),
        Command::Policy(c) => crate::policy::run(c, fmt),
        Command::Doctor(a) => crate::doctor::command::run(*a, fmt),
        Command::Rotate(c) => crate::rotate::run(c, fmt),
        Command::Tui(a) => crate::tui::run(*a),
        Command::Demo(a) => crate::demo::run(a, fmt),
        Command::Explain(a) => crate::explain::run(a, fmt),
        Command::Completion(a) => crate::shell::completion(a, Cli::command()),
        Command::Man(a) => crate::shell::man(a, Cli::command()),
    }
}

#[cfg(test)]
mod tests {
    use super::bin_name;
    use std::ffi::OsStr;

    #[test]
    fn the_name_follows_argv0() {
        let name = |a: &str| bin_name(Some(OsStr::new(a)));
        assert_eq!(name("/usr/local/bin/ccctl"), "ccctl");
        assert_eq!(name("target/debug/ccctl-next"), "ccctl-next");
        assert_eq!(name("/home/op/.krew/bin/kubectl-ccctl"), "kubectl ccctl");
        assert_eq!(name("kubectl-cc-ctl_x"), "kubectl cc ctl-x");
        assert_eq!(name("kubectl-"), "kubectl-");
        assert_eq!(bin_name(None), "ccctl");
    }
}
