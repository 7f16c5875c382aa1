//! Signing throughput on one core against the limit, blst's own `sign` on the same key and
//! message: (1) blst alone, (2) the chamber's signer (key lookup under a read lock), (3) the
//! whole HTTP path (axum on a unix socket, server runtime with one worker thread, one
//! keep-alive client connection). Run: `cargo bench -p containment-chamber-enclave --bench signing`.

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cc_proto::status::{Platform, SealState};
use containment_chamber_enclave::chamber::Chamber;
use containment_chamber_enclave::keys::{ETH2_DST, ValidatorKey};

const WINDOW: Duration = Duration::from_secs(3);

fn rate(mut f: impl FnMut(u64)) -> f64 {
    // Warm up, then count for a fixed window.
    for i in 0..200 {
        f(i);
    }
    let t = Instant::now();
    let mut n = 0u64;
    while t.elapsed() < WINDOW {
        for _ in 0..50 {
            f(n);
            n += 1;
        }
    }
    n as f64 / t.elapsed().as_secs_f64()
}

fn main() {
    let key = ValidatorKey::generate().expect("key");
    let pubkey = key.pubkey;
    let mut ikm = [0u8; 32];
    ikm[0] = 1;
    let sk = blst::min_pk::SecretKey::key_gen(&ikm, &[]).expect("blst key");

    let blst_rate = rate(|i| {
        let mut msg = [0u8; 32];
        msg[..8].copy_from_slice(&i.to_le_bytes());
        std::hint::black_box(sk.sign(&msg, ETH2_DST, &[]));
    });

    let chamber = Arc::new(Chamber::new(Platform::Software, 2, &[], None, None));
    chamber.install_keys(vec![key]);
    chamber.set_state(SealState::Unsealed, None);
    let signer_rate = rate(|i| {
        let mut msg = [0u8; 32];
        msg[..8].copy_from_slice(&i.to_le_bytes());
        std::hint::black_box(chamber.sign(&pubkey, &msg));
    });

    // HTTP: server on its own one-thread runtime.
    let dir = tempfile::tempdir().expect("tempdir");
    let sock = dir.path().join("api.sock");
    let addr = cc_proto::Address::Unix(sock.clone());
    let router = containment_chamber_enclave::api::router(chamber.clone());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    rt.spawn(async move {
        let l = cc_proto::listen(&addr).await.expect("listen");
        let _ = axum::serve(l, router).await;
    });
    while std::os::unix::net::UnixStream::connect(&sock).is_err() {
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut conn = std::os::unix::net::UnixStream::connect(&sock).expect("connect");
    let path = format!("/api/v1/eth2/sign/0x{}", hex::encode(pubkey));
    let mut buf = vec![0u8; 8192];
    let http_rate = rate(|i| {
        let body = format!(r#"{{"signingRoot":"0x{:064x}"}}"#, i);
        let req = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        conn.write_all(req.as_bytes()).expect("write");
        // Read one response: headers, then Content-Length bytes.
        let mut got = Vec::new();
        loop {
            let n = conn.read(&mut buf).expect("read");
            assert!(n > 0, "server closed");
            got.extend_from_slice(&buf[..n]);
            if let Some(h) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&got[..h]).to_ascii_lowercase();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                if got.len() >= h + 4 + len {
                    assert!(head.starts_with("http/1.1 200"), "{head}");
                    break;
                }
            }
        }
    });

    println!("Signing a 32-byte signing root with one BLS12-381 key, {WINDOW:?} per row.\n");
    println!("| path | signatures/s | % of blst |");
    println!("|---|---:|---:|");
    for (name, r) in [
        ("blst `sign` alone (limit)", blst_rate),
        ("chamber signer (lookup + sign)", signer_rate),
        (
            "HTTP POST /api/v1/eth2/sign, 1 server thread, 1 connection",
            http_rate,
        ),
    ] {
        println!("| {name} | {r:.0} | {:.0} % |", 100.0 * r / blst_rate);
    }
}
