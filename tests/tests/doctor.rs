//! `ccctl doctor --local` against the real enclave server in software mode with real faults:
//! holders unreachable (stays unsealing), no log listener (events dropped), no share file
//! (failed), a fake nitro-cli printing the fixtures, PRODUCTION with ENCLAVE_DEBUG, and a
//! nitro-cli that hangs.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use cc_proto::Address;
use cc_tests::{Proc, bin, fixtures, free_port, http, wait_until};

const PCR0: &str = "5e1f00000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000";
const PCR8: &str = "7d2222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222";
const ROLE: &str = "arn:aws:iam::222222222222:role/signer";

struct Chamber {
    _dir: tempfile::TempDir,
    _enclave: Proc,
    api_port: u16,
    metrics_port: u16,
    log_sock: PathBuf,
    device: PathBuf,
    dir: PathBuf,
}

/// The enclave server with two unreachable holders; `share_file` false leaves it missing.
fn chamber(share_file: bool) -> Chamber {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_owned();
    let (api_port, metrics_port, dead) = (free_port(), free_port(), free_port());
    let shares = dir.join("shares.json");
    if share_file {
        std::fs::write(
            &shares,
            format!(
                r#"{{"version":1,"threshold":2,"check":"{}","shares":[{{"holder":"a","key_arn":"arn:aws:kms:us-east-1:1:key/a","ciphertext":"AAAA"}},{{"holder":"b","key_arn":"arn:aws:kms:us-east-1:1:key/b","ciphertext":"AAAA"}}]}}"#,
                "00".repeat(32)
            ),
        )
        .unwrap();
    }
    let cfg = dir.join("enclave.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"platform = "software"
shares_file = "{shares}"
kms_timeout_ms = 500
[listen]
api = "tcp://127.0.0.1:{api_port}"
metrics = "tcp://127.0.0.1:{metrics_port}"
[logs]
target = "unix://{log}"
[software.pcrs]
0 = "{pcr0}"
8 = "{pcr8}"
[[holder]]
name = "a"
key_arn = "arn:aws:kms:us-east-1:1:key/a"
region = "us-east-1"
endpoint = "http://127.0.0.1:{dead}"
[[holder]]
name = "b"
key_arn = "arn:aws:kms:us-east-1:1:key/b"
region = "us-east-1"
endpoint = "http://127.0.0.1:{dead}"
"#,
            shares = shares.display(),
            log = dir.join("log.sock").display(),
            pcr0 = PCR0,
            pcr8 = PCR8,
        ),
    )
    .unwrap();
    let enclave = Proc::start(
        Command::new(bin("containment-chamber-enclave"))
            .args(["serve", "--config", cfg.to_str().unwrap()])
            .env_remove("PRODUCTION")
            .env("AWS_ACCESS_KEY_ID", "x")
            .env("AWS_SECRET_ACCESS_KEY", "y")
            .env("AWS_EC2_METADATA_DISABLED", "true"),
    );
    wait_until("enclave api", Duration::from_secs(30), || {
        std::net::TcpStream::connect(("127.0.0.1", api_port)).is_ok()
    });
    let device = dir.join("nitro_enclaves");
    std::fs::write(&device, "").unwrap();
    Chamber {
        log_sock: dir.join("log.sock"),
        device,
        dir: dir.clone(),
        _dir: tmp,
        _enclave: enclave,
        api_port,
        metrics_port,
    }
}

