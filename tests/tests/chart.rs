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
        .env(
            "HELM_CACHE_HOME",
            std::env::temp_dir().join("cc-helm-cache"),
        )
        .env(
            "HELM_CONFIG_HOME",
            std::env::temp_dir().join("cc-helm-config"),
        )
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
                assert!(
                    out.contains(want.as_str()),
                    "{}: no '{want}' in {out}",
                    case.name
                );
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
    std::fs::write(
        &bad,
        renders[0].1.replace("containerPort:", "containerPrt:"),
    )
    .unwrap();
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
    let dev = template(&[
        "-f",
        &values.join("ok-development.yaml").display().to_string(),
    ])
    .unwrap();
    assert!(env(&dev).contains(&"ENCLAVE_DEBUG".to_owned()));
    let bare = template(&[
        "-f",
        &values.join("ok-no-enclave.yaml").display().to_string(),
    ])
    .unwrap();
    assert!(!bare.contains("nitro_enclaves"), "{bare}");
    assert!(!bare.contains("hugepages"), "{bare}");
    assert!(env(&bare).contains(&"CCCTL_CONFIG".to_owned()));
    let mon = template(&[
        "-f",
        &values.join("ok-monitoring.yaml").display().to_string(),
    ])
    .unwrap();
    let docs = documents(&mon);
    let rule = serde_yaml_ng::to_string(kind(&docs, "PrometheusRule").unwrap()).unwrap();
    assert!(rule.contains("release: kube-prometheus-stack"), "{rule}");
    assert!(
        rule.contains("runbook_url: https://wiki.example.internal/containment-chamber/runbooks/kms.md#kms-access-denied"),
        "{rule}"
    );
    assert!(rule.contains(") < 3"), "{rule}");
    assert!(rule.contains("for: 15m"), "{rule}");
    assert!(kind(&docs, "ServiceMonitor").is_some());
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
                // The rendered spec is judged here; no signer runs behind it.
                "--no-live",
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
    // The proxy's own metrics: one endpoint per process, each a port of the Service and of
    // the container (PROXY_METRICS base 3100: vsock-stdout, then egress i at 3101+i).
    let names = |v: &serde_yaml_ng::Value, key: &str| -> Vec<String> {
        v.as_sequence()
            .unwrap()
            .iter()
            .map(|p| p[key].as_str().unwrap().to_owned())
            .collect()
    };
    let scraped = names(&sm["spec"]["endpoints"], "port");
    assert_eq!(
        scraped,
        [
            "metrics",
            "proxy-logs",
            "proxy-egress-0",
            "proxy-egress-1",
            "proxy-egress-2"
        ]
    );
    let container =
        &kind(&docs, "Deployment").unwrap()["spec"]["template"]["spec"]["containers"][0];
    for port in &scraped {
        assert!(
            names(&svc["spec"]["ports"], "name").contains(port),
            "{port}"
        );
        assert!(names(&container["ports"], "name").contains(port), "{port}");
    }
    let egress_2 = container["ports"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "proxy-egress-2")
        .unwrap();
    assert_eq!(egress_2["containerPort"], 3103);
    assert!(
        container["env"]
            .as_sequence()
            .unwrap()
            .iter()
            .any(|e| e["name"] == "PROXY_METRICS" && e["value"] == "0.0.0.0:3100")
    );
}

/// The PrometheusRule of `metrics.prometheusRule.enabled`, as helm renders it for release
/// "containment-chamber" in namespace "chamber": its `spec` (the rule groups) and the alerts.
fn rendered_rules() -> (serde_yaml_ng::Value, Vec<serde_yaml_ng::Value>) {
    assert!(kind(&documents(&template(&[]).unwrap()), "PrometheusRule").is_none());
    let docs = documents(
        &template(&[
            "--namespace",
            "chamber",
            "--set",
            "metrics.prometheusRule.enabled=true",
        ])
        .unwrap(),
    );
    let spec = kind(&docs, "PrometheusRule").unwrap()["spec"].clone();
    let alerts = spec["groups"]
        .as_sequence()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_sequence().unwrap().clone())
        .collect();
    (spec, alerts)
}

