//! The key holders' KMS keys through aws-sdk-kms: `Encrypt` (init) and `Decrypt` (unseal),
//! with each failure classified the way an operator needs it: denied by the key policy,
//! KMS unreachable, or another error, each with the KMS error code and message.

use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_kms::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{KeyEncryptionMechanism, RecipientInfo};
use cc_proto::status::HolderOutcome;
use rsa::RsaPrivateKey;

use crate::config::Holder;
use crate::keys::Share;
use crate::shares::{EncryptedShare, encryption_context};

/// A KMS client bound to one holder's key.
#[derive(Debug, Clone)]
pub struct HolderClient {
    pub name: String,
    pub key_arn: String,
    pub region: String,
    client: aws_sdk_kms::Client,
    timeout: Duration,
}

/// Why a decrypt did not give a share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub outcome: HolderOutcome,
    pub code: Option<String>,
    pub message: String,
}

/// How to ask for the share.
pub enum Mode<'a> {
    /// Software mode: the plaintext comes back in the response.
    Plain,
    /// Nitro mode: KMS encrypts the answer to the RSA key in the attestation document.
    Recipient {
        attestation: &'a [u8],
        key: &'a RsaPrivateKey,
    },
}

impl HolderClient {
    /// Credentials, profile and `AWS_ENDPOINT_URL_KMS` come from the standard AWS chain; the
    /// holder's `endpoint` overrides. Retries are off: the unseal loop retries with the
    /// chamber's own backoff and records every attempt.
    pub async fn new(holder: &Holder, timeout: Duration) -> HolderClient {
        let sdk = aws_config::defaults(BehaviorVersion::latest())
            .region(aws_config::Region::new(holder.region.clone()))
            .retry_config(RetryConfig::disabled())
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(timeout)
                    .operation_timeout(timeout)
                    .build(),
            )
            .load()
            .await;
        Self::from_sdk(holder, timeout, &sdk)
    }

    /// Same, from an already loaded SDK configuration (tests pass static credentials).
    pub fn from_sdk(
        holder: &Holder,
        timeout: Duration,
        sdk: &aws_config::SdkConfig,
    ) -> HolderClient {
        let mut b = aws_sdk_kms::config::Builder::from(sdk).retry_config(RetryConfig::disabled());
        if let Some(ep) = &holder.endpoint {
            b = b.endpoint_url(ep);
        }
        HolderClient {
            name: holder.name.clone(),
            key_arn: holder.key_arn.clone(),
            region: holder.region.clone(),
            client: aws_sdk_kms::Client::from_conf(b.build()),
            timeout,
        }
    }

    /// `kms:Encrypt` a share under this holder's key (init).
    pub async fn encrypt(&self, share: &Share) -> Result<Vec<u8>, Failure> {
        let mut req = self
            .client
            .encrypt()
            .key_id(&self.key_arn)
            .plaintext(Blob::new(share.0.to_vec()));
        for (k, v) in encryption_context(&self.name) {
            req = req.encryption_context(k, v);
        }
        let out = tokio::time::timeout(self.timeout, req.send())
            .await
            .map_err(|_| self.timed_out())?
            .map_err(classify)?;
        out.ciphertext_blob
            .map(Blob::into_inner)
            .ok_or_else(|| Failure {
                outcome: HolderOutcome::Error,
                code: None,
                message: "Encrypt answered without a CiphertextBlob".into(),
            })
    }

    /// `kms:Decrypt` this holder's share.
    pub async fn decrypt(&self, share: &EncryptedShare, mode: Mode<'_>) -> Result<Share, Failure> {
        let ciphertext = share.ciphertext_bytes().map_err(|m| Failure {
            outcome: HolderOutcome::Error,
            code: None,
            message: m,
        })?;
        let mut req = self
            .client
            .decrypt()
            .key_id(&self.key_arn)
            .ciphertext_blob(Blob::new(ciphertext));
        for (k, v) in encryption_context(&self.name) {
            req = req.encryption_context(k, v);
        }
        if let Mode::Recipient { attestation, .. } = &mode {
            req = req.recipient(
                RecipientInfo::builder()
                    .key_encryption_algorithm(KeyEncryptionMechanism::RsaesOaepSha256)
                    .attestation_document(Blob::new(attestation.to_vec()))
                    .build(),
            );
        }
        let out = tokio::time::timeout(self.timeout, req.send())
            .await
            .map_err(|_| self.timed_out())?
            .map_err(classify)?;
        let bytes = match mode {
            Mode::Plain => out
                .plaintext
                .map(Blob::into_inner)
                .ok_or_else(|| error("Decrypt answered without Plaintext"))?,
            Mode::Recipient { key, .. } => {
                if out
                    .plaintext
                    .as_ref()
                    .is_some_and(|p| !p.as_ref().is_empty())
                {
                    // The share crossed the parent instance in clear: refuse it.
                    return Err(error(
                        "KMS answered a Recipient request with Plaintext instead of \
                         CiphertextForRecipient; refusing the share (it crossed the parent \
                         in clear). Is this endpoint really KMS?",
                    ));
                }
                let cms = out
                    .ciphertext_for_recipient
                    .ok_or_else(|| error("Decrypt answered without CiphertextForRecipient"))?;
                crate::cms::decrypt(cms.as_ref(), key)
                    .map_err(|e| error(&format!("CiphertextForRecipient: {e}")))?
                    .to_vec()
            }
        };
        Share::from_bytes(bytes).map_err(|m| error(&format!("decrypted share is invalid: {m}")))
    }

    fn timed_out(&self) -> Failure {
        Failure {
            outcome: HolderOutcome::Unreachable,
            code: None,
            message: format!("no answer from KMS within {:?}", self.timeout),
        }
    }
}

fn error(message: &str) -> Failure {
    Failure {
        outcome: HolderOutcome::Error,
        code: None,
        message: message.to_owned(),
    }
}

/// Map an SDK error to the holder outcome an operator acts on.
fn classify<E: ProvideErrorMetadata + std::error::Error + 'static, R: std::fmt::Debug + 'static>(
    e: SdkError<E, R>,
) -> Failure {
    match &e {
        SdkError::ServiceError(se) => {
            let code = se.err().code().map(str::to_owned);
            let outcome = match code.as_deref() {
                Some("AccessDeniedException") => HolderOutcome::Denied,
                _ => HolderOutcome::Error,
            };
            Failure {
                outcome,
                message: se
                    .err()
                    .message()
                    .map(str::to_owned)
                    .unwrap_or_else(|| chain(&e)),
                code,
            }
        }
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => Failure {
            outcome: HolderOutcome::Unreachable,
            code: None,
            message: chain(&e),
        },
        _ => Failure {
            outcome: HolderOutcome::Error,
            code: None,
            message: chain(&e),
        },
    }
}

/// An error and its causes on one line (`dispatch failure: io error: Connection refused`),
/// each cause once, at most 300 characters: what `/status` and doctor show an operator, never
/// the SDK's Debug dump.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(e);
    while let Some(err) = next {
        let text = err.to_string().replace(['\n', '\r'], " ");
        if !text.is_empty() && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = err.source();
    }
    let mut out = parts.join(": ");
    if out.chars().count() > 300 {
        out = out.chars().take(299).collect::<String>() + "…";
    }
    out
}
