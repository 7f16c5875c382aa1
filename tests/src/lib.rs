//! Helpers for the end-to-end tests and benchmarks: find the real binaries the workspace
//! built, start them, wait for their sockets, stop them with real signals.
//!
//! Everything here talks to unix sockets and loopback only.

/// The Kubernetes API test double lives in ccctl (it also backs `ccctl demo`'s cluster view).
pub use cc_sandbox::apiserver;

mod tmux;
pub use tmux::Tmux;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Path of a workspace binary built for the same profile as the running test or bench
/// (`target/<profile>/<name>`). `scripts/test` builds them before the tests run.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/<test-binary>
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test binary lives in target/<profile>/deps");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build the workspace binaries first (cargo build --workspace --bins, \
         which scripts/test does)",
        path.display()
    );
    path
}

/// The repository's `../shared/fixtures` folder.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures")
}

/// A free loopback TCP port (bound and released; good enough on a test machine).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local_addr").port()
}

/// Wait until `check` holds, or panic naming `what` after `timeout`.
pub fn wait_until(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

pub fn wait_for_socket(path: &Path) {
    wait_until(
        &format!("socket {}", path.display()),
        Duration::from_secs(20),
        || std::os::unix::net::UnixStream::connect(path).is_ok(),
    );
}

pub fn wait_for_tcp(port: u16) {
    wait_until(&format!("tcp port {port}"), Duration::from_secs(20), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
}

/// A running binary whose stdout and stderr are collected in the background.
pub struct Proc {
    pub child: Child,
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

impl Proc {
    pub fn start(cmd: &mut Command) -> Proc {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let mut readers = Vec::new();
        let out = child.stdout.take().expect("stdout");
        let err = child.stderr.take().expect("stderr");
        readers.push(collect(out, stdout.clone()));
        readers.push(collect(err, stderr.clone()));
        Proc {
            child,
            stdout,
            stderr,
            readers,
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child, which has not been reaped yet.
        #[allow(unsafe_code)]
        unsafe {
            libc::kill(self.pid(), sig);
        }
    }

    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.stdout.lock().expect("lock")).into_owned()
    }

    pub fn stdout_bytes(&self) -> Vec<u8> {
        self.stdout.lock().expect("lock").clone()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().expect("lock")).into_owned()
    }

    /// Wait for exit (panics after `timeout`), then for the output readers to drain.
    pub fn wait(&mut self, timeout: Duration) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                for r in self.readers.drain(..) {
                    let _ = r.join();
                }
                return status;
            }
            if start.elapsed() > timeout {
                let _ = self.child.kill();
                panic!(
                    "process did not exit within {timeout:?}\nstdout:\n{}\nstderr:\n{}",
                    tail(&self.stdout()),
                    tail(&self.stderr())
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGTERM, then wait.
    pub fn stop(&mut self, timeout: Duration) -> ExitStatus {
        self.signal(libc::SIGTERM);
        self.wait(timeout)
    }

    /// Wait until stdout contains `needle`.
    pub fn wait_stdout(&self, needle: &str, timeout: Duration) {
        let start = Instant::now();
        while !self.stdout().contains(needle) {
            assert!(
                start.elapsed() < timeout,
                "'{needle}' not on stdout within {timeout:?}\nstdout:\n{}\nstderr:\n{}",
                tail(&self.stdout()),
                tail(&self.stderr())
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn collect(
    mut r: impl Read + Send + 'static,
    into: Arc<Mutex<Vec<u8>>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match r.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => into.lock().expect("lock").extend_from_slice(&buf[..n]),
            }
        }
    })
}

/// The last 4 KiB of a text, for panic messages.
pub fn tail(s: &str) -> &str {
    let mut start = s.len().saturating_sub(4096);
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

/// `GET path` over plain HTTP/1.0 on loopback; returns the body.
pub fn http_get(port: u16, path: &str) -> std::io::Result<String> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
    let mut resp = String::new();
    s.read_to_string(&mut resp)?;
    Ok(resp
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default())
}

/// The value of one series (exact name and labels) in a Prometheus text exposition, read by
/// the one parser (`cc_proto::metrics`); `None` when absent or the text does not parse.
pub fn metric(text: &str, series: &str) -> Option<f64> {
    cc_proto::metrics::value(&cc_proto::metrics::parse(text).ok()?, series)
}

/// A fake `nitro-cli` for tests: records every call's arguments in `$dir/nitro-cli.calls`,
/// records whether each socket in `expect_sockets` existed when `run-enclave` started, and
/// answers with the real fixture output (or fails with E19 when `fail` is set).
pub fn fake_nitro_cli(dir: &Path, expect_sockets: &[PathBuf], fail: bool) -> PathBuf {
    let fx = fixtures().join("nitro-cli");
    let calls = dir.join("nitro-cli.calls");
    let socks: Vec<String> = expect_sockets
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    let script = format!(
        r#"#!/bin/sh
echo "$*" >> '{calls}'
case "$1" in
run-enclave)
  for s in {socks}; do
    if [ -S "$s" ]; then echo "present $s" >> '{calls}'; else echo "absent $s" >> '{calls}'; fi
  done
  if [ "{fail}" = "1" ]; then cat '{e19}' >&2; exit 19; fi
  echo "Start allocating memory..." >&2
  cat '{stdout}'
  echo "Started enclave with enclave-cid: 16, memory: 3524 MiB, cpu-ids: [1, 17]" >&2
  ;;
terminate-enclave)
  echo '{{"EnclaveID": "i-096e001cdd5c912c9-enc182d5585cfe18db", "Terminated": true}}'
  ;;
esac
"#,
        calls = calls.display(),
        socks = socks.join(" "),
        fail = if fail { "1" } else { "0" },
        e19 = fx.join("error.E19.stderr.txt").display(),
        stdout = fx.join("run-enclave.stdout.json").display(),
    );
    let path = dir.join("nitro-cli");
    std::fs::write(&path, script).expect("write fake nitro-cli");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path
}

