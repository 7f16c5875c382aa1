//! The demo's local KMS: the part of the AWS KMS JSON API that the enclave and `ccctl` use
//! (`Encrypt`, `Decrypt`, `GetKeyPolicy`, `PutKeyPolicy`, `DescribeKey`), one key and one key
//! policy per holder, so the enclave runs its production aws-sdk-kms code against it.
//!
//! Unlike moto it enforces what a key holder relies on: a `Decrypt` is judged by the key's
//! policy with `cc_proto::policy`'s evaluator, on the measurements of the request's attestation
//! document, after checking that document's signature and certificate chain against the
//! attestation root (the software NSM's development root); a `Recipient` request is answered
//! with `CiphertextForRecipient` (CMS to the document's public key), never with `Plaintext`.
//! The signer role's own IAM permission (`kms:Decrypt` on each key) is modelled too, so a
//! missing identity-based permission gives KMS's own message for it.
//!
//! Callers are told apart by the access key id in the SigV4 `Authorization` header (the
//! signature itself is not checked: this is a loopback test double, not a security boundary).
//! The operator key may manage keys and `Encrypt`; the signer key may only `Decrypt`.
//! Plain HTTP and TLS (self-signed) are served on the same port, so `ccctl doctor`'s egress
//! probe can complete a handshake with it.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use cc_proto::policy::{
    IamPolicies, Measurements, NamedPolicy, Policy, PolicySource, Reason, RequestContext, Verdict,
    judge,
};
use serde_json::{Value, json};
use zeroize::Zeroizing;

/// Access key id of the operator (key administration, `Encrypt` at init).
pub const OPERATOR_KEY_ID: &str = "AKIADEMOOPERATOR0001";
/// Access key id of the enclave's role.
pub const SIGNER_KEY_ID: &str = "AKIADEMOSIGNER000001";
const BLOB_MAGIC: &[u8] = b"ccdemo1";

/// One holder's key as the demo creates it.
#[derive(Debug, Clone)]
pub struct KeySpec {
    pub holder: String,
    pub arn: String,
    pub policy: String,
}

struct Key {
    spec: KeySpec,
    material: Zeroizing<[u8; 32]>,
    /// Grants as `ListGrants` returns them.
    grants: Vec<Value>,
}

struct Inner {
    keys: Mutex<Vec<Key>>,
    /// ARN of the role behind [`SIGNER_KEY_ID`].
    signer_role: String,
    /// Keys the signer role's IAM policy allows `kms:Decrypt` on.
    identity_allows: Mutex<BTreeSet<String>>,
    /// PEM file of the attestation root (written by the enclave's software NSM).
    attestation_root: PathBuf,
    /// Checks a Recipient's attestation document against the root.
    verifier: Verifier,
    /// Decrypt decisions, newest last (bounded).
    journal: Mutex<Vec<String>>,
}

/// What a verified attestation document attests: PCRs by index (hex) and its public key.
#[derive(Debug, Clone)]
pub struct Attested {
    pub pcrs: BTreeMap<u8, String>,
    pub public_key: Vec<u8>,
}

/// Verifies an attestation document (bytes) against a root certificate (PEM) at the current
/// time: signature, chain, validity; `Err` says why it is not genuine. ccctl passes its own
/// `attest` verification, so the demo's KMS and `ccctl attest verify` judge documents with the
/// same code.
pub type Verifier = Arc<dyn Fn(&[u8], &str) -> Result<Attested, String> + Send + Sync>;

/// A handle on the local KMS; clones share the same keys.
#[derive(Clone)]
pub struct LocalKms(Arc<Inner>);

impl std::fmt::Debug for LocalKms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalKms")
            .field("signer_role", &self.0.signer_role)
            .finish_non_exhaustive()
    }
}

struct KmsError {
    code: &'static str,
    message: String,
}

impl KmsError {
    fn new(code: &'static str, message: impl Into<String>) -> Self {
        KmsError {
            code,
            message: message.into(),
        }
    }
}

