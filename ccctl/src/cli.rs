//! The command line: composes each command's own arguments (every command module defines its
//! clap `Args`) and dispatches. Nothing but `main.rs` imports this module.

use clap::{CommandFactory, Parser, Subcommand};

use crate::output::{CannotRun, Format, Outcome};

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
    /// Print a shell completion script (bash, zsh, fish, powershell, elvish) for ccctl.
    Completion(crate::shell::CompletionArgs),
    /// Man pages for ccctl and every subcommand, from the same definitions as --help.
    Man(crate::shell::ManArgs),
}

/// Run the command the arguments name.
pub fn dispatch(cli: Cli) -> Result<Outcome, CannotRun> {
    let fmt = cli.output;
    if fmt == Format::Junit && !matches!(cli.command, Command::Doctor(_) | Command::Demo(_)) {
        return Err(CannotRun::new("-o junit is only for doctor and demo"));
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
        Command::Completion(a) => crate::shell::completion(a, Cli::command()),
        Command::Man(a) => crate::shell::man(a, Cli::command()),
    }
}
