use std::process::ExitCode;

use ccctl::cli::{dispatch, parse};
use ccctl::output;

fn main() -> ExitCode {
    output::exit(dispatch(parse()))
}
