//! Drawing: a pure function of [`App`]. Nothing here waits or fetches.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span, Text};
use ratatui::widgets::{Block, Cell, Clear, Paragraph, Row, Sparkline, Table, Tabs, Wrap};

use super::app::{App, Freshness, KEYMAP, Prompt, Screen, Sourced};
use super::logbuf::Level;
use super::metrics::History;
use cc_proto::findings::Severity;
use cc_proto::status::{HolderOutcome, SealState};

const RED: Style = Style::new().fg(Color::Red);
const GREEN: Style = Style::new().fg(Color::Green);
const YELLOW: Style = Style::new().fg(Color::Yellow);
const DIM: Style = Style::new().fg(Color::DarkGray);
const BOLD: Style = Style::new().add_modifier(Modifier::BOLD);

pub fn render(app: &App, f: &mut Frame) {
    let [top, body, foot] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(1),
        Constraint::Length(1),
    ])
    .areas(f.area());
    header(app, f, top);
    match app.screen {
        Screen::Fleet => fleet(app, f, body),
        Screen::Overview => overview(app, f, body),
        Screen::Logs => logs(app, f, body),
        Screen::Metrics => metrics(app, f, body),
        Screen::Findings => findings(app, f, body),
    }
    footer(app, f, foot);
    if app.help {
        help(app, f, body);
    }
    if let Some(code) = &app.explain {
        explain(code, f, body);
    }
}

/// `ccctl explain CODE` over the screen: the same embedded runbook section.
fn explain(code: &str, f: &mut Frame, body: Rect) {
    let text = match crate::explain::section(code) {
        Some(s) => format!("{}\n\n{}", s.runbook, s.text),
        None => format!("no runbook section for {code}"),
    };
    let w = body.width.min(100);
    let h = body.height;
    let area = Rect {
        x: body.x + (body.width - w) / 2,
        y: body.y,
        width: w,
        height: h,
    };
    f.render_widget(Clear, area);
    f.render_widget(
        Paragraph::new(crate::output::clean(&text))
            .wrap(Wrap { trim: false })
            .block(Block::bordered().title(format!(" ccctl explain {code} (any key closes) "))),
        area,
    );
}

fn header(app: &App, f: &mut Frame, area: Rect) {
    let [tabs, title] =
        Layout::horizontal([Constraint::Length(all_width(app)), Constraint::Min(1)]).areas(area);
    let all = app.screens();
    let i = all.iter().position(|s| *s == app.screen).unwrap_or(0);
    let titles = all.iter().map(|s| format!("{} {}", s.key(), s.title()));
    f.render_widget(
        Tabs::new(titles)
            .select(i)
            .highlight_style(BOLD.reversed())
            .divider("│"),
        tabs,
    );
    // What is watched matters more than the program's name: on a narrow terminal the name
    // goes first, then the start of the target (never its port).
    let room = title.width as usize;
    let target = app.target();
    let target = target.as_str();
    let n = target.chars().count();
    let line = if n + 10 <= room {
        Line::from(vec![Span::styled("ccctl tui ", BOLD), Span::raw(target)])
    } else if n <= room {
        Line::from(target)
    } else {
        let tail: String = target.chars().skip(n + 1 - room.max(1)).collect();
        Line::from(format!("…{tail}"))
    };
    f.render_widget(Paragraph::new(line).right_aligned(), title);
}

/// The tabs' width.
fn all_width(app: &App) -> u16 {
    app.screens()
        .iter()
        .map(|s| s.title().len() as u16 + 5)
        .sum::<u16>()
        + 1
}

