//! The dashboard drawn into a fixed-size `TestBackend`: every screen in a normal and a failure
//! state (insta snapshots), the help overlay, and the small-terminal floor (80×24).

use std::collections::BTreeMap;

use cc_proto::findings::{Finding, Severity};
use ccctl::doctor::{CheckResult, CheckStatus, Report};
use ccctl::tui::app::{App, EgressProbe, Screen, Update};
use ccctl::tui::metrics::Scrape;
use ccctl::tui::ui;
use ratatui::Terminal;
use ratatui::backend::TestBackend;

const PCR0: &str = "e359965f7bc9b9d7431ffda75dc7f2b8873c2f903cd56814d91000070ec12a406b1720e0b78024076625f25b4d0507dc";
const PCR8: &str =
    "edfc8e3c00000000000000000000000000000000000000000000000000000000000000000000000000255ddfa0";

fn draw(app: &App, w: u16, h: u16) -> String {
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    t.draw(|f| ui::render(app, f)).unwrap();
    format!("{}", t.backend())
}

fn status(state: &str, outcomes: [&str; 3], reason: Option<&str>) -> cc_proto::status::Status {
    let holders: Vec<serde_json::Value> = ["holder-a", "holder-b", "holder-c"]
        .iter()
        .zip(outcomes)
        .map(|(n, o)| {
            let mut h = serde_json::json!({"name": n, "key_arn": format!("arn:aws:kms:us-east-1:1:key/{n}"),
                "region": "us-east-1", "outcome": o, "attempts": 1});
            if o == "denied" {
                h["error_code"] = "AccessDeniedException".into();
            }
            h
        })
        .collect();
    serde_json::from_value(serde_json::json!({
        "state": state, "reason": reason, "platform": "software",
        "attestation": {"module_id": "i-demo", "timestamp_ms": 1, "debug_mode": false,
                        "pcrs": {"PCR0": PCR0, "PCR8": PCR8}},
        "threshold": 2, "holders": holders,
        "log_forwarding": {"target": "unix:///tmp/log.sock", "connected": true, "dropped_total": 0, "delivered_total": 9},
        "validator_keys": 2, "uptime_seconds": 42, "version": "0.1.0"
    }))
    .unwrap()
}

fn enclaves(flags: &str) -> Vec<cc_proto::nitro_cli::DescribedEnclave> {
    serde_json::from_value(serde_json::json!([{
        "EnclaveName": "containment-chamber", "EnclaveID": "i-0demo-enc01", "ProcessID": 7,
        "EnclaveCID": 16, "NumberOfCPUs": 2, "CPUIDs": [1, 3], "MemoryMiB": 512,
        "State": "RUNNING", "Flags": flags
    }]))
    .unwrap()
}

fn policy(allowed_by: [bool; 3], threshold: u32) -> ccctl::policy::Report {
    let holders = ["holder-a", "holder-b", "holder-c"]
        .iter()
        .zip(allowed_by)
        .map(|(n, ok)| ccctl::policy::HolderReport {
            name: n.to_string(),
            source: format!("kms:{n}"),
            decrypt_allowed: Some(ok),
            verdict: Some(if ok { "allowed" } else { "denied" }.into()),
            reasons: Vec::new(),
            depends_on: Vec::new(),
            iam_assumed: false,
            allowed: BTreeMap::from([
                (
                    "PCR0".to_owned(),
                    vec![if ok { PCR0.to_owned() } else { "ab".repeat(48) }],
                ),
                ("PCR8".to_owned(), vec![PCR8.to_owned()]),
            ]),
            measured_admitted: BTreeMap::from([
                ("PCR0".to_owned(), Some(ok)),
                ("PCR8".to_owned(), Some(true)),
            ]),
            key_state: Some("Enabled".into()),
            error: None,
            findings: Vec::new(),
        })
        .collect();
    let releasing = allowed_by.iter().filter(|b| **b).count();
    ccctl::policy::Report {
        measurements: BTreeMap::new(),
        principal: "arn:aws:iam::9:role/signer".into(),
        threshold,
        holders,
        holders_releasing: releasing,
        release_possible: releasing >= threshold as usize,
        findings: Vec::new(),
    }
}

