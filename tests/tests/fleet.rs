//! The fleet, live, end to end: three `ccctl demo` chambers at once (each on its own loopback
//! addresses, each with its own Kubernetes API double), one kubeconfig with a context per
//! demo. `doctor -l` reads each pod's live fields and the dashboard's fleet screen shows all
//! three — first through the API servers' pod proxy, then from a real Prometheus (2.42,
//! installed by scripts/tools) scraping the three. A fault injected in one chamber (its
//! enclave server killed) makes it the top row, and the time that took is printed.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cc_tests::{RunningDemo, Tmux, bin, tool};

const CONTEXTS: [&str; 3] = ["demo-a", "demo-b", "demo-c"];

/// One kubeconfig with a context per demo (each demo writes its own with context `test`).
fn kubeconfig(demos: &[RunningDemo], path: &std::path::Path) {
    let mut clusters = String::new();
    let mut contexts = String::new();
    for (d, name) in demos.iter().zip(CONTEXTS) {
        let text = std::fs::read_to_string(d.dir.join("kubeconfig")).unwrap();
        let server = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("server: "))
            .unwrap()
            .to_owned();
        clusters += &format!("- name: {name}\n  cluster:\n    server: {server}\n");
        contexts += &format!(
            "- name: {name}\n  context:\n    cluster: {name}\n    user: u\n    namespace: containment-chamber\n"
        );
    }
    std::fs::write(
        path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n{clusters}users:\n- name: u\n  user: {{}}\ncontexts:\n{contexts}current-context: demo-a\n"
        ),
    )
    .unwrap();
}

fn doctor_json(env: &[(String, String)], args: &[&str]) -> serde_json::Value {
    doctor_run(env, args).1
}

