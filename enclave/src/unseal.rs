//! Unsealing: attest, ask every holder's KMS key for its share concurrently (each call with
//! its own deadline), combine as soon as the threshold is in, retry the others with the shared
//! backoff until it is. Every outcome is recorded per holder for `/status`.

use std::sync::Arc;

use cc_proto::Backoff;
use cc_proto::status::{HolderOutcome, SealState};
use rsa::RsaPrivateKey;
use rsa::pkcs8::EncodePublicKey;
use tokio::task::JoinSet;

use crate::chamber::Chamber;
use crate::keys::{Keystore, MasterKey, Share};
use crate::kms::{HolderClient, Mode};
use crate::shares::ShareFile;

pub struct Plan {
    pub clients: Vec<HolderClient>,
    pub shares: ShareFile,
    pub keystore: Option<Keystore>,
    pub recipient: bool,
}

/// Run until unsealed or failed. Returns the final state.
pub async fn run(chamber: Arc<Chamber>, plan: Plan) -> SealState {
    match unseal(&chamber, plan).await {
        Ok(()) => SealState::Unsealed,
        Err(reason) => {
            chamber.set_state(SealState::Failed, Some(reason));
            SealState::Failed
        }
    }
}

async fn unseal(chamber: &Arc<Chamber>, plan: Plan) -> Result<(), String> {
    let threshold = chamber.threshold as usize;
    if plan.shares.threshold != chamber.threshold {
        return Err(format!(
            "share file threshold is {} but the configuration says {}; re-run init or fix 'threshold'",
            plan.shares.threshold, chamber.threshold
        ));
    }
    chamber.set_state(
        SealState::Unsealing,
        Some("asking the key holders for shares".into()),
    );
    let nsm = chamber.nsm.clone();
    // Nitro mode: an ephemeral RSA key whose public half goes into the attestation document;
    // KMS encrypts each share to it.
    let rsa_key = if plan.recipient {
        let key = tokio::task::spawn_blocking(|| RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048))
            .await
            .map_err(|e| format!("recipient key generation failed: {e}"))?
            .map_err(|e| format!("recipient key generation failed: {e}"))?;
        Some(Arc::new(key))
    } else {
        None
    };
    let public_der = match &rsa_key {
        Some(k) => Some(
            k.to_public_key()
                .to_public_key_der()
                .map_err(|e| format!("recipient key encoding failed: {e}"))?
                .into_vec(),
        ),
        None => None,
    };
    let clients: Vec<Arc<HolderClient>> = plan.clients.into_iter().map(Arc::new).collect();
    let mut got: Vec<(String, Share)> = Vec::new();
    let mut backoff = Backoff::default();
    let mut round: u32 = 0;
    loop {
        round += 1;
        // A fresh document each round (KMS rejects stale ones).
        let attestation = match &nsm {
            Some(n) => {
                let doc = n
                    .attest(None, None, public_der.as_deref())
                    .map_err(|e| e.to_string())?;
                if let Ok(parsed) = cc_proto::attestation::parse(&doc) {
                    chamber.set_attestation(&parsed.doc);
                }
                Some(Arc::new(doc))
            }
            None => None,
        };
        let mut calls = JoinSet::new();
        for c in &clients {
            if got.iter().any(|(n, _)| *n == c.name) {
                continue;
            }
            let Some(share) = plan.shares.share_for(&c.name).cloned() else {
                chamber.record_holder(
                    &c.name,
                    HolderOutcome::Error,
                    None,
                    Some("the share file has no share for this holder".into()),
                );
                continue;
            };
            let (c, att, key) = (c.clone(), attestation.clone(), rsa_key.clone());
            calls.spawn(async move {
                let mode = match (&att, &key) {
                    (Some(a), Some(k)) => Mode::Recipient {
                        attestation: a.as_slice(),
                        key: k,
                    },
                    (None, Some(_)) => {
                        return (
                            c.name.clone(),
                            Err(crate::kms::Failure {
                                outcome: HolderOutcome::Error,
                                code: None,
                                message: "no attestation document for the Recipient request".into(),
                            }),
                        );
                    }
                    _ => Mode::Plain,
                };
                (c.name.clone(), c.decrypt(&share, mode).await)
            });
        }
        while let Some(done) = calls.join_next().await {
            let Ok((name, result)) = done else { continue };
            if let Some(share) = record(chamber, name.clone(), result) {
                got.push((name, share));
            }
            if got.len() >= threshold {
                if let Some(master) = combine(&got, threshold, &plan.shares.check) {
                    // Calls still in flight finish in the background so /status shows every
                    // holder's real state (a denied holder matters even after unsealing);
                    // their shares are dropped (zeroized) unused.
                    let c = chamber.clone();
                    tokio::spawn(async move {
                        while let Some(Ok((name, result))) = calls.join_next().await {
                            drop(record(&c, name, result));
                        }
                    });
                    return finish(chamber, master, plan.keystore.as_ref());
                }
                if got.len() == clients.len() || calls.is_empty() {
                    return Err(format!(
                        "the {} released shares do not combine to the key in the share file \
                         (check value mismatch): a share ciphertext is corrupted or belongs to \
                         another key; re-run init",
                        got.len()
                    ));
                }
            }
        }
        let waiting: Vec<String> = chamber
            .holders()
            .iter()
            .filter(|h| h.outcome != HolderOutcome::Decrypted)
            .map(|h| match &h.error_code {
                Some(code) => format!("{} ({}: {code})", h.name, h.outcome.as_str()),
                None => format!("{} ({})", h.name, h.outcome.as_str()),
            })
            .collect();
        let delay = backoff.next_delay();
        chamber.set_state(
            SealState::Unsealing,
            Some(format!(
                "{} of {threshold} shares; waiting for {}; retrying in {}s ({} so far)",
                got.len(),
                waiting.join(", "),
                delay.as_secs().max(1),
                if round == 1 {
                    "1 attempt".to_owned()
                } else {
                    format!("{round} attempts")
                }
            )),
        );
        tokio::time::sleep(delay).await;
    }
}