/// One HTTP/1.1 request over TCP or a unix socket (`Connection: close`); returns status and
/// body. Blocking, loopback only.
pub fn http(
    addr: &cc_proto::Address,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> std::io::Result<(u16, Vec<u8>)> {
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{}",
        body.map_or(0, str::len),
        body.unwrap_or("")
    );
    let mut resp = Vec::new();
    match addr {
        cc_proto::Address::Unix(p) => {
            let mut s = std::os::unix::net::UnixStream::connect(p)?;
            s.set_read_timeout(Some(Duration::from_secs(20)))?;
            s.write_all(req.as_bytes())?;
            s.read_to_end(&mut resp)?;
        }
        cc_proto::Address::Tcp { host, port } => {
            let mut s = std::net::TcpStream::connect((host.as_str(), *port))?;
            s.set_read_timeout(Some(Duration::from_secs(20)))?;
            s.write_all(req.as_bytes())?;
            s.read_to_end(&mut resp)?;
        }
        cc_proto::Address::Vsock { .. } => {
            return Err(std::io::Error::other("tests never use vsock"));
        }
    }
    let split = resp
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no HTTP header end"))?;
    let head = String::from_utf8_lossy(&resp[..split]).into_owned();
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line in {head:?}")))?;
    let mut body = resp[split + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body);
    }
    Ok((status, body))
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = b.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size =
            usize::from_str_radix(String::from_utf8_lossy(&b[..eol]).trim(), 16).unwrap_or(0);
        if size == 0 {
            return out;
        }
        let start = eol + 2;
        let end = (start + size).min(b.len());
        out.extend_from_slice(&b[start..end]);
        b = &b[(end + 2).min(b.len())..];
    }
}

/// The Python venv `scripts/test` made (moto lives there).
pub fn venv() -> PathBuf {
    std::env::var_os("CC_TEST_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/venv"))
}

/// A command-line tool `scripts/tools` installed (helm, promtool, kubectl): in
/// `CC_TOOLS_BIN`, else `target/tools/bin`. Never one from `PATH`, so a test runs the version
/// the script checked.
pub fn tool(name: &str) -> PathBuf {
    let dir = std::env::var_os("CC_TOOLS_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/tools/bin"));
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: run scripts/tools (scripts/test does)",
        path.display()
    );
    path
}

/// A real `moto_server` on a free loopback port, stopped when dropped.
pub struct Moto {
    pub port: u16,
    _proc: Proc,
}

