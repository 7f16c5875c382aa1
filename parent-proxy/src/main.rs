use std::process::ExitCode;

use clap::Parser;
use containment_chamber_enclave_proxy::cli::{Cli, Command};
use containment_chamber_enclave_proxy::config::RunConfig;
use containment_chamber_enclave_proxy::forward::Forwarder;
use containment_chamber_enclave_proxy::metrics::Metrics;
use containment_chamber_enclave_proxy::run::{self, Outcome};
use containment_chamber_enclave_proxy::vsock_stdout::{self, LogSinkOptions, StdoutSink};
use containment_chamber_enclave_proxy::{logging, shutdown};

fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match rt.block_on(real_main(cli)) {
        Ok(code) => code,
        Err(Failure::Usage(e)) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
        Err(Failure::Runtime(e)) => {
            tracing::error!(error = %format!("{e:#}"), "stopped");
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

enum Failure {
    /// Bad arguments, configuration, allowlist or address: exit 2.
    Usage(anyhow::Error),
    Runtime(anyhow::Error),
}

fn usage<E: Into<anyhow::Error>>(e: E) -> Failure {
    Failure::Usage(e.into())
}

fn ready(path: Option<&std::path::Path>) -> Result<(), Failure> {
    if let Some(p) = path {
        std::fs::write(p, format!("{}\n", std::process::id())).map_err(|e| {
            usage(anyhow::anyhow!(
                "cannot write --ready-file '{}': {e}",
                p.display()
            ))
        })?;
    }
    Ok(())
}

async fn real_main(cli: Cli) -> Result<ExitCode, Failure> {
    let ready_file = cli.ready_file.clone();
    let metrics = Metrics::new();
    let (trigger, sd) = shutdown::channel();
    if let Some(addr) = &cli.metrics {
        let l = cc_proto::listen(addr).await.map_err(usage)?;
        tracing::info!(listen = %addr, "metrics listening");
        tokio::spawn(containment_chamber_enclave_proxy::metrics::serve(
            l,
            metrics.clone(),
            sd.clone(),
        ));
    }
    let stop = async move {
        let sig = shutdown::signal().await;
        trigger.trigger();
        // After the trigger, and off the async workers: a stalled stdout (whose lock the
        // vsock-stdout writer holds) must not hold up the shutdown.
        tokio::task::spawn_blocking(move || tracing::info!(signal = sig, "shutting down"));
    };
    match cli.command {
        Command::VsockStdout(a) => {
            let l = cc_proto::listen(&a.listen).await.map_err(usage)?;
            tracing::info!(listen = %a.listen, "vsock-stdout listening");
            ready(ready_file.as_deref())?;
            let (tx, rx) = vsock_stdout::channel();
            let writer = vsock_stdout::spawn_writer(Box::new(StdoutSink), rx, metrics.clone());
            // The grace period runs from the shutdown signal, for the connections and the
            // writer alike.
            let mut stopping = sd.clone();
            let stopped_at = tokio::spawn(async move {
                stopping.wait().await;
                std::time::Instant::now()
            });
            tokio::spawn(stop);
            vsock_stdout::serve(
                l,
                tx,
                metrics.clone(),
                LogSinkOptions {
                    max_line: a.max_line.max(80),
                    grace: a.shutdown_grace,
                },
                sd,
            )
            .await;
            let deadline = stopped_at
                .await
                .unwrap_or_else(|_| std::time::Instant::now())
                + a.shutdown_grace;
            let drained = vsock_stdout::wait_for_writer(writer, &metrics, deadline);
            let dropped = metrics.log_lines_dropped.get();
            if dropped > 0 {
                // Not through tracing: its output is the stalled stdout.
                eprintln!(
                    "vsock-stdout: stdout did not take every line within the shutdown grace \
                     period; {dropped} lines dropped"
                );
            }
            if !drained {
                // The writer is blocked for good on stdout (and holds its lock): exit without
                // waiting for it or for the runtime's threads.
                std::process::exit(0);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Egress(a) => {
            let Some((host, port)) = a.target.tcp_host_port() else {
                return Err(usage(anyhow::anyhow!(
                    "--target '{}': egress targets are tcp://HOST:PORT",
                    a.target
                )));
            };
            if let Some(path) = &a.allowlist {
                containment_chamber_enclave_proxy::allowlist::check(path, host, port)
                    .await
                    .map_err(usage)?;
            }
            let name = a.name.clone().unwrap_or_else(|| host.to_owned());
            forward(
                a.listen,
                Forwarder {
                    name,
                    target: a.target,
                    connect_timeout: a.connect_timeout,
                    grace: a.shutdown_grace,
                    limits: a.limits.limits(),
                },
                metrics,
                sd,
                stop,
                "egress",
                ready_file.as_deref(),
            )
            .await
        }
        Command::Ingress(a) => {
            let name = a.name.clone().unwrap_or_else(|| a.listen.to_string());
            forward(
                a.listen,
                Forwarder {
                    name,
                    target: a.target,
                    connect_timeout: a.connect_timeout,
                    grace: a.shutdown_grace,
                    limits: a.limits.limits(),
                },
                metrics,
                sd,
                stop,
                "ingress",
                ready_file.as_deref(),
            )
            .await
        }
        Command::Run(a) => {
            let cfg = RunConfig::load(&a.config).map_err(usage)?;
            drop(stop);
            match run::run(cfg, Box::new(StdoutSink), ready_file.as_deref()).await {
                Ok(Outcome::Stopped) => Ok(ExitCode::SUCCESS),
                Ok(Outcome::EnclaveFailed(code)) => {
                    Ok(ExitCode::from(u8::try_from(code).unwrap_or(1).max(1)))
                }
                Err(e) if is_setup_error(&e) => Err(Failure::Usage(e)),
                Err(e) => Err(Failure::Runtime(e)),
            }
        }
    }
}

/// Start-up refusals (allowlist, addresses in use) are configuration problems: exit 2.
fn is_setup_error(e: &anyhow::Error) -> bool {
    e.downcast_ref::<containment_chamber_enclave_proxy::allowlist::AllowlistError>()
        .is_some()
        || e.downcast_ref::<std::io::Error>().is_some()
}

async fn forward(
    listen: cc_proto::Address,
    fwd: Forwarder,
    metrics: Metrics,
    sd: shutdown::Shutdown,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
    kind: &str,
    ready_file: Option<&std::path::Path>,
) -> Result<ExitCode, Failure> {
    let l = cc_proto::listen(&listen).await.map_err(usage)?;
    tracing::info!(forwarder = %fwd.name, %listen, target = %fwd.target, "{kind} listening");
    ready(ready_file)?;
    tokio::spawn(stop);
    containment_chamber_enclave_proxy::forward::serve(l, fwd, metrics, sd).await;
    Ok(ExitCode::SUCCESS)
}
