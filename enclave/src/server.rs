//! `serve` and `init`: wiring of the pieces, nothing more.

use std::sync::Arc;

use cc_proto::status::SealState;
use containment_chamber_enclave_proxy::shutdown;

use crate::chamber::Chamber;
use crate::config::{Config, PlatformSetting};
use crate::keys::{Keystore, MasterKey, ValidatorKey};
use crate::kms::HolderClient;
use crate::nsm::Nsm;
use crate::shares::{EncryptedShare, ShareFile};

/// Problems that stop the server from starting (exit 2) versus failures while running (1).
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    Runtime(String),
}

/// Refuse software attestation in production, before anything starts.
pub fn check_production(cfg: &Config, production: bool) -> Result<(), ServeError> {
    if production && cfg.platform == PlatformSetting::Software {
        return Err(ServeError::Refused(
            "platform 'software' is refused when PRODUCTION=true: software attestation is signed \
             by a development root and no key holder's policy should trust it; set \
             platform = \"nitro\""
                .into(),
        ));
    }
    Ok(())
}

pub async fn serve(cfg: Config, production: bool) -> Result<(), ServeError> {
    check_production(&cfg, production)?;
    let logs = crate::log_forward::init(&cfg.logs)
        .map_err(|e| ServeError::Runtime(format!("cannot start the log pipeline: {e}")))?;
    let (nsm, nsm_error): (Option<Arc<dyn Nsm>>, Option<String>) = match crate::nsm::open(&cfg) {
        Ok(n) => (Some(Arc::from(n)), None),
        Err(e) => (None, Some(e.to_string())),
    };
    let chamber = Arc::new(Chamber::new(
        cfg.platform.into(),
        cfg.threshold,
        &cfg.holders,
        nsm,
        Some(logs),
    ));
    let (trigger, sd) = shutdown::channel();

    let api = cc_proto::listen(&cfg.listen.api)
        .await
        .map_err(|e| ServeError::Refused(e.to_string()))?;
    let metrics = cc_proto::listen(&cfg.listen.metrics)
        .await
        .map_err(|e| ServeError::Refused(e.to_string()))?;
    tracing::info!(api = %cfg.listen.api, metrics = %cfg.listen.metrics,
        platform = ?cfg.platform, threshold = cfg.threshold, holders = cfg.holders.len(),
        version = env!("CARGO_PKG_VERSION"), "enclave server listening");
    let mut servers = Vec::new();
    let limits = cfg.listen.limits();
    for (name, listener, router, probe) in [
        (
            "api",
            api,
            crate::api::router(chamber.clone()),
            Some(crate::api::probe_router(chamber.clone())),
        ),
        (
            "metrics",
            metrics,
            crate::api::metrics_router(chamber.clone()),
            None,
        ),
    ] {
        let closed = Arc::new(ClosedCounter {
            server: name,
            chamber: chamber.clone(),
        });
        servers.push(tokio::spawn(crate::http::serve(
            listener,
            router,
            probe,
            limits,
            closed,
            sd.clone(),
        )));
    }
    let egress = crate::egress::start(&cfg, sd.clone())
        .await
        .map_err(|e| ServeError::Refused(format!("egress: {e}")))?;

    let unseal = match nsm_error {
        Some(reason) => {
            tracing::error!(%reason, "cannot unseal");
            chamber.set_state(SealState::Failed, Some(reason));
            None
        }
        None => match prepare(&cfg).await {
            Ok(plan) => Some(tokio::spawn(crate::unseal::run(chamber.clone(), plan))),
            Err(reason) => {
                tracing::error!(%reason, "cannot unseal");
                chamber.set_state(SealState::Failed, Some(reason));
                None
            }
        },
    };

    let sig = shutdown::signal().await;
    tracing::info!(signal = sig, "shutting down");
    trigger.trigger();
    if let Some(u) = unseal {
        u.abort();
    }
    for s in servers.into_iter().chain(egress) {
        let _ = s.await;
    }
    tracing::info!("stopped");
    // Dropping the chamber drops the log sink's guard last: buffered events are flushed.
    drop(chamber);
    Ok(())
}

