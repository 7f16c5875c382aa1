//! `ccctl --version` names the git commit the binary was built from (build.rs), and says
//! "unknown" when built outside a git checkout.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::{ccctl, stdout};

#[test]
fn version_names_the_commit_of_this_checkout() {
    let head = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".into());
    let o = ccctl(&["--version"]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(
        stdout(&o),
        format!("ccctl {} ({head})\n", env!("CARGO_PKG_VERSION"))
    );
}

/// The build scripts cargo compiled for ccctl (target/<profile>/build/ccctl-*/).
fn build_scripts() -> Vec<PathBuf> {
    let profile = PathBuf::from(env!("CARGO_BIN_EXE_ccctl"));
    let build = profile.parent().unwrap().join("build");
    std::fs::read_dir(build)
        .unwrap()
        .filter_map(|e| {
            let p = e.unwrap().path();
            let script = p.join("build-script-build");
            (p.file_name()?.to_str()?.starts_with("ccctl-") && script.exists()).then_some(script)
        })
        .collect()
}

#[test]
fn outside_a_git_checkout_the_commit_is_unknown() {
    let scripts = build_scripts();
    assert!(!scripts.is_empty());
    let dir = tempfile::tempdir().unwrap();
    for script in scripts {
        let o = Command::new(&script)
            .current_dir(dir.path())
            .env("GIT_CEILING_DIRECTORIES", dir.path().parent().unwrap())
            .env_remove("GIT_DIR")
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", script.display());
        let out = stdout(&o);
        assert!(
            out.contains("cargo:rustc-env=CCCTL_GIT_COMMIT=unknown\n"),
            "{}: {out}",
            script.display()
        );
        // Nothing to watch outside git, and never a missing file (cargo would rebuild always).
        assert!(!out.contains("rerun-if-changed"), "{out}");
    }
}
