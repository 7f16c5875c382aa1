use std::process::ExitCode;

use ccctl::cli::{Cli, dispatch};
use ccctl::output;
use clap::Parser;

fn main() -> ExitCode {
    output::exit(dispatch(Cli::parse()))
}
