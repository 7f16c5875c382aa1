//! Running commands inside a pod, behind a trait: the Kubernetes exec (websocket) in
//! production, or `local`, which runs the same commands on this machine (for `ccctl demo`,
//! where "the pod" is this machine, and tests). Doctor's in-pod probes and rotate's watch of
//! running PCRs use it.

use std::sync::Arc;

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
        ExecMode::Local => Some(Arc::new(LocalExec::default())),
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
            // Capped like a local child: a pod that prints forever cannot take our memory.
            // (The deadline is the caller's: doctor and rotate wrap exec in their timeouts.)
            let cap = super::child::DEFAULT_MAX_OUTPUT;
            let what = |e: super::child::ChildError| {
                format!("exec `{}` in {namespace}/{pod}: {e}", cmd.join(" "))
            };
            // Both at once: kube passes each stream through a small buffer, so a command that
            // fills stderr while stdout is read to its end would wait forever.
            let (stdout, stderr) = tokio::try_join!(
                super::child::read_capped(p.stdout(), cap, "stdout"),
                super::child::read_capped(p.stderr(), cap, "stderr"),
            )
            .map_err(what)?;
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
                // The API server ends every exec with a Status (v4 and later): without one the
                // command's outcome is not known, and is not success.
                None => {
                    return Err(format!(
                        "exec `{}` in {namespace}/{pod}: the connection ended without the command's exit status",
                        cmd.join(" ")
                    ));
                }
            };
            Ok(ExecOutput {
                stdout,
                stderr,
                status: code,
            })
        })
    }
}

/// Runs the command here (see the module doc), within the limits (deadline, output cap).
pub struct LocalExec(pub super::child::Limits);

impl Default for LocalExec {
    /// The output cap of every child; a backstop deadline of a minute (callers such as doctor
    /// and rotate bound each exec by their own, shorter, timeouts).
    fn default() -> Self {
        LocalExec(super::child::Limits {
            deadline: std::time::Duration::from_secs(60),
            max_output: super::child::DEFAULT_MAX_OUTPUT,
        })
    }
}

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
            let mut c = tokio::process::Command::new(prog);
            c.args(args);
            match super::child::run(c, self.0).await {
                Ok(o) => Ok(ExecOutput {
                    stdout: o.stdout,
                    stderr: o.stderr,
                    status: o.status.code(),
                }),
                Err(super::child::ChildError::Start(e))
                    if e.kind() == std::io::ErrorKind::NotFound =>
                {
                    Ok(ExecOutput {
                        stdout: Vec::new(),
                        stderr: Vec::new(),
                        status: None,
                    })
                }
                Err(e) => Err(format!("'{prog}': {e}")),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Issue 16 #2: local exec output was read without a cap or a deadline.
    #[tokio::test]
    async fn local_exec_is_capped_and_has_a_deadline() {
        let x = LocalExec(super::super::child::Limits {
            deadline: Duration::from_millis(500),
            max_output: 4096,
        });
        let e = x.exec("ns", "pod", vec!["yes".into()]).await.unwrap_err();
        assert!(
            e.contains("'yes'") && e.contains("output cap of 4 KiB"),
            "{e}"
        );
        let e = x
            .exec("ns", "pod", vec!["sleep".into(), "20".into()])
            .await
            .unwrap_err();
        assert!(e.contains("deadline of 500ms"), "{e}");
        let o = x
            .exec("ns", "pod", vec!["/nonexistent/x".into()])
            .await
            .unwrap();
        assert_eq!(o.status, None);
    }
}
