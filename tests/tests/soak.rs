//! Issue 16 soak: idle floods, slowloris, connection churn and half-closed requests against the
//! demo's ingress and API (the real processes), while a normal client keeps `/upcheck` and
//! signing under a latency bound; afterwards the ingress's and the enclave server's resident
//! memory and open descriptors are back near their baseline. Loopback only; bounded: 20 s of
//! load, every loop capped in count and time (about 45 s in all). Runs in `scripts/test`.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cc_tests::{RunningDemo, pids_matching, rss_kib_and_fds};

const LOAD: Duration = Duration::from_secs(20);
const IDLE_FLOOD: usize = 100;
const SLOWLORIS: usize = 40;
/// Most the normal client's request may take while under load.
const LATENCY_BOUND: Duration = Duration::from_secs(2);

fn api(demo: &RunningDemo) -> (cc_proto::Address, SocketAddr) {
    let a: cc_proto::Address = demo.var("CCCTL_API").parse().unwrap();
    let sa = match &a {
        cc_proto::Address::Tcp { host, port } => SocketAddr::new(host.parse().unwrap(), *port),
        other => panic!("the demo's API is not TCP: {other}"),
    };
    (a, sa)
}

fn one_pid(needles: &[&str]) -> i32 {
    let p = pids_matching(needles);
    assert_eq!(p.len(), 1, "{needles:?}: {p:?}");
    p[0]
}

struct Sample {
    ingress: (u64, usize),
    enclave: (u64, usize),
}

fn sample(ingress: i32, enclave: i32) -> Sample {
    Sample {
        ingress: rss_kib_and_fds(ingress).expect("ingress alive"),
        enclave: rss_kib_and_fds(enclave).expect("enclave alive"),
    }
}