/// The fleet screen: one row per pod, worst first; the selected row is the one Enter watches.
fn fleet(app: &App, f: &mut Frame, area: Rect) {
    use crate::doctor::cause::Level;
    let Some(fl) = &app.fleet else {
        return;
    };
    let multi = fl.view.value.as_ref().is_some_and(|v| v.clusters > 1);
    let rows = app.fleet_rows();
    let total = fl.view.value.as_ref().map_or(0, |v| v.rows.len());
    let selected = fl.selected.min(rows.len().saturating_sub(1));
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let table_rows: Vec<Row> = rows
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let level = r.level();
            let lstyle = match level {
                Level::Healthy => GREEN,
                Level::Degraded => YELLOW,
                Level::Down => RED,
            };
            let signer_style = match r.live.signer.as_str() {
                "unsealed" => GREEN,
                "unknown" => DIM,
                _ => RED,
            };
            let num = |v: Option<f64>| v.map(|x| format!("{x:.1}")).unwrap_or("?".into());
            let pcr = match (&r.live.pcr0, &r.live.release) {
                (Some(p), Some(rel)) => format!("{} {rel}", short_prefix(p, 12)),
                (Some(p), None) => format!("{} ?", short_prefix(p, 12)),
                (None, _) if r.live.source == "prometheus" => "not exported".into(),
                (None, _) => "?".into(),
            };
            let rel_style = match r.live.release.as_deref() {
                Some("released") => Style::new(),
                Some("not-released") => RED,
                _ => DIM,
            };
            let shares = match (r.live.shares, r.live.threshold) {
                (Some(s), Some(t)) => format!("{s} (≥{t})"),
                (Some(s), None) => format!("{s} (≥?)"),
                _ => "?".into(),
            };
            let age = if r.live.at_ms == 0 {
                "-".into()
            } else {
                crate::output::duration_short(now_ms.saturating_sub(r.live.at_ms) / 1000)
            };
            let mut cells = Vec::new();
            // Every text cell comes from the cluster, the pod or Prometheus: untrusted.
            let clean = crate::output::clean;
            if multi {
                cells.push(Cell::from(clean(&r.cluster)));
            }
            cells.extend([
                Cell::from(clean(&r.pod)),
                Cell::from(clean(r.node.as_deref().unwrap_or_default())),
                Cell::from(clean(r.phase.as_deref().unwrap_or_default())),
                Cell::from(clean(&r.live.signer.to_uppercase()))
                    .style(live(&fl.view, signer_style)),
                Cell::from(clean(&pcr)).style(live(&fl.view, rel_style)),
                Cell::from(shares),
                Cell::from(num(r.live.drop_rate)).style(
                    if r.live.drop_rate.is_some_and(|d| d > 0.0) {
                        RED
                    } else {
                        Style::new()
                    },
                ),
                Cell::from(num(r.live.signing_rate)),
                Cell::from(level.as_str()).style(live(&fl.view, lstyle)),
                Cell::from(crate::output::clean(&r.top())),
                Cell::from(age),
            ]);
            let row = Row::new(cells);
            if i == selected {
                row.style(BOLD.reversed())
            } else {
                row
            }
        })
        .collect();
    // The name columns as wide as their longest value (within bounds), so TOP PROBLEM keeps
    // the rest of the width.
    let fit = |header: &str, values: &mut dyn Iterator<Item = usize>, max: usize| {
        Constraint::Length(values.fold(header.len(), usize::max).min(max) as u16)
    };
    let mut widths = Vec::new();
    let mut header = Vec::new();
    if multi {
        widths.push(fit(
            "CLUSTER",
            &mut rows.iter().map(|r| r.cluster.chars().count()),
            20,
        ));
        header.push("CLUSTER");
    }
    widths.extend([
        fit("POD", &mut rows.iter().map(|r| r.pod.chars().count()), 40),
        fit(
            "NODE",
            &mut rows
                .iter()
                .map(|r| r.node.as_deref().map_or(0, |n| n.chars().count())),
            30,
        ),
        fit(
            "PHASE",
            &mut rows
                .iter()
                .map(|r| r.phase.as_deref().map_or(0, |n| n.chars().count())),
            9,
        ),
        Constraint::Length(11),
        Constraint::Length(25),
        Constraint::Length(7),
        Constraint::Length(7),
        Constraint::Length(7),
        Constraint::Length(9),
        Constraint::Min(12),
        Constraint::Length(5),
    ]);
    header.extend([
        "POD",
        "NODE",
        "PHASE",
        "SIGNER",
        "PCR0 RELEASE",
        "SHARES",
        "DROP/s",
        "SIGN/s",
        "VERDICT",
        "TOP PROBLEM",
        "AGE",
    ]);
    let filter = if fl.filter.is_empty() {
        String::new()
    } else {
        format!(" filter '{}': {} of {total}", fl.filter, rows.len())
    };
    let via = fl
        .view
        .value
        .as_ref()
        .and_then(|v| v.rows.first())
        .map(|r| format!(" via {}", r.live.source))
        .unwrap_or_default();
    let mut block = Block::bordered().title(Line::from(vec![
        Span::raw(format!(
            " Fleet: {}{via}{filter} (",
            crate::output::plural(total, "pod", "pods")
        )),
        state_span(app, &fl.view),
        Span::raw(") "),
    ]));
    let mut errors: Vec<String> = fl.view.error.iter().cloned().collect();
    errors.extend(fl.view.value.iter().flat_map(|v| v.errors.iter().cloned()));
    if !errors.is_empty() {
        block = block.title_bottom(Line::from(Span::styled(
            format!(" {} ", crate::output::clean(&errors.join("; "))),
            RED,
        )));
    } else if let Some(w) = &fl.watching {
        block = block.title_bottom(Line::from(Span::styled(
            format!(" other screens watch {}/{} ", w.namespace, w.name),
            DIM,
        )));
    }
    let empty = rows.is_empty();
    let table = Table::new(table_rows, widths)
        .header(Row::new(header).style(BOLD))
        .block(block);
    f.render_widget(table, area);
    if empty && fl.view.value.is_some() {
        let inner = Rect {
            x: area.x + 2,
            y: area.y + 2,
            width: area.width.saturating_sub(4),
            height: 1,
        };
        let text = if total == 0 {
            "no pod matches the selector"
        } else {
            "no row matches the filter (/ then enter with nothing clears it)"
        };
        f.render_widget(Paragraph::new(Span::styled(text, DIM)), inner);
    }
}

fn footer(app: &App, f: &mut Frame, area: Rect) {
    // Watching a demo: where it is and how another terminal reaches it, on the right.
    let area = match (&app.demo, &app.prompt) {
        (Some(dir), Prompt::None) => {
            let hint = format!(" . {dir}/env.sh ");
            let w = hint.chars().count() as u16;
            if area.width >= w + 60 {
                let [keys, right] =
                    Layout::horizontal([Constraint::Min(1), Constraint::Length(w)]).areas(area);
                f.render_widget(
                    Paragraph::new(Span::styled(hint, DIM)).right_aligned(),
                    right,
                );
                keys
            } else {
                area
            }
        }
        _ => area,
    };
    let line = match &app.prompt {
        Prompt::Search(t) => Line::from(vec![
            Span::styled("search: ", BOLD),
            Span::raw(t.as_str()),
            Span::raw("▏  enter: find  esc: cancel"),
        ]),
        Prompt::Filter(t) => Line::from(vec![
            Span::styled("filter pods: ", BOLD),
            Span::raw(t.as_str()),
            Span::raw("▏  enter: apply (empty clears)  esc: cancel"),
        ]),
        Prompt::Target(t) => Line::from(vec![
            Span::styled("target contains: ", BOLD),
            Span::raw(t.as_str()),
            Span::raw("▏  enter: apply (empty clears)  esc: cancel"),
        ]),
        Prompt::None => {
            let mut spans = Vec::new();
            for b in KEYMAP
                .iter()
                .filter(|b| b.hint && b.scope.is_none_or(|s| s == app.screen))
            {
                spans.push(Span::styled(format!(" {} ", b.label), BOLD.reversed()));
                spans.push(Span::raw(format!(
                    " {}  ",
                    b.help.split(" (").next().unwrap_or(b.help)
                )));
            }
            Line::from(spans)
        }
    };
    f.render_widget(Paragraph::new(line), area);
}

