//! `--help` of every command, snapshot-tested so the documentation cannot drift.

mod common;

use common::{ccctl, stdout};

#[test]
fn help_snapshots() {
    for args in [
        vec!["--help"],
        vec!["eif", "--help"],
        vec!["eif", "describe", "--help"],
        vec!["eif", "measure", "--help"],
        vec!["enclaves", "--help"],
        vec!["attest", "--help"],
        vec!["attest", "verify", "--help"],
        vec!["attest", "fetch", "--help"],
        vec!["policy", "--help"],
        vec!["policy", "check", "--help"],
        vec!["doctor", "--help"],
        vec!["demo", "--help"],
        vec!["tui", "--help"],
        vec!["rotate", "pcr0", "--help"],
        vec!["rotate", "pcr0", "start", "--help"],
        vec!["rotate", "pcr0", "next", "--help"],
        vec!["completion", "--help"],
        vec!["man", "--help"],
    ] {
        let o = ccctl(&args);
        assert_eq!(o.status.code(), Some(0));
        let name = args[..args.len() - 1].join("_");
        let name = if name.is_empty() {
            "ccctl".to_owned()
        } else {
            format!("ccctl_{name}")
        };
        insta::assert_snapshot!(name, stdout(&o));
    }
}