fn report(findings: Vec<Finding>) -> Report {
    let mut r = Report {
        checks: vec![
            CheckResult {
                id: "enclave.status".into(),
                family: "enclave".into(),
                description: String::new(),
                status: if findings.is_empty() {
                    CheckStatus::Passed
                } else {
                    CheckStatus::Findings
                },
                duration_ms: 1,
                findings,
                note: None,
                observed: None,
            },
            CheckResult {
                id: "logs.forwarding".into(),
                family: "logs".into(),
                description: String::new(),
                status: CheckStatus::Passed,
                duration_ms: 1,
                findings: Vec::new(),
                note: None,
                observed: None,
            },
        ],
        ..Report::default()
    };
    r.resummarise();
    r
}

fn metrics(app: &mut App, dropped: [f64; 3]) {
    for (i, d) in dropped.into_iter().enumerate() {
        app.now = i as f64;
        let s: Scrape = BTreeMap::from([
            ("containment_enclave_log_events_dropped_total".to_owned(), d),
            (
                "containment_signing_requests_total{status=\"200\"}".to_owned(),
                10.0 * i as f64,
            ),
            (
                "containment_signing_duration_seconds_sum".to_owned(),
                0.001 * i as f64,
            ),
            (
                "containment_signing_duration_seconds_count".to_owned(),
                10.0 * i as f64,
            ),
            (
                "containment_kms_decrypt_total{holder=\"holder-a\",outcome=\"decrypted\"}"
                    .to_owned(),
                1.0,
            ),
            (
                "containment_signer_state{state=\"unsealed\"}".to_owned(),
                1.0,
            ),
            ("containment_healthy".to_owned(), 1.0),
        ]);
        app.apply(Update::Metrics(Ok(s)));
    }
}

fn logs(app: &mut App) {
    let lines = [
        "2026-11-25T22:31:15.062938Z  INFO containment_chamber_enclave::chamber: signer state state=\"unsealing\"",
        "2026-11-25T22:31:15.371828Z  WARN containment_chamber_enclave::unseal: share not released holder=holder-c outcome=\"denied\" code=\"AccessDeniedException\"",
        "2026-11-25T22:31:15.399605Z  INFO containment_chamber_enclave::chamber: signer state state=\"unsealed\"",
        "2026-11-25T22:31:16.000000Z  INFO containment_chamber_enclave_proxy: vsock-stdout connection closed",
        "2026-11-25T22:31:17.000000Z ERROR containment_chamber_enclave::log_forward: log listener unreachable \u{1b}[31mretrying\u{1b}[0m",
    ];
    app.apply(Update::LogLines(
        lines.iter().map(|l| l.as_bytes().to_vec()).collect(),
    ));
}

fn healthy() -> App {
    let mut app = App::new("local tcp://127.0.0.1:9000", 1000);
    metrics(&mut app, [0.0, 0.0, 0.0]);
    app.apply(Update::Status(Ok(status(
        "unsealed",
        ["decrypted"; 3],
        None,
    ))));
    app.apply(Update::Enclaves(Ok(enclaves("NONE"))));
    app.apply(Update::Policy(Ok(policy([true; 3], 2))));
    app.apply(Update::Egress(vec![EgressProbe {
        name: "kms".into(),
        target: "tcp://127.0.0.1:4566".into(),
        forwarder_up: true,
        upstream: Ok(1.5),
    }]));
    app.apply(Update::Findings(report(Vec::new())));
    logs(&mut app);
    app.now = 3.0;
    app
}

fn failing() -> App {
    let mut app = App::new("local tcp://127.0.0.1:9000", 1000);
    metrics(&mut app, [0.0, 12.0, 40.0]);
    app.apply(Update::Status(Ok(status(
        "unsealing",
        ["decrypted", "denied", "denied"],
        Some("1 of 2 shares; waiting for holder-b (denied), holder-c (denied)"),
    ))));
    app.apply(Update::Enclaves(Ok(enclaves("DEBUG_MODE"))));
    app.apply(Update::Policy(Ok(policy([true, false, false], 2))));
    app.apply(Update::Egress(vec![EgressProbe {
        name: "kms".into(),
        target: "tcp://kms.us-east-1.amazonaws.com:443".into(),
        forwarder_up: false,
        upstream: Err("TCP connect: connection refused".into()),
    }]));
    app.apply(Update::Findings(report(vec![
        Finding::new(
            "policy.threshold-unmet",
            Severity::Error,
            "1 of 3 holders would release their share; the threshold is 2",
        )
        .fix(
            "Ask the holders to add the running PCR0",
            &["ccctl policy check --config ccctl.toml"],
        ),
        Finding::new(
            "logs.events-dropped",
            Severity::Error,
            "the enclave is dropping log events: 28.0/s",
        ),
    ])));
    logs(&mut app);
    app.apply(Update::LogError(
        "log stream of 'signer-0': connection reset".into(),
    ));
    app.now = 3.0;
    app
}

