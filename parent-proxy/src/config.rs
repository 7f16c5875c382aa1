//! The `run` configuration file (TOML): listeners, egress endpoints, ingress ports and the
//! `nitro-cli run-enclave` arguments. Unknown keys are errors, so a typo cannot silently turn
//! a setting off.

use std::path::{Path, PathBuf};

use cc_proto::Address;
use cc_proto::ports::{CID_ANY, LOG_PORT, MAX_LOG_LINE, RESERVED_PARENT_VSOCK_PORT, egress_port};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// Path or name (looked up on PATH) of nitro-cli.
    #[serde(default = "default_nitro_cli")]
    pub nitro_cli: PathBuf,
    /// `true` refuses `enclave.debug_mode` (same rule as the entrypoint's PRODUCTION=true).
    #[serde(default)]
    pub production: bool,
    /// How long open connections may continue after SIGTERM.
    #[serde(default = "default_grace_ms")]
    pub shutdown_grace_ms: u64,
    /// The vsock-proxy-format allowlist every egress target must be in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowlist: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<MetricsConfig>,
    #[serde(default)]
    pub logs: LogsConfig,
    #[serde(default)]
    pub egress: Vec<EgressConfig>,
    #[serde(default)]
    pub ingress: Vec<IngressConfig>,
    pub enclave: EnclaveConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    pub listen: Address,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogsConfig {
    #[serde(default = "default_log_listen")]
    pub listen: Address,
    #[serde(default = "default_max_line")]
    pub max_line: usize,
}