#[test]
fn soak_floods_slowloris_churn_and_half_closes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    let demo = RunningDemo::start_with_env(
        &dir,
        &[],
        &[
            ("CC_LISTEN_HEADER_TIMEOUT_MS", "2000"),
            ("CC_PROXY_IDLE_TIMEOUT", "5s"),
        ],
    );
    let (api, addr) = api(&demo);
    let d = dir.display().to_string();
    let ingress = one_pid(&[&d, "containment-chamber-enclave-proxy", "--name api"]);
    let enclave = one_pid(&[&d, "containment-chamber-enclave serve"]);

    // Unsealed, warmed up, then the baseline.
    let t = Instant::now();
    while !matches!(
        cc_tests::http(&api, "GET", "/healthcheck", None),
        Ok((200, _))
    ) {
        assert!(t.elapsed() < Duration::from_secs(60), "never unsealed");
        std::thread::sleep(Duration::from_millis(200));
    }
    let (_, keys) = cc_tests::http(&api, "GET", "/api/v1/eth2/publicKeys", None).unwrap();
    let pubkey = serde_json::from_slice::<Vec<String>>(&keys).unwrap()[0].clone();
    let sign = |i: usize| {
        let body = format!(r#"{{"type":"BLOCK_V2","signingRoot":"0x{i:064x}"}}"#);
        cc_tests::http(
            &api,
            "POST",
            &format!("/api/v1/eth2/sign/{pubkey}"),
            Some(&body),
        )
    };
    for i in 0..20 {
        assert_eq!(sign(i).unwrap().0, 200);
    }
    std::thread::sleep(Duration::from_millis(500));
    let base = sample(ingress, enclave);

    let stop = Arc::new(AtomicBool::new(false));
    let deadline = Instant::now() + LOAD;
    let mut attackers = Vec::new();
    // Idle flood: silent connections, reopened when the server closes them.
    {
        let stop = stop.clone();
        attackers.push(std::thread::spawn(move || {
            let mut conns: Vec<TcpStream> = Vec::new();
            let mut opened = 0usize;
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline && opened < 5_000 {
                conns.retain(|c| {
                    c.set_nonblocking(true).ok();
                    let mut b = [0u8; 1];
                    !matches!((&*c).read(&mut b), Ok(0))
                });
                while conns.len() < IDLE_FLOOD && opened < 5_000 {
                    if let Ok(c) = TcpStream::connect(addr) {
                        conns.push(c);
                    }
                    opened += 1;
                }
                std::thread::sleep(Duration::from_millis(250));
            }
            opened
        }));
    }
    // Slowloris: a header byte every 500 ms, reconnecting when closed.
    {
        let stop = stop.clone();
        attackers.push(std::thread::spawn(move || {
            let mut conns: Vec<TcpStream> = Vec::new();
            let mut opened = 0usize;
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline && opened < 5_000 {
                conns.retain_mut(|c| c.write_all(b"a").is_ok());
                while conns.len() < SLOWLORIS && opened < 5_000 {
                    if let Ok(mut c) = TcpStream::connect(addr) {
                        let _ = c.write_all(b"POST /api/v1/eth2/sign/0x HTTP/1.1\r\nX-Slow: ");
                        conns.push(c);
                    }
                    opened += 1;
                }
                std::thread::sleep(Duration::from_millis(500));
            }
            opened
        }));
    }
    // Churn: connect, send half a request, drop.
    {
        let stop = stop.clone();
        attackers.push(std::thread::spawn(move || {
            let mut n = 0usize;
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline && n < 20_000 {
                if let Ok(mut c) = TcpStream::connect(addr) {
                    let _ = c.write_all(b"GET /status HTTP/1.1\r\nHo");
                }
                n += 1;
                std::thread::sleep(Duration::from_millis(2));
            }
            n
        }));
    }
    // Half-closes: whole request, write side shut, the answer must come in full.
    let half_lost = Arc::new(AtomicUsize::new(0));
    {
        let (stop, lost) = (stop.clone(), half_lost.clone());
        attackers.push(std::thread::spawn(move || {
            let mut n = 0usize;
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline && n < 5_000 {
                let Ok(mut c) = TcpStream::connect(addr) else {
                    continue;
                };
                c.set_read_timeout(Some(Duration::from_secs(10))).ok();
                let _ =
                    c.write_all(b"GET /status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
                let _ = c.shutdown(Shutdown::Write);
                let mut r = Vec::new();
                let _ = c.read_to_end(&mut r);
                if !(r.starts_with(b"HTTP/1.1 200") && r.ends_with(b"}")) {
                    lost.fetch_add(1, Ordering::Relaxed);
                }
                n += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            n
        }));
    }

    // The normal client: /upcheck and a signature every 200 ms, each under the bound.
    let mut worst = Duration::ZERO;
    let mut peak = sample(ingress, enclave);
    let mut i = 1_000;
    while Instant::now() < deadline {
        let t = Instant::now();
        let (code, _) = cc_tests::http(&api, "GET", "/upcheck", None).expect("/upcheck");
        assert_eq!(code, 200, "/upcheck under load");
        let (code, body) = sign(i).expect("sign");
        assert_eq!(
            code,
            200,
            "sign under load: {}",
            String::from_utf8_lossy(&body)
        );
        worst = worst.max(t.elapsed());
        i += 1;
        let s = sample(ingress, enclave);
        peak.ingress = (
            peak.ingress.0.max(s.ingress.0),
            peak.ingress.1.max(s.ingress.1),
        );
        peak.enclave = (
            peak.enclave.0.max(s.enclave.0),
            peak.enclave.1.max(s.enclave.1),
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    stop.store(true, Ordering::Relaxed);
    let counts: Vec<usize> = attackers.into_iter().map(|a| a.join().unwrap()).collect();
    assert!(
        worst < LATENCY_BOUND,
        "normal client took {worst:?} (bound {LATENCY_BOUND:?})"
    );
    assert_eq!(
        half_lost.load(Ordering::Relaxed),
        0,
        "half-closed requests lost their answer"
    );

    // Back near the baseline: descriptors within a few, memory within 16 MiB + 25 %.
    let near = |now: (u64, usize), base: (u64, usize)| {
        now.1 <= base.1 + 4 && now.0 <= base.0 + base.0 / 4 + 16 * 1024
    };
    let t = Instant::now();
    let after = loop {
        let s = sample(ingress, enclave);
        if (near(s.ingress, base.ingress) && near(s.enclave, base.enclave))
            || t.elapsed() > Duration::from_secs(15)
        {
            break s;
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    eprintln!(
        "soak: attackers opened {counts:?} (idle, slowloris, churn, half-close); worst normal \
         request {worst:?}; ingress RSS/fds base {:?} peak {:?} after {:?}; enclave base {:?} \
         peak {:?} after {:?}",
        base.ingress, peak.ingress, after.ingress, base.enclave, peak.enclave, after.enclave
    );
    assert!(
        near(after.ingress, base.ingress),
        "ingress not back near baseline: {:?} vs {:?}",
        after.ingress,
        base.ingress
    );
    assert!(
        near(after.enclave, base.enclave),
        "enclave not back near baseline: {:?} vs {:?}",
        after.enclave,
        base.enclave
    );
    drop(demo);
}