/// Counts what a server closed itself in `containment_enclave_connections_closed_total`.
struct ClosedCounter {
    server: &'static str,
    chamber: Arc<Chamber>,
}

impl crate::http::Closed for ClosedCounter {
    fn closed(&self, reason: &'static str) {
        self.chamber.metrics.closed(self.server, reason);
    }
}

async fn prepare(cfg: &Config) -> Result<crate::unseal::Plan, String> {
    let shares = ShareFile::load(&cfg.shares_file)?;
    let keystore = match &cfg.keystore_file {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .map_err(|e| format!("cannot read keystore '{}': {e}", p.display()))?;
            Some(
                serde_json::from_str::<Keystore>(&text)
                    .map_err(|e| format!("keystore '{}' is corrupted: {e}", p.display()))?,
            )
        }
        None => None,
    };
    let mut clients = Vec::new();
    for h in &cfg.holders {
        clients.push(HolderClient::new(h, cfg.kms_timeout()).await);
    }
    Ok(crate::unseal::Plan {
        clients,
        shares,
        keystore,
        recipient: cfg.use_recipient(),
    })
}

/// What `init` prints: public facts only.
#[derive(Debug, serde::Serialize)]
pub struct InitReport {
    pub shares_file: String,
    pub threshold: u32,
    pub holders: Vec<String>,
    pub keystore_file: Option<String>,
    pub validator_public_keys: Vec<String>,
}

pub async fn init(
    cfg: &Config,
    validator_keys: usize,
    force: bool,
) -> Result<InitReport, ServeError> {
    if cfg.shares_file.exists() && !force {
        return Err(ServeError::Refused(format!(
            "'{}' exists: refusing to replace the shares of a live master key (use --force)",
            cfg.shares_file.display()
        )));
    }
    if validator_keys > 0 && cfg.keystore_file.is_none() {
        return Err(ServeError::Refused(
            "--validator-keys needs 'keystore_file' in the config".into(),
        ));
    }
    let master = MasterKey::generate();
    let shares = master
        .split(cfg.threshold as usize, cfg.holders.len())
        .map_err(ServeError::Runtime)?;
    let mut encrypted = Vec::new();
    for (h, share) in cfg.holders.iter().zip(&shares) {
        let client = HolderClient::new(h, cfg.kms_timeout()).await;
        let ct = client.encrypt(share).await.map_err(|f| {
            ServeError::Runtime(format!(
                "kms:Encrypt for holder '{}' failed ({}{}): {}",
                h.name,
                f.outcome.as_str(),
                f.code.map(|c| format!(", {c}")).unwrap_or_default(),
                f.message
            ))
        })?;
        encrypted.push(EncryptedShare {
            holder: h.name.clone(),
            key_arn: h.key_arn.clone(),
            ciphertext: ShareFile::encode_ciphertext(&ct),
        });
    }
    let mut public = Vec::new();
    if let Some(path) = cfg.keystore_file.as_ref().filter(|_| validator_keys > 0) {
        let keys = (0..validator_keys)
            .map(|_| ValidatorKey::generate())
            .collect::<Result<Vec<_>, _>>()
            .map_err(ServeError::Runtime)?;
        let ks = Keystore::seal(&master, &keys).map_err(ServeError::Runtime)?;
        public = ks.keys.iter().map(|k| k.pubkey.clone()).collect();
        let text =
            serde_json::to_string_pretty(&ks).map_err(|e| ServeError::Runtime(e.to_string()))?;
        crate::shares::write_atomically(path, text.as_bytes()).map_err(ServeError::Runtime)?;
    }
    ShareFile::new(cfg.threshold, master.check_value(), encrypted)
        .save(&cfg.shares_file)
        .map_err(ServeError::Runtime)?;
    Ok(InitReport {
        shares_file: cfg.shares_file.display().to_string(),
        threshold: cfg.threshold,
        holders: cfg.holders.iter().map(|h| h.name.clone()).collect(),
        keystore_file: cfg
            .keystore_file
            .as_ref()
            .filter(|_| validator_keys > 0)
            .map(|p| p.display().to_string()),
        validator_public_keys: public,
    })
}
