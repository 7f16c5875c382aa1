//! The chamber on this machine, on unix sockets and loopback only: a local KMS with three key
//! holders (in this process), the real enclave server in software mode, the real parent proxy
//! processes (vsock-stdout, egress, ingress), a nitro-cli stand-in that reports the enclave
//! process, and a Kubernetes API double serving the demo pod. A [`Scenario`] injects one real
//! fault first, so its diagnosis can be seen.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use sha2::Digest;
use tokio::process::{Child, Command};

use containment_chamber_enclave::config as enclave_config;
use containment_chamber_enclave_proxy::allowlist::{AllowlistFile, Entry as AllowEntry};
use containment_chamber_enclave_proxy::config::{
    EgressConfig, EnclaveConfig, ForwarderLimits, IngressConfig, LogsConfig, OnFailure, RunConfig,
};

use crate::{apiserver, kms};

fn err(m: impl Into<String>) -> String {
    m.into()
}

/// The faults `--scenario` injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// One holder's key policy still lists only the previous PCR0.
    StalePolicy,
    /// PRODUCTION=true with ENCLAVE_DEBUG=1: the enclave runs in debug mode (all-zero PCRs).
    DebugInProduction,
    /// The parent's egress forwarder to KMS is not running.
    EgressDown,
    /// The parent's log listener (vsock-stdout) is not running: log events are dropped.
    LogListenerDown,
    /// No /dev/nitro_enclaves and no Nitro Security Module: the enclave cannot attest.
    NsmMissing,
    /// Two of three holders' policies lack the running PCR0: fewer than the threshold release.
    ThresholdLost,
    /// The signer role's IAM policy lacks kms:Decrypt on one holder's key.
    RoleLacksDecrypt,
}

pub const HOLDERS: [(&str, &str, &str); 3] = [
    ("holder-a", "111111111111", "us-east-1"),
    ("holder-b", "222222222222", "eu-west-1"),
    ("holder-c", "333333333333", "us-west-2"),
];
pub const SIGNER_ROLE: &str = "arn:aws:iam::999999999999:role/containment-chamber-signer";

fn sha384_hex(s: &str) -> String {
    hex::encode(sha2::Sha384::digest(s.as_bytes()))
}

/// The demo image's measurements: (PCR0 now running, the previous release's PCR0, PCR8).
pub fn measurements() -> (String, String, String) {
    (
        sha384_hex("containment-chamber demo image v2"),
        sha384_hex("containment-chamber demo image v1"),
        sha384_hex("containment-chamber demo signing certificate"),
    )
}

pub fn key_arn(i: usize) -> String {
    let (_, account, region) = HOLDERS[i];
    format!("arn:aws:kms:{region}:{account}:key/00000000-0000-4000-8000-00000000000{i}")
}

/// A holder's key policy: administration by the holder's account, kms:Decrypt for the signer
/// role only from an enclave attesting one of `pcr0s` and `pcr8`.
pub fn policy(account: &str, pcr0s: &[&str], pcr8: &str) -> String {
    serde_json::to_string_pretty(&serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "KeyAdministration", "Effect": "Allow",
             "Principal": {"AWS": format!("arn:aws:iam::{account}:root")},
             "Action": ["kms:Create*", "kms:Describe*", "kms:Enable*", "kms:List*", "kms:Put*",
                        "kms:Update*", "kms:Revoke*", "kms:Disable*", "kms:Get*", "kms:Delete*",
                        "kms:ScheduleKeyDeletion", "kms:CancelKeyDeletion"],
             "Resource": "*"},
            {"Sid": "AttestedDecrypt", "Effect": "Allow",
             "Principal": {"AWS": SIGNER_ROLE},
             "Action": "kms:Decrypt", "Resource": "*",
             "Condition": {"StringEqualsIgnoreCase": {
                 "kms:RecipientAttestation:PCR0": pcr0s,
                 "kms:RecipientAttestation:PCR8": pcr8}}}
        ]
    }))
    .unwrap_or_default()
}

/// One started process; killed (SIGTERM, then SIGKILL) when dropped or stopped.
struct Proc {
    name: &'static str,
    child: Child,
}

impl Proc {
    async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
            if tokio::time::timeout(Duration::from_secs(3), self.child.wait())
                .await
                .is_err()
            {
                let _ = self.child.kill().await;
            }
        }
    }
}

fn find_bin(bin_dir: Option<&Path>, name: &str) -> Result<PathBuf, String> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    if let Some(d) = bin_dir {
        dirs.push(d.to_owned());
    } else {
        if let Some(d) = std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(Path::to_owned))
        {
            dirs.push(d);
        }
        if let Some(path) = std::env::var_os("PATH") {
            dirs.extend(std::env::split_paths(&path));
        }
    }
    dirs.iter()
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            err(format!(
                "'{name}' not found {}; build it with: cargo build --bins",
                match bin_dir {
                    Some(d) => format!("in --bin-dir '{}'", d.display()),
                    None => "next to ccctl or on PATH".into(),
                }
            ))
        })
}

