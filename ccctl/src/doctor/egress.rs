//! The egress family: for each endpoint of the parent proxy's configuration, is its forwarder
//! listening, does the upstream accept a TCP connection and complete a TLS handshake from the
//! parent within the deadline, and does the allowlist contain it?
//!
//! The TLS probe only proves the endpoint speaks TLS: it accepts any certificate, because
//! validating KMS's certificate is the enclave's job (its TLS runs end to end through the
//! forwarder) and the parent must not need a trust store for that.

use cc_proto::findings::{Finding, Severity};
use containment_chamber_enclave_proxy::allowlist::AllowlistFile;
use containment_chamber_enclave_proxy::config::RunConfig;

use super::{BoxFuture, Check, Context};

pub struct EgressEndpoints;

impl Check for EgressEndpoints {
    fn id(&self) -> &'static str {
        "egress.endpoints"
    }
    fn description(&self) -> &'static str {
        "each egress endpoint: forwarder listening, upstream TCP + TLS, in the allowlist"
    }
    fn skipped(&self, ctx: &Context) -> Option<String> {
        ctx.proxy_config.is_none().then(|| {
            "no --proxy-config (CCCTL_PROXY_CONFIG): the egress endpoints were not probed"
                .to_owned()
        })
    }
    fn run<'a>(&'a self, ctx: &'a Context) -> BoxFuture<'a, Vec<Finding>> {
        Box::pin(async move {
            let Some(path) = &ctx.proxy_config else {
                return Vec::new();
            };
            let cfg = match RunConfig::load(path) {
                Ok(c) => c,
                Err(e) => {
                    return vec![
                        Finding::new("egress.config-unreadable", Severity::Error, e.to_string())
                            .with("path", path.display().to_string()),
                    ];
                }
            };
            let allowlist = cfg
                .allowlist
                .as_ref()
                .map(|p| (p.clone(), AllowlistFile::load(p)));
            let mut out = Vec::new();
            if let Some((p, Err(e))) = &allowlist {
                out.push(
                    Finding::new(
                        "egress.allowlist-unreadable",
                        Severity::Error,
                        e.to_string(),
                    )
                    .with("path", p.display().to_string()),
                );
            }
            let mut tasks = tokio::task::JoinSet::new();
            for (i, e) in cfg.egress.iter().enumerate() {
                let listen = cfg.egress_listen(i);
                let (name, target, timeout) = (e.name.clone(), e.target.clone(), ctx.probe_timeout);
                tasks.spawn(async move {
                    let mut found = Vec::new();
                    let ev = |f: Finding| f.with("endpoint", name.clone()).with("listen", listen.to_string()).with("target", target.to_string());
                    // The forwarder's listener (vsock only from a build with the vsock feature).
                    if let Some(Err(why)) = crate::probe::egress::forwarder(&listen, timeout).await {
                        found.push(ev(Finding::new(
                            "egress.proxy-down",
                            Severity::Error,
                            format!("the egress forwarder '{name}' does not listen on {listen}: {why}"),
                        ))
                        .fix("The command lists the proxy processes: when this endpoint's forwarder is not among them, restart the parent container (its entrypoint starts one forwarder per endpoint and the pod log says why one stopped)", &["pgrep -af containment-chamber-enclave-proxy"]));
                    }
                    if let Some((host, port)) = target.tcp_host_port()
                        && let Err((code, why)) = crate::probe::egress::upstream(host, port, timeout).await
                    {
                        found.push(ev(Finding::new(code, Severity::Error, format!("'{name}': {why}")))
                            .fix("Check the node's outbound network (security groups, NAT, DNS) to this endpoint", &[]));
                    }
                    (i, found)
                });
            }
            let mut per: Vec<(usize, Vec<Finding>)> = Vec::new();
            while let Some(Ok(r)) = tasks.join_next().await {
                per.push(r);
            }
            per.sort_by_key(|(i, _)| *i);
            let failing = per.iter().filter(|(_, f)| !f.is_empty()).count();
            ctx.saw(
                "egress.endpoints",
                format!(
                    "{}: {}",
                    crate::output::plural(cfg.egress.len(), "endpoint", "endpoints"),
                    if failing == 0 {
                        "forwarder listening, upstream TCP + TLS answering".to_owned()
                    } else {
                        format!("{failing} failing")
                    }
                ),
            );
            for (i, found) in per {
                out.extend(found);
                let e = &cfg.egress[i];
                if let (Some((p, Ok(list))), Some((host, port))) =
                    (&allowlist, e.target.tcp_host_port())
                    && !list.allows(host, port).await
                {
                    out.push(
                        Finding::new(
                            "egress.not-allowlisted",
                            Severity::Error,
                            format!("'{}' ({host}:{port}) is not in the allowlist {}: the forwarder refuses to start", e.name, p.display()),
                        )
                        .with("endpoint", e.name.clone())
                        .with("allowlist", p.display().to_string())
                        .fix("Add {address, port} for it to the allowlist", &[]),
                    );
                }
            }
            out
        })
    }
}
