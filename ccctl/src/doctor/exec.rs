//! Running the local probes inside the pod. `ccctl doctor --local -o json` when the image has
//! ccctl; otherwise the raw commands (`nitro-cli describe-enclaves`, a device test). Behind a
//! trait: the Kubernetes exec (websocket) in production, or `local`, which runs the same
//! commands on this machine (for `ccctl demo`, where "the pod" is this machine, and tests).

use std::sync::Arc;

use cc_proto::findings::{Finding, Severity};
use tokio::io::AsyncReadExt;

use super::{BoxFuture, CheckResult, CheckStatus, Report};

#[derive(Debug, Clone)]
pub struct ExecOutput {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// `None` when the command could not be started (not in the image).
    pub status: Option<i32>,
}

pub trait PodExec: Send + Sync {
    fn exec<'a>(
        &'a self,
        namespace: &'a str,
        pod: &'a str,
        cmd: Vec<String>,
    ) -> BoxFuture<'a, Result<ExecOutput, String>>;
}

/// `kubectl exec` through the kube client.
pub struct KubeExec(pub kube::Client);

impl PodExec for KubeExec {
    fn exec<'a>(
        &'a self,
        namespace: &'a str,
        pod: &'a str,
        cmd: Vec<String>,
    ) -> BoxFuture<'a, Result<ExecOutput, String>> {
        Box::pin(async move {
            let api: kube::Api<k8s_openapi::api::core::v1::Pod> =
                kube::Api::namespaced(self.0.clone(), namespace);
            let ap = kube::api::AttachParams::default()
                .stdout(true)
                .stderr(true)
                .stdin(false);
            let mut p = api
                .exec(pod, cmd.clone(), &ap)
                .await
                .map_err(|e| format!("exec {cmd:?} in {namespace}/{pod}: {e}"))?;
            let mut stdout = Vec::new();
            let mut stderr = Vec::new();
            if let Some(mut o) = p.stdout() {
                let _ = o.read_to_end(&mut stdout).await;
            }
            if let Some(mut e) = p.stderr() {
                let _ = e.read_to_end(&mut stderr).await;
            }
            let status = match p.take_status() {
                Some(s) => s.await,
                None => None,
            };
            let _ = p.join().await;
            // The API reports failure as a Status; a missing executable is a failed start.
            let code = match status {
                Some(s) if s.status.as_deref() == Some("Success") => Some(0),
                Some(s)
                    if s.message
                        .as_deref()
                        .is_some_and(|m| m.contains("executable file not found")) =>
                {
                    None
                }
                Some(s) => s
                    .details
                    .and_then(|d| d.causes)
                    .and_then(|c| {
                        c.into_iter()
                            .find(|c| c.reason.as_deref() == Some("ExitCode"))
                    })
                    .and_then(|c| c.message)
                    .and_then(|m| m.parse().ok())
                    .or(Some(1)),
                None => Some(0),
            };
            Ok(ExecOutput {
                stdout,
                stderr,
                status: code,
            })
        })
    }
}

/// Runs the command here (see the module doc).
pub struct LocalExec;

impl PodExec for LocalExec {
    fn exec<'a>(
        &'a self,
        _: &'a str,
        _: &'a str,
        cmd: Vec<String>,
    ) -> BoxFuture<'a, Result<ExecOutput, String>> {
        Box::pin(async move {
            let Some((prog, args)) = cmd.split_first() else {
                return Err("empty command".into());
            };
            match tokio::process::Command::new(prog)
                .args(args)
                .kill_on_drop(true)
                .output()
                .await
            {
                Ok(o) => Ok(ExecOutput {
                    stdout: o.stdout,
                    stderr: o.stderr,
                    status: o.status.code(),
                }),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(ExecOutput {
                    stdout: Vec::new(),
                    stderr: Vec::new(),
                    status: None,
                }),
                Err(e) => Err(format!("{prog}: {e}")),
            }
        })
    }
}

fn result(id: &str, description: &str, findings: Vec<Finding>) -> CheckResult {
    CheckResult {
        id: id.to_owned(),
        family: id.split('.').next().unwrap_or("misc").to_owned(),
        description: description.to_owned(),
        status: if findings.is_empty() {
            CheckStatus::Passed
        } else {
            CheckStatus::Findings
        },
        duration_ms: 0,
        findings,
    }
}

/// The in-pod probes: ccctl's own local doctor if the image has it, else the raw commands.
pub async fn in_pod(
    exec: Arc<dyn PodExec>,
    namespace: &str,
    pod: &str,
    timeout_arg: &str,
) -> Vec<CheckResult> {
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
                return r.checks;
            }
            let text = crate::output::clean(&String::from_utf8_lossy(&out.stderr));
            return vec![result(
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
            )];
        }
        Ok(_) => {}
        Err(e) => {
            return vec![result(
                "enclave.in-pod",
                "probes inside the pod",
                vec![Finding::new(
                    "enclave.in-pod-probe-failed",
                    Severity::Warn,
                    format!("cannot exec in the pod: {e}"),
                )],
            )];
        }
    }
    // No ccctl in the image: the raw commands.
    let mut checks = Vec::new();
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
                &crate::enclaves::NitroCliFailure {
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
    checks.push(result(
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
    let findings = match dev {
        Ok(o) if o.status == Some(0) => Vec::new(),
        Ok(o) if o.status.is_some() => vec![Finding::new(
            "nsm.device-missing",
            Severity::Error,
            "/dev/nitro_enclaves is missing in the pod",
        )],
        _ => Vec::new(),
    };
    checks.push(result(
        "nsm.device",
        "/dev/nitro_enclaves in the pod",
        findings,
    ));
    checks
}
