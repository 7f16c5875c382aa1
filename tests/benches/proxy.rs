//! Benchmark of the parent proxy, all paths measured side by side in one run:
//!
//! - egress (unix → proxy → TCP) and ingress (TCP → proxy → unix) against a direct unix-socket
//!   copy (the limit) and against socat on the same path: bytes/s for 1 and 64 streams, and
//!   round-trip latency of 64-byte messages (p50/p99);
//! - 1 000 concurrent connections held open through egress;
//! - vsock-stdout: lines/s from 8 writers to a pipe.
//!
//! Run with `scripts/bench` (builds the release binaries first). Loopback and unix sockets only;
//! every loop is bounded in count.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cc_proto::Address;
use cc_tests::{Proc, bin, free_port, wait_for_socket, wait_for_tcp};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CHUNK: usize = 64 * 1024;
const ONE_STREAM_BYTES: usize = 512 << 20;
const MANY_STREAMS: usize = 64;
const MANY_STREAM_BYTES: usize = 8 << 20;
const PINGS: usize = 5_000;
const HELD: usize = 1_000;
const LOG_WRITERS: usize = 8;
const LOG_LINES_PER_WRITER: usize = 250_000;

/// The upstream: first byte picks the mode. `S`: read to EOF, answer the byte count.
/// `E`: echo 64-byte messages until EOF.
async fn serve(listener: cc_proto::Listener) {
    loop {
        let Ok((mut s, _)) = listener.accept().await else {
            return;
        };
        tokio::spawn(async move {
            let mut mode = [0u8; 1];
            if s.read_exact(&mut mode).await.is_err() {
                return;
            }
            match mode[0] {
                b'S' => {
                    let mut buf = vec![0u8; CHUNK];
                    let mut total: u64 = 0;
                    loop {
                        match s.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => total += n as u64,
                        }
                    }
                    let _ = s.write_all(&total.to_le_bytes()).await;
                }
                _ => {
                    let mut msg = [0u8; 64];
                    while s.read_exact(&mut msg).await.is_ok() {
                        if s.write_all(&msg).await.is_err() {
                            break;
                        }
                    }
                }
            }
        });
    }
}

async fn stream_bytes(addr: Address, bytes: usize) -> u64 {
    let mut s = cc_proto::connect(&addr).await.expect("connect");
    s.write_all(b"S").await.expect("mode");
    let buf = vec![0xA5u8; CHUNK];
    let mut left = bytes;
    while left > 0 {
        let n = left.min(CHUNK);
        s.write_all(&buf[..n]).await.expect("write");
        left -= n;
    }
    s.shutdown().await.expect("shutdown");
    let mut ack = [0u8; 8];
    s.read_exact(&mut ack).await.expect("ack");
    u64::from_le_bytes(ack)
}

/// Bytes/s moving `streams × bytes` through `addr` (median of 3 runs).
async fn throughput(addr: &Address, streams: usize, bytes: usize) -> f64 {
    let mut rates = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        let tasks: Vec<_> = (0..streams)
            .map(|_| tokio::spawn(stream_bytes(addr.clone(), bytes)))
            .collect();
        let mut total = 0;
        for task in tasks {
            total += task.await.expect("stream task");
        }
        assert_eq!(total as usize, streams * bytes, "bytes lost on {addr}");
        rates.push(total as f64 / t.elapsed().as_secs_f64());
    }
    rates.sort_by(f64::total_cmp);
    rates[1]
}

/// Round-trip times of 64-byte messages on one connection: (p50, p99) in µs.
async fn latency(addr: &Address) -> (f64, f64) {
    let mut s = cc_proto::connect(addr).await.expect("connect");
    s.write_all(b"E").await.expect("mode");
    let msg = [7u8; 64];
    let mut back = [0u8; 64];
    let mut rtts = Vec::with_capacity(PINGS);
    for i in 0..PINGS + 200 {
        let t = Instant::now();
        s.write_all(&msg).await.expect("ping");
        s.read_exact(&mut back).await.expect("pong");
        if i >= 200 {
            rtts.push(t.elapsed().as_secs_f64() * 1e6);
        }
    }
    rtts.sort_by(f64::total_cmp);
    (rtts[rtts.len() / 2], rtts[rtts.len() * 99 / 100])
}

