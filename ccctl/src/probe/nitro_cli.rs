//! nitro-cli: `describe-enclaves` run here (sync for `ccctl enclaves`, async with kill on drop
//! for doctor and the dashboard), parsed leniently, with nitro-cli's own failures parsed too
//! (`[ Exx ]` code, meaning, detail, exit status).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use cc_proto::nitro_cli::{CliError, DescribedEnclave, parse_describe_enclaves};
use serde::Serialize;

use crate::output::CannotRun;

/// What one `describe-enclaves` run said: the enclaves, or nitro-cli's failure.
pub type Described = Result<Vec<DescribedEnclave>, NitroCliFailure>;

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

/// `describe-enclaves` with a deadline, as one probe: the list, or why there is none (could
/// not run, failed, timed out), in words.
pub async fn probe(nitro_cli: &Path, timeout: Duration) -> super::Probe<Vec<DescribedEnclave>> {
    super::Probe::take(async {
        match tokio::time::timeout(timeout, describe_async(nitro_cli)).await {
            Err(_) => Err(format!(
                "{} describe-enclaves did not answer within {timeout:?}",
                nitro_cli.display()
            )),
            Ok(Err(e)) => Err(e.0),
            Ok(Ok(Err(f))) => Err(failure_human(&f)),
            Ok(Ok(Ok(list))) => Ok(list),
        }
    })
    .await
}
