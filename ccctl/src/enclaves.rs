//! `ccctl enclaves`: what `nitro-cli describe-enclaves` says is running, parsed leniently, with
//! nitro-cli's own failures parsed too (`[ Exx ]` code, meaning, detail, exit status). Debug
//! mode is called out: its attested PCRs are all zero whatever `Measurements` shows.

use std::path::Path;
use std::process::Command;

use cc_proto::nitro_cli::{CliError, DescribedEnclave, parse_describe_enclaves};
use serde::Serialize;

use crate::output::CannotRun;

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub enclaves: Vec<DescribedEnclave>,
    /// Human sentences about what needs attention (debug mode, not running, none).
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct NitroCliFailure {
    pub exit_status: Option<i32>,
    pub error: Option<CliError>,
    pub stderr: String,
}

/// Run `nitro-cli describe-enclaves` (the binary at `nitro_cli`).
pub fn describe(
    nitro_cli: &Path,
) -> Result<Result<Vec<DescribedEnclave>, NitroCliFailure>, CannotRun> {
    let out = Command::new(nitro_cli)
        .arg("describe-enclaves")
        .output()
        .map_err(|e| CannotRun::new(format!("cannot run '{}': {e}", nitro_cli.display())))?;
    interpret(out)
}

/// Same, async; the child is killed if the future is dropped (a doctor deadline), so a hung
/// nitro-cli never outlives the caller.
pub async fn describe_async(
    nitro_cli: &Path,
) -> Result<Result<Vec<DescribedEnclave>, NitroCliFailure>, CannotRun> {
    let out = tokio::process::Command::new(nitro_cli)
        .arg("describe-enclaves")
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| CannotRun::new(format!("cannot run '{}': {e}", nitro_cli.display())))?;
    interpret(out)
}

fn interpret(
    out: std::process::Output,
) -> Result<Result<Vec<DescribedEnclave>, NitroCliFailure>, CannotRun> {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() {
        return Ok(Err(NitroCliFailure {
            exit_status: out.status.code(),
            error: CliError::parse(&stderr),
            stderr,
        }));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    parse_describe_enclaves(&stdout)
        .map(Ok)
        .map_err(CannotRun::new)
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

pub fn failure_human(f: &NitroCliFailure) -> String {
    crate::output::clean(&failure_raw(f))
}

fn failure_raw(f: &NitroCliFailure) -> String {
    match &f.error {
        Some(e) => format!(
            "nitro-cli describe-enclaves failed with {} (exit {}): {}\n  {}\n  meaning: {}",
            e.code,
            f.exit_status.map(|c| c.to_string()).unwrap_or("?".into()),
            e.message,
            e.detail.as_deref().unwrap_or(""),
            e.meaning
        ),
        None => format!(
            "nitro-cli describe-enclaves failed (exit {}): {}",
            f.exit_status.map(|c| c.to_string()).unwrap_or("?".into()),
            f.stderr.trim()
        ),
    }
}
