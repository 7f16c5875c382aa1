//! The dashboard's state and its key handling. Rendering (`ui.rs`) reads this; the sources
//! (`sources.rs`) feed it through [`App::apply`]; keys go through [`App::on_key`], which looks
//! them up in [`KEYMAP`] — the same table the help overlay and the footer are drawn from.

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::logbuf::{Filter, Level, LogBuffer};
use super::metrics::{History, Scrape};
use crate::doctor::Report;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Screen {
    /// Every pod of `tui -l`, worst first (only in fleet mode).
    Fleet,
    Overview,
    Logs,
    Metrics,
    Findings,
}

impl Screen {
    pub const ALL: [Screen; 4] = [
        Screen::Overview,
        Screen::Logs,
        Screen::Metrics,
        Screen::Findings,
    ];
    /// The key that shows it (also its number in the tabs).
    pub fn key(self) -> char {
        match self {
            Screen::Fleet => '0',
            Screen::Overview => '1',
            Screen::Logs => '2',
            Screen::Metrics => '3',
            Screen::Findings => '4',
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Screen::Fleet => "Fleet",
            Screen::Overview => "Overview",
            Screen::Logs => "Logs",
            Screen::Metrics => "Metrics",
            Screen::Findings => "Findings",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Quit,
    Help,
    Show(Screen),
    NextScreen,
    Rerun,
    Up,
    Down,
    PageUp,
    PageDown,
    Top,
    Bottom,
    Follow,
    Search,
    NextMatch,
    NextError,
    CycleLevel,
    TargetFilter,
    EnclaveOnly,
    Wrap,
    FullPcrs,
    PrevScreen,
    Explain,
    /// Fleet: filter the rows (substring of any column).
    Filter,
    /// Fleet: watch the selected pod on the other screens.
    Drill,
}

pub struct Binding {
    pub key: KeyCode,
    /// How the key is written in the help and the footer.
    pub label: &'static str,
    pub action: Action,
    /// `None`: every screen.
    pub scope: Option<Screen>,
    pub help: &'static str,
    /// Shown in the footer.
    pub hint: bool,
}

const fn b(
    key: KeyCode,
    label: &'static str,
    action: Action,
    scope: Option<Screen>,
    help: &'static str,
    hint: bool,
) -> Binding {
    Binding {
        key,
        label,
        action,
        scope,
        help,
        hint,
    }
}

use Action as A;
use KeyCode as K;
const LOGS: Option<Screen> = Some(Screen::Logs);
const FLEET: Option<Screen> = Some(Screen::Fleet);

pub const KEYMAP: &[Binding] = &[
    b(K::Char('q'), "q", A::Quit, None, "quit", true),
    b(K::Char('?'), "?", A::Help, None, "help (this list)", true),
    b(
        K::Char('0'),
        "0",
        A::Show(Screen::Fleet),
        None,
        "fleet (tui -l)",
        false,
    ),
    b(
        K::Enter,
        "enter",
        A::Drill,
        FLEET,
        "watch the selected pod (overview, logs, metrics, findings)",
        true,
    ),
    b(
        K::Char('/'),
        "/",
        A::Filter,
        FLEET,
        "filter rows (substring; empty clears)",
        true,
    ),
    b(
        K::Char('1'),
        "1",
        A::Show(Screen::Overview),
        None,
        "overview",
        false,
    ),
    b(
        K::Char('2'),
        "2",
        A::Show(Screen::Logs),
        None,
        "logs",
        false,
    ),
    b(
        K::Char('3'),
        "3",
        A::Show(Screen::Metrics),
        None,
        "metrics",
        false,
    ),
    b(
        K::Char('4'),
        "4",
        A::Show(Screen::Findings),
        None,
        "findings",
        false,
    ),
    b(K::Tab, "tab", A::NextScreen, None, "next screen", true),
    b(
        K::BackTab,
        "S-tab",
        A::PrevScreen,
        None,
        "previous screen",
        false,
    ),
    b(
        K::Enter,
        "enter",
        A::Explain,
        Some(Screen::Findings),
        "explain the selected finding (ccctl explain)",
        true,
    ),
    b(K::Char('r'), "r", A::Rerun, None, "re-run doctor", true),
    b(
        K::Char('p'),
        "p",
        A::FullPcrs,
        Some(Screen::Overview),
        "full PCR values",
        true,
    ),
    b(K::Up, "↑/k", A::Up, None, "scroll up / previous", false),
    b(
        K::Char('k'),
        "k",
        A::Up,
        None,
        "scroll up / previous",
        false,
    ),
    b(K::Down, "↓/j", A::Down, None, "scroll down / next", false),
    b(
        K::Char('j'),
        "j",
        A::Down,
        None,
        "scroll down / next",
        false,
    ),
    b(K::PageUp, "PgUp", A::PageUp, None, "page up", false),
    b(K::PageDown, "PgDn", A::PageDown, None, "page down", false),
    b(K::Char('g'), "g", A::Top, None, "oldest / top", false),
    b(
        K::Char('G'),
        "G",
        A::Bottom,
        None,
        "newest / bottom (and follow)",
        false,
    ),
    b(K::Char('f'), "f", A::Follow, LOGS, "follow / pause", true),
    b(
        K::Char('/'),
        "/",
        A::Search,
        LOGS,
        "search (highlight, n: next older match)",
        true,
    ),
    b(
        K::Char('n'),
        "n",
        A::NextMatch,
        LOGS,
        "next (older) match",
        false,
    ),
    b(
        K::Char('e'),
        "e",
        A::NextError,
        LOGS,
        "jump to the next (older) error",
        true,
    ),
    b(
        K::Char('l'),
        "l",
        A::CycleLevel,
        LOGS,
        "level filter: all, ≥info, ≥warn, ≥error",
        true,
    ),
    b(
        K::Char('t'),
        "t",
        A::TargetFilter,
        LOGS,
        "target filter (substring; empty clears)",
        true,
    ),
    b(
        K::Char('o'),
        "o",
        A::EnclaveOnly,
        LOGS,
        "enclave lines only",
        true,
    ),
    b(K::Char('w'), "w", A::Wrap, LOGS, "wrap long lines", true),
];

/// The last good result of a source, and its state now. A value is shown as current only
/// while the source keeps answering: after a failure it stays on screen dimmed, with the age
/// of the last good answer, and the source reads UNREACHABLE.
#[derive(Debug, Clone)]
pub struct Sourced<T> {
    /// The last good value (kept after a failure, shown as stale).
    pub value: Option<T>,
    /// The error of the last attempt (`None` when it answered).
    pub error: Option<String>,
    /// `App::now` of the last good answer.
    pub at: Option<f64>,
    /// `App::now` of the last attempt, good or not.
    pub tried: Option<f64>,
}

impl<T> Default for Sourced<T> {
    fn default() -> Self {
        Sourced {
            value: None,
            error: None,
            at: None,
            tried: None,
        }
    }
}

/// What a source looks like now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// Nothing yet.
    Waiting,
    /// The last attempt answered.
    Fresh,
    /// The last attempt failed; the value shown is the last good one.
    Stale,
    /// It failed and never answered.
    Failed,
}

impl<T> Sourced<T> {
    /// Record an attempt; `true` when the source changed between answering and failing.
    fn set(&mut self, r: Result<T, String>, now: f64) -> bool {
        let was_ok = self.tried.map(|_| self.error.is_none());
        match r {
            Ok(v) => {
                self.value = Some(v);
                self.error = None;
                self.at = Some(now);
            }
            Err(e) => self.error = Some(crate::output::clean(&e)),
        }
        self.tried = Some(now);
        was_ok.is_some_and(|w| w != self.error.is_none())
    }

