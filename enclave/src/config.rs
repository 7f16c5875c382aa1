//! Settings of the enclave server: one TOML file, then environment overrides, validated once
//! at start into the value the rest of the program takes. Errors name the field.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cc_proto::Address;
use cc_proto::status::Platform;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub platform: PlatformSetting,
    #[serde(default = "default_threshold")]
    pub threshold: u32,
    /// The encrypted Shamir shares (written by `init`).
    pub shares_file: PathBuf,
    /// Validator keys encrypted under the master key (written by `init --validator-keys`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keystore_file: Option<PathBuf>,
    /// Per-call deadline of `kms:Decrypt`.
    #[serde(default = "default_kms_timeout_ms")]
    pub kms_timeout_ms: u64,
    /// Ask KMS to answer for a Recipient (attestation document with an ephemeral RSA key).
    /// Default: true on `nitro`, false on `software`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_recipient: Option<bool>,
    #[serde(default)]
    pub listen: Listen,
    #[serde(default)]
    pub logs: Logs,
    #[serde(default)]
    pub software: Software,
    #[serde(rename = "holder", default)]
    pub holders: Vec<Holder>,
    #[serde(default)]
    pub egress: Vec<Egress>,
    /// `/etc/hosts`-style file to map egress host names to their loopback addresses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hosts_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlatformSetting {
    Nitro,
    Software,
}

