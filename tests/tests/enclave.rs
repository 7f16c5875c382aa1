//! End-to-end tests of the enclave server: the real `containment-chamber-enclave` and
//! `containment-chamber-enclave-proxy` binaries, a real `moto_server` as KMS, unix sockets and
//! loopback only.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use cc_proto::Address;
use cc_proto::status::{HolderOutcome, SealState, Status};
use cc_tests::{
    AWS_TEST_ENV, Moto, Proc, bin, free_port, http, metric, wait_for_socket, wait_until,
};

const T: Duration = Duration::from_secs(60);

/// One chamber at a time: each test runs moto, the enclave and sometimes the proxy, and on two
/// cores parallel chambers starve each other's KMS calls into timeouts.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}
const ENCLAVE: &str = "containment-chamber-enclave";
const PROXY: &str = "containment-chamber-enclave-proxy";

/// Create one KMS key per holder in moto; returns their ARNs.
fn create_keys(moto: &Moto, n: usize) -> Vec<String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = kms(moto).await;
        let mut arns = Vec::new();
        for i in 0..n {
            let k = client
                .create_key()
                .description(format!("holder {i}"))
                .send()
                .await
                .unwrap();
            arns.push(k.key_metadata().unwrap().arn().unwrap().to_owned());
        }
        arns
    })
}

async fn kms(moto: &Moto) -> aws_sdk_kms::Client {
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_kms::config::Credentials::new(
            "testing", "testing", None, None, "tests",
        ))
        .endpoint_url(moto.endpoint())
        .load()
        .await;
    aws_sdk_kms::Client::new(&sdk)
}

/// Flip a byte in one holder's share ciphertext: KMS (moto) answers InvalidCiphertextException.
/// (moto enforces neither DisableKey nor key policies on Decrypt, so a damaged ciphertext is
/// the real KMS failure it can produce.)
fn damage_share(s: &Setup, holder: &str) {
    use base64::Engine as _;
    let path = s.dir.path().join("shares.json");
    let mut f: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    for share in f["shares"].as_array_mut().unwrap() {
        if share["holder"] == holder {
            let b64 = base64::engine::general_purpose::STANDARD;
            let mut ct = b64.decode(share["ciphertext"].as_str().unwrap()).unwrap();
            let n = ct.len();
            ct[n - 5] ^= 1;
            share["ciphertext"] = serde_json::Value::String(b64.encode(ct));
        }
    }
    std::fs::write(&path, serde_json::to_string(&f).unwrap()).unwrap();
}

struct Setup {
    dir: tempfile::TempDir,
    config: PathBuf,
    api: Address,
    metrics_port: u16,
    log_sock: PathBuf,
    pubkeys: Vec<String>,
}

fn enclave_cmd(args: &[&str]) -> Command {
    let mut c = Command::new(bin(ENCLAVE));
    c.args(args).env_remove("PRODUCTION");
    for (k, v) in AWS_TEST_ENV {
        c.env(k, v);
    }
    c
}

