//! `ccctl demo`: the whole chamber on this machine (the sandbox crate `cc-sandbox`: local
//! KMS, real enclave server and parent proxy processes, Kubernetes API double), then
//! `ccctl doctor` against all of it, then the dashboard. Only in builds with the default
//! `demo` feature: production images build ccctl without it.

use std::path::PathBuf;
use std::time::Duration;

use cc_sandbox::chamber::{self, POD, Scenario, aws_env, doctor_args, env_vars, say, traffic};
use cc_sandbox::kms;
use tokio::process::Command;

use crate::output::CannotRun;

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Start the chamber, run doctor once, stop everything and exit with doctor's status.
    #[arg(long)]
    pub once: bool,
    /// Inject this fault before running doctor.
    #[arg(long, value_enum, value_name = "NAME")]
    pub scenario: Option<Scenario>,
    /// Keep sockets, configuration and logs here (default: a temporary folder, removed at exit).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Where containment-chamber-enclave and containment-chamber-enclave-proxy are (default:
    /// next to ccctl, then PATH).
    #[arg(long, value_name = "DIR")]
    pub bin_dir: Option<PathBuf>,
    /// Do not open the dashboard (ccctl tui) after doctor; print how to reach the chamber and
    /// wait for Ctrl-C instead. Implied when stdout is not a terminal.
    #[arg(long)]
    pub no_tui: bool,
    /// Port of the enclave API on 127.0.0.1 (0: any free port; if 9000 is taken, any).
    #[arg(long, value_name = "PORT", default_value_t = cc_proto::ports::API_PORT as u16)]
    pub api_port: u16,
    /// Port of the enclave metrics on 127.0.0.1 (0: any free port; if 3000 is taken, any).
    #[arg(long, value_name = "PORT", default_value_t = cc_proto::ports::METRICS_PORT as u16)]
    pub metrics_port: u16,
}

