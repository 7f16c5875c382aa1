//! The local checks: what `ccctl doctor --local` probes on this machine (the pod's parent
//! container, or any host running the chamber).

use std::sync::Arc;

use cc_proto::findings::{Finding, Severity};
use cc_proto::status::{HolderOutcome, Platform, SealState, Status};

use super::{BoxFuture, Check, Context};

/// Every local check, in display order.
pub fn local() -> Vec<Arc<dyn Check>> {
    vec![
        Arc::new(ConfigDebug),
        Arc::new(EnclaveNitroCli),
        Arc::new(EnclaveStatus),
        Arc::new(NsmDevice),
        Arc::new(super::allocator::AllocatorConfig),
        Arc::new(KmsHolders),
        Arc::new(LogsMetrics),
        Arc::new(super::signatures::LogSignatures),
        Arc::new(super::pcr::PcrPolicies),
        Arc::new(super::egress::EgressEndpoints),
    ]
}

/// The enclave's `/status`, asked once per doctor run (several checks read it).
pub(crate) async fn fetch_status(ctx: &Context) -> Result<Status, String> {
    ctx.status
        .get_or_init(|| async { crate::probe::status::fetch(&ctx.api, ctx.probe_timeout).await })
        .await
        .clone()
}

fn api_unreachable(ctx: &Context, why: &str) -> Finding {
    Finding::new(
        "enclave.api-unreachable",
        Severity::Error,
        format!(
            "the enclave API at {} does not answer /status: {why}",
            ctx.api
        ),
    )
    .with("address", ctx.api.to_string())
    .fix(
        "Check that the enclave runs (the first command) and that the parent's ingress forwarder for the API is running (the second lists the proxy processes; none listed: restart the parent container, whose entrypoint starts them)",
        &["ccctl enclaves", "pgrep -af containment-chamber-enclave-proxy"],
    )
}

/// `PRODUCTION=true` with `ENCLAVE_DEBUG` set.
pub struct ConfigDebug;

impl Check for ConfigDebug {
    fn id(&self) -> &'static str {
        "config.debug"
    }
    fn description(&self) -> &'static str {
        "PRODUCTION=true must not come with ENCLAVE_DEBUG"
    }
    fn run<'a>(&'a self, ctx: &'a Context) -> BoxFuture<'a, Vec<Finding>> {
        Box::pin(async move {
            let set = ctx
                .enclave_debug
                .as_deref()
                .is_some_and(|v| !matches!(v, "" | "0" | "false"));
            ctx.saw(
                "config.debug",
                format!(
                    "PRODUCTION={}, ENCLAVE_DEBUG{}",
                    if ctx.production { "true" } else { "not true" },
                    match (&ctx.enclave_debug, set) {
                        (Some(v), true) => format!("='{}'", crate::output::clean(v)),
                        (Some(_), false) => " off".to_owned(),
                        (None, _) => " unset".to_owned(),
                    }
                ),
            );
            if ctx.production && set {
                vec![Finding::new(
                    "config.debug-in-production",
                    Severity::Error,
                    format!(
                        "PRODUCTION=true and ENCLAVE_DEBUG='{}': the entrypoint refuses to start (FATAL), and a debug enclave attests all-zero PCRs",
                        ctx.enclave_debug.as_deref().unwrap_or("")
                    ),
                )
                .with("ENCLAVE_DEBUG", ctx.enclave_debug.clone())
                .fix(
                    "Unset ENCLAVE_DEBUG (helm: --set enclave.debug=false) and redeploy",
                    &["helm upgrade containment-chamber charts/containment-chamber --reuse-values --set enclave.debug=false"],
                )]
            } else {
                Vec::new()
            }
        })
    }
}

/// `nitro-cli describe-enclaves`: running, state, debug mode, nitro-cli errors.
pub struct EnclaveNitroCli;

