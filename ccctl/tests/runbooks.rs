//! Every finding code used in the code has a section in `runbooks/`, at the anchor its
//! `runbook` field points to (`runbooks/FAMILY.md#family-name`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Codes passed to `Finding::new("…"` or chosen in a `match` arm as `=> "family.code"`.
fn codes() -> BTreeSet<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    for d in ["ccctl/src", "proto/src"] {
        sources(&root.join(d), &mut files);
    }
    let mut out = BTreeSet::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        // Test modules use made-up codes.
        let text = text.split("#[cfg(test)]").next().unwrap_or("");
        for marker in ["Finding::new(", "=> \"", "base(", "code: \""] {
            for part in text.split(marker).skip(1) {
                let part = part.trim_start();
                // A code is a string literal (not `s.code` or a variable).
                if !marker.ends_with('"') && !part.starts_with('"') {
                    continue;
                }
                let part = part.trim_start_matches('"');
                let code: String = part
                    .chars()
                    .take_while(|c| {
                        c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '.' || *c == '-'
                    })
                    .collect();
                if code.contains('.') && !code.starts_with('.') && !code.ends_with('.') {
                    out.insert(code);
                }
            }
        }
    }
    out
}

#[test]
fn every_code_has_its_runbook_section() {
    let codes = codes();
    assert!(codes.len() >= 40, "found only {codes:?}");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../runbooks");
    let mut missing = Vec::new();
    for code in &codes {
        let family = code.split('.').next().unwrap();
        let page = root.join(format!("{family}.md"));
        let text = std::fs::read_to_string(&page).unwrap_or_default();
        let anchor = format!("## {}", code.replace('.', "-"));
        if !text.lines().any(|l| l.trim() == anchor) {
            missing.push(format!(
                "{code} (expected '{anchor}' in {})",
                page.display()
            ));
        }
    }
    assert!(
        missing.is_empty(),
        "runbook sections missing:\n{}",
        missing.join("\n")
    );
}
