//! The Helm chart without helm (none on these machines): values against values.schema.json
//! as helm merges them, the rendered manifests against the Kubernetes API schemas
//! (kubernetes-validate --strict), every `.Values` path of the templates present in
//! values.yaml, and the rendered pod checked by `ccctl doctor --pod` through the real kube
//! client.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use cc_tests::apiserver::{ApiServer, Objects, device_plugin, labelled_node};
use cc_tests::{bin, venv};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, PodStatus};

fn chart() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../charts/containment-chamber")
}

fn documents(path: &Path) -> Vec<serde_yaml_ng::Value> {
    let text = std::fs::read_to_string(path).unwrap();
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .filter(|v: &serde_yaml_ng::Value| !v.is_null())
        .collect()
}

#[test]
fn values_are_checked_against_the_schema_as_helm_merges_them() {
    let dir = chart().join("tests");
    let mut files = vec!["-".to_owned()];
    for e in std::fs::read_dir(dir.join("values")).unwrap() {
        files.push(e.unwrap().path().display().to_string());
    }
    let o = Command::new(venv().join("bin/python"))
        .arg(dir.join("check_values.py"))
        .args(&files)
        .output()
        .expect("target/venv (scripts/test creates it)");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut seen = 0;
    for line in String::from_utf8_lossy(&o.stdout).lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let file = v["file"].as_str().unwrap();
        let name = Path::new(file).file_name().unwrap().to_string_lossy();
        let want = !name.starts_with("bad-");
        assert_eq!(v["valid"], want, "{line}");
        if name == "bad-debug-in-production.yaml" {
            assert!(
                v["errors"][0]
                    .as_str()
                    .unwrap()
                    .contains("production: true must not come with enclave.debug: true"),
                "{line}"
            );
        }
        if name == "bad-types.yaml" {
            assert_eq!(v["errors"].as_array().unwrap().len(), 3, "{line}");
        }
        seen += 1;
    }
    assert_eq!(seen, files.len());
}

#[test]
fn rendered_manifests_pass_the_api_schemas_and_a_broken_one_does_not() {
    let validate = |f: &Path| {
        Command::new(venv().join("bin/kubernetes-validate"))
            .args(["--strict", "--quiet"])
            .arg(f)
            .output()
            .expect("kubernetes-validate in target/venv (scripts/test installs it)")
    };
    let good = chart().join("tests/rendered/default.yaml");
    let o = validate(&good);
    assert!(
        o.status.success(),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    // The validator is really checking: a misspelt field fails under --strict.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        std::fs::read_to_string(&good)
            .unwrap()
            .replace("containerPort:", "containerPrt:"),
    )
    .unwrap();
    let o = validate(&bad);
    assert!(
        !o.status.success(),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
}

/// Every `.Values.x.y` used by a template exists in values.yaml (a typo would render empty).
#[test]
fn templates_only_use_values_that_exist() {
    let values: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(chart().join("values.yaml")).unwrap())
            .unwrap();
    let mut paths = BTreeSet::new();
    for e in std::fs::read_dir(chart().join("templates")).unwrap() {
        let text = std::fs::read_to_string(e.unwrap().path()).unwrap();
        for part in text.split(".Values.").skip(1) {
            let p: String = part
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '.' || *c == '_')
                .collect();
            paths.insert(p.trim_end_matches('.').to_owned());
        }
    }
    assert!(paths.len() > 15, "{paths:?}");
    for p in &paths {
        let mut v = &values;
        for k in p.split('.') {
            v = v
                .get(k)
                .unwrap_or_else(|| panic!(".Values.{p} is not in values.yaml"));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rendered_pod_passes_doctor_through_the_kube_api() {
    let docs = documents(&chart().join("tests/rendered/default.yaml"));
    let deployment: Deployment = docs
        .iter()
        .find(|d| d["kind"] == "Deployment")
        .map(|d| serde_yaml_ng::from_value(d.clone()).unwrap())
        .unwrap();
    let template = deployment.spec.template;
    let mut spec = template.spec.unwrap();
    spec.node_name = Some("node-a".into());
    let mut meta = template.metadata.unwrap();
    meta.name = Some("containment-chamber-0".into());
    meta.namespace = Some("chamber".into());
    let pod = Pod {
        metadata: meta,
        spec: Some(spec),
        status: Some(PodStatus {
            phase: Some("Running".into()),
            ..PodStatus::default()
        }),
    };
    let api = ApiServer::start(Objects {
        pods: vec![pod],
        nodes: vec![labelled_node("node-a")],
        daemonsets: vec![device_plugin(1, 1)],
        ..Default::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let kc = api.kubeconfig(dir.path(), "chamber");
    let o = tokio::task::spawn_blocking(move || {
        Command::new(bin("ccctl"))
            .args([
                "doctor",
                "-l",
                "app=containment-chamber",
                "--exec",
                "none",
                "-o",
                "json",
            ])
            .env("KUBECONFIG", kc)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let report = &v["pods"][0]["report"];
    assert_eq!(report["summary"]["errors"], 0, "{out}");
    assert_eq!(report["summary"]["warnings"], 0, "{out}");
}

#[test]
fn the_service_monitor_scrapes_the_service_metrics_port() {
    let sm = &documents(&chart().join("tests/rendered/servicemonitor.yaml"))[0];
    let svc = documents(&chart().join("tests/rendered/default.yaml"))
        .into_iter()
        .find(|d| d["kind"] == "Service")
        .unwrap();
    assert_eq!(sm["kind"], "ServiceMonitor");
    assert_eq!(
        sm["spec"]["selector"]["matchLabels"],
        svc["spec"]["selector"]
    );
    assert_eq!(sm["spec"]["endpoints"][0]["port"], "metrics");
    assert_eq!(sm["spec"]["endpoints"][0]["path"], "/metrics");
    assert!(
        svc["spec"]["ports"]
            .as_sequence()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "metrics" && p["port"] == 3000)
    );
}
