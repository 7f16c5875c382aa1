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
