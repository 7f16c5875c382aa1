//! `ccctl rotate pcr0` / `pcr8`: the five-step rotation as a resumable workflow. The state is
//! one JSON file, written atomically (temporary file, fsync, rename), so a workflow killed at
//! any point resumes where it stood — here or on another machine with the same file.
//!
//! 1. Measure (`start`): NEW from the EIF (or certificate, or typed and validated), OLD from
//!    what runs (the enclaves' `/status`) or typed.
//! 2. Hand to holders: one message per holder with NEW, how to verify it, and the policy
//!    change (`["NEW", "OLD"]`). Holders may `confirm` their own measurement; a mismatch halts.
//! 3. Wait until every holder's key policy allows both NEW and OLD.
//! 4. Deploy (print or run the `helm upgrade`), then wait until every watched enclave attests
//!    NEW. Refused while fewer than threshold holders allow NEW.
//! 5. Retire OLD: refused while any watched enclave reports OLD (or cannot be asked); hand out
//!    `["NEW"]`, wait until every holder dropped OLD. Done.

pub mod policy_edit;
pub mod workflow;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::output::{CannotRun, Format, Outcome};
use workflow::{Confirmation, Decision, DeployAction, HolderViews, Observe, View};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Step {
    HandOut,
    WaitPolicies,
    Deploy,
    Retire,
    WaitRetired,
    Done,
}

impl Step {
    pub fn number(self) -> u8 {
        match self {
            Step::HandOut => 2,
            Step::WaitPolicies => 3,
            Step::Deploy => 4,
            Step::Retire | Step::WaitRetired => 5,
            Step::Done => 6,
        }
    }
    pub fn describe(self) -> &'static str {
        match self {
            Step::HandOut => "hand the new value and the policy change to every holder",
            Step::WaitPolicies => "wait until every holder's policy allows NEW and OLD",
            Step::Deploy => "deploy the new image and wait until every enclave attests NEW",
            Step::Retire => "hand out the policy change that removes OLD",
            Step::WaitRetired => "wait until every holder's policy dropped OLD",
            Step::Done => "done",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KubeWatch {
    pub selector: String,
    pub namespace: Option<String>,
    pub context: Option<String>,
    /// `kube` (exec through the API) or `local` (`ccctl demo`: the pod is this machine).
    pub exec: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Event {
    pub at: String,
    pub what: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    pub version: u32,
    /// The PCR being rotated: 0 (image) or 8 (signing certificate).
    pub pcr: u8,
    pub new: String,
    pub old: String,
    /// Where NEW was measured.
    pub source: String,
    /// The other PCRs an enclave attests (used unchanged in every policy check).
    pub other_pcrs: BTreeMap<u8, String>,
    /// `ccctl.toml` (holders, principal, threshold), absolute.
    pub config: PathBuf,
    /// The enclaves to watch (`/status`), e.g. `tcp://127.0.0.1:9000`.
    pub apis: Vec<String>,
    /// The pods to watch through the Kubernetes API (each pod's nitro-cli, via exec).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kube: Option<KubeWatch>,
    pub release: String,
    pub chart: String,
    pub image_tag: Option<String>,
    pub step: Step,
    pub confirmations: BTreeMap<String, String>,
    /// Set when the workflow must not go on (a holder measured something else).
    pub halted: Option<String>,
    pub history: Vec<Event>,
}

fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

impl State {
    fn note(&mut self, what: impl Into<String>) {
        self.history.push(Event {
            at: now(),
            what: what.into(),
        });
    }

    pub fn load(path: &Path) -> Result<State, CannotRun> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            CannotRun::new(format!(
                "cannot read the rotation state '{}': {e} (start one with `ccctl rotate pcr0 start --config ccctl.toml …` or `pcr8`)",
                path.display()
            ))
        })?;
        let s: State = serde_json::from_str(&text).map_err(|e| {
            CannotRun::new(format!(
                "the rotation state '{}' is not valid: {e}",
                path.display()
            ))
        })?;
        if s.version != 1 {
            return Err(CannotRun::new(format!(
                "the rotation state '{}' has version {}; this ccctl reads version 1",
                path.display(),
                s.version
            )));
        }
        Ok(s)
    }

    /// Write atomically: a crash leaves the old file or the new one, never half of one.
    pub fn save(&self, path: &Path) -> Result<(), CannotRun> {
        let err = |e: std::io::Error| {
            CannotRun::new(format!(
                "cannot write the rotation state '{}': {e}",
                path.display()
            ))
        };
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(err)?;
        std::io::Write::write_all(&mut tmp, crate::output::json(self).as_bytes()).map_err(err)?;
        tmp.as_file().sync_all().map_err(err)?;
        tmp.persist(path).map_err(|e| err(e.error))?;
        Ok(())
    }
}