#[test]
fn overview() {
    insta::assert_snapshot!("overview_healthy", draw(&healthy(), 110, 32));
    insta::assert_snapshot!("overview_failing", draw(&failing(), 110, 32));
}

#[test]
fn logs_screen() {
    let mut app = healthy();
    app.screen = Screen::Logs;
    insta::assert_snapshot!("logs_following", draw(&app, 110, 12));
    let mut app = failing();
    app.screen = Screen::Logs;
    app.act(ccctl::tui::app::Action::CycleLevel);
    app.act(ccctl::tui::app::Action::CycleLevel);
    app.view.search = "holder".into();
    insta::assert_snapshot!("logs_filtered_source_error", draw(&app, 110, 12));
}

#[test]
fn metrics_screen() {
    let mut app = healthy();
    app.screen = Screen::Metrics;
    insta::assert_snapshot!("metrics_healthy", draw(&app, 110, 24));
    let mut app = failing();
    app.screen = Screen::Metrics;
    app.apply(Update::Metrics(Err(
        "metrics line 3: 'x' is not a number".into()
    )));
    insta::assert_snapshot!("metrics_drops_climbing", draw(&app, 110, 24));
}

#[test]
fn findings_screen_and_help() {
    let mut app = healthy();
    app.screen = Screen::Findings;
    insta::assert_snapshot!("findings_clean", draw(&app, 100, 12));
    let mut app = failing();
    app.screen = Screen::Findings;
    insta::assert_snapshot!("findings_failing", draw(&app, 100, 16));
    app.help = true;
    insta::assert_snapshot!("help", draw(&app, 100, 30));
}

#[test]
fn every_screen_renders_at_80x24_and_smaller_without_panicking() {
    for mut app in [healthy(), failing(), App::new("empty", 10)] {
        for s in Screen::ALL {
            app.screen = s;
            for (w, h) in [(80, 24), (40, 10), (1, 1)] {
                let out = draw(&app, w, h);
                assert!(!out.is_empty());
            }
        }
        app.help = true;
        draw(&app, 80, 24);
    }
    // At 80×24 the essentials of the overview stay visible.
    let out = draw(&healthy(), 80, 24);
    for want in ["UNSEALED", "holder-a", "PCR0", "can unseal", "kms"] {
        assert!(out.contains(want), "{want} missing at 80x24:\n{out}");
    }
}

#[test]
fn escape_sequences_from_the_log_never_reach_the_screen() {
    let mut app = healthy();
    app.screen = Screen::Logs;
    app.apply(Update::LogLines(vec![
        b"\x1b]0;owned\x07\x1b[2Jboom\rvisible \xff".to_vec(),
    ]));
    let out = draw(&app, 110, 12);
    assert!(!out.contains('\u{1b}'), "{out}");
    assert!(out.contains("visible \u{fffd}"), "{out}");
    assert!(!out.contains("owned"), "{out}");
}

/// A release that rests on an IAM side nobody looked at is not shown green as "can unseal".
#[test]
fn an_assumed_iam_side_is_not_green() {
    let mut app = healthy();
    let mut r = policy([true; 3], 2);
    r.holders[0].iam_assumed = true;
    app.apply(Update::Policy(Ok(r)));
    let screen = draw(&app, 160, 45);
    // (The panel wraps the line.)
    assert!(
        screen.contains("can unseal only if IAM allows")
            && screen.contains("(not checked: holder-a)"),
        "{screen}"
    );
}

/// Every cell drawn in green whose row contains `text`.
fn green_rows_with(app: &App, w: u16, h: u16, text: &str) -> Vec<String> {
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    t.draw(|f| ui::render(app, f)).unwrap();
    let buf = t.backend().buffer();
    let mut out = Vec::new();
    for y in 0..h {
        let row: String = (0..w).map(|x| buf[(x, y)].symbol().to_owned()).collect();
        let Some(at) = row.find(text) else { continue };
        // The column of the match (cells are one symbol each).
        let col = row[..at].chars().count() as u16;
        if buf[(col, y)].fg == ratatui::style::Color::Green {
            out.push(row);
        }
    }
    out
}