/// A free port on a random address of 127.0.0.0/8. The port is released before the process
/// that listens on it binds it; on an address nothing else uses, no other bind can take it in
/// between (tests start many demos at once).
fn free_addr() -> Result<std::net::SocketAddr, String> {
    let mut last = None;
    for _ in 0..8 {
        let ip = std::net::Ipv4Addr::new(
            127,
            rand::random::<u8>().max(1),
            rand::random(),
            rand::random::<u8>().clamp(1, 254),
        );
        match std::net::TcpListener::bind((ip, 0)).and_then(|l| l.local_addr()) {
            Ok(a) => return Ok(a),
            Err(e) => last = Some(e),
        }
    }
    Err(err(format!(
        "cannot find a free loopback port: {}",
        last.map(|e| e.to_string()).unwrap_or_default()
    )))
}

/// `127.0.0.1:wanted`, or a free address when `wanted` is 0 or taken.
fn addr(wanted: u16) -> Result<std::net::SocketAddr, String> {
    let a = std::net::SocketAddr::from(([127, 0, 0, 1], wanted));
    if wanted != 0 && std::net::TcpListener::bind(a).is_ok() {
        return Ok(a);
    }
    free_addr()
}

/// The key ARNs the signer role's IAM policy allows kms:Decrypt on, per scenario.
pub fn identity_allowed(scenario: Option<Scenario>) -> Vec<String> {
    (0..HOLDERS.len())
        .filter(|i| !(scenario == Some(Scenario::RoleLacksDecrypt) && *i == 1))
        .map(key_arn)
        .collect()
}

/// A configuration as TOML, from its typed struct (what the program reading it parses).
fn toml_text<T: serde::Serialize>(v: &T) -> Result<String, String> {
    toml::to_string(v).map_err(|e| err(format!("cannot write a configuration: {e}")))
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| err(format!("cannot write '{}': {e}", path.display())))
}

pub fn say(quiet: bool, line: &str) {
    if !quiet {
        let _ = std::io::Write::write_fmt(&mut std::io::stderr(), format_args!("demo: {line}\n"));
    }
}

/// Everything the demo wrote, by path.
pub struct Layout {
    pub dir: PathBuf,
    pub api: std::net::SocketAddr,
    pub metrics: std::net::SocketAddr,
    pub kms: u16,
    pub egress_in: std::net::SocketAddr,
    /// The pod runs with `PRODUCTION=true` and `ENCLAVE_DEBUG=1` (`--scenario
    /// debug-in-production`): env.sh says so, so every ccctl pointed at the demo judges the
    /// same environment.
    pub production_debug: bool,
    /// env.sh puts this folder (the running ccctl's) first on `PATH`.
    pub ccctl_dir: Option<PathBuf>,
}

