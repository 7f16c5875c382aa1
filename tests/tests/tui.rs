//! `ccctl demo` opens `ccctl tui` on a terminal: driven end to end in a real pseudo-terminal
//! (tmux), typing keys and reading the screen; quitting the dashboard stops the chamber.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use cc_tests::bin;

use cc_tests::Tmux;

/// The occurrences of `word` whose colour (the last SGR sequence before it) is green.
fn green_before(screen: &str, word: &str) -> Vec<usize> {
    screen
        .match_indices(word)
        .filter(|(i, _)| {
            let before = &screen[..*i];
            let Some(start) = before.rfind("\x1b[") else {
                return false;
            };
            let sgr = &before[start + 2..];
            let sgr = &sgr[..sgr.find('m').unwrap_or(sgr.len())];
            let parts: Vec<&str> = sgr.split(';').collect();
            parts.contains(&"32") || parts.windows(3).any(|w| w == ["38", "5", "2"])
        })
        .map(|(i, _)| i)
        .collect()
}

#[test]
fn green_before_reads_the_colour_in_front_of_a_word() {
    assert_eq!(green_before("\x1b[1;32mUNSEALED\x1b[0m", "UNSEALED"), [7]);
    assert!(green_before("\x1b[32mok \x1b[90mUNSEALED", "UNSEALED").is_empty());
    assert_eq!(green_before("\x1b[38;5;2mUNSEALED", "UNSEALED").len(), 1);
}

#[test]
fn the_demo_dashboard_in_a_real_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("demo");
    let socket = format!("cc-tui-{}", std::process::id());
    let cmd = format!(
        "{} demo --api-port 0 --metrics-port 0 --dir {} 2>{}",
        bin("ccctl").display(),
        d.display(),
        dir.path().join("stderr").display()
    );
    let t = Tmux::start(socket, 120, 36, &cmd);
    // The demo prints doctor's report (which says UNSEALED too) before the dashboard opens:
    // wait for the dashboard's own tab bar first.
    t.wait_for("1 Overview", Duration::from_secs(60));
    let s = t.wait_for("holder-a", Duration::from_secs(30));
    assert!(s.contains("UNSEALED"), "{s}");
    t.wait_for("can unseal", Duration::from_secs(30));
    t.wait_for("0 errors", Duration::from_secs(30));

    t.keys(&["2"]);
    t.wait_for("share released", Duration::from_secs(10));
    t.keys(&["/", "h", "o", "l", "d", "e", "r", "Enter"]);
    t.wait_for("/holder", Duration::from_secs(5));
    t.keys(&["l", "l", "l"]);
    t.wait_for("level ≥ ERROR", Duration::from_secs(5));

    t.keys(&["3"]);
    t.wait_for("Log events dropped", Duration::from_secs(5));
    t.wait_for("Signing", Duration::from_secs(5));

    t.keys(&["4"]);
    t.wait_for("Doctor findings", Duration::from_secs(5));
    t.keys(&["r"]);
    t.wait_for("10 checks: 0 errors", Duration::from_secs(30));

    t.keys(&["?"]);
    t.wait_for("any key closes", Duration::from_secs(5));
    t.keys(&["Escape"]);
    std::thread::sleep(Duration::from_millis(300));
    assert!(!t.screen().contains("any key closes"));

    // Shrunk to 80×24 it stays usable.
    t.tmux(&["resize-window", "-t", "t", "-x", "80", "-y", "24"]);
    t.keys(&["1"]);
    t.wait_for("UNSEALED", Duration::from_secs(5));
    t.wait_for("HEALTHY", Duration::from_secs(30));

    // Kill the enclave server with the dashboard open (issue 13 #1): within 10 s its last
    // values are dimmed under UNREACHABLE, no green UNSEALED remains, the verdict is DOWN.
    let pid = std::fs::read_to_string(d.join("enclave.pid")).unwrap();
    let killed = Instant::now();
    Command::new("kill")
        .args(["-KILL", pid.trim()])
        .status()
        .unwrap();
    t.wait_for("UNREACHABLE", Duration::from_secs(10));
    t.wait_for("DOWN", Duration::from_secs(10));
    let coloured =
        String::from_utf8_lossy(&t.tmux(&["capture-pane", "-e", "-p", "-t", "t"]).stdout)
            .into_owned();
    assert!(
        green_before(&coloured, "UNSEALED").is_empty(),
        "green UNSEALED after the enclave died:\n{coloured}"
    );
    assert!(killed.elapsed() < Duration::from_secs(10) + Duration::from_secs(1));

    t.keys(&["q"]);
    let start = Instant::now();
    while t.alive() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "demo did not exit after q"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // (The enclave server's own sockets stay: it was killed above.)
    for s in ["log.sock", "egress-kms.sock"] {
        assert!(!Path::new(&d.join(s)).exists(), "{s} left behind");
    }
}