fn help(_app: &App, f: &mut Frame, body: Rect) {
    let w = body.width.min(70);
    let h = body.height.min(KEYMAP.len() as u16 + 4);
    let area = Rect {
        x: body.x + (body.width - w) / 2,
        y: body.y + (body.height - h) / 2,
        width: w,
        height: h,
    };
    let mut lines = Vec::new();
    if let Some(dir) = &_app.demo {
        lines.push(Line::from(Span::styled(format!("demo folder {dir}"), BOLD)));
        lines.push(Line::from(format!("another terminal: . {dir}/env.sh")));
    }
    for (i, b) in KEYMAP.iter().enumerate() {
        // One line per action (↑ and k do the same).
        if KEYMAP[..i].iter().any(|o| o.action == b.action) {
            continue;
        }
        let scope = b.scope.map(|s| s.title()).unwrap_or("all");
        lines.push(Line::from(vec![
            Span::styled(format!("{:>6}  ", b.label), BOLD),
            Span::raw(format!("{:<9}", scope)),
            Span::raw(b.help),
        ]));
    }
    f.render_widget(Clear, area);
    f.render_widget(
        Paragraph::new(lines).block(Block::bordered().title(" keys (any key closes) ")),
        area,
    );
}

/// `v` as `first8…last8` (by characters: the text may come from the enclave, untrusted).
fn short(v: &str, full: bool) -> String {
    let n = v.chars().count();
    if full || n <= 16 {
        v.to_owned()
    } else {
        let last: String = v.chars().skip(n - 8).collect();
        format!("{}…{last}", short_prefix(v, 8))
    }
}

/// The first `n` characters of `v`.
fn short_prefix(v: &str, n: usize) -> String {
    v.chars().take(n).collect()
}

/// Whole seconds since `t`, floored (so a panel's age does not flicker between 0 and 1 s).
fn secs(app: &App, t: f64) -> String {
    crate::output::duration_short((app.now - t).max(0.0) as u64)
}

fn age(app: &App, at: Option<f64>) -> String {
    match at {
        Some(t) => format!("{} ago", secs(app, t)),
        None => "waiting for the first answer".into(),
    }
}

/// A panel title's state: the age of its last good data, or UNREACHABLE (red) with it.
fn state_span<T>(app: &App, src: &Sourced<T>) -> Span<'static> {
    match src.freshness() {
        Freshness::Waiting => Span::styled("waiting for the first answer", DIM),
        Freshness::Fresh => Span::raw(age(app, src.at)),
        Freshness::Stale => Span::styled(
            format!("UNREACHABLE — last good {}", age(app, src.at)),
            RED.add_modifier(Modifier::BOLD),
        ),
        Freshness::Failed => Span::styled(
            "UNREACHABLE — never answered",
            RED.add_modifier(Modifier::BOLD),
        ),
    }
}

fn titled<T>(app: &App, name: &str, src: &Sourced<T>) -> Line<'static> {
    Line::from(vec![
        Span::raw(format!(" {name} (")),
        state_span(app, src),
        Span::raw(") "),
    ])
}

/// The style of a value: its own while the source answers, dimmed when it is the last good one.
fn live<T>(src: &Sourced<T>, style: Style) -> Style {
    if src.freshness() == Freshness::Fresh {
        style
    } else {
        DIM
    }
}

fn error_line(e: &Option<String>) -> Option<Line<'static>> {
    e.as_ref()
        .map(|e| Line::from(Span::styled(format!("! {e}"), RED)))
}

/// The dashboard's verdict: doctor's last report judged with the signer state as `/status`
/// says it now (the same `doctor::cause::verdict` as doctor and `demo --once`).
pub fn verdict(app: &App) -> crate::doctor::cause::Verdict {
    let signer = match app.status.freshness() {
        Freshness::Fresh => app
            .status
            .value
            .as_ref()
            .map(|s| s.state.as_str().to_owned()),
        Freshness::Stale | Freshness::Failed => Some("unreachable".to_owned()),
        Freshness::Waiting => None,
    };
    let empty = crate::doctor::Report::default();
    let report = app.findings.value.as_ref().unwrap_or(&empty);
    crate::doctor::cause::verdict(report, signer.as_deref())
}

fn verdict_bar(app: &App, f: &mut Frame, area: Rect) {
    use crate::doctor::cause::Level;
    let v = verdict(app);
    let style = match v.level {
        Level::Healthy => GREEN,
        Level::Degraded => YELLOW,
        Level::Down => RED,
    };
    let rest = match (&v.cause, v.consequences) {
        (Some(c), 0) => format!(" {c}: {}", v.summary),
        (Some(c), n) => format!(
            " {c}: {} (+{})",
            v.summary,
            crate::output::plural(n, "consequence", "consequences")
        ),
        (None, _) => format!(" {}", v.summary),
    };
    let mut spans = vec![
        Span::styled(
            format!(" {} ", v.level.as_str()),
            style.add_modifier(Modifier::BOLD).reversed(),
        ),
        Span::styled(crate::output::clean(&rest), style),
    ];
    if app.findings.value.is_none() {
        spans.push(Span::styled("  (doctor running)", DIM));
    }
    f.render_widget(Paragraph::new(Line::from(spans)), area);
}

fn overview(app: &App, f: &mut Frame, area: Rect) {
    let [bar, area] = Layout::vertical([Constraint::Length(1), Constraint::Min(1)]).areas(area);
    verdict_bar(app, f, bar);
    let has_pods = app.pods.value.is_some() || app.pods.error.is_some();
    let (pods_area, rest) = if has_pods {
        let n = app.pods.value.as_ref().map_or(1, Vec::len) as u16;
        let [a, b] = Layout::vertical([
            Constraint::Length((n + 3).min(area.height / 3)),
            Constraint::Min(1),
        ])
        .areas(area);
        (Some(a), b)
    } else {
        (None, area)
    };
    if let Some(a) = pods_area {
        pods(app, f, a);
    }
    let [left, right] =
        Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(rest);
    // Key holders as tall as its rows; the Doctor box gets what is left on the right.
    let holders_n = app
        .status
        .value
        .as_ref()
        .map_or(1, |s| s.holders.len().max(1)) as u16;
    let [enc, holders, find] = Layout::vertical([
        Constraint::Length(10),
        Constraint::Length(holders_n + 3),
        Constraint::Min(5),
    ])
    .areas(left);
    let [pcr, egress] = Layout::vertical([Constraint::Length(9), Constraint::Min(4)]).areas(right);
    enclave_block(app, f, enc);
    holders_block(app, f, holders);
    pcr_block(app, f, pcr);
    egress_block(app, f, egress);
    findings_summary(app, f, find);
}

