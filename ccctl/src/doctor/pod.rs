//! Checks over what the Kubernetes API says about the pod (pure functions of [`PodFacts`]):
//! the device request, hugepages, the device plugin on the pod's node, the node label, the
//! pod's phase and warning events.

use cc_proto::findings::{Finding, Severity};
use k8s_openapi::api::core::v1::Container;

use super::{CheckResult, CheckStatus, Report};
use crate::output::clean;
use crate::probe::k8s::{DEVICE_PLUGIN, DEVICE_RESOURCE, NODE_LABEL, PodFacts};

type PodCheck = (&'static str, &'static str, fn(&PodFacts) -> Vec<Finding>);

/// The pod checks, in display order: (id, description, check).
pub const CHECKS: &[PodCheck] = &[
    (
        "logs.pod-log",
        "the pod log's last lines: known failure signatures",
        pod_log,
    ),
    ("enclave.pod-phase", "the pod is Running", pod_phase),
    (
        "nsm.device-request",
        "a container requests aws.ec2.nitro/nitro_enclaves: \"1\"",
        device_request,
    ),
    (
        "enclave.hugepages",
        "hugepages requested and mounted (emptyDir medium HugePages)",
        hugepages,
    ),
    (
        "nsm.device-plugin",
        "the device-plugin DaemonSet exists and is ready",
        device_plugin,
    ),
    (
        "nsm.node-label",
        "the pod's node carries aws-nitro-enclaves-k8s-dp=enabled",
        node_label,
    ),
    ("enclave.pod-events", "no warning events on the pod", events),
];

/// What a pod check saw, in a few words (its row shows this instead of its rule).
fn observed(id: &str, f: &PodFacts) -> Option<String> {
    Some(match id {
        "enclave.pod-phase" => format!(
            "phase {}",
            f.pod
                .status
                .as_ref()
                .and_then(|s| s.phase.clone())
                .unwrap_or_else(|| "unknown".into())
        ),
        "nsm.device-request" => {
            let n = containers(f)
                .filter(|c| {
                    c.resources
                        .as_ref()
                        .and_then(|r| r.limits.as_ref())
                        .is_some_and(|l| l.contains_key("aws.ec2.nitro/nitro_enclaves"))
                })
                .count();
            format!(
                "{} requesting aws.ec2.nitro/nitro_enclaves",
                crate::output::plural(n, "container", "containers")
            )
        }
        "nsm.device-plugin" => match &f.device_plugin {
            None => "no device-plugin DaemonSet".into(),
            Some(ds) => {
                let st = ds.status.as_ref();
                format!(
                    "device plugin ready on {}/{} nodes",
                    st.map(|s| s.number_ready).unwrap_or(0),
                    st.map(|s| s.desired_number_scheduled).unwrap_or(0)
                )
            }
        },
        "nsm.node-label" => match &f.node {
            None => "node not readable".into(),
            Some(n) => format!(
                "node {} {}",
                n.metadata.name.clone().unwrap_or_default(),
                if n.metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get("aws-nitro-enclaves-k8s-dp"))
                    .is_some_and(|v| v == "enabled")
                {
                    "labelled aws-nitro-enclaves-k8s-dp=enabled"
                } else {
                    "not labelled"
                }
            ),
        },
        "enclave.pod-events" => {
            let warnings = f
                .events
                .iter()
                .filter(|e| e.type_.as_deref() == Some("Warning"))
                .count();
            format!(
                "{}, {} warning",
                crate::output::plural(f.events.len(), "event", "events"),
                warnings
            )
        }
        "logs.pod-log" => match &f.logs {
            Some(Ok(t)) => format!(
                "last {} of the pod log scanned",
                crate::output::plural(t.lines().count(), "line", "lines")
            ),
            Some(Err(_)) => "pod log not readable".into(),
            None => return None,
        },
        _ => return None,
    })
}

fn containers(f: &PodFacts) -> impl Iterator<Item = &Container> {
    f.pod.spec.iter().flat_map(|s| s.containers.iter())
}

fn pod_name(f: &PodFacts) -> String {
    f.pod.metadata.name.clone().unwrap_or_default()
}

fn pod_phase(f: &PodFacts) -> Vec<Finding> {
    let phase = f
        .pod
        .status
        .as_ref()
        .and_then(|s| s.phase.clone())
        .unwrap_or_default();
    if phase == "Running" {
        return Vec::new();
    }
    vec![
        Finding::new(
            "enclave.pod-not-running",
            Severity::Error,
            format!("pod '{}' is {phase}, not Running", pod_name(f)),
        )
        .with("phase", phase)
        .fix(
            "Look at the pod's events and logs",
            &["kubectl describe pod POD", "kubectl logs POD"],
        ),
    ]
}

fn device_request(f: &PodFacts) -> Vec<Finding> {
    let ok = containers(f).any(|c| {
        c.resources
            .as_ref()
            .and_then(|r| r.limits.as_ref())
            .and_then(|l| l.get(DEVICE_RESOURCE))
            .is_some_and(|q| q.0 == "1")
    });
    if ok {
        return Vec::new();
    }
    vec![Finding::new(
        "nsm.device-not-requested",
        Severity::Error,
        format!("no container of pod '{}' has resources.limits {DEVICE_RESOURCE}: \"1\": /dev/nitro_enclaves will not be in the pod", pod_name(f)),
    )
    .fix("Add the limit to the parent container (the Helm chart does when enclave.enabled=true)", &[])]
}