fn fake_nitro_cli(dir: &Path, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join("nitro-cli");
    std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

fn doctor(c: &Chamber, nitro: &Path, extra: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let mut cmd = Command::new(bin("ccctl"));
    cmd.args([
        "doctor",
        "--local",
        "--api",
        &format!("tcp://127.0.0.1:{}", c.api_port),
    ])
    .args(["--metrics", &format!("tcp://127.0.0.1:{}", c.metrics_port)])
    .args([
        "--log-listener",
        &format!("unix://{}", c.log_sock.display()),
    ])
    .args([
        "--nitro-cli",
        nitro.to_str().unwrap(),
        "--device",
        c.device.to_str().unwrap(),
    ])
    .args(["--scrape-interval", "1s", "--timeout", "8s"])
    .args(extra)
    .env_remove("PRODUCTION")
    .env_remove("ENCLAVE_DEBUG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let o = cmd.output().unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
    )
}

#[test]
fn sealed_chamber_with_unreachable_holders_and_no_log_listener() {
    let c = chamber(true);
    let running = fake_nitro_cli(
        &c.dir,
        &format!(
            "cat '{}'",
            fixtures()
                .join("nitro-cli/describe-enclaves.running.json")
                .display()
        ),
    );
    // Wait until both holders were tried and found unreachable.
    wait_until("holders unreachable", Duration::from_secs(30), || {
        http(
            &Address::Tcp {
                host: "127.0.0.1".into(),
                port: c.api_port,
            },
            "GET",
            "/status",
            None,
        )
        .map(|(_, b)| {
            String::from_utf8_lossy(&b)
                .matches("\"unreachable\"")
                .count()
                == 2
        })
        .unwrap_or(false)
    });
    // Keep the enclave logging (each refused signing request is an event) during the scrapes.
    let api = Address::Tcp {
        host: "127.0.0.1".into(),
        port: c.api_port,
    };
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let s2 = stop.clone();
    let load = std::thread::spawn(move || {
        let t = Instant::now();
        while !s2.load(std::sync::atomic::Ordering::Relaxed)
            && t.elapsed() < Duration::from_secs(20)
        {
            let _ = http(
                &api,
                "POST",
                &format!("/api/v1/eth2/sign/0x{}", "11".repeat(48)),
                Some("{}"),
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    let (code, out) = doctor(&c, &running, &["-o", "json"], &[]);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    load.join().unwrap();
    assert_eq!(code, 1, "{out}");
    let got = cc_tests::finding_codes(&out);
    for want in [
        "enclave.sealed",
        "kms.unreachable",
        "logs.listener-down",
        "logs.events-dropped",
    ] {
        assert!(got.contains(want), "{want} missing from {got:?}");
    }
    for absent in [
        "nsm.device-missing",
        "enclave.not-running",
        "config.debug-in-production",
        "metrics.unreachable",
    ] {
        assert!(!got.contains(absent), "{absent} unexpected in {got:?}");
    }
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let nitro = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "enclave.nitro-cli")
        .unwrap();
    assert_eq!(nitro["status"], "passed");
    // Human output, not a terminal: no colour codes; grouped by family with fixes.
    let (_, human) = doctor(&c, &running, &["--checks", "kms,enclave"], &[]);
    assert!(!human.contains('\x1b'));
    assert!(
        human.contains("kms\n") && human.contains("fix: Check the egress forwarder"),
        "{human}"
    );
    // JUnit parses as XML.
    let (_, junit) = doctor(&c, &running, &["-o", "junit", "--checks", "kms"], &[]);
    let xml = c.dir.join("doctor.xml");
    std::fs::write(&xml, &junit).unwrap();
    let ok = Command::new("python3")
        .args(["-c", "import sys,xml.dom.minidom as m; d=m.parse(sys.argv[1]); print(len(d.getElementsByTagName('failure')))", xml.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(ok.status.success(), "{junit}");
    assert_eq!(String::from_utf8_lossy(&ok.stdout).trim(), "2", "{junit}");
}

#[test]
fn production_debug_missing_device_and_a_failed_signer() {
    let c = chamber(false);
    let debug = fake_nitro_cli(
        &c.dir,
        &format!(
            "cat '{}'",
            fixtures()
                .join("nitro-cli/describe-enclaves.debug.json")
                .display()
        ),
    );
    std::fs::remove_file(&c.device).unwrap();
    let (code, out) = doctor(
        &c,
        &debug,
        &["-o", "json", "--checks", "config,enclave,nsm"],
        &[("PRODUCTION", "true"), ("ENCLAVE_DEBUG", "1")],
    );
    assert_eq!(code, 1);
    let got = cc_tests::finding_codes(&out);
    for want in [
        "config.debug-in-production",
        "enclave.debug-mode",
        "nsm.device-missing",
        "enclave.failed",
        "config.software-in-production",
    ] {
        assert!(got.contains(want), "{want} missing from {got:?}");
    }
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let failed = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["findings"].as_array().unwrap().iter())
        .find(|f| f["code"] == "enclave.failed")
        .unwrap();
    assert!(
        failed["summary"]
            .as_str()
            .unwrap()
            .contains("cannot read share file"),
        "{failed}"
    );
    // E19 from nitro-cli maps to the device finding.
    let e19 = fake_nitro_cli(
        &c.dir,
        &format!(
            "cat '{}' >&2; exit 19",
            fixtures().join("nitro-cli/error.E19.stderr.txt").display()
        ),
    );
    let (_, out) = doctor(
        &c,
        &e19,
        &["-o", "json", "--checks", "enclave.nitro-cli"],
        &[],
    );
    assert!(
        cc_tests::finding_codes(&out).contains("nsm.device-missing"),
        "{out}"
    );
}

#[test]
fn a_hanging_nitro_cli_times_out_alone_and_fail_on_levels() {
    let c = chamber(false);
    let hang = fake_nitro_cli(&c.dir, "exec sleep 30");
    let t = Instant::now();
    let mut cmd = Command::new(bin("ccctl"));
    let o = cmd
        .args([
            "-o",
            "json",
            "doctor",
            "--local",
            "--timeout",
            "2s",
            "--checks",
            "enclave,config",
        ])
        .args([
            "--api",
            &format!("tcp://127.0.0.1:{}", c.api_port),
            "--nitro-cli",
            hang.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        t.elapsed() < Duration::from_secs(8),
        "took {:?}",
        t.elapsed()
    );
    // The hung nitro-cli was killed with the check, not left behind.
    let ps = Command::new("pgrep")
        .args(["-f", hang.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        ps.stdout.is_empty(),
        "nitro-cli left running: {}",
        String::from_utf8_lossy(&ps.stdout)
    );
    let out = String::from_utf8_lossy(&o.stdout);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let by_id = |id: &str| {
        v["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == id)
            .unwrap()
            .clone()
    };
    // The check's deadline and nitro-cli's own (the same --timeout, started a little later)
    // race when the machine is loaded: either the check timed out, or nitro-cli was stopped at
    // its deadline and said so. Both stop it alone, and both are errors.
    let nitro = by_id("enclave.nitro-cli");
    let stopped_at_its_deadline = nitro["status"] == "findings"
        && nitro["findings"][0]["code"] == "enclave.nitro-cli-error"
        && nitro["findings"][0]["summary"]
            .as_str()
            .is_some_and(|s| s.contains("did not finish within the deadline"));
    assert!(
        nitro["status"] == "timed_out" || stopped_at_its_deadline,
        "{nitro:#}"
    );
    assert_eq!(
        by_id("enclave.status")["status"],
        "findings",
        "the others still report"
    );
    assert_eq!(by_id("config.debug")["status"], "passed");
    // --fail-on: only a passing check selected → 0; unknown check → 2.
    let (code, _) = doctor(&c, &hang, &["--checks", "config", "--fail-on", "info"], &[]);
    assert_eq!(code, 0);
    let (code, _) = doctor(&c, &hang, &["--checks", "bogus"], &[]);
    assert_eq!(code, 2);
    let o = Command::new(bin("ccctl"))
        .args(["-o", "json", "doctor", "--list-checks"])
        .output()
        .unwrap();
    let list: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(list.as_array().unwrap().len() >= 6);
}

/// `ccctl doctor --local --checks egress` on a proxy config: exit code and
/// (code, endpoint) of each finding.
fn egress_findings(cfg: &Path) -> (Option<i32>, BTreeSet<(String, String)>) {
    let o = Command::new(bin("ccctl"))
        .args([
            "-o",
            "json",
            "doctor",
            "--local",
            "--checks",
            "egress",
            "--timeout",
            "5s",
        ])
        .args(["--proxy-config", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let f = v["checks"][0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["code"].as_str().unwrap().to_owned(),
                f["evidence"]["endpoint"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    (o.status.code(), f)
}

/// A TLS server on loopback (self-signed), answering handshakes until the test ends.
async fn tls_server() -> u16 {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(ck.signing_key.serialize_der().into());
    let cfg = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![ck.cert.der().clone()], key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(cfg));
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = l.accept().await else { return };
            let a = acceptor.clone();
            tokio::spawn(async move {
                let _ = a.accept(s).await;
            });
        }
    });
    port
}

/// Accepts TCP and closes at once: not TLS.
async fn plain_server() -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = l.accept().await else { return };
            drop(s);
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn egress_endpoints_listener_tcp_tls_and_allowlist() {
    let dir = tempfile::tempdir().unwrap();
    let (tls, plain, closed) = (tls_server().await, plain_server().await, free_port());
    let allow = dir.path().join("vsock-proxy.yaml");
    let all = format!(
        "allowlist:\n- {{address: 127.0.0.1, port: {tls}}}\n- {{address: 127.0.0.1, port: {plain}}}\n- {{address: 127.0.0.1, port: {closed}}}\n"
    );
    std::fs::write(&allow, &all).unwrap();
    let nitro = fake_nitro_cli(
        dir.path(),
        &format!(
            "cat '{}'",
            fixtures()
                .join("nitro-cli/run-enclave.stdout.json")
                .display()
        ),
    );
    let sock = |n: &str| dir.path().join(format!("{n}.sock"));
    let cfg = dir.path().join("run.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"nitro_cli = "{nitro}"
allowlist = "{allow}"
[logs]
listen = "unix://{logs}"
[[egress]]
name = "kms-good"
listen = "unix://{good}"
target = "tcp://127.0.0.1:{tls}"
[[egress]]
name = "kms-plain"
listen = "unix://{plain_sock}"
target = "tcp://127.0.0.1:{plain}"
[[egress]]
name = "kms-closed"
listen = "unix://{closed_sock}"
target = "tcp://127.0.0.1:{closed}"
[enclave]
eif_path = "/e.eif"
cpu_count = 2
memory_mib = 512
"#,
            nitro = nitro.display(),
            allow = allow.display(),
            logs = sock("logs").display(),
            good = sock("good").display(),
            plain_sock = sock("plain").display(),
            closed_sock = sock("closed").display(),
        ),
    )
    .unwrap();
    // Proxy not running: every forwarder is down.
    let cfg1 = cfg.clone();
    let (code, f) = tokio::task::spawn_blocking(move || egress_findings(&cfg1))
        .await
        .unwrap();
    assert_eq!(code, Some(1));
    assert_eq!(
        f.iter().filter(|(c, _)| c == "egress.proxy-down").count(),
        3,
        "{f:?}"
    );
    // Proxy running; then the allowlist loses one endpoint.
    let mut proxy = Proc::start(
        Command::new(bin("containment-chamber-enclave-proxy")).args([
            "run",
            "--config",
            cfg.to_str().unwrap(),
        ]),
    );
    proxy.wait_stdout("enclave started", Duration::from_secs(30));
    std::fs::write(&allow, format!("allowlist:\n- {{address: 127.0.0.1, port: {tls}}}\n- {{address: 127.0.0.1, port: {closed}}}\n")).unwrap();
    let cfg2 = cfg.clone();
    let (code, f) = tokio::task::spawn_blocking(move || egress_findings(&cfg2))
        .await
        .unwrap();
    assert_eq!(code, Some(1));
    let want: BTreeSet<(String, String)> = [
        ("egress.tls-failed", "kms-plain"),
        ("egress.not-allowlisted", "kms-plain"),
        ("egress.upstream-unreachable", "kms-closed"),
    ]
    .iter()
    .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
    .collect();
    assert_eq!(f, want);
    assert!(proxy.stop(Duration::from_secs(30)).success());
}

#[test]
fn pcr_family_checks_the_attested_measurements_against_each_policy() {
    let c = chamber(true);
    wait_until("first attestation", Duration::from_secs(30), || {
        http(
            &Address::Tcp {
                host: "127.0.0.1".into(),
                port: c.api_port,
            },
            "GET",
            "/status",
            None,
        )
        .map(|(_, b)| String::from_utf8_lossy(&b).contains(PCR0))
        .unwrap_or(false)
    });
    let policy = |op: &str, pcr0: &str| {
        format!(
            r#"{{"Statement":[{{"Effect":"Allow","Principal":{{"AWS":"{ROLE}"}},"Action":"kms:Decrypt","Resource":"*","Condition":{{"{op}":{{"kms:RecipientAttestation:PCR0":"{pcr0}","kms:RecipientAttestation:PCR8":"{PCR8}"}}}}}}]}}"#
        )
    };
    let files = [
        ("a", policy("StringEqualsIgnoreCase", PCR0)),
        ("b", policy("StringEqualsIgnoreCase", &"ab".repeat(48))),
        ("c", policy("StringEquals", &PCR0.to_uppercase())),
    ];
    let mut cfg = format!("principal = \"{ROLE}\"\nthreshold = 2\n");
    for (name, text) in &files {
        let p = c.dir.join(format!("{name}.json"));
        std::fs::write(&p, text).unwrap();
        cfg += &format!(
            "[[holder]]\nname = \"{name}\"\nkey_arn = \"arn:aws:kms:us-east-1:1:key/{name}\"\nregion = \"us-east-1\"\npolicy_file = \"{}\"\n",
            p.display()
        );
    }
    let cfg_path = c.dir.join("ccctl.toml");
    std::fs::write(&cfg_path, cfg).unwrap();
    let nitro = fake_nitro_cli(&c.dir, "echo '[]'");
    let (code, out) = doctor(
        &c,
        &nitro,
        &[
            "-o",
            "json",
            "--checks",
            "pcr",
            "--config",
            cfg_path.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code, 1, "{out}");
    let got = cc_tests::finding_codes(&out);
    for want in [
        "policy.threshold-unmet",
        "policy.measurement-not-allowed",
        "policy.case-sensitive-operator",
        "policy.holder-disagreement",
    ] {
        assert!(got.contains(want), "{want} missing from {got:?}");
    }
    // With two holders allowing the measurements, the threshold is met: no error.
    std::fs::write(c.dir.join("b.json"), policy("StringEqualsIgnoreCase", PCR0)).unwrap();
    let (code, out) = doctor(
        &c,
        &nitro,
        &[
            "-o",
            "json",
            "--checks",
            "pcr",
            "--config",
            cfg_path.to_str().unwrap(),
        ],
        &[],
    );
    let got = cc_tests::finding_codes(&out);
    assert!(!got.contains("policy.threshold-unmet"), "{got:?}");
    assert_eq!(
        code, 1,
        "holder c's never-matching operator is still an error"
    );
}

#[test]
fn allocator_reservations_against_the_enclave_request() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("run.toml");
    std::fs::write(
        &cfg,
        "[enclave]\neif_path = \"/e.eif\"\ncpu_count = 2\nmemory_mib = 3524\n",
    )
    .unwrap();
    let alloc = dir.path().join("allocator.yaml");
    let run = |args: &[&str]| {
        let o = Command::new(bin("ccctl"))
            .args([
                "-o",
                "json",
                "doctor",
                "--local",
                "--checks",
                "nsm.allocator",
            ])
            .args(["--allocator", alloc.to_str().unwrap()])
            .args(args)
            .output()
            .unwrap();
        (
            o.status.code(),
            cc_tests::finding_codes(&String::from_utf8_lossy(&o.stdout)),
        )
    };
    let (code, codes) = run(&[]);
    assert_eq!(code, Some(1));
    assert!(codes.contains("nsm.allocator-missing"), "{codes:?}");
    std::fs::write(&alloc, "memory_mib: [\n").unwrap();
    assert!(run(&[]).1.contains("nsm.allocator-invalid"));
    std::fs::write(
        &alloc,
        "---\n# Enclave configuration file.\nmemory_mib: 2048\ncpu_pool: 3\n",
    )
    .unwrap();
    let (code, codes) = run(&["--proxy-config", cfg.to_str().unwrap()]);
    assert_eq!(code, Some(1));
    assert_eq!(
        codes,
        BTreeSet::from([
            "enclave.memory-over-allocator".to_owned(),
            "enclave.cpus-over-allocator".to_owned()
        ])
    );
    std::fs::write(&alloc, "memory_mib: 4096\ncpu_count: 2\n").unwrap();
    let (code, codes) = run(&["--proxy-config", cfg.to_str().unwrap()]);
    assert_eq!((code, codes.len()), (Some(0), 0), "{codes:?}");
}