impl Moto {
    pub fn start() -> Moto {
        let exe = venv().join("bin/moto_server");
        assert!(
            exe.exists(),
            "{} is missing: scripts/test creates the venv with moto[server]",
            exe.display()
        );
        let port = free_port();
        let p = Proc::start(
            Command::new(exe)
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .env("MOTO_ALLOW_NONEXISTENT_REGION", "true"),
        );
        wait_until("moto_server", Duration::from_secs(60), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        Moto { port, _proc: p }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// Environment for anything that talks to moto: fake credentials, no instance metadata
/// lookups (they would leave loopback).
pub const AWS_TEST_ENV: &[(&str, &str)] = &[
    ("AWS_ACCESS_KEY_ID", "testing"),
    ("AWS_SECRET_ACCESS_KEY", "testing"),
    ("AWS_SESSION_TOKEN", "testing"),
    ("AWS_EC2_METADATA_DISABLED", "true"),
    ("AWS_CONFIG_FILE", "/dev/null"),
    ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null"),
];

/// The finding codes of a `ccctl doctor -o json` report.
pub fn finding_codes(json: &str) -> std::collections::BTreeSet<String> {
    let v: serde_json::Value = serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {json}"));
    v["checks"]
        .as_array()
        .map(|a| a.as_slice())
        .unwrap_or_default()
        .iter()
        .flat_map(|c| {
            c["findings"]
                .as_array()
                .map(|a| a.as_slice())
                .unwrap_or_default()
                .iter()
                .filter_map(|f| f["code"].as_str().map(str::to_owned))
        })
        .collect()
}

/// The variables of a running `ccctl demo`'s `env.sh` (`export K='V'` lines).
pub fn demo_env(dir: &Path) -> Vec<(String, String)> {
    std::fs::read_to_string(dir.join("env.sh"))
        .unwrap_or_else(|e| panic!("{}/env.sh: {e}", dir.display()))
        .lines()
        .filter_map(|l| l.strip_prefix("export "))
        .filter_map(|l| l.split_once('='))
        // PATH prepends the demo's ccctl folder to the shell's own: not a plain value.
        .filter(|(k, _)| *k != "PATH")
        .map(|(k, v)| (k.to_owned(), v.trim_matches('\'').to_owned()))
        .collect()
}

/// A `ccctl demo --no-tui` running in the background on automatic ports, up once it printed
/// its banner; SIGTERM (and waited for) when stopped or dropped.
pub struct RunningDemo {
    child: Option<std::process::Child>,
    pub dir: PathBuf,
    /// `env.sh`'s variables.
    pub env: Vec<(String, String)>,
    /// What it printed on stderr up to its banner (the commands it suggests).
    pub banner: String,
    /// What it prints after the banner, read on a thread.
    #[allow(clippy::type_complexity)]
    rest: Option<(
        std::sync::Arc<std::sync::Mutex<String>>,
        std::thread::JoinHandle<()>,
    )>,
}

impl RunningDemo {
    pub fn start(dir: &Path) -> RunningDemo {
        RunningDemo::start_with(dir, &[])
    }

    /// The same with extra `ccctl demo` arguments (e.g. `--scenario NAME`).
    pub fn start_with(dir: &Path, extra: &[&str]) -> RunningDemo {
        RunningDemo::start_with_env(dir, extra, &[])
    }

    /// The same with environment variables for the demo and the processes it starts (e.g.
    /// `CC_LISTEN_HEADER_TIMEOUT_MS`, `CC_PROXY_MAX_CONNECTIONS`).
    pub fn start_with_env(dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> RunningDemo {
        RunningDemo::spawn(dir, extra, env, false)
    }

    /// Started as a shell starts a foreground job: in a process group of its own, which
    /// [`RunningDemo::interrupt_group`] sends SIGINT to, as a terminal's Ctrl-C does.
    pub fn start_as_job(dir: &Path) -> RunningDemo {
        RunningDemo::spawn(dir, &[], &[], true)
    }

    fn spawn(dir: &Path, extra: &[&str], env: &[(&str, &str)], own_group: bool) -> RunningDemo {
        use std::io::{BufRead, BufReader, Read};
        use std::os::unix::process::CommandExt;
        let mut cmd = Command::new(bin("ccctl"));
        if own_group {
            cmd.process_group(0);
        }
        let mut child = cmd
            .args([
                "demo",
                "--no-tui",
                "--api-port",
                "0",
                "--metrics-port",
                "0",
                "--dir",
            ])
            .arg(dir)
            .args(extra)
            .envs(env.iter().copied())
            .env("NO_COLOR", "1")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start ccctl demo");
        let mut err = BufReader::new(child.stderr.take().expect("stderr"));
        let mut seen = String::new();
        let t = Instant::now();
        while !seen.contains("Ctrl-C stops everything") {
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "demo did not come up: {seen}"
            );
            let mut line = String::new();
            assert!(
                err.read_line(&mut line).unwrap_or(0) > 0,
                "demo exited early: {seen}"
            );
            seen.push_str(&line);
        }
        // What it prints after the banner, kept for [`RunningDemo::interrupt_group`].
        let rest = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let r = rest.clone();
        let reader = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            if let Ok(mut r) = r.lock() {
                *r = s;
            }
        });
        RunningDemo {
            child: Some(child),
            dir: dir.to_owned(),
            env: demo_env(dir),
            banner: seen,
            rest: Some((rest, reader)),
        }
    }

    /// SIGINT to its whole process group (a terminal's Ctrl-C; see [`RunningDemo::start_as_job`]),
    /// then wait: its exit status and what it printed after the banner.
    pub fn interrupt_group(&mut self) -> (Option<std::process::ExitStatus>, String) {
        let Some(mut c) = self.child.take() else {
            return (None, String::new());
        };
        let _ = Command::new("kill")
            .args(["-INT", "--", &format!("-{}", c.id())])
            .status();
        let status = c.wait().ok();
        let rest = match self.rest.take() {
            Some((rest, reader)) => {
                let _ = reader.join();
                rest.lock().map(|r| r.clone()).unwrap_or_default()
            }
            None => String::new(),
        };
        (status, rest)
    }

    /// One `env.sh` variable.
    pub fn var(&self, k: &str) -> String {
        self.env
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("{k} not in env.sh"))
    }