impl Check for EnclaveNitroCli {
    fn id(&self) -> &'static str {
        "enclave.nitro-cli"
    }
    fn description(&self) -> &'static str {
        "nitro-cli describe-enclaves: one enclave RUNNING, not in debug mode"
    }
    fn run<'a>(&'a self, ctx: &'a Context) -> BoxFuture<'a, Vec<Finding>> {
        Box::pin(async move {
            let limits = crate::probe::child::Limits {
                deadline: ctx.probe_timeout,
                ..Default::default()
            };
            let described =
                match crate::probe::nitro_cli::describe_async(&ctx.nitro_cli, limits).await {
                    Ok(Ok(d)) => d,
                    Ok(Err(e)) => {
                        return vec![Finding::new(
                            "enclave.nitro-cli-error",
                            Severity::Error,
                            format!(
                                "nitro-cli describe-enclaves printed what cannot be read: {}",
                                e.0
                            ),
                        )];
                    }
                    // Over the deadline or the output cap: nitro-cli is there but misbehaves.
                    Err(e) if !e.not_started() => {
                        return vec![
                            Finding::new("enclave.nitro-cli-error", Severity::Error, e.to_string())
                                .with("nitro_cli", ctx.nitro_cli.display().to_string()),
                        ];
                    }
                    Err(e) => {
                        return vec![
                            Finding::new(
                                "enclave.nitro-cli-missing",
                                Severity::Error,
                                format!("cannot run nitro-cli: {e}"),
                            )
                            .with("nitro_cli", ctx.nitro_cli.display().to_string())
                            .fix("Install aws-nitro-enclaves-cli in the parent image", &[]),
                        ];
                    }
                };
            match described {
                Err(failure) => {
                    ctx.saw(
                        "enclave.nitro-cli",
                        format!("nitro-cli failed (exit {:?})", failure.exit_status),
                    );
                    vec![nitro_cli_error(&failure)]
                }
                Ok(list) => {
                    ctx.saw("enclave.nitro-cli", describe_enclaves(&list));
                    enclave_findings(&list, ctx.production)
                }
            }
        })
    }
}

/// `1 enclave RUNNING`, `1 enclave RUNNING (debug)`, `no enclave`, `2 enclaves: RUNNING, TERMINATING`.
pub fn describe_enclaves(list: &[cc_proto::nitro_cli::DescribedEnclave]) -> String {
    let states: Vec<String> = list
        .iter()
        .map(|e| {
            format!(
                "{}{}",
                crate::output::clean(&e.state),
                if e.debug_mode() { " (debug)" } else { "" }
            )
        })
        .collect();
    match states.len() {
        0 => "no enclave".into(),
        1 => format!("1 enclave {}", states[0]),
        n => format!("{n} enclaves: {}", states.join(", ")),
    }
}

/// What `describe-enclaves` output says: none running, not RUNNING, TERMINATING, debug mode.
pub fn enclave_findings(
    list: &[cc_proto::nitro_cli::DescribedEnclave],
    production: bool,
) -> Vec<Finding> {
    let mut out = Vec::new();
    if list.is_empty() {
        out.push(
            Finding::new(
                "enclave.not-running",
                Severity::Error,
                "nitro-cli describe-enclaves lists no enclave",
            )
            .fix(
                "Look at the pod's log for the nitro-cli run-enclave error",
                &["kubectl logs POD | grep -E 'E[0-9]{2}|FATAL'"],
            ),
        );
    }
    for e in list {
        if e.state == "TERMINATING" {
            out.push(
                Finding::new(
                    "enclave.terminating",
                    Severity::Error,
                    format!("enclave {} is TERMINATING", e.enclave_id),
                )
                .with("enclave_id", e.enclave_id.clone()),
            );
        } else if !e.running() {
            out.push(
                Finding::new(
                    "enclave.not-running",
                    Severity::Error,
                    format!("enclave {} is {}, not RUNNING", e.enclave_id, e.state),
                )
                .with("enclave_id", e.enclave_id.clone()),
            );
        }
        if e.debug_mode() {
            let sev = if production {
                Severity::Error
            } else {
                Severity::Warn
            };
            out.push(
                Finding::new(
                    "enclave.debug-mode",
                    sev,
                    format!("enclave {} runs in DEBUG_MODE: its attested PCRs are all zero, so no key policy should release a share", e.enclave_id),
                )
                .with("enclave_id", e.enclave_id.clone())
                .with("production", production)
                .fix("Restart without --debug-mode (unset ENCLAVE_DEBUG)", &[]),
            );
        }
    }
    out
}

