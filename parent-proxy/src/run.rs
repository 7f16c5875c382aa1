//! `run`: the supervised start of the parent side. Binds the log listener first, then the
//! egress and ingress forwarders, then starts `nitro-cli run-enclave`, so nothing the enclave
//! says during boot is lost and its first KMS call finds its egress. Shuts everything down
//! cleanly on SIGTERM (and terminates the enclave it started).

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use cc_proto::nitro_cli::{CliError, RunEnclave};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Command;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::config::{OnFailure, RunConfig};
use crate::forward::Forwarder;
use crate::metrics::Metrics;
use crate::shutdown;
use crate::vsock_stdout::{self, Batch, LogSinkOptions};

/// How `run` ended; the binary turns it into an exit status.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Stopped by a signal after a clean shutdown.
    Stopped,
    /// nitro-cli run-enclave failed; its exit status.
    EnclaveFailed(i32),
}

/// Everything `run` started, in start order.
pub async fn run(
    cfg: RunConfig,
    stdout: Box<dyn std::io::Write + Send>,
    ready_file: Option<&std::path::Path>,
) -> anyhow::Result<Outcome> {
    let metrics = Metrics::new();
    let grace = Duration::from_millis(cfg.shutdown_grace_ms);
    let (trigger, shutdown) = shutdown::channel();

    // Egress targets are checked against the allowlist before anything is started.
    if let Some(path) = &cfg.allowlist {
        for e in &cfg.egress {
            if let Some((host, port)) = e.target.tcp_host_port() {
                crate::allowlist::check(path, host, port).await?;
            }
        }
    }

    let mut servers = JoinSet::new();

    // 1. vsock-stdout, before anything can log.
    let log_listener = cc_proto::listen(&cfg.logs.listen).await?;
    let (tx, rx) = vsock_stdout::channel();
    let writer = vsock_stdout::spawn_writer(stdout, rx, metrics.clone());
    servers.spawn(vsock_stdout::serve(
        log_listener,
        tx.clone(),
        metrics.clone(),
        LogSinkOptions {
            max_line: cfg.logs.max_line,
            grace,
        },
        shutdown.clone(),
    ));
    tracing::info!(listen = %cfg.logs.listen, "vsock-stdout listening");

    // 2. egress, then ingress: the same forwarder, different directions.
    let egress = cfg.egress.iter().enumerate().map(|(i, e)| {
        (
            "egress",
            cfg.egress_listen(i),
            &e.name,
            &e.target,
            e.connect_timeout_ms,
            &e.limits,
        )
    });
    let ingress = cfg.ingress.iter().map(|e| {
        (
            "ingress",
            e.listen.clone(),
            &e.name,
            &e.target,
            e.connect_timeout_ms,
            &e.limits,
        )
    });
    for (kind, listen, name, target, connect_timeout_ms, limits) in egress.chain(ingress) {
        let l = cc_proto::listen(&listen).await?;
        tracing::info!(forwarder = %name, %listen, %target, "{kind} listening");
        servers.spawn(crate::forward::serve(
            l,
            Forwarder {
                name: name.clone(),
                target: target.clone(),
                connect_timeout: Duration::from_millis(connect_timeout_ms),
                grace,
                limits: crate::forward::Limits {
                    max_connections: limits.max_connections.max(1),
                    idle_timeout: Duration::from_millis(limits.idle_timeout_ms),
                    probe_paths: limits.probe_paths.clone(),
                    probe_slots: limits.probe_slots,
                },
            },
            metrics.clone(),
            shutdown.clone(),
        ));
    }
    if let Some(m) = &cfg.metrics {
        let l = cc_proto::listen(&m.listen).await?;
        tracing::info!(listen = %m.listen, "metrics listening");
        let (metrics, shutdown) = (metrics.clone(), shutdown.clone());
        servers.spawn(async move {
            if let Err(e) = crate::metrics::serve(l, metrics, shutdown).await {
                tracing::error!(error = %e, "metrics server failed");
            }
        });
    }

    if let Some(p) = ready_file {
        std::fs::write(p, format!("{}\n", std::process::id()))
            .with_context(|| format!("cannot write --ready-file '{}'", p.display()))?;
    }

    // 3. nitro-cli run-enclave.
    let args = cfg.run_enclave_args();
    tracing::info!(nitro_cli = %cfg.nitro_cli.display(), args = ?args, "starting enclave");
    let mut child = Command::new(&cfg.nitro_cli)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot start '{}'", cfg.nitro_cli.display()))?;
    let parsed = Arc::new(Mutex::new(None));
    let stderr_text = Arc::new(Mutex::new(String::new()));
    let stdout_task = tokio::spawn(read_run_stdout(
        child.stdout.take().context("nitro-cli stdout")?,
        tx.clone(),
        parsed.clone(),
    ));
    let stderr_task = tokio::spawn(read_stderr(
        child.stderr.take().context("nitro-cli stderr")?,
        stderr_text.clone(),
    ));
    drop(tx);

    let mut enclave: Option<RunEnclave> = None;
    let mut child_running = true;
    let outcome = loop {
        tokio::select! {
            sig = shutdown::signal() => {
                tracing::info!(signal = sig, "shutting down");
                break Outcome::Stopped;
            }
            status = child.wait(), if child_running => {
                child_running = false;
                let status = status.context("waiting for nitro-cli")?;
                settle(&stdout_task).await;
                settle(&stderr_task).await;
                let stderr = stderr_text.lock().map(|s| s.clone()).unwrap_or_default();
                if status.success() {
                    enclave = parsed.lock().ok().and_then(|g| g.clone());
                    match &enclave {
                        Some(e) => tracing::info!(enclave_id = %e.enclave_id, enclave_cid = e.enclave_cid,
                            cpus = ?e.number_of_cpus, memory_mib = ?e.memory_mib, "enclave started"),
                        None => tracing::warn!("nitro-cli run-enclave succeeded but printed no enclave description"),
                    }
                } else {
                    let code = status.code().unwrap_or(1);
                    match CliError::parse(&stderr) {
                        Some(e) => tracing::error!(code = %e.code, meaning = e.meaning, detail = ?e.detail,
                            message = %e.message, exit_status = code, "nitro-cli run-enclave failed"),
                        None => tracing::error!(exit_status = code, "nitro-cli run-enclave failed"),
                    }
                    if cfg.enclave.on_failure == OnFailure::Exit {
                        break Outcome::EnclaveFailed(code);
                    }
                }
            }
            Some(done) = servers.join_next() => {
                // Servers only return after shutdown; one returning early is a bug or a panic.
                if let Err(e) = done {
                    tracing::error!(error = %e, "a listener task failed; shutting down");
                }
                break Outcome::EnclaveFailed(1);
            }
        }
    };

    trigger.trigger();
    if child_running {
        // An attached console (debug mode) keeps nitro-cli running: stop it first.
        if let Some(pid) = child.id() {
            send_sigterm(pid);
        }
        if tokio::time::timeout(grace, child.wait()).await.is_err() {
            let _ = child.kill().await;
        }
        if enclave.is_none() {
            enclave = parsed.lock().ok().and_then(|g| g.clone());
        }
    }
    if cfg.enclave.terminate_on_shutdown
        && outcome == Outcome::Stopped
        && let Some(e) = &enclave
    {
        terminate(&cfg, &e.enclave_id, grace).await;
    }
    while servers.join_next().await.is_some() {}
    stdout_task.abort();
    // Every sender is gone now, so the writer drains what it has and ends.
    let _ = tokio::task::spawn_blocking(move || writer.join()).await;
    Ok(outcome)
}