/// `promtool check rules` accepts the rendered rules and `promtool test rules` runs
/// tests/alerts/alerts_test.yaml against them: every alert firing on its input and quiet on
/// a look-alike, a counter reset included.
#[test]
fn alert_rules_pass_promtool_check_and_unit_tests() {
    let (spec, alerts) = rendered_rules();
    assert!(alerts.len() >= 8, "{alerts:?}");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("rules.yaml"),
        serde_yaml_ng::to_string(&spec).unwrap(),
    )
    .unwrap();
    let tests = std::fs::read_to_string(chart().join("tests/alerts/alerts_test.yaml")).unwrap();
    std::fs::write(dir.path().join("alerts_test.yaml"), &tests).unwrap();
    let promtool = |args: &[&str]| {
        Command::new(tool("promtool"))
            .args(args)
            .current_dir(dir.path())
            .output()
            .unwrap()
    };
    let o = promtool(&["check", "rules", "rules.yaml"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains(&format!("SUCCESS: {} rules found", alerts.len())),
        "{}",
        text(&o)
    );
    let o = promtool(&["test", "rules", "alerts_test.yaml"]);
    assert!(o.status.success(), "{}", text(&o));
    // Every alert has a firing case in the unit tests.
    for a in &alerts {
        let name = a["alert"].as_str().unwrap();
        assert!(
            tests.contains(&format!(
                "alertname: {name}\n        exp_alerts:\n          - "
            )),
            "no firing case for {name} in alerts_test.yaml"
        );
    }
    // The unit tests can fail: a rule that never fires breaks them.
    let broken = serde_yaml_ng::to_string(&spec)
        .unwrap()
        .replace("< 2", "< 0");
    std::fs::write(dir.path().join("rules.yaml"), broken).unwrap();
    let o = promtool(&["test", "rules", "alerts_test.yaml"]);
    assert!(!o.status.success(), "{}", text(&o));
}

/// Metric names (`# TYPE` families, counters with `_total`) in one scrape.
fn exported(scrape: &str) -> BTreeSet<String> {
    scrape
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| {
            let (name, ty) = l.split_once(' ')?;
            Some(if ty == "counter" {
                format!("{name}_total")
            } else {
                name.to_owned()
            })
        })
        .collect()
}

/// The real proxy, serving metrics on a free port: vsock-stdout, or an egress forwarder named
/// `kms` whose upstream refuses (one connection made through it, so its error series exists).
fn proxy_scrape(egress: bool) -> String {
    use cc_tests::{Proc, free_port, wait_for_tcp, wait_until};
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let sock = dir.path().join("listen.sock");
    let listen = format!("unix://{}", sock.display());
    let closed = format!("tcp://127.0.0.1:{}", free_port());
    let metrics = format!("tcp://127.0.0.1:{port}");
    let mut cmd = Command::new(bin("containment-chamber-enclave-proxy"));
    cmd.args(["--metrics", &metrics]);
    if egress {
        cmd.args([
            "egress", "--name", "kms", "--listen", &listen, "--target", &closed,
        ]);
    } else {
        cmd.args(["vsock-stdout", "--listen", &listen]);
    }
    let mut p = Proc::start(&mut cmd);
    wait_for_tcp(port);
    let t = std::time::Duration::from_secs(20);
    if egress {
        // One connection (retried only while the socket is not listening yet).
        wait_until("egress accepting", t, || {
            std::os::unix::net::UnixStream::connect(&sock).is_ok()
        });
        wait_until("connect error counted", t, || {
            cc_tests::http_get(port, "/metrics").is_ok_and(|m| {
                m.contains("containment_proxy_errors_total{forwarder=\"kms\",kind=\"connect\"} 1")
            })
        });
    } else {
        // The listener registers its series once bound, just after the metrics server.
        wait_until("vsock-stdout series", t, || {
            cc_tests::http_get(port, "/metrics")
                .is_ok_and(|m| m.contains("forwarder=\"vsock-stdout\""))
        });
    }
    let scrape = cc_tests::http_get(port, "/metrics").unwrap();
    p.stop(t);
    scrape
}

/// Every series name the binaries export: the enclave's contract (`cc_proto::metrics`, a
/// histogram with its `_bucket`/`_sum`/`_count`), the proxy's scraped from the real proxy
/// (vsock-stdout, and an egress forwarder with a connect error), and Prometheus's `up`.
fn exported_metric_names() -> BTreeSet<String> {
    let logs = proxy_scrape(false);
    let egress = proxy_scrape(true);
    assert!(logs.contains("forwarder=\"vsock-stdout\""), "{logs}");
    let mut known = BTreeSet::new();
    for family in cc_proto::metrics::ENCLAVE_SERIES {
        known.insert((*family).to_owned());
        if *family == cc_proto::metrics::SIGNING_DURATION_SECONDS {
            for suffix in ["_bucket", "_sum", "_count"] {
                known.insert(format!("{family}{suffix}"));
            }
        }
    }
    known.extend(exported(&logs));
    known.extend(exported(&egress));
    known.insert("up".into());
    assert!(
        known.contains("containment_proxy_errors_total"),
        "{known:?}"
    );
    known
}

