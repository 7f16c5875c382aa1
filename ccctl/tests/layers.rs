//! ccctl's modules depend on each other one way (README "Layout"): no module but `main.rs`
//! imports `cli`, the top-level modules form no import circle, and the probe layer depends on
//! nothing above it. Read from the sources, so `cargo test -p ccctl --test layers` checks any
//! change.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use common::sources;

/// The top-level module a file belongs to (`doctor/checks.rs` → `doctor`).
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap();
    let first = rel
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy();
    first.trim_end_matches(".rs").to_owned()
}

/// Top-level modules named by `crate::x`, `crate::{x, y::z}` or `ccctl::x` (outside comments).
fn references(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or_default();
        for prefix in ["crate::", "ccctl::"] {
            let mut rest = code;
            while let Some(i) = rest.find(prefix) {
                rest = &rest[i + prefix.len()..];
                if let Some(group) = rest.strip_prefix('{') {
                    let inner = group.split('}').next().unwrap_or_default();
                    for item in inner.split(',') {
                        let name = item.trim().split("::").next().unwrap_or_default();
                        if !name.is_empty() {
                            out.insert(name.to_owned());
                        }
                    }
                } else {
                    let name: String = rest
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    if !name.is_empty() {
                        out.insert(name);
                    }
                }
            }
        }
    }
    out
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let modules: BTreeSet<String> = files.iter().map(|f| module_of(&src, f)).collect();
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in &files {
        let m = module_of(&src, f);
        let text = std::fs::read_to_string(f).unwrap();
        let entry = g.entry(m.clone()).or_default();
        for r in references(&text) {
            if r != m && modules.contains(&r) {
                entry.insert(r);
            }
        }
    }
    g
}

/// A cycle through `start`, if any (depth-first).
fn cycle(g: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        g: &BTreeMap<String, BTreeSet<String>>,
        n: &str,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == n) {
            let mut c = path[i..].to_vec();
            c.push(n.to_owned());
            return Some(c);
        }
        if done.contains(n) {
            return None;
        }
        path.push(n.to_owned());
        for d in g.get(n).into_iter().flatten() {
            if let Some(c) = visit(g, d, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(n.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    for n in g.keys() {
        if let Some(c) = visit(g, n, &mut Vec::new(), &mut done) {
            return Some(c);
        }
    }
    None
}

#[test]
fn only_main_imports_cli() {
    let g = graph();
    let importers: Vec<&String> = g
        .iter()
        .filter(|(m, deps)| deps.contains("cli") && *m != "main" && *m != "lib")
        .map(|(m, _)| m)
        .collect();
    assert!(importers.is_empty(), "modules importing cli: {importers:?}");
    assert!(g["main"].contains("cli"), "main must dispatch through cli");
}

#[test]
fn no_import_circle_between_modules() {
    let mut g = graph();
    // lib.rs declares every module; main.rs and cli.rs compose them all.
    g.remove("lib");
    if let Some(c) = cycle(&g) {
        panic!("import circle: {}\ngraph: {g:#?}", c.join(" → "));
    }
}

#[test]
fn the_probe_layer_depends_on_nothing_above_it() {
    let g = graph();
    let allowed: BTreeSet<&str> = ["output", "config", "x509"].into();
    let above: Vec<&String> = g["probe"]
        .iter()
        .filter(|d| !allowed.contains(d.as_str()))
        .collect();
    assert!(above.is_empty(), "probe imports {above:?}");
    for low in ["output", "config", "x509"] {
        assert!(
            g.get(low)
                .is_none_or(|d| d.iter().all(|x| allowed.contains(x.as_str()))),
            "{low} imports {:?}",
            g[low]
        );
    }
}

#[test]
fn the_checker_sees_a_circle_and_a_cli_import() {
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    g.insert("a".into(), ["b".to_owned()].into());
    g.insert("b".into(), ["a".to_owned()].into());
    assert_eq!(cycle(&g).unwrap(), ["a", "b", "a"]);
    assert_eq!(
        references("use crate::{cli::Cli, probe};\nlet x = crate::doctor::run(); // crate::tui"),
        ["cli", "doctor", "probe"].map(String::from).into()
    );
}