/// `doctor -l … -o json`: its exit code, its JSON, its stderr.
fn doctor_run(env: &[(String, String)], args: &[&str]) -> (Option<i32>, serde_json::Value, String) {
    let out = Command::new(bin("ccctl"))
        .args(["doctor", "-l", "app=containment-chamber", "--exec", "none"])
        .args(args)
        .args(["-o", "json"])
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env("PATH", "/usr/bin:/bin")
        .output()
        .unwrap();
    let v = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (
        out.status.code(),
        v,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The fleet table's rows (the lines between its header and its bottom border).
fn rows(screen: &str) -> Vec<String> {
    screen
        .lines()
        .skip_while(|l| !l.contains("SIGNER"))
        .skip(1)
        .take_while(|l| !l.starts_with('└'))
        .filter(|l| l.contains("containment-chamber-0"))
        .map(str::to_owned)
        .collect()
}

/// Wait until the rows satisfy `ok`; how long it took.
fn wait_rows(t: &Tmux, what: &str, timeout: Duration, ok: impl Fn(&[String]) -> bool) -> Duration {
    let start = Instant::now();
    loop {
        let s = t.screen();
        if ok(&rows(&s)) {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < timeout,
            "{what}: not within {timeout:?}:\n{s}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn kill_enclave(d: &RunningDemo) {
    let pid = std::fs::read_to_string(d.dir.join("enclave.pid")).unwrap();
    let ok = Command::new("kill")
        .args(["-KILL", pid.trim()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {pid}");
}

fn tui(env: &[(String, String)], extra: &str, name: &str) -> Tmux {
    let env: String = env.iter().map(|(k, v)| format!("{k}='{v}' ")).collect();
    let cmd = format!(
        "env {env} {} tui -l app=containment-chamber --all-contexts --refresh 1s {extra}",
        bin("ccctl").display()
    );
    Tmux::start(
        format!("cc-fleet-{name}-{}", std::process::id()),
        200,
        24,
        &cmd,
    )
}

#[test]
fn three_chambers_through_the_pod_proxy_then_through_prometheus() {
    let dir = tempfile::tempdir().unwrap();
    let demos: Vec<RunningDemo> = CONTEXTS
        .iter()
        .map(|n| RunningDemo::start(&dir.path().join(n)))
        .collect();
    let kc = dir.path().join("kubeconfig");
    kubeconfig(&demos, &kc);
    let mut env: Vec<(String, String)> = demos[0]
        .env
        .iter()
        .filter(|(k, _)| k != "KUBECONFIG")
        .cloned()
        .collect();
    env.push(("KUBECONFIG".into(), kc.display().to_string()));
    env.push(("HOME".into(), dir.path().display().to_string()));
    env.push(("TERM".into(), "xterm-256color".into()));

    // 1. doctor -l: each pod's live fields through the pod proxy, with two reads for rates.
    let v = doctor_json(&env, &["--context", "demo-b"]);
    let live = &v["pods"][0]["live"];
    assert_eq!(live["source"], "pod-proxy", "{v:#}");
    assert_eq!(live["signer"], "unsealed", "{v:#}");
    assert_eq!(live["shares"], 3, "{v:#}");
    assert_eq!(live["threshold"], 2, "{v:#}");
    assert_eq!(live["release"], "released", "{v:#}");
    assert_eq!(live["pcr0"].as_str().unwrap().len(), 96, "{v:#}");
    assert_eq!(live["drop_rate"], 0.0, "{v:#}");
    assert!(live["signing_rate"].as_f64().is_some(), "{v:#}");
    assert_eq!(
        v["pods"][0]["report"]["verdict"]["level"], "HEALTHY",
        "{v:#}"
    );

    // 2. The fleet screen over the three clusters through their pod proxies.
    let t = tui(&env, "", "proxy");
    let took = wait_rows(&t, "three healthy rows", Duration::from_secs(60), |r| {
        r.len() == 3
            && r.iter()
                .all(|l| l.contains("HEALTHY") && l.contains("UNSEALED"))
    });
    println!("pod proxy: three healthy rows after {took:?}");
    let s = t.screen();
    assert!(s.contains("CLUSTER") && s.contains("via pod-proxy"), "{s}");
    for c in CONTEXTS {
        assert!(s.contains(c), "{c}:\n{s}");
    }
    kill_enclave(&demos[1]);
    let took = wait_rows(&t, "demo-b on top, down", Duration::from_secs(30), |r| {
        r.first().is_some_and(|l| {
            l.contains("demo-b") && l.contains("UNREACHABLE") && l.contains("DOWN")
        })
    });
    println!("pod proxy: the killed chamber is the top row {took:?} after the kill (refresh 1s)");
    // Within a refresh or two (not at a deadline: a refused port is an answer, not retried).
    assert!(took < Duration::from_secs(5), "{took:?}");
    // `/` filters the rows; enter watches the row's pod on the other screens.
    t.keys(&["/"]);
    t.keys(&["-l", "demo-c"]);
    t.keys(&["Enter"]);
    t.wait_for("filter 'demo-c': 1 of 3", Duration::from_secs(5));
    t.keys(&["Enter"]);
    let s = t.wait_for(
        "pod demo-c:containment-chamber/containment-chamber-0",
        Duration::from_secs(10),
    );
    assert!(s.contains("1 Overview"), "{s}");
    t.wait_for("/status: UNSEALED", Duration::from_secs(20));
    t.keys(&["0"]);
    t.wait_for("SIGNER", Duration::from_secs(5));
    t.keys(&["q"]);
    drop(t);

    // doctor -l over the three clusters: one report per pod with its cluster, the dead one
    // judged by the same code as the fleet screen (exit 1: a finding).
    let (code, v, err) = doctor_run(&env, &["--all-contexts"]);
    assert_eq!(code, Some(1), "{v:#}{err}");
    let pods = v["pods"].as_array().unwrap();
    let clusters: Vec<&str> = pods
        .iter()
        .map(|p| p["cluster"].as_str().unwrap())
        .collect();
    assert_eq!(clusters, CONTEXTS, "{v:#}");
    assert_eq!(v["clusters"].as_array().unwrap().len(), 3, "{v:#}");
    for p in pods {
        let (signer, level) = if p["cluster"] == "demo-b" {
            ("unreachable", "DOWN")
        } else {
            ("unsealed", "HEALTHY")
        };
        assert_eq!(p["live"]["signer"], signer, "{p:#}");
        assert_eq!(p["report"]["verdict"]["level"], level, "{p:#}");
        assert_eq!(p["namespace"], "containment-chamber", "{p:#}");
    }
    // A context whose API server does not answer, and one whose client cannot be made (its
    // CA file is gone): the others are still checked and shown, and the exit code is 2 (those
    // clusters were not looked at), never 0.
    let gone = dir.path().join("kubeconfig-gone");
    let dead = format!("http://127.0.0.1:{}", cc_tests::free_port());
    let text = std::fs::read_to_string(&kc)
        .unwrap()
        .replacen(
            "clusters:\n",
            &format!(
                "clusters:\n- name: gone\n  cluster:\n    server: {dead}\n- name: broken\n  cluster:\n    server: https://127.0.0.1:1\n    certificate-authority: {}\n",
                dir.path().join("no-such-ca.crt").display()
            ),
            1,
        )
        .replacen(
            "contexts:\n",
            "contexts:\n- name: gone\n  context:\n    cluster: gone\n    user: u\n    namespace: containment-chamber\n- name: broken\n  context:\n    cluster: broken\n    user: u\n",
            1,
        );
    std::fs::write(&gone, text).unwrap();
    let env_gone: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| match k.as_str() {
            "KUBECONFIG" => (k.clone(), gone.display().to_string()),
            _ => (k.clone(), v.clone()),
        })
        .collect();
    let (code, v, err) = doctor_run(
        &env_gone,
        &[
            "--context",
            "demo-a",
            "--context",
            "gone",
            "--context",
            "broken",
        ],
    );
    assert_eq!(code, Some(2), "{v:#}{err}");
    assert_eq!(v["pods"].as_array().unwrap().len(), 1, "{v:#}");
    assert_eq!(v["pods"][0]["cluster"], "demo-a", "{v:#}");
    assert_eq!(v["pods"][0]["live"]["signer"], "unsealed", "{v:#}");
    assert!(v["clusters"][1]["error"].as_str().is_some(), "{v:#}");
    assert_eq!(v["clusters"][2]["cluster"], "broken", "{v:#}");
    assert!(
        v["clusters"][2]["error"]
            .as_str()
            .is_some_and(|e| e.contains("context 'broken'")),
        "{v:#}"
    );
    assert!(
        err.contains("2 of 3 clusters could not be listed")
            && err.contains("gone")
            && err.contains("broken"),
        "{err}"
    );

    // 3. The same three from a real Prometheus that scrapes them (demo-b's enclave is down).
    let prom_dir = dir.path().join("prometheus");
    std::fs::create_dir_all(&prom_dir).unwrap();
    let mut targets = String::new();
    for (d, name) in demos.iter().zip(CONTEXTS) {
        let m = d.var("CCCTL_METRICS");
        let addr = m.strip_prefix("tcp://").unwrap();
        targets += &format!(
            "      - targets: ['{addr}']\n        labels: {{cluster: {name}, namespace: containment-chamber, pod: containment-chamber-0}}\n"
        );
    }
    std::fs::write(
        prom_dir.join("prometheus.yml"),
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: chamber\n    static_configs:\n{targets}"
        ),
    )
    .unwrap();
    let port = cc_tests::free_port();
    let url = format!("http://127.0.0.1:{port}");
    let mut prom = cc_tests::Proc::start(
        Command::new(tool("prometheus"))
            .arg(format!(
                "--config.file={}",
                prom_dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                prom_dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null()),
    );
    // Two scrapes of each target (a rate needs two samples).
    cc_tests::wait_until(
        "Prometheus scraped the three twice",
        Duration::from_secs(60),
        || {
            let q = "count_over_time(up[1m])";
            cc_tests::http_get(
                port,
                &format!(
                    "/api/v1/query?query={}",
                    q.replace('[', "%5B").replace(']', "%5D")
                ),
            )
            .is_ok_and(|body| body.matches("\"cluster\"").count() == 3 && !body.contains("\"1\"]"))
        },
    );
    let v = doctor_json(&env, &["--context", "demo-a", "--prometheus", &url]);
    let live = &v["pods"][0]["live"];
    assert_eq!(live["source"], "prometheus", "{v:#}");
    assert_eq!(live["signer"], "unsealed", "{v:#}");
    assert_eq!(live["shares"], 3, "{v:#}");
    // The decrypt outcomes, the 5-minute peak drop rate (a range query), the signing latency.
    assert!(
        live["kms_decrypt"]["decrypted"].as_f64() >= Some(3.0),
        "{v:#}"
    );
    assert_eq!(live["drop_rate_peak_5m"], 0.0, "{v:#}");
    assert!(live["signing_latency_ms"].as_f64().is_some(), "{v:#}");
    // The running PCRs (containment_enclave_measurement_info) and the threshold, and the key
    // policies' verdict on them, as through the pod proxy.
    assert_eq!(live["pcr0"].as_str().unwrap().len(), 96, "{v:#}");
    assert_eq!(live["threshold"], 2, "{v:#}");
    assert_eq!(live["release"], "released", "{v:#}");
    let v = doctor_json(&env, &["--context", "demo-b", "--prometheus", &url]);
    assert_eq!(v["pods"][0]["live"]["signer"], "unreachable", "{v:#}");
    assert_eq!(
        v["pods"][0]["report"]["verdict"]["cause"], "enclave.pod-unreachable",
        "{v:#}"
    );

    let t = tui(&env, &format!("--prometheus {url}"), "prom");
    let took = wait_rows(
        &t,
        "b down, a and c healthy",
        Duration::from_secs(60),
        |r| {
            r.len() == 3
                && r[0].contains("demo-b")
                && r[0].contains("DOWN")
                && r[1..].iter().all(|l| {
                    // PCR0 with the release verdict, and shares against the threshold.
                    l.contains("HEALTHY") && l.contains(" released") && l.contains("3 (≥2)")
                })
        },
    );
    println!("prometheus: rows after {took:?}");
    assert!(t.screen().contains("via prometheus"), "{}", t.screen());
    kill_enclave(&demos[0]);
    let took = wait_rows(&t, "demo-a on top, down", Duration::from_secs(30), |r| {
        r.first().is_some_and(|l| {
            l.contains("demo-a") && l.contains("UNREACHABLE") && l.contains("DOWN")
        })
    });
    println!(
        "prometheus: the killed chamber is the top row {took:?} after the kill (scrape 1s, refresh 1s)"
    );
    assert!(took < Duration::from_secs(5), "{took:?}");
    t.keys(&["q"]);
    drop(t);
    prom.stop(Duration::from_secs(10));
}