impl IntoResponse for KmsError {
    fn into_response(self) -> Response {
        (
            StatusCode::BAD_REQUEST,
            [
                ("content-type", "application/x-amz-json-1.1"),
                ("x-amzn-errortype", self.code),
            ],
            json!({"__type": self.code, "message": self.message}).to_string(),
        )
            .into_response()
    }
}

#[derive(PartialEq, Eq)]
enum Caller {
    Operator,
    Signer,
}

impl LocalKms {
    pub fn new(
        keys: Vec<KeySpec>,
        signer_role: &str,
        attestation_root: PathBuf,
        verifier: Verifier,
    ) -> LocalKms {
        let identity = keys.iter().map(|k| k.arn.clone()).collect();
        LocalKms(Arc::new(Inner {
            keys: Mutex::new(
                keys.into_iter()
                    .map(|spec| Key {
                        spec,
                        material: Zeroizing::new(rand::random()),
                        grants: Vec::new(),
                    })
                    .collect(),
            ),
            signer_role: signer_role.to_owned(),
            identity_allows: Mutex::new(identity),
            attestation_root,
            verifier,
            journal: Mutex::new(Vec::new()),
        }))
    }

    /// Replace a key's policy (as `PutKeyPolicy` would, without the syntax check).
    pub fn set_policy(&self, arn: &str, policy: &str) {
        if let Some(k) = lock(&self.0.keys).iter_mut().find(|k| k.spec.arn == arn) {
            k.spec.policy = policy.to_owned();
        }
    }

    pub fn policy(&self, arn: &str) -> Option<String> {
        lock(&self.0.keys)
            .iter()
            .find(|k| k.spec.arn == arn)
            .map(|k| k.spec.policy.clone())
    }

    /// The signer role's identity-based policy as it stands (the IAM side KMS checks for a
    /// cross-account key).
    pub fn identity_policy(&self) -> String {
        let arns: Vec<String> = lock(&self.0.identity_allows).iter().cloned().collect();
        identity_policy(&arns)
    }

    /// Grant or revoke `kms:Decrypt` on `arn` in the signer role's IAM policy.
    pub fn set_identity_allows(&self, arn: &str, allowed: bool) {
        let mut set = lock(&self.0.identity_allows);
        if allowed {
            set.insert(arn.to_owned());
        } else {
            set.remove(arn);
        }
    }

    /// The decisions taken on `Decrypt` so far (one line each).
    pub fn journal(&self) -> Vec<String> {
        lock(&self.0.journal).clone()
    }