    /// No attempt has finished for `max_age` seconds while the last one answered: the source
    /// has gone silent (its task stuck or gone), so what it said is no longer current —
    /// stale, with why. The next answer clears it. `true` when it changed.
    fn silent(&mut self, now: f64, max_age: f64) -> bool {
        match self.tried {
            Some(t) if self.error.is_none() && now - t > max_age => {
                self.error = Some(format!(
                    "no answer for {}",
                    crate::output::duration_short((now - t) as u64)
                ));
                true
            }
            _ => false,
        }
    }

    pub fn freshness(&self) -> Freshness {
        match (&self.value, &self.error, self.tried) {
            (_, _, None) => Freshness::Waiting,
            (_, None, _) => Freshness::Fresh,
            (Some(_), Some(_), _) => Freshness::Stale,
            (None, Some(_), _) => Freshness::Failed,
        }
    }

    /// The value only while the source answers (what may be shown as current).
    pub fn current(&self) -> Option<&T> {
        self.value.as_ref().filter(|_| self.error.is_none())
    }
}

pub use crate::probe::egress::EgressProbe;

/// Which endpoints are healthy (forwarder up and upstream answering), to notice a change.
fn egress_health(v: &[EgressProbe]) -> Vec<bool> {
    v.iter()
        .map(|e| e.forwarder_up && e.upstream.is_ok())
        .collect()
}

/// One pod in --pod / -l mode.
#[derive(Debug, Clone)]
pub struct PodRow {
    pub name: String,
    pub node: String,
    pub phase: String,
    pub errors: usize,
    pub warnings: usize,
    /// Checks that could not look (a fact the user may not read): never a green row.
    pub unknown: usize,
    pub first_problem: String,
}

/// What the sources send.
#[derive(Debug)]
pub enum Update {
    Status(Result<cc_proto::status::Status, String>),
    Enclaves(Result<Vec<cc_proto::nitro_cli::DescribedEnclave>, String>),
    Metrics(Result<Scrape, String>),
    LogLines(Vec<Vec<u8>>),
    LogError(String),
    Findings(Report),
    Policy(Result<crate::policy::Report, String>),
    Egress(Vec<EgressProbe>),
    Pods(Result<Vec<PodRow>, String>),
    Fleet(Result<FleetView, String>),
    /// A per-pod update (status, metrics, policy, findings, logs) and the pod it was read
    /// from: one read for a pod no longer watched is dropped, not shown as the new one's.
    About(Option<PodKey>, Box<Update>),
}

/// One refresh of the fleet screen.
#[derive(Debug, Clone)]
pub struct FleetView {
    /// Worst first.
    pub rows: Vec<crate::doctor::live::Row>,
    /// Clusters that could not be listed.
    pub errors: Vec<String>,
    /// How many clusters are watched (a CLUSTER column when more than one).
    pub clusters: usize,
}

/// The pod the per-pod screens watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodKey {
    pub cluster: usize,
    pub cluster_name: String,
    pub namespace: String,
    pub name: String,
    pub api_port: u16,
    pub metrics_port: u16,
}

