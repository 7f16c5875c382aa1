//! Running commands inside a pod, behind a trait: the Kubernetes exec (websocket) in
//! production, or `local`, which runs the same commands on this machine (for `ccctl demo`,
//! where "the pod" is this machine, and tests). Doctor's in-pod probes and rotate's watch of
//! running PCRs use it.

use std::sync::Arc;

use tokio::io::AsyncReadExt;

use super::BoxFuture;

/// How to run commands inside a pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExecMode {
    // Through the Kubernetes API (`pods/exec`).
    Kube,
    // On this machine (for `ccctl demo`, where the pod is this machine).
    Local,
    // Not at all.
    None,
}

/// The exec transport for `mode` (`None` for [`ExecMode::None`]).
pub fn exec_for(mode: ExecMode, client: &kube::Client) -> Option<Arc<dyn PodExec>> {
    match mode {
        ExecMode::Kube => Some(Arc::new(KubeExec(client.clone()))),
        ExecMode::Local => Some(Arc::new(LocalExec)),
        ExecMode::None => None,
    }
}

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
            let mut p = api.exec(pod, cmd.clone(), &ap).await.map_err(|e| {
                format!(
                    "exec `{}` in {namespace}/{pod}: {}",
                    cmd.join(" "),
                    crate::probe::k8s::describe_error(&e)
                )
            })?;
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