    /// Serve on `listener` (plain HTTP and TLS) until the task is aborted.
    pub fn serve(&self, listener: tokio::net::TcpListener) -> tokio::task::JoinHandle<()> {
        let kms = self.clone();
        let app = axum::Router::new().route(
            "/",
            axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
                let kms = kms.clone();
                async move {
                    match kms.handle(&headers, &body) {
                        Ok(v) => (
                            StatusCode::OK,
                            [("content-type", "application/x-amz-json-1.1")],
                            v.to_string(),
                        )
                            .into_response(),
                        Err(e) => e.into_response(),
                    }
                }
            }),
        );
        let listener = Sniff {
            tcp: listener,
            tls: tls_acceptor(),
            pending: tokio::task::JoinSet::new(),
        };
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        })
    }

    fn handle(&self, headers: &HeaderMap, body: &[u8]) -> Result<Value, KmsError> {
        let target = headers
            .get("x-amz-target")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let op = target.strip_prefix("TrentService.").ok_or_else(|| {
            KmsError::new(
                "UnknownOperationException",
                format!("X-Amz-Target '{target}' is not a KMS operation"),
            )
        })?;
        let caller = caller(headers)?;
        let req: Value = serde_json::from_slice(body).map_err(|e| {
            KmsError::new(
                "SerializationException",
                format!("request body is not JSON: {e}"),
            )
        })?;
        let key_id = req["KeyId"].as_str().unwrap_or_default();
        match (op, caller) {
            ("Decrypt", _) => self.decrypt(&req, key_id),
            ("Encrypt" | "DescribeKey" | "GetKeyPolicy" | "PutKeyPolicy", Caller::Signer) => {
                Err(KmsError::new(
                    "AccessDeniedException",
                    format!(
                        "User: {} is not authorized to perform: kms:{op} because no \
                         identity-based policy allows the kms:{op} action",
                        self.0.signer_role
                    ),
                ))
            }
            ("Encrypt", Caller::Operator) => self.encrypt(&req, key_id),
            ("DescribeKey", Caller::Operator) => {
                let arn = self.find(key_id)?;
                let account = arn.split(':').nth(4).unwrap_or_default().to_owned();
                let id = arn.rsplit('/').next().unwrap_or_default().to_owned();
                Ok(json!({"KeyMetadata": {
                    "AWSAccountId": account, "KeyId": id, "Arn": arn, "Enabled": true,
                    "KeyState": "Enabled", "KeyUsage": "ENCRYPT_DECRYPT",
                    "KeySpec": "SYMMETRIC_DEFAULT", "KeyManager": "CUSTOMER", "Origin": "AWS_KMS",
                    "CreationDate": 1_764_000_000.0, "Description": "ccctl demo key"
                }}))
            }
            ("GetKeyPolicy", Caller::Operator) => {
                let arn = self.find(key_id)?;
                Ok(json!({"Policy": self.policy(&arn), "PolicyName": "default"}))
            }
            ("PutKeyPolicy", Caller::Operator) => {
                let arn = self.find(key_id)?;
                let text = req["Policy"].as_str().unwrap_or_default();
                Policy::parse(text).map_err(|e| {
                    KmsError::new(
                        "MalformedPolicyDocumentException",
                        format!("the new key policy is not valid: {}", e.0),
                    )
                })?;
                self.set_policy(&arn, text);
                Ok(json!({}))
            }
            ("ListGrants", Caller::Operator) => {
                let arn = self.find(key_id)?;
                let keys = lock(&self.0.keys);
                let grants = keys
                    .iter()
                    .find(|k| k.spec.arn == arn)
                    .map(|k| k.grants.clone())
                    .unwrap_or_default();
                Ok(json!({"Grants": grants, "Truncated": false}))
            }
            ("CreateGrant", Caller::Operator) => {
                let arn = self.find(key_id)?;
                let grant_id = hex::encode(rand::random::<[u8; 16]>());
                let mut keys = lock(&self.0.keys);
                if let Some(k) = keys.iter_mut().find(|k| k.spec.arn == arn) {
                    k.grants.push(json!({
                        "KeyId": arn, "GrantId": grant_id,
                        "GranteePrincipal": req["GranteePrincipal"],
                        "Operations": req["Operations"],
                        "Constraints": req["Constraints"],
                        "Name": req["Name"],
                        "CreationDate": 1_764_000_000.0,
                    }));
                }
                Ok(json!({"GrantId": grant_id, "GrantToken": "demo"}))
            }
            _ => Err(KmsError::new(
                "UnsupportedOperationException",
                format!("the demo's local KMS does not implement {op}"),
            )),
        }
    }

    /// The ARN of a key given by ARN or key id.
    fn find(&self, key_id: &str) -> Result<String, KmsError> {
        lock(&self.0.keys)
            .iter()
            .find(|k| k.spec.arn == key_id || k.spec.arn.ends_with(&format!("/{key_id}")))
            .map(|k| k.spec.arn.clone())
            .ok_or_else(|| {
                KmsError::new(
                    "NotFoundException",
                    format!("Key '{key_id}' does not exist"),
                )
            })
    }

    fn encrypt(&self, req: &Value, key_id: &str) -> Result<Value, KmsError> {
        let arn = self.find(key_id)?;
        let plaintext = Zeroizing::new(blob(req, "Plaintext")?);
        let aad = context_aad(req);
        let nonce: [u8; 12] = rand::random();
        let keys = lock(&self.0.keys);
        let key = keys
            .iter()
            .find(|k| k.spec.arn == arn)
            .expect("found above");
        let ct = Aes256Gcm::new(key.material.as_slice().into())
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: &plaintext,
                    aad: &aad,
                },
            )
            .map_err(|_| KmsError::new("KMSInternalException", "encryption failed"))?;
        let mut out = BLOB_MAGIC.to_vec();
        out.extend((arn.len() as u16).to_be_bytes());
        out.extend(arn.as_bytes());
        out.extend(nonce);
        out.extend(ct);
        Ok(json!({"CiphertextBlob": B64.encode(out), "KeyId": arn,
                  "EncryptionAlgorithm": "SYMMETRIC_DEFAULT"}))
    }

    fn decrypt(&self, req: &Value, key_id: &str) -> Result<Value, KmsError> {
        let blob_bytes = blob(req, "CiphertextBlob")?;
        let invalid = || KmsError::new("InvalidCiphertextException", "");
        let rest = blob_bytes.strip_prefix(BLOB_MAGIC).ok_or_else(invalid)?;
        let (len, rest) = rest.split_first_chunk::<2>().ok_or_else(invalid)?;
        let len = usize::from(u16::from_be_bytes(*len));
        if rest.len() < len + 12 {
            return Err(invalid());
        }
        let arn = String::from_utf8_lossy(&rest[..len]).into_owned();
        let (nonce, ct) = rest[len..].split_at(12);
        if !key_id.is_empty() && self.find(key_id)? != arn {
            return Err(KmsError::new(
                "IncorrectKeyException",
                "The key ID in the request does not identify a CMK that can perform this operation.",
            ));
        }
        let _ = self.find(&arn).map_err(|_| invalid())?;
        // Who asks, with which measurements?
        let recipient = &req["Recipient"];
        let attested = if recipient.is_object() {
            Some(self.attested(recipient)?)
        } else {
            None
        };
        let principal = self.0.signer_role.clone();
        let holder;
        let decision;
        {
            let keys = lock(&self.0.keys);
            let key = keys
                .iter()
                .find(|k| k.spec.arn == arn)
                .ok_or_else(invalid)?;
            holder = key.spec.holder.clone();
            let policy = Policy::parse(&key.spec.policy).map_err(|e| {
                KmsError::new("KMSInternalException", format!("stored policy: {}", e.0))
            })?;
            let mut ctx = RequestContext::decrypt(&principal)
                .key(&arn)
                .encryption_context(request_context(req))
                .current_time(now());
            ctx = match &attested {
                Some((m, _)) => ctx.attested(m.clone()),
                None => ctx.unattested(),
            };
            let identity = Policy::parse_identity(&self.identity_policy()).map_err(|e| {
                KmsError::new("KMSInternalException", format!("identity policy: {}", e.0))
            })?;
            decision = judge(
                &policy,
                &ctx,
                &IamPolicies::checked(vec![NamedPolicy {
                    name: "inline:demo-signer".into(),
                    policy: identity,
                }]),
            );
        }
        let pcr0 = attested
            .as_ref()
            .and_then(|(m, _)| m.pcrs.get(&0))
            .map(|v| format!("{}…", &v[..v.len().min(12)]))
            .unwrap_or_else(|| "(no attestation)".into());
        // A grant to the role for Decrypt allows whatever the key policy says (constraints can
        // only bind the encryption context): why ccctl reports policy.grant-bypasses-attestation.
        let granted = {
            let ec = request_context(req);
            let keys = lock(&self.0.keys);
            keys.iter().find(|k| k.spec.arn == arn).is_some_and(|k| {
                k.grants.iter().any(|g| {
                    g["GranteePrincipal"].as_str() == Some(principal.as_str())
                        && g["Operations"]
                            .as_array()
                            .is_some_and(|o| o.iter().any(|o| o == "Decrypt"))
                        && grant_constraints_hold(&g["Constraints"], &ec)
                })
            })
        };
        // KMS's words for each "no" (the same model as `ccctl policy check`: cc_proto::policy).
        let because = match &decision.verdict {
            _ if granted => None,
            Verdict::Allowed => None,
            Verdict::Denied {
                reason: Reason::IdentityLacksDecrypt { .. } | Reason::OutsideBoundary { .. },
            } => Some("because no identity-based policy allows the kms:Decrypt action".to_owned()),
            Verdict::Denied {
                reason:
                    Reason::ExplicitDeny {
                        source: PolicySource::KeyPolicy,
                        ..
                    },
            } => Some("with an explicit deny in a resource-based policy".to_owned()),
            Verdict::Denied {
                reason: Reason::ExplicitDeny { .. },
            } => Some("with an explicit deny in an identity-based policy".to_owned()),
            Verdict::Denied { .. } | Verdict::DependsOn { .. } => {
                Some("because no resource-based policy allows the kms:Decrypt action".to_owned())
            }
        };
        self.note(format!(
            "{holder}: Decrypt for PCR0 {pcr0}: {}",
            if because.is_some() {
                "denied"
            } else {
                "released"
            }
        ));
        if let Some(because) = because {
            return Err(KmsError::new(
                "AccessDeniedException",
                format!(
                    "User: {principal} is not authorized to perform: kms:Decrypt on resource: \
                     {arn} {because}"
                ),
            ));
        }
        let plaintext = {
            let keys = lock(&self.0.keys);
            let key = keys
                .iter()
                .find(|k| k.spec.arn == arn)
                .ok_or_else(invalid)?;
            Zeroizing::new(
                Aes256Gcm::new(key.material.as_slice().into())
                    .decrypt(
                        Nonce::from_slice(nonce),
                        Payload {
                            msg: ct,
                            aad: &context_aad(req),
                        },
                    )
                    .map_err(|_| invalid())?,
            )
        };
        match attested {
            Some((_, public_key)) => {
                let cms = super::cms::envelope(&public_key, &plaintext)
                    .map_err(|e| KmsError::new("ValidationException", e))?;
                Ok(
                    json!({"KeyId": arn, "CiphertextForRecipient": B64.encode(cms),
                          "EncryptionAlgorithm": "SYMMETRIC_DEFAULT"}),
                )
            }
            None => Ok(
                json!({"KeyId": arn, "Plaintext": B64.encode(plaintext.as_slice()),
                              "EncryptionAlgorithm": "SYMMETRIC_DEFAULT"}),
            ),
        }
    }

    /// Verify a `Recipient`'s attestation document; its measurements and RSA public key.
    fn attested(&self, recipient: &Value) -> Result<(Measurements, Vec<u8>), KmsError> {
        let bad = |m: String| KmsError::new("ValidationException", m);
        if recipient["KeyEncryptionAlgorithm"].as_str() != Some("RSAES_OAEP_SHA_256") {
            return Err(bad(
                "Recipient.KeyEncryptionAlgorithm must be RSAES_OAEP_SHA_256".into(),
            ));
        }
        let doc_bytes = B64
            .decode(
                recipient["AttestationDocument"]
                    .as_str()
                    .unwrap_or_default(),
            )
            .map_err(|e| bad(format!("Recipient.AttestationDocument is not base64: {e}")))?;
        let root_pem = std::fs::read_to_string(&self.0.attestation_root).map_err(|e| {
            bad(format!(
                "cannot read the attestation root '{}': {e}",
                self.0.attestation_root.display()
            ))
        })?;
        let Attested { pcrs, public_key } = (self.0.verifier)(&doc_bytes, &root_pem)
            .map_err(|e| bad(format!("Recipient.AttestationDocument: {e}")))?;
        Ok((Measurements { pcrs }, public_key))
    }

    fn note(&self, line: String) {
        let mut j = lock(&self.0.journal);
        if j.len() >= 1000 {
            j.remove(0);
        }
        j.push(line);
    }
}

