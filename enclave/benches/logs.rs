//! Cost of emitting one log event on the request thread, with the parent's listener up,
//! down, and slow; and the accounting `delivered + dropped == emitted`, exactly, over 200 000
//! events in each case. Unix sockets only. Run: `cargo bench -p containment-chamber-enclave --bench logs`.

use std::io::Read;
use std::path::Path;
use std::time::{Duration, Instant};

use cc_proto::Address;
use containment_chamber_enclave::log_forward;

const EVENTS: usize = 200_000;

enum Listener {
    Up,
    Down,
    /// Reads 4 KiB, then sleeps 1 ms: about 4 MB/s, far below the emit rate.
    Slow,
}

fn listen(path: &Path, kind: &Listener) -> Option<std::thread::JoinHandle<u64>> {
    if matches!(kind, Listener::Down) {
        return None;
    }
    let l = std::os::unix::net::UnixListener::bind(path).expect("bind");
    let slow = matches!(kind, Listener::Slow);
    Some(std::thread::spawn(move || {
        let (mut s, _) = l.accept().expect("accept");
        let mut buf = vec![0u8; if slow { 4096 } else { 1 << 20 }];
        let mut lines = 0u64;
        loop {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => return lines,
                Ok(n) => lines += buf[..n].iter().filter(|b| **b == b'\n').count() as u64,
            }
            if slow {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p) as usize]
}

fn run(name: &str, kind: Listener) {
    let dir = tempfile::tempdir().expect("tempdir");
    let sock = dir.path().join("log.sock");
    let reader = listen(&sock, &kind);
    let (nb, sink) = log_forward::pipeline(Address::Unix(sock.clone()), 16_384).expect("pipeline");
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(nb)
        .finish();
    let mut costs = Vec::with_capacity(EVENTS);
    tracing::subscriber::with_default(subscriber, || {
        for i in 0..EVENTS {
            let t = Instant::now();
            tracing::info!(
                pubkey = "0xa1b2c3d4e5f6",
                status = 200,
                duration_us = i,
                "sign"
            );
            costs.push(t.elapsed().as_secs_f64() * 1e9);
        }
    });
    let (delivered, dropped) = sink.finish(Duration::from_secs(30));
    let received = reader.map(|r| {
        // The sender closed when the pipeline finished; the reader sees EOF.
        r.join().expect("reader")
    });
    costs.sort_by(f64::total_cmp);
    let exact = delivered + dropped == EVENTS as u64;
    println!(
        "| {name} | {:.0} | {:.0} | {:.0} | {delivered} | {dropped} | {} | {} |",
        percentile(&costs, 0.5),
        percentile(&costs, 0.99),
        percentile(&costs, 0.999),
        received
            .map(|r| r.to_string())
            .unwrap_or_else(|| "–".into()),
        if exact { "yes" } else { "NO" },
    );
    assert!(
        exact,
        "{name}: delivered {delivered} + dropped {dropped} != emitted {EVENTS}"
    );
    if let Some(r) = received {
        assert_eq!(
            r, delivered,
            "{name}: listener saw {r} lines, sender counted {delivered}"
        );
    }
}

fn main() {
    println!(
        "Emitting {EVENTS} events per case through the fmt layer and the lossy 16 384-event buffer.\n"
    );
    println!(
        "| listener | emit p50 ns | emit p99 ns | emit p99.9 ns | delivered | dropped | lines received | delivered + dropped = emitted |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---|");
    run("up", Listener::Up);
    run("down", Listener::Down);
    run("slow (4 KiB per ms)", Listener::Slow);
}