/// What the loop must do after a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Quit,
    RerunDoctor,
    /// Watch this fleet row's pod.
    Watch,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prompt {
    None,
    Search(String),
    Target(String),
    Filter(String),
}

#[derive(Debug)]
pub struct LogView {
    pub follow: bool,
    /// Matching lines newer than the bottom line (0 = the newest at the bottom).
    pub offset: usize,
    pub filter: Filter,
    pub search: String,
    pub wrap: bool,
    /// Buffer index of the line found by the last jump.
    pub mark: Option<usize>,
}

#[derive(Debug)]
pub struct App {
    pub title: String,
    pub screen: Screen,
    pub help: bool,
    pub prompt: Prompt,
    pub now: f64,
    pub status: Sourced<cc_proto::status::Status>,
    pub enclaves: Sourced<Vec<cc_proto::nitro_cli::DescribedEnclave>>,
    pub policy: Sourced<crate::policy::Report>,
    pub egress: Sourced<Vec<EgressProbe>>,
    pub findings: Sourced<Report>,
    pub doctor_running: bool,
    pub pods: Sourced<Vec<PodRow>>,
    pub metrics: History,
    /// The `/metrics` source: its last error and the time of its last good scrape.
    pub metrics_src: Sourced<()>,
    pub metric_selected: usize,
    pub logs: LogBuffer,
    pub log_error: Option<String>,
    pub view: LogView,
    pub full_pcrs: bool,
    /// The selected problem on the Findings screen (in cause-first order).
    pub findings_scroll: usize,
    /// The code whose runbook section is open over the Findings screen.
    pub explain: Option<String>,
    /// `ccctl demo`'s folder when the dashboard watches a demo (`CCCTL_DEMO_DIR`): shown
    /// with the `. DIR/env.sh` line that points another terminal at it.
    pub demo: Option<String>,
    /// Rows of the last drawn body (page size for PgUp/PgDn).
    pub page: usize,
    /// Doctor re-runs this often (seconds; 0 = only on `r` and on source changes).
    pub doctor_every: f64,
    /// The every-refresh sources (status, metrics, the fleet) are stale when no attempt has
    /// finished for this long (seconds): each attempt has its deadline, so only a stuck or
    /// dead task stays silent longer.
    pub silent_after: f64,
    /// The same for the fleet table, whose refresh may take a listing, then the facts and
    /// the live reads with a release verdict, each up to `--timeout`.
    pub fleet_silent_after: f64,
    /// `App::now` when the running (or last) doctor run started.
    pub doctor_started: Option<f64>,
    /// A source changed between answering and failing since the last doctor run started.
    pub sources_changed: bool,
    /// Fleet mode (`tui -l`): every pod, worst first.
    pub fleet: Option<FleetState>,
}

