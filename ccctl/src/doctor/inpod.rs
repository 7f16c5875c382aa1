//! The in-pod probes: `ccctl doctor --local -o json` inside the pod when the image has ccctl;
//! otherwise the raw commands (`nitro-cli describe-enclaves`, a device test), through
//! [`crate::probe::exec::PodExec`].

use std::sync::Arc;

use cc_proto::findings::{Finding, Severity};

use super::{CheckResult, Report};
use crate::probe::exec::PodExec;

fn result(id: &str, description: &str, findings: Vec<Finding>) -> CheckResult {
    CheckResult::of(id, description, findings)
}

/// In-pod probe exec sessions open at once in `doctor -l`: a 200-pod fleet runs in a few
/// rounds, not 200 sessions at once. (A probe abandoned at its deadline frees its place; its
/// process in the pod may still run to its own end.)
pub const MAX_EXECS: usize = 64;

/// A pod judged as `doctor --pod` judges it: the API-side checks of its `facts`, then (with
/// `exec`) the in-pod probes merged in, their signer reading taken, and the verdict judged
/// again. The dashboard's doctor for the pod it watches calls this too. `only`: `--checks`.
pub async fn judge_pod(
    facts: &crate::probe::k8s::PodFacts,
    exec: Option<Arc<dyn PodExec>>,
    timeout: std::time::Duration,
    only: &[String],
) -> Report {
    let mut report = super::pod::report(facts, only);
    let Some(exec) = exec else {
        return report;
    };
    let namespace = facts.pod.metadata.namespace.clone().unwrap_or_default();
    let pod = facts.pod.metadata.name.clone().unwrap_or_default();
    let inside = within(exec, &namespace, &pod, timeout).await;
    report.signer = inside.signer;
    report.checks.extend(
        inside
            .checks
            .into_iter()
            .filter(|c| only.is_empty() || only.iter().any(|o| super::selects_id(&c.id, o))),
    );
    super::merge_log_signatures(&mut report.checks);
    report.resummarise();
    report
}

/// [`in_pod`] with `timeout` for the probes inside (and 2 s more for the exec around them): a
/// deadline passed is an `enclave.in-pod-probe-failed` warning, never an empty report that
/// would read as "nothing wrong inside".
pub async fn within(
    exec: Arc<dyn PodExec>,
    namespace: &str,
    pod: &str,
    timeout: std::time::Duration,
) -> Report {
    let deadline = timeout + std::time::Duration::from_secs(2);
    let arg = format!("{}ms", timeout.as_millis());
    match tokio::time::timeout(deadline, in_pod(exec, namespace, pod, &arg)).await {
        Ok(r) => r,
        Err(_) => Report {
            checks: vec![result(
                "enclave.in-pod",
                "probes inside the pod",
                vec![Finding::new(
                    "enclave.in-pod-probe-failed",
                    Severity::Warn,
                    format!("the probes inside the pod did not answer within {deadline:?}"),
                )],
            )],
            ..Report::default()
        },
    }
}

/// The in-pod probes: ccctl's own local doctor if the image has it, else the raw commands.
pub async fn in_pod(
    exec: Arc<dyn PodExec>,
    namespace: &str,
    pod: &str,
    timeout_arg: &str,
) -> Report {
    let checks = |checks: Vec<CheckResult>| Report {
        checks,
        ..Report::default()
    };
    let cmd = vec![
        "ccctl".into(),
        "-o".into(),
        "json".into(),
        "doctor".into(),
        "--local".into(),
        "--timeout".into(),
        timeout_arg.into(),
    ];
    match exec.exec(namespace, pod, cmd).await {
        Ok(out) if out.status.is_some() => {
            if let Ok(r) = serde_json::from_slice::<Report>(&out.stdout) {
                // Its checks and the signer state it read; the verdict is judged again over
                // the whole report.
                return r;
            }
            let text = crate::output::clean(&String::from_utf8_lossy(&out.stderr));
            return checks(vec![result(
                "enclave.in-pod",
                "ccctl doctor --local inside the pod",
                vec![Finding::new(
                    "enclave.in-pod-probe-failed",
                    Severity::Warn,
                    format!(
                        "ccctl doctor --local in the pod gave no report: {}",
                        text.trim()
                    ),
                )],
            )]);
        }
        Ok(_) => {}
        Err(e) => {
            return checks(vec![result(
                "enclave.in-pod",
                "probes inside the pod",
                vec![Finding::new(
                    "enclave.in-pod-probe-failed",
                    Severity::Warn,
                    format!("cannot exec in the pod: {e}"),
                )],
            )]);
        }
    }
    // No ccctl in the image: the raw commands.
    let mut list = Vec::new();
    let nitro = exec
        .exec(
            namespace,
            pod,
            vec!["nitro-cli".into(), "describe-enclaves".into()],
        )
        .await;
    let findings = match nitro {
        Ok(o) if o.status == Some(0) => {
            match cc_proto::nitro_cli::parse_describe_enclaves(&String::from_utf8_lossy(&o.stdout))
            {
                Ok(list) => super::checks::enclave_findings(&list, false),
                Err(e) => vec![Finding::new("enclave.nitro-cli-error", Severity::Error, e)],
            }
        }
        Ok(o) if o.status.is_some() => {
            let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
            vec![super::checks::nitro_cli_error(
                &crate::probe::nitro_cli::NitroCliFailure {
                    exit_status: o.status,
                    error: cc_proto::nitro_cli::CliError::parse(&stderr),
                    stderr,
                },
            )]
        }
        Ok(_) => vec![Finding::new(
            "enclave.nitro-cli-missing",
            Severity::Error,
            "nitro-cli is not in the pod's image",
        )],
        Err(e) => vec![Finding::new(
            "enclave.in-pod-probe-failed",
            Severity::Warn,
            e,
        )],
    };
    list.push(result(
        "enclave.nitro-cli",
        "nitro-cli describe-enclaves in the pod",
        findings,
    ));
    let dev = exec
        .exec(
            namespace,
            pod,
            vec!["test".into(), "-e".into(), "/dev/nitro_enclaves".into()],
        )
        .await;
    let mut device = match &dev {
        Ok(o) if o.status == Some(0) => {
            result("nsm.device", "/dev/nitro_enclaves in the pod", Vec::new())
        }
        Ok(o) if o.status.is_some() => result(
            "nsm.device",
            "/dev/nitro_enclaves in the pod",
            vec![Finding::new(
                "nsm.device-missing",
                Severity::Error,
                "/dev/nitro_enclaves is missing in the pod",
            )],
        ),
        _ => result("nsm.device", "/dev/nitro_enclaves in the pod", Vec::new()),
    };
    // Not looked at is not passed.
    match dev {
        Ok(o) if o.status.is_none() => {
            device.status = super::CheckStatus::Unknown;
            device.note =
                Some("`test -e /dev/nitro_enclaves` in the pod gave no exit status".into());
        }
        Err(e) => {
            device.status = super::CheckStatus::Unknown;
            device.note = Some(format!(
                "cannot exec `test -e /dev/nitro_enclaves` in the pod: {}",
                crate::output::clean(&e)
            ));
        }
        _ => {}
    }
    list.push(device);
    checks(list)
}
