//! Benchmark: resident memory of the ingress forwarder (tcp → proxy → unix) per 1 000 idle
//! connections (issue 16 #4: 256 KiB buffers per direction made bursts cost ~690 MB that was
//! never returned). Rows:
//!
//! - silent: 1 000 connections opened, nothing sent;
//! - after a burst: 1 000 connections that each moved a 64-byte request and a 256 KiB answer,
//!   then stay open and idle;
//! - closed: the same 1 000 closed again (what the process keeps).
//!
//! Run with `scripts/bench` (release binaries); `CC_BENCH_PROXY=/path/to/binary` measures
//! another build (e.g. the one before a change). Loopback and unix sockets only; bounded.

use std::time::{Duration, Instant};

use cc_proto::Address;
use cc_tests::{Proc, bin, free_port, rss_kib_and_fds, wait_for_socket, wait_for_tcp};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CONNS: usize = 1_000;
const BURST: usize = 256 * 1024;

/// The upstream: per connection, read a 64-byte request, answer `BURST` bytes, then hold the
/// connection until the client closes it.
async fn upstream(listener: cc_proto::Listener) {
    loop {
        let Ok((mut s, _)) = listener.accept().await else {
            return;
        };
        tokio::spawn(async move {
            let mut req = [0u8; 64];
            if s.read_exact(&mut req).await.is_err() {
                return;
            }
            if s.write_all(&vec![7u8; BURST]).await.is_err() {
                return;
            }
            let mut b = [0u8; 64];
            while matches!(s.read(&mut b).await, Ok(n) if n > 0) {}
        });
    }
}

fn rss_mib(pid: i32) -> f64 {
    rss_kib_and_fds(pid).map_or(f64::NAN, |(k, _)| k as f64 / 1024.0)
}

async fn settle() {
    tokio::time::sleep(Duration::from_millis(1500)).await;
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("up.sock");
    let l = cc_proto::listen(&Address::Unix(sock.clone()))
        .await
        .unwrap();
    tokio::spawn(upstream(l));
    wait_for_socket(&sock);
    let proxy_bin = std::env::var_os("CC_BENCH_PROXY")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| bin("containment-chamber-enclave-proxy"));
    let port = free_port();
    let p = Proc::start(
        std::process::Command::new(&proxy_bin)
            .env("RUST_LOG", "warn")
            .args(["ingress", "--listen", &format!("tcp://127.0.0.1:{port}")])
            .arg("--target")
            .arg(format!("unix://{}", sock.display())),
    );
    wait_for_tcp(port);
    settle().await;
    let pid = p.pid();
    let base = rss_mib(pid);
    let addr = Address::Tcp {
        host: "127.0.0.1".into(),
        port,
    };

    let t = Instant::now();
    let mut silent = Vec::with_capacity(CONNS);
    for _ in 0..CONNS {
        silent.push(cc_proto::connect(&addr).await.expect("connect"));
    }
    settle().await;
    let silent_rss = rss_mib(pid);
    drop(silent);
    settle().await;

    let mut busy = Vec::with_capacity(CONNS);
    for _ in 0..CONNS {
        let mut s = cc_proto::connect(&addr).await.expect("connect");
        s.write_all(&[1u8; 64]).await.expect("request");
        let mut got = vec![0u8; BURST];
        s.read_exact(&mut got).await.expect("answer");
        busy.push(s);
    }
    settle().await;
    let burst_rss = rss_mib(pid);
    drop(busy);
    settle().await;
    let closed_rss = rss_mib(pid);

    println!(
        "\ningress RSS per {CONNS} idle connections ({}; {:.1} s):\n",
        proxy_bin.display(),
        t.elapsed().as_secs_f64()
    );
    println!("| state | proxy RSS MiB | added per 1 000 connections MiB |");
    println!("|---|---:|---:|");
    println!("| baseline (listening) | {base:.1} | – |");
    println!(
        "| {CONNS} silent connections | {silent_rss:.1} | {:.1} |",
        silent_rss - base
    );
    println!(
        "| {CONNS} idle after a 256 KiB answer each | {burst_rss:.1} | {:.1} |",
        burst_rss - base
    );
    println!(
        "| all closed again | {closed_rss:.1} | {:.1} |",
        closed_rss - base
    );
}