fn pods(app: &App, f: &mut Frame, area: Rect) {
    // The row's counts are its API-side checks; doctor's current report on the watched pod
    // (`--pod`: this row) adds its in-pod probes, so the row shows the larger counts and is
    // never greener than the Findings screen.
    let doctor = app.findings.current().map(|r| &r.summary);
    let rows: Vec<Row> = app
        .pods
        .value
        .iter()
        .flatten()
        .map(|p| {
            let mut p = p.clone();
            if let Some(d) = doctor {
                p.errors = p.errors.max(d.errors);
                p.warnings = p.warnings.max(d.warnings);
                p.unknown = p.unknown.max(d.unknown + d.crashed + d.timed_out);
            }
            let style = if p.errors > 0 {
                RED
            } else if p.warnings > 0 || p.unknown > 0 {
                // Something could not be looked at: not green.
                YELLOW
            } else {
                GREEN
            };
            let clean = crate::output::clean;
            Row::new(vec![
                Cell::from(clean(&p.name)),
                Cell::from(clean(&p.node)),
                Cell::from(clean(&p.phase)),
                // Green only while the pod list answers; a stale row is dimmed.
                Cell::from(format!("{}", p.errors)).style(live(&app.pods, style)),
                Cell::from(format!("{}", p.warnings)),
                Cell::from(clean(&p.first_problem)),
            ])
        })
        .collect();
    let mut block = Block::bordered().title(titled(app, "Pods", &app.pods));
    if let Some(e) = &app.pods.error {
        block = block.title_bottom(Line::from(Span::styled(format!(" {e} "), RED)));
    }
    f.render_widget(
        Table::new(
            rows,
            [
                Constraint::Length(24),
                Constraint::Length(14),
                Constraint::Length(9),
                Constraint::Length(6),
                Constraint::Length(6),
                Constraint::Min(10),
            ],
        )
        .header(Row::new(["POD", "NODE", "PHASE", "ERR", "WARN", "TOP CAUSE"]).style(BOLD))
        .block(block),
        area,
    );
}

fn enclave_block(app: &App, f: &mut Frame, area: Rect) {
    let mut lines = Vec::new();
    let en = &app.enclaves;
    match &en.value {
        Some(list) if list.is_empty() => lines.push(Line::from(Span::styled(
            "nitro-cli: no enclave running",
            live(en, RED),
        ))),
        Some(list) => {
            for e in list {
                let debug = e.flags.contains("DEBUG");
                lines.push(Line::from(vec![
                    Span::raw("nitro-cli: "),
                    Span::styled(
                        e.state.clone(),
                        live(en, if e.state == "RUNNING" { GREEN } else { RED }),
                    ),
                    Span::styled(
                        format!(
                            "  CID {}  {} CPUs  {} MiB  ",
                            e.enclave.enclave_cid,
                            e.enclave.number_of_cpus.unwrap_or(0),
                            e.enclave.memory_mib.unwrap_or(0)
                        ),
                        live(en, Style::new()),
                    ),
                    Span::styled(
                        if debug { "DEBUG MODE" } else { "not debug" },
                        if debug {
                            live(en, RED.add_modifier(Modifier::BOLD))
                        } else {
                            DIM
                        },
                    ),
                ]));
                lines.push(Line::from(Span::styled(
                    format!("  {}", e.enclave.enclave_id),
                    DIM,
                )));
            }
        }
        None => {}
    }
    match en.freshness() {
        Freshness::Waiting => lines.push(Line::from(Span::styled(
            "nitro-cli: waiting for the first answer",
            DIM,
        ))),
        Freshness::Stale => lines.push(Line::from(Span::styled(
            format!("nitro-cli: UNREACHABLE (above: {})", age(app, en.at)),
            RED,
        ))),
        _ => {}
    }
    lines.extend(error_line(&en.error));
    let st = &app.status;
    if st.freshness() == Freshness::Stale || st.freshness() == Freshness::Failed {
        lines.push(Line::from(vec![
            Span::raw("/status: "),
            Span::styled("UNREACHABLE", RED.add_modifier(Modifier::BOLD)),
            Span::styled(
                match &st.value {
                    Some(s) => format!(
                        "  last seen {} {}",
                        s.state.as_str().to_uppercase(),
                        age(app, st.at)
                    ),
                    None => "  never answered".into(),
                },
                DIM,
            ),
        ]));
    }
    let dropped = app
        .metrics
        .last("containment_enclave_log_events_dropped_total")
        .filter(|_| app.metrics_src.freshness() == Freshness::Fresh);
    let climbing = app
        .metrics
        .rates("containment_enclave_log_events_dropped_total")
        .last()
        .is_some_and(|r| *r > 0.0);
    match &st.value {
        Some(s) => {
            let style = match s.state {
                SealState::Unsealed => GREEN,
                SealState::Failed => RED,
                _ => YELLOW,
            };
            let fresh = st.freshness() == Freshness::Fresh;
            let mut first = vec![Span::raw(if fresh { "/status: " } else { "  was: " })];
            first.push(Span::styled(
                s.state.as_str().to_uppercase(),
                live(st, style.add_modifier(Modifier::BOLD)),
            ));
            first.push(Span::styled(
                format!(
                    "  {} of {} shares (threshold {})  platform {}  up {}",
                    s.decrypted(),
                    s.holders.len(),
                    s.threshold,
                    serde_json::to_value(s.platform)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_default(),
                    crate::output::duration_short(s.uptime_seconds)
                ),
                live(st, Style::new()),
            ));
            lines.push(Line::from(first));
            if let Some(r) = &s.reason {
                lines.push(Line::from(Span::styled(
                    format!("  {}", crate::output::clean(r)),
                    live(st, style),
                )));
            }
            lines.push(Line::from(vec![
                Span::styled(
                    format!("  validator keys {}  ", s.validator_keys),
                    live(st, Style::new()),
                ),
                Span::styled(
                    format!(
                        "log events dropped {}{}",
                        dropped.map_or("? (metrics not answering)".into(), |v| format!("{v}")),
                        if climbing && dropped.is_some() {
                            " CLIMBING"
                        } else {
                            ""
                        }
                    ),
                    match dropped {
                        None => DIM,
                        Some(_) if climbing => RED.add_modifier(Modifier::BOLD),
                        Some(v) if v > 0.0 => YELLOW,
                        Some(_) => Style::new(),
                    },
                ),
            ]));
        }
        None if st.freshness() == Freshness::Waiting => lines.push(Line::from(Span::styled(
            "/status: waiting for the first answer",
            DIM,
        ))),
        None => {}
    }
    lines.extend(error_line(&st.error));
    f.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: true })
            .block(Block::bordered().title(titled(app, "Enclave", st))),
        area,
    );
}