async fn terminate(cfg: &RunConfig, enclave_id: &str, grace: Duration) {
    tracing::info!(%enclave_id, "terminating enclave");
    let cmd = Command::new(&cfg.nitro_cli)
        .args(["terminate-enclave", "--enclave-id", enclave_id])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output();
    match tokio::time::timeout(grace, cmd).await {
        Ok(Ok(out)) if out.status.success() => {}
        Ok(Ok(out)) => {
            let stderr = String::from_utf8_lossy(&out.stderr);
            tracing::warn!(%enclave_id, status = ?out.status.code(),
                error = ?CliError::parse(&stderr).map(|e| e.code), "terminate-enclave failed");
        }
        Ok(Err(e)) => tracing::warn!(%enclave_id, error = %e, "cannot run terminate-enclave"),
        Err(_) => tracing::warn!(%enclave_id, "terminate-enclave did not finish in time"),
    }
}

#[allow(unsafe_code)]
fn send_sigterm(pid: u32) {
    // SAFETY: kill(2) with a pid we spawned and still own (not yet reaped).
    unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGTERM);
    }
}

/// Reads `run-enclave`'s stdout: the JSON object describing the enclave (stored in `parsed` as
/// soon as it is complete), then, with an attached console, console lines, which are
/// forwarded to stdout like the enclave's own log lines.
async fn read_run_stdout(
    out: impl AsyncRead + Unpin,
    tx: mpsc::Sender<Batch>,
    parsed: Arc<Mutex<Option<RunEnclave>>>,
) {
    let mut lines = BufReader::new(out).lines();
    let mut json = String::new();
    let mut in_json = false;
    while let Ok(Some(line)) = lines.next_line().await {
        let parsed_already = parsed.lock().map(|g| g.is_some()).unwrap_or(true);
        if !parsed_already && (in_json || line.trim_start().starts_with('{')) {
            in_json = true;
            json.push_str(&line);
            json.push('\n');
            if let Ok(r) = serde_json::from_str::<RunEnclave>(&json) {
                if let Ok(mut g) = parsed.lock() {
                    *g = Some(r);
                }
                in_json = false;
            } else if json.len() > 64 * 1024 {
                in_json = false;
                json.clear();
            }
            continue;
        }
        let mut bytes = line.into_bytes();
        bytes.push(b'\n');
        if tx.send(Batch { bytes, lines: 1 }).await.is_err() {
            return;
        }
    }
}

/// Keeps the first 64 KiB of nitro-cli's stderr (where its `[ Exx ]` error is) and logs each
/// line as the proxy's own.
async fn read_stderr(err: impl AsyncRead + Unpin, keep: Arc<Mutex<String>>) {
    let mut lines = BufReader::new(err).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        tracing::info!(target: "nitro_cli", "{line}");
        if let Ok(mut k) = keep.lock()
            && k.len() < 64 * 1024
        {
            k.push_str(&line);
            k.push('\n');
        }
    }
}

/// Wait (bounded) for a reader task to reach EOF after its child exited.
async fn settle(task: &tokio::task::JoinHandle<()>) {
    for _ in 0..100 {
        if task.is_finished() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
