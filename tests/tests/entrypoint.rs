//! `scripts/enclave-entrypoint.sh`, run for real with a fake `nitro-cli` first on PATH that
//! records its arguments, and the real proxy binary.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use cc_tests::{Proc, bin, fake_nitro_cli, free_port, wait_for_tcp};

const T: Duration = Duration::from_secs(30);

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/enclave-entrypoint.sh")
}

struct Setup {
    dir: tempfile::TempDir,
    log_sock: PathBuf,
    egress_sock: PathBuf,
    api_port: u16,
}

fn setup(fail: bool) -> (Setup, Command) {
    let dir = tempfile::tempdir().unwrap();
    let log_sock = dir.path().join("log.sock");
    let egress_sock = dir.path().join("egress-0.sock");
    let fake_dir = dir.path().join("bin");
    std::fs::create_dir(&fake_dir).unwrap();
    let calls_dir = dir.path().to_owned();
    let nitro = fake_nitro_cli(&calls_dir, &[log_sock.clone(), egress_sock.clone()], fail);
    std::fs::rename(&nitro, fake_dir.join("nitro-cli")).unwrap();
    let proxy_dir = bin("containment-chamber-enclave-proxy")
        .parent()
        .unwrap()
        .to_owned();
    let api_port = free_port();
    let mut cmd = Command::new("bash");
    cmd.arg(script())
        .env_clear()
        .env(
            "PATH",
            format!(
                "{}:{}:/usr/bin:/bin",
                fake_dir.display(),
                proxy_dir.display()
            ),
        )
        .env("HOME", dir.path())
        .env("LOG_LISTEN", format!("unix://{}", log_sock.display()))
        .env("EGRESS_ENDPOINTS", format!("127.0.0.1:{}", free_port()))
        .env("EGRESS_LISTEN_DIR", dir.path())
        .env("API_LISTEN", format!("tcp://127.0.0.1:{api_port}"))
        .env(
            "API_TARGET",
            format!("unix://{}/api.sock", dir.path().display()),
        )
        .env("METRICS_LISTEN", "off")
        .env("EIF_PATH", "/home/enclave.eif");
    (
        Setup {
            dir,
            log_sock,
            egress_sock,
            api_port,
        },
        cmd,
    )
}

fn calls(s: &Setup) -> String {
    std::fs::read_to_string(s.dir.path().join("nitro-cli.calls")).unwrap_or_default()
}

#[test]
fn production_with_debug_is_fatal_before_anything_starts() {
    for value in ["1", "yes"] {
        let (s, mut cmd) = setup(false);
        cmd.env("PRODUCTION", "true").env("ENCLAVE_DEBUG", value);
        let mut p = Proc::start(&mut cmd);
        let status = p.wait(T);
        assert!(!status.success());
        let first = p.stderr().lines().next().unwrap_or_default().to_owned();
        assert!(first.starts_with("FATAL"), "{first}");
        assert!(first.contains("PRODUCTION=true"), "{first}");
        assert_eq!(calls(&s), "", "nitro-cli must not run");
        assert!(!s.log_sock.exists(), "no proxy may start");
    }
}

#[test]
fn starts_the_proxies_first_then_the_enclave_and_stops_cleanly_on_sigterm() {
    let (s, mut cmd) = setup(false);
    cmd.env("PRODUCTION", "true").env("ENCLAVE_DEBUG", "0");
    let mut p = Proc::start(&mut cmd);
    cc_tests::wait_until("run-enclave called", T, || {
        calls(&s).contains("run-enclave")
    });
    wait_for_tcp(s.api_port);
    let c = calls(&s);
    let first = c.lines().next().unwrap();
    assert_eq!(
        first,
        "run-enclave --eif-path /home/enclave.eif --cpu-count 2 --memory 3524 --enclave-cid 16 --enclave-name containment-chamber"
    );
    assert!(!first.contains("--debug-mode"));
    assert!(
        c.contains(&format!("present {}", s.log_sock.display())),
        "{c}"
    );
    assert!(
        c.contains(&format!("present {}", s.egress_sock.display())),
        "{c}"
    );
    // The log listener really forwards.
    {
        use std::io::Write;
        let mut w = std::os::unix::net::UnixStream::connect(&s.log_sock).unwrap();
        w.write_all(b"enclave says hello\n").unwrap();
    }
    p.wait_stdout("enclave says hello", T);
    let status = p.stop(T);
    assert!(status.success(), "{status:?}\n{}", p.stderr());
    assert!(calls(&s).contains("terminate-enclave --all"));
    cc_tests::wait_until("sockets removed", T, || {
        !s.log_sock.exists() && !s.egress_sock.exists()
    });
}

/// PROXY_METRICS (what the chart sets) gives vsock-stdout and each egress forwarder their own
/// /metrics, at the ports the chart's Service and ServiceMonitor name; the alert rules read them.
#[test]
fn proxy_metrics_are_served_per_process_when_asked() {
    let (s, mut cmd) = setup(false);
    // Two consecutive free ports (vsock-stdout, egress 0).
    let base = (0..50)
        .map(|_| free_port())
        .find(|&p| p < u16::MAX && std::net::TcpListener::bind(("127.0.0.1", p + 1)).is_ok())
        .unwrap();
    cmd.env("PROXY_METRICS", format!("127.0.0.1:{base}"));
    let mut p = Proc::start(&mut cmd);
    wait_for_tcp(base);
    wait_for_tcp(base + 1);
    let logs = cc_tests::http_get(base, "/metrics").unwrap();
    assert!(logs.contains("containment_proxy_log_lines_total"), "{logs}");
    // A connection through egress 0 (its upstream is closed) counts at base+1, not at base.
    cc_tests::wait_until("egress accepting", T, || {
        std::os::unix::net::UnixStream::connect(&s.egress_sock).is_ok()
    });
    let series = "containment_proxy_connections_total{forwarder=\"127.0.0.1\"} 1";
    cc_tests::wait_until("egress connection counted", T, || {
        cc_tests::http_get(base + 1, "/metrics").is_ok_and(|m| m.contains(series))
    });
    assert!(
        !cc_tests::http_get(base, "/metrics")
            .unwrap()
            .contains(series)
    );
    let status = p.stop(T);
    assert!(status.success(), "{status:?}\n{}", p.stderr());
}

#[test]
fn enclave_debug_adds_debug_mode_and_console_outside_production() {
    let (s, mut cmd) = setup(false);
    cmd.env("ENCLAVE_DEBUG", "1");
    let mut p = Proc::start(&mut cmd);
    cc_tests::wait_until("run-enclave called", T, || {
        calls(&s).contains("run-enclave")
    });
    assert!(
        calls(&s)
            .lines()
            .next()
            .unwrap()
            .ends_with("--enclave-name containment-chamber --debug-mode --attach-console")
    );
    assert!(p.stop(T).success());
}

#[test]
fn nitro_cli_failure_stops_the_proxies_and_exits_with_its_status() {
    let (s, cmd) = setup(true);
    let mut cmd = cmd;
    let mut p = Proc::start(&mut cmd);
    let status = p.wait(T);
    assert_eq!(status.code(), Some(19), "{}", p.stderr());
    assert!(
        p.stderr().contains("[ E19 ]"),
        "nitro-cli's own error stays visible"
    );
    assert!(p.stderr().contains("exited with status 19"));
    cc_tests::wait_until("sockets removed", T, || !s.log_sock.exists());
}