impl From<PlatformSetting> for Platform {
    fn from(p: PlatformSetting) -> Self {
        match p {
            PlatformSetting::Nitro => Platform::Nitro,
            PlatformSetting::Software => Platform::Software,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listen {
    #[serde(default = "default_api")]
    pub api: Address,
    #[serde(default = "default_metrics")]
    pub metrics: Address,
    /// Connections open at once, per server (API, metrics); more are closed on accept.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Connections beyond the cap served only `/upcheck` and `/healthcheck` (API).
    #[serde(default = "default_probe_slots")]
    pub probe_slots: usize,
    /// A request head must arrive within this (slowloris; idle keep-alive between requests).
    #[serde(default = "default_header_timeout_ms")]
    pub header_timeout_ms: u64,
    /// A connection that moves no byte for this long is closed.
    #[serde(default = "default_idle_timeout_ms")]
    pub idle_timeout_ms: u64,
}

impl Default for Listen {
    fn default() -> Self {
        Self {
            api: default_api(),
            metrics: default_metrics(),
            max_connections: default_max_connections(),
            probe_slots: default_probe_slots(),
            header_timeout_ms: default_header_timeout_ms(),
            idle_timeout_ms: default_idle_timeout_ms(),
        }
    }
}

impl Listen {
    pub fn limits(&self) -> crate::http::Limits {
        crate::http::Limits {
            max_connections: self.max_connections.max(1),
            probe_slots: self.probe_slots,
            header_timeout: std::time::Duration::from_millis(self.header_timeout_ms.max(1)),
            idle_timeout: std::time::Duration::from_millis(self.idle_timeout_ms.max(1)),
        }
    }
}

fn default_max_connections() -> usize {
    256
}
fn default_probe_slots() -> usize {
    8
}
fn default_header_timeout_ms() -> u64 {
    10_000
}
fn default_idle_timeout_ms() -> u64 {
    60_000
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Logs {
    /// Where log events go (the parent's vsock-stdout).
    #[serde(default = "default_logs")]
    pub target: Address,
    /// Events buffered between the request threads and the sender; beyond it they are dropped.
    #[serde(default = "default_log_buffer")]
    pub buffer: usize,
    /// Also write events to stdout (the console, visible only in debug mode).
    #[serde(default)]
    pub stdout: bool,
    #[serde(default = "default_level")]
    pub level: String,
}

impl Default for Logs {
    fn default() -> Self {
        Self {
            target: default_logs(),
            buffer: default_log_buffer(),
            stdout: false,
            level: default_level(),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Software {
    /// Folder of the development root (`root.key`, `root.pem`); generated there if absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_dir: Option<PathBuf>,
    /// PCR index (`0` or `PCR0`) → hex value the software NSM attests. Overrides `eif`.
    #[serde(default)]
    pub pcrs: BTreeMap<String, String>,
    /// Attest the measurements (PCR0, 1, 2 and, if signed, 8) of this EIF.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eif: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub module_id: Option<String>,
}

impl Software {
    /// The configured PCRs by index, validated (index 0–31, 48 bytes each): the EIF's
    /// measurements first, then `pcrs` on top.
    pub fn pcr_values(&self) -> Result<BTreeMap<u16, Vec<u8>>, String> {
        let mut out = BTreeMap::new();
        if let Some(path) = &self.eif {
            let f = std::fs::File::open(path)
                .map_err(|e| format!("'software.eif': cannot open '{}': {e}", path.display()))?;
            let len = f.metadata().map(|m| m.len()).unwrap_or(0);
            let info = cc_proto::eif::describe(std::io::BufReader::new(f), len)
                .map_err(|e| format!("'software.eif' '{}': {e}", path.display()))?;
            let m = info.measurements;
            for (i, v) in [
                (0u16, Some(m.pcr0)),
                (1, Some(m.pcr1)),
                (2, Some(m.pcr2)),
                (8, m.pcr8),
            ] {
                if let Some(v) = v {
                    out.insert(i, hex::decode(v).unwrap_or_default());
                }
            }
        }
        for (key, hex_value) in &self.pcrs {
            let idx = key
                .strip_prefix("PCR")
                .unwrap_or(key)
                .parse::<u16>()
                .ok()
                .filter(|i| *i <= 31)
                .ok_or_else(|| format!("'software.pcrs.{key}': PCR index must be 0 to 31"))?;
            match hex::decode(hex_value) {
                Ok(b) if b.len() == 48 => {
                    out.insert(idx, b);
                }
                _ => {
                    return Err(format!(
                        "'software.pcrs.{key}' is '{hex_value}': expected 96 hex digits (SHA-384)"
                    ));
                }
            }
        }
        Ok(out)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Holder {
    pub name: String,
    pub key_arn: String,
    pub region: String,
    /// KMS endpoint override (moto, the demo's local KMS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Egress {
    pub host: String,
    #[serde(default = "default_https")]
    pub port: u16,
    /// Default `tcp://127.0.0.{2+i}:{port}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen: Option<Address>,
    /// Default `vsock://3:{8000+i}` (the parent's egress forwarder).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<Address>,
}

fn default_threshold() -> u32 {
    2
}
fn default_kms_timeout_ms() -> u64 {
    5000
}
fn default_api() -> Address {
    Address::Vsock {
        cid: cc_proto::ports::CID_ANY,
        port: cc_proto::ports::API_PORT.into(),
    }
}
fn default_metrics() -> Address {
    Address::Vsock {
        cid: cc_proto::ports::CID_ANY,
        port: cc_proto::ports::METRICS_PORT.into(),
    }
}
fn default_logs() -> Address {
    Address::Vsock {
        cid: cc_proto::ports::PARENT_CID,
        port: cc_proto::ports::LOG_PORT,
    }
}
fn default_log_buffer() -> usize {
    16_384
}
fn default_level() -> String {
    "info".into()
}
fn default_https() -> u16 {
    443
}

/// Environment variables that override the file (the container's way to configure).
pub const ENV_OVERRIDES: &[(&str, &str)] = &[
    ("CC_PLATFORM", "platform"),
    ("CC_THRESHOLD", "threshold"),
    ("CC_SHARES_FILE", "shares_file"),
    ("CC_KEYSTORE_FILE", "keystore_file"),
    ("CC_LISTEN_API", "listen.api"),
    ("CC_LISTEN_METRICS", "listen.metrics"),
    ("CC_LISTEN_MAX_CONNECTIONS", "listen.max_connections"),
    ("CC_LISTEN_PROBE_SLOTS", "listen.probe_slots"),
    ("CC_LISTEN_HEADER_TIMEOUT_MS", "listen.header_timeout_ms"),
    ("CC_LISTEN_IDLE_TIMEOUT_MS", "listen.idle_timeout_ms"),
    ("CC_LOGS_TARGET", "logs.target"),
    ("CC_KMS_TIMEOUT_MS", "kms_timeout_ms"),
];

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

impl Config {
    /// Read `path`, apply `env` overrides (see [`ENV_OVERRIDES`]), validate.
    pub fn load(path: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, env).map_err(|message| ConfigError::Invalid {
            path: path.to_owned(),
            message,
        })
    }

    pub fn parse(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Self, String> {
        let mut doc: toml::Table = toml::from_str(text).map_err(|e| e.to_string())?;
        for (var, field) in ENV_OVERRIDES {
            if let Some(value) = env(var) {
                set_field(&mut doc, field, &value)
                    .map_err(|e| format!("environment {var}='{value}': {e}"))?;
            }
        }
        let cfg: Config = doc.try_into().map_err(|e: toml::de::Error| e.to_string())?;
        cfg.validate()?;
        Ok(cfg)
    }

    fn validate(&self) -> Result<(), String> {
        let n = self.holders.len() as u32;
        if self.holders.is_empty() {
            return Err("no [[holder]] entries: at least 2 key holders are needed".into());
        }
        if self.threshold < 2 {
            return Err(format!(
                "'threshold' is {}: expected at least 2 (one share must never be enough)",
                self.threshold
            ));
        }
        if self.threshold > n {
            return Err(format!(
                "'threshold' is {} but only {n} holders are configured",
                self.threshold
            ));
        }
        let mut names = std::collections::HashSet::new();
        for (i, h) in self.holders.iter().enumerate() {
            if h.name.is_empty() || !names.insert(h.name.as_str()) {
                return Err(format!(
                    "'holder[{i}].name' '{}' is empty or used twice",
                    h.name
                ));
            }
            if !h.key_arn.starts_with("arn:") {
                return Err(format!(
                    "'holder[{i}].key_arn' is '{}': expected arn:aws:kms:REGION:ACCOUNT:key/ID",
                    h.key_arn
                ));
            }
            if h.region.is_empty() {
                return Err(format!("'holder[{i}].region' is empty"));
            }
        }
        self.software.pcr_values()?;
        if self.logs.buffer == 0 {
            return Err("'logs.buffer' must be at least 1".into());
        }
        if self.kms_timeout_ms == 0 {
            return Err("'kms_timeout_ms' must be more than 0".into());
        }
        Ok(())
    }

    pub fn kms_timeout(&self) -> Duration {
        Duration::from_millis(self.kms_timeout_ms)
    }

    pub fn use_recipient(&self) -> bool {
        self.kms_recipient
            .unwrap_or(self.platform == PlatformSetting::Nitro)
    }

    /// Listen and target address of egress endpoint `i`.
    pub fn egress_addresses(&self, i: usize) -> (Address, Address) {
        let e = &self.egress[i];
        let listen = e.listen.clone().unwrap_or(Address::Tcp {
            host: format!("127.0.0.{}", 2 + i),
            port: e.port,
        });
        let target = e.target.clone().unwrap_or(Address::Vsock {
            cid: cc_proto::ports::PARENT_CID,
            port: cc_proto::ports::egress_port(i),
        });
        (listen, target)
    }
}

/// Set `a.b` in a TOML table from a string, keeping integers integers.
fn set_field(doc: &mut toml::Table, path: &str, value: &str) -> Result<(), String> {
    let (table, key) = match path.split_once('.') {
        Some((t, k)) => {
            let entry = doc
                .entry(t.to_owned())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            let Some(t) = entry.as_table_mut() else {
                return Err(format!("'{t}' is not a table"));
            };
            (t, k)
        }
        None => (doc, path),
    };
    let v = match value.parse::<i64>() {
        Ok(i) => toml::Value::Integer(i),
        Err(_) => toml::Value::String(value.to_owned()),
    };
    table.insert(key.to_owned(), v);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
platform = "software"
shares_file = "/tmp/shares.json"
[[holder]]
name = "alice"
key_arn = "arn:aws:kms:us-east-1:111111111111:key/a"
region = "us-east-1"
[[holder]]
name = "bob"
key_arn = "arn:aws:kms:eu-west-1:222222222222:key/b"
region = "eu-west-1"
endpoint = "http://127.0.0.1:5000"
"#;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn defaults_follow_the_contract() {
        let c = Config::parse(BASE, &no_env).unwrap();
        assert_eq!(c.threshold, 2);
        assert_eq!(c.listen.api.to_string(), "vsock://4294967295:9000");
        assert_eq!(c.listen.metrics.to_string(), "vsock://4294967295:3000");
        assert_eq!(c.logs.target.to_string(), "vsock://3:7000");
        assert!(!c.use_recipient());
    }

    #[test]
    fn environment_overrides_the_file() {
        let env = |k: &str| match k {
            "CC_LISTEN_API" => Some("tcp://127.0.0.1:19000".to_owned()),
            "CC_PLATFORM" => Some("nitro".to_owned()),
            _ => None,
        };
        let c = Config::parse(BASE, &env).unwrap();
        assert_eq!(c.listen.api.to_string(), "tcp://127.0.0.1:19000");
        assert_eq!(c.platform, PlatformSetting::Nitro);
        assert!(c.use_recipient());
        let bad = |k: &str| (k == "CC_THRESHOLD").then(|| "3".to_owned());
        let e = Config::parse(BASE, &bad).unwrap_err();
        assert!(e.contains("'threshold' is 3 but only 2 holders"), "{e}");
    }

    #[test]
    fn egress_defaults() {
        let c = Config::parse(
            &format!("{BASE}[[egress]]\nhost = \"kms.us-east-1.amazonaws.com\"\n[[egress]]\nhost = \"sts.amazonaws.com\"\n"),
            &no_env,
        )
        .unwrap();
        let (l, t) = c.egress_addresses(1);
        assert_eq!(l.to_string(), "tcp://127.0.0.3:443");
        assert_eq!(t.to_string(), "vsock://3:8001");
    }

    #[test]
    fn software_pcrs_can_come_from_an_eif() {
        let eif = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../shared/fixtures/eif/synthetic_signed.eif");
        let text = format!(
            "{BASE}[software]\neif = \"{}\"\n[software.pcrs]\n1 = \"{}\"\n",
            eif.display(),
            "11".repeat(48)
        );
        let c = Config::parse(&text, &no_env).unwrap();
        let p = c.software.pcr_values().unwrap();
        assert_eq!(
            hex::encode(&p[&0]),
            "f50ca4f69fb893ad5f5f731dcbc98ba2baa31fe82aa2a251d225903337d455c3e18d99d11f661e599845249403d77872"
        );
        assert_eq!(
            hex::encode(&p[&8]),
            "449c03c2109b5c7072a3275aa0234a6dbdd687447f9bc1be6c9fbaed1396c37e28f2e557c2990f6e6d3db9561aa6b484"
        );
        assert_eq!(p[&1], vec![0x11; 48], "explicit pcrs override the EIF");
        let bad = format!("{BASE}[software]\neif = \"/nonexistent.eif\"\n");
        assert!(
            Config::parse(&bad, &no_env)
                .unwrap_err()
                .contains("'software.eif': cannot open")
        );
    }

    #[test]
    fn shipped_example_is_valid() {
        let c = Config::parse(include_str!("../examples/enclave.toml"), &no_env).unwrap();
        assert_eq!(c.platform, PlatformSetting::Nitro);
        assert_eq!(c.holders.len(), 3);
        assert_eq!(c.egress_addresses(2).1.to_string(), "vsock://3:8002");
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (
                BASE.replace("platform = \"software\"", "platform = \"sgx\""),
                "unknown variant `sgx`",
            ),
            (
                BASE.replace("key/a", "key/a\"\nkey_id = \"x"),
                "unknown field `key_id`",
            ),
            (
                BASE.replace("arn:aws:kms:us-east-1:111111111111:key/a", "alias/a"),
                "'holder[0].key_arn'",
            ),
            (format!("threshold = 1\n{BASE}"), "'threshold' is 1"),
            (
                BASE.replace("name = \"bob\"", "name = \"alice\""),
                "'holder[1].name' 'alice'",
            ),
            (
                format!("{BASE}[software.pcrs]\n0 = \"abcd\"\n"),
                "'software.pcrs.0'",
            ),
            (
                BASE.replace("[[holder]]", "[[holders]]"),
                "unknown field `holders`",
            ),
            (
                "platform = \"software\"\nshares_file = \"x\"\n".to_owned(),
                "no [[holder]] entries",
            ),
        ];
        for (text, needle) in cases {
            let e = Config::parse(&text, &no_env).unwrap_err();
            assert!(e.contains(needle), "expected '{needle}' in: {e}");
        }
    }
}
