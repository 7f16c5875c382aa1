//! `ccctl explain CODE`: the runbook section of a finding code, from `runbooks/` embedded in
//! the binary at build time (one source of truth: the files the repository's runbooks are), so
//! the knowledge is at hand inside a pod where the repository is not.

use serde::Serialize;

use crate::output::{self, CannotRun, Format, Outcome, Render, Style};

/// Every runbook page, embedded (`ccctl/tests/explain.rs` checks that no page is missing).
pub const PAGES: &[(&str, &str)] = &[
    ("config.md", include_str!("../../runbooks/config.md")),
    (
        "debug-mode.md",
        include_str!("../../runbooks/debug-mode.md"),
    ),
    ("doctor.md", include_str!("../../runbooks/doctor.md")),
    ("egress.md", include_str!("../../runbooks/egress.md")),
    ("enclave.md", include_str!("../../runbooks/enclave.md")),
    ("kms.md", include_str!("../../runbooks/kms.md")),
    ("logs.md", include_str!("../../runbooks/logs.md")),
    (
        "master-key.md",
        include_str!("../../runbooks/master-key.md"),
    ),
    ("metrics.md", include_str!("../../runbooks/metrics.md")),
    ("nsm.md", include_str!("../../runbooks/nsm.md")),
    ("pcr.md", include_str!("../../runbooks/pcr.md")),
    (
        "pcr0-rotation.md",
        include_str!("../../runbooks/pcr0-rotation.md"),
    ),
    (
        "pcr8-rotation.md",
        include_str!("../../runbooks/pcr8-rotation.md"),
    ),
    ("policy.md", include_str!("../../runbooks/policy.md")),
    ("README.md", include_str!("../../runbooks/README.md")),
];

/// One code's section.
#[derive(Debug, Clone, Serialize)]
pub struct Section {
    pub code: String,
    /// `runbooks/FILE.md#anchor`.
    pub runbook: String,
    /// The section's Markdown, heading excluded.
    pub text: String,
}

impl Section {
    /// The first sentence after the code (what `--list` shows).
    pub fn summary(&self) -> String {
        let flat = self.text.split_whitespace().collect::<Vec<_>>().join(" ");
        let after = flat
            .split_once(" — ")
            .map(|(_, rest)| rest)
            .unwrap_or(&flat);
        let end = after
            .find(". ")
            .map(|i| i + 1)
            .unwrap_or(after.len())
            .min(110);
        let mut s: String = after.chars().take(end).collect();
        if s.len() < after.len() && !s.ends_with('.') {
            s.push('…');
        }
        s
    }
}

/// Every section that explains a code: a `## family-name` heading whose text names the code
/// `family.name` in backticks.
pub fn sections() -> Vec<Section> {
    let mut out = Vec::new();
    for (file, text) in PAGES {
        let mut parts = text.split("\n## ").skip(1);
        for part in &mut parts {
            let (anchor, body) = part.split_once('\n').unwrap_or((part, ""));
            let anchor = anchor.trim();
            let Some((family, name)) = anchor.split_once('-') else {
                continue;
            };
            let code = format!("{family}.{name}");
            if !body.contains(&format!("`{code}`")) {
                continue;
            }
            out.push(Section {
                runbook: format!("runbooks/{file}#{anchor}"),
                text: body.trim_end().to_owned(),
                code,
            });
        }
    }
    out.sort_by(|a, b| a.code.cmp(&b.code));
    out
}

pub fn section(code: &str) -> Option<Section> {
    sections().into_iter().find(|s| s.code == code)
}

/// Codes close to `wanted`: a prefix or substring match first, then small edit distances.
pub fn suggestions(wanted: &str) -> Vec<String> {
    let w = wanted.to_ascii_lowercase();
    let all = sections();
    let mut near: Vec<(usize, String)> = all
        .iter()
        .filter_map(|s| {
            let c = &s.code;
            let name = c.split_once('.').map_or(c.as_str(), |(_, n)| n);
            let d = if c.contains(&w) || (w.len() >= 3 && name.contains(&w)) {
                0
            } else {
                strsim::levenshtein(&w, c).min(strsim::levenshtein(&w, name) + 1)
            };
            (d <= 3.max(w.len() / 4)).then(|| (d, c.clone()))
        })
        .collect();
    near.sort();
    near.into_iter().take(5).map(|(_, c)| c).collect()
}