/// Map a nitro-cli failure to its finding (the first `[ Exx ]` is the cause).
pub fn nitro_cli_error(f: &crate::probe::nitro_cli::NitroCliFailure) -> Finding {
    let Some(e) = &f.error else {
        return Finding::new(
            "enclave.nitro-cli-error",
            Severity::Error,
            format!(
                "nitro-cli describe-enclaves failed (exit {:?}): {}",
                f.exit_status,
                f.stderr.trim()
            ),
        );
    };
    let code = match e.number {
        19 => "nsm.device-missing",
        26 | 27 => "enclave.memory",
        35 => "enclave.hugepages",
        36 | 39 | 11 => "enclave.signing-certificate",
        _ => "enclave.nitro-cli-error",
    };
    Finding::new(
        code,
        Severity::Error,
        format!("nitro-cli {}: {} — {}", e.code, e.message, e.meaning),
    )
    .with("nitro_cli_code", e.code.clone())
    .with("detail", e.detail.clone())
    .with("exit_status", f.exit_status)
}

/// The enclave's own view: `/status` state, platform in production.
pub struct EnclaveStatus;

impl Check for EnclaveStatus {
    fn id(&self) -> &'static str {
        "enclave.status"
    }
    fn description(&self) -> &'static str {
        "the enclave server's /status: unsealed, right platform"
    }
    fn run<'a>(&'a self, ctx: &'a Context) -> BoxFuture<'a, Vec<Finding>> {
        Box::pin(async move {
            let st = match fetch_status(ctx).await {
                Ok(s) => s,
                Err(e) => return vec![api_unreachable(ctx, &e)],
            };
            let mut out = Vec::new();
            let reason = st.reason.clone().unwrap_or_default();
            ctx.saw(
                "enclave.status",
                format!(
                    "{}, {} of {} shares (threshold {}), platform {}",
                    st.state.as_str().to_uppercase(),
                    st.decrypted(),
                    st.holders.len(),
                    st.threshold,
                    match st.platform {
                        Platform::Software => "software",
                        _ => "nitro",
                    }
                ),
            );
            match st.state {
                SealState::Failed => out.push(
                    Finding::new(
                        "enclave.failed",
                        Severity::Error,
                        format!("the signer failed: {reason}"),
                    )
                    .with("reason", reason.clone())
                    .fix(
                        "Read the reason; the kms and nsm findings say which part",
                        &["ccctl doctor --local --checks kms,nsm"],
                    ),
                ),
                SealState::Sealed | SealState::Unsealing => out.push(
                    Finding::new(
                        "enclave.sealed",
                        Severity::Error,
                        format!(
                            "the signer is {} ({reason}); signing answers 503",
                            st.state.as_str()
                        ),
                    )
                    .with("state", st.state.as_str())
                    .with("reason", reason.clone())
                    .fix(
                        "See the kms findings for the holders that did not release",
                        &["ccctl doctor --local --checks kms,pcr"],
                    ),
                ),
                SealState::Unsealed => {}
            }
            if ctx.production && st.platform == Platform::Software {
                out.push(Finding::new(
                    "config.software-in-production",
                    Severity::Error,
                    "PRODUCTION=true but the enclave server reports the software platform (development attestation)",
                ));
            }
            out
        })
    }
}

/// `/dev/nitro_enclaves` present; NSM initialised in the enclave.
pub struct NsmDevice;

impl Check for NsmDevice {
    fn id(&self) -> &'static str {
        "nsm.device"
    }
    fn description(&self) -> &'static str {
        "/dev/nitro_enclaves present; the enclave's NSM initialised"
    }
    fn run<'a>(&'a self, ctx: &'a Context) -> BoxFuture<'a, Vec<Finding>> {
        Box::pin(async move {
            let mut out = Vec::new();
            ctx.saw(
                "nsm.device",
                format!(
                    "{} {}",
                    ctx.device.display(),
                    if ctx.device.exists() {
                        "present"
                    } else {
                        "missing"
                    }
                ),
            );
            if !ctx.device.exists() {
                out.push(
                    Finding::new(
                        "nsm.device-missing",
                        Severity::Error,
                        format!("{} is missing in this container", ctx.device.display()),
                    )
                    .with("device", ctx.device.display().to_string())
                    .fix(
                        "Request the device in the pod spec (resources.limits aws.ec2.nitro/nitro_enclaves: \"1\") and check the device plugin DaemonSet",
                        &["kubectl -n kube-system get ds aws-nitro-enclaves-k8s-daemonset"],
                    ),
                );
            }
            if let Ok(st) = fetch_status(ctx).await
                && st
                    .reason
                    .as_deref()
                    .is_some_and(|r| r.contains("NSM initialization failed"))
            {
                out.push(
                    Finding::new("nsm.init-failed", Severity::Error, st.reason.clone().unwrap_or_default())
                        .fix("The enclave cannot reach /dev/nsm: is it really running in a Nitro Enclave (platform nitro)?", &[]),
                );
            }
            out
        })
    }
}