impl Layout {
    pub fn p(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
    pub fn sock(&self, name: &str) -> String {
        format!("unix://{}", self.p(name).display())
    }
}

/// The arguments of `ccctl doctor --local` that point at the demo.
pub fn doctor_args(l: &Layout) -> Vec<String> {
    let p = |n: &str| l.p(n).display().to_string();
    [
        "doctor",
        "--local",
        "--api",
        &format!("tcp://{}", l.api),
        "--metrics",
        &format!("tcp://{}", l.metrics),
        "--log-listener",
        &l.sock("log.sock"),
        "--log-file",
        &p("logs/enclave.log"),
        "--nitro-cli",
        &p("nitro-cli"),
        "--device",
        &p("dev/nitro_enclaves"),
        "--allocator",
        &p("allocator.yaml"),
        "--proxy-config",
        &p("proxy.toml"),
        "--config",
        &p("ccctl.toml"),
        "--scrape-interval",
        "1s",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn write_files(l: &Layout, scenario: Option<Scenario>) -> Result<(), String> {
    let (pcr0, _, pcr8) = measurements();
    let debug = scenario == Some(Scenario::DebugInProduction);
    let zeros = cc_proto::pcr::Pcr::ZERO.hex();
    let (run_pcr0, run_pcr8) = if debug {
        (zeros.clone(), zeros.clone())
    } else {
        (pcr0.clone(), pcr8.clone())
    };
    for d in ["logs", "dev", "root"] {
        std::fs::create_dir_all(l.p(d))
            .map_err(|e| err(format!("cannot create '{}': {e}", l.p(d).display())))?;
    }
    {
        // The development root key lives here: its owner only, even in a --dir others can read.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(l.p("root"), std::fs::Permissions::from_mode(0o700))
            .map_err(|e| err(format!("cannot restrict '{}': {e}", l.p("root").display())))?;
    }
    if scenario != Some(Scenario::NsmMissing) {
        // Stands for the device node the device plugin mounts (a plain file here).
        write(&l.p("dev/nitro_enclaves"), "")?;
    }
    write(
        &l.p("allocator.yaml"),
        "---\n# Stand-in for /etc/nitro_enclaves/allocator.yaml\nmemory_mib: 1024\ncpu_count: 2\n",
    )?;
    let allowlist = AllowlistFile {
        allowlist: vec![AllowEntry {
            address: "127.0.0.1".into(),
            port: l.kms,
        }],
    };
    write(
        &l.p("vsock-proxy.yaml"),
        &serde_yaml_ng::to_string(&allowlist).map_err(|e| err(e.to_string()))?,
    )?;
    let kms_direct = format!("http://127.0.0.1:{}", l.kms);
    // The enclave reaches KMS through its egress listener → the proxy's forwarder.
    let kms_via_egress = format!("http://{}", l.egress_in);
    let enclave_holders = |endpoint: &str| -> Vec<enclave_config::Holder> {
        HOLDERS
            .iter()
            .enumerate()
            .map(|(i, (name, _, region))| enclave_config::Holder {
                name: (*name).into(),
                key_arn: key_arn(i),
                region: (*region).into(),
                endpoint: Some(endpoint.into()),
            })
            .collect()
    };
    let tcp = |a: std::net::SocketAddr| cc_proto::Address::Tcp {
        host: a.ip().to_string(),
        port: a.port(),
    };
    let unix = |name: &str| cc_proto::Address::Unix(l.p(name));
    let kms_tcp = cc_proto::Address::Tcp {
        host: "127.0.0.1".into(),
        port: l.kms,
    };
    // init runs where the operator is (not in the enclave): straight to KMS.
    let init = enclave_config::Config {
        platform: enclave_config::PlatformSetting::Software,
        threshold: 2,
        shares_file: l.p("shares.json"),
        keystore_file: Some(l.p("keystore.json")),
        kms_timeout_ms: 2000,
        kms_recipient: Some(true),
        listen: Default::default(),
        logs: Default::default(),
        software: Default::default(),
        holders: enclave_holders(&kms_direct),
        egress: Vec::new(),
        hosts_file: None,
    };
    write(&l.p("init.toml"), &toml_text(&init)?)?;
    let enclave = enclave_config::Config {
        platform: if scenario == Some(Scenario::NsmMissing) {
            enclave_config::PlatformSetting::Nitro
        } else {
            enclave_config::PlatformSetting::Software
        },
        listen: enclave_config::Listen {
            api: unix("api.sock"),
            metrics: unix("metrics.sock"),
            ..Default::default()
        },
        logs: enclave_config::Logs {
            target: unix("log.sock"),
            ..Default::default()
        },
        software: enclave_config::Software {
            root_dir: Some(l.p("root")),
            pcrs: [
                ("0".to_owned(), run_pcr0.clone()),
                ("8".to_owned(), run_pcr8.clone()),
            ]
            .into(),
            eif: None,
            module_id: Some("i-0demo0000000000000-enc0000000000000001".into()),
        },
        holders: enclave_holders(&kms_via_egress),
        egress: vec![enclave_config::Egress {
            host: "kms.demo.local".into(),
            port: l.egress_in.port(),
            listen: Some(tcp(l.egress_in)),
            target: Some(unix("egress-kms.sock")),
        }],
        ..init.clone()
    };
    write(&l.p("enclave.toml"), &toml_text(&enclave)?)?;
    let proxy = RunConfig {
        nitro_cli: l.p("nitro-cli"),
        production: false,
        shutdown_grace_ms: 5000,
        allowlist: Some(l.p("vsock-proxy.yaml")),
        metrics: None,
        logs: LogsConfig {
            listen: unix("log.sock"),
            ..Default::default()
        },
        egress: vec![EgressConfig {
            name: "kms".into(),
            listen: Some(unix("egress-kms.sock")),
            target: kms_tcp,
            connect_timeout_ms: 5000,
            limits: Default::default(),
        }],
        ingress: vec![
            IngressConfig {
                name: "api".into(),
                listen: tcp(l.api),
                target: unix("api.sock"),
                connect_timeout_ms: 5000,
                limits: ForwarderLimits {
                    probe_paths: vec!["/upcheck".into(), "/healthcheck".into()],
                    ..Default::default()
                },
            },
            IngressConfig {
                name: "metrics".into(),
                listen: tcp(l.metrics),
                target: unix("metrics.sock"),
                connect_timeout_ms: 5000,
                limits: Default::default(),
            },
        ],
        enclave: EnclaveConfig {
            eif_path: l.p("enclave.eif"),
            cpu_count: 2,
            memory_mib: 512,
            enclave_cid: Some(16),
            enclave_name: None,
            debug_mode: debug,
            extra_args: Vec::new(),
            terminate_on_shutdown: true,
            on_failure: OnFailure::Exit,
        },
    };
    write(
        &l.p("proxy.toml"),
        &format!(
            "# What the demo's parent side runs (the proxy processes started by ccctl demo).\n{}",
            toml_text(&proxy)?
        ),
    )?;
    // The signer role's identity-based policy: kms:Decrypt on every holder's key, except in
    // role-lacks-decrypt (holder-b's). The local KMS enforces the same text.
    write(
        &l.p("signer-identity-policy.json"),
        &kms::identity_policy(&identity_allowed(scenario)),
    )?;
    let ccctl = cc_proto::holders::Config {
        principal: Some(SIGNER_ROLE.into()),
        threshold: Some(2),
        holders: HOLDERS
            .iter()
            .enumerate()
            .map(|(i, (name, _, region))| cc_proto::holders::Holder {
                name: (*name).into(),
                key_arn: key_arn(i),
                region: (*region).into(),
                profile: None,
                endpoint: Some(kms_direct.clone()),
                policy_file: None,
            })
            .collect(),
        iam: Some(cc_proto::holders::Iam {
            identity_policies: vec![l.p("signer-identity-policy.json")],
            ..Default::default()
        }),
    };
    write(
        &l.p("ccctl.toml"),
        &format!(
            "# ccctl's view of the demo's key holders (their keys are in the demo's local KMS).\n{}",
            toml_text(&ccctl)?
        ),
    )?;
    // nitro-cli stand-in: describe-enclaves reports the enclave server process.
    let flags = if debug { "DEBUG_MODE" } else { "NONE" };
    let script = format!(
        r#"#!/bin/sh
# nitro-cli stand-in written by ccctl demo: reports the enclave server process as the enclave,
# with the measurements of the image it runs (the file a redeploy rewrites).
pidfile='{pidfile}'
# shellcheck disable=SC1091
. '{measurements}'
case "$1" in
  describe-enclaves)
    if [ -s "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
      cat <<JSON
[
  {{
    "EnclaveName": "containment-chamber",
    "EnclaveID": "i-0demo0000000000000-enc0000000000000001",
    "ProcessID": $(cat "$pidfile"),
    "EnclaveCID": 16,
    "NumberOfCPUs": 2,
    "CPUIDs": [1, 3],
    "MemoryMiB": 512,
    "State": "RUNNING",
    "Flags": "{flags}",
    "Measurements": {{
      "HashAlgorithm": "Sha384 {{ ... }}",
      "PCR0": "$PCR0",
      "PCR8": "$PCR8"
    }}
  }}
]
JSON
    else
      echo "[]"
    fi
    ;;
  *)
    echo "[ E01 ] the demo's nitro-cli stand-in supports describe-enclaves only" >&2
    exit 1
    ;;
esac
"#,
        pidfile = l.p("enclave.pid").display(),
        measurements = l.p("measurements").display(),
    );
    write(
        &l.p("measurements"),
        &format!("PCR0={run_pcr0}\nPCR8={run_pcr8}\n"),
    )?;
    write(&l.p("nitro-cli"), &script)?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(l.p("nitro-cli"), std::fs::Permissions::from_mode(0o755))
            .map_err(|e| {
                err(format!(
                    "cannot make the nitro-cli stand-in executable: {e}"
                ))
            })?;
    }
    Ok(())
}

pub fn aws_env(cmd: &mut Command, key_id: &str) {
    for k in [
        "AWS_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_KMS",
        "AWS_CONFIG_FILE",
        "AWS_SHARED_CREDENTIALS_FILE",
        "PRODUCTION",
        "ENCLAVE_DEBUG",
    ] {
        cmd.env_remove(k);
    }
    cmd.env("AWS_ACCESS_KEY_ID", key_id)
        .env("AWS_SECRET_ACCESS_KEY", "demo-secret-not-checked")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null");
}

fn log_file(path: &Path) -> Result<Stdio, String> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map(Stdio::from)
        .map_err(|e| err(format!("cannot open '{}': {e}", path.display())))
}