/// The enclave server dies with the dashboard open (issue 13 #1): its last values stay, dimmed,
/// UNREACHABLE in red with the age of the last good answer; no green UNSEALED, the verdict is
/// DOWN, and the change asks for a doctor run.
#[test]
fn a_source_failing_after_success_is_stale_not_green() {
    let mut app = healthy();
    assert_eq!(green_rows_with(&app, 110, 32, "UNSEALED").len(), 1);
    app.doctor_running = false;
    app.doctor_started = Some(0.0);
    assert!(!app.doctor_due(), "nothing changed, not yet 30 s");
    app.now = 5.0;
    app.apply(Update::Status(Err(
        "connect to 127.0.0.1:9000: refused".into()
    )));
    app.apply(Update::Metrics(Err(
        "connect to 127.0.0.1:3000: refused".into()
    )));
    app.now = 18.4;
    let out = draw(&app, 110, 32);
    insta::assert_snapshot!("overview_stale", out);
    assert!(out.contains("UNREACHABLE — last good 16s ago"), "{out}");
    assert!(out.contains("last seen UNSEALED 16s ago"), "{out}");
    assert!(out.contains(" DOWN "), "{out}");
    assert!(out.contains("log events dropped ? (metrics not"), "{out}");
    assert!(
        green_rows_with(&app, 110, 32, "UNSEALED").is_empty(),
        "{out}"
    );
    assert_eq!(ui::verdict(&app).level, ccctl::doctor::cause::Level::Down);
    // The change (answering → failing) starts a doctor run without waiting for the timer.
    assert!(app.doctor_due());
    assert!(!app.doctor_due(), "one run at a time");
    // Back: fresh again, green again.
    app.apply(Update::Findings(report(Vec::new())));
    app.apply(Update::Status(Ok(status(
        "unsealed",
        ["decrypted"; 3],
        None,
    ))));
    assert_eq!(green_rows_with(&app, 110, 32, "UNSEALED").len(), 1);
    assert!(app.doctor_due(), "coming back is a change too");
}

/// The doctor re-runs on its timer.
#[test]
fn doctor_re_runs_every_interval() {
    let mut app = healthy();
    app.doctor_running = false;
    app.doctor_started = Some(3.0);
    app.now = 32.9;
    assert!(!app.doctor_due());
    app.now = 33.0;
    assert!(app.doctor_due());
    app.apply(Update::Findings(report(Vec::new())));
    app.doctor_every = 0.0;
    app.now = 1000.0;
    assert!(!app.doctor_due(), "0: only on r and on changes");
}

/// A forwarder that is down makes its row red as a whole, whatever the upstream answers when
/// probed directly (issue 13 #10: `DOWN … ok`).
#[test]
fn an_egress_row_with_its_forwarder_down_is_not_ok() {
    let mut app = healthy();
    app.apply(Update::Egress(vec![EgressProbe {
        name: "kms".into(),
        target: "tcp://127.0.0.1:4566".into(),
        forwarder_up: false,
        upstream: Ok(1.5),
    }]));
    let out = draw(&app, 200, 40);
    assert!(
        out.contains("upstream ok 1.5 ms (probed directly)"),
        "{out}"
    );
    assert!(!out.contains(" ok 1.5 ms│"), "{out}");
    assert!(green_rows_with(&app, 200, 40, "probed directly").is_empty());
}

/// The Doctor box lists causes first and says how many more there are.
#[test]
fn the_doctor_box_puts_the_cause_first_and_counts_the_rest() {
    let mut app = healthy();
    let mut findings = vec![
        Finding::new("enclave.sealed", Severity::Error, "sealed"),
        Finding::new("kms.unreachable", Severity::Error, "unreachable"),
        Finding::new("logs.panic", Severity::Warn, "panic"),
        Finding::new("egress.proxy-down", Severity::Error, "down"),
    ];
    for i in 0..8 {
        findings.push(Finding::new(
            &format!("policy.lint-{i}"),
            Severity::Info,
            "i",
        ));
    }
    app.apply(Update::Findings(report(findings)));
    let out = draw(&app, 110, 26);
    let doctor: Vec<&str> = out
        .lines()
        .skip_while(|l| !l.contains("Doctor ("))
        .collect();
    let first = doctor.iter().position(|l| l.contains("egress.proxy-down"));
    let panic = doctor.iter().position(|l| l.contains("logs.panic"));
    assert!(first.is_some() && first < panic, "{out}");
    assert!(out.contains("(+2 caused by it)"), "{out}");
    assert!(out.contains("more — 4: Findings"), "{out}");
    // The signer answers UNSEALED: degraded, not down.
    assert!(out.contains("DEGRADED  egress.proxy-down: down"), "{out}");
}