/// Per-holder share status from `/status`.
pub struct KmsHolders;

impl Check for KmsHolders {
    fn id(&self) -> &'static str {
        "kms.holders"
    }
    fn description(&self) -> &'static str {
        "every key holder's KMS key released its share (or says why not)"
    }
    fn needs_status(&self) -> bool {
        true
    }
    fn run<'a>(&'a self, ctx: &'a Context) -> BoxFuture<'a, Vec<Finding>> {
        Box::pin(async move {
            let st = match fetch_status(ctx).await {
                Ok(s) => s,
                Err(e) => return vec![api_unreachable(ctx, &e)],
            };
            let mut out = Vec::new();
            // The commands carry what doctor knows: the config path and the running PCRs.
            let config = ctx
                .holders_config
                .as_ref()
                .map_or("ccctl.toml".to_owned(), |p| p.display().to_string());
            let pcrs = st.attestation.as_ref().map(|a| a.pcr_set());
            let released = st
                .holders
                .iter()
                .filter(|h| h.outcome == HolderOutcome::Decrypted)
                .count();
            let others: Vec<String> = st
                .holders
                .iter()
                .filter(|h| h.outcome != HolderOutcome::Decrypted)
                .map(|h| format!("{} {}", crate::output::clean(&h.name), h.outcome.as_str()))
                .collect();
            ctx.saw(
                "kms.holders",
                format!(
                    "{released}/{} holders released{}",
                    st.holders.len(),
                    if others.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", others.join(", "))
                    }
                ),
            );
            let policy_check = match pcrs.as_ref().and_then(|p| p.get(0).zip(p.get(8))) {
                Some((p0, p8)) => format!(
                    "ccctl policy check --config {} --pcr0 {} --pcr8 {}",
                    crate::output::shell_word(&config),
                    p0.hex(),
                    p8.hex()
                ),
                None => format!(
                    "ccctl doctor --local --checks pcr --config {}",
                    crate::output::shell_word(&config)
                ),
            };
            for h in &st.holders {
                let base = |code: &str, sev: Severity, summary: String| {
                    Finding::new(code, sev, summary)
                        .with("holder", h.name.clone())
                        .with("key_arn", h.key_arn.clone())
                        .with("error_code", h.error_code.clone())
                        .with("error_message", h.error_message.clone())
                };
                // Below threshold every failure matters; above it they are warnings.
                let sev = if st.decrypted() >= st.threshold as usize {
                    Severity::Warn
                } else {
                    Severity::Error
                };
                match h.outcome {
                    HolderOutcome::Denied
                        if h
                            .error_message
                            .as_deref()
                            .is_some_and(|m| m.contains("no identity-based policy allows")) =>
                    {
                        // The role as KMS named it ("…assumed-role/NAME/session…"), when it did.
                        let role = h.error_message.as_deref().and_then(|m| {
                            let rest = m.split("assumed-role/").nth(1)?;
                            let name = rest.split(['/', ' ']).next()?;
                            (!name.is_empty()
                                && name.chars().all(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c)))
                            .then(|| name.to_owned())
                        });
                        let config_q = crate::output::shell_word(&config);
                        let mut commands = vec![format!("ccctl policy check --config {config_q}")];
                        if let Some(r) = &role {
                            commands.push(format!("aws iam list-role-policies --role-name {r}"));
                        }
                        let commands: Vec<&str> = commands.iter().map(String::as_str).collect();
                        let mut f = base("kms.role-lacks-decrypt", sev, format!("holder '{}': the signer role's own IAM policy does not allow kms:Decrypt on {} (the key policy was not the problem)", h.name, h.key_arn))
                            .fix("Add kms:Decrypt on this key ARN to the signer role's IAM policy (cross-account keys need both the key policy and the role's policy); policy check judges both sides", &commands);
                        if let Some(r) = role {
                            f = f.with("role", r);
                        }
                        out.push(f)
                    }
                    HolderOutcome::Denied => out.push(
                        base("kms.access-denied", sev, format!("holder '{}' denied kms:Decrypt ({}): this PCR0/PCR8 is not in its key policy", h.name, h.error_code.as_deref().unwrap_or("AccessDeniedException")))
                            .fix("Check the holder's key policy against the running measurements", &[policy_check.as_str()]),
                    ),
                    HolderOutcome::Unreachable => out.push(
                        base("kms.unreachable", sev, format!("holder '{}': KMS unreachable ({})", h.name, h.error_message.as_deref().unwrap_or("")))
                            .fix("Check the egress forwarder for this holder's region", &["ccctl doctor --local --checks egress"]),
                    ),
                    HolderOutcome::Error => out.push(base(
                        "kms.error",
                        sev,
                        format!("holder '{}': {} {}", h.name, h.error_code.as_deref().unwrap_or(""), h.error_message.as_deref().unwrap_or("")),
                    )),
                    HolderOutcome::Decrypted | HolderOutcome::Pending => {}
                }
            }
            out
        })
    }
}

