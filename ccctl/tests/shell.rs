//! `ccctl completion` and `ccctl man`: generated from the clap definitions that parse the
//! arguments, so every command completes and has a page. The bash script is loaded and asked
//! by a real bash, the way bash-completion calls it.

mod common;

use std::collections::BTreeSet;
use std::process::Command;

use clap::CommandFactory;
use common::{ccctl, stderr, stdout};

#[test]
fn every_shell_gets_a_completion_script_naming_every_command() {
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let o = ccctl(&["completion", shell]);
        assert_eq!(o.status.code(), Some(0), "{shell}: {}", stderr(&o));
        let script = stdout(&o);
        for sub in ccctl::cli::Cli::command().get_subcommands() {
            assert!(
                script.contains(sub.get_name()),
                "{shell}: no '{}' in the script",
                sub.get_name()
            );
        }
    }
    let o = ccctl(&["completion", "tcsh"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("invalid value 'tcsh'"),
        "{}",
        stderr(&o)
    );
}

/// Source the script in bash and call its completion function as bash does for the words
/// typed so far; the candidates, one per line.
fn complete_in_bash(script: &std::path::Path, words: &[&str]) -> Vec<String> {
    let words_q: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let cword = words.len() - 1;
    let prog = format!(
        "source '{script}' || exit 3\n\
         complete -p ccctl >/dev/null || exit 4\n\
         COMP_WORDS=({words})\n\
         COMP_CWORD={cword}\n\
         COMP_LINE=\"${{COMP_WORDS[*]}}\"\n\
         COMP_POINT=${{#COMP_LINE}}\n\
         _ccctl ccctl \"${{COMP_WORDS[$COMP_CWORD]}}\" \"${{COMP_WORDS[$((COMP_CWORD - 1))]}}\"\n\
         printf '%s\\n' \"${{COMPREPLY[@]}}\"\n",
        script = script.display(),
        words = words_q.join(" "),
    );
    let o = Command::new("bash")
        .args(["--norc", "--noprofile", "-c", &prog])
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    stdout(&o).lines().map(str::to_owned).collect()
}

#[test]
fn the_bash_script_parses_loads_and_completes() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("ccctl.bash");
    let o = ccctl(&["completion", "bash"]);
    std::fs::write(&script, &o.stdout).unwrap();
    let n = Command::new("bash")
        .arg("-n")
        .arg(&script)
        .output()
        .unwrap();
    assert!(n.status.success(), "bash -n: {}", stderr(&n));

    assert_eq!(complete_in_bash(&script, &["ccctl", "doc"]), ["doctor"]);
    let rot = complete_in_bash(&script, &["ccctl", "rotate", ""]);
    assert!(
        rot.contains(&"pcr0".to_owned()) && rot.contains(&"pcr8".to_owned()),
        "{rot:?}"
    );
    let opts = complete_in_bash(&script, &["ccctl", "doctor", "--list"]);
    assert_eq!(opts, ["--list-checks"]);
    let fmt = complete_in_bash(&script, &["ccctl", "doctor", "--fail-on", ""]);
    assert_eq!(
        fmt.into_iter().collect::<BTreeSet<_>>(),
        ["error", "info", "warn"].map(String::from).into()
    );
}

/// Every command path (`ccctl rotate pcr0 next`) as a page name (`ccctl-rotate-pcr0-next`).
fn page_names() -> BTreeSet<String> {
    fn walk(cmd: &clap::Command, name: String, out: &mut BTreeSet<String>) {
        for sub in cmd.get_subcommands() {
            walk(sub, format!("{name}-{}", sub.get_name()), out);
        }
        out.insert(name);
    }
    let mut out = BTreeSet::new();
    walk(&ccctl::cli::Cli::command(), "ccctl".into(), &mut out);
    out
}

#[test]
fn every_command_has_a_man_page_with_its_options() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("man1");
    let o = ccctl(&["man", "--out", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let names = page_names();
    assert!(names.len() >= 25, "{names:?}");
    let written: BTreeSet<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let expected: BTreeSet<String> = names.iter().map(|n| format!("{n}.1")).collect();
    assert_eq!(written, expected);
    assert_eq!(stdout(&o).lines().count(), names.len());
    let doctor = std::fs::read_to_string(out.join("ccctl-doctor.1")).unwrap();
    assert!(doctor.contains(".TH ccctl-doctor 1"), "{doctor}");
    assert!(
        doctor.contains(".SH NAME\nccctl\\-doctor \\- Diagnose the chamber"),
        "{doctor}"
    );
    for flag in ["\\-\\-list\\-checks", "\\-\\-fail\\-on", "\\-\\-selector"] {
        assert!(doctor.contains(flag), "{flag} not in ccctl-doctor.1");
    }
    let next = std::fs::read_to_string(out.join("ccctl-rotate-pcr0-next.1")).unwrap();
    assert!(next.contains("ccctl rotate pcr0 next"), "{next}");

    // Without --out: the top page on stdout, listing the commands.
    let o = ccctl(&["man"]);
    assert_eq!(o.status.code(), Some(0));
    let top = stdout(&o);
    assert!(top.contains(".TH ccctl 1"), "{top}");
    assert!(top.contains("ccctl\\-doctor(1)"), "{top}");

    // A folder that cannot be made is exit 2 naming it.
    let file = dir.path().join("file");
    std::fs::write(&file, "").unwrap();
    let bad = file.join("man1");
    let o = ccctl(&["man", "--out", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains(&format!("cannot create '{}'", bad.display())),
        "{}",
        stderr(&o)
    );
}