fn hugepages(f: &PodFacts) -> Vec<Finding> {
    let mut out = Vec::new();
    let requested = containers(f).any(|c| {
        c.resources
            .as_ref()
            .and_then(|r| r.limits.as_ref())
            .is_some_and(|l| l.keys().any(|k| k.starts_with("hugepages-")))
    });
    if !requested {
        out.push(
            Finding::new(
                "enclave.hugepages-not-requested",
                Severity::Error,
                format!(
                    "pod '{}' requests no hugepages: nitro-cli run-enclave fails with E35",
                    pod_name(f)
                ),
            )
            .fix(
                "Request hugepages-2Mi (or hugepages-1Gi) for the parent container",
                &[],
            ),
        );
    }
    let mounted = f
        .pod
        .spec
        .iter()
        .flat_map(|s| s.volumes.iter().flatten())
        .any(|v| {
            v.empty_dir
                .as_ref()
                .and_then(|e| e.medium.as_deref())
                .is_some_and(|m| m.starts_with("HugePages"))
        });
    if !mounted {
        out.push(
            Finding::new(
                "enclave.hugepages-not-mounted",
                Severity::Warn,
                format!(
                    "pod '{}' mounts no emptyDir with medium HugePages",
                    pod_name(f)
                ),
            )
            .fix(
                "Mount an emptyDir {medium: HugePages} in the parent container",
                &[],
            ),
        );
    }
    out
}

fn device_plugin(f: &PodFacts) -> Vec<Finding> {
    let Some(ds) = &f.device_plugin else {
        return vec![Finding::new(
            "nsm.device-plugin-missing",
            Severity::Error,
            format!("DaemonSet kube-system/{DEVICE_PLUGIN} does not exist: no node advertises {DEVICE_RESOURCE}"),
        )
        .fix("Install the AWS Nitro Enclaves Kubernetes device plugin", &["kubectl apply -f https://raw.githubusercontent.com/aws/aws-nitro-enclaves-k8s-device-plugin/main/aws-nitro-enclaves-k8s-ds.yaml"])];
    };
    let st = ds.status.clone().unwrap_or_default();
    if st.number_ready < st.desired_number_scheduled || st.desired_number_scheduled == 0 {
        return vec![
            Finding::new(
                "nsm.device-plugin-not-ready",
                Severity::Error,
                format!(
                    "DaemonSet {DEVICE_PLUGIN}: {} of {} pods ready",
                    st.number_ready, st.desired_number_scheduled
                ),
            )
            .with("ready", st.number_ready)
            .with("desired", st.desired_number_scheduled)
            .fix(
                "Look at the device-plugin pods on the enclave nodes",
                &["kubectl -n kube-system get pods -l name=aws-nitro-enclaves-k8s-dp -o wide"],
            ),
        ];
    }
    Vec::new()
}

fn node_label(f: &PodFacts) -> Vec<Finding> {
    let Some(node) = &f.node else {
        return Vec::new();
    };
    let labelled = node
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(NODE_LABEL.0))
        .is_some_and(|v| v == NODE_LABEL.1);
    if labelled {
        return Vec::new();
    }
    let name = node.metadata.name.clone().unwrap_or_default();
    vec![
        Finding::new(
            "nsm.node-not-labelled",
            Severity::Error,
            format!(
                "node '{name}' lacks the label {}={}: the device plugin does not run there",
                NODE_LABEL.0, NODE_LABEL.1
            ),
        )
        .with("node", name.clone())
        .fix(
            "Label the node (and make sure it has EnclaveOptions.Enabled)",
            &[&format!(
                "kubectl label node {name} {}={}",
                NODE_LABEL.0, NODE_LABEL.1
            )],
        ),
    ]
}

fn events(f: &PodFacts) -> Vec<Finding> {
    let warnings: Vec<String> = f
        .events
        .iter()
        .filter(|e| e.type_.as_deref() == Some("Warning"))
        .map(|e| {
            clean(&format!(
                "{}: {}",
                e.reason.clone().unwrap_or_default(),
                e.message.clone().unwrap_or_default()
            ))
        })
        .collect();
    if warnings.is_empty() {
        return Vec::new();
    }
    vec![
        Finding::new(
            "enclave.pod-warnings",
            Severity::Warn,
            format!(
                "{} warning event(s) on the pod: {}",
                warnings.len(),
                warnings[0]
            ),
        )
        .with("events", warnings),
    ]
}

/// Run the pod checks over fetched facts.
fn pod_log(f: &PodFacts) -> Vec<Finding> {
    match &f.logs {
        Some(Ok(text)) => super::signatures::scan(
            text,
            &format!(
                "the pod log (last {} lines)",
                crate::probe::k8s::LOG_TAIL_LINES
            ),
        ),
        Some(Err(e)) => vec![
            Finding::new(
                "logs.pod-log-unreadable",
                Severity::Warn,
                format!("{e}: the failure-signature scan was skipped"),
            )
            .fix(
                "Grant the doctor's identity get on pods/log in this namespace",
                &[],
            ),
        ],
        None => Vec::new(),
    }
}

pub fn report(facts: &PodFacts, only: &[String]) -> Report {
    let mut checks = Vec::new();
    for (id, description, check) in CHECKS {
        if !only.is_empty() && !only.iter().any(|o| super::selects_id(id, o)) {
            continue;
        }
        let mut r = CheckResult::of(id, description, check(facts));
        r.observed = observed(id, facts).map(|o| crate::output::clean(&o));
        // What could not be read is not looked at: unknown, with why, never a pass.
        if let Some(why) = facts.unread.get(id) {
            r = CheckResult::of(id, description, Vec::new());
            r.status = CheckStatus::Unknown;
            r.note = Some(crate::output::clean(why));
        } else if *id == "nsm.node-label" && facts.node.is_none() {
            r.status = CheckStatus::Skipped;
            r.note = Some("the pod is not on a node yet".into());
            r.observed = None;
        }
        checks.push(r);
    }
    let mut r = Report {
        checks,
        ..Report::default()
    };
    r.resummarise();
    r
}
