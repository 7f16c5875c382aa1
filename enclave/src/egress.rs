//! Egress from inside the enclave. The enclave has no network: each configured endpoint
//! (KMS per region, STS, ...) gets a loopback listener (`127.0.0.N:443`) whose connections are
//! forwarded to the parent's egress forwarder (`vsock://3:8000+i`), and the host name is
//! mapped to that address in the hosts file, so the AWS SDK's TLS runs end to end.

use std::path::Path;
use std::time::Duration;

use containment_chamber_enclave_proxy::forward::{self, Forwarder};
use containment_chamber_enclave_proxy::metrics::Metrics;
use containment_chamber_enclave_proxy::shutdown::Shutdown;

use crate::config::Config;

const BEGIN: &str = "# BEGIN containment-chamber egress";
const END: &str = "# END containment-chamber egress";

/// Start one forwarder per endpoint; returns their tasks.
pub async fn start(
    cfg: &Config,
    shutdown: Shutdown,
) -> std::io::Result<Vec<tokio::task::JoinHandle<()>>> {
    let metrics = Metrics::new();
    let mut tasks = Vec::new();
    let mut hosts = Vec::new();
    for (i, e) in cfg.egress.iter().enumerate() {
        let (listen, target) = cfg.egress_addresses(i);
        let l = cc_proto::listen(&listen).await?;
        if let Some((ip, _)) = listen.tcp_host_port() {
            hosts.push(format!("{ip} {}", e.host));
        }
        tracing::info!(host = %e.host, %listen, %target, "egress listening");
        tasks.push(tokio::spawn(forward::serve(
            l,
            Forwarder {
                name: e.host.clone(),
                target,
                connect_timeout: Duration::from_secs(5),
                grace: Duration::from_secs(1),
                limits: forward::Limits::default(),
            },
            metrics.clone(),
            shutdown.clone(),
        )));
    }
    if let Some(path) = &cfg.hosts_file {
        map_hosts(path, &hosts)?;
    }
    Ok(tasks)
}

/// Replace our block in the hosts file (other lines are kept).
pub fn map_hosts(path: &Path, entries: &[String]) -> std::io::Result<()> {
    let old = std::fs::read_to_string(path).unwrap_or_default();
    let mut out = String::new();
    let mut skipping = false;
    for line in old.lines() {
        if line == BEGIN {
            skipping = true;
        } else if line == END {
            skipping = false;
        } else if !skipping {
            out.push_str(line);
            out.push('\n');
        }
    }
    if !entries.is_empty() {
        out.push_str(BEGIN);
        out.push('\n');
        for e in entries {
            out.push_str(e);
            out.push('\n');
        }
        out.push_str(END);
        out.push('\n');
    }
    std::fs::write(path, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_block_is_replaced_not_appended() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("hosts");
        std::fs::write(&p, "127.0.0.1 localhost\n").unwrap();
        map_hosts(&p, &["127.0.0.2 kms.us-east-1.amazonaws.com".into()]).unwrap();
        map_hosts(&p, &["127.0.0.2 kms.eu-west-1.amazonaws.com".into()]).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert_eq!(
            text,
            format!("127.0.0.1 localhost\n{BEGIN}\n127.0.0.2 kms.eu-west-1.amazonaws.com\n{END}\n")
        );
    }
}
