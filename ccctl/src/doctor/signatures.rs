//! Known failure signatures in the pod's log (the parent's stdout, where the enclave's lines
//! arrive through vsock-stdout): the lines an operator would otherwise grep for. Used on a
//! local log file (`--log-file`) and on the pod log read through the Kubernetes API.

use cc_proto::findings::{Finding, Severity};

use super::{BoxFuture, Check, Context};

pub struct Signature {
    /// Matched case-sensitively anywhere in a line.
    pub needle: &'static str,
    pub code: &'static str,
    pub severity: Severity,
    pub summary: &'static str,
    pub fix: &'static str,
    pub commands: &'static [&'static str],
}

pub const SIGNATURES: &[Signature] = &[
    Signature {
        needle: "NSM initialization failed",
        code: "logs.nsm-init-failed",
        severity: Severity::Error,
        summary: "the enclave could not open its Nitro Security Module: it cannot attest, so no holder releases a share",
        fix: "Run the image as an enclave (nitro-cli run-enclave), built with the nitro feature; check the device plugin",
        commands: &["ccctl doctor --local --checks nsm"],
    },
    Signature {
        needle: "AccessDeniedException",
        code: "logs.kms-access-denied",
        severity: Severity::Error,
        summary: "a key holder's KMS refused kms:Decrypt",
        fix: "Compare the running PCR0/PCR8 with each holder's key policy (the pcr checks read them from the enclave's attestation)",
        commands: &["ccctl doctor --local --checks kms,pcr"],
    },
    Signature {
        needle: "outcome=\"unreachable\"",
        code: "logs.kms-unreachable",
        severity: Severity::Error,
        summary: "the enclave could not reach a key holder's KMS",
        fix: "Check the parent's egress forwarders and their upstream",
        commands: &["ccctl doctor --local --checks egress"],
    },
    Signature {
        needle: "FATAL:",
        code: "logs.entrypoint-fatal",
        severity: Severity::Error,
        summary: "the entrypoint refused to start the chamber",
        fix: "Read the FATAL line: it names the setting to change (e.g. ENCLAVE_DEBUG with PRODUCTION=true)",
        commands: &[],
    },
    Signature {
        needle: "panicked at",
        code: "logs.panic",
        severity: Severity::Error,
        summary: "a process of the chamber panicked",
        fix: "Report the panic line with the version; restart the pod",
        commands: &[],
    },
    Signature {
        needle: "[ E",
        code: "logs.nitro-cli-error",
        severity: Severity::Error,
        summary: "nitro-cli reported an error",
        fix: "Look the code up with the enclave family's findings",
        commands: &["ccctl enclaves"],
    },
];

/// Findings for the signatures found in `text` (each: how many lines, the last one).
pub fn scan(text: &str, source: &str) -> Vec<Finding> {
    let mut out = Vec::new();
    for s in SIGNATURES {
        let mut count = 0usize;
        let mut last = "";
        for line in text.lines().filter(|l| l.contains(s.needle)) {
            // "[ E" must be nitro-cli's "[ Exx ]".
            if s.needle == "[ E"
                && line
                    .split("[ E")
                    .nth(1)
                    .is_none_or(|r| r.chars().take_while(char::is_ascii_digit).count() < 2)
            {
                continue;
            }
            count += 1;
            last = line;
        }
        if count > 0 {
            let mut line = crate::output::clean(last);
            if line.chars().count() > 300 {
                line = line.chars().take(300).collect::<String>() + "…";
            }
            out.push(
                Finding::new(
                    s.code,
                    s.severity,
                    format!("{} ({count} line(s) in {source})", s.summary),
                )
                .with("lines", count)
                .with("last", line)
                .with("source", source.to_owned())
                .fix(s.fix, s.commands),
            );
        }
    }
    out
}

/// The last `MAX_TAIL` bytes of the log file, scanned.
pub struct LogSignatures;

const MAX_TAIL: u64 = 1 << 20;

impl Check for LogSignatures {
    fn id(&self) -> &'static str {
        "logs.signatures"
    }
    fn description(&self) -> &'static str {
        "with --log-file: recent log lines matching known failure signatures"
    }
    fn skipped(&self, ctx: &Context) -> Option<String> {
        ctx.log_file
            .is_none()
            .then(|| "no --log-file (CCCTL_LOG_FILE): the pod log was not scanned".to_owned())
    }
    fn run<'a>(&'a self, ctx: &'a Context) -> BoxFuture<'a, Vec<Finding>> {
        Box::pin(async move {
            let Some(path) = &ctx.log_file else {
                return Vec::new();
            };
            match tail(path) {
                Ok(text) => {
                    let found = scan(&text, &path.display().to_string());
                    ctx.saw(
                        "logs.signatures",
                        format!(
                            "{} of the log scanned: {}",
                            crate::output::plural(text.lines().count(), "line", "lines"),
                            if found.is_empty() {
                                "no failure signature".to_owned()
                            } else {
                                let codes: Vec<&str> =
                                    found.iter().map(|f| f.code.as_str()).collect();
                                format!("matched {}", codes.join(", "))
                            }
                        ),
                    );
                    found
                }
                Err(e) => vec![
                    Finding::new(
                        "logs.file-unreadable",
                        Severity::Warn,
                        format!("cannot read the log file '{}': {e}", path.display()),
                    )
                    .with("path", path.display().to_string()),
                ],
            }
        })
    }
}

fn tail(path: &std::path::Path) -> std::io::Result<String> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path)?;
    let len = f.metadata()?.len();
    f.seek(SeekFrom::Start(len.saturating_sub(MAX_TAIL)))?;
    let mut b = Vec::new();
    f.take(MAX_TAIL).read_to_end(&mut b)?;
    Ok(String::from_utf8_lossy(&b).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_signature_is_found_and_counted() {
        let log = "ok\n\
            2026-11-25T10:00:00Z ERROR cannot unseal reason=NSM initialization failed: cannot open /dev/nsm\n\
            WARN share not released holder=a outcome=denied code=AccessDeniedException\n\
            WARN share not released holder=b outcome=denied code=AccessDeniedException\n\
            WARN share not released holder=c outcome=\"unreachable\" code=\n\
            FATAL: PRODUCTION=true and ENCLAVE_DEBUG=1\n\
            thread 'main' panicked at src/main.rs:1:1\n\
            [ E26 ] Insufficient memory requested.\n";
        let f = scan(log, "pod log");
        let codes: Vec<&str> = f.iter().map(|f| f.code.as_str()).collect();
        assert_eq!(
            codes,
            [
                "logs.nsm-init-failed",
                "logs.kms-access-denied",
                "logs.kms-unreachable",
                "logs.entrypoint-fatal",
                "logs.panic",
                "logs.nitro-cli-error"
            ]
        );
        assert_eq!(f[1].evidence["lines"], 2);
    }

    #[test]
    fn clean_logs_and_lookalikes_give_nothing() {
        assert!(scan("all good\n[ Enclave ] started\nunsealed\n", "x").is_empty());
    }

    #[test]
    fn control_sequences_are_stripped_from_the_evidence() {
        let f = scan("\x1b]0;owned\x07panicked at \x1b[31mx\n", "x");
        let last = f[0].evidence["last"].as_str().unwrap();
        assert!(!last.contains('\x1b'), "{last:?}");
    }
}
