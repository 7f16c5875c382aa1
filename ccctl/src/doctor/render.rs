//! Renderings of one doctor report: human (grouped by family, numbered problems with their
//! fix commands; colour only on a terminal and without `NO_COLOR`), JSON, JUnit XML.

use cc_proto::findings::Severity;

use super::{CheckStatus, Report};

pub use crate::output::Style;

fn label(sev: Severity, st: Style) -> String {
    match sev {
        Severity::Error => st.paint("31;1", "[✗] error"),
        Severity::Warn => st.paint("33", "[!] warn "),
        Severity::Info => st.paint("36", "[i] info "),
    }
}

pub use crate::output::clean;

/// The families in the order they first appear, each once (checks of one family may be
/// interleaved with others', e.g. the pod's API-side checks and its in-pod probes).
fn families(r: &Report) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    for c in &r.checks {
        if !out.contains(&c.family.as_str()) {
            out.push(c.family.as_str());
        }
    }
    out
}

pub fn human(r: &Report, st: Style) -> String {
    let mut out = String::new();
    let families = families(r);
    let mut n = 0;
    for fam in families {
        out += &st.paint("1", fam);
        out.push('\n');
        for c in r.checks.iter().filter(|c| c.family == fam) {
            let mark = match c.status {
                CheckStatus::Passed => st.paint("32", "[✓]"),
                CheckStatus::Findings => st.paint("33", "[•]"),
                CheckStatus::Skipped => st.paint("2", "[–]"),
                CheckStatus::Unknown => st.paint("33", "[?]"),
                CheckStatus::Crashed => st.paint("31;1", "[☠]"),
                CheckStatus::TimedOut => st.paint("31", "[⏱]"),
            };
            out += &format!("  {mark} {:<20} {}\n", c.id, c.description);
            if let Some(n) = &c.note {
                let what = match c.status {
                    CheckStatus::Skipped => "skipped",
                    CheckStatus::Unknown => "unknown",
                    _ => "note",
                };
                out += &format!("      {what}: {}\n", clean(n));
            }
            for f in &c.findings {
                n += 1;
                out += &format!(
                    "      {n}. {} {}: {}\n",
                    label(f.severity, st),
                    f.code,
                    clean(&f.summary)
                );
                if !f.remediation.text.is_empty() {
                    out += &format!("         fix: {}\n", clean(&f.remediation.text));
                }
                for cmd in &f.remediation.commands {
                    out += &format!("           $ {cmd}\n");
                }
                out += &format!("         runbook: {}\n", f.runbook);
            }
        }
    }
    let s = &r.summary;
    out += &format!(
        "\n{} checks: {} errors, {} warnings, {} info{}{}{}{}\n",
        s.checks,
        s.errors,
        s.warnings,
        s.infos,
        if s.skipped > 0 {
            format!(", {} skipped", s.skipped)
        } else {
            String::new()
        },
        if s.unknown > 0 {
            format!(", {} unknown", s.unknown)
        } else {
            String::new()
        },
        if s.crashed > 0 {
            format!(", {} crashed", s.crashed)
        } else {
            String::new()
        },
        if s.timed_out > 0 {
            format!(", {} timed out", s.timed_out)
        } else {
            String::new()
        },
    );
    out
}

fn xml(s: &str) -> String {
    clean(s)
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// One testsuite per family, one testcase per check, one failure per error/warn finding.
pub fn junit(r: &Report) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let failures = r
        .checks
        .iter()
        .filter(|c| !matches!(c.status, CheckStatus::Passed | CheckStatus::Skipped))
        .count();
    out += &format!(
        "<testsuites name=\"ccctl doctor\" tests=\"{}\" failures=\"{failures}\">\n",
        r.checks.len()
    );
    let families = families(r);
    for fam in families {
        let cases: Vec<_> = r.checks.iter().filter(|c| c.family == fam).collect();
        let f = cases
            .iter()
            .filter(|c| !matches!(c.status, CheckStatus::Passed | CheckStatus::Skipped))
            .count();
        out += &format!(
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{f}\">\n",
            xml(fam),
            cases.len()
        );
        for c in cases {
            out += &format!(
                "    <testcase classname=\"{}\" name=\"{}\" time=\"{:.3}\">\n",
                xml(fam),
                xml(&c.id),
                c.duration_ms as f64 / 1000.0
            );
            match (&c.status, &c.note) {
                (CheckStatus::Skipped, note) => {
                    out += &format!(
                        "      <skipped message=\"{}\"/>\n",
                        xml(note.as_deref().unwrap_or_default())
                    );
                }
                (CheckStatus::Unknown, note) => {
                    out += &format!(
                        "      <failure type=\"doctor.unknown\" message=\"{}\"/>\n",
                        xml(note.as_deref().unwrap_or_default())
                    );
                }
                _ => {}
            }
            for f in &c.findings {
                out += &format!(
                    "      <failure type=\"{}\" message=\"{}\">{} (runbook: {})</failure>\n",
                    xml(&f.code),
                    xml(&f.summary),
                    xml(&f.remediation.text),
                    xml(&f.runbook)
                );
            }
            out += "    </testcase>\n";
        }
        out += "  </testsuite>\n";
    }
    out += "</testsuites>\n";
    out
}