impl Default for LogsConfig {
    fn default() -> Self {
        Self {
            listen: default_log_listen(),
            max_line: MAX_LOG_LINE,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EgressConfig {
    pub name: String,
    /// Defaults to `vsock://4294967295:8000+i` for the i-th endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen: Option<Address>,
    /// `tcp://HOST:PORT` of the upstream (e.g. `tcp://kms.us-east-1.amazonaws.com:443`).
    pub target: Address,
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// `limits = { max_connections = 1024, idle_timeout_ms = 300000, probe_paths = [...] }`.
    #[serde(default)]
    pub limits: ForwarderLimits,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngressConfig {
    pub name: String,
    pub listen: Address,
    pub target: Address,
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// `limits = { max_connections = 1024, idle_timeout_ms = 300000, probe_paths = [...] }`.
    #[serde(default)]
    pub limits: ForwarderLimits,
}

/// A forwarder's connection limits (the same as the `egress`/`ingress` flags).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwarderLimits {
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    #[serde(default = "default_idle_timeout_ms")]
    pub idle_timeout_ms: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub probe_paths: Vec<String>,
    #[serde(default = "default_probe_slots")]
    pub probe_slots: usize,
}

impl Default for ForwarderLimits {
    fn default() -> Self {
        ForwarderLimits {
            max_connections: default_max_connections(),
            idle_timeout_ms: default_idle_timeout_ms(),
            probe_paths: Vec::new(),
            probe_slots: default_probe_slots(),
        }
    }
}

fn default_max_connections() -> usize {
    1024
}
fn default_idle_timeout_ms() -> u64 {
    300_000
}
fn default_probe_slots() -> usize {
    8
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnFailure {
    /// Shut everything down and exit with nitro-cli's status (the pod restarts, visibly).
    Exit,
    /// Keep the listeners up so the failure can be diagnosed from inside the pod.
    Stay,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnclaveConfig {
    pub eif_path: PathBuf,
    pub cpu_count: u32,
    pub memory_mib: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enclave_cid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enclave_name: Option<String>,
    /// Adds `--debug-mode --attach-console`. Attested PCRs are all zero in debug mode.
    #[serde(default)]
    pub debug_mode: bool,
    #[serde(default)]
    pub extra_args: Vec<String>,
    /// Run `nitro-cli terminate-enclave --enclave-id ID` on shutdown.
    #[serde(default = "yes")]
    pub terminate_on_shutdown: bool,
    #[serde(default = "default_on_failure")]
    pub on_failure: OnFailure,
}

fn default_nitro_cli() -> PathBuf {
    PathBuf::from("nitro-cli")
}
fn default_grace_ms() -> u64 {
    5000
}
fn default_log_listen() -> Address {
    Address::Vsock {
        cid: CID_ANY,
        port: LOG_PORT,
    }
}
fn default_max_line() -> usize {
    MAX_LOG_LINE
}
fn default_connect_timeout_ms() -> u64 {
    5000
}
fn default_on_failure() -> OnFailure {
    OnFailure::Exit
}
fn yes() -> bool {
    true
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config '{path}': {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config '{path}' is not valid: {message}")]
    Invalid { path: PathBuf, message: String },
}

impl RunConfig {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text).map_err(|message| ConfigError::Invalid {
            path: path.to_owned(),
            message,
        })
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        let cfg: RunConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        cfg.validate()?;
        Ok(cfg)
    }

    fn validate(&self) -> Result<(), String> {
        if self.production && self.enclave.debug_mode {
            return Err(
                "'enclave.debug_mode' is true while 'production' is true: debug mode \
                        zeroes the attested PCRs and exposes the console; refusing"
                    .into(),
            );
        }
        if self.enclave.cpu_count == 0 {
            return Err("'enclave.cpu_count' must be at least 1".into());
        }
        if self.enclave.memory_mib == 0 {
            return Err("'enclave.memory_mib' must be more than 0".into());
        }
        if self.logs.max_line < 80 {
            return Err(format!(
                "'logs.max_line' is {}: expected at least 80 bytes",
                self.logs.max_line
            ));
        }
        let mut names = std::collections::HashSet::new();
        for (i, e) in self.egress.iter().enumerate() {
            if !names.insert(e.name.as_str()) {
                return Err(format!("'egress[{i}].name' '{}' is used twice", e.name));
            }
            if e.target.tcp_host_port().is_none() {
                return Err(format!(
                    "'egress[{i}].target' is '{}': expected tcp://HOST:PORT",
                    e.target
                ));
            }
        }
        for (i, e) in self.ingress.iter().enumerate() {
            if !names.insert(e.name.as_str()) {
                return Err(format!("'ingress[{i}].name' '{}' is used twice", e.name));
            }
        }
        for (field, addr) in self.listen_addresses() {
            if let Address::Vsock { port, .. } = addr
                && port == RESERVED_PARENT_VSOCK_PORT
            {
                return Err(format!(
                    "'{field}' is '{addr}': the parent must never listen on vsock port 9000 \
                     (the enclave boot heartbeat uses it)"
                ));
            }
        }
        Ok(())
    }

    /// The egress listen address of endpoint `i` (explicit or the contract default).
    pub fn egress_listen(&self, i: usize) -> Address {
        self.egress[i].listen.clone().unwrap_or(Address::Vsock {
            cid: CID_ANY,
            port: egress_port(i),
        })
    }

    fn listen_addresses(&self) -> Vec<(String, Address)> {
        let mut v = vec![("logs.listen".to_owned(), self.logs.listen.clone())];
        for i in 0..self.egress.len() {
            v.push((format!("egress[{i}].listen"), self.egress_listen(i)));
        }
        for (i, e) in self.ingress.iter().enumerate() {
            v.push((format!("ingress[{i}].listen"), e.listen.clone()));
        }
        if let Some(m) = &self.metrics {
            v.push(("metrics.listen".into(), m.listen.clone()));
        }
        v
    }

    /// Arguments of `nitro-cli run-enclave`.
    pub fn run_enclave_args(&self) -> Vec<String> {
        let e = &self.enclave;
        let mut a = vec![
            "run-enclave".to_owned(),
            "--eif-path".to_owned(),
            e.eif_path.display().to_string(),
            "--cpu-count".to_owned(),
            e.cpu_count.to_string(),
            "--memory".to_owned(),
            e.memory_mib.to_string(),
        ];
        if let Some(cid) = e.enclave_cid {
            a.extend(["--enclave-cid".to_owned(), cid.to_string()]);
        }
        if let Some(name) = &e.enclave_name {
            a.extend(["--enclave-name".to_owned(), name.clone()]);
        }
        if e.debug_mode {
            a.extend(["--debug-mode".to_owned(), "--attach-console".to_owned()]);
        }
        a.extend(e.extra_args.iter().cloned());
        a
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str =
        "[enclave]\neif_path = \"/home/enclave.eif\"\ncpu_count = 2\nmemory_mib = 3524\n";

    #[test]
    fn minimal_config_takes_contract_defaults() {
        let c = RunConfig::parse(MINIMAL).unwrap();
        assert_eq!(c.logs.listen.to_string(), "vsock://4294967295:7000");
        assert_eq!(c.logs.max_line, 65536);
        assert_eq!(c.nitro_cli, PathBuf::from("nitro-cli"));
        assert!(c.enclave.terminate_on_shutdown);
        assert_eq!(
            c.run_enclave_args(),
            [
                "run-enclave",
                "--eif-path",
                "/home/enclave.eif",
                "--cpu-count",
                "2",
                "--memory",
                "3524"
            ]
        );
    }

    #[test]
    fn egress_ports_count_up_from_8000() {
        let c = RunConfig::parse(&format!(
            "{MINIMAL}[[egress]]\nname = \"kms\"\ntarget = \"tcp://kms.us-east-1.amazonaws.com:443\"\n[[egress]]\nname = \"sts\"\ntarget = \"tcp://sts.us-east-1.amazonaws.com:443\"\n"
        ))
        .unwrap();
        assert_eq!(c.egress_listen(0).to_string(), "vsock://4294967295:8000");
        assert_eq!(c.egress_listen(1).to_string(), "vsock://4294967295:8001");
    }

    #[test]
    fn debug_mode_adds_console_and_is_refused_in_production() {
        let dbg = MINIMAL.replace("cpu_count", "debug_mode = true\ncpu_count");
        let c = RunConfig::parse(&dbg).unwrap();
        assert!(
            c.run_enclave_args()
                .ends_with(&["--debug-mode".into(), "--attach-console".into()])
        );
        let e = RunConfig::parse(&format!("production = true\n{dbg}")).unwrap_err();
        assert!(
            e.contains("'enclave.debug_mode' is true while 'production' is true"),
            "{e}"
        );
    }

    #[test]
    fn shipped_example_configs_are_valid() {
        let prod = RunConfig::parse(include_str!("../examples/run.toml")).unwrap();
        assert!(prod.production);
        assert_eq!(prod.egress_listen(1).to_string(), "vsock://4294967295:8001");
        let local = RunConfig::parse(include_str!("../examples/local.toml")).unwrap();
        assert_eq!(local.nitro_cli, PathBuf::from("scripts/dev/nitro-cli"));
    }

    #[test]
    fn bad_configs_name_the_field() {
        let cases = [
            (
                format!("{MINIMAL}[[egress]]\nname = \"kms\"\ntarget = \"vsock://3:1\"\n"),
                "'egress[0].target'",
            ),
            (
                format!("{MINIMAL}[[egress]]\nname = \"kms\"\ntarget = \"tcp://h\"\n"),
                "missing port",
            ),
            (
                format!("{MINIMAL}[logs]\nlisten = \"vsock://3:9000\"\n"),
                "never listen on vsock port 9000",
            ),
            (
                format!("{MINIMAL}[logs]\nlisten = \"unix:///x\"\nmax_lines = 5\n"),
                "unknown field `max_lines`",
            ),
            (
                "[enclave]\neif_path = \"/e\"\ncpu_count = 2\n".to_owned(),
                "missing field `memory_mib`",
            ),
            (
                MINIMAL.replace("cpu_count = 2", "cpu_count = 0"),
                "'enclave.cpu_count'",
            ),
            (
                format!(
                    "{MINIMAL}[[ingress]]\nname = \"a\"\nlisten = \"tcp://0.0.0.0:9000\"\ntarget = \"vsock://16:9000\"\n[[ingress]]\nname = \"a\"\nlisten = \"tcp://0.0.0.0:3000\"\ntarget = \"vsock://16:3000\"\n"
                ),
                "used twice",
            ),
            ("enclave = 3".to_owned(), "invalid type"),
        ];
        for (text, needle) in cases {
            let e = RunConfig::parse(&text).unwrap_err();
            assert!(e.contains(needle), "expected '{needle}' in: {e}");
        }
    }
}