fn outcome_style(o: HolderOutcome) -> Style {
    match o {
        HolderOutcome::Decrypted => GREEN,
        HolderOutcome::Pending => DIM,
        HolderOutcome::Denied | HolderOutcome::Error => RED,
        HolderOutcome::Unreachable => YELLOW,
    }
}

fn holders_block(app: &App, f: &mut Frame, area: Rect) {
    let rows: Vec<Row> = app
        .status
        .value
        .iter()
        .flat_map(|s| s.holders.iter())
        .map(|h| {
            Row::new(vec![
                Cell::from(h.name.clone()),
                Cell::from(h.outcome.as_str()).style(live(&app.status, outcome_style(h.outcome))),
                Cell::from(h.error_code.clone().unwrap_or_default()),
                Cell::from(format!("{}", h.attempts)),
            ])
            .style(live(&app.status, Style::new()))
        })
        .collect();
    f.render_widget(
        Table::new(
            rows,
            [
                Constraint::Length(12),
                Constraint::Length(12),
                Constraint::Min(10),
                Constraint::Length(8),
            ],
        )
        .header(Row::new(["HOLDER", "SHARE", "KMS CODE", "ATTEMPTS"]).style(BOLD))
        .block(Block::bordered().title(titled(app, "Key holders", &app.status))),
        area,
    );
}

fn pcr_block(app: &App, f: &mut Frame, area: Rect) {
    let mut lines = Vec::new();
    let att = app
        .status
        .value
        .as_ref()
        .and_then(|s| s.attestation.as_ref());
    let zero = cc_proto::pcr::Pcr::ZERO.hex();
    for pcr in ["PCR0", "PCR8"] {
        let v = att
            .and_then(|a| a.pcrs.get(pcr).cloned())
            .unwrap_or_else(|| {
                if att.is_some() {
                    zero.clone()
                } else {
                    "?".into()
                }
            });
        let mut spans = vec![
            Span::styled(format!("{pcr} "), BOLD),
            Span::raw(short(&crate::output::clean(&v), app.full_pcrs)),
            Span::raw("  "),
        ];
        if let Some(r) = &app.policy.value {
            for h in &r.holders {
                // The evaluator's verdict for the measured value (policy::check), never our own.
                let allowed = h.measured_admitted.get(pcr).copied().flatten();
                let (mark, style) = match allowed {
                    Some(true) => ("✓", GREEN),
                    Some(false) => ("✗", RED),
                    None => ("·", DIM),
                };
                spans.push(Span::styled(
                    format!("{} {mark} ", h.name),
                    live(&app.policy, live(&app.status, style)),
                ));
            }
        }
        lines.push(Line::from(spans));
    }
    match &app.policy.value {
        Some(r) => {
            let ok = r.release_possible;
            // Holders whose release rests on an IAM side nobody looked at: not green.
            let assumed: Vec<&str> = r
                .holders
                .iter()
                .filter(|h| h.iam_assumed)
                .map(|h| h.name.as_str())
                .collect();
            let (what, style) = match (ok, assumed.is_empty()) {
                (false, _) => ("CANNOT UNSEAL".to_owned(), RED.add_modifier(Modifier::BOLD)),
                (true, true) => ("can unseal".to_owned(), GREEN),
                (true, false) => (
                    format!(
                        "can unseal only if IAM allows (not checked: {})",
                        assumed.join(", ")
                    ),
                    YELLOW,
                ),
            };
            lines.push(Line::from(vec![
                Span::raw("verdict: "),
                Span::styled(
                    format!(
                        "{} of {} release; threshold {} — {what}",
                        r.holders_releasing,
                        crate::output::plural(r.holders.len(), "holder", "holders"),
                        r.threshold,
                    ),
                    live(&app.policy, live(&app.status, style)),
                ),
            ]));
            for h in &r.holders {
                if let Some(e) = &h.error {
                    lines.push(Line::from(Span::styled(
                        format!("{}: {}", h.name, crate::output::clean(e)),
                        RED,
                    )));
                } else if h.decrypt_allowed != Some(true) {
                    // The verdict's own words: a holder whose PCRs are admitted can still not
                    // release (IAM side, a Deny, a condition), so the ✓ above is not enough.
                    let why = match (h.verdict.as_deref(), h.reasons.first()) {
                        (Some("depends_on"), _) => {
                            format!(": depends on {}", h.depends_on.join(", "))
                        }
                        (_, Some(r)) => format!(": {r}"),
                        _ => String::new(),
                    };
                    lines.push(Line::from(Span::styled(
                        crate::output::clean(&format!("{} does NOT release{why}", h.name)),
                        RED,
                    )));
                }
            }
        }
        None => lines.push(Line::from(Span::styled(
            "policies: waiting (needs --config ccctl.toml and an attestation)",
            DIM,
        ))),
    }
    lines.extend(error_line(&app.policy.error));
    f.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: true })
            .block(Block::bordered().title(titled(
                app,
                "Measurements vs key policies",
                &app.policy,
            ))),
        area,
    );
}

