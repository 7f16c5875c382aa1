//! The Helm chart through the real helm (`scripts/tools` installs it into target/tools):
//! `helm lint --strict` on the chart and every values case, every bad case refused by helm
//! itself through values.schema.json, `helm template` of every good case validated against the
//! Kubernetes API schemas (kubernetes-validate --strict), and the pod helm renders checked by
//! `ccctl doctor -l` through the real kube client. Nothing is rendered by hand.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use cc_tests::apiserver::{ApiServer, Objects, device_plugin, labelled_node};
use cc_tests::{bin, tool, venv};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, PodStatus};

fn chart() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../charts/containment-chamber")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn helm(args: &[&str]) -> Output {
    Command::new(tool("helm"))
        .args(args)
        .env("HELM_CACHE_HOME", std::env::temp_dir().join("cc-helm-cache"))
        .env("HELM_CONFIG_HOME", std::env::temp_dir().join("cc-helm-config"))
        .output()
        .expect("run helm")
}

/// `helm template containment-chamber CHART ARGS...`: the manifests, or helm's refusal.
fn template(args: &[&str]) -> Result<String, String> {
    let chart = chart().display().to_string();
    let mut all = vec!["template", "containment-chamber", chart.as_str()];
    all.extend_from_slice(args);
    let o = helm(&all);
    if o.status.success() {
        Ok(String::from_utf8(o.stdout).unwrap())
    } else {
        Err(text(&o))
    }
}

fn documents(text: &str) -> Vec<serde_yaml_ng::Value> {
    serde_yaml_ng::Deserializer::from_str(text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .filter(|v: &serde_yaml_ng::Value| !v.is_null())
        .collect()
}

fn kind<'a>(docs: &'a [serde_yaml_ng::Value], kind: &str) -> Option<&'a serde_yaml_ng::Value> {
    docs.iter().find(|d| d["kind"] == kind)
}

/// A values file of `tests/values/`: `ok-*` must render, `bad-*` must be refused with every
/// `# expect: FRAGMENT` line of the file in helm's message.
struct Case {
    path: String,
    name: String,
    expects: Vec<String>,
}

impl Case {
    fn good(&self) -> bool {
        self.name.starts_with("ok-")
    }
}

fn cases() -> Vec<Case> {
    let mut cases: Vec<Case> = std::fs::read_dir(chart().join("tests/values"))
        .unwrap()
        .map(|e| {
            let path = e.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            assert!(
                name.starts_with("ok-") || name.starts_with("bad-"),
                "{name}: a values case is named ok-* or bad-*"
            );
            let expects = std::fs::read_to_string(&path)
                .unwrap()
                .lines()
                .filter_map(|l| l.strip_prefix("# expect: ").map(str::to_owned))
                .collect();
            Case {
                path: path.display().to_string(),
                name,
                expects,
            }
        })
        .collect();
    cases.sort_by(|a, b| a.name.cmp(&b.name));
    assert!(cases.iter().filter(|c| c.good()).count() >= 2);
    assert!(cases.iter().filter(|c| !c.good()).count() >= 4);
    cases
}

#[test]
fn helm_lint_strict_passes_the_chart_and_every_good_values_case() {
    let chart = chart().display().to_string();
    let o = helm(&["lint", "--strict", &chart]);
    assert!(o.status.success(), "{}", text(&o));
    for case in cases().iter().filter(|c| c.good()) {
        let o = helm(&["lint", "--strict", &chart, "-f", &case.path]);
        assert!(o.status.success(), "{}: {}", case.name, text(&o));
    }
}

/// Each bad case is refused by helm itself (lint and template) through values.schema.json,
/// with the message its file expects — not by a checker of ours that could disagree with helm.
#[test]
fn every_bad_values_case_is_refused_by_helm_through_the_schema() {
    let chart = chart().display().to_string();
    for case in cases().iter().filter(|c| !c.good()) {
        assert!(
            !case.expects.is_empty(),
            "{}: a bad case names what helm must say (# expect: ...)",
            case.name
        );
        let lint = helm(&["lint", "--strict", &chart, "-f", &case.path]);
        assert!(!lint.status.success(), "{}: lint passed", case.name);
        let refused = template(&["-f", &case.path]).expect_err(&case.name);
        for out in [text(&lint), refused] {
            assert!(
                out.contains("values don't meet the specifications of the schema"),
                "{}: {out}",
                case.name
            );
            for want in &case.expects {
                assert!(out.contains(want.as_str()), "{}: no '{want}' in {out}", case.name);
            }
        }
    }
}

