//! Child processes whose output ccctl reads (nitro-cli, the local stand-in for pod exec): every
//! one runs with a deadline and an output cap, so a child that prints forever cannot take
//! ccctl's memory and one that hangs cannot hang ccctl. Over either limit the child's whole
//! process group is killed and the error names the limit that was exceeded.
#![allow(unsafe_code)]

use std::fmt;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};

/// Default deadline for a child ccctl reads (`--timeout` where a command has one).
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(10);
/// Default cap on what a child may print, stdout and stderr each (`--max-output`).
pub const DEFAULT_MAX_OUTPUT: usize = 8 << 20;

/// How long a child may run and how much it may print.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub deadline: Duration,
    /// Bytes, for stdout and for stderr each.
    pub max_output: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            deadline: DEFAULT_DEADLINE,
            max_output: DEFAULT_MAX_OUTPUT,
        }
    }
}

/// Which limit a child exceeded, or why it could not run.
#[derive(Debug)]
pub enum ChildError {
    /// It could not be started (`NotFound` when the program does not exist).
    Start(std::io::Error),
    /// It was still running at the deadline.
    Deadline(Duration),
    /// It printed more than the cap on `stream` (`stdout` or `stderr`).
    Output { stream: &'static str, cap: usize },
    /// Reading its output or waiting for it failed.
    Io(std::io::Error),
}

impl fmt::Display for ChildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChildError::Start(e) => write!(f, "cannot start it: {e}"),
            ChildError::Deadline(d) => write!(
                f,
                "it did not finish within the deadline of {} (stopped; raise it with --timeout)",
                human_duration(*d)
            ),
            ChildError::Output { stream, cap } => write!(
                f,
                "its {stream} exceeded the output cap of {} (stopped; raise it with --max-output)",
                human_bytes(*cap)
            ),
            ChildError::Io(e) => write!(f, "reading its output failed: {e}"),
        }
    }
}

fn human_duration(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// `8 MiB`, `64 KiB` or `100 bytes`.
pub fn human_bytes(n: usize) -> String {
    if n >= 1 << 20 && n.is_multiple_of(1 << 20) {
        format!("{} MiB", n >> 20)
    } else if n >= 1 << 10 && n.is_multiple_of(1 << 10) {
        format!("{} KiB", n >> 10)
    } else {
        format!("{n} bytes")
    }
}

/// `--max-output`: bytes, optionally with `KiB`, `MiB` or `GiB` (`K`, `M`, `G` too).
pub fn parse_size(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: usize = num
        .parse()
        .map_err(|_| format!("'{s}' is not a size (e.g. 65536, 64KiB, 8MiB)"))?;
    let mult: usize = match unit.trim() {
        "" | "B" => 1,
        "K" | "KiB" | "k" => 1 << 10,
        "M" | "MiB" => 1 << 20,
        "G" | "GiB" => 1 << 30,
        _ => return Err(format!("'{s}': unknown unit (use KiB, MiB or GiB)")),
    };
    match n.checked_mul(mult) {
        Some(0) => Err(format!("'{s}': the size must be above 0")),
        Some(v) => Ok(v),
        None => Err(format!("'{s}' is too large")),
    }
}

/// What a child printed and how it ended.
#[derive(Debug)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// Run `cmd` (stdin closed, stdout and stderr read) within `limits`.
pub async fn run(mut cmd: tokio::process::Command, limits: Limits) -> Result<Output, ChildError> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        // Its own process group, so a shell script's children are stopped with it.
        .process_group(0);
    let mut child = cmd.spawn().map_err(ChildError::Start)?;
    let pid = child.id();
    let (out, err) = (child.stdout.take(), child.stderr.take());
    let work = async {
        let (o, e) = tokio::try_join!(
            read_capped(out, limits.max_output, "stdout"),
            read_capped(err, limits.max_output, "stderr"),
        )?;
        let status = child.wait().await.map_err(ChildError::Io)?;
        Ok::<_, ChildError>(Output {
            status,
            stdout: o,
            stderr: e,
        })
    };
    let r = match tokio::time::timeout(limits.deadline, work).await {
        Ok(r) => r,
        Err(_) => Err(ChildError::Deadline(limits.deadline)),
    };
    if r.is_err() {
        kill_group(pid);
    }
    r
}

/// Read all of `r`, failing once more than `cap` bytes arrived (none is kept past the cap).
pub async fn read_capped<R: AsyncRead + Unpin>(
    r: Option<R>,
    cap: usize,
    stream: &'static str,
) -> Result<Vec<u8>, ChildError> {
    let mut buf = Vec::new();
    let Some(r) = r else {
        return Ok(buf);
    };
    // One byte more than the cap tells "exactly the cap" from "over it".
    let mut limited = r.take(cap as u64 + 1);
    limited
        .read_to_end(&mut buf)
        .await
        .map_err(ChildError::Io)?;
    if buf.len() > cap {
        return Err(ChildError::Output { stream, cap });
    }
    Ok(buf)
}

fn kill_group(pid: Option<u32>) {
    let Some(pid) = pid.and_then(|p| libc::pid_t::try_from(p).ok()) else {
        return;
    };
    // SAFETY: kill(2) on the process group we created for this child (pgid = its pid); the
    // child has not been reaped yet (we hold it), so the id cannot have been reused.
    unsafe {
        libc::kill(-pid, libc::SIGKILL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_and_print() {
        assert_eq!(parse_size("65536"), Ok(65536));
        assert_eq!(parse_size("64KiB"), Ok(64 << 10));
        assert_eq!(parse_size("8 MiB"), Ok(8 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert!(parse_size("0").unwrap_err().contains("above 0"));
        assert!(parse_size("lots").unwrap_err().contains("'lots'"));
        assert!(
            parse_size("3 parsecs")
                .unwrap_err()
                .contains("unknown unit")
        );
        assert_eq!(human_bytes(8 << 20), "8 MiB");
        assert_eq!(human_bytes(1000), "1000 bytes");
    }

    fn sh(script: &str) -> tokio::process::Command {
        let mut c = tokio::process::Command::new("sh");
        c.args(["-c", script]);
        c
    }

    #[tokio::test]
    async fn limits_name_what_was_exceeded() {
        let l = Limits {
            deadline: Duration::from_millis(300),
            max_output: 1000,
        };
        let o = run(sh("echo hi; echo err >&2; exit 3"), l).await.unwrap();
        assert_eq!(
            (o.stdout.as_slice(), o.status.code()),
            (&b"hi\n"[..], Some(3))
        );
        let e = run(sh("yes"), l).await.unwrap_err();
        assert!(
            e.to_string()
                .contains("stdout exceeded the output cap of 1000 bytes"),
            "{e}"
        );
        let t = std::time::Instant::now();
        let e = run(sh("sleep 20"), l).await.unwrap_err();
        assert!(e.to_string().contains("deadline of 300ms"), "{e}");
        assert!(t.elapsed() < Duration::from_secs(5));
    }
}
