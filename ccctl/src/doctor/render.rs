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

/// The families of `r`'s checks in the order they first appear, each once (checks of one
/// family may be interleaved with others', e.g. the pod's API-side checks and its in-pod
/// probes): doctor's output and the dashboard's Findings screen list each check under it.
pub fn families(r: &Report) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    for c in &r.checks {
        if !out.contains(&c.family.as_str()) {
            out.push(c.family.as_str());
        }
    }
    out
}

/// What a check saw, or why it could not look (the rule is in `--list-checks`), and its note,
/// both sanitised: doctor's output and the dashboard's Findings screen show this.
pub fn check_text(c: &super::CheckResult) -> (String, Option<String>) {
    match (c.status, &c.note) {
        (CheckStatus::Skipped, Some(n)) => (format!("skipped: {}", clean(n)), None),
        (CheckStatus::Unknown, Some(n)) => (format!("unknown: {}", clean(n)), None),
        (CheckStatus::Crashed, _) => ("crashed: nothing it saw is known".to_owned(), None),
        (CheckStatus::TimedOut, _) => (
            "timed out: it did not finish within the deadline".to_owned(),
            None,
        ),
        (_, n) => (
            clean(c.observed.as_deref().unwrap_or(&c.description)),
            n.as_deref().map(clean),
        ),
    }
}

/// The verdict line, coloured by level.
pub fn verdict_line(r: &Report, st: Style) -> String {
    let code = match r.verdict.level {
        super::cause::Level::Healthy => "32;1",
        super::cause::Level::Degraded => "33;1",
        super::cause::Level::Down => "31;1",
    };
    st.paint(code, &clean(&r.verdict.line()))
}

/// The verdict; every check once, by family, with its status (and the numbers of its
/// problems); then the problems, causes first — each followed by the findings it explains.
pub fn human(r: &Report, st: Style) -> String {
    let mut out = verdict_line(r, st);
    out += "\n\n";
    let groups = super::cause::ordered(r);
    // Problem numbers in the printed order.
    let order: Vec<&cc_proto::findings::Finding> = groups
        .iter()
        .flat_map(|g| std::iter::once(g.cause).chain(g.consequences.iter().copied()))
        .collect();
    let number = |f: &cc_proto::findings::Finding| {
        order
            .iter()
            .position(|x| std::ptr::eq(*x, f))
            .map(|i| i + 1)
    };
    for fam in families(r) {
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
            let refs: Vec<String> = c
                .findings
                .iter()
                .filter_map(|f| number(f).map(|n| format!("#{n}")))
                .collect();
            let refs = if refs.is_empty() {
                String::new()
            } else {
                format!("  → {}", refs.join(" "))
            };
            let (text, note_line) = check_text(c);
            out += &format!("  {mark} {:<20} {text}{refs}\n", c.id);
            if let Some(n) = note_line {
                out += &format!("      note: {n}\n");
            }
        }
    }
    if !order.is_empty() {
        out += &format!("\n{}\n", st.paint("1", "Problems, causes first"));
    }
    let mut n = 0;
    let mut problem = |out: &mut String, f: &cc_proto::findings::Finding, indent: &str| {
        n += 1;
        *out += &format!(
            "{indent}{n}. {} {}: {}\n",
            label(f.severity, st),
            f.code,
            clean(&f.summary)
        );
        if !f.remediation.text.is_empty() {
            *out += &format!("{indent}   fix: {}\n", clean(&f.remediation.text));
        }
        for cmd in &f.remediation.commands {
            *out += &format!("{indent}     $ {}\n", clean(cmd));
        }
        *out += &format!("{indent}   runbook: {}  ({})\n", f.runbook, f.explain);
    };
    for g in &groups {
        problem(&mut out, g.cause, "  ");
        if !g.consequences.is_empty() {
            out += &format!("     because of {}:\n", g.cause.code);
            for f in &g.consequences {
                problem(&mut out, f, "       ");
            }
        }
    }
    let s = &r.summary;
    out += &format!(
        "\n{}: {}, {}, {} info{}{}{}{}\n",
        crate::output::plural(s.checks, "check", "checks"),
        crate::output::plural(s.errors, "error", "errors"),
        crate::output::plural(s.warnings, "warning", "warnings"),
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
