//! End-to-end tests of `containment-chamber-enclave-proxy`: the real binary over unix sockets
//! and loopback TCP.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use cc_tests::{
    Proc, bin, fake_nitro_cli, free_port, http_get, metric, wait_for_socket, wait_for_tcp,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UnixStream};

const PROXY: &str = "containment-chamber-enclave-proxy";
const T: Duration = Duration::from_secs(30);

fn proxy() -> Command {
    let mut c = Command::new(bin(PROXY));
    c.env("RUST_LOG", "info");
    c
}

fn start_vsock_stdout(dir: &Path, metrics_port: u16) -> (Proc, PathBuf) {
    let sock = dir.join("log.sock");
    let p = Proc::start(proxy().args([
        "--metrics",
        &format!("tcp://127.0.0.1:{metrics_port}"),
        "vsock-stdout",
        "--listen",
        &format!("unix://{}", sock.display()),
        "--shutdown-grace",
        "2s",
    ]));
    wait_for_socket(&sock);
    wait_for_tcp(metrics_port);
    (p, sock)
}

/// Lines this test wrote: `w<writer> <seq> <payload>`; everything else on stdout is the proxy's
/// own tracing output.
fn forwarded(stdout: &str) -> impl Iterator<Item = &str> {
    stdout.lines().filter(|l| l.starts_with('w'))
}