/// The signer role's identity-based policy: `kms:Decrypt` on exactly these key ARNs. The demo
/// writes the same text for `ccctl policy check` (`[iam] identity_policies`).
pub fn identity_policy(key_arns: &[String]) -> String {
    serde_json::to_string_pretty(&json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "DecryptTheHoldersShares",
            "Effect": "Allow",
            "Action": "kms:Decrypt",
            "Resource": key_arns,
        }]
    }))
    .unwrap_or_default()
}

/// Do a grant's constraints hold for this encryption context?
fn grant_constraints_hold(c: &Value, ec: &BTreeMap<String, String>) -> bool {
    let pairs = |v: &Value| -> BTreeMap<String, String> {
        v.as_object()
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                    .collect()
            })
            .unwrap_or_default()
    };
    let equals = &c["EncryptionContextEquals"];
    let subset = &c["EncryptionContextSubset"];
    (equals.is_null() || pairs(equals) == *ec)
        && (subset.is_null() || pairs(subset).iter().all(|(k, v)| ec.get(k) == Some(v)))
}

/// The request's `EncryptionContext` as a map.
fn request_context(req: &Value) -> BTreeMap<String, String> {
    req["EncryptionContext"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn caller(headers: &HeaderMap) -> Result<Caller, KmsError> {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let akid = auth
        .split("Credential=")
        .nth(1)
        .and_then(|c| c.split('/').next())
        .unwrap_or_default();
    match akid {
        OPERATOR_KEY_ID => Ok(Caller::Operator),
        SIGNER_KEY_ID => Ok(Caller::Signer),
        _ => Err(KmsError::new(
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        )),
    }
}

fn blob(req: &Value, field: &str) -> Result<Vec<u8>, KmsError> {
    B64.decode(req[field].as_str().unwrap_or_default())
        .map_err(|e| KmsError::new("ValidationException", format!("{field} is not base64: {e}")))
}

/// The encryption context, canonical (sorted keys), as authenticated data.
fn context_aad(req: &Value) -> Vec<u8> {
    let ctx: BTreeMap<String, String> = req["EncryptionContext"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect()
        })
        .unwrap_or_default();
    serde_json::to_vec(&ctx).unwrap_or_default()
}

fn tls_acceptor() -> tokio_rustls::TlsAcceptor {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
        .expect("self-signed certificate for the local KMS");
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("default TLS versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![ck.cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(ck.signing_key.serialize_der().into()),
        )
        .expect("certificate and key match");
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}

/// Accepts plain and TLS connections on one port (a TLS client speaks first with 0x16). Each
/// connection is told apart (and its TLS handshake done) in a task of its own, within a time
/// bound, so idle or slow clients never hold up the others.
struct Sniff {
    tcp: tokio::net::TcpListener,
    tls: tokio_rustls::TlsAcceptor,
    pending: tokio::task::JoinSet<Option<(Box<dyn Io>, SocketAddr)>>,
}

/// Connections being told apart at once, at most; more are closed at once.
const MAX_PENDING: usize = 1024;

async fn sniff(
    s: tokio::net::TcpStream,
    addr: SocketAddr,
    tls: tokio_rustls::TlsAcceptor,
) -> Option<(Box<dyn Io>, SocketAddr)> {
    let mut first = [0u8; 1];
    match tokio::time::timeout(Duration::from_secs(2), s.peek(&mut first)).await {
        Ok(Ok(1)) if first[0] == 0x16 => {
            match tokio::time::timeout(Duration::from_secs(2), tls.accept(s)).await {
                Ok(Ok(tls)) => Some((Box::new(tls), addr)),
                _ => None,
            }
        }
        Ok(Ok(n)) if n > 0 => Some((Box::new(s), addr)),
        _ => None,
    }
}

impl axum::serve::Listener for Sniff {
    type Io = Box<dyn Io>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            tokio::select! {
                accepted = self.tcp.accept() => match accepted {
                    Ok((s, addr)) => {
                        if self.pending.len() < MAX_PENDING {
                            self.pending.spawn(sniff(s, addr, self.tls.clone()));
                        }
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                },
                Some(done) = self.pending.join_next(), if !self.pending.is_empty() => {
                    if let Ok(Some(conn)) = done {
                        return conn;
                    }
                }
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}