/// Every scenario puts its true cause in the overview's verdict bar, the same as `demo --once`
/// puts it on its first line (tests/demo.rs): each demo opens its dashboard in its own tmux
/// session, a few at once.
#[test]
fn each_scenario_names_its_cause_in_the_overview_verdict() {
    let cases = [
        ("stale-policy", "DEGRADED  policy.measurement-not-allowed:"),
        ("debug-in-production", "DOWN  config.debug-in-production:"),
        ("egress-down", "DOWN  egress.proxy-down:"),
        ("log-listener-down", "DEGRADED  logs.listener-down:"),
        ("nsm-missing", "DOWN  nsm.device-missing:"),
        ("threshold-lost", "DOWN  policy.measurement-not-allowed:"),
        (
            "role-lacks-decrypt",
            "DEGRADED  policy.identity-lacks-decrypt:",
        ),
    ];
    let dir = tempfile::tempdir().unwrap();
    for batch in cases.chunks(4) {
        let sessions: Vec<(Tmux, &str)> = batch
            .iter()
            .map(|(scenario, want)| {
                let cmd = format!(
                    "{} demo --api-port 0 --metrics-port 0 --dir {} --scenario {scenario} 2>{}",
                    bin("ccctl").display(),
                    dir.path().join(scenario).display(),
                    dir.path().join(format!("{scenario}.err")).display()
                );
                let t = Tmux::start(
                    format!("cc-verdict-{}-{scenario}", std::process::id()),
                    200,
                    40,
                    &cmd,
                );
                (t, *want)
            })
            .collect();
        for (t, want) in &sessions {
            let screen = t.wait_for(want, Duration::from_secs(90));
            // It is the verdict bar (the line under the tabs), not a line further down.
            let bar = screen.lines().nth(1).unwrap_or_default();
            assert!(
                bar.contains(want),
                "{want} is not the verdict bar:\n{screen}"
            );
            t.keys(&["q"]);
        }
    }
}

/// `ccctl tui ARGS` with the demo's env.sh variables (and nothing else pointing it anywhere),
/// in a `w`×`h` terminal.
fn dashboard(demo: &cc_tests::RunningDemo, args: &str, name: &str, w: u16, h: u16) -> Tmux {
    let env: String = demo
        .env
        .iter()
        .map(|(k, v)| format!("{k}='{v}' "))
        .collect();
    let cmd = format!("env {env} {} tui {args}", bin("ccctl").display());
    Tmux::start(format!("cc-tui-{name}-{}", std::process::id()), w, h, &cmd)
}

/// `ccctl tui --pod` against a running demo through its Kubernetes API: the pod table, and the
/// log panel fed by the kube log stream (follow), which keeps bringing new lines.
#[test]
fn the_dashboard_for_a_pod_through_the_kubernetes_api() {
    let dir = tempfile::tempdir().unwrap();
    let demo = cc_tests::RunningDemo::start(&dir.path().join("demo"));
    let t = dashboard(&demo, "--pod containment-chamber-0", "pod", 120, 36);
    let s = t.wait_for(
        "pod containment-chamber/containment-chamber-0",
        Duration::from_secs(30),
    );
    assert!(s.contains("ccctl tui"), "{s}");
    let s = t.wait_for("Running", Duration::from_secs(30));
    assert!(s.contains("demo-node"), "{s}");
    t.wait_for("UNSEALED", Duration::from_secs(30));
    t.keys(&["2"]);
    t.wait_for("share released", Duration::from_secs(20));
    // The stream follows: the demo's signing traffic keeps arriving.
    let count = |s: &str| {
        s.split("lines (of ")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let first = count(&t.screen());
    let start = Instant::now();
    while count(&t.screen()) <= first {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no new lines:\n{}",
            t.screen()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    t.keys(&["q"]);
    let start = Instant::now();
    while t.alive() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "tui did not exit"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `. DIR/env.sh && ccctl tui -l app=containment-chamber`, nothing else: the demo's cluster
/// serves the fleet screen (its pod read through the API double's pod proxy), and enter
/// watches the pod.
#[test]
fn the_demo_fleet_with_no_other_flag() {
    let dir = tempfile::tempdir().unwrap();
    let demo = cc_tests::RunningDemo::start(&dir.path().join("demo"));
    let t = dashboard(&demo, "-l app=containment-chamber", "fleet", 180, 30);
    let s = t.wait_for("via pod-proxy", Duration::from_secs(30));
    assert!(s.contains("0 Fleet"), "{s}");
    let s = t.wait_for("HEALTHY", Duration::from_secs(30));
    let row = s
        .lines()
        .find(|l| l.contains("containment-chamber-0"))
        .unwrap_or_default();
    for want in ["demo-node", "Running", "UNSEALED", "released", "3 (≥2)"] {
        assert!(row.contains(want), "{want}:\n{s}");
    }
    t.keys(&["Enter"]);
    t.wait_for(
        "pod containment-chamber/containment-chamber-0",
        Duration::from_secs(10),
    );
    t.wait_for("/status: UNSEALED", Duration::from_secs(20));
    // The watched pod's enclaves, by nitro-cli inside it (kube exec, the default).
    let s = t.wait_for("nitro-cli: RUNNING", Duration::from_secs(20));
    assert!(s.contains("CID 16"), "{s}");
    // Its Findings are `doctor --pod`'s: the API-side checks and the in-pod probes, the same
    // checks in the same families, each family listed once.
    let o = std::process::Command::new(bin("ccctl"))
        .args(["-o", "json", "doctor", "--pod", "containment-chamber-0"])
        .envs(demo.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let checks = report["checks"].as_array().unwrap();
    assert!(checks.iter().any(|c| c["id"] == "config.debug"), "{report}");
    t.keys(&["4"]);
    let ids: Vec<String> = checks
        .iter()
        .map(|c| format!("✓ {}", c["id"].as_str().unwrap()))
        .collect();
    let summary = format!("{} checks: 0 errors", checks.len());
    let s = t.wait_until(
        "the Findings screen with every check of doctor --pod",
        Duration::from_secs(30),
        |s| s.contains(&summary) && ids.iter().all(|id| s.contains(id)),
    );
    let families: Vec<&str> = s
        .lines()
        .map(|l| l.trim_matches(|c: char| c == '│' || c.is_whitespace()))
        .filter(|l| ["logs", "enclave", "nsm", "config", "kms", "pcr", "egress"].contains(l))
        .collect();
    let once: std::collections::BTreeSet<&str> = families.iter().copied().collect();
    assert_eq!(families.len(), once.len(), "a family listed twice:\n{s}");
    t.keys(&["q"]);
}