#[derive(Debug, Default)]
pub struct FleetState {
    pub view: Sourced<FleetView>,
    /// Index into the filtered rows.
    pub selected: usize,
    pub filter: String,
    /// The pod the other screens watch.
    pub watching: Option<PodKey>,
}

impl App {
    pub fn new(title: impl Into<String>, log_capacity: usize) -> App {
        App {
            title: title.into(),
            screen: Screen::Overview,
            help: false,
            prompt: Prompt::None,
            now: 0.0,
            status: Sourced::default(),
            enclaves: Sourced::default(),
            policy: Sourced::default(),
            egress: Sourced::default(),
            findings: Sourced::default(),
            doctor_running: false,
            pods: Sourced::default(),
            metrics: History::default(),
            metrics_src: Sourced::default(),
            metric_selected: 0,
            logs: LogBuffer::new(log_capacity),
            log_error: None,
            view: LogView {
                follow: true,
                offset: 0,
                filter: Filter::default(),
                search: String::new(),
                wrap: false,
                mark: None,
            },
            full_pcrs: false,
            findings_scroll: 0,
            explain: None,
            demo: None,
            page: 20,
            doctor_every: 30.0,
            silent_after: 15.0,
            fleet_silent_after: 35.0,
            doctor_started: None,
            sources_changed: false,
            fleet: None,
        }
    }

    /// The screens, in tab order (the fleet first in fleet mode).
    pub fn screens(&self) -> Vec<Screen> {
        let mut v = Vec::new();
        if self.fleet.is_some() {
            v.push(Screen::Fleet);
        }
        v.extend(Screen::ALL);
        v
    }

    /// The fleet rows that pass the filter (case-insensitive substring of the row's words).
    pub fn fleet_rows(&self) -> Vec<&crate::doctor::live::Row> {
        let Some(fl) = &self.fleet else {
            return Vec::new();
        };
        let needle = fl.filter.to_lowercase();
        fl.view
            .value
            .iter()
            .flat_map(|v| v.rows.iter())
            .filter(|r| needle.is_empty() || r.haystack().to_lowercase().contains(&needle))
            .collect()
    }

    /// The fleet row under the cursor, as the pod to watch.
    pub fn selected_pod(&self) -> Option<PodKey> {
        let fl = self.fleet.as_ref()?;
        let rows = self.fleet_rows();
        let r = rows.get(fl.selected.min(rows.len().saturating_sub(1)))?;
        Some(PodKey {
            cluster: r.cluster_index,
            cluster_name: r.cluster.clone(),
            namespace: r.namespace.clone(),
            name: r.pod.clone(),
            api_port: r.api_port,
            metrics_port: r.metrics_port,
        })
    }