/// `/metrics` reachable; the drop counter not rising; the log listener accepting.
pub struct LogsMetrics;

impl Check for LogsMetrics {
    fn id(&self) -> &'static str {
        "logs.forwarding"
    }
    fn description(&self) -> &'static str {
        "/metrics reachable, log events not being dropped, vsock-stdout listening"
    }
    fn other_codes(&self) -> &'static [&'static str] {
        &["metrics.unreachable"]
    }
    fn run<'a>(&'a self, ctx: &'a Context) -> BoxFuture<'a, Vec<Finding>> {
        Box::pin(async move {
            let mut out = Vec::new();
            if let Some(addr) = &ctx.log_listener
                && let Err(e) = tokio::time::timeout(ctx.probe_timeout, cc_proto::connect(addr))
                    .await
                    .map_err(|_| "timed out".to_owned())
                    .and_then(|r| r.map_err(|e| e.to_string()))
            {
                out.push(
                    Finding::new("logs.listener-down", Severity::Error, format!("the log listener at {addr} does not accept: {e}"))
                        .with("address", addr.to_string())
                        .fix("Restart the parent container (the entrypoint starts vsock-stdout before the enclave)", &[]),
                );
            }
            let scrape = || crate::probe::metrics::dropped_events(&ctx.metrics, ctx.probe_timeout);
            let first = match scrape().await {
                Ok(v) => v,
                Err(e) => {
                    out.push(
                        Finding::new("metrics.unreachable", Severity::Error, e)
                            .with("address", ctx.metrics.to_string()),
                    );
                    return out;
                }
            };
            tokio::time::sleep(ctx.scrape_interval).await;
            let second = scrape().await.ok();
            ctx.saw(
                "logs.forwarding",
                format!(
                    "{} log events dropped{}{}",
                    second.unwrap_or(first),
                    match second {
                        Some(s) if s > first =>
                            format!(" (+{} in {:?})", s - first, ctx.scrape_interval),
                        Some(_) => format!(" (none in {:?})", ctx.scrape_interval),
                        None => String::new(),
                    },
                    if ctx.log_listener.is_some()
                        && !out.iter().any(|f| f.code == "logs.listener-down")
                    {
                        "; listener accepts"
                    } else {
                        ""
                    }
                ),
            );
            if let Some(second) = second
                && second > first
            {
                let rate = (second - first) / ctx.scrape_interval.as_secs_f64();
                out.push(
                    Finding::new(
                        "logs.events-dropped",
                        Severity::Error,
                        format!("the enclave is dropping log events: {rate:.1}/s ({first} → {second} in {:?})", ctx.scrape_interval),
                    )
                    .with("rate_per_second", rate)
                    .with("dropped_total", second)
                    .fix("The parent is not reading the enclave's logs: check vsock-stdout", &["ccctl doctor --local --checks logs"]),
                );
            }
            out
        })
    }
}
