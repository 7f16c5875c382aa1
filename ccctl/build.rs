//! Bakes the git commit the binary is built from into `ccctl --version` (`CCCTL_GIT_COMMIT`):
//! `git rev-parse --short HEAD`, or "unknown" outside a git checkout (a source tarball, a
//! Docker build context without .git).

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let o = Command::new("git").args(args).output().ok()?;
    let s = String::from_utf8(o.stdout).ok()?.trim().to_owned();
    (o.status.success() && !s.is_empty()).then_some(s)
}

fn main() {
    let commit = git(&["rev-parse", "--short", "HEAD"]).unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=CCCTL_GIT_COMMIT={commit}");
    println!("cargo:rerun-if-env-changed=GIT_DIR");
    // A new commit moves HEAD (detached) or the branch it points to (a loose ref, or
    // packed-refs after `git gc`). Work trees keep HEAD in their own git dir and refs in the
    // common one: `--git-path` resolves both. Only existing paths are named, since cargo
    // reruns every build for a missing one.
    let mut watch = vec!["HEAD".to_owned(), "packed-refs".to_owned()];
    if let Some(head_ref) = git(&["symbolic-ref", "-q", "HEAD"]) {
        watch.push(head_ref);
    }
    for name in watch {
        let Some(path) = git(&["rev-parse", "--git-path", &name]) else {
            continue;
        };
        let path = std::path::PathBuf::from(path);
        // A branch only in packed-refs (a fresh clone) gets its loose file on the next
        // commit: watch the folder it will appear in.
        let watched = if path.exists() {
            Some(path)
        } else if name.starts_with("refs/") {
            path.parent().filter(|p| p.exists()).map(|p| p.to_owned())
        } else {
            None
        };
        if let Some(p) = watched {
            let p = std::fs::canonicalize(&p).unwrap_or(p);
            println!("cargo:rerun-if-changed={}", p.display());
        }
    }
}