/// Three holders on moto; `endpoints` lets a test point some holders elsewhere.
fn setup(moto: &Moto, extra: &str, endpoints: &[Option<String>; 3]) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let arns = create_keys(moto, 3);
    let api_sock = dir.path().join("api.sock");
    let log_sock = dir.path().join("log.sock");
    let metrics_port = free_port();
    let mut holders = String::new();
    for (i, name) in ["alice", "bob", "carol"].iter().enumerate() {
        let ep = endpoints[i].clone().unwrap_or_else(|| moto.endpoint());
        holders.push_str(&format!(
            "[[holder]]\nname = \"{name}\"\nkey_arn = \"{}\"\nregion = \"us-east-1\"\nendpoint = \"{ep}\"\n",
            arns[i]
        ));
    }
    let config = dir.path().join("enclave.toml");
    std::fs::write(
        &config,
        format!(
            r#"platform = "software"
threshold = 2
shares_file = "{shares}"
keystore_file = "{keystore}"
kms_timeout_ms = 10000
{extra}
[listen]
api = "unix://{api}"
metrics = "tcp://127.0.0.1:{metrics_port}"
[logs]
target = "unix://{log}"
level = "info"
[software]
root_dir = "{root}"
[software.pcrs]
0 = "{pcr0}"
8 = "{pcr8}"
{holders}"#,
            shares = dir.path().join("shares.json").display(),
            keystore = dir.path().join("keystore.json").display(),
            api = api_sock.display(),
            log = log_sock.display(),
            root = dir.path().join("root").display(),
            pcr0 = "ab".repeat(48),
            pcr8 = "cd".repeat(48),
        ),
    )
    .unwrap();
    // init against the real moto (always with every holder reachable).
    let init_cfg = dir.path().join("init.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    for ep in endpoints.iter().flatten() {
        text = text.replace(ep, &moto.endpoint());
    }
    std::fs::write(&init_cfg, text).unwrap();
    let mut p = Proc::start(&mut enclave_cmd(&[
        "init",
        "--config",
        init_cfg.to_str().unwrap(),
        "--validator-keys",
        "2",
    ]));
    let status = p.wait(T);
    assert!(status.success(), "init failed: {}", p.stderr());
    let report: serde_json::Value = serde_json::from_str(&p.stdout()).unwrap();
    let pubkeys: Vec<String> = report["validator_public_keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(pubkeys.len(), 2);
    // init prints public keys only: nothing that looks like the keystore's ciphertexts.
    let ks = std::fs::read_to_string(dir.path().join("keystore.json")).unwrap();
    let ks: serde_json::Value = serde_json::from_str(&ks).unwrap();
    assert!(
        !p.stdout()
            .contains(ks["keys"][0]["ciphertext"].as_str().unwrap())
    );
    Setup {
        api: Address::Unix(api_sock),
        dir,
        config,
        metrics_port,
        log_sock,
        pubkeys,
    }
}

fn status(s: &Setup) -> Status {
    let (code, body) = http(&s.api, "GET", "/status", None).unwrap();
    assert_eq!(code, 200);
    serde_json::from_slice(&body).unwrap()
}