fn record(
    chamber: &Chamber,
    name: String,
    result: Result<Share, crate::kms::Failure>,
) -> Option<Share> {
    match result {
        Ok(share) => {
            chamber.record_holder(&name, HolderOutcome::Decrypted, None, None);
            tracing::info!(holder = %name, "share released");
            Some(share)
        }
        Err(f) => {
            tracing::warn!(holder = %name, outcome = f.outcome.as_str(),
                code = f.code.as_deref().unwrap_or(""), message = %f.message, "share not released");
            chamber.record_holder(&name, f.outcome, f.code, Some(f.message));
            None
        }
    }
}

/// Try threshold-sized subsets in order until one matches the check value.
fn combine(got: &[(String, Share)], threshold: usize, check: &str) -> Option<MasterKey> {
    let n = got.len();
    let mut idx: Vec<usize> = (0..threshold).collect();
    loop {
        let subset: Vec<&Share> = idx.iter().map(|i| &got[*i].1).collect();
        if let Some(k) = MasterKey::combine(&subset)
            && k.check_value() == check
        {
            return Some(k);
        }
        // Next combination in lexicographic order.
        let mut i = threshold;
        loop {
            if i == 0 {
                return None;
            }
            i -= 1;
            if idx[i] < n - threshold + i {
                idx[i] += 1;
                for j in i + 1..threshold {
                    idx[j] = idx[j - 1] + 1;
                }
                break;
            }
        }
    }
}

fn finish(
    chamber: &Arc<Chamber>,
    master: MasterKey,
    keystore: Option<&Keystore>,
) -> Result<(), String> {
    if let Some(ks) = keystore {
        let keys = ks.open(&master)?;
        tracing::info!(validator_keys = keys.len(), "keystore opened");
        chamber.install_keys(keys);
    }
    drop(master);
    chamber.set_state(SealState::Unsealed, None);
    Ok(())
}
