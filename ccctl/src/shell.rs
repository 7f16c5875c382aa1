//! `ccctl completion SHELL` and `ccctl man [--out DIR]`: shell completions (clap_complete) and
//! man pages (clap_mangen) generated from the very clap definitions that parse the arguments.
//! `cli.rs` hands its `clap::Command` in, so this module never imports `cli`.

use std::path::PathBuf;

use clap::Args;
use clap_complete::Shell;

use crate::output::{self, CannotRun, Outcome};

#[derive(Debug, Args)]
pub struct CompletionArgs {
    /// The shell to write a completion script for (to stdout).
    #[arg(value_enum)]
    pub shell: Shell,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write one page per command (ccctl.1, ccctl-doctor.1, ccctl-rotate-pcr0-next.1, ...) into
    /// this folder; without it, print ccctl.1 to stdout.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// The completion script for `cmd`, registered under its name (`ccctl`).
pub fn completion(a: CompletionArgs, mut cmd: clap::Command) -> Result<Outcome, CannotRun> {
    let name = cmd.get_name().to_owned();
    let mut script = Vec::new();
    clap_complete::generate(a.shell, &mut cmd, name, &mut script);
    output::emit(&String::from_utf8_lossy(&script));
    Ok(Outcome::Ok)
}

/// Man pages for `cmd` and every subcommand, or the top page on stdout.
pub fn man(a: ManArgs, cmd: clap::Command) -> Result<Outcome, CannotRun> {
    let Some(dir) = a.out else {
        let mut page = Vec::new();
        clap_mangen::Man::new(cmd)
            .render(&mut page)
            .map_err(|e| CannotRun::new(format!("cannot render the man page: {e}")))?;
        output::emit(&String::from_utf8_lossy(&page));
        return Ok(Outcome::Ok);
    };
    std::fs::create_dir_all(&dir)
        .map_err(|e| CannotRun::new(format!("cannot create '{}': {e}", dir.display())))?;
    let mut written = Vec::new();
    write_pages(cmd, &dir, &mut written)?;
    for path in &written {
        output::emit(&format!("{}\n", path.display()));
    }
    Ok(Outcome::Ok)
}

/// One page per command, named by its path joined with `-` (`ccctl-rotate-pcr0-next.1`).
fn write_pages(
    cmd: clap::Command,
    dir: &std::path::Path,
    written: &mut Vec<PathBuf>,
) -> Result<(), CannotRun> {
    // Subcommands' names and usage lines need the parents' names filled in.
    let mut cmd = cmd;
    cmd.build();
    write_page(&cmd, cmd.get_name().to_owned(), dir, written)
}

fn write_page(
    cmd: &clap::Command,
    name: String,
    dir: &std::path::Path,
    written: &mut Vec<PathBuf>,
) -> Result<(), CannotRun> {
    let path = dir.join(format!("{name}.1"));
    let mut page = Vec::new();
    clap_mangen::Man::new(cmd.clone())
        .render(&mut page)
        .and_then(|()| std::fs::write(&path, &page))
        .map_err(|e| CannotRun::new(format!("cannot write '{}': {e}", path.display())))?;
    written.push(path);
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        write_page(sub, format!("{name}-{}", sub.get_name()), dir, written)?;
    }
    Ok(())
}