/// Make `cmd`'s process die (SIGKILL) when the thread that starts it ends, whatever ends it,
/// SIGKILL of the demo included (Linux `PR_SET_PDEATHSIG`); if the starter is already gone when
/// the child gets there, the child does not run at all. Start it from a thread that lives as
/// long as the demo (the demo's main thread, which drives `start`).
pub fn die_with_parent(cmd: &mut Command) {
    let parent = libc::pid_t::try_from(std::process::id()).unwrap_or(0);
    // SAFETY: the closure runs in the forked child before exec; it only calls prctl(2) and
    // getppid(2), which are async-signal-safe, and allocates nothing (the errors carry an
    // errno only). No safe API sets the parent-death signal.
    #[allow(unsafe_code)]
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent died between fork and prctl: the signal will never come.
            if libc::getppid() != parent {
                return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
}

fn spawn(name: &'static str, mut cmd: Command, out: &Path) -> Result<Proc, String> {
    die_with_parent(&mut cmd);
    // Its own process group: a Ctrl-C at the terminal (SIGINT to the foreground group) reaches
    // ccctl, which stops the chamber in order, not every process at once behind its back.
    cmd.process_group(0);
    cmd.stdin(Stdio::null())
        .stdout(log_file(out)?)
        .stderr(log_file(&out.with_extension("err"))?)
        .kill_on_drop(true);
    let child = cmd
        .spawn()
        .map_err(|e| err(format!("cannot start {name}: {e}")))?;
    Ok(Proc { name, child })
}

/// The running chamber.
pub struct Chamber {
    procs: Vec<Proc>,
    pub layout: Layout,
    kms_task: tokio::task::JoinHandle<()>,
    _cluster: apiserver::ApiServer,
    pub pubkeys: Vec<String>,
}

pub const NAMESPACE: &str = "containment-chamber";
pub const POD: &str = "containment-chamber-0";

/// The cluster view: one pod as the chart deploys it (on a labelled node, device plugin
/// ready), whose log is the demo's pod log.
async fn cluster(l: &Layout, scenario: Option<Scenario>) -> Result<apiserver::ApiServer, String> {
    let listener =
        apiserver::listen(0).map_err(|e| err(format!("cannot listen on loopback: {e}")))?;
    let mut pod = apiserver::healthy_pod(POD, NAMESPACE, "demo-node");
    if scenario == Some(Scenario::NsmMissing)
        && let Some(r) = pod
            .spec
            .as_mut()
            .and_then(|s| s.containers.first_mut())
            .and_then(|c| c.resources.as_mut())
    {
        // The device was never requested: that is why it is missing.
        for m in [r.limits.as_mut(), r.requests.as_mut()]
            .into_iter()
            .flatten()
        {
            m.remove("aws.ec2.nitro/nitro_enclaves");
        }
    }
    let mut objects = apiserver::Objects {
        pods: vec![pod],
        nodes: vec![apiserver::labelled_node("demo-node")],
        daemonsets: vec![apiserver::device_plugin(1, 1)],
        ..Default::default()
    };
    // Created now, running and ready, with the events a started pod has (what `kubectl get`
    // and `describe` show).
    apiserver::started(&mut objects);
    objects
        .log_files
        .insert((NAMESPACE.into(), POD.into()), l.p("logs/enclave.log"));
    // `kubectl exec` into the demo's pod runs here, with the pod's environment: its CCCTL_*,
    // its nitro-cli and the demo's ccctl first on PATH (an image that ships both).
    objects.exec_local = true;
    // `pods/proxy` to the pod's ports reaches the enclave's API and metrics.
    for (port, addr) in [(9000, l.api), (3000, l.metrics)] {
        objects.proxies.insert(
            (NAMESPACE.into(), POD.into(), port),
            cc_proto::Address::Tcp {
                host: addr.ip().to_string(),
                port: addr.port(),
            },
        );
    }
    objects.exec_env = env_vars(l)
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    // The pod's PATH: its nitro-cli (the demo's stand-in, in the demo's folder), then ccctl.
    let mut path = format!("{}:", l.dir.display());
    if let Some(d) = &l.ccctl_dir {
        path += &format!("{}:", d.display());
    }
    path += &std::env::var("PATH").unwrap_or_default();
    objects.exec_env.push(("PATH".into(), path));
    let server = apiserver::ApiServer::start_on(listener, objects, Duration::ZERO);
    write(&l.p("kubeconfig"), &server.kubeconfig_text(NAMESPACE))?;
    Ok(server)
}

/// The variables that point ccctl at the demo.
pub fn env_vars(l: &Layout) -> Vec<(&'static str, String)> {
    let p = |n: &str| l.p(n).display().to_string();
    let mut v = vec![
        ("KUBECONFIG", p("kubeconfig")),
        ("AWS_ACCESS_KEY_ID", kms::OPERATOR_KEY_ID.to_owned()),
        (
            "AWS_SECRET_ACCESS_KEY",
            "demo-secret-not-checked".to_owned(),
        ),
        ("AWS_REGION", "us-east-1".to_owned()),
        ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
        ("CCCTL_API", format!("tcp://{}", l.api)),
        ("CCCTL_METRICS", format!("tcp://{}", l.metrics)),
        ("CCCTL_LOG_LISTENER", l.sock("log.sock")),
        ("CCCTL_LOG_FILE", p("logs/enclave.log")),
        ("CCCTL_NITRO_CLI", p("nitro-cli")),
        ("CCCTL_DEVICE", p("dev/nitro_enclaves")),
        ("CCCTL_ALLOCATOR", p("allocator.yaml")),
        ("CCCTL_CONFIG", p("ccctl.toml")),
        ("CCCTL_PROXY_CONFIG", p("proxy.toml")),
        // The development root the demo's attestation documents chain to (attest verify/fetch).
        ("CCCTL_ROOT", p("root/root.pem")),
        // The dashboard shows where the demo is and how to reach it from another terminal.
        ("CCCTL_DEMO_DIR", l.dir.display().to_string()),
    ];
    if l.production_debug {
        v.push(("PRODUCTION", "true".to_owned()));
        v.push(("ENCLAVE_DEBUG", "1".to_owned()));
    }
    v
}

/// `env.sh`: what a shell needs to point ccctl at the demo.
fn env_file(l: &Layout) -> String {
    let mut out = String::from(
        "# Written by ccctl demo: `. env.sh` points ccctl, kubectl-style tools and curl at the demo.\n",
    );
    for (k, v) in env_vars(l) {
        out.push_str(&format!("export {k}='{v}'\n"));
    }
    // The ccctl that started the demo first, so the commands it prints run as printed.
    if let Some(d) = &l.ccctl_dir {
        out.push_str(&format!("export PATH='{}':\"$PATH\"\n", d.display()));
    }
    out
}

impl Chamber {
    /// Stop every process (newest first); say which ones had already died on their own.
    pub async fn stop(self, quiet: bool) {
        for mut p in self.procs.into_iter().rev() {
            if let Ok(Some(status)) = p.child.try_wait() {
                say(
                    quiet,
                    &format!(
                        "{} had already stopped ({status}); see {}",
                        p.name,
                        self.layout.p("logs").display()
                    ),
                );
            }
            p.stop().await;
        }
        self.kms_task.abort();
    }
}

/// How to start the chamber.
pub struct Options {
    pub scenario: Option<Scenario>,
    /// Where containment-chamber-enclave and containment-chamber-enclave-proxy are (default:
    /// next to the running program, then PATH).
    pub bin_dir: Option<PathBuf>,
    /// Ports on 127.0.0.1 of the enclave API and metrics (0, or taken: any free address).
    pub api_port: u16,
    pub metrics_port: u16,
    /// Verifies Recipient attestation documents for the local KMS.
    pub verifier: kms::Verifier,
    /// The folder of the ccctl that started the demo: env.sh puts it first on `PATH`.
    pub ccctl_dir: Option<PathBuf>,
}

/// Start everything in `dir`: files, local KMS, init, parent proxy, enclave server, cluster
/// view; returns once every holder has answered the enclave (or 30 s).
pub async fn start(args: &Options, dir: &Path, quiet: bool) -> Result<Chamber, String> {
    let enclave_bin = find_bin(args.bin_dir.as_deref(), "containment-chamber-enclave")?;
    let proxy_bin = find_bin(args.bin_dir.as_deref(), "containment-chamber-enclave-proxy")?;
    let scenario = args.scenario;
    let kms_listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .map_err(|e| err(format!("cannot listen on loopback: {e}")))?;
    let layout = Layout {
        dir: dir.to_owned(),
        api: addr(args.api_port)?,
        metrics: addr(args.metrics_port)?,
        kms: kms_listener.local_addr().map(|a| a.port()).unwrap_or(0),
        egress_in: free_addr()?,
        production_debug: scenario == Some(Scenario::DebugInProduction),
        ccctl_dir: args.ccctl_dir.clone(),
    };
    write_files(&layout, scenario)?;
    let (pcr0, old_pcr0, pcr8) = measurements();
    let keys = HOLDERS
        .iter()
        .enumerate()
        .map(|(i, (holder, account, _))| {
            let stale = match scenario {
                Some(Scenario::StalePolicy) => i == 2,
                Some(Scenario::ThresholdLost) => i >= 1,
                _ => false,
            };
            let allowed: Vec<&str> = if stale { vec![&old_pcr0] } else { vec![&pcr0] };
            kms::KeySpec {
                holder: holder.to_string(),
                arn: key_arn(i),
                policy: policy(account, &allowed, &pcr8),
            }
        })
        .collect();
    let local_kms = kms::LocalKms::new(
        keys,
        SIGNER_ROLE,
        layout.p("root/root.pem"),
        args.verifier.clone(),
    );
    for i in 0..HOLDERS.len() {
        local_kms.set_identity_allows(
            &key_arn(i),
            identity_allowed(scenario).contains(&key_arn(i)),
        );
    }
    let kms_task = local_kms.serve(kms_listener);
    say(
        quiet,
        &format!(
            "local KMS (3 holders' keys and policies) on http://127.0.0.1:{}",
            layout.kms
        ),
    );

    // The operator's init: master key, shares encrypted to each holder, two validator keys.
    let mut init = Command::new(&enclave_bin);
    init.args(["init", "--config"])
        .arg(layout.p("init.toml"))
        .args(["--validator-keys", "2"]);
    aws_env(&mut init, kms::OPERATOR_KEY_ID);
    die_with_parent(&mut init);
    let out = init
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| err(format!("cannot run containment-chamber-enclave init: {e}")))?;
    if !out.status.success() {
        kms_task.abort();
        return Err(err(format!(
            "containment-chamber-enclave init failed: {}",
            cc_proto::text::sanitize(&String::from_utf8_lossy(&out.stderr))
        )));
    }
    // The validator public keys, for the demo's signing traffic.
    let pubkeys: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .split('"')
        .filter(|t| {
            t.len() == 98 && t.starts_with("0x") && t[2..].bytes().all(|b| b.is_ascii_hexdigit())
        })
        .map(str::to_owned)
        .collect();
    say(
        quiet,
        "init: master key split 2-of-3, shares encrypted under the holders' keys, 2 validator keys",
    );

    let mut procs = Vec::new();
    let ready = |n: &str| layout.p(&format!("{n}.ready"));
    let proxy = |name: &'static str, args: Vec<String>| -> Result<Proc, String> {
        let mut cmd = Command::new(&proxy_bin);
        cmd.args(&args).arg("--ready-file").arg(ready(name));
        spawn(name, cmd, &layout.p(&format!("logs/{name}.log")))
    };
    // The API's ingress keeps slots beyond its cap for the liveness and readiness probes.
    let probe_flags = |name: &str| -> Vec<String> {
        if name == "ingress-api" {
            ["--probe-path", "/upcheck", "--probe-path", "/healthcheck"]
                .map(String::from)
                .to_vec()
        } else {
            Vec::new()
        }
    };
    let mut waits = Vec::new();
    // The pod log exists even when nothing writes to it.
    log_file(&layout.p("logs/enclave.log"))?;
    if scenario != Some(Scenario::LogListenerDown) {
        // Its stdout is the pod log: logs/enclave.log.
        let mut cmd = Command::new(&proxy_bin);
        cmd.args(["vsock-stdout", "--listen", &layout.sock("log.sock")])
            .arg("--ready-file")
            .arg(ready("vsock-stdout"));
        procs.push(spawn("vsock-stdout", cmd, &layout.p("logs/enclave.log"))?);
        waits.push("vsock-stdout");
    }
    if scenario != Some(Scenario::EgressDown) {
        procs.push(proxy(
            "egress",
            vec![
                "egress".into(),
                "--listen".into(),
                layout.sock("egress-kms.sock"),
                "--target".into(),
                format!("tcp://127.0.0.1:{}", layout.kms),
                "--name".into(),
                "kms".into(),
                "--allowlist".into(),
                layout.p("vsock-proxy.yaml").display().to_string(),
            ],
        )?);
        waits.push("egress");
    }
    for (name, port, sock) in [
        ("ingress-api", layout.api, "api.sock"),
        ("ingress-metrics", layout.metrics, "metrics.sock"),
    ] {
        procs.push(proxy(
            name,
            vec![
                "ingress".into(),
                "--listen".into(),
                format!("tcp://{port}"),
                "--target".into(),
                layout.sock(sock),
                "--name".into(),
                name.trim_start_matches("ingress-").into(),
            ]
            .into_iter()
            .chain(probe_flags(name))
            .collect(),
        )?);
        waits.push(name);
    }
    for w in waits {
        let f = ready(w);
        let started = Instant::now();
        while !f.exists() {
            if started.elapsed() > Duration::from_secs(30) {
                let stderr =
                    std::fs::read_to_string(layout.p(&format!("logs/{w}.err"))).unwrap_or_default();
                return Err(err(format!(
                    "the parent proxy '{w}' did not start: {}",
                    cc_proto::text::sanitize(stderr.trim())
                )));
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
    say(
        quiet,
        &format!(
            "parent proxy: logs {}, egress → KMS, ingress API {} and metrics {}{}",
            layout.sock("log.sock"),
            layout.api,
            layout.metrics,
            match scenario {
                Some(Scenario::LogListenerDown) => " (scenario: no log listener)",
                Some(Scenario::EgressDown) => " (scenario: no egress forwarder)",
                _ => "",
            }
        ),
    );

    let mut enclave = Command::new(&enclave_bin);
    enclave
        .args(["serve", "--config"])
        .arg(layout.p("enclave.toml"));
    aws_env(&mut enclave, kms::SIGNER_KEY_ID);
    let p = spawn("enclave", enclave, &layout.p("logs/enclave-console.log"))?;
    if let Some(pid) = p.child.id() {
        write(&layout.p("enclave.pid"), &pid.to_string())?;
    }
    procs.push(p);
    let api = cc_proto::Address::Tcp {
        host: layout.api.ip().to_string(),
        port: layout.api.port(),
    };
    // Until every holder has answered (or the enclave failed), at most 30 s.
    let settle = Instant::now();
    let mut last = None;
    while settle.elapsed() < Duration::from_secs(30) {
        if let Ok(s) = cc_proto::status::fetch(&api, Duration::from_secs(2)).await {
            use cc_proto::status::{HolderOutcome, SealState};
            // Unsealed is not enough: a holder still answering (e.g. the one denying in
            // role-lacks-decrypt) would be missed by the doctor run that follows.
            let settled = s.state == SealState::Failed
                || (!s.holders.is_empty()
                    && s.holders
                        .iter()
                        .all(|h| h.outcome != HolderOutcome::Pending));
            last = Some(s);
            if settled {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    match &last {
        Some(s) => say(
            quiet,
            &format!(
                "enclave (software NSM, PCR0 {}…): {}{}",
                &pcr0[..16],
                s.state.as_str(),
                s.reason
                    .as_deref()
                    .map(|r| format!(" — {}", cc_proto::text::sanitize(r)))
                    .unwrap_or_default()
            ),
        ),
        None => say(quiet, "enclave: /status not answering"),
    }
    let cluster = cluster(&layout, scenario).await?;
    write(&layout.p("env.sh"), &env_file(&layout))?;
    Ok(Chamber {
        procs,
        layout,
        kms_task,
        _cluster: cluster,
        pubkeys,
    })
}

/// Bounded signing traffic (at most `max` requests, one per `every`) with the demo's
/// validator keys, so the enclave signs and logs while doctor and the dashboard watch.
pub fn traffic(
    api: std::net::SocketAddr,
    pubkeys: Vec<String>,
    max: usize,
    every: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let addr = cc_proto::Address::Tcp {
            host: api.ip().to_string(),
            port: api.port(),
        };
        let fallback = format!("0x{}", "00".repeat(48));
        for i in 0..max {
            let pk = pubkeys.get(i % pubkeys.len().max(1)).unwrap_or(&fallback);
            let root: [u8; 32] = rand::random();
            let body = format!("{{\"signingRoot\":\"0x{}\"}}", hex::encode(root));
            let _ = cc_proto::http::request(
                &addr,
                "POST",
                &format!("/api/v1/eth2/sign/{pk}"),
                Some(body.as_bytes()),
                Duration::from_secs(1),
            )
            .await;
            tokio::time::sleep(every).await;
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The dashboard (started with these variables) and a shell after `. env.sh` judge the pod's
    /// environment: in debug-in-production it has PRODUCTION and ENCLAVE_DEBUG (issue 13 #3:
    /// the dashboard's doctor showed `✓ config.debug`).
    #[test]
    fn env_sh_carries_the_pods_production_and_debug_settings() {
        let free = |p: u16| std::net::SocketAddr::from(([127, 0, 0, 1], p));
        let mut l = Layout {
            dir: "/tmp/x".into(),
            api: free(9000),
            metrics: free(3000),
            kms: 4430,
            egress_in: free(4431),
            production_debug: false,
            ccctl_dir: None,
        };
        assert!(!env_vars(&l).iter().any(|(k, _)| *k == "ENCLAVE_DEBUG"));
        l.production_debug = true;
        let v = env_vars(&l);
        assert!(v.contains(&("PRODUCTION", "true".to_owned())));
        assert!(v.contains(&("ENCLAVE_DEBUG", "1".to_owned())));
        assert!(env_file(&l).contains("export ENCLAVE_DEBUG='1'"));
    }

    /// Every configuration the demo writes is read back by the program that reads it, for
    /// every scenario.
    #[test]
    fn written_configurations_parse_with_their_readers() {
        let dir = tempfile::tempdir().unwrap();
        let free = |p: u16| std::net::SocketAddr::from(([127, 0, 0, 1], p));
        let l = Layout {
            dir: dir.path().to_owned(),
            api: free(9000),
            metrics: free(3000),
            kms: 4430,
            egress_in: free(4431),
            production_debug: false,
            ccctl_dir: None,
        };
        for scenario in [
            None,
            Some(Scenario::DebugInProduction),
            Some(Scenario::NsmMissing),
        ] {
            write_files(&l, scenario).unwrap();
            let no_env = |_: &str| None;
            let e =
                containment_chamber_enclave::config::Config::load(&l.p("enclave.toml"), &no_env)
                    .unwrap();
            assert_eq!(e.holders.len(), 3);
            assert_eq!(
                e.egress[0].listen,
                Some(cc_proto::Address::Tcp {
                    host: "127.0.0.1".into(),
                    port: 4431
                })
            );
            let debug = scenario == Some(Scenario::DebugInProduction);
            assert_eq!(
                e.software.pcrs["0"] == cc_proto::pcr::Pcr::ZERO.hex(),
                debug
            );
            containment_chamber_enclave::config::Config::load(&l.p("init.toml"), &no_env).unwrap();
            let p = RunConfig::load(&l.p("proxy.toml")).unwrap();
            assert_eq!(p.enclave.debug_mode, debug);
            assert_eq!(p.ingress.len(), 2);
            let a = AllowlistFile::load(&l.p("vsock-proxy.yaml")).unwrap();
            assert_eq!(a.allowlist[0].port, 4430);
            let c = cc_proto::holders::Config::load(&l.p("ccctl.toml")).unwrap();
            assert_eq!(c.principal.as_deref(), Some(SIGNER_ROLE));
            assert_eq!(c.holders[2].key_arn, key_arn(2));
        }
    }
}