fn egress_block(app: &App, f: &mut Frame, area: Rect) {
    let src = &app.egress;
    let rows: Vec<Row> = src
        .value
        .iter()
        .flatten()
        .map(|e| {
            // The forwarder is what the enclave goes through: when it is down the endpoint is
            // down as a whole, whatever the upstream answers when probed directly.
            let (up, up_style) = match &e.upstream {
                Ok(ms) if e.forwarder_up => (format!("ok {ms:.1} ms"), GREEN),
                Ok(ms) => (format!("upstream ok {ms:.1} ms (probed directly)"), RED),
                Err(why) => (why.clone(), RED),
            };
            let row_style = if e.forwarder_up { Style::new() } else { RED };
            Row::new(vec![
                Cell::from(e.name.clone()),
                Cell::from(e.target.clone()),
                Cell::from(if e.forwarder_up { "up" } else { "DOWN" }).style(live(
                    src,
                    if e.forwarder_up {
                        GREEN
                    } else {
                        RED.add_modifier(Modifier::BOLD)
                    },
                )),
                Cell::from(up).style(live(src, up_style)),
            ])
            .style(live(src, row_style))
        })
        .collect();
    let title = if src.value.as_ref().is_some_and(Vec::is_empty) || src.tried.is_none() {
        Line::from(" Egress (needs --proxy-config) ")
    } else {
        titled(app, "Egress", src)
    };
    f.render_widget(
        Table::new(
            rows,
            [
                Constraint::Length(10),
                Constraint::Length(22),
                Constraint::Length(9),
                Constraint::Min(8),
            ],
        )
        .header(Row::new(["NAME", "UPSTREAM", "FORWARDER", "PROBE"]).style(BOLD))
        .block(Block::bordered().title(title)),
        area,
    );
}

fn sev_style(s: Severity) -> (&'static str, Style) {
    match s {
        Severity::Error => ("✗", RED),
        Severity::Warn => ("!", YELLOW),
        Severity::Info => ("i", DIM),
    }
}

fn findings_summary(app: &App, f: &mut Frame, area: Rect) {
    let mut lines = Vec::new();
    match &app.findings.value {
        Some(r) => {
            lines.push(Line::from(vec![
                Span::styled(
                    crate::output::plural(r.summary.errors, "error", "errors"),
                    if r.summary.errors > 0 { RED } else { GREEN },
                ),
                Span::raw(format!(
                    "  {}  {} info  ({}{}{})",
                    crate::output::plural(r.summary.warnings, "warning", "warnings"),
                    r.summary.infos,
                    crate::output::plural(r.summary.checks, "check", "checks"),
                    if r.summary.skipped > 0 {
                        format!(", {} skipped", r.summary.skipped)
                    } else {
                        String::new()
                    },
                    if r.summary.unknown > 0 {
                        format!(", {} unknown", r.summary.unknown)
                    } else {
                        String::new()
                    },
                )),
            ]));
            // Causes first (by severity), each with how many findings it explains.
            let groups = crate::doctor::cause::ordered(r);
            let room = (area.height as usize).saturating_sub(3).max(1);
            let shown = if groups.len() > room {
                room - 1
            } else {
                groups.len()
            };
            for g in groups.iter().take(shown) {
                let (m, st) = sev_style(g.cause.severity);
                let mut spans = vec![Span::styled(format!("{m} {}", g.cause.code), st)];
                if !g.consequences.is_empty() {
                    spans.push(Span::styled(
                        format!(" (+{} caused by it)", g.consequences.len()),
                        DIM,
                    ));
                }
                lines.push(Line::from(spans));
            }
            if groups.len() > shown {
                lines.push(Line::from(Span::styled(
                    format!("+{} more — 4: Findings", groups.len() - shown),
                    DIM,
                )));
            }
        }
        None => lines.push(Line::from(Span::styled("doctor: running", DIM))),
    }
    let running = if app.doctor_running { ", running" } else { "" };
    let every = if app.doctor_every > 0.0 {
        format!(
            ", every {}",
            crate::output::duration_short(app.doctor_every as u64)
        )
    } else {
        String::new()
    };
    f.render_widget(
        Paragraph::new(lines).block(Block::bordered().title(format!(
            " Doctor ({}{running}{every}) ",
            age(app, app.findings.at)
        ))),
        area,
    );
}

/// Highlight `needle` in `text` on top of `base`.
fn highlighted(text: &str, needle: &str, base: Style) -> Line<'static> {
    if needle.is_empty() || !text.contains(needle) {
        return Line::from(Span::styled(text.to_owned(), base));
    }
    let mut spans = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find(needle) {
        spans.push(Span::styled(rest[..i].to_owned(), base));
        spans.push(Span::styled(
            needle.to_owned(),
            Style::new().fg(Color::Black).bg(Color::Yellow),
        ));
        rest = &rest[i + needle.len()..];
    }
    spans.push(Span::styled(rest.to_owned(), base));
    Line::from(spans)
}

