//! Rendering and exit codes shared by every command (DESIGN.md: 0 ok, 1 finding or mismatch,
//! 2 the tool could not run).

use std::process::ExitCode;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum Format {
    #[default]
    Human,
    Json,
    /// JUnit XML (doctor and demo only).
    Junit,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Human => "human",
            Format::Json => "json",
            Format::Junit => "junit",
        }
    }
}

/// How a command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// A finding or mismatch (exit 1).
    Finding,
}

/// The tool could not run (exit 2): bad input, unreadable file, ...
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CannotRun(pub String);

impl CannotRun {
    pub fn new(m: impl Into<String>) -> Self {
        CannotRun(m.into())
    }
}

pub fn exit(result: Result<Outcome, CannotRun>) -> ExitCode {
    match result {
        Ok(Outcome::Ok) => ExitCode::SUCCESS,
        Ok(Outcome::Finding) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {}", e.0);
            ExitCode::from(2)
        }
    }
}

pub fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string_pretty(v).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}

/// Strip terminal control characters (escape sequences, carriage returns, backspaces) from
/// text that came from the enclave, the cluster, KMS or a file before it reaches a terminal.
pub fn clean(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control() || *c == '\n' || *c == '\t')
        .collect()
}

/// The async runtime every network-facing command uses (two workers: the machines this runs
/// on are small, and the work is waiting on I/O).
pub fn runtime() -> Result<tokio::runtime::Runtime, CannotRun> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| CannotRun::new(format!("cannot start the async runtime: {e}")))
}