pub fn run(
    args: DemoArgs,
    fmt: crate::output::Format,
) -> Result<crate::output::Outcome, CannotRun> {
    let quiet = fmt != crate::output::Format::Human;
    // Signals first: from here on, SIGTERM or SIGINT at any moment stops what was started.
    let rt = crate::output::runtime()?;
    let mut signals = {
        let _in_runtime = rt.enter();
        Signals::new()
    };
    let tmp;
    let dir = match &args.dir {
        Some(d) => {
            // A folder made here is its owner's only (the development root key goes in it).
            std::os::unix::fs::DirBuilderExt::mode(
                std::fs::DirBuilder::new().recursive(true),
                0o700,
            )
            .create(d)
            .map_err(|e| CannotRun::new(format!("cannot create --dir '{}': {e}", d.display())))?;
            d.canonicalize()
                .map_err(|e| CannotRun::new(format!("--dir '{}': {e}", d.display())))?
        }
        None => {
            tmp = tempfile::Builder::new()
                .prefix("ccctl-demo-")
                .permissions(
                    <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o700),
                )
                .tempdir()
                .map_err(|e| CannotRun::new(format!("cannot create a temporary folder: {e}")))?;
            tmp.path().to_owned()
        }
    };
    let options = chamber::Options {
        ccctl_dir: std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(std::path::Path::to_path_buf)),
        scenario: args.scenario,
        bin_dir: args.bin_dir.clone(),
        api_port: args.api_port,
        metrics_port: args.metrics_port,
        verifier: std::sync::Arc::new(|doc: &[u8], root: &str| {
            crate::attest::verify_now(doc, root)
                .map(|(pcrs, public_key)| kms::Attested { pcrs, public_key })
        }),
    };
    let result: Result<i32, CannotRun> = rt.block_on(async {
        // Interrupted while starting: dropping the start stops (kills) what it had started.
        let chamber = tokio::select! {
            c = chamber::start(&options, &dir, quiet) => c.map_err(CannotRun::new)?,
            _ = signals.recv() => {
                say(quiet, "interrupted while starting; stopping");
                return Err(CannotRun::new("interrupted while the demo was starting"));
            }
        };
        let l = &chamber.layout;
        let load = traffic(
            l.api,
            chamber.pubkeys.clone(),
            400,
            Duration::from_millis(50),
        );
        let mut doctor =
            Command::new(std::env::current_exe().map_err(|e| CannotRun::new(e.to_string()))?);
        doctor.args(doctor_args(l)).args(["-o", fmt.as_str()]);
        aws_env(&mut doctor, kms::OPERATOR_KEY_ID);
        chamber::die_with_parent(&mut doctor);
        if args.scenario == Some(Scenario::DebugInProduction) {
            doctor.env("PRODUCTION", "true").env("ENCLAVE_DEBUG", "1");
        }
        say(quiet, "running: ccctl doctor --local (against the demo)");
        let status = tokio::select! {
            s = doctor.kill_on_drop(true).status() => {
                s.map_err(|e| CannotRun::new(format!("cannot run ccctl doctor: {e}")))?
            }
            _ = signals.recv() => {
                load.abort();
                say(quiet, "interrupted; stopping");
                chamber.stop(quiet).await;
                return Err(CannotRun::new("interrupted while ccctl doctor was running"));
            }
        };
        load.abort();
        let code = status.code().unwrap_or(2);
        // While it runs for people: 5 signatures a second, for at most 12 minutes.
        let load = (!args.once).then(|| {
            traffic(
                l.api,
                chamber.pubkeys.clone(),
                3600,
                Duration::from_millis(200),
            )
        });
        let tui = !args.once
            && !args.no_tui
            && fmt == crate::output::Format::Human
            && std::io::IsTerminal::is_terminal(&std::io::stdout());
        if tui {
            // The real `ccctl tui`, in this terminal, pointed at the demo by env.sh's
            // variables; the chamber stops when it quits.
            let mut cmd =
                Command::new(std::env::current_exe().map_err(|e| CannotRun::new(e.to_string()))?);
            cmd.args(["tui", "--local"]);
            aws_env(&mut cmd, kms::OPERATOR_KEY_ID);
            for (k, v) in env_vars(l) {
                cmd.env(k, v);
            }
            chamber::die_with_parent(&mut cmd);
            let mut child = cmd
                .spawn()
                .map_err(|e| CannotRun::new(format!("cannot start ccctl tui: {e}")))?;
            // Ctrl-C belongs to the dashboard (raw mode); a stray SIGINT must not leave the
            // chamber running behind a dead dashboard.
            tokio::select! {
                _ = child.wait() => {}
                _ = signals.recv() => { let _ = child.kill().await; }
            }
        } else if !args.once {
            // Every line runs as printed in a shell after the first (tests/tests/demo.rs).
            crate::output::note(&format!(
                "\nThe chamber is running (folder {dir}). In another terminal:\n  \
                 . {dir}/env.sh\n  \
                 ccctl doctor --local\n  \
                 ccctl doctor --pod {POD}                  # through the demo's Kubernetes API\n  \
                 ccctl tui -l app=containment-chamber      # the fleet screen (a terminal)\n  \
                 ccctl attest fetch                        # a fresh attestation, verified\n  \
                 ccctl explain kms.access-denied           # any finding's runbook section\n  \
                 curl -s http://{api}/status\n  \
                 curl -s http://{metrics}/metrics\n  \
                 tail -n 20 {dir}/logs/enclave.log         # the pod log (tail -f follows it)\n\
                 Ctrl-C stops everything.",
                dir = l.dir.display(),
                api = l.api,
                metrics = l.metrics,
            ));
            signals.recv().await;
            say(quiet, "stopping");
        }
        if let Some(load) = load {
            load.abort();
        }
        chamber.stop(quiet).await;
        Ok(code)
    });
    rt.shutdown_timeout(Duration::from_secs(1));
    match result? {
        0 => Ok(crate::output::Outcome::Ok),
        1 => Ok(crate::output::Outcome::Finding),
        _ => Err(CannotRun::new(
            "ccctl doctor could not run against the demo (see above)",
        )),
    }
}

/// SIGTERM and SIGINT, caught from the moment this is made (inside the runtime).
struct Signals {
    term: Option<tokio::signal::unix::Signal>,
    int: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn new() -> Signals {
        use tokio::signal::unix::{SignalKind, signal};
        Signals {
            term: signal(SignalKind::terminate()).ok(),
            int: signal(SignalKind::interrupt()).ok(),
        }
    }

    /// The next SIGTERM or SIGINT (never, for one that could not be caught).
    async fn recv(&mut self) {
        async fn next(s: &mut Option<tokio::signal::unix::Signal>) {
            match s {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending().await,
            }
        }
        tokio::select! {
            _ = next(&mut self.term) => {}
            _ = next(&mut self.int) => {}
        }
    }
}
