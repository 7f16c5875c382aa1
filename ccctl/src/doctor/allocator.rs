//! The Nitro Enclaves allocator: `/etc/nitro_enclaves/allocator.yaml` must reserve at least the
//! memory and CPUs the enclave asks for (else `nitro-cli run-enclave` fails with E27/E26 or a
//! CPU error). The request comes from the parent proxy's run configuration (`--proxy-config`).

use serde::Deserialize;

use cc_proto::findings::{Finding, Severity};

use super::{BoxFuture, Check, Context};

#[derive(Debug, Deserialize)]
pub struct Allocator {
    pub memory_mib: Option<u64>,
    pub cpu_count: Option<u64>,
    /// `2,3` or `2-5,8`.
    pub cpu_pool: Option<String>,
}

impl Allocator {
    /// CPUs reserved: `cpu_count`, or the size of `cpu_pool`.
    pub fn cpus(&self) -> Option<u64> {
        if let Some(n) = self.cpu_count {
            return Some(n);
        }
        let pool = self.cpu_pool.as_ref()?;
        let mut n = 0;
        for part in pool.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part.split_once('-') {
                Some((a, b)) => {
                    let (a, b): (u64, u64) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
                    n += b.checked_sub(a)? + 1;
                }
                None => {
                    part.parse::<u64>().ok()?;
                    n += 1;
                }
            }
        }
        Some(n)
    }
}

pub struct AllocatorConfig;

impl Check for AllocatorConfig {
    fn id(&self) -> &'static str {
        "nsm.allocator"
    }
    fn description(&self) -> &'static str {
        "allocator.yaml reserves the memory and CPUs the enclave asks for"
    }
    fn run<'a>(&'a self, ctx: &'a Context) -> BoxFuture<'a, Vec<Finding>> {
        Box::pin(async move {
            let path = &ctx.allocator;
            let text = match std::fs::read_to_string(path) {
                Ok(t) => t,
                Err(e) => {
                    return vec![Finding::new(
                        "nsm.allocator-missing",
                        Severity::Error,
                        format!("cannot read {}: {e}", path.display()),
                    )
                    .with("path", path.display().to_string())
                    .fix("Install aws-nitro-enclaves-cli on the node and configure the allocator service", &["systemctl status nitro-enclaves-allocator"])];
                }
            };
            let alloc: Allocator = match serde_yaml_ng::from_str(&text) {
                Ok(a) => a,
                Err(e) => {
                    return vec![Finding::new(
                        "nsm.allocator-invalid",
                        Severity::Error,
                        format!(
                            "{} is not valid: {e} (expected memory_mib and cpu_count or cpu_pool)",
                            path.display()
                        ),
                    )];
                }
            };
            let reserved = format!(
                "reserves {} MiB, {} CPUs",
                alloc.memory_mib.map_or("?".into(), |m| m.to_string()),
                alloc.cpus().map_or("?".into(), |c| c.to_string())
            );
            ctx.saw("nsm.allocator", reserved.clone());
            let Some(cfg_path) = &ctx.proxy_config else {
                return Vec::new();
            };
            let Ok(cfg) = containment_chamber_enclave_proxy::config::RunConfig::load(cfg_path)
            else {
                // egress.endpoints reports an unreadable proxy config.
                return Vec::new();
            };
            let mut out = Vec::new();
            let want_mem = cfg.enclave.memory_mib;
            ctx.saw(
                "nsm.allocator",
                format!(
                    "{reserved}; the enclave asks {want_mem} MiB, {} CPUs",
                    cfg.enclave.cpu_count
                ),
            );
            if let Some(have) = alloc.memory_mib
                && want_mem > have
            {
                out.push(
                    Finding::new(
                        "enclave.memory-over-allocator",
                        Severity::Error,
                        format!("the enclave asks {want_mem} MiB but the allocator reserves {have} MiB: nitro-cli run-enclave fails with E27"),
                    )
                    .with("requested_mib", want_mem)
                    .with("reserved_mib", have)
                    .fix("Raise memory_mib in allocator.yaml (and the pod's hugepages) or lower the enclave's memory", &["sudo systemctl restart nitro-enclaves-allocator"]),
                );
            }
            let want_cpus = u64::from(cfg.enclave.cpu_count);
            if let Some(have) = alloc.cpus()
                && want_cpus > have
            {
                out.push(
                    Finding::new(
                        "enclave.cpus-over-allocator",
                        Severity::Error,
                        format!("the enclave asks {want_cpus} CPUs but the allocator reserves {have}"),
                    )
                    .with("requested", want_cpus)
                    .with("reserved", have)
                    .fix("Raise cpu_count (or cpu_pool) in allocator.yaml or lower the enclave's CPUs", &[]),
                );
            }
            out
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_pool_sizes() {
        let a = |s: &str| {
            Allocator {
                memory_mib: None,
                cpu_count: None,
                cpu_pool: Some(s.into()),
            }
            .cpus()
        };
        assert_eq!(a("2,3"), Some(2));
        assert_eq!(a("2-5,8"), Some(5));
        assert_eq!(a("x"), None);
        assert_eq!(a("5-2"), None);
    }
}