fn kubernetes_validate(path: &Path) -> Output {
    Command::new(venv().join("bin/kubernetes-validate"))
        .args(["--strict", "--quiet"])
        .arg(path)
        .output()
        .expect("kubernetes-validate in target/venv (scripts/test installs it)")
}

/// The manifests helm renders for the defaults and every good case pass the Kubernetes 1.31
/// API schemas in strict mode (unknown fields fail); the Prometheus Operator's kinds, which the
/// validator has no schema for, are checked by their own tests.
#[test]
fn helm_template_of_every_good_case_passes_kubernetes_validate_strict() {
    let dir = tempfile::tempdir().unwrap();
    let mut renders = vec![("defaults".to_owned(), template(&[]).unwrap())];
    for case in cases().iter().filter(|c| c.good()) {
        renders.push((case.name.clone(), template(&["-f", &case.path]).unwrap()));
    }
    for (name, manifests) in &renders {
        let core: Vec<String> = documents(manifests)
            .into_iter()
            .filter(|d| {
                !d["apiVersion"]
                    .as_str()
                    .unwrap()
                    .starts_with("monitoring.coreos.com/")
            })
            .map(|d| serde_yaml_ng::to_string(&d).unwrap())
            .collect();
        assert!(core.len() >= 3, "{name}: {manifests}");
        let file = dir.path().join(format!("{name}.yaml"));
        std::fs::write(&file, core.join("---\n")).unwrap();
        let o = kubernetes_validate(&file);
        assert!(o.status.success(), "{name}: {}", text(&o));
    }
    // The validator is really checking: a misspelt field fails under --strict.
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, renders[0].1.replace("containerPort:", "containerPrt:")).unwrap();
    let o = kubernetes_validate(&bad);
    assert!(!o.status.success(), "{}", text(&o));
}

/// The good cases render what they are for: debug only where asked, no device without an
/// enclave, the in-pod ccctl pointed at the config when one is given.
#[test]
fn good_cases_render_what_they_say() {
    let env = |manifests: &str| -> Vec<String> {
        let docs = documents(manifests);
        let d = kind(&docs, "Deployment").unwrap();
        d["spec"]["template"]["spec"]["containers"][0]["env"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|e| e["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let values = chart().join("tests/values");
    let default = template(&[]).unwrap();
    assert!(!env(&default).contains(&"ENCLAVE_DEBUG".to_owned()));
    assert!(default.contains("aws.ec2.nitro/nitro_enclaves: \"1\""));
    let dev = template(&["-f", &values.join("ok-development.yaml").display().to_string()]).unwrap();
    assert!(env(&dev).contains(&"ENCLAVE_DEBUG".to_owned()));
    let bare = template(&["-f", &values.join("ok-no-enclave.yaml").display().to_string()]).unwrap();
    assert!(!bare.contains("nitro_enclaves"), "{bare}");
    assert!(!bare.contains("hugepages"), "{bare}");
    assert!(env(&bare).contains(&"CCCTL_CONFIG".to_owned()));
}

/// Every `.Values.x.y` used by a template exists in values.yaml (helm renders a typo as empty).
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
async fn the_pod_helm_renders_passes_doctor_through_the_kube_api() {
    let docs = documents(&template(&[]).unwrap());
    let deployment: Deployment =
        serde_yaml_ng::from_value(kind(&docs, "Deployment").unwrap().clone()).unwrap();
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
    assert_eq!(v["pods"].as_array().unwrap().len(), 1, "{out}");
    let report = &v["pods"][0]["report"];
    assert_eq!(report["summary"]["errors"], 0, "{out}");
    assert_eq!(report["summary"]["warnings"], 0, "{out}");
}

#[test]
fn the_service_monitor_scrapes_the_service_metrics_port() {
    assert!(kind(&documents(&template(&[]).unwrap()), "ServiceMonitor").is_none());
    let docs = documents(&template(&["--set", "metrics.serviceMonitor.enabled=true"]).unwrap());
    let sm = kind(&docs, "ServiceMonitor").unwrap();
    let svc = kind(&docs, "Service").unwrap();
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