    /// SIGTERM, then wait: the demo's exit status.
    pub fn stop(&mut self) -> Option<std::process::ExitStatus> {
        let mut c = self.child.take()?;
        let _ = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status();
        c.wait().ok()
    }
}

/// Processes whose command line holds every one of `needles` (loopback tests find the demo's
/// children this way).
pub fn pids_matching(needles: &[&str]) -> Vec<i32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if needles.iter().all(|n| cmd.contains(n)) {
            out.push(pid);
        }
    }
    out
}

/// Resident memory (VmRSS, KiB) and open descriptors of a process, from /proc.
pub fn rss_kib_and_fds(pid: i32) -> Option<(u64, usize)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count();
    Some((rss, fds))
}

impl Drop for RunningDemo {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The one-cluster fleet of `app=containment-chamber` pods in `namespace`, read through the
/// API server of the kubeconfig at `kc` (its current context) with the client ccctl makes
/// (kube's own retry off): what the fleet screen's source runs.
pub async fn fleet_through(
    kc: &Path,
    namespace: &str,
    timeout: Duration,
    pod_timeout: Duration,
) -> ccctl::doctor::live::Fleet {
    let mut config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(kc).unwrap(),
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .unwrap();
    config.default_retry = false;
    ccctl::doctor::live::Fleet {
        clusters: vec![ccctl::doctor::live::Cluster {
            context: Some("test".into()),
            client: kube::Client::try_from(config).unwrap(),
            namespace: namespace.into(),
        }],
        selector: "app=containment-chamber".into(),
        source: ccctl::doctor::live::Source::PodProxy,
        config: None,
        timeout,
        pod_timeout,
        releases: Default::default(),
    }
}

/// Serve `app` on a loopback port of its own (a signer stand-in behind the pod proxy); its
/// address.
pub async fn serve(app: axum::Router) -> std::net::SocketAddr {
    let l = cc_sandbox::apiserver::listen(0).unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await });
    addr
}

/// Route `pod`'s ports 9000 and 3000 (API and metrics) through the double's pod proxy to
/// `addr`.
pub fn proxy_to(
    objects: &mut cc_sandbox::apiserver::Objects,
    pod: &str,
    addr: std::net::SocketAddr,
) {
    for port in [9000, 3000] {
        objects.proxies.insert(
            ("chamber".into(), pod.into(), port),
            cc_proto::Address::Tcp {
                host: addr.ip().to_string(),
                port: addr.port(),
            },
        );
    }
}