/// 96 lowercase hex digits, or an error naming the flag.
pub fn measurement(flag: &str, v: &str) -> Result<String, CannotRun> {
    let v = v.trim();
    cc_proto::pcr::Pcr::parse(v).map(|p| p.hex()).map_err(|e| {
        CannotRun::new(format!(
            "{flag} '{}' is not a measurement: {e}",
            crate::output::clean(&v.chars().take(120).collect::<String>()),
        ))
    })
}

fn short(v: &str) -> String {
    if v.len() > 16 {
        format!("{}…", &v[..16])
    } else {
        v.to_owned()
    }
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum RotateCommand {
    /// Rotate PCR0 (every release: a new image).
    Pcr0 {
        #[command(subcommand)]
        step: StepCommand,
    },
    /// Rotate PCR8 (a new signing certificate).
    Pcr8 {
        #[command(subcommand)]
        step: StepCommand,
    },
}

#[derive(Debug, Clone, clap::Args)]
pub struct StateArg {
    /// The workflow's state file.
    #[arg(long, value_name = "FILE", default_value = "rotation.json")]
    pub state: PathBuf,
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum StepCommand {
    /// Step 1: measure NEW and OLD and start the workflow.
    Start(Box<StartArgs>),
    /// Where the workflow stands.
    Status(StateArg),
    /// Run the current step (and advance when it completes).
    Next(NextArgs),
    /// Record a holder's own measurement of NEW (a mismatch halts the workflow).
    Confirm(ConfirmArgs),
    /// Stop the workflow (the state file is kept, marked aborted).
    Abort(StateArg),
}

#[derive(Debug, Clone, clap::Args)]
pub struct StartArgs {
    #[command(flatten)]
    pub state: StateArg,
    /// The new image: NEW is its PCR0 (pcr0) or PCR8 (pcr8, a signed image).
    #[arg(long, value_name = "PATH")]
    pub eif: Option<PathBuf>,
    /// pcr8: the new signing certificate (PEM or DER); NEW is its PCR8.
    #[arg(long, value_name = "PEM", conflicts_with = "eif")]
    pub cert: Option<PathBuf>,
    /// NEW typed by hand (96 hex digits).
    #[arg(long, value_name = "HEX", conflicts_with_all = ["eif", "cert"])]
    pub new: Option<String>,
    /// OLD typed by hand (default: what the watched enclaves attest).
    #[arg(long, value_name = "HEX")]
    pub old: Option<String>,
    /// The running PCR0 (pcr8 rotation, when no --api answers).
    #[arg(long, value_name = "HEX")]
    pub pcr0: Option<String>,
    /// The running PCR8 (pcr0 rotation, when no --api answers).
    #[arg(long, value_name = "HEX")]
    pub pcr8: Option<String>,
    /// An enclave to watch (repeatable; default `CCCTL_API`, as doctor): its /status gives OLD
    /// and, later, proves NEW runs.
    #[arg(long = "api", value_name = "ADDR", env = "CCCTL_API")]
    pub apis: Vec<cc_proto::Address>,
    /// Watch every pod matching this label selector through the Kubernetes API: each pod's
    /// `nitro-cli describe-enclaves` (run by exec) gives the PCRs its enclave runs.
    #[arg(short = 'l', long = "selector", value_name = "SELECTOR")]
    pub selector: Option<String>,
    /// Namespace of the pods (default: the context's, else `default`).
    #[arg(short = 'n', long, value_name = "NAMESPACE")]
    pub namespace: Option<String>,
    /// kubeconfig context to use.
    #[arg(long, value_name = "CONTEXT")]
    pub context: Option<String>,
    /// How to run nitro-cli in the pods: through the API (kube), or on this machine (local:
    /// `ccctl demo`, where the pod is this machine).
    #[arg(long, value_enum, default_value_t = crate::probe::exec::ExecMode::Kube)]
    pub exec: crate::probe::exec::ExecMode,
    /// ccctl's config: the holders, their keys, the principal and threshold.
    #[arg(long, value_name = "FILE", env = "CCCTL_CONFIG")]
    pub config: PathBuf,
    /// Helm release and chart for the deploy step.
    #[arg(long, default_value = "containment-chamber")]
    pub release: String,
    #[arg(long, default_value = "charts/containment-chamber")]
    pub chart: String,
    /// The image tag of the new release (for the helm upgrade).
    #[arg(long, value_name = "TAG")]
    pub image_tag: Option<String>,
    /// Replace an existing, unfinished workflow.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Clone, clap::Args)]
pub struct NextArgs {
    #[command(flatten)]
    pub state: StateArg,
    /// Write the holders' messages and ready policies here (the paths are printed).
    #[arg(long, value_name = "DIR", default_value = "handout")]
    pub out: PathBuf,
    /// How long a waiting step polls before giving up (exit 1, state unchanged).
    #[arg(long, value_name = "DURATION", default_value = "0s", value_parser = crate::parse_duration)]
    pub wait: Duration,
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = crate::parse_duration)]
    pub interval: Duration,
    /// Deploy step: run the deploy command instead of printing it.
    #[arg(long)]
    pub execute: bool,
    /// Deploy step: the command to run (default: the helm upgrade).
    #[arg(long, value_name = "SHELL")]
    pub deploy_command: Option<String>,
    /// Deploy step: how long the deploy command may run before it is stopped (exit 2, the
    /// step is not recorded as done). Its output goes to the terminal, not through ccctl.
    #[arg(long, value_name = "DURATION", default_value = "30m", value_parser = crate::parse_duration)]
    pub deploy_timeout: Duration,
    /// Deadline of each KMS / enclave request.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = crate::parse_duration)]
    pub timeout: Duration,
}

#[derive(Debug, Clone, clap::Args)]
pub struct ConfirmArgs {
    #[command(flatten)]
    pub state: StateArg,
    #[arg(long, value_name = "NAME")]
    pub holder: String,
    /// The PCR0 the holder measured (pcr0 rotation).
    #[arg(long, value_name = "HEX")]
    pub pcr0: Option<String>,
    /// The PCR8 the holder measured (pcr8 rotation).
    #[arg(long, value_name = "HEX")]
    pub pcr8: Option<String>,
}

/// What one poll of the holders found.
#[derive(Debug, Clone, Serialize)]
pub struct HolderView {
    pub holder: String,
    pub allows_new: Option<bool>,
    pub allows_old: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What one poll of the enclaves found.
#[derive(Debug, Clone, Serialize)]
pub struct EnclaveView {
    pub api: String,
    /// The attested value of the rotated PCR; `None` when it could not be asked.
    pub value: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

pub fn run(cmd: RotateCommand, fmt: Format) -> Result<Outcome, CannotRun> {
    let (pcr, step) = match cmd {
        RotateCommand::Pcr0 { step } => (0u8, step),
        RotateCommand::Pcr8 { step } => (8u8, step),
    };
    let rt = crate::output::runtime()?;
    let r = rt.block_on(async {
        match step {
            StepCommand::Start(a) => start(pcr, *a, fmt).await,
            StepCommand::Status(a) => {
                let s = load_for(pcr, &a)?;
                print_state(&s, fmt);
                if fmt != Format::Json {
                    let state = a.state_path().display().to_string();
                    if s.halted.is_some() {
                        crate::output::emit(&format!(
                            "start over once resolved: ccctl rotate pcr{pcr} start --force --state {} --config {} --new {}\n",
                            crate::output::shell_word(&state),
                            crate::output::shell_word(&s.config.display().to_string()),
                            s.new
                        ));
                    } else if s.step != Step::Done {
                        crate::output::emit(&format!(
                            "next: ccctl rotate pcr{pcr} next --state {}\n",
                            crate::output::shell_word(&state)
                        ));
                    }
                }
                // In progress is not a failure: 1 only for a halted workflow.
                Ok(Outcome::clean_if(s.halted.is_none()))
            }
            StepCommand::Next(a) => next(pcr, a, fmt).await,
            StepCommand::Confirm(a) => confirm(pcr, a, fmt),
            StepCommand::Abort(a) => {
                let mut s = load_for(pcr, &a)?;
                s.halted = Some("aborted by the operator".into());
                s.note("aborted");
                s.save(&a.state_path())?;
                print_state(&s, fmt);
                Ok(Outcome::Ok)
            }
        }
    });
    rt.shutdown_timeout(Duration::from_millis(200));
    r
}

impl StateArg {
    fn state_path(&self) -> PathBuf {
        self.state.clone()
    }
}

fn load_for(pcr: u8, a: &StateArg) -> Result<State, CannotRun> {
    let s = State::load(&a.state)?;
    if s.pcr != pcr {
        return Err(CannotRun::new(format!(
            "'{}' is a PCR{} rotation, not PCR{pcr}",
            a.state.display(),
            s.pcr
        )));
    }
    Ok(s)
}

async fn attested(api: &str, timeout: Duration) -> Result<BTreeMap<u8, String>, String> {
    let addr: cc_proto::Address = api.parse().map_err(|e| format!("{api}: {e}"))?;
    let s = crate::probe::status::fetch(&addr, timeout).await?;
    let att = s
        .attestation
        .ok_or_else(|| format!("{api}: the enclave has not attested yet"))?;
    // /status omits all-zero PCRs: a missing PCR0 is the debug value.
    Ok(att.pcr_set().iter().map(|(i, p)| (i, p.hex())).collect())
}

async fn start(pcr: u8, a: StartArgs, fmt: Format) -> Result<Outcome, CannotRun> {
    if let Ok(old) = State::load(&a.state.state)
        && old.step != Step::Done
        && old.halted.is_none()
        && !a.force
    {
        return Err(CannotRun::new(format!(
            "'{}' holds an unfinished PCR{} rotation at step {}; resume it with `next`, or \
                 replace it with --force",
            a.state.state.display(),
            old.pcr,
            old.step.number()
        )));
    }
    let flag = if pcr == 0 {
        "--new (PCR0)"
    } else {
        "--new (PCR8)"
    };
    let (new, source) = match (&a.eif, &a.cert, &a.new) {
        (Some(eif), _, _) => {
            let d = crate::eif::describe_file(eif)?;
            if !d.signature_ok() {
                return Err(CannotRun::new(format!(
                    "'{}': the EIF's signature does not verify; refusing to measure it",
                    eif.display()
                )));
            }
            let v = if pcr == 0 {
                Some(d.info.measurements.pcr0.clone())
            } else {
                d.info.measurements.pcr8.clone()
            };
            let v = v.ok_or_else(|| {
                CannotRun::new(format!(
                    "'{}' is not signed: it has no PCR8 (use --cert, or sign the image)",
                    eif.display()
                ))
            })?;
            (v, format!("eif:{}", abs(eif).display()))
        }
        (None, Some(cert), _) => {
            if pcr != 8 {
                return Err(CannotRun::new("--cert is for `rotate pcr8`"));
            }
            let bytes = std::fs::read(cert).map_err(|e| {
                CannotRun::new(format!("cannot read --cert '{}': {e}", cert.display()))
            })?;
            let der = cc_proto::eif::pem_or_der(&bytes).ok_or_else(|| {
                CannotRun::new(format!(
                    "--cert '{}' is neither a PEM nor a DER certificate",
                    cert.display()
                ))
            })?;
            (
                cc_proto::eif::pcr8_of_certificate(&der),
                format!("certificate:{}", abs(cert).display()),
            )
        }
        (None, None, Some(v)) => (measurement(flag, v)?, "typed by hand".to_owned()),
        (None, None, None) => {
            return Err(CannotRun::new(
                "say what the new value is: --eif PATH, --cert PEM (pcr8) or --new HEX",
            ));
        }
    };
    let timeout = Duration::from_secs(10);
    let kube = a.selector.as_ref().map(|sel| KubeWatch {
        selector: sel.clone(),
        namespace: a.namespace.clone(),
        context: a.context.clone(),
        exec: match a.exec {
            crate::probe::exec::ExecMode::Local => "local".into(),
            _ => "kube".into(),
        },
    });
    let mut running: Option<BTreeMap<u8, String>> = None;
    let mut errors = Vec::new();
    for api in &a.apis {
        match attested(&api.to_string(), timeout).await {
            Ok(p) => {
                running.get_or_insert(p);
            }
            Err(e) => errors.push(e),
        }
    }
    if let Some(k) = &kube {
        for v in pods_running(k, timeout).await {
            match (v.pcrs, v.error) {
                (Some(p), _) => {
                    running.get_or_insert(p);
                }
                (None, Some(e)) => errors.push(e),
                (None, None) => {}
            }
        }
    }
    let old = match (&a.old, &running) {
        (Some(v), _) => measurement("--old", v)?,
        (None, Some(p)) => p.get(&pcr).cloned().ok_or_else(|| {
            CannotRun::new(format!(
                "the running enclave attests no PCR{pcr}; give --old"
            ))
        })?,
        (None, None) => {
            return Err(CannotRun::new(format!(
                "cannot tell OLD: give --old HEX or an --api that answers{}",
                if errors.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", errors.join("; "))
                }
            )));
        }
    };
    if old == new {
        return Err(CannotRun::new(format!(
            "NEW and OLD are the same PCR{pcr} ({}): nothing to rotate",
            short(&new)
        )));
    }
    let mut other_pcrs: BTreeMap<u8, String> = running.clone().unwrap_or_default();
    other_pcrs.remove(&pcr);
    for (n, flagv) in [(0u8, &a.pcr0), (8u8, &a.pcr8)] {
        if n != pcr
            && let Some(v) = flagv
        {
            other_pcrs.insert(n, measurement(&format!("--pcr{n}"), v)?);
        }
    }
    let cfg = crate::config::Config::load(&a.config).map_err(CannotRun::new)?;
    if cfg.holders.is_empty() {
        return Err(CannotRun::new(format!(
            "'{}' lists no [[holder]]",
            a.config.display()
        )));
    }
    let mut s = State {
        version: 1,
        pcr,
        new: new.clone(),
        old: old.clone(),
        source,
        other_pcrs,
        config: abs(&a.config),
        apis: a.apis.iter().map(ToString::to_string).collect(),
        kube,
        release: a.release,
        chart: a.chart,
        image_tag: a.image_tag,
        step: Step::HandOut,
        confirmations: BTreeMap::new(),
        halted: None,
        history: Vec::new(),
    };
    s.note(format!(
        "measured: NEW PCR{pcr} {} ({}), OLD {}",
        short(&new),
        s.source,
        short(&old)
    ));
    s.save(&a.state.state)?;
    print_state(&s, fmt);
    Ok(Outcome::Ok)
}

fn abs(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_owned())
}

fn confirm(pcr: u8, a: ConfirmArgs, fmt: Format) -> Result<Outcome, CannotRun> {
    let mut s = load_for(pcr, &a.state)?;
    let given = if pcr == 0 { &a.pcr0 } else { &a.pcr8 };
    let given = given.as_deref().ok_or_else(|| {
        CannotRun::new(format!("give the holder's measurement with --pcr{pcr} HEX"))
    })?;
    let v = measurement(&format!("--pcr{pcr}"), given)?;
    let cfg = crate::config::Config::load(&s.config).map_err(CannotRun::new)?;
    if !cfg.holders.iter().any(|h| h.name == a.holder) {
        return Err(CannotRun::new(format!(
            "'{}' is not a holder of '{}'",
            a.holder,
            s.config.display()
        )));
    }
    s.confirmations.insert(a.holder.clone(), v.clone());
    let outcome = match workflow::confirm(&s, &a.holder, &v) {
        Confirmation::Matches { note } => {
            s.note(note);
            Outcome::Ok
        }
        Confirmation::Halt { why } => {
            crate::output::note(&format!("REFUSED: {why}"));
            s.halted = Some(why.clone());
            s.note(why);
            Outcome::Finding
        }
    };
    s.save(&a.state.state)?;
    print_state(&s, fmt);
    Ok(outcome)
}

/// Every holder's policy judged for NEW and for OLD (the other PCRs as running).
async fn poll_holders(s: &State, timeout: Duration) -> Result<(Vec<HolderView>, u32), CannotRun> {
    holder_views(&s.config, s.pcr, &s.new, &s.old, &s.other_pcrs, timeout).await
}

/// Every holder of `config` judged by the policy verdict (`policy::check`, the same as
/// `policy check`, doctor and the dashboard) for PCR `pcr` = NEW and = OLD, the other PCRs as
/// given; and the threshold. What the interlocks count.
pub async fn holder_views(
    config: &Path,
    pcr: u8,
    new: &str,
    old: &str,
    other_pcrs: &BTreeMap<u8, String>,
    timeout: Duration,
) -> Result<(Vec<HolderView>, u32), CannotRun> {
    let cfg = crate::config::Config::load(config).map_err(CannotRun::new)?;
    let principal = cfg
        .principal
        .clone()
        .ok_or_else(|| CannotRun::new(format!("'{}' has no 'principal'", config.display())))?;
    let threshold = cfg.threshold.unwrap_or(2);
    let with = |v: &str| {
        let mut pcrs = other_pcrs.clone();
        pcrs.insert(pcr, v.to_owned());
        crate::policy::Input::from_config(
            &cfg,
            principal.clone(),
            threshold,
            cc_proto::policy::Measurements { pcrs },
            timeout,
        )
    };
    let (new, old) = tokio::join!(
        crate::policy::check(with(new)),
        crate::policy::check(with(old))
    );
    let views = cfg
        .holders
        .iter()
        .map(|h| {
            let n = new.holders.iter().find(|r| r.name == h.name);
            let o = old.holders.iter().find(|r| r.name == h.name);
            HolderView {
                holder: h.name.clone(),
                allows_new: n.and_then(|r| r.decrypt_allowed),
                allows_old: o.and_then(|r| r.decrypt_allowed),
                error: n
                    .and_then(|r| r.error.clone())
                    .or_else(|| o.and_then(|r| r.error.clone())),
            }
        })
        .collect();
    Ok((views, threshold))
}

/// One pod's enclave as its nitro-cli reports it.
struct PodRunning {
    name: String,
    pcrs: Option<BTreeMap<u8, String>>,
    error: Option<String>,
}

/// Every pod of the selector: `nitro-cli describe-enclaves` in it (exec), its RUNNING
/// enclave's PCR0/PCR8. A pod that cannot be asked, or runs no enclave, says so.
async fn pods_running(k: &KubeWatch, timeout: Duration) -> Vec<PodRunning> {
    let fail = |e: String| {
        vec![PodRunning {
            name: format!("pods '{}'", k.selector),
            pcrs: None,
            error: Some(e),
        }]
    };
    let client = match crate::probe::k8s::client(k.context.as_deref()).await {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    let ns = match &k.namespace {
        Some(n) => n.clone(),
        None => crate::probe::k8s::default_namespace(k.context.as_deref()).await,
    };
    let api: kube::Api<k8s_openapi::api::core::v1::Pod> =
        kube::Api::namespaced(client.clone(), &ns);
    let list = match tokio::time::timeout(
        timeout,
        api.list(&kube::api::ListParams::default().labels(&k.selector)),
    )
    .await
    {
        Ok(Ok(l)) => l.items,
        Ok(Err(e)) => return fail(format!("listing pods '{}' in '{ns}': {e}", k.selector)),
        Err(_) => {
            return fail(format!(
                "the Kubernetes API did not answer within {timeout:?}"
            ));
        }
    };
    if list.is_empty() {
        return fail(format!("no pod matches '{}' in '{ns}'", k.selector));
    }
    let mode = if k.exec == "local" {
        crate::probe::exec::ExecMode::Local
    } else {
        crate::probe::exec::ExecMode::Kube
    };
    let Some(exec) = crate::probe::exec::exec_for(mode, &client) else {
        return fail("no way to run nitro-cli in the pods".into());
    };
    let mut tasks = tokio::task::JoinSet::new();
    for p in list {
        let name = p.metadata.name.clone().unwrap_or_default();
        let (exec, ns) = (exec.clone(), ns.clone());
        tasks.spawn(async move {
            let parsed =
                crate::probe::nitro_cli::describe_in_pod(&*exec, &ns, &name, timeout).await;
            let pcrs = parsed.and_then(|list| {
                let e = list
                    .into_iter()
                    .find(|e| e.state == "RUNNING")
                    .ok_or_else(|| "no RUNNING enclave".to_owned())?;
                let m = e.measurements.unwrap_or_default();
                let mut out = BTreeMap::new();
                for (n, v) in [(0u8, m.pcr0), (8u8, m.pcr8)] {
                    if let Some(v) = v {
                        out.insert(n, v.to_ascii_lowercase());
                    }
                }
                Ok(out)
            });
            match pcrs {
                Ok(p) => PodRunning {
                    name: format!("pod {ns}/{name}"),
                    pcrs: Some(p),
                    error: None,
                },
                Err(e) => PodRunning {
                    name: format!("pod {ns}/{name}"),
                    pcrs: None,
                    error: Some(e),
                },
            }
        });
    }
    let mut out = Vec::new();
    while let Some(Ok(r)) = tasks.join_next().await {
        out.push(r);
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

async fn poll_enclaves(s: &State, timeout: Duration) -> Vec<EnclaveView> {
    let mut out = Vec::new();
    if let Some(k) = &s.kube {
        for p in pods_running(k, timeout).await {
            out.push(EnclaveView {
                api: p.name,
                value: p.pcrs.and_then(|m| m.get(&s.pcr).cloned()),
                error: p.error,
            });
        }
    }
    for api in &s.apis {
        match attested(api, timeout).await {
            Ok(p) => out.push(EnclaveView {
                api: api.clone(),
                value: p.get(&s.pcr).cloned(),
                error: None,
            }),
            Err(e) => out.push(EnclaveView {
                api: api.clone(),
                value: None,
                error: Some(e),
            }),
        }
    }
    out
}

/// Poll `check` until it returns `Some` or `wait` runs out; progress on stderr.
async fn until<T, F, Fut>(
    what: &str,
    a: &NextArgs,
    quiet: bool,
    mut check: F,
) -> Result<Result<T, String>, CannotRun>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Result<T, String>, CannotRun>>,
{
    let start = Instant::now();
    let spinner = ['|', '/', '-', '\\'];
    // Spinner frames only on a terminal: a log file or CI output gets no `\r` frames.
    let quiet = quiet || !std::io::IsTerminal::is_terminal(&std::io::stderr());
    let mut n = 0;
    loop {
        match check().await? {
            Ok(v) => {
                if !quiet && n > 0 {
                    crate::output::note("");
                }
                return Ok(Ok(v));
            }
            Err(missing) => {
                if start.elapsed() >= a.wait {
                    if !quiet && n > 0 {
                        crate::output::note("");
                    }
                    return Ok(Err(missing));
                }
                if !quiet {
                    let _ = std::io::Write::write_fmt(
                        &mut std::io::stderr(),
                        format_args!(
                            "\r{} {what}: {} ({:.0}s)   ",
                            spinner[n % 4],
                            crate::output::clean(&missing),
                            start.elapsed().as_secs_f64()
                        ),
                    );
                }
                n += 1;
                tokio::time::sleep(
                    a.interval
                        .min(a.wait.saturating_sub(start.elapsed()))
                        .max(Duration::from_millis(50)),
                )
                .await;
            }
        }
    }
}

async fn next(pcr: u8, a: NextArgs, fmt: Format) -> Result<Outcome, CannotRun> {
    let path = a.state.state_path();
    let mut s = load_for(pcr, &a.state)?;
    let quiet = fmt == Format::Json;
    // What this run has observed; the workflow says what else it needs.
    let mut holders: Option<HolderViews> = None;
    let mut enclaves: Option<Vec<EnclaveView>> = None;
    let outcome = loop {
        let o = match workflow::decide(&s, holders.as_ref(), enclaves.as_deref()) {
            Decision::Halted { why } => {
                return Err(CannotRun::new(format!(
                    "the workflow is halted: {why}\nStart over once resolved: `ccctl rotate pcr{pcr} start --force --config {} --new {}`",
                    crate::output::shell_word(&s.config.display().to_string()),
                    s.new
                )));
            }
            Decision::CannotRun { why } => return Err(CannotRun::new(why)),
            Decision::Refuse { why } => {
                // An interlock: the state stays as it was.
                crate::output::note(&format!("REFUSED: {why}"));
                print_state(&s, fmt);
                return Ok(Outcome::Finding);
            }
            Decision::Done => break Outcome::Ok,
            Decision::Advance(adv) => {
                s.step = adv.to;
                s.note(adv.note);
                break Outcome::Ok;
            }
            Decision::Wait { on, missing } => {
                crate::output::note(&format!("not yet: {}", workflow::waiting(on, &missing)));
                break Outcome::Finding;
            }
            Decision::HandOut { values, what, then } => {
                hand_out(&s, &a, &values, what).await?;
                s.step = then.to;
                s.note(then.note);
                break Outcome::Ok;
            }
            Decision::Deploy { then } => {
                deploy(&mut s, &a, &path, quiet).await?;
                then
            }
            Decision::Observe(o) => o,
        };
        match observe(&s, &a, quiet, o, holders.as_ref(), enclaves.as_deref()).await? {
            Ok(Polled::Holders(h)) => holders = Some(h),
            Ok(Polled::Enclaves(e)) => enclaves = Some(e),
            Err(m) => {
                crate::output::note(&format!("not yet: {m}"));
                break Outcome::Finding;
            }
        }
    };
    s.save(&path)?;
    print_state(&s, fmt);
    Ok(outcome)
}

/// One poll's views.
enum Polled {
    Holders(HolderViews),
    Enclaves(Vec<EnclaveView>),
}

/// Poll what the workflow asked for: once, or until the step no longer waits (`Err`: who is
/// still missing when `--wait` ran out).
async fn observe(
    s: &State,
    a: &NextArgs,
    quiet: bool,
    o: Observe,
    holders: Option<&HolderViews>,
    enclaves: Option<&[EnclaveView]>,
) -> Result<Result<Polled, String>, CannotRun> {
    let poll = || async {
        Ok(match o.view {
            View::Holders => Polled::Holders(poll_holders(s, a.timeout).await?.into()),
            View::Enclaves => Polled::Enclaves(poll_enclaves(s, a.timeout).await),
        })
    };
    let Some(what) = o.until else {
        return Ok(Ok(poll().await?));
    };
    until(what, a, quiet, || async {
        let p = poll().await?;
        let d = match &p {
            Polled::Holders(h) => workflow::decide(s, Some(h), enclaves),
            Polled::Enclaves(e) => workflow::decide(s, holders, Some(e)),
        };
        Ok(match d {
            Decision::Wait { on, missing } => Err(workflow::waiting(on, &missing)),
            _ => Ok(p),
        })
    })
    .await
}

/// Run the deploy command (once across resumes: the history records it, saved before the
/// wait) or print it.
async fn deploy(s: &mut State, a: &NextArgs, path: &Path, quiet: bool) -> Result<(), CannotRun> {
    match workflow::deploy_action(s, a.execute, a.deploy_command.as_deref()) {
        DeployAction::Run(cmd) => {
            let mut child = tokio::process::Command::new("sh")
                .args(["-c", &cmd])
                .kill_on_drop(true)
                .spawn()
                .map_err(|e| CannotRun::new(format!("cannot run '{cmd}': {e}")))?;
            let st = match tokio::time::timeout(a.deploy_timeout, child.wait()).await {
                Ok(st) => st.map_err(|e| CannotRun::new(format!("cannot run '{cmd}': {e}")))?,
                Err(_) => {
                    let _ = child.kill().await;
                    return Err(CannotRun::new(format!(
                        "'{cmd}' did not finish within the deploy deadline of {:?} (stopped; \
                         the step is not done; raise it with --deploy-timeout)",
                        a.deploy_timeout
                    )));
                }
            };
            if !st.success() {
                return Err(CannotRun::new(format!("'{cmd}' failed: {st}")));
            }
            s.note(workflow::deploy_ran(&cmd));
            s.save(path)?;
        }
        DeployAction::Print(cmd) => {
            if !quiet {
                crate::output::emit(&format!(
                    "Deploy (then this step waits for every enclave to attest NEW):\n  {cmd}\n"
                ));
            }
        }
    }
    Ok(())
}

/// One message per holder: NEW, how to verify it, the change (Terraform list, and the JSON
/// statement diff plus the whole new policy when the current one can be read).
async fn hand_out(s: &State, a: &NextArgs, values: &[String], what: &str) -> Result<(), CannotRun> {
    let cfg = crate::config::Config::load(&s.config).map_err(CannotRun::new)?;
    let p = s.pcr;
    let list = format!(
        "[{}]",
        values
            .iter()
            .map(|v| format!("\"{v}\""))
            .collect::<Vec<_>>()
            .join(", ")
    );
    for h in &cfg.holders {
        let current = match &h.policy_file {
            Some(f) => std::fs::read_to_string(f).ok(),
            None => crate::policy::fetch_text(h, a.timeout).await.ok(),
        };
        let mut msg = format!(
            "# PCR{p} rotation — {what} — for key holder '{}'\n\nKey: {}\nNEW PCR{p}: {}\nOLD PCR{p}: {}\nNEW measured from: {}\n\n",
            h.name, h.key_arn, s.new, s.old, s.source
        );
        if values.len() > 1 {
            msg.push_str(&format!(
                "## Verify NEW yourself before changing anything\n\nRebuild the image reproducibly from the release's source and measure it:\n\n    docker build -f Dockerfile.enclave --build-arg SOURCE_DATE_EPOCH=<release's> -t cc-enclave .\n    nitro-cli build-enclave --docker-uri cc-enclave --output-file enclave.eif\n    ccctl eif describe --eif-path enclave.eif      # PCR{p} must equal NEW\n    ccctl rotate pcr{p} confirm --state <state file> --holder {} --pcr{p} <your PCR{p}>\n\n",
                h.name
            ));
        }
        msg.push_str(&format!(
            "## The change\n\nTerraform: allowed_pcr{p} = {list}\n\nJSON: the kms:RecipientAttestation:PCR{p} condition of the Decrypt statement becomes {list}.\n"
        ));
        let new_policy = current
            .as_deref()
            .map(|c| (c, policy_edit::rewrite(c, p, values)));
        match &new_policy {
            Some((c, Ok(n))) => {
                msg.push_str(&format!(
                    "\nStatement diff against your current policy:\n\n{}\nThe whole new policy: {}.policy.json (aws kms put-key-policy --key-id {} --policy-name default --policy file://{}.policy.json)\n",
                    policy_edit::statement_diff(c, n, p),
                    h.name,
                    h.key_arn,
                    h.name
                ));
            }
            Some((_, Err(e))) => msg.push_str(&format!("\n(Your current policy could not be edited automatically: {e}.)\n")),
            None => msg.push_str("\n(Your current policy could not be read from here; edit the condition by hand.)\n"),
        }
        let dir = &a.out;
        std::fs::create_dir_all(dir)
            .map_err(|e| CannotRun::new(format!("cannot create --out '{}': {e}", dir.display())))?;
        let w = |name: String, text: &str| {
            let path = dir.join(&name);
            std::fs::write(&path, text)
                .map_err(|e| CannotRun::new(format!("cannot write '{}': {e}", path.display())))?;
            Ok::<_, CannotRun>(path)
        };
        let mut written = vec![w(format!("{}.md", h.name), &msg)?];
        if let Some((_, Ok(n))) = &new_policy {
            written.push(w(format!("{}.policy.json", h.name), n)?);
        }
        // On stderr: stdout stays the state (JSON with -o json).
        crate::output::note(&format!(
            "hand-out for {}: {}",
            h.name,
            written
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    Ok(())
}

fn print_state(s: &State, fmt: Format) {
    if fmt == Format::Json {
        crate::output::emit(&format!("{}\n", crate::output::json(s)));
        return;
    }
    crate::output::emit(&format!(
        "PCR{} rotation: NEW {}  OLD {}\n",
        s.pcr,
        short(&s.new),
        short(&s.old)
    ));
    for st in [
        Step::HandOut,
        Step::WaitPolicies,
        Step::Deploy,
        Step::Retire,
        Step::WaitRetired,
    ] {
        let mark = if s.step == Step::Done
            || st.number() < s.step.number()
            || (st == Step::Retire && s.step == Step::WaitRetired)
        {
            "✓"
        } else if st == s.step {
            "▶"
        } else {
            " "
        };
        let label = match st {
            Step::Retire => "5a".to_owned(),
            Step::WaitRetired => "5b".to_owned(),
            other => other.number().to_string(),
        };
        crate::output::emit(&format!("  [{mark}] {label}. {}\n", st.describe()));
    }
    if s.step == Step::Done {
        crate::output::emit("  done.\n");
    }
    for (h, v) in &s.confirmations {
        crate::output::emit(&format!(
            "  confirmation from {h}: {}\n",
            if *v == s.new {
                "matches NEW".to_owned()
            } else {
                format!("MISMATCH ({})", short(v))
            }
        ));
    }
    if let Some(h) = &s.halted {
        crate::output::emit(&format!("  HALTED: {h}\n"));
    }
}
