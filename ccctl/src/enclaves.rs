//! `ccctl enclaves`: what `nitro-cli describe-enclaves` says is running, parsed leniently, with
//! nitro-cli's own failures parsed too (`[ Exx ]` code, meaning, detail, exit status). Debug
//! mode is called out: its attested PCRs are all zero whatever `Measurements` shows.

use std::path::PathBuf;

use cc_proto::nitro_cli::DescribedEnclave;
use serde::Serialize;

use crate::output::{self, CannotRun, Format, Outcome, Render, Style};
use crate::probe::nitro_cli;

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
}

pub fn run(a: EnclavesArgs, fmt: Format) -> Result<Outcome, CannotRun> {
    match nitro_cli::describe(&a.nitro_cli)? {
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
                e.enclave_id, e.state
            ));
        }
        if e.debug_mode() {
            notes.push(format!(
                "enclave {} runs in DEBUG_MODE: its attested PCRs are all zero although \
                 describe-enclaves shows the image's values; no key policy should release a \
                 share to it",
                e.enclave_id
            ));
        }
    }
    Report { enclaves, notes }
}

fn short(h: Option<&String>) -> String {
    match h {
        Some(v) if v.len() > 16 => format!("{}…", &v[..16]),
        Some(v) => v.clone(),
        None => "-".into(),
    }
}

impl Render for Report {
    fn human(&self, _: Style) -> String {
        human(self)
    }
}

pub fn human(r: &Report) -> String {
    crate::output::clean(&human_raw(r))
}

fn human_raw(r: &Report) -> String {
    let mut s = format!(
        "{:<40} {:<22} {:>4} {:<12} {:<10} {:>4} {:>7}  {:<17} {:<17}\n",
        "ENCLAVE ID", "NAME", "CID", "STATE", "FLAGS", "CPUS", "MEM MiB", "PCR0", "PCR8"
    );
    for e in &r.enclaves {
        let m = e.measurements.clone().unwrap_or_default();
        s += &format!(
            "{:<40} {:<22} {:>4} {:<12} {:<10} {:>4} {:>7}  {:<17} {:<17}\n",
            e.enclave_id,
            e.enclave_name.as_deref().unwrap_or("-"),
            e.enclave_cid,
            e.state,
            e.flags,
            e.number_of_cpus
                .map(|n| n.to_string())
                .unwrap_or("-".into()),
            e.memory_mib.map(|n| n.to_string()).unwrap_or("-".into()),
            short(m.pcr0.as_ref()),
            short(m.pcr8.as_ref()),
        );
    }
    for n in &r.notes {
        s += &format!("! {n}\n");
    }
    s
}
