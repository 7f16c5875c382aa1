//! `ccctl demo` in a build without the `demo` feature (the production image): the sandbox
//! (local KMS, Kubernetes API double, CMS encoder) is not in this binary. Any arguments are
//! accepted so the answer is always the same: how to get a ccctl that has it.

use crate::output::{CannotRun, Format, Outcome};

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    pub rest: Vec<String>,
}

pub const NOT_BUILT: &str = "this ccctl was built without the `demo` feature (production \
builds leave the sandbox out); build one that has it with `cargo build --bins` (the feature is \
on by default) or `cargo install --path ccctl --features demo`";

pub fn run(_: DemoArgs, _: Format) -> Result<Outcome, CannotRun> {
    Err(CannotRun::new(NOT_BUILT))
}