fn wait_state(s: &Setup, want: SealState) -> Status {
    let start = Instant::now();
    loop {
        if let Ok((200, body)) = http(&s.api, "GET", "/status", None) {
            let st: Status = serde_json::from_slice(&body).unwrap();
            if st.state == want {
                return st;
            }
            assert!(start.elapsed() < T, "state stayed {:?}: {st:#?}", st.state);
        }
        assert!(start.elapsed() < T, "no /status within {T:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn start_enclave(s: &Setup) -> Proc {
    let p = Proc::start(&mut enclave_cmd(&[
        "serve",
        "--config",
        s.config.to_str().unwrap(),
    ]));
    wait_until("enclave api socket", T, || {
        let Address::Unix(p) = &s.api else {
            unreachable!()
        };
        std::os::unix::net::UnixStream::connect(p).is_ok()
    });
    p
}

fn start_log_listener(sock: &Path) -> Proc {
    let p = Proc::start(Command::new(bin(PROXY)).args([
        "vsock-stdout",
        "--listen",
        &format!("unix://{}", sock.display()),
    ]));
    wait_for_socket(sock);
    p
}

fn sign(s: &Setup, pubkey: &str, root: &[u8; 32]) -> (u16, serde_json::Value) {
    let body = format!(
        r#"{{"type":"BLOCK_V2","signingRoot":"0x{}"}}"#,
        hex::encode(root)
    );
    let (code, resp) = http(
        &s.api,
        "POST",
        &format!("/api/v1/eth2/sign/{pubkey}"),
        Some(&body),
    )
    .unwrap();
    (
        code,
        serde_json::from_slice(&resp).unwrap_or(serde_json::Value::Null),
    )
}

fn dropped(s: &Setup) -> f64 {
    let m = cc_tests::http_get(s.metrics_port, "/metrics").unwrap();
    metric(&m, "containment_enclave_log_events_dropped_total").unwrap()
}

#[test]
fn unseals_from_moto_signs_and_forwards_logs_through_outages() {
    let _serial = serial();
    let moto = Moto::start();
    let s = setup(&moto, "", &[None, None, None]);
    let mut logs = start_log_listener(&s.log_sock);
    let mut enclave = start_enclave(&s);

    // Before unsealing completes signing is refused; it turns healthy.
    let st = wait_state(&s, SealState::Unsealed);
    assert!(st.decrypted() >= 2, "{st:#?}");
    assert_eq!(http(&s.api, "GET", "/healthcheck", None).unwrap().0, 200);
    assert_eq!(http(&s.api, "GET", "/upcheck", None).unwrap().0, 200);
    let att = st.attestation.expect("attestation summary");
    assert_eq!(att.pcrs["PCR0"], "ab".repeat(48));
    assert!(!att.debug_mode);
    assert_eq!(st.validator_keys, 2);
    // /metrics says the same measurements (a Prometheus-backed fleet view judges them) and
    // the threshold.
    let m = cc_tests::http_get(s.metrics_port, "/metrics").unwrap();
    let info = format!(
        "containment_enclave_measurement_info{{pcr0=\"{}\",pcr8=\"{}\"}} 1",
        att.pcrs["PCR0"],
        att.pcrs.get("PCR8").map_or("", String::as_str)
    );
    assert!(m.contains(&info), "{info}\n{m}");
    assert_eq!(
        metric(&m, "containment_signer_threshold"),
        Some(f64::from(st.threshold))
    );

    // Sign, and verify with the public key init printed.
    let root = [7u8; 32];
    let (code, body) = sign(&s, &s.pubkeys[0], &root);
    assert_eq!(code, 200, "{body}");
    let sig = hex::decode(body["signature"].as_str().unwrap().trim_start_matches("0x")).unwrap();
    let pk = hex::decode(s.pubkeys[0].trim_start_matches("0x")).unwrap();
    assert!(containment_chamber_enclave::keys::verify(&pk, &root, &sig));
    assert!(!containment_chamber_enclave::keys::verify(
        &pk, &[8u8; 32], &sig
    ));
    let (code, keys) = http(&s.api, "GET", "/api/v1/eth2/publicKeys", None).unwrap();
    assert_eq!(code, 200);
    let mut listed: Vec<String> = serde_json::from_slice(&keys).unwrap();
    listed.sort();
    let mut want = s.pubkeys.clone();
    want.sort();
    assert_eq!(listed, want);

    // The parent's listener received the enclave's log lines.
    logs.wait_stdout("enclave server listening", T);
    logs.wait_stdout("state=\"unsealed\"", T);
    logs.wait_stdout(": sign", T);
    let before = dropped(&s);

    // Kill the log listener: requests are still served, the drop counter rises.
    logs.signal(libc::SIGKILL);
    logs.wait(T);
    for i in 0..20u8 {
        let (code, _) = sign(&s, &s.pubkeys[1], &[i; 32]);
        assert_eq!(code, 200);
    }
    wait_until("drop counter to rise", T, || dropped(&s) > before);
    let st = status(&s);
    assert!(!st.log_forwarding.connected);
    assert!(st.log_forwarding.dropped_total > 0);

    // Restart it: logs resume within 5 s.
    let restarted = start_log_listener(&s.log_sock);
    let t0 = Instant::now();
    let mut n = 100u8;
    while !restarted.stdout().contains(": sign") {
        assert!(
            t0.elapsed() < Duration::from_millis(5500),
            "logs did not resume within 5 s"
        );
        sign(&s, &s.pubkeys[1], &[n; 32]);
        n = n.wrapping_add(1);
        std::thread::sleep(Duration::from_millis(50));
    }

    // SIGTERM: the last events are flushed to the listener.
    let status = enclave.stop(T);
    assert!(status.success(), "{}", enclave.stderr());
    restarted.wait_stdout("shutting down", T);
    restarted.wait_stdout(": stopped", T);
}

#[test]
fn one_failing_holder_still_unseals_and_shows_its_kms_error_code() {
    let _serial = serial();
    let moto = Moto::start();
    let s = setup(&moto, "", &[None, None, None]);
    damage_share(&s, "bob");
    let _enclave = start_enclave(&s);
    wait_state(&s, SealState::Unsealed);
    // Calls still in flight at unsealing finish and are recorded too.
    let start = Instant::now();
    let st = loop {
        let st = status(&s);
        if st
            .holders
            .iter()
            .all(|h| h.outcome != HolderOutcome::Pending)
        {
            break st;
        }
        assert!(start.elapsed() < T, "{st:#?}");
        std::thread::sleep(Duration::from_millis(50));
    };
    let bob = st.holders.iter().find(|h| h.name == "bob").unwrap();
    assert_eq!(bob.outcome, HolderOutcome::Error, "{bob:#?}");
    assert_eq!(
        bob.error_code.as_deref(),
        Some("InvalidCiphertextException"),
        "{bob:#?}"
    );
    assert_eq!(st.state, SealState::Unsealed);
    assert_eq!(st.decrypted(), 2);
    let m = cc_tests::http_get(s.metrics_port, "/metrics").unwrap();
    assert_eq!(
        metric(&m, "containment_signer_state{state=\"unsealed\"}"),
        Some(1.0)
    );
    assert_eq!(metric(&m, "containment_healthy"), Some(1.0));
}

#[test]
fn two_unreachable_holders_keep_it_unsealing_and_say_which() {
    let _serial = serial();
    let moto = Moto::start();
    let dead = format!("http://127.0.0.1:{}", free_port());
    let s = setup(&moto, "", &[None, Some(dead.clone()), Some(dead)]);
    let _enclave = start_enclave(&s);
    let start = Instant::now();
    let st = loop {
        let st = status(&s);
        let unreachable = st
            .holders
            .iter()
            .filter(|h| h.outcome == HolderOutcome::Unreachable)
            .count();
        if unreachable == 2 && st.reason.as_deref().is_some_and(|r| r.contains("retrying")) {
            break st;
        }
        assert!(start.elapsed() < T, "{st:#?}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(st.state, SealState::Unsealing);
    let reason = st.reason.unwrap();
    assert!(reason.contains("1 of 2 shares"), "{reason}");
    // It says how long it has been at it (issue 17).
    assert!(reason.contains("attempt"), "{reason}");
    assert!(
        reason.contains("bob (unreachable)") && reason.contains("carol (unreachable)"),
        "{reason}"
    );
    let (code, body) = http(&s.api, "GET", "/healthcheck", None).unwrap();
    assert_eq!(code, 503);
    assert!(String::from_utf8_lossy(&body).contains("unsealing"));
    let (code, _) = sign(&s, &s.pubkeys[0], &[1; 32]);
    assert_eq!(code, 503);
}

#[test]
fn corrupted_share_file_fails_with_a_clear_reason() {
    let _serial = serial();
    let moto = Moto::start();
    let s = setup(&moto, "", &[None, None, None]);
    let shares = s.dir.path().join("shares.json");
    let text = std::fs::read_to_string(&shares).unwrap();
    std::fs::write(&shares, &text[..text.len() / 2]).unwrap();
    let _enclave = start_enclave(&s);
    let st = wait_state(&s, SealState::Failed);
    let reason = st.reason.unwrap();
    assert!(
        reason.contains("is corrupted or not a share file"),
        "{reason}"
    );
    assert!(reason.contains("shares.json"), "{reason}");
    let m = cc_tests::http_get(s.metrics_port, "/metrics").unwrap();
    assert_eq!(
        metric(&m, "containment_signer_state{state=\"failed\"}"),
        Some(1.0)
    );
}

#[test]
fn production_refuses_the_software_platform() {
    let _serial = serial();
    let moto = Moto::start();
    let s = setup(&moto, "", &[None, None, None]);
    let mut p = Proc::start(
        enclave_cmd(&["serve", "--config", s.config.to_str().unwrap()]).env("PRODUCTION", "true"),
    );
    assert_eq!(p.wait(T).code(), Some(2));
    assert!(
        p.stderr()
            .contains("platform 'software' is refused when PRODUCTION=true"),
        "{}",
        p.stderr()
    );
}

#[test]
fn recipient_mode_refuses_a_plaintext_answer() {
    // moto ignores Recipient and answers with Plaintext: exactly the answer Nitro mode must
    // refuse, because the share would have crossed the parent in clear.
    let _serial = serial();
    let moto = Moto::start();
    let s = setup(&moto, "kms_recipient = true", &[None, None, None]);
    let _enclave = start_enclave(&s);
    let start = Instant::now();
    let st = loop {
        let st = status(&s);
        if st.holders.iter().all(|h| h.outcome == HolderOutcome::Error) {
            break st;
        }
        assert!(start.elapsed() < T, "{st:#?}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(st.state, SealState::Unsealing);
    for h in &st.holders {
        assert!(
            h.error_message
                .as_deref()
                .unwrap_or("")
                .contains("Plaintext instead of CiphertextForRecipient"),
            "{h:#?}"
        );
    }
}

#[test]
fn attestation_endpoint_returns_a_fresh_document_with_the_nonce() {
    let _serial = serial();
    let moto = Moto::start();
    let s = setup(&moto, "", &[None, None, None]);
    let _enclave = start_enclave(&s);
    let (code, doc) = http(
        &s.api,
        "GET",
        "/attestation?nonce=0a0b0c&user_data=ff",
        None,
    )
    .unwrap();
    assert_eq!(code, 200);
    let parsed = cc_proto::attestation::parse(&doc).unwrap();
    assert_eq!(parsed.doc.nonce.as_deref(), Some(&[10u8, 11, 12][..]));
    assert_eq!(parsed.doc.user_data.as_deref(), Some(&[0xffu8][..]));
    assert_eq!(parsed.doc.pcrs[&8], vec![0xcd; 48]);
    let (code, _) = http(&s.api, "GET", "/attestation?nonce=zz", None).unwrap();
    assert_eq!(code, 400);
    let big = "00".repeat(1025);
    let (code, _) = http(&s.api, "GET", &format!("/attestation?nonce={big}"), None).unwrap();
    assert_eq!(code, 400);
}

#[test]
fn bad_signing_requests_get_400_with_a_reason() {
    let _serial = serial();
    let moto = Moto::start();
    let s = setup(&moto, "", &[None, None, None]);
    let _enclave = start_enclave(&s);
    wait_state(&s, SealState::Unsealed);
    let pk = &s.pubkeys[0];
    for (path, body, want, needle) in [
        (
            "/api/v1/eth2/sign/0x1234".to_owned(),
            r#"{"signingRoot":"0x00"}"#,
            400,
            "96 hex digits",
        ),
        (
            format!("/api/v1/eth2/sign/{pk}"),
            "not json",
            400,
            "signingRoot",
        ),
        (
            format!("/api/v1/eth2/sign/{pk}"),
            r#"{"signingRoot":"0x1234"}"#,
            400,
            "64 hex digits",
        ),
        (
            format!("/api/v1/eth2/sign/0x{}", "11".repeat(48)),
            &format!(r#"{{"signingRoot":"0x{}"}}"#, "00".repeat(32)),
            404,
            "no key",
        ),
    ] {
        let (code, resp) = http(&s.api, "POST", &path, Some(body)).unwrap();
        assert_eq!(code, want, "{path} {body}");
        assert!(
            String::from_utf8_lossy(&resp).contains(needle),
            "{path}: {}",
            String::from_utf8_lossy(&resp)
        );
    }
    let m = cc_tests::http_get(s.metrics_port, "/metrics").unwrap();
    assert_eq!(
        metric(&m, "containment_signing_requests_total{status=\"400\"}"),
        Some(3.0)
    );
}
