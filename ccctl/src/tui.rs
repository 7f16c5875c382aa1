//! `ccctl tui`: the live dashboard. One `tokio::select!` loop over keys, source updates and a
//! tick; every source runs in its own task ([`sources`]); drawing is a pure function of the
//! state ([`ui::render`]). The terminal is restored on every exit path, panics included.

pub mod app;
pub mod logbuf;
pub mod metrics;
pub mod sources;
pub mod ui;

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ratatui::crossterm::event::{self, Event, KeyEventKind};

use crate::output::{CannotRun, Outcome};
use crate::probe::Targets;
use app::{App, Command};

#[derive(Debug, clap::Args)]
pub struct TuiArgs {
    /// Watch the chamber on this machine (the default when neither --pod nor -l is given).
    #[arg(long, conflicts_with_all = ["pod", "selector"])]
    pub local: bool,
    /// Watch this pod through the Kubernetes API (its log stream, spec, node, device plugin).
    #[arg(long, value_name = "NAME")]
    pub pod: Option<String>,
    /// Watch every pod matching this label selector: the fleet screen (one row per pod,
    /// worst first); Enter watches a pod on the other screens.
    #[arg(
        short = 'l',
        long = "selector",
        value_name = "SELECTOR",
        conflicts_with = "pod"
    )]
    pub selector: Option<String>,
    /// Namespace (default: the context's, else `default`).
    #[arg(short = 'n', long, value_name = "NAMESPACE")]
    pub namespace: Option<String>,
    /// kubeconfig context to use; with -l, repeat it to watch several clusters (a CLUSTER
    /// column).
    #[arg(long, value_name = "CONTEXT")]
    pub context: Vec<String>,
    /// With -l: every context of the kubeconfig.
    #[arg(long, requires = "selector", conflicts_with = "context")]
    pub all_contexts: bool,
    #[command(flatten)]
    pub live: crate::doctor::live::SourceArgs,
    /// With --pod/-l: read /status and /metrics at --api/--metrics (a port-forward) instead
    /// of through the API server's pod proxy.
    #[arg(long)]
    pub direct: bool,
    /// With --pod/-l: how the watched pod's in-pod probes run (its enclave panel's
    /// `nitro-cli describe-enclaves`, and doctor's in-pod checks, as `doctor --pod --exec`):
    /// `kube` through the API server's pods/exec, `local` on this machine (`ccctl demo`),
    /// `none` not at all.
    #[arg(long, value_enum, default_value_t = crate::probe::exec::ExecMode::Kube)]
    pub exec: crate::probe::exec::ExecMode,
    /// Lines kept by the log panel (a ring: older lines are dropped).
    #[arg(long, value_name = "N", default_value_t = 100_000)]
    pub log_lines: usize,
    /// How often /status and /metrics are read (other sources are slower multiples).
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = crate::parse_duration)]
    pub refresh: Duration,
    /// Doctor re-runs this often (and whenever a source starts or stops answering); 0s: only
    /// then and on `r`.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = crate::parse_duration)]
    pub doctor_every: Duration,
    /// Deadline of one doctor run and of each probe.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = crate::parse_duration)]
    pub timeout: Duration,
    /// Where the local probes look (with --pod/-l: the port-forwarded API and metrics).
    #[command(flatten)]
    pub probes: Targets,
}

pub fn run(a: TuiArgs) -> Result<Outcome, CannotRun> {
    if !std::io::stdout().is_terminal() {
        return Err(CannotRun::new(
            "ccctl tui needs a terminal (for scripts: ccctl doctor -o json)",
        ));
    }
    if a.log_lines == 0 {
        return Err(CannotRun::new("--log-lines must be at least 1"));
    }
    let rt = crate::output::runtime()?;
    let r = rt.block_on(async {
        if a.all_contexts && a.selector.is_none() {
            return Err(CannotRun::new(
                "--all-contexts is for -l/--selector (the fleet over every context)",
            ));
        }
        if a.pod.is_some() && a.context.len() > 1 {
            return Err(CannotRun::new(
                "--pod watches one pod: give one --context (several are for -l)",
            ));
        }
        let kube = if a.pod.is_some() || a.selector.is_some() {
            let (clusters, unusable) =
                crate::doctor::live::clusters(&a.context, a.all_contexts, a.namespace.as_deref())
                    .await
                    .map_err(CannotRun::new)?;
            let source = a.live.source().map_err(CannotRun::new)?;
            // --pod: that pod (its ports from its spec when it can be read now).
            let watching = match &a.pod {
                Some(name) => {
                    let c = &clusters[0];
                    let api: kube::Api<k8s_openapi::api::core::v1::Pod> =
                        kube::Api::namespaced(c.client.clone(), &c.namespace);
                    let pod = tokio::time::timeout(a.timeout, api.get(name)).await;
                    let port = |n, d| match &pod {
                        Ok(Ok(p)) => crate::doctor::live::port(p, n, d),
                        _ => d,
                    };
                    Some(app::PodKey {
                        cluster: 0,
                        cluster_name: c.label(),
                        namespace: c.namespace.clone(),
                        name: name.clone(),
                        api_port: port("api", crate::doctor::live::API_PORT),
                        metrics_port: port("metrics", crate::doctor::live::METRICS_PORT),
                    })
                }
                None => None,
            };
            Some(sources::KubeTarget {
                clusters,
                pod: a.pod.clone(),
                selector: a.selector.clone(),
                watching: Arc::new(tokio::sync::watch::channel(watching).0),
                direct: a.direct,
                exec: a.exec,
                unusable: unusable.into_iter().map(|(_, e)| e).collect(),
                source,
            })
        } else {
            None
        };
        let title = match &kube {
            Some(k) => {
                let ns = &k.clusters[0].namespace;
                let where_ = if k.clusters.len() > 1 {
                    format!("{} clusters", k.clusters.len())
                } else {
                    ns.clone()
                };
                match (&k.pod, &k.selector) {
                    (Some(p), _) => format!("pod {ns}/{p}"),
                    (_, Some(s)) => format!("pods {where_} -l {s}"),
                    _ => String::new(),
                }
            }
            None => format!("local {}", a.probes.api),
        };
        let settings = Arc::new(sources::Settings {
            probes: a.probes.clone(),
            refresh: a.refresh,
            timeout: a.timeout,
            kube,
        });
        run_loop(settings, title, a.log_lines, a.doctor_every).await
    });
    rt.shutdown_timeout(Duration::from_millis(500));
    r.map(|()| Outcome::Ok)
}