    /// The header's target: the fleet's selector, and on the per-pod screens the pod watched.
    pub fn target(&self) -> String {
        match self.fleet.as_ref().and_then(|f| f.watching.as_ref()) {
            Some(p) if self.screen != Screen::Fleet => {
                let multi = self
                    .fleet
                    .as_ref()
                    .and_then(|f| f.view.value.as_ref())
                    .is_some_and(|v| v.clusters > 1);
                if multi {
                    format!("pod {}:{}/{}", p.cluster_name, p.namespace, p.name)
                } else {
                    format!("pod {}/{}", p.namespace, p.name)
                }
            }
            _ => self.title.clone(),
        }
    }

    /// Watch another pod: what the per-pod screens showed was the other pod's, so it goes.
    pub fn watch(&mut self, pod: PodKey) {
        self.status = Sourced::default();
        self.policy = Sourced::default();
        self.findings = Sourced::default();
        self.metrics = History::default();
        self.metrics_src = Sourced::default();
        self.metric_selected = 0;
        self.logs = LogBuffer::new(self.logs.capacity());
        self.log_error = None;
        self.view.offset = 0;
        self.view.follow = true;
        self.view.mark = None;
        self.findings_scroll = 0;
        self.doctor_running = false;
        if let Some(f) = &mut self.fleet {
            f.watching = Some(pod);
        }
    }

    /// Mark the every-refresh sources that went silent as stale ([`App::silent_after`]);
    /// called every tick.
    pub fn age_out(&mut self) {
        let (now, max) = (self.now, self.silent_after);
        let mut changed = self.status.silent(now, max);
        changed |= self.metrics_src.silent(now, max);
        if let Some(f) = &mut self.fleet {
            changed |= f.view.silent(now, self.fleet_silent_after);
        }
        self.sources_changed |= changed;
    }

    /// Should a doctor run start now? (none running, and a source changed state or the last
    /// run is `doctor_every` old). Marks it running when it says yes.
    pub fn doctor_due(&mut self) -> bool {
        if self.doctor_running {
            return false;
        }
        let old = self.doctor_every > 0.0
            && self
                .doctor_started
                .is_none_or(|t| self.now - t >= self.doctor_every);
        if old || self.sources_changed {
            self.start_doctor();
            return true;
        }
        false
    }

    /// Record that a doctor run starts now.
    pub fn start_doctor(&mut self) {
        self.doctor_running = true;
        self.doctor_started = Some(self.now);
        self.sources_changed = false;
    }

    pub fn apply(&mut self, u: Update) {
        let now = self.now;
        let changed = match u {
            Update::About(pod, u) => {
                if self.fleet.as_ref().is_some_and(|f| f.watching != pod) {
                    return;
                }
                return self.apply(*u);
            }
            Update::Status(r) => self.status.set(r, now),
            Update::Enclaves(r) => self.enclaves.set(r, now),
            Update::Metrics(r) => {
                let r = r.map(|s| self.metrics.add(now, &s));
                self.metrics_src.set(r, now)
            }
            Update::LogLines(lines) => {
                let before = self.logs.total;
                for l in &lines {
                    self.logs.push_raw(l);
                }
                self.log_error = None;
                if !self.view.follow {
                    // Keep the same lines on screen while paused.
                    let added = (self.logs.total - before) as usize;
                    let f = &self.view.filter;
                    let start = self.logs.len().saturating_sub(added);
                    let passing = (start..self.logs.len())
                        .filter(|i| self.logs.get(*i).is_some_and(|l| f.passes(l)))
                        .count();
                    self.view.offset += passing;
                    let max = self.logs.newest(f, 0).count().saturating_sub(1);
                    self.view.offset = self.view.offset.min(max);
                }
                false
            }
            Update::LogError(e) => {
                self.log_error = Some(crate::output::clean(&e));
                false
            }
            Update::Findings(r) => {
                self.findings.set(Ok(r), now);
                self.doctor_running = false;
                false
            }
            Update::Policy(r) => self.policy.set(r, now),
            Update::Egress(r) => {
                // A forwarder or upstream going down (or coming back) is a change too.
                let before = self.egress.current().map(|v| egress_health(v));
                self.egress.set(Ok(r), now);
                before.is_some_and(|b| Some(b) != self.egress.current().map(|v| egress_health(v)))
            }
            Update::Pods(r) => self.pods.set(r, now),
            Update::Fleet(r) => {
                // The cursor stays on its pod when the rows are re-sorted (a refresh may move
                // it): enter must watch the pod the operator chose.
                let before = self.selected_pod();
                let changed = match &mut self.fleet {
                    Some(f) => f.view.set(r, now),
                    None => false,
                };
                if let Some(b) = before {
                    let at = self.fleet_rows().iter().position(|r| {
                        (r.cluster_index, r.namespace.as_str(), r.pod.as_str())
                            == (b.cluster, b.namespace.as_str(), b.name.as_str())
                    });
                    if let (Some(i), Some(f)) = (at, self.fleet.as_mut()) {
                        f.selected = i;
                    }
                }
                changed
            }
        };
        self.sources_changed |= changed;
    }