#[derive(Debug, clap::Args)]
pub struct ExplainArgs {
    /// A finding code, e.g. `kms.access-denied` (as doctor prints it).
    #[arg(value_name = "CODE", required_unless_present = "list")]
    pub code: Option<String>,
    /// One line per code.
    #[arg(long, conflicts_with = "code")]
    pub list: bool,
}

#[derive(Serialize)]
struct List(Vec<ListItem>);

#[derive(Serialize)]
struct ListItem {
    code: String,
    summary: String,
    runbook: String,
}

impl Render for List {
    fn human(&self, st: Style) -> String {
        let w = self.0.iter().map(|i| i.code.len()).max().unwrap_or(0);
        self.0
            .iter()
            .map(|i| {
                format!(
                    "{}  {}\n",
                    st.paint("1", &format!("{:<w$}", i.code)),
                    i.summary
                )
            })
            .collect()
    }
}

impl Render for Section {
    fn human(&self, st: Style) -> String {
        format!(
            "{}\n{}\n{}",
            st.paint("1", &self.code),
            st.paint("2", &self.runbook),
            render_markdown(&self.text, st)
        )
        .trim_end()
        .to_owned()
            + "\n"
    }
}

/// Markdown for a terminal: headings bold, list items with a bullet, fenced code indented (and
/// cyan), inline code cyan; with no colour the text stays as written (readable Markdown).
pub fn render_markdown(md: &str, st: Style) -> String {
    let mut out = String::new();
    let mut fenced = false;
    for line in md.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            if !st.color {
                out += line;
                out.push('\n');
            }
            continue;
        }
        if fenced {
            out += &format!("    {}\n", st.paint("36", line));
            continue;
        }
        if !st.color {
            out += line;
            out.push('\n');
            continue;
        }
        let trimmed = line.trim_start();
        let line = if let Some(h) = trimmed.strip_prefix('#') {
            st.paint("1", h.trim_start_matches('#').trim())
        } else if let Some(item) = trimmed
            .strip_prefix("- ")
            .or_else(|| trimmed.strip_prefix("* "))
        {
            format!("  • {}", inline_code(item, st))
        } else {
            inline_code(line, st)
        };
        out += &line;
        out.push('\n');
    }
    out
}

fn inline_code(s: &str, st: Style) -> String {
    s.split('`')
        .enumerate()
        .map(|(i, part)| {
            if i % 2 == 1 {
                st.paint("36", part)
            } else {
                part.replace("**", "")
            }
        })
        .collect()
}

pub fn run(a: ExplainArgs, fmt: Format) -> Result<Outcome, CannotRun> {
    if a.list {
        let list = List(
            sections()
                .into_iter()
                .map(|s| ListItem {
                    summary: s.summary(),
                    runbook: s.runbook.clone(),
                    code: s.code,
                })
                .collect(),
        );
        output::render(&list, fmt)?;
        return Ok(Outcome::Ok);
    }
    let wanted = a.code.unwrap_or_default();
    match section(wanted.trim()) {
        Some(s) => {
            output::render(&s, fmt)?;
            Ok(Outcome::Ok)
        }
        None => {
            let near = suggestions(wanted.trim());
            let hint = if near.is_empty() {
                "; `ccctl explain --list` lists every code".to_owned()
            } else {
                format!(
                    "; did you mean {}? (`ccctl explain --list` lists every code)",
                    near.join(", ")
                )
            };
            Err(CannotRun::new(format!(
                "no finding code '{}'{hint}",
                output::clean(&wanted)
            )))
        }
    }
}