fn logs(app: &App, f: &mut Frame, area: Rect) {
    let v = &app.view;
    let inner_h = area.height.saturating_sub(2) as usize;
    let width = area.width.saturating_sub(2).max(1) as usize;
    // Newest first, until the panel is full; near the oldest lines the view stops at the
    // oldest page (a jump to an old match shows a full panel, not a few lines and blank rows).
    let matching = app.logs.newest(&v.filter, 0).count();
    let offset = v.offset.min(matching.saturating_sub(inner_h));
    let mut rows = 0usize;
    let mut picked = Vec::new();
    for i in app.logs.newest(&v.filter, offset) {
        let Some(l) = app.logs.get(i) else { break };
        let h = if v.wrap {
            l.text.chars().count().div_ceil(width).max(1)
        } else {
            1
        };
        if rows + h > inner_h && !picked.is_empty() {
            break;
        }
        rows += h;
        picked.push(i);
        if rows >= inner_h {
            break;
        }
    }
    picked.reverse();
    let lines: Vec<Line> = picked
        .iter()
        .filter_map(|i| app.logs.get(*i).map(|l| (i, l)))
        .map(|(i, l)| {
            let mut base = match l.level {
                Some(Level::Error) => RED,
                Some(Level::Warn) => YELLOW,
                Some(Level::Debug) | Some(Level::Trace) => DIM,
                _ => Style::new(),
            };
            if v.mark == Some(*i) {
                base = base.add_modifier(Modifier::REVERSED);
            }
            highlighted(&l.text, &v.search, base)
        })
        .collect();
    let mut state = vec![
        if v.follow {
            "following".to_owned()
        } else {
            format!("paused (+{} newer)", v.offset)
        },
        format!(
            "{} lines (of {} received, ring {})",
            app.logs.len(),
            app.logs.total,
            app.logs.capacity()
        ),
    ];
    if let Some(l) = v.filter.min_level {
        state.push(format!("level ≥ {}", l.as_str()));
    }
    if let Some(t) = &v.filter.target {
        state.push(format!("target ~ {t}"));
    }
    if v.filter.enclave_only {
        state.push("enclave only".into());
    }
    if !v.search.is_empty() {
        state.push(format!("/{}", v.search));
    }
    if v.wrap {
        state.push("wrap".into());
    }
    let mut block = Block::bordered().title(format!(" Logs — {} ", state.join(" · ")));
    if let Some(e) = &app.log_error {
        block = block.title_bottom(Line::from(Span::styled(format!(" {e} "), RED)));
    }
    let mut p = Paragraph::new(Text::from(lines)).block(block);
    if v.wrap {
        p = p.wrap(Wrap { trim: false });
    }
    f.render_widget(p, area);
}

fn spark(values: &[f64]) -> Vec<u64> {
    let max = values
        .iter()
        .copied()
        .filter(|v| v.is_finite())
        .fold(0.0, f64::max);
    values
        .iter()
        .map(|v| {
            if max > 0.0 && v.is_finite() {
                ((v / max) * 100.0).round() as u64
            } else {
                0
            }
        })
        .collect()
}

fn metrics(app: &App, f: &mut Frame, area: Rect) {
    let [top, bottom] = Layout::vertical([Constraint::Length(9), Constraint::Min(3)]).areas(area);
    let [drops, signing, kms] = Layout::horizontal([
        Constraint::Percentage(40),
        Constraint::Percentage(30),
        Constraint::Percentage(30),
    ])
    .areas(top);
    let h = &app.metrics;
    let drop_rates = h.rates("containment_enclave_log_events_dropped_total");
    let rate = drop_rates.last().copied().unwrap_or(0.0);
    let alarm = rate > 0.0;
    let total = h.last("containment_enclave_log_events_dropped_total");
    let stale = match app.metrics_src.freshness() {
        Freshness::Stale => format!("  UNREACHABLE, last good {}", age(app, app.metrics_src.at)),
        Freshness::Failed => "  UNREACHABLE".into(),
        _ => String::new(),
    };
    let title = format!(
        " Log events dropped: {}  rate {rate:.1}/s{}{stale} ",
        total.map_or("?".into(), |t| format!("{t}")),
        if alarm { "  CLIMBING" } else { "" }
    );
    f.render_widget(
        Sparkline::default()
            .data(spark(&drop_rates))
            .style(if alarm { RED } else { GREEN })
            .block(Block::bordered().title(title).border_style(if alarm {
                RED
            } else {
                Style::new()
            })),
        drops,
    );
    let sign_rates: Vec<f64> = {
        let names: Vec<&String> = h
            .series
            .keys()
            .filter(|k| k.starts_with("containment_signing_requests_total"))
            .collect();
        let per: Vec<Vec<f64>> = names.iter().map(|n| h.rates(n)).collect();
        let len = per.iter().map(Vec::len).max().unwrap_or(0);
        (0..len)
            .map(|i| per.iter().filter_map(|r| r.get(i)).sum())
            .collect()
    };
    let latency = h.mean_latency("containment_signing_duration_seconds");
    f.render_widget(
        Sparkline::default()
            .data(spark(&sign_rates))
            .block(Block::bordered().title(format!(
                " Signing {:.1}/s  mean {} ",
                sign_rates.last().copied().unwrap_or(0.0),
                latency.map_or("–".into(), |l| format!("{:.2} ms", l * 1000.0))
            ))),
        signing,
    );
    let mut lines = Vec::new();
    for outcome in ["decrypted", "denied", "unreachable", "error"] {
        // + 0.0: an empty sum is -0.0.
        let n = h.sum(
            "containment_kms_decrypt_total",
            &format!("outcome=\"{outcome}\""),
        ) + 0.0;
        let st = match outcome {
            "decrypted" => GREEN,
            _ if n > 0.0 => RED,
            _ => DIM,
        };
        lines.push(Line::from(Span::styled(format!("{outcome:<12} {n}"), st)));
    }
    let state = h
        .series
        .iter()
        .filter(|(k, v)| k.starts_with("containment_signer_state") && v.back() == Some(&1.0))
        .filter_map(|(k, _)| k.split("state=\"").nth(1).and_then(|s| s.split('"').next()))
        .next()
        .unwrap_or("?");
    lines.push(Line::from(format!("signer state {state}")));
    f.render_widget(
        Paragraph::new(lines).block(Block::bordered().title(titled(
            app,
            "KMS decrypt outcomes",
            &app.metrics_src,
        ))),
        kms,
    );
    // Every series: pick one to chart.
    let [list, chart] =
        Layout::horizontal([Constraint::Percentage(45), Constraint::Percentage(55)]).areas(bottom);
    let names = app.metric_names();
    let visible = list.height.saturating_sub(2) as usize;
    let start = app
        .metric_selected
        .saturating_sub(visible.saturating_sub(1));
    let items: Vec<Line> = names
        .iter()
        .enumerate()
        .skip(start)
        .take(visible)
        .map(|(i, n)| {
            let v = h.last(n).map_or("?".into(), |v| format!("{v}"));
            let text = format!("{n} {v}");
            if i == app.metric_selected {
                Line::from(Span::styled(text, BOLD.reversed()))
            } else {
                Line::from(text)
            }
        })
        .collect();
    let mut block = Block::bordered().title(format!(" Series ({}) ↑/↓ to chart ", names.len()));
    if let Some(e) = &app.metrics_src.error {
        block = block.title_bottom(Line::from(Span::styled(format!(" {e} "), RED)));
    }
    f.render_widget(Paragraph::new(items).block(block), list);
    if let Some(name) = names.get(app.metric_selected) {
        let counter = History::is_counter(name);
        let data: Vec<f64> = if counter {
            h.rates(name)
        } else {
            h.series[*name].iter().copied().collect()
        };
        let last = data.last().copied().unwrap_or(f64::NAN);
        f.render_widget(
            Sparkline::default()
                .data(spark(&data))
                .style(Style::new().fg(Color::Cyan))
                .block(Block::bordered().title(format!(
                    " {name} {} {last:.3} ",
                    if counter { "rate/s" } else { "value" }
                ))),
            chart,
        );
    } else {
        f.render_widget(Block::bordered().title(" no metrics yet "), chart);
    }
}