    /// Doctor's findings in the order the Findings screen lists them (causes first, each
    /// followed by what it explains).
    pub fn problems(&self) -> Vec<&cc_proto::findings::Finding> {
        self.findings
            .value
            .as_ref()
            .map(|r| {
                crate::doctor::cause::ordered(r)
                    .into_iter()
                    .flat_map(|g| std::iter::once(g.cause).chain(g.consequences))
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn selected_finding(&self) -> Option<&cc_proto::findings::Finding> {
        let p = self.problems();
        p.get(self.findings_scroll.min(p.len().saturating_sub(1)))
            .copied()
    }

    /// Series names in the order the metrics list shows them.
    pub fn metric_names(&self) -> Vec<&String> {
        self.metrics.series.keys().collect()
    }

    pub fn on_key(&mut self, key: KeyEvent) -> Option<Command> {
        if key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c') {
            return Some(Command::Quit);
        }
        match &mut self.prompt {
            Prompt::None => {}
            Prompt::Search(text) | Prompt::Target(text) | Prompt::Filter(text) => {
                match key.code {
                    KeyCode::Enter => {
                        let text = std::mem::take(text);
                        match std::mem::replace(&mut self.prompt, Prompt::None) {
                            Prompt::Search(_) => {
                                self.view.search = text;
                                self.jump_to_match();
                            }
                            Prompt::Target(_) => {
                                self.view.filter.target = (!text.is_empty()).then_some(text);
                                self.view.offset = 0;
                                self.view.follow = true;
                            }
                            Prompt::Filter(_) => {
                                if let Some(f) = &mut self.fleet {
                                    f.filter = text;
                                    f.selected = 0;
                                }
                            }
                            Prompt::None => {}
                        }
                    }
                    KeyCode::Esc => self.prompt = Prompt::None,
                    KeyCode::Backspace => {
                        text.pop();
                    }
                    KeyCode::Char(c) if !c.is_control() && text.len() < 200 => text.push(c),
                    _ => {}
                }
                return None;
            }
        }
        if self.help || self.explain.is_some() {
            // Any key closes the help or the explanation; q still quits.
            self.help = false;
            self.explain = None;
            return (key.code == KeyCode::Char('q')).then_some(Command::Quit);
        }
        let action = KEYMAP
            .iter()
            .find(|b| b.key == key.code && b.scope.is_none_or(|s| s == self.screen))?
            .action;
        self.act(action)
    }

    pub fn act(&mut self, action: Action) -> Option<Command> {
        match action {
            Action::Quit => return Some(Command::Quit),
            Action::Help => self.help = true,
            Action::Show(s) => {
                if self.screens().contains(&s) {
                    self.screen = s;
                }
            }
            Action::NextScreen | Action::PrevScreen => {
                let all = self.screens();
                let i = all.iter().position(|s| *s == self.screen).unwrap_or(0);
                let n = all.len();
                let step = if action == Action::NextScreen {
                    1
                } else {
                    n - 1
                };
                self.screen = all[(i + step) % n];
            }
            Action::Filter => self.prompt = Prompt::Filter(String::new()),
            Action::Drill => {
                if let Some(p) = self.selected_pod() {
                    self.watch(p);
                    self.screen = Screen::Overview;
                    return Some(Command::Watch);
                }
            }
            Action::Explain => {
                self.explain = self.selected_finding().map(|f| f.code.clone());
            }
            Action::Rerun => {
                if !self.doctor_running {
                    self.start_doctor();
                    return Some(Command::RerunDoctor);
                }
            }
            Action::FullPcrs => self.full_pcrs = !self.full_pcrs,
            Action::Up => self.scroll(1),
            Action::Down => self.scroll(-1),
            Action::PageUp => self.scroll(self.page as isize),
            Action::PageDown => self.scroll(-(self.page as isize)),
            Action::Top => self.scroll(isize::MAX / 2),
            Action::Bottom => {
                self.scroll(isize::MIN / 2);
                if self.screen == Screen::Logs {
                    self.view.follow = true;
                }
            }
            Action::Follow => {
                self.view.follow = !self.view.follow;
                if self.view.follow {
                    self.view.offset = 0;
                }
            }
            // A new prompt starts empty (typing does not append to the last search).
            Action::Search => self.prompt = Prompt::Search(String::new()),
            Action::NextMatch => self.jump_to_match(),
            Action::NextError => {
                if let Some(i) = self.logs.previous_error(&self.view.filter, self.view.mark) {
                    self.mark(i);
                }
            }
            Action::CycleLevel => {
                self.view.filter.min_level = match self.view.filter.min_level {
                    None => Some(Level::Info),
                    Some(Level::Info) => Some(Level::Warn),
                    Some(Level::Warn) => Some(Level::Error),
                    _ => None,
                };
                self.view.offset = 0;
                self.view.mark = None;
            }
            Action::TargetFilter => self.prompt = Prompt::Target(String::new()),
            Action::EnclaveOnly => {
                self.view.filter.enclave_only = !self.view.filter.enclave_only;
                self.view.offset = 0;
                self.view.mark = None;
            }
            Action::Wrap => self.view.wrap = !self.view.wrap,
        }
        None
    }

    fn jump_to_match(&mut self) {
        let found = self
            .logs
            .previous_match(&self.view.filter, &self.view.search, self.view.mark)
            // Wrap around to the newest.
            .or_else(|| {
                self.logs
                    .previous_match(&self.view.filter, &self.view.search, None)
            });
        if let Some(i) = found {
            self.mark(i);
        }
    }

    fn mark(&mut self, i: usize) {
        self.view.mark = Some(i);
        self.view.follow = false;
        self.view.offset = self.logs.offset_of(&self.view.filter, i);
    }

    /// Positive: towards older lines / up.
    fn scroll(&mut self, by: isize) {
        match self.screen {
            Screen::Logs => {
                let max = self
                    .logs
                    .newest(&self.view.filter, 0)
                    .count()
                    .saturating_sub(1);
                let off = (self.view.offset as isize)
                    .saturating_add(by)
                    .clamp(0, max as isize);
                self.view.offset = off as usize;
                if by > 0 {
                    self.view.follow = false;
                }
            }
            Screen::Metrics => {
                let n = self.metrics.series.len().saturating_sub(1) as isize;
                let sel = (self.metric_selected as isize)
                    .saturating_sub(by)
                    .clamp(0, n);
                self.metric_selected = sel as usize;
            }
            Screen::Findings => {
                let n = self.problems().len().saturating_sub(1) as isize;
                let off = (self.findings_scroll as isize)
                    .saturating_sub(by)
                    .clamp(0, n);
                self.findings_scroll = off as usize;
            }
            Screen::Fleet => {
                let n = self.fleet_rows().len().saturating_sub(1) as isize;
                if let Some(f) = &mut self.fleet {
                    f.selected = (f.selected as isize).saturating_sub(by).clamp(0, n) as usize;
                }
            }
            Screen::Overview => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(c: KeyCode) -> KeyEvent {
        KeyEvent::new(c, KeyModifiers::NONE)
    }

    fn app_with_logs(n: usize) -> App {
        let mut a = App::new("test", 1000);
        let lines = (0..n)
            .map(|i| {
                let level = if i % 10 == 3 { "ERROR" } else { " INFO" };
                format!("2026-11-25T00:00:00Z {level} containment_chamber_enclave::api: line {i}")
                    .into_bytes()
            })
            .collect();
        a.apply(Update::LogLines(lines));
        a
    }

    #[test]
    fn every_binding_is_reachable_and_unambiguous() {
        for (i, x) in KEYMAP.iter().enumerate() {
            for y in &KEYMAP[i + 1..] {
                let overlap = x.scope.is_none() || y.scope.is_none() || x.scope == y.scope;
                assert!(!(x.key == y.key && overlap), "{} bound twice", x.label);
            }
        }
    }

    #[test]
    fn screens_help_and_quit() {
        let mut a = App::new("t", 10);
        assert_eq!(a.on_key(key(KeyCode::Char('2'))), None);
        assert_eq!(a.screen, Screen::Logs);
        a.on_key(key(KeyCode::Tab));
        assert_eq!(a.screen, Screen::Metrics);
        a.on_key(key(KeyCode::Char('?')));
        assert!(a.help);
        // A key closes the help without acting.
        a.on_key(key(KeyCode::Char('1')));
        assert!(!a.help);
        assert_eq!(a.screen, Screen::Metrics);
        assert_eq!(a.on_key(key(KeyCode::Char('q'))), Some(Command::Quit));
        assert_eq!(
            a.on_key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL)),
            Some(Command::Quit)
        );
    }

    #[test]
    fn rerun_is_not_sent_twice_while_running() {
        let mut a = App::new("t", 10);
        assert_eq!(
            a.on_key(key(KeyCode::Char('r'))),
            Some(Command::RerunDoctor)
        );
        assert_eq!(a.on_key(key(KeyCode::Char('r'))), None);
        a.apply(Update::Findings(Report::default()));
        assert_eq!(
            a.on_key(key(KeyCode::Char('r'))),
            Some(Command::RerunDoctor)
        );
    }

    #[test]
    fn log_keys_scroll_pause_filter_search_and_jump() {
        let mut a = app_with_logs(50);
        a.screen = Screen::Logs;
        a.on_key(key(KeyCode::Up));
        assert!(!a.view.follow);
        assert_eq!(a.view.offset, 1);
        // New lines while paused keep the view on the same lines.
        a.apply(Update::LogLines(vec![
            b"2026-11-25T00:00:00Z  INFO x: new".to_vec(),
        ]));
        assert_eq!(a.view.offset, 2);
        a.on_key(key(KeyCode::Char('G')));
        assert!(a.view.follow);
        assert_eq!(a.view.offset, 0);
        a.on_key(key(KeyCode::Char('e')));
        assert_eq!(a.view.mark, Some(43));
        a.on_key(key(KeyCode::Char('e')));
        assert_eq!(a.view.mark, Some(33));
        a.on_key(key(KeyCode::Char('l')));
        a.on_key(key(KeyCode::Char('l')));
        a.on_key(key(KeyCode::Char('l')));
        assert_eq!(a.view.filter.min_level, Some(Level::Error));
        a.on_key(key(KeyCode::Char('/')));
        for c in "line 7".chars() {
            a.on_key(key(KeyCode::Char(c)));
        }
        assert_eq!(a.prompt, Prompt::Search("line 7".into()));
        // While typing, keys are text, not actions.
        a.on_key(key(KeyCode::Char('q')));
        a.on_key(key(KeyCode::Backspace));
        a.on_key(key(KeyCode::Enter));
        assert_eq!(a.view.search, "line 7");
        a.view.filter.min_level = None;
        a.view.mark = None;
        a.on_key(key(KeyCode::Char('n')));
        assert_eq!(a.view.mark, Some(7));
        a.on_key(key(KeyCode::Char('t')));
        for c in "nothing".chars() {
            a.on_key(key(KeyCode::Char(c)));
        }
        a.on_key(key(KeyCode::Esc));
        assert_eq!(a.view.filter.target, None);
        a.on_key(key(KeyCode::Char('o')));
        assert!(a.view.filter.enclave_only);
        a.on_key(key(KeyCode::Char('w')));
        assert!(a.view.wrap);
    }
}
