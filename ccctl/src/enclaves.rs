//! `ccctl enclaves`: what `nitro-cli describe-enclaves` says is running, parsed leniently, with
//! nitro-cli's own failures parsed too (`[ Exx ]` code, meaning, detail, exit status). Debug
//! mode is called out: its attested PCRs are all zero whatever `Measurements` shows.

use std::path::PathBuf;
use std::time::Duration;

use cc_proto::nitro_cli::DescribedEnclave;
use serde::Serialize;

use crate::output::{self, CannotRun, Format, Outcome, Render, Style};
use crate::probe::{child, nitro_cli};
use cc_proto::text::sanitize_line;

#[derive(Debug, clap::Args)]
pub struct EnclavesArgs {
    /// nitro-cli to run.
    #[arg(
        long,
        env = "CCCTL_NITRO_CLI",
        value_name = "PATH",
        default_value = "nitro-cli"
    )]
    pub nitro_cli: PathBuf,
    /// How long nitro-cli may run before it is stopped (exit 2).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = cc_proto::parse_duration)]
    pub timeout: Duration,
    /// How much nitro-cli may print (stdout and stderr each) before it is stopped (exit 2).
    #[arg(long, value_name = "SIZE", default_value = "8MiB", value_parser = child::parse_size)]
    pub max_output: usize,
}

pub fn run(a: EnclavesArgs, fmt: Format) -> Result<Outcome, CannotRun> {
    let limits = child::Limits {
        deadline: a.timeout,
        max_output: a.max_output,
    };
    match nitro_cli::describe(&a.nitro_cli, limits)? {
        Ok(list) => {
            let r = report(list);
            output::render(&r, fmt)?;
            Ok(Outcome::clean_if(r.notes.is_empty()))
        }
        Err(f) => {
            if fmt == Format::Json {
                output::emit(&(output::json(&f) + "\n"));
            }
            Err(CannotRun::new(failure_human(&f)))
        }
    }
}

pub use crate::probe::nitro_cli::failure_human;

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub enclaves: Vec<DescribedEnclave>,
    /// Human sentences about what needs attention (debug mode, not running, none).
    pub notes: Vec<String>,
}

pub fn report(enclaves: Vec<DescribedEnclave>) -> Report {
    let mut notes = Vec::new();
    if enclaves.is_empty() {
        notes.push("no enclave is running".to_owned());
    }
    for e in &enclaves {
        if !e.running() {
            notes.push(format!(
                "enclave {} is {}, not RUNNING",
                field(&e.enclave_id),
                field(&e.state)
            ));
        }
        if e.debug_mode() {
            notes.push(format!(
                "enclave {} runs in DEBUG_MODE: its attested PCRs are all zero although \
                 describe-enclaves shows the image's values; no key policy should release a \
                 share to it",
                field(&e.enclave_id)
            ));
        }
    }
    Report { enclaves, notes }
}

/// One untrusted value on one line: a line feed cannot start a row of its own, an escape
/// sequence or a bidi control cannot recolour or reorder the table.
fn field(v: &str) -> String {
    sanitize_line(v.as_bytes())
}

/// The first 16 characters (never cut inside one) of a sanitised value.
fn short(h: Option<&String>) -> String {
    match h.map(|v| field(v)) {
        Some(v) if v.chars().count() > 16 => format!("{}…", v.chars().take(16).collect::<String>()),
        Some(v) => v,
        None => "-".into(),
    }
}

impl Render for Report {
    fn human(&self, _: Style) -> String {
        human(self)
    }
}

/// The table: every field sanitised on its own before the layout (sanitising the finished
/// table would keep a line feed inside a name as a row break).
pub fn human(r: &Report) -> String {
    let mut s = format!(
        "{:<40} {:<22} {:>4} {:<12} {:<10} {:>4} {:>7}  {:<17} {:<17}\n",
        "ENCLAVE ID", "NAME", "CID", "STATE", "FLAGS", "CPUS", "MEM MiB", "PCR0", "PCR8"
    );
    for e in &r.enclaves {
        let m = e.measurements.clone().unwrap_or_default();
        s += &format!(
            "{:<40} {:<22} {:>4} {:<12} {:<10} {:>4} {:>7}  {:<17} {:<17}\n",
            field(&e.enclave_id),
            field(e.enclave_name.as_deref().unwrap_or("-")),
            e.enclave_cid,
            field(&e.state),
            field(&e.flags),
            e.number_of_cpus
                .map(|n| n.to_string())
                .unwrap_or("-".into()),
            e.memory_mib.map(|n| n.to_string()).unwrap_or("-".into()),
            short(m.pcr0.as_ref()),
            short(m.pcr8.as_ref()),
        );
    }
    for n in &r.notes {
        s += &format!("! {}\n", field(n));
    }
    s
}
