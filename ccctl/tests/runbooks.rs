//! Every finding code used in the code has a section in `runbooks/`, at the anchor its
//! `runbook` field points to (`runbooks/FAMILY.md#family-name`), and the same section is
//! embedded in the binary for `ccctl explain CODE`.

mod common;

use std::path::Path;

use common::codes;

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

/// The runbooks are embedded whole: every page is in `explain::PAGES` with the text on disk.
#[test]
fn every_runbook_page_is_embedded_as_it_is() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../runbooks");
    for e in std::fs::read_dir(&root).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_str().unwrap().to_owned();
        if !name.ends_with(".md") {
            continue;
        }
        let embedded = ccctl::explain::PAGES
            .iter()
            .find(|(n, _)| *n == name)
            .unwrap_or_else(|| panic!("runbooks/{name} is not in ccctl::explain::PAGES"));
        assert_eq!(embedded.1, std::fs::read_to_string(&p).unwrap(), "{name}");
    }
}

/// Every code any command can emit has an embedded section, and every embedded section
/// explains a code some command emits.
#[test]
fn every_code_can_be_explained_and_every_section_names_a_code() {
    let codes = codes();
    let sections = ccctl::explain::sections();
    for c in &codes {
        let s =
            ccctl::explain::section(c).unwrap_or_else(|| panic!("ccctl explain {c}: no section"));
        assert!(s.text.contains(&format!("`{c}`")), "{c}");
        assert!(!s.summary().is_empty(), "{c}");
    }
    for s in &sections {
        assert!(
            codes.contains(&s.code),
            "section {} explains no code the sources emit",
            s.runbook
        );
    }
    // Each section is exactly the one its findings' `runbook` field points to.
    for s in &sections {
        let f = cc_proto::findings::Finding::new(&s.code, cc_proto::findings::Severity::Info, "");
        assert!(
            s.runbook
                .ends_with(f.runbook.trim_start_matches("runbooks/")),
            "{} vs {}",
            s.runbook,
            f.runbook
        );
        assert_eq!(f.explain, format!("ccctl explain {}", s.code));
    }
}

/// `ccctl explain` for every code, as printed to a pipe (snapshot), and its errors.
#[test]
fn explain_every_code() {
    let mut all = String::new();
    for s in ccctl::explain::sections() {
        let o = common::ccctl(&["explain", &s.code]);
        assert_eq!(o.status.code(), Some(0), "{}", common::stderr(&o));
        let out = common::stdout(&o);
        assert!(!out.contains('\x1b'), "plain when piped: {out}");
        all += &out;
        all += "\n";
    }
    insta::assert_snapshot!("explain_every_code", all);
    let o = common::ccctl(&["explain", "--list"]);
    let list = common::stdout(&o);
    assert_eq!(
        list.lines().count(),
        ccctl::explain::sections().len(),
        "{list}"
    );
    assert!(
        list.lines().all(|l| l.contains('.') && l.len() > 40),
        "{list}"
    );
    // A mistyped code: exit 2 and the near codes.
    let o = common::ccctl(&["explain", "kms.acess-denied"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        common::stderr(&o).contains("did you mean kms.access-denied"),
        "{}",
        common::stderr(&o)
    );
    let o = common::ccctl(&["explain", "threshold"]);
    assert!(
        common::stderr(&o).contains("policy.threshold-unmet"),
        "{}",
        common::stderr(&o)
    );
    let o = common::ccctl(&["explain", "kms.access-denied", "-o", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["code"], "kms.access-denied");
    assert_eq!(v["runbook"], "runbooks/kms.md#kms-access-denied");
}

/// On a terminal the Markdown is rendered: headings bold, list bullets, code in colour.
#[test]
fn markdown_for_a_terminal() {
    let st = ccctl::output::Style { color: true };
    let out = ccctl::explain::render_markdown("# Title\n- item `x`\n```\ncode\n```\nplain", st);
    assert!(out.contains("\x1b[1mTitle"), "{out:?}");
    assert!(out.contains("  • item \x1b[36mx"), "{out:?}");
    assert!(out.contains("    \x1b[36mcode"), "{out:?}");
    let plain =
        ccctl::explain::render_markdown("- item `x`", ccctl::output::Style { color: false });
    assert_eq!(plain, "- item `x`\n");
}