/// The metric names a PromQL expression reads (ours and `up`).
fn metric_words(expr: &str) -> impl Iterator<Item = &str> {
    expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("containment_") || *w == "up")
}

/// The Grafana dashboard (`metrics.grafanaDashboard.enabled`) helm puts in a ConfigMap: valid
/// JSON, every query valid PromQL (promtool checks them as recording rules, Grafana's
/// variables filled in) over metrics the binaries export.
#[test]
fn the_grafana_dashboard_queries_only_exported_metrics() {
    assert!(!template(&[]).unwrap().contains("grafana_dashboard"));
    let docs = documents(&template(&["--set", "metrics.grafanaDashboard.enabled=true"]).unwrap());
    let cm = docs
        .iter()
        .find(|d| d["kind"] == "ConfigMap" && d["metadata"]["labels"]["grafana_dashboard"] == "1")
        .expect("the dashboard ConfigMap with the sidecar's label");
    let dashboard: serde_json::Value =
        serde_json::from_str(cm["data"]["containment-chamber.json"].as_str().unwrap()).unwrap();
    let exprs: Vec<String> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().unwrap().clone())
        .map(|t| t["expr"].as_str().unwrap().to_owned())
        .collect();
    assert!(exprs.len() >= 10, "{exprs:?}");
    let known = exported_metric_names();
    let mut used = BTreeSet::new();
    for e in &exprs {
        for w in metric_words(e) {
            assert!(
                known.contains(w),
                "dashboard query uses '{w}', which nothing exports: {e}"
            );
            used.insert(w.to_owned());
        }
    }
    // It shows the enclave's families and the proxy's.
    for family in cc_proto::metrics::ENCLAVE_SERIES {
        assert!(
            used.iter().any(|u| u.starts_with(family)),
            "no panel for {family}"
        );
    }
    assert!(used.contains("containment_proxy_errors_total"));
    // Valid PromQL: promtool parses each query as a recording rule.
    let rules = serde_json::json!({"groups": [{"name": "dashboard", "rules": exprs.iter().enumerate().map(|(i, e)| serde_json::json!({
        "record": format!("dashboard:query{i}"),
        "expr": e.replace("$namespace", "chamber").replace("$pod", ".*"),
    })).collect::<Vec<_>>()}]});
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dashboard-queries.yaml");
    std::fs::write(&file, serde_yaml_ng::to_string(&rules).unwrap()).unwrap();
    let o = Command::new(tool("promtool"))
        .args(["check", "rules"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains(&format!("SUCCESS: {} rules found", exprs.len())),
        "{}",
        text(&o)
    );
}

/// Each alert: a runbook_url into a section of runbooks/ that exists, a severity, a summary
/// naming the pod (the absent alert names the release), only metrics the binaries export
/// (the enclave's contract in cc_proto::metrics; the proxy's scraped from the real proxy,
/// with the label values the rules match), and a row in the README's alert table.
#[test]
fn alerts_link_runbook_sections_and_use_only_exported_metrics() {
    let (_, alerts) = rendered_rules();
    let root = chart().join("../..");
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let known = exported_metric_names();
    let base = "https://example.invalid/containment-chamber/blob/main/runbooks/";
    for a in &alerts {
        let name = a["alert"].as_str().unwrap();
        let ann = &a["annotations"];
        let url = ann["runbook_url"].as_str().unwrap();
        let (file, anchor) = url
            .strip_prefix(base)
            .and_then(|r| r.split_once('#'))
            .unwrap_or_else(|| panic!("{name}: runbook_url {url}"));
        let page = std::fs::read_to_string(root.join("runbooks").join(file))
            .unwrap_or_else(|e| panic!("{name}: {file}: {e}"));
        assert!(
            page.lines().any(|l| l.trim() == format!("## {anchor}")),
            "{name}: no section '## {anchor}' in runbooks/{file}"
        );
        let summary = ann["summary"].as_str().unwrap();
        assert!(
            summary.contains("{{ $labels.pod }}") || name == "ContainmentChamberMetricsAbsent",
            "{name}: {summary}"
        );
        assert!(
            ["warning", "critical"].contains(&a["labels"]["severity"].as_str().unwrap()),
            "{name}"
        );
        let expr = a["expr"].as_str().unwrap();
        for w in metric_words(expr) {
            assert!(
                known.contains(w),
                "{name} uses '{w}', which nothing exports"
            );
        }
        assert!(
            expr.contains("job=\"containment-chamber\", namespace=\"chamber\""),
            "{name}: {expr}"
        );
        assert!(
            readme.contains(&format!("| `{name}` |")),
            "{name} not in README"
        );
    }
}