/// A search prompt starts empty, and a jump to an old match shows a full panel.
#[test]
fn prompts_start_empty_and_old_matches_fill_the_panel() {
    use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
    let key = |c| KeyEvent::new(c, KeyModifiers::NONE);
    let mut app = App::new("t", 1000);
    app.apply(Update::LogLines(
        (0..100)
            .map(|i| format!("2026-11-25T00:00:00Z  INFO x: line {i}").into_bytes())
            .collect(),
    ));
    app.screen = Screen::Logs;
    for k in [
        KeyCode::Char('/'),
        KeyCode::Char('l'),
        KeyCode::Char('i'),
        KeyCode::Enter,
    ] {
        app.on_key(key(k));
    }
    app.on_key(key(KeyCode::Char('/')));
    assert_eq!(app.prompt, ccctl::tui::app::Prompt::Search(String::new()));
    for k in [
        KeyCode::Char('e'),
        KeyCode::Char(' '),
        KeyCode::Char('2'),
        KeyCode::Char(':'),
    ] {
        app.on_key(key(k));
    }
    app.on_key(key(KeyCode::Esc));
    app.view.search = "line 2".into();
    app.view.mark = Some(3); // the next older match is "line 2", the third-oldest line
    app.on_key(key(KeyCode::Char('n')));
    assert_eq!(app.view.mark, Some(2));
    let out = draw(&app, 80, 24);
    let blank = out
        .lines()
        .filter(|l| l.trim_matches(['│', ' ', '"']).is_empty())
        .count();
    assert!(blank <= 1, "{out}");
    assert!(out.contains("line 2"), "{out}");
}

/// At 80×24 the header keeps the whole target (its port included).
#[test]
fn the_header_keeps_the_target_at_80_columns() {
    let out = draw(&healthy(), 80, 24);
    assert!(
        out.lines().next().unwrap().contains("tcp://127.0.0.1:9000"),
        "{out}"
    );
}

/// The Findings screen: ↓ selects the next problem, enter opens its runbook section (the same
/// text as `ccctl explain CODE`), any key closes it; Shift-Tab goes back a screen.
#[test]
fn enter_on_a_finding_opens_its_runbook_section() {
    use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
    let key = |c| KeyEvent::new(c, KeyModifiers::NONE);
    let mut app = failing();
    app.screen = Screen::Findings;
    app.on_key(key(KeyCode::Down));
    assert_eq!(
        app.selected_finding().map(|f| f.code.as_str()),
        Some("logs.events-dropped")
    );
    app.on_key(key(KeyCode::Enter));
    assert_eq!(app.explain.as_deref(), Some("logs.events-dropped"));
    let out = draw(&app, 100, 30);
    insta::assert_snapshot!("findings_explain", out);
    let section = ccctl::explain::section("logs.events-dropped").unwrap();
    let first_words: String = section
        .text
        .split_whitespace()
        .take(4)
        .collect::<Vec<_>>()
        .join(" ");
    assert!(out.contains("ccctl explain logs.events-dropped"), "{out}");
    assert!(out.contains(&first_words), "{first_words} not in\n{out}");
    app.on_key(key(KeyCode::Char('x')));
    assert_eq!(app.explain, None);
    app.on_key(key(KeyCode::BackTab));
    assert_eq!(app.screen, Screen::Metrics);
}

/// Watching a demo, the dashboard keeps its folder and the `. env.sh` line in view (footer)
/// and in the help.
#[test]
fn a_demo_dashboard_shows_where_the_demo_is() {
    let mut app = healthy();
    app.demo = Some("/tmp/ccctl-demo-abc".into());
    let out = draw(&app, 140, 32);
    assert!(
        out.lines()
            .last()
            .unwrap()
            .contains(". /tmp/ccctl-demo-abc/env.sh"),
        "{out}"
    );
    app.help = true;
    let out = draw(&app, 140, 40);
    assert!(
        out.contains("another terminal: . /tmp/ccctl-demo-abc/env.sh"),
        "{out}"
    );
}