fn finding_lines(
    fnd: &cc_proto::findings::Finding,
    indent: &str,
    selected: bool,
    lines: &mut Vec<Line<'static>>,
) {
    let (m, st) = sev_style(fnd.severity);
    let st = if selected { st.reversed() } else { st };
    lines.push(Line::from(vec![
        Span::styled(
            format!("{indent}{m} {} ", fnd.code),
            st.add_modifier(Modifier::BOLD),
        ),
        Span::raw(crate::output::clean(&fnd.summary)),
    ]));
    if !fnd.remediation.text.is_empty() {
        lines.push(Line::from(format!(
            "{indent}    fix: {}",
            crate::output::clean(&fnd.remediation.text)
        )));
    }
    for cmd in &fnd.remediation.commands {
        lines.push(Line::from(Span::styled(
            format!("{indent}    $ {}", crate::output::clean(cmd)),
            Style::new().fg(Color::Cyan),
        )));
    }
    lines.push(Line::from(Span::styled(
        format!(
            "{indent}    runbook: {}  ({}{})",
            fnd.runbook,
            fnd.explain,
            if selected { " — enter" } else { "" }
        ),
        DIM,
    )));
}

fn findings(app: &App, f: &mut Frame, area: Rect) {
    use crate::doctor::CheckStatus;
    let mut lines = Vec::new();
    let mut sel_line = 0usize;
    match &app.findings.value {
        Some(r) => {
            lines.push(Line::from(format!(
                "{}: {}, {}, {} info",
                crate::output::plural(r.summary.checks, "check", "checks"),
                crate::output::plural(r.summary.errors, "error", "errors"),
                crate::output::plural(r.summary.warnings, "warning", "warnings"),
                r.summary.infos
            )));
            // Problems, causes first, each with the findings it explains under it; the
            // selected one (↑/↓) opens its runbook section on enter.
            let selected = app.selected_finding();
            let is = |f: &cc_proto::findings::Finding| selected.is_some_and(|s| std::ptr::eq(s, f));
            for g in crate::doctor::cause::ordered(r) {
                if is(g.cause) {
                    sel_line = lines.len();
                }
                finding_lines(g.cause, "", is(g.cause), &mut lines);
                if !g.consequences.is_empty() {
                    lines.push(Line::from(Span::styled(
                        format!("    because of {}:", g.cause.code),
                        DIM,
                    )));
                    for c in &g.consequences {
                        if is(c) {
                            sel_line = lines.len();
                        }
                        finding_lines(c, "    ", is(c), &mut lines);
                    }
                }
            }
            // Then every check with its status: ✓ only for what was looked at and passed.
            for (family, c) in crate::doctor::render::families(r)
                .into_iter()
                .flat_map(|fam| {
                    r.checks
                        .iter()
                        .filter(move |c| c.family == fam)
                        .enumerate()
                        .map(move |(i, c)| ((i == 0).then_some(fam), c))
                })
            {
                if let Some(family) = family {
                    lines.push(Line::from(Span::styled(family.to_owned(), BOLD)));
                }
                let (mark, st) = match c.status {
                    CheckStatus::Passed => ("✓", GREEN),
                    CheckStatus::Findings => ("•", YELLOW),
                    CheckStatus::Skipped => ("–", DIM),
                    CheckStatus::Unknown => ("?", YELLOW),
                    CheckStatus::Crashed | CheckStatus::TimedOut => ("✗", RED),
                };
                let mut spans = vec![
                    Span::styled(format!("  {mark} "), st),
                    Span::raw(c.id.clone()),
                ];
                // What it saw, or why it could not look (as doctor prints it).
                let (text, note) = crate::doctor::render::check_text(c);
                spans.push(Span::styled(format!("  {text}"), DIM));
                if let Some(n) = note {
                    spans.push(Span::styled(format!("  note: {n}"), DIM));
                }
                lines.push(Line::from(spans));
            }
        }
        None => lines.push(Line::from(Span::styled("doctor is running…", DIM))),
    }
    let running = if app.doctor_running {
        " — re-running"
    } else {
        ""
    };
    f.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            // The selected problem stays in view (a third from the top).
            .scroll((
                sel_line
                    .saturating_sub(area.height as usize / 3)
                    .min(u16::MAX as usize) as u16,
                0,
            ))
            .block(Block::bordered().title(format!(
                " Doctor findings ({}){running} — r: re-run ",
                age(app, app.findings.at)
            ))),
        area,
    );
}