fn payload(writer: usize, seq: usize) -> String {
    // Varying lengths so chunk boundaries fall everywhere.
    let n = (writer * 31 + seq * 17) % 200;
    format!("w{writer:02} {seq:05} {}", "abcdefghij".repeat(n / 10 + 1))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_writers_times_ten_thousand_lines_arrive_complete() {
    let dir = tempfile::tempdir().unwrap();
    let mport = free_port();
    let (mut p, sock) = start_vsock_stdout(dir.path(), mport);
    const WRITERS: usize = 50;
    const LINES: usize = 10_000;
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let sock = sock.clone();
        tasks.push(tokio::spawn(async move {
            let mut s = UnixStream::connect(&sock).await.unwrap();
            let mut buf = Vec::new();
            for seq in 0..LINES {
                buf.extend_from_slice(payload(w, seq).as_bytes());
                buf.push(b'\n');
                // Flush in odd-sized pieces so lines straddle writes.
                if buf.len() > 1000 + w * 37 {
                    let cut = buf.len() - (seq % 50);
                    s.write_all(&buf[..cut]).await.unwrap();
                    buf.drain(..cut);
                }
            }
            s.write_all(&buf).await.unwrap();
            s.shutdown().await.unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    // Every line has reached stdout once the counter says so.
    cc_tests::wait_until("all lines written", T, || {
        http_get(mport, "/metrics")
            .ok()
            .and_then(|m| metric(&m, "containment_proxy_log_lines_total"))
            == Some((WRITERS * LINES) as f64)
    });
    assert!(p.stop(T).success());
    let out = p.stdout();
    let mut next = HashMap::new();
    let mut count = 0;
    for line in forwarded(&out) {
        let w: usize = line[1..3]
            .parse()
            .unwrap_or_else(|_| panic!("mangled line {line:?}"));
        let seq = next.entry(w).or_insert(0usize);
        assert_eq!(
            line,
            payload(w, *seq),
            "writer {w} line {seq} mangled or out of order"
        );
        *seq += 1;
        count += 1;
    }
    assert_eq!(count, WRITERS * LINES);
    assert!(next.values().all(|n| *n == LINES));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writer_killed_mid_line_flushes_its_half_line_and_others_continue() {
    let dir = tempfile::tempdir().unwrap();
    let mport = free_port();
    let (mut p, sock) = start_vsock_stdout(dir.path(), mport);
    // A steady writer on its own connection.
    let mut steady = UnixStream::connect(&sock).await.unwrap();
    steady.write_all(b"w01 steady-before\n").await.unwrap();
    // A real process that writes a line and a half, then is killed with SIGKILL.
    let script = format!(
        "import socket,time\ns=socket.socket(socket.AF_UNIX)\ns.connect('{}')\n\
         s.sendall(b'w02 complete\\nw02 half-a-li')\ntime.sleep(60)\n",
        sock.display()
    );
    let mut victim = Proc::start(Command::new("python3").args(["-c", &script]));
    p.wait_stdout("w02 complete", T);
    victim.signal(libc::SIGKILL);
    victim.wait(T);
    p.wait_stdout("w02 half-a-li\n", T);
    steady.write_all(b"w01 steady-after\n").await.unwrap();
    p.wait_stdout("w01 steady-after", T);
    // And the listener still accepts new connections.
    let mut late = UnixStream::connect(&sock).await.unwrap();
    late.write_all(b"w03 late\n").await.unwrap();
    p.wait_stdout("w03 late", T);
    let m = http_get(mport, "/metrics").unwrap();
    assert_eq!(
        metric(&m, "containment_proxy_log_lines_unterminated_total"),
        Some(1.0)
    );
    drop(steady);
    drop(late);
    assert!(p.stop(T).success());
    let out = p.stdout();
    let lines: Vec<&str> = forwarded(&out).collect();
    assert_eq!(
        lines,
        [
            "w01 steady-before",
            "w02 complete",
            "w02 half-a-li",
            "w01 steady-after",
            "w03 late"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_mebibyte_line_is_cut_marked_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let mport = free_port();
    let (mut p, sock) = start_vsock_stdout(dir.path(), mport);
    let mut s = UnixStream::connect(&sock).await.unwrap();
    let mut big = b"w09 ".to_vec();
    big.resize(1024 * 1024, b'x');
    big.push(b'\n');
    s.write_all(&big).await.unwrap();
    s.write_all(b"w10 after the big one\n").await.unwrap();
    p.wait_stdout("w10 after the big one", T);
    drop(s);
    let m = http_get(mport, "/metrics").unwrap();
    assert_eq!(
        metric(&m, "containment_proxy_log_lines_cut_total"),
        Some(1.0)
    );
    assert!(p.stop(T).success());
    let out = p.stdout();
    let lines: Vec<&str> = forwarded(&out).collect();
    assert_eq!(lines.len(), 2);
    let marker = " [vsock-stdout: line cut at bound]";
    assert_eq!(lines[0].len(), 65536 + marker.len());
    assert!(lines[0].starts_with("w09 xxxx") && lines[0].ends_with(marker));
    assert_eq!(lines[1], "w10 after the big one");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_line_of_multibyte_characters_is_cut_on_a_character_boundary() {
    let dir = tempfile::tempdir().unwrap();
    let mport = free_port();
    let (mut p, sock) = start_vsock_stdout(dir.path(), mport);
    let mut s = UnixStream::connect(&sock).await.unwrap();
    // 3-byte characters after a 5-byte prefix: the 64 KiB bound falls inside one.
    let mut big = "w11 x".to_owned();
    big.push_str(&"\u{20ac}".repeat(30_000));
    big.push('\n');
    s.write_all(big.as_bytes()).await.unwrap();
    s.write_all(b"w12 after\n").await.unwrap();
    p.wait_stdout("w12 after", T);
    drop(s);
    assert!(p.stop(T).success());
    let out = String::from_utf8(p.stdout_bytes())
        .map_err(|e| e.utf8_error())
        .expect("stdout is valid UTF-8");
    let lines: Vec<&str> = forwarded(&out).collect();
    let marker = " [vsock-stdout: line cut at bound]";
    let body = lines[0]
        .strip_prefix("w11 x")
        .and_then(|l| l.strip_suffix(marker))
        .unwrap_or_else(|| panic!("{:?}", &lines[0][..80]));
    assert!(body.chars().all(|c| c == '\u{20ac}'));
    assert_eq!(body.len(), 65531 - 65531 % 3);
    assert_eq!(lines[1], "w12 after");
}

/// SIGTERM while stdout is stalled (a pipe nobody reads): after the grace period the listener
/// exits anyway and says how many lines it dropped.
#[test]
fn sigterm_with_stdout_stalled_exits_after_the_grace_period() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("log.sock");
    let mut child = proxy()
        .args([
            "vsock-stdout",
            "--listen",
            &format!("unix://{}", sock.display()),
            "--shutdown-grace",
            "1s",
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Never read: the pipe fills up.
    let _stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    wait_for_socket(&sock);
    let mut s = std::os::unix::net::UnixStream::connect(&sock).unwrap();
    s.set_write_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let line = format!("w13 {}\n", "y".repeat(1000));
    let started = std::time::Instant::now();
    let mut sent = 0usize;
    // Until the proxy stops reading (its queue and the pipe are full): at most 64 Ki lines.
    while sent < 64 * 1024 && started.elapsed() < T {
        if std::io::Write::write_all(&mut s, line.as_bytes()).is_err() {
            break;
        }
        sent += 1;
    }
    assert!(sent < 64 * 1024, "stdout never stalled");
    // SAFETY: kill(2) on our own child, not reaped yet.
    #[allow(unsafe_code)]
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let t = std::time::Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if t.elapsed() > Duration::from_secs(6) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("vsock-stdout still running 6 s after SIGTERM with a 1 s grace period");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    drop(s);
    assert!(status.success(), "{status}");
    let mut err = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut err).unwrap();
    assert!(err.contains("lines dropped"), "{err}");
}

async fn echo_upstream() -> (u16, tokio::task::JoinHandle<()>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let h = tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    (port, h)
}

async fn round_trip_unix(sock: &Path, msg: &[u8]) -> Vec<u8> {
    // The proxy may close at once (target unreachable): a failed write just means "closed".
    let mut s = UnixStream::connect(sock).await.unwrap();
    let (mut r, mut w) = s.split();
    let write = async {
        let _ = w.write_all(msg).await;
        let _ = w.shutdown().await;
    };
    let mut out = Vec::new();
    let read = async {
        let _ = r.read_to_end(&mut out).await;
    };
    tokio::join!(write, read);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn egress_forwards_bytes_untouched_and_counts_them() {
    let dir = tempfile::tempdir().unwrap();
    let (up, _h) = echo_upstream().await;
    let allow = dir.path().join("vsock-proxy.yaml");
    std::fs::write(
        &allow,
        format!("allowlist:\n- {{address: 127.0.0.1, port: {up}}}\n"),
    )
    .unwrap();
    let sock = dir.path().join("egress.sock");
    let mport = free_port();
    let mut p = Proc::start(proxy().args([
        "--metrics",
        &format!("tcp://127.0.0.1:{mport}"),
        "egress",
        "--name",
        "kms",
        "--listen",
        &format!("unix://{}", sock.display()),
        "--target",
        &format!("tcp://127.0.0.1:{up}"),
        "--allowlist",
        allow.to_str().unwrap(),
    ]));
    wait_for_socket(&sock);
    // Arbitrary binary (a TLS ClientHello would look like this to us: opaque bytes).
    let msg: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    assert_eq!(round_trip_unix(&sock, &msg).await, msg);
    let m = http_get(mport, "/metrics").unwrap();
    assert_eq!(
        metric(
            &m,
            "containment_proxy_bytes_total{forwarder=\"kms\",direction=\"to_target\"}"
        ),
        Some(200_000.0)
    );
    assert_eq!(
        metric(
            &m,
            "containment_proxy_bytes_total{forwarder=\"kms\",direction=\"from_target\"}"
        ),
        Some(200_000.0)
    );
    // 2 = the readiness probe's connection plus ours.
    assert_eq!(
        metric(&m, "containment_proxy_connections_total{forwarder=\"kms\"}"),
        Some(2.0)
    );
    assert!(p.stop(T).success());
    assert!(!sock.exists(), "socket left behind");
}

#[test]
fn egress_target_outside_the_allowlist_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let allow = dir.path().join("vsock-proxy.yaml");
    std::fs::write(
        &allow,
        "allowlist:\n- {address: kms.us-east-1.amazonaws.com, port: 443}\n",
    )
    .unwrap();
    let sock = dir.path().join("egress.sock");
    let mut p = Proc::start(proxy().args([
        "egress",
        "--listen",
        &format!("unix://{}", sock.display()),
        "--target",
        "tcp://kms.us-east-1.amazonaws.com:8443",
        "--allowlist",
        allow.to_str().unwrap(),
    ]));
    let status = p.wait(T);
    assert_eq!(status.code(), Some(2));
    assert!(
        p.stderr()
            .contains("the given address and port are not allowed"),
        "{}",
        p.stderr()
    );
    assert!(!sock.exists(), "must refuse before listening");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_refusing_connections_closes_that_connection_only() {
    let dir = tempfile::tempdir().unwrap();
    let up = free_port(); // nothing listens here yet
    let sock = dir.path().join("egress.sock");
    let mport = free_port();
    let mut p = Proc::start(proxy().args([
        "--metrics",
        &format!("tcp://127.0.0.1:{mport}"),
        "egress",
        "--name",
        "sts",
        "--listen",
        &format!("unix://{}", sock.display()),
        "--target",
        &format!("tcp://127.0.0.1:{up}"),
    ]));
    wait_for_socket(&sock);
    for _ in 0..3 {
        assert_eq!(round_trip_unix(&sock, b"hello").await, b"");
    }
    p.wait_stdout("target unreachable; closing this connection", T);
    // 3 of ours + the readiness probe's (whose task may finish after ours: wait for it).
    cc_tests::wait_until("4 connect errors counted", T, || {
        http_get(mport, "/metrics").ok().and_then(|m| {
            metric(
                &m,
                "containment_proxy_errors_total{forwarder=\"sts\",kind=\"connect\"}",
            )
        }) == Some(4.0)
    });
    // The upstream comes back: the same process forwards again.
    let l = TcpListener::bind(("127.0.0.1", up)).await.unwrap();
    tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let (mut r, mut w) = s.split();
        let _ = tokio::io::copy(&mut r, &mut w).await;
    });
    assert_eq!(round_trip_unix(&sock, b"hello").await, b"hello");
    assert!(p.stop(T).success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingress_forwards_tcp_into_the_enclave_address() {
    let dir = tempfile::tempdir().unwrap();
    // The "enclave": an echo server on a unix socket.
    let enclave = dir.path().join("enclave-api.sock");
    let l = tokio::net::UnixListener::bind(&enclave).unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    let port = free_port();
    let mut p = Proc::start(proxy().args([
        "ingress",
        "--listen",
        &format!("tcp://127.0.0.1:{port}"),
        "--target",
        &format!("unix://{}", enclave.display()),
    ]));
    wait_for_tcp(port);
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    s.write_all(b"GET /upcheck HTTP/1.0\r\n\r\n").await.unwrap();
    s.shutdown().await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    assert_eq!(out, b"GET /upcheck HTTP/1.0\r\n\r\n");
    assert!(p.stop(T).success());
}

#[test]
fn bad_addresses_and_flags_exit_2_with_the_reason() {
    for (args, needle) in [
        (
            vec!["egress", "--target", "vsock://x:1"],
            "CID must be a number",
        ),
        (
            vec!["egress", "--target", "tcp://localhost"],
            "missing port",
        ),
        (
            vec!["vsock-stdout", "--listen", "vsock://3"],
            "missing port",
        ),
        (
            vec!["vsock-stdout", "--shutdown-grace", "soon"],
            "not a duration",
        ),
        (
            vec![
                "egress",
                "--listen",
                "unix:///tmp/x.sock",
                "--target",
                "unix:///tmp/y",
            ],
            "egress targets are tcp://HOST:PORT",
        ),
        (
            vec!["run", "--config", "/nonexistent/run.toml"],
            "cannot read config '/nonexistent/run.toml'",
        ),
    ] {
        let mut p = Proc::start(proxy().args(&args));
        let status = p.wait(T);
        assert_eq!(status.code(), Some(2), "{args:?}: {}", p.stderr());
        assert!(
            p.stderr().contains(needle),
            "{args:?}: expected '{needle}' in {}",
            p.stderr()
        );
    }
}

struct Chamber {
    dir: tempfile::TempDir,
    log_sock: PathBuf,
    egress_sock: PathBuf,
    ingress_port: u16,
    metrics_port: u16,
    config: PathBuf,
}

/// A `run` config over unix sockets and loopback with a fake nitro-cli.
fn chamber(fail: bool, extra: &str) -> Chamber {
    let dir = tempfile::tempdir().unwrap();
    let log_sock = dir.path().join("log.sock");
    let egress_sock = dir.path().join("egress-kms.sock");
    let enclave_api = dir.path().join("enclave-api.sock");
    let ingress_port = free_port();
    let metrics_port = free_port();
    let nitro = fake_nitro_cli(dir.path(), &[log_sock.clone(), egress_sock.clone()], fail);
    let config = dir.path().join("run.toml");
    std::fs::write(
        &config,
        format!(
            r#"nitro_cli = "{nitro}"
shutdown_grace_ms = 1000
{extra}
[metrics]
listen = "tcp://127.0.0.1:{metrics_port}"
[logs]
listen = "unix://{log}"
[[egress]]
name = "kms"
listen = "unix://{egress}"
target = "tcp://127.0.0.1:{up}"
[[ingress]]
name = "api"
listen = "tcp://127.0.0.1:{ingress_port}"
target = "unix://{api}"
[enclave]
eif_path = "/home/enclave.eif"
cpu_count = 2
memory_mib = 3524
enclave_cid = 16
"#,
            nitro = nitro.display(),
            log = log_sock.display(),
            egress = egress_sock.display(),
            up = free_port(),
            api = enclave_api.display(),
        ),
    )
    .unwrap();
    Chamber {
        dir,
        log_sock,
        egress_sock,
        ingress_port,
        metrics_port,
        config,
    }
}

fn calls(c: &Chamber) -> String {
    std::fs::read_to_string(c.dir.path().join("nitro-cli.calls")).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_starts_listeners_before_the_enclave_and_terminates_it_on_sigterm_during_traffic() {
    let c = chamber(false, "");
    let mut p = Proc::start(proxy().args(["run", "--config", c.config.to_str().unwrap()]));
    p.wait_stdout("enclave started", T);
    let calls_now = calls(&c);
    assert!(
        calls_now.starts_with(
            "run-enclave --eif-path /home/enclave.eif --cpu-count 2 --memory 3524 --enclave-cid 16\n"
        ),
        "{calls_now}"
    );
    // Both listeners existed when nitro-cli ran.
    assert!(
        calls_now.contains(&format!("present {}", c.log_sock.display())),
        "{calls_now}"
    );
    assert!(
        calls_now.contains(&format!("present {}", c.egress_sock.display())),
        "{calls_now}"
    );
    assert!(
        p.stdout()
            .contains("enclave_id=i-096e001cdd5c912c9-enc182d5585cfe18db")
    );
    assert!(
        p.stdout().contains("Start allocating memory..."),
        "nitro-cli stderr is logged"
    );

    // Traffic: 4 log writers sending whole lines until told to stop (bounded: at most 5 s).
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..4 {
        let (sock, stop) = (c.log_sock.clone(), stop.clone());
        writers.push(tokio::spawn(async move {
            let Ok(mut s) = UnixStream::connect(&sock).await else {
                return 0;
            };
            let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed)
                && tokio::time::Instant::now() < deadline
            {
                if s.write_all(payload(w, n % 100_000).as_bytes())
                    .await
                    .is_err()
                    || s.write_all(b"\n").await.is_err()
                {
                    break;
                }
                n += 1;
                if n % 100 == 0 {
                    tokio::task::yield_now().await;
                }
            }
            n
        }));
    }
    p.wait_stdout("w03 ", T);
    let t0 = std::time::Instant::now();
    p.signal(libc::SIGTERM);
    let status = p.wait(T);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }
    assert!(status.success(), "exit {status:?}\n{}", p.stderr());
    // Grace is 1 s; the whole shutdown stays well inside a pod's terminationGracePeriod.
    assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
    assert!(
        calls(&c).contains("terminate-enclave --enclave-id i-096e001cdd5c912c9-enc182d5585cfe18db")
    );
    // Every forwarded line is whole: no half-line reached stdout, even when cut off.
    let out = p.stdout();
    let mut seen = 0;
    for line in forwarded(&out) {
        let w: usize = line[1..3].parse().unwrap();
        let seq: usize = line[4..9].parse().unwrap();
        let want = payload(w, seq);
        assert!(
            line == want || want.starts_with(line),
            "mangled line {line:?}"
        );
        seen += 1;
    }
    assert!(seen > 0);
    for s in [&c.log_sock, &c.egress_sock] {
        assert!(!s.exists(), "{} left behind", s.display());
    }
    let _ = (c.ingress_port, c.metrics_port);
}

#[test]
fn run_reports_a_nitro_cli_failure_with_its_code_and_exits_with_it() {
    let c = chamber(true, "");
    let mut p = Proc::start(proxy().args(["run", "--config", c.config.to_str().unwrap()]));
    let status = p.wait(T);
    assert_eq!(status.code(), Some(19), "{}", p.stdout());
    let out = p.stdout();
    assert!(out.contains("nitro-cli run-enclave failed"), "{out}");
    assert!(out.contains("code=E19"), "{out}");
    assert!(out.contains("device is missing"), "{out}");
    assert!(!c.log_sock.exists());
}

#[test]
fn run_refuses_debug_mode_in_production() {
    let c = chamber(false, "production = true");
    let cfg = std::fs::read_to_string(&c.config).unwrap();
    std::fs::write(
        &c.config,
        cfg.replace("enclave_cid = 16", "enclave_cid = 16\ndebug_mode = true"),
    )
    .unwrap();
    let mut p = Proc::start(proxy().args(["run", "--config", c.config.to_str().unwrap()]));
    assert_eq!(p.wait(T).code(), Some(2));
    assert!(
        p.stderr()
            .contains("'enclave.debug_mode' is true while 'production' is true"),
        "{}",
        p.stderr()
    );
    assert_eq!(calls(&c), "", "nitro-cli must not run");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_serves_ingress_and_metrics() {
    let c = chamber(false, "");
    let api = c.dir.path().join("enclave-api.sock");
    let l = tokio::net::UnixListener::bind(&api).unwrap();
    tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let mut req = Vec::new();
        let mut buf = [0u8; 1024];
        while !req.ends_with(b"\r\n\r\n") {
            let n = s.read(&mut buf).await.unwrap();
            assert!(n > 0, "request cut short");
            req.extend_from_slice(&buf[..n]);
        }
        s.write_all(b"HTTP/1.0 200 OK\r\n\r\nup").await.unwrap();
    });
    let mut p = Proc::start(proxy().args(["run", "--config", c.config.to_str().unwrap()]));
    p.wait_stdout("enclave started", T);
    assert_eq!(http_get(c.ingress_port, "/upcheck").unwrap(), "up");
    let m = http_get(c.metrics_port, "/metrics").unwrap();
    assert_eq!(
        metric(&m, "containment_proxy_connections_total{forwarder=\"api\"}"),
        Some(1.0)
    );
    assert!(p.stop(T).success());
}
