//! Every `ccctl …` command that doctor, policy and rotate can print as a fix or a next step is
//! runnable as printed: each is found in the sources (a string literal starting with `ccctl `,
//! a backticked `ccctl …` in a message, a `next: ccctl …` line), its `{…}` placeholders filled
//! with the kind of value doctor fills them with, and parsed by the real clap parser. No fix
//! command carries a `<placeholder>` for a value doctor has (issue 13 #6).

mod common;

use clap::Parser as _;

const PCR: &str = "e359965f7bc9b9d7431ffda75dc7f2b8873c2f903cd56814d91000070ec12a406b1720e0b78024076625f25b4d0507dc";

/// Literals that start with "ccctl " but are prose, not a command (each says why).
const PROSE: &[&str] = &[
    "ccctl demo key",                                     // a certificate's common name
    "ccctl doctor --local in the pod gave no report: {}", // a finding summary
    "ccctl doctor --local inside the pod",                // a check description
    "ccctl doctor could not run against the demo (see above)",
    "ccctl doctor fleet\\\"", // an XML attribute
    "ccctl doctor\\\"",       // an XML attribute
    "ccctl tui ",             // the dashboard's title
    "ccctl tui needs a terminal (for scripts: ccctl doctor -o json)",
];

fn sources() -> Vec<(std::path::PathBuf, String)> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    for d in ["ccctl/src", "proto/src"] {
        common::sources(&root.join(d), &mut files);
    }
    files
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            (p, text)
        })
        .collect()
}

/// The contents of every string literal (plain "…" literals; escapes kept as written).
fn literals(src: &str) -> Vec<String> {
    let mut out = Vec::new();
    let b = src.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'/' if b.get(i + 1) == Some(&b'/') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'\'' if b.get(i + 2) == Some(&b'\'') || (b.get(i + 1) == Some(&b'\\')) => {
                // A char literal ('"' or '\"'): skip it.
                let end = src[i + 1..].find('\'').map_or(b.len(), |e| i + 1 + e + 1);
                i = end;
                continue;
            }
            b'"' => {
                let start = i + 1;
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    if b[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
                out.push(src[start..i.min(b.len())].to_owned());
            }
            _ => {}
        }
        i += 1;
    }
    out
}

/// `ccctl …` commands in one literal.
fn commands_in(lit: &str) -> Vec<String> {
    let mut out = Vec::new();
    if lit.starts_with("ccctl ") && !PROSE.contains(&lit) {
        out.push(lit.to_owned());
    }
    for (i, part) in lit.split('`').enumerate() {
        if i % 2 == 1 && part.starts_with("ccctl ") {
            out.push(part.trim_end_matches(" …").to_owned());
        }
    }
    for line in lit.split("\\n") {
        for lead in ["next: ", "start over once resolved: "] {
            if let Some(rest) = line.trim().strip_prefix(lead)
                && rest.starts_with("ccctl ")
            {
                out.push(rest.trim_end_matches(" …").to_owned());
            }
        }
    }
    out
}

/// Fill `{…}` the way the code does: PCR values, PCR numbers, paths, names.
fn fill(cmd: &str) -> String {
    let mut out = String::new();
    let mut rest = cmd;
    while let Some(i) = rest.find('{') {
        out += &rest[..i];
        let end = rest[i..].find('}').map_or(rest.len(), |e| i + e);
        let name = &rest[i + 1..end];
        let before = out.trim_end();
        out += if before.ends_with("rotate pcr") {
            "0"
        } else if before.ends_with("--new")
            || before.ends_with("--pcr0")
            || before.ends_with("--pcr8")
            || name == "m"
        {
            PCR
        } else if name == "pcr" || name == "p" {
            "0"
        } else {
            "sample.file"
        };
        rest = &rest[(end + 1).min(rest.len())..];
    }
    out + rest
}

#[test]
fn every_printed_ccctl_command_parses() {
    let mut checked = Vec::new();
    for (path, src) in sources() {
        for lit in literals(&src) {
            for cmd in commands_in(&lit) {
                let filled = fill(&cmd);
                let mut words = shlex::split(&filled)
                    .unwrap_or_else(|| panic!("{}: cannot split {cmd:?}", path.display()));
                // ccctl's part of a pipeline.
                if let Some(end) = words
                    .iter()
                    .position(|w| ["|", "&&", ";", ">"].contains(&w.as_str()))
                {
                    words.truncate(end);
                }
                if let Err(e) = ccctl::cli::Cli::try_parse_from(&words) {
                    panic!(
                        "{}: the printed command {cmd:?} does not parse ({filled}):\n{e}",
                        path.display()
                    );
                }
                checked.push(cmd);
            }
        }
    }
    // The scan sees the commands it must (a scan that finds nothing proves nothing).
    for want in [
        "ccctl enclaves",
        "ccctl rotate pcr{pcr} start --new {m} --config ccctl.toml",
        "ccctl policy check --config {} --pcr0 {} --pcr8 {}",
        "ccctl doctor --local --checks kms,pcr",
    ] {
        assert!(
            checked.iter().any(|c| c == want),
            "{want} not found in {checked:#?}"
        );
    }
    assert!(checked.len() >= 12, "{checked:#?}");
}

#[test]
fn no_fix_command_has_a_placeholder_for_what_doctor_knows() {
    for (path, src) in sources() {
        // Fix commands are the string arguments of `.fix(…, &[…])` and `commands: &[…]`.
        for (i, _) in src
            .match_indices(".fix(")
            .chain(src.match_indices("commands: &["))
        {
            let window = &src[i..(i + 600).min(src.len())];
            let Some(open) = window.find("&[") else {
                continue;
            };
            let Some(close) = window[open..].find(']') else {
                continue;
            };
            for lit in literals(&window[open..open + close]) {
                assert!(
                    !(lit.contains('<') && lit.contains('>')),
                    "{}: fix command with a placeholder: {lit:?}",
                    path.display()
                );
                assert!(
                    !lit.contains("ps aux"),
                    "{}: `ps aux | grep` is not a fix: {lit:?}",
                    path.display()
                );
            }
        }
    }
}

/// The scanner itself: a wrong command is caught.
#[test]
fn a_wrong_command_is_caught() {
    let bad = fill("ccctl rotate pcr0 --eif enclave.eif");
    let words = shlex::split(&bad).unwrap();
    assert!(ccctl::cli::Cli::try_parse_from(&words).is_err());
    assert_eq!(
        commands_in("Start over with `ccctl rotate pcr{pcr} start --force` once resolved"),
        ["ccctl rotate pcr{pcr} start --force"]
    );
}
