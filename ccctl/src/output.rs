//! Output in one place: the formats, the `Render` trait every report implements (human / JSON /
//! JUnit are renderings of the same data), one `emit` that writes to stdout and treats a closed
//! pipe as a normal end, and the one exit path (DESIGN.md: 0 ok, 1 finding or mismatch, 2 the
//! tool could not run).

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

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

impl Outcome {
    /// `Ok` when `clean`, else `Finding`.
    pub fn clean_if(clean: bool) -> Outcome {
        if clean { Outcome::Ok } else { Outcome::Finding }
    }
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

/// Colours on or off (decided once from `NO_COLOR` and whether stdout is a terminal).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Style {
    pub color: bool,
}

impl Style {
    /// Colour when stdout is a terminal and `NO_COLOR` is unset or empty.
    pub fn for_stdout() -> Style {
        Style {
            color: std::io::stdout().is_terminal()
                && std::env::var("NO_COLOR").map_or(true, |v| v.is_empty()),
        }
    }

    pub fn paint(&self, code: &str, s: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_owned()
        }
    }
}

/// A report every command prints: the human text and the JSON are two renderings of the
/// same value; JUnit where it means something (doctor, demo).
pub trait Render: serde::Serialize {
    fn human(&self, style: Style) -> String;
    /// JUnit XML, for the commands that have checks.
    fn junit(&self) -> Option<String> {
        None
    }
}

/// Print `r` in `fmt` through [`emit`].
pub fn render<R: Render + ?Sized>(r: &R, fmt: Format) -> Result<(), CannotRun> {
    match fmt {
        Format::Human => emit(&r.human(Style::for_stdout())),
        Format::Json => emit(&(json(r) + "\n")),
        Format::Junit => match r.junit() {
            Some(x) => emit(&x),
            None => return Err(CannotRun::new("-o junit is only for doctor and demo")),
        },
    }
    Ok(())
}

static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);

/// Write `text` to stdout. A reader that went away (`| head -c 1`) is a normal end: the rest
/// of the output is dropped and the command still exits with its own status, never a panic.
pub fn emit(text: &str) {
    if STDOUT_CLOSED.load(Ordering::Relaxed) {
        return;
    }
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        // Broken pipe, or any other write failure: stop writing, keep the status.
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            let _ = writeln!(std::io::stderr(), "ccctl: cannot write to stdout: {e}");
        }
        STDOUT_CLOSED.store(true, Ordering::Relaxed);
    }
}

/// Did a write to stdout fail (the reader went away)?
pub fn stdout_closed() -> bool {
    STDOUT_CLOSED.load(Ordering::Relaxed)
}

/// A line to stderr that never panics (a closed stderr is ignored).
pub fn note(line: &str) {
    // What is noted often quotes the cluster, KMS or a file (untrusted text).
    let _ = writeln!(std::io::stderr(), "{}", clean(line));
}

/// The one exit path: the outcome's status, or 2 with the reason on stderr.
pub fn exit(result: Result<Outcome, CannotRun>) -> ExitCode {
    match result {
        Ok(Outcome::Ok) => ExitCode::SUCCESS,
        Ok(Outcome::Finding) => ExitCode::from(1),
        Err(e) => {
            note(&format!("error: {}", e.0));
            ExitCode::from(2)
        }
    }
}

/// Pretty JSON with control and bidi characters written as `\uXXXX` escapes (still valid,
/// and parsing gives the exact strings back): `cc_proto::text::to_json_pretty`.
pub fn json<T: serde::Serialize + ?Sized>(v: &T) -> String {
    cc_proto::text::to_json_pretty(v)
        .unwrap_or_else(|e| serde_json::json!({ "error": e.to_string() }).to_string())
}

/// Make text from the enclave, the cluster, KMS or a file safe for a terminal (the one
/// sanitiser: `cc_proto::text::sanitize`).
pub fn clean(s: &str) -> String {
    cc_proto::text::sanitize(s)
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

/// `1 pod`, `2 pods`.
pub fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Seconds as `45s`, `2m25s`, `3h07m`, `2d04h`.
pub fn duration_short(s: u64) -> String {
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        3600..86400 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{:02}h", s / 86400, s % 86400 / 3600),
    }
}

/// `s` as one shell word: as is when it is plain, else single-quoted (so a printed command
/// can be pasted whatever the path holds).
pub fn shell_word(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+=:,@%".contains(c))
    {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod words {
    #[test]
    fn plurals_and_durations() {
        assert_eq!(super::plural(1, "pod", "pods"), "1 pod");
        assert_eq!(super::plural(0, "pod", "pods"), "0 pods");
        assert_eq!(super::duration_short(59), "59s");
        assert_eq!(super::duration_short(145), "2m25s");
        assert_eq!(super::duration_short(3 * 3600 + 7 * 60 + 5), "3h07m");
        assert_eq!(super::duration_short(2 * 86400 + 4 * 3600), "2d04h");
        assert_eq!(super::shell_word("/etc/ccctl.toml"), "/etc/ccctl.toml");
        assert_eq!(super::shell_word("my dir/it's"), r"'my dir/it'\''s'");
    }
}