/// Open `HELD` connections at once through `addr`, ping each, keep them all open, ping each
/// again. Returns how many answered both times, and the time to open them all.
async fn hold(addr: &Address) -> (usize, Duration) {
    let t = Instant::now();
    let mut conns = Vec::with_capacity(HELD);
    for _ in 0..HELD {
        let mut s = cc_proto::connect(addr).await.expect("connect");
        s.write_all(b"E").await.expect("mode");
        conns.push(s);
    }
    let mut ok = 0;
    for round in 0..2 {
        for s in &mut conns {
            let mut back = [0u8; 64];
            if s.write_all(&[round; 64]).await.is_ok()
                && s.read_exact(&mut back).await.is_ok()
                && back == [round; 64]
            {
                ok += usize::from(round == 1);
            }
        }
    }
    (ok, t.elapsed())
}

fn proxy(args: &[&str]) -> Proc {
    let mut c = Command::new(bin("containment-chamber-enclave-proxy"));
    c.env("RUST_LOG", "warn").args(args);
    Proc::start(&mut c)
}

fn socat(args: &[String]) -> Proc {
    // socat's default 8 KiB buffer would handicap it; give it the proxy's 1 MiB.
    let mut c = Command::new("socat");
    c.args(["-b", "1048576"]).args(args);
    Proc::start(&mut c)
}

fn unix(p: &Path) -> Address {
    Address::Unix(p.to_owned())
}

fn tcp(port: u16) -> Address {
    Address::Tcp {
        host: "127.0.0.1".into(),
        port,
    }
}

/// CPU seconds (user + system, its own and its reaped children's: socat forks per
/// connection) a process has used so far, from /proc/PID/stat.
fn cpu_secs(pid: Option<u32>) -> f64 {
    let Some(pid) = pid else { return 0.0 };
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command name (which may contain spaces) start at ')'.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = (11..15)
        .map(|i| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0))
        .sum::<f64>();
    // SAFETY: sysconf has no preconditions.
    #[allow(unsafe_code)]
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    ticks / hz
}

struct Row {
    path: &'static str,
    /// CPU seconds the relay process spent per GiB moved in the throughput runs.
    cpu_per_gib: Option<f64>,
    one: f64,
    many: f64,
    p50: f64,
    p99: f64,
}

async fn measure(path: &'static str, addr: &Address, relay: Option<u32>) -> Row {
    let cpu0 = cpu_secs(relay);
    let one = throughput(addr, 1, ONE_STREAM_BYTES).await;
    let many = throughput(addr, MANY_STREAMS, MANY_STREAM_BYTES).await;
    let cpu = cpu_secs(relay) - cpu0;
    let gib =
        3.0 * (ONE_STREAM_BYTES + MANY_STREAMS * MANY_STREAM_BYTES) as f64 / (1u64 << 30) as f64;
    let (p50, p99) = latency(addr).await;
    Row {
        path,
        cpu_per_gib: relay.map(|_| cpu / gib),
        one,
        many,
        p50,
        p99,
    }
}

fn print_rows(rows: &[Row]) {
    let limit = &rows[0];
    println!(
        "| path | 1 stream MiB/s | % of direct | {MANY_STREAMS} streams MiB/s | % of direct | RTT p50 µs | RTT p99 µs | added p50 µs | relay CPU s/GiB |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        println!(
            "| {} | {:.0} | {:.0} % | {:.0} | {:.0} % | {:.1} | {:.1} | {:.1} | {} |",
            r.path,
            r.one / 1048576.0,
            100.0 * r.one / limit.one,
            r.many / 1048576.0,
            100.0 * r.many / limit.many,
            r.p50,
            r.p99,
            r.p50 - limit.p50,
            r.cpu_per_gib
                .map(|c| format!("{c:.2}"))
                .unwrap_or_else(|| "–".into())
        );
    }
}

async fn log_lines_per_second(dir: &Path) -> (f64, usize) {
    let sock = dir.join("bench-log.sock");
    let mut c = Command::new(bin("containment-chamber-enclave-proxy"));
    c.env("RUST_LOG", "warn")
        .args([
            "vsock-stdout",
            "--listen",
            &format!("unix://{}", sock.display()),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = c.spawn().expect("start vsock-stdout");
    let mut out = child.stdout.take().expect("stdout");
    wait_for_socket(&sock);
    // The readiness probe connected and left: its connection carried no line.
    let line = "2026-11-25T17:00:00.000000Z  INFO containment_chamber_enclave::signer: signed request pubkey=0xa1b2c3d4 duration_us=412 status=200\n";
    let expected = LOG_WRITERS * LOG_LINES_PER_WRITER;
    let reader = std::thread::spawn(move || {
        use std::io::Read;
        let mut buf = vec![0u8; 1 << 20];
        let mut lines = 0usize;
        let mut first: Option<Instant> = None;
        while lines < expected {
            match out.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    first.get_or_insert_with(Instant::now);
                    lines += memchr_count(&buf[..n]);
                }
            }
        }
        lines
    });
    let t = Instant::now();
    let writers: Vec<_> = (0..LOG_WRITERS)
        .map(|_| {
            let sock = sock.clone();
            tokio::spawn(async move {
                let mut s = tokio::net::UnixStream::connect(&sock)
                    .await
                    .expect("connect");
                let batch = line.repeat(256);
                for _ in 0..LOG_LINES_PER_WRITER / 256 {
                    s.write_all(batch.as_bytes()).await.expect("write");
                }
                let rest = LOG_LINES_PER_WRITER % 256;
                s.write_all(line.repeat(rest).as_bytes())
                    .await
                    .expect("write");
            })
        })
        .collect();
    for w in writers {
        w.await.expect("writer");
    }
    let lines = tokio::task::spawn_blocking(move || reader.join().expect("reader"))
        .await
        .expect("join");
    let rate = lines as f64 / t.elapsed().as_secs_f64();
    // SAFETY: kill(2) on our own unreaped child.
    #[allow(unsafe_code)]
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let _ = child.wait();
    (rate, lines)
}