/// Point the per-pod sources at the pod the app now watches, and judge it afresh.
fn watch(
    settings: &Arc<sources::Settings>,
    app: &mut App,
    tx: &tokio::sync::mpsc::Sender<app::Update>,
) {
    let pod = app.fleet.as_ref().and_then(|f| f.watching.clone());
    if let (Some(k), Some(p)) = (&settings.kube, pod) {
        k.watching.send_replace(Some(p));
        app.start_doctor();
        sources::run_doctor(settings.clone(), tx.clone());
    }
}

/// Restores the terminal when dropped (normal exit, error, unwinding panic); `ratatui::init`
/// also installs a panic hook that restores it before the panic message is printed.
struct Restore;

impl Drop for Restore {
    fn drop(&mut self) {
        ratatui::restore();
    }
}

async fn run_loop(
    settings: Arc<sources::Settings>,
    title: String,
    log_lines: usize,
    doctor_every: Duration,
) -> Result<(), CannotRun> {
    let mut terminal = ratatui::try_init()
        .map_err(|e| CannotRun::new(format!("cannot set up the terminal: {e}")))?;
    let _restore = Restore;
    let (tx, mut rx) = tokio::sync::mpsc::channel(256);
    let tasks = sources::start(settings.clone(), tx.clone());
    // crossterm's reads block: one thread turns them into messages for the loop.
    let (key_tx, mut key_rx) = tokio::sync::mpsc::channel(64);
    std::thread::spawn(move || {
        loop {
            match event::poll(Duration::from_millis(100)) {
                Ok(true) => match event::read() {
                    Ok(ev) => {
                        if key_tx.blocking_send(ev).is_err() {
                            return;
                        }
                    }
                    Err(_) => return,
                },
                Ok(false) if key_tx.is_closed() => return,
                Ok(false) => {}
                Err(_) => return,
            }
        }
    });
    let mut app = App::new(title, log_lines);
    if settings.kube.as_ref().is_some_and(|k| k.selector.is_some()) {
        app.fleet = Some(app::FleetState::default());
        app.screen = app::Screen::Fleet;
    }
    app.doctor_every = doctor_every.as_secs_f64();
    // An attempt of status or metrics ends by its deadline (at most --timeout), then waits a
    // refresh; a fleet refresh can take three deadlines in a row (list; facts and live reads;
    // a release verdict).
    app.silent_after = (settings.timeout + settings.refresh * 3).as_secs_f64();
    app.fleet_silent_after = (settings.timeout * 3 + settings.refresh * 3).as_secs_f64();
    app.demo = std::env::var("CCCTL_DEMO_DIR")
        .ok()
        .filter(|d| !d.is_empty())
        .map(|d| crate::output::clean(&d));
    // sources::start has started the first doctor run.
    app.start_doctor();
    let start = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let result = loop {
        app.now = start.elapsed().as_secs_f64();
        app.age_out();
        if let Ok(size) = terminal.size() {
            app.page = size.height.saturating_sub(4).max(1) as usize;
        }
        if app.doctor_due() {
            sources::run_doctor(settings.clone(), tx.clone());
        }
        if let Err(e) = terminal.draw(|f| ui::render(&app, f)) {
            break Err(CannotRun::new(format!("cannot draw: {e}")));
        }
        tokio::select! {
            ev = key_rx.recv() => match ev {
                Some(Event::Key(k)) if k.kind != KeyEventKind::Release => match app.on_key(k) {
                    Some(Command::Quit) => break Ok(()),
                    Some(Command::RerunDoctor) => {
                        sources::run_doctor(settings.clone(), tx.clone());
                    }
                    Some(Command::Watch) => watch(&settings, &mut app, &tx),
                    None => {}
                },
                Some(_) => {}
                None => break Ok(()),
            },
            Some(u) = rx.recv() => {
                app.apply(u);
                // The fleet's first answer: the other screens watch its worst pod.
                if app.fleet.as_ref().is_some_and(|f| f.watching.is_none())
                    && let Some(p) = app.fleet_rows().first().map(|_| ()).and(app.selected_pod())
                {
                    app.watch(p);
                    watch(&settings, &mut app, &tx);
                }
                // Take what else is queued before drawing again (bounded, so keys stay live).
                for _ in 0..256 {
                    match rx.try_recv() {
                        Ok(u) => app.apply(u),
                        Err(_) => break,
                    }
                }
            }
            _ = tick.tick() => {}
        }
    };
    for t in tasks {
        t.abort();
    }
    result
}