/// The pod table is not green once the pod list stops answering: its rows are dimmed and the
/// title says UNREACHABLE with the age of the last good list.
#[test]
fn a_stale_pod_table_is_not_green() {
    let mut app = healthy();
    let pod = |unknown: usize| {
        Update::Pods(Ok(vec![ccctl::tui::app::PodRow {
            name: "signer-0".into(),
            node: "node-a".into(),
            phase: "Running".into(),
            errors: 0,
            warnings: 0,
            unknown,
            first_problem: String::new(),
        }]))
    };
    app.apply(pod(0));
    let fresh = draw(&app, 140, 40);
    assert!(fresh.contains("Pods (0s ago)"), "{fresh}");
    // The colour of the pod's ERR cell (the first word after its phase).
    let err_colour = |app: &App| {
        let mut t = Terminal::new(TestBackend::new(140, 40)).unwrap();
        t.draw(|f| ui::render(app, f)).unwrap();
        let buf = t.backend().buffer();
        (0..40u16)
            .find_map(|y| {
                let row: Vec<String> = (0..140u16)
                    .map(|x| buf[(x, y)].symbol().to_owned())
                    .collect();
                let line: String = row.concat();
                let at = line.find("signer-0")?;
                let after = line[at..].find("Running")? + at + "Running".len();
                let col = line[..after].chars().count()
                    + line[after..].chars().take_while(|c| *c == ' ').count();
                Some(buf[(col as u16, y)].fg)
            })
            .unwrap()
    };
    assert_eq!(err_colour(&app), ratatui::style::Color::Green);
    // Checks that could not look (a node the user may not read): not green.
    app.apply(pod(1));
    assert_ne!(err_colour(&app), ratatui::style::Color::Green);
    // The API-side checks pass, but doctor's report on the pod (its in-pod probes) has an
    // error: the row is not greener than the Findings screen.
    app.apply(pod(0));
    assert_eq!(err_colour(&app), ratatui::style::Color::Green);
    app.apply(Update::Findings(report(vec![Finding::new(
        "enclave.sealed",
        Severity::Error,
        "sealed",
    )])));
    assert_eq!(err_colour(&app), ratatui::style::Color::Red);
    app.now = 9.0;
    app.apply(Update::Pods(Err("connection refused".into())));
    let out = draw(&app, 140, 40);
    assert!(out.contains("Pods (UNREACHABLE — last good"), "{out}");
}

/// The fleet screen (`tui -l`) over two clusters: rows worst first, the filter, and enter
/// watching the selected pod on the other screens.
fn fleet_app() -> App {
    use ccctl::doctor::live::{Live, Row};
    use ccctl::probe::k8s::PodFacts;
    let facts = |name: &str, node: &str| {
        let mut pod = cc_sandbox::apiserver::healthy_pod(name, "chamber", node);
        // A started pod.
        pod.metadata.uid = Some(format!("uid-{name}"));
        PodFacts {
            pod,
            node: Some(cc_sandbox::apiserver::labelled_node(node)),
            device_plugin: Some(cc_sandbox::apiserver::device_plugin(2, 2)),
            events: vec![],
            logs: None,
            unread: Default::default(),
        }
    };
    let live = |signer: &str, shares: u32, drops: f64, release: Option<&str>| Live {
        source: "pod-proxy",
        signer: signer.into(),
        error: (signer == "unreachable").then(|| "HTTP 503 ServiceUnavailable".into()),
        pcr0: (signer != "unreachable").then(|| PCR0.into()),
        pcr8: None,
        release: release.map(str::to_owned),
        shares: (signer != "unreachable").then_some(shares),
        threshold: (signer != "unreachable").then_some(2),
        drop_rate: (signer != "unreachable").then_some(drops),
        signing_rate: (signer != "unreachable").then_some(4.5),
        signing_latency_ms: None,
        kms_decrypt: BTreeMap::new(),
        drop_rate_peak_5m: None,
        // No age column drift in a snapshot.
        at_ms: 0,
    };
    let mut rows = vec![
        Row::new(
            "eu-1".into(),
            "chamber".into(),
            &facts("signer-0", "node-a"),
            live("unsealed", 3, 0.0, Some("released")),
        ),
        Row::new(
            "eu-1".into(),
            "chamber".into(),
            &facts("signer-1", "node-b"),
            live("unsealed", 2, 12.5, Some("released")),
        ),
        Row::new(
            "us-2".into(),
            "chamber".into(),
            &facts("signer-0", "node-c"),
            live("unreachable", 0, 0.0, None),
        ),
        Row::new(
            "us-2".into(),
            "chamber".into(),
            &facts("signer-1", "node-d"),
            live("unsealed", 3, 0.0, Some("not-released")),
        ),
    ];
    rows[2].cluster_index = 1;
    rows[3].cluster_index = 1;
    ccctl::doctor::live::sort(&mut rows);
    let mut app = App::new("pods 2 clusters -l app=containment-chamber", 100);
    app.fleet = Some(Default::default());
    app.screen = Screen::Fleet;
    app.apply(Update::Fleet(Ok(ccctl::tui::app::FleetView {
        rows,
        errors: vec![],
        clusters: 2,
    })));
    app
}