fn memchr_count(b: &[u8]) -> usize {
    b.iter().filter(|&&c| c == b'\n').count()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // `cargo bench` passes --bench; a filter argument is not supported (one harness).
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();

    // Upstreams: one on a unix socket (the direct limit, and ingress's target), one on TCP
    // (egress's target).
    let up_unix = d.join("upstream.sock");
    tokio::spawn(serve(
        cc_proto::listen(&unix(&up_unix)).await.expect("listen"),
    ));
    let up_tcp = cc_proto::listen(&tcp(0)).await.expect("listen");
    let up_port = match up_tcp.local_addr().expect("addr") {
        Address::Tcp { port, .. } => port,
        _ => unreachable!(),
    };
    tokio::spawn(serve(up_tcp));

    // egress: unix → proxy → tcp; and socat on the same path.
    let eg = d.join("egress.sock");
    let egress = proxy(&[
        "egress",
        "--listen",
        &format!("unix://{}", eg.display()),
        "--target",
        &format!("tcp://127.0.0.1:{up_port}"),
    ]);
    let sx = d.join("socat-egress.sock");
    let socat_e = socat(&[
        format!("UNIX-LISTEN:{},fork,backlog=1024", sx.display()),
        format!("TCP:127.0.0.1:{up_port},nodelay"),
    ]);
    // ingress: tcp → proxy → unix; and socat on the same path.
    let ig = free_port();
    let ingress = proxy(&[
        "ingress",
        "--listen",
        &format!("tcp://127.0.0.1:{ig}"),
        "--target",
        &format!("unix://{}", up_unix.display()),
    ]);
    let si = free_port();
    let socat_i = socat(&[
        format!("TCP-LISTEN:{si},bind=127.0.0.1,fork,reuseaddr,nodelay,backlog=1024"),
        format!("UNIX-CONNECT:{}", up_unix.display()),
    ]);
    wait_for_socket(&eg);
    wait_for_socket(&sx);
    wait_for_tcp(ig);
    wait_for_tcp(si);

    println!(
        "# parent proxy benchmark ({} cores)\n",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0)
    );
    println!(
        "1 stream: {} MiB; {MANY_STREAMS} streams: {} MiB each; RTT: {PINGS} round trips of 64 bytes. Median of 3 runs.\n",
        ONE_STREAM_BYTES >> 20,
        MANY_STREAM_BYTES >> 20
    );
    let rows = vec![
        measure("direct unix socket (limit)", &unix(&up_unix), None).await,
        measure(
            "egress: unix → proxy → tcp",
            &unix(&eg),
            Some(egress.child.id()),
        )
        .await,
        measure(
            "egress path via socat",
            &unix(&sx),
            Some(socat_e.child.id()),
        )
        .await,
        measure(
            "ingress: tcp → proxy → unix",
            &tcp(ig),
            Some(ingress.child.id()),
        )
        .await,
        measure("ingress path via socat", &tcp(si), Some(socat_i.child.id())).await,
    ];
    print_rows(&rows);

    let (ok, took) = hold(&unix(&eg)).await;
    println!(
        "\n{HELD} concurrent connections through egress: {ok} answered while all were held open (opened in {:.0} ms)",
        took.as_secs_f64() * 1e3
    );
    assert_eq!(ok, HELD, "connections dropped while held");

    let (rate, lines) = log_lines_per_second(d).await;
    println!(
        "\nvsock-stdout: {lines} lines from {LOG_WRITERS} writers to a pipe: {:.0} lines/s (target ≥ 500 000)",
        rate
    );
}
