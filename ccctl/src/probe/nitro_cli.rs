//! nitro-cli: `describe-enclaves` run here (sync for `ccctl enclaves`, async with kill on drop
//! for doctor and the dashboard), parsed leniently, with nitro-cli's own failures parsed too
//! (`[ Exx ]` code, meaning, detail, exit status).

use std::path::Path;
use std::time::Duration;

use cc_proto::nitro_cli::{CliError, DescribedEnclave, parse_describe_enclaves};
use serde::Serialize;

use super::child::Limits;
use crate::output::CannotRun;

/// What one `describe-enclaves` run said: the enclaves, or nitro-cli's failure.
pub type Described = Result<Vec<DescribedEnclave>, NitroCliFailure>;

#[derive(Debug, Clone, Serialize)]
pub struct NitroCliFailure {
    pub exit_status: Option<i32>,
    pub error: Option<CliError>,
    pub stderr: String,
}

/// Why `describe-enclaves` gave no answer at all: it could not start, or it exceeded a limit
/// (deadline or output cap; see [`super::child`]).
#[derive(Debug)]
pub struct RunError {
    pub nitro_cli: std::path::PathBuf,
    pub error: super::child::ChildError,
}

impl RunError {
    /// It could not be started (missing binary, no permission): not a limit.
    pub fn not_started(&self) -> bool {
        matches!(self.error, super::child::ChildError::Start(_))
    }
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.error {
            super::child::ChildError::Start(e) => {
                write!(f, "cannot run '{}': {e}", self.nitro_cli.display())
            }
            e => write!(f, "'{} describe-enclaves': {e}", self.nitro_cli.display()),
        }
    }
}

/// Run `nitro-cli describe-enclaves` (the binary at `nitro_cli`) within `limits`, for
/// `ccctl enclaves` (no runtime of its own).
pub fn describe(nitro_cli: &Path, limits: Limits) -> Result<Described, CannotRun> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CannotRun::new(format!("cannot start the async runtime: {e}")))?;
    match rt.block_on(describe_async(nitro_cli, limits)) {
        Ok(d) => d,
        Err(e) => Err(CannotRun::new(e.to_string())),
    }
}

/// Same, async, within `limits`; the child (and its process group) is killed over a limit or
/// when the future is dropped (a doctor deadline), so a hung nitro-cli never outlives the
/// caller. The outer error is "no answer" (not started, deadline, output cap); the inner one
/// is nitro-cli's own output that could not be parsed.
pub async fn describe_async(
    nitro_cli: &Path,
    limits: Limits,
) -> Result<Result<Described, CannotRun>, RunError> {
    let mut cmd = tokio::process::Command::new(nitro_cli);
    cmd.arg("describe-enclaves");
    let out = super::child::run(cmd, limits)
        .await
        .map_err(|error| RunError {
            nitro_cli: nitro_cli.to_owned(),
            error,
        })?;
    Ok(interpret(out))
}

fn interpret(out: super::child::Output) -> Result<Described, CannotRun> {
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
        let limits = Limits {
            deadline: timeout,
            ..Limits::default()
        };
        match describe_async(nitro_cli, limits).await {
            Err(e) => Err(e.to_string()),
            Ok(Err(e)) => Err(e.0),
            Ok(Ok(Err(f))) => Err(failure_human(&f)),
            Ok(Ok(Ok(list))) => Ok(list),
        }
    })
    .await
}

/// `nitro-cli describe-enclaves` inside a pod through `exec`, within `timeout`: the list, or
/// why there is none in words (did not answer, not in the image, exited non-zero with its
/// stderr, unparsable). Rotate's watch of running PCRs and the dashboard's enclave panel for
/// a pod read it.
pub async fn describe_in_pod(
    exec: &dyn super::exec::PodExec,
    namespace: &str,
    pod: &str,
    timeout: Duration,
) -> Result<Vec<DescribedEnclave>, String> {
    let cmd = vec!["nitro-cli".into(), "describe-enclaves".into()];
    match tokio::time::timeout(timeout, exec.exec(namespace, pod, cmd)).await {
        Err(_) => Err(format!("nitro-cli did not answer within {timeout:?}")),
        Ok(Err(e)) => Err(crate::output::clean(&e)),
        Ok(Ok(o)) if o.status.is_none() => {
            Err("nitro-cli is not in the pod's image (it could not be started)".into())
        }
        Ok(Ok(o)) if o.status != Some(0) => {
            let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
            let f = NitroCliFailure {
                exit_status: o.status,
                error: CliError::parse(&stderr),
                stderr,
            };
            // One line: it is shown beside the pod's name.
            let raw = failure_raw(&f);
            let text: Vec<&str> = raw
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect();
            Err(crate::output::clean(&text.join("; ")))
        }
        Ok(Ok(o)) => parse_describe_enclaves(&String::from_utf8_lossy(&o.stdout)),
    }
}