#[test]
fn fleet_screen_worst_first_filter_and_drill_in() {
    use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
    let key = |c| KeyEvent::new(c, KeyModifiers::NONE);
    let mut app = fleet_app();
    insta::assert_snapshot!("fleet_two_clusters", draw(&app, 160, 10));
    let order: Vec<String> = app
        .fleet_rows()
        .iter()
        .map(|r| format!("{}/{}", r.cluster, r.pod))
        .collect();
    assert_eq!(
        order,
        [
            "us-2/signer-0",
            "eu-1/signer-1",
            "us-2/signer-1",
            "eu-1/signer-0"
        ]
    );
    // `/` then text then enter: only the matching rows.
    app.on_key(key(KeyCode::Char('/')));
    for c in "eu-1".chars() {
        app.on_key(key(KeyCode::Char(c)));
    }
    app.on_key(key(KeyCode::Enter));
    assert_eq!(app.fleet_rows().len(), 2);
    assert!(draw(&app, 160, 10).contains("filter 'eu-1': 2 of 4"));
    // ↓ then enter: watch eu-1/signer-0 on the other screens.
    app.on_key(key(KeyCode::Down));
    assert_eq!(
        app.on_key(key(KeyCode::Enter)),
        Some(ccctl::tui::app::Command::Watch)
    );
    assert_eq!(app.screen, Screen::Overview);
    let w = app.fleet.as_ref().unwrap().watching.clone().unwrap();
    assert_eq!(
        (w.cluster, w.name.as_str(), w.api_port),
        (0, "signer-0", 9000)
    );
    assert_eq!(app.target(), "pod eu-1:chamber/signer-0");
    // Tab order: the fleet first, and `0` comes back to it.
    app.on_key(key(KeyCode::Char('0')));
    assert_eq!(app.screen, Screen::Fleet);
    app.on_key(key(KeyCode::BackTab));
    assert_eq!(app.screen, Screen::Findings);
    // The fleet source failing: the table is stale, not green.
    app.screen = Screen::Fleet;
    app.apply(Update::Fleet(
        Err("context eu-1: connection refused".into()),
    ));
    let s = draw(&app, 160, 10);
    assert!(s.contains("UNREACHABLE — last good"), "{s}");
}

#[test]
fn without_a_selector_there_is_no_fleet_screen() {
    let mut app = App::new("local", 10);
    app.act(ccctl::tui::app::Action::Show(Screen::Fleet));
    assert_eq!(app.screen, Screen::Overview);
    assert_eq!(app.screens().len(), 4);
}

/// After enter on another pod, a read still in flight for the pod watched before (its status,
/// findings, log lines) lands and is dropped: the screens never show one pod's state as
/// another's. Reads of the pod now watched are shown.
#[test]
fn a_late_read_of_the_pod_watched_before_is_dropped() {
    use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
    let mut app = fleet_app();
    let first = app.selected_pod().unwrap();
    app.watch(first.clone());
    app.screen = Screen::Fleet;
    app.on_key(KeyEvent::new(KeyCode::Down, KeyModifiers::NONE));
    let second = app.selected_pod().unwrap();
    assert_ne!(first, second);
    app.watch(second.clone());
    let about = |p: &ccctl::tui::app::PodKey, u| Update::About(Some(p.clone()), Box::new(u));
    app.apply(about(
        &first,
        Update::Status(Ok(status("unsealed", ["decrypted"; 3], None))),
    ));
    app.apply(about(&first, Update::Findings(report(vec![]))));
    app.apply(about(
        &first,
        Update::LogLines(vec![b"from the old pod".to_vec()]),
    ));
    assert!(app.status.value.is_none(), "the old pod's status was shown");
    assert!(
        app.findings.value.is_none(),
        "the old pod's findings were shown"
    );
    assert_eq!(app.logs.len(), 0);
    app.apply(about(
        &second,
        Update::Status(Ok(status("sealed", ["denied"; 3], Some("kms")))),
    ));
    app.apply(about(
        &second,
        Update::LogLines(vec![b"from the new pod".to_vec()]),
    ));
    assert_eq!(
        app.status.value.as_ref().map(|s| s.state),
        Some(cc_proto::status::SealState::Sealed)
    );
    assert_eq!(app.logs.len(), 1);
}

