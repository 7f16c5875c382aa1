//! `ccctl` as the kubectl plugin `kubectl-ccctl`, run through the real kubectl client's plugin
//! mechanism (kubectl from `scripts/tools`): a folder on PATH holding a `kubectl-ccctl`
//! symlink to the built binary, as krew installs it. The name in usage lines and errors follows
//! argv[0], so it reads `kubectl ccctl`.

use std::path::Path;
use std::process::{Command, Output};

use cc_tests::apiserver::{ApiServer, Objects, device_plugin, healthy_pod, labelled_node};
use cc_tests::{bin, tool};

/// A PATH with only the plugin folder and the system's; HOME and KUBECONFIG in `dir`.
fn kubectl(dir: &Path, kubeconfig: Option<&Path>, args: &[&str]) -> Output {
    let plugins = dir.join("plugins");
    if !plugins.exists() {
        std::fs::create_dir(&plugins).unwrap();
        std::os::unix::fs::symlink(bin("ccctl"), plugins.join("kubectl-ccctl")).unwrap();
    }
    let mut cmd = Command::new(tool("kubectl"));
    cmd.args(args)
        .env_clear()
        .env("PATH", format!("{}:/usr/bin:/bin", plugins.display()))
        .env("HOME", dir)
        .env("NO_COLOR", "1");
    match kubeconfig {
        Some(kc) => cmd.env("KUBECONFIG", kc),
        None => cmd.env("KUBECONFIG", dir.join("no-kubeconfig")),
    };
    cmd.output().unwrap()
}

fn out(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn kubectl_finds_the_plugin_and_its_help_and_errors_say_kubectl_ccctl() {
    let dir = tempfile::tempdir().unwrap();
    let o = kubectl(dir.path(), None, &["plugin", "list"]);
    assert!(out(&o).contains("kubectl-ccctl"), "{}", out(&o));

    let o = kubectl(dir.path(), None, &["ccctl", "--help"]);
    assert_eq!(o.status.code(), Some(0), "{}", out(&o));
    assert!(
        out(&o).contains("Usage: kubectl ccctl [OPTIONS] <COMMAND>"),
        "{}",
        out(&o)
    );

    let o = kubectl(dir.path(), None, &["ccctl", "doctor", "--list-checks"]);
    assert_eq!(o.status.code(), Some(0), "{}", out(&o));
    assert!(out(&o).contains("kms.holders"), "{}", out(&o));

    // A usage error: clap's exit 2, passed through by kubectl, naming the plugin's command.
    let o = kubectl(dir.path(), None, &["ccctl", "doctor", "--no-such-flag"]);
    assert_eq!(o.status.code(), Some(2), "{}", out(&o));
    let text = out(&o);
    assert!(
        text.contains("unexpected argument '--no-such-flag'"),
        "{text}"
    );
    assert!(text.contains("Usage: kubectl ccctl doctor"), "{text}");
    assert!(!text.contains("Usage: ccctl"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_ccctl_doctor_pod_reads_the_cluster_of_the_kubeconfig() {
    let api = ApiServer::start(Objects {
        pods: vec![healthy_pod("signer-0", "chamber", "node-a")],
        nodes: vec![labelled_node("node-a")],
        daemonsets: vec![device_plugin(1, 1)],
        ..Default::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let kc = api.kubeconfig(dir.path(), "chamber");
    let o = tokio::task::spawn_blocking(move || {
        let o = kubectl(
            dir.path(),
            Some(&kc),
            &[
                "ccctl", "doctor", "--pod", "signer-0", "--exec", "none", "-o", "json",
            ],
        );
        let missing = kubectl(
            dir.path(),
            Some(&kc),
            &["ccctl", "doctor", "--pod", "signer-9", "--exec", "none"],
        );
        (o, missing)
    })
    .await
    .unwrap();
    let (ok, missing) = o;
    assert_eq!(ok.status.code(), Some(0), "{}", out(&ok));
    let v: serde_json::Value = serde_json::from_slice(&ok.stdout).unwrap();
    assert_eq!(v["summary"]["errors"], 0, "{}", out(&ok));
    assert!(
        v["summary"]["checks"].as_u64().unwrap() >= 5,
        "{}",
        out(&ok)
    );
    // It read the pod through the API: the device request was looked at and passed.
    assert!(
        v["checks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["id"] == "nsm.device-request" && c["status"] == "passed"),
        "{}",
        out(&ok)
    );
    // A pod that is not there: exit 2 (ccctl could not run), through kubectl.
    assert_eq!(missing.status.code(), Some(2), "{}", out(&missing));
    assert!(out(&missing).contains("signer-9"), "{}", out(&missing));
}