/// Text the dashboard did not write — pod and node names from the cluster, PCRs from a pod's
/// /status — is drawn sanitised and cut by characters, not bytes: a PCR of multi-byte
/// characters (a hostile or broken signer) used to panic the fleet screen and the overview.
#[test]
fn hostile_names_and_pcrs_are_drawn_sanitised_without_panic() {
    let mut app = fleet_app();
    let odd = format!("a{}", "é".repeat(47));
    {
        let view = app.fleet.as_mut().unwrap().view.value.as_mut().unwrap();
        view.rows[0].pod = "evil\x1b]0;pwned\x07\x1b[2J-pod".into();
        view.rows[0].node = Some("node\x1b[31m-red".into());
        view.rows[0].live.pcr0 = Some(odd.clone());
    }
    let s = draw(&app, 160, 10);
    assert!(s.contains("evil-pod"), "{s}");
    assert!(s.contains("node-red"), "{s}");
    assert!(s.contains("aéééééééééé"), "{s}");
    for leak in ["\x1b", "pwned", "[2J", "[31m"] {
        assert!(!s.contains(leak), "{leak:?}:\n{s}");
    }
    // The overview of a pod whose /status gives that PCR0.
    let mut st = status("unsealed", ["decrypted"; 3], None);
    st.attestation
        .as_mut()
        .unwrap()
        .pcrs
        .insert("PCR0".into(), odd);
    app.screen = Screen::Overview;
    app.apply(Update::Status(Ok(st)));
    let s = draw(&app, 160, 40);
    assert!(s.contains("PCR0 aééééééé…éééééééé"), "{s}");
}

/// A refresh that re-sorts the rows keeps the cursor on the pod it was on: enter watches the
/// pod the operator chose, not whichever row took its place.
#[test]
fn the_cursor_follows_its_pod_when_a_refresh_reorders_the_rows() {
    use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
    let mut app = fleet_app();
    app.on_key(KeyEvent::new(KeyCode::Down, KeyModifiers::NONE));
    let chosen = app.selected_pod().unwrap();
    let mut rows = app
        .fleet
        .as_ref()
        .unwrap()
        .view
        .value
        .as_ref()
        .unwrap()
        .rows
        .clone();
    rows.reverse();
    app.apply(Update::Fleet(Ok(ccctl::tui::app::FleetView {
        rows,
        errors: vec![],
        clusters: 2,
    })));
    let now = app.selected_pod().unwrap();
    assert_eq!(
        (now.cluster_name, now.name),
        (chosen.cluster_name, chosen.name)
    );
    assert_eq!(app.fleet.as_ref().unwrap().selected, 2);
}

/// A source whose task went silent (stuck or gone: no attempt finished for `silent_after`)
/// is stale, not green for ever: its last value dims and says how long it has been quiet.
#[test]
fn a_source_gone_silent_is_stale_not_green() {
    let mut app = healthy();
    app.doctor_running = false;
    assert_eq!(green_rows_with(&app, 110, 32, "UNSEALED").len(), 1);
    app.silent_after = 13.0;
    app.now = 10.0;
    app.age_out();
    assert_eq!(
        green_rows_with(&app, 110, 32, "UNSEALED").len(),
        1,
        "not yet"
    );
    app.now = 20.0;
    app.age_out();
    let out = draw(&app, 110, 32);
    assert!(out.contains("UNREACHABLE — last good 18s ago"), "{out}");
    assert_eq!(app.status.error.as_deref(), Some("no answer for 18s"));
    assert!(
        green_rows_with(&app, 110, 32, "UNSEALED").is_empty(),
        "{out}"
    );
    assert_eq!(app.status.freshness(), ccctl::tui::app::Freshness::Stale);
    assert!(app.doctor_due(), "a source going silent re-runs doctor");
    // The fleet table too.
    let mut fleet = fleet_app();
    fleet.fleet_silent_after = 33.0;
    fleet.now = 30.0;
    fleet.age_out();
    assert_eq!(
        fleet.fleet.as_ref().unwrap().view.freshness(),
        ccctl::tui::app::Freshness::Fresh,
        "a fleet refresh may take three deadlines"
    );
    fleet.now = 40.0;
    fleet.age_out();
    let f = fleet.fleet.as_ref().unwrap();
    assert_eq!(f.view.freshness(), ccctl::tui::app::Freshness::Stale);
    // An answer makes it current again.
    app.apply(Update::Status(Ok(status(
        "unsealed",
        ["decrypted"; 3],
        None,
    ))));
    assert_eq!(app.status.freshness(), ccctl::tui::app::Freshness::Fresh);
}
