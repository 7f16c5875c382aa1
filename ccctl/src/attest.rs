//! `ccctl attest verify` and `ccctl attest fetch`: is this attestation document genuine, and
//! what does it attest?
//!
//! The COSE_Sign1 is parsed without re-encoding anything; ES384 is verified over the payload
//! bytes exactly as received (AWS encodes the payload map with indefinite length since
//! 2025/2026); the chain leaf → cabundle → pinned AWS Nitro root G1 is built with
//! rustls-webpki (which accepts the 21-byte serial numbers some Nitro intermediates carry) and
//! checked at a chosen time: now, the document's own timestamp, or any RFC 3339 instant.

use std::collections::BTreeMap;
use std::time::Duration;

use cc_proto::attestation::{ES384, SignedDoc, parse, sig_structure};
use p384::ecdsa::signature::Verifier;
use rustls_pki_types::{CertificateDer, UnixTime};
use serde::Serialize;

use std::path::PathBuf;

use crate::output::{self, CannotRun, Format, Outcome, Render, Style};
use crate::x509::{facts, rfc3339};

#[derive(Debug, clap::Subcommand)]
pub enum AttestCommand {
    /// Verify a document (raw CBOR, hex or base64; `-` reads stdin).
    Verify {
        #[arg(value_name = "FILE|-")]
        file: PathBuf,
        #[command(flatten)]
        check: AttestCheck,
    },
    /// Fetch a fresh document from the enclave server's /attestation with a random nonce,
    /// check the nonce came back, and verify it.
    Fetch {
        /// http://HOST:PORT, tcp://HOST:PORT or unix:///path of the enclave API (default:
        /// `CCCTL_API`, as doctor).
        #[arg(long, visible_alias = "api", value_name = "URL", env = "CCCTL_API")]
        url: String,
        /// Fetch it from this pod instead, through the Kubernetes API server's pod proxy (its
        /// port named `api`, else 9000; RBAC `pods/proxy` get).
        #[arg(long, value_name = "NAME")]
        pod: Option<String>,
        /// The pod's namespace (default: the context's, else `default`).
        #[arg(short = 'n', long, value_name = "NAMESPACE", requires = "pod")]
        namespace: Option<String>,
        /// kubeconfig context to use.
        #[arg(long, value_name = "CONTEXT", requires = "pod")]
        context: Option<String>,
        /// Also write the document here.
        #[arg(long, value_name = "FILE")]
        save: Option<PathBuf>,
        #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = cc_proto::parse_duration)]
        timeout: Duration,
        #[command(flatten)]
        check: AttestCheck,
    },
}

#[derive(Debug, clap::Args)]
pub struct AttestCheck {
    /// Trust this root (PEM) instead of the pinned AWS Nitro root G1, e.g. the software-mode
    /// development root (`ccctl demo`'s env.sh sets `CCCTL_ROOT` to its own).
    #[arg(long, value_name = "PEM", env = "CCCTL_ROOT")]
    pub root: Option<PathBuf>,
    /// Check validity at `now`, at `doc` (the document's own timestamp) or at an RFC 3339 time.
    #[arg(long, value_name = "WHEN", default_value = "now")]
    pub at: At,
    /// Expected PCR value (repeatable); a mismatch exits 1.
    #[arg(long = "expect-pcr", value_name = "N=HEX")]
    pub expect_pcr: Vec<ExpectPcr>,
    /// Show all PCRs, not only the non-zero ones.
    #[arg(long)]
    pub all_pcrs: bool,
}

pub fn run(cmd: AttestCommand, fmt: Format) -> Result<Outcome, CannotRun> {
    match cmd {
        AttestCommand::Verify { file, check } => {
            let bytes = if file.as_os_str() == "-" {
                let mut b = Vec::new();
                std::io::Read::read_to_end(&mut std::io::stdin(), &mut b)
                    .map_err(|e| CannotRun::new(format!("cannot read stdin: {e}")))?;
                b
            } else {
                std::fs::read(&file)
                    .map_err(|e| CannotRun::new(format!("cannot read '{}': {e}", file.display())))?
            };
            let doc = load(&bytes)
                .map_err(|e| CannotRun::new(format!("'{}': {}", file.display(), e.0)))?;
            report(&doc, &check, fmt, None)
        }
        AttestCommand::Fetch {
            url,
            pod,
            namespace,
            context,
            save,
            timeout,
            check,
        } => {
            let (body, nonce) = match pod {
                Some(pod) => fetch_from_pod(&pod, namespace, context, timeout)?,
                None => fetch_document(&url, timeout)?,
            };
            if let Some(p) = &save {
                std::fs::write(p, &body)
                    .map_err(|e| CannotRun::new(format!("cannot write '{}': {e}", p.display())))?;
            }
            let resp = crate::probe::http::Response { status: 200, body };
            let doc = load(&resp.body)?;
            report(&doc, &check, fmt, Some(&nonce))
        }
    }
}

/// A fresh document from the enclave API at `url` (`/attestation` with a random 32-byte
/// nonce): the raw bytes and the nonce it must carry.
pub fn fetch_document(url: &str, timeout: Duration) -> Result<(Vec<u8>, [u8; 32]), CannotRun> {
    let addr = crate::probe::http::parse_base(url).map_err(CannotRun::new)?;
    let nonce: [u8; 32] = rand::random();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CannotRun::new(e.to_string()))?;
    let path = format!("/attestation?nonce={}", hex::encode(nonce));
    let resp = rt
        .block_on(crate::probe::http::get(&addr, &path, timeout))
        .map_err(CannotRun::new)?;
    if resp.status != 200 {
        return Err(CannotRun::new(format!(
            "{url}/attestation answered {}: {}",
            resp.status,
            output::clean(
                &String::from_utf8_lossy(&resp.body)
                    .chars()
                    .take(300)
                    .collect::<String>()
            )
        )));
    }
    Ok((resp.body, nonce))
}

/// A fresh document from `pod`'s enclave API through the API server's pod proxy.
pub fn fetch_from_pod(
    pod: &str,
    namespace: Option<String>,
    context: Option<String>,
    timeout: Duration,
) -> Result<(Vec<u8>, [u8; 32]), CannotRun> {
    let nonce: [u8; 32] = rand::random();
    let rt = output::runtime()?;
    let body = rt.block_on(async {
        let client = crate::probe::k8s::client(context.as_deref()).await?;
        let namespace = match namespace {
            Some(n) => n,
            None => crate::probe::k8s::default_namespace(context.as_deref()).await,
        };
        let pods: kube::Api<k8s_openapi::api::core::v1::Pod> =
            kube::Api::namespaced(client.clone(), &namespace);
        let spec = tokio::time::timeout(timeout, pods.get(pod))
            .await
            .map_err(|_| format!("reading pod '{namespace}/{pod}' timed out"))?
            .map_err(|e| {
                format!(
                    "reading pod '{namespace}/{pod}': {}",
                    crate::probe::k8s::describe_error(&e)
                )
            })?;
        let api = crate::probe::http::Endpoint::PodProxy {
            port: crate::probe::k8s::named_port(&spec, "api", 9000),
            client,
            namespace,
            pod: pod.to_owned(),
        };
        let path = format!("/attestation?nonce={}", hex::encode(nonce));
        api.get(&path, timeout).await.map(|r| r.body)
    });
    rt.shutdown_background();
    Ok((body.map_err(CannotRun::new)?, nonce))
}

fn report(
    doc: &SignedDoc,
    check: &AttestCheck,
    fmt: Format,
    nonce: Option<&[u8]>,
) -> Result<Outcome, CannotRun> {
    let root_der = match &check.root {
        Some(p) => {
            let pem = std::fs::read_to_string(p).map_err(|e| {
                CannotRun::new(format!("cannot read --root '{}': {e}", p.display()))
            })?;
            pem_der(&pem).map_err(|e| CannotRun::new(format!("--root '{}': {e}", p.display())))?
        }
        None => pem_der(AWS_NITRO_ROOT_G1_PEM).map_err(CannotRun::new)?,
    };
    let mut v = verify(doc, &root_der, check.at, &check.expect_pcr, check.all_pcrs);
    // A chain that fails only because it leads to the demo's development root: say which
    // root would verify it instead of leaving the operator to guess.
    if check.root.is_none()
        && v.reason
            .as_deref()
            .is_some_and(|r| r.contains("does not lead to the pinned root"))
        && let Some(root) = doc.doc.cabundle.first().and_then(|c| facts(c).ok())
        && root.subject.contains("development root")
    {
        v.reason = Some(format!(
            "certificate chain leads to '{}', not the AWS Nitro root: a software-mode (ccctl \
             demo) document; verify it with --root DEMO_DIR/root/root.pem (`. DEMO_DIR/env.sh` \
             sets CCCTL_ROOT) — it is never genuine Nitro",
            output::clean(&root.subject)
        ));
    }
    if let Some(n) = nonce
        && doc.doc.nonce.as_deref() != Some(n)
        && v.valid
    {
        v.valid = false;
        v.reason =
            Some("the document does not carry the nonce we sent (replayed or not fresh)".into());
    }
    output::render(&v, fmt)?;
    Ok(Outcome::clean_if(v.valid && v.mismatches() == 0))
}

impl Render for Verification {
    fn human(&self, _: Style) -> String {
        human(self)
    }
}

/// The AWS Nitro Enclaves root certificate (G1), pinned. SHA-256 of its DER:
/// 641a0321a3e244efe456463195d606317ed7cdcc3c1756e09893f3c68f79bb5b.
pub const AWS_NITRO_ROOT_G1_PEM: &str = include_str!("aws_nitro_enclaves_root_g1.pem");

/// When to check certificate validity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum At {
    Now,
    /// The document's own timestamp.
    Doc,
    /// Unix seconds.
    Fixed(i64),
}

impl std::str::FromStr for At {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "now" => Ok(At::Now),
            "doc" => Ok(At::Doc),
            _ => time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                .map(|t| At::Fixed(t.unix_timestamp()))
                .map_err(|e| format!("'{s}' is not 'now', 'doc' or an RFC 3339 time ({e})")),
        }
    }
}

/// One `--expect-pcr N=HEX`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectPcr {
    pub index: u16,
    pub value: Vec<u8>,
}

impl std::str::FromStr for ExpectPcr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (n, v) = s
            .split_once('=')
            .ok_or_else(|| format!("'{s}': expected N=HEX, e.g. 0=f50c…"))?;
        let index = n
            .trim()
            .trim_start_matches("PCR")
            .parse::<u16>()
            .ok()
            .filter(|i| *i < 32)
            .ok_or_else(|| format!("'{s}': PCR index must be 0 to 31"))?;
        let value = cc_proto::pcr::Pcr::parse(v.trim())
            .map(|p| p.0.to_vec())
            .map_err(|_| format!("'{s}': value must be 96 hex digits (SHA-384)"))?;
        Ok(ExpectPcr { index, value })
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ChainEntry {
    pub role: &'static str,
    pub subject: String,
    pub not_before: String,
    pub not_after: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct PcrCheck {
    pub pcr: String,
    pub expected: String,
    pub actual: Option<String>,
    pub ok: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Verification {
    pub valid: bool,
    /// The first reason it is not valid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The instant validity was checked at (RFC 3339).
    pub checked_at: String,
    pub module_id: String,
    pub timestamp_ms: u64,
    pub timestamp: String,
    pub digest: String,
    /// PCRs by name, lowercase hex (non-zero only unless all were asked for).
    pub pcrs: BTreeMap<String, String>,
    pub debug_mode: bool,
    pub public_key: Option<String>,
    pub user_data: Option<String>,
    pub nonce: Option<String>,
    pub chain: Vec<ChainEntry>,
    pub expected_pcrs: Vec<PcrCheck>,
}

impl Verification {
    pub fn mismatches(&self) -> usize {
        self.expected_pcrs.iter().filter(|c| !c.ok).count()
    }
}

/// The DER of a PEM (first certificate).
pub fn pem_der(pem: &str) -> Result<Vec<u8>, String> {
    cc_proto::eif::pem_or_der(pem.as_bytes()).ok_or_else(|| "not a PEM certificate".to_owned())
}

/// Parse a document; bytes that are not an attestation document at all are `CannotRun`.
pub fn load(bytes: &[u8]) -> Result<SignedDoc, CannotRun> {
    // Some tools store documents as hex or base64 text; accept those too.
    if let Ok(d) = parse(bytes) {
        return Ok(d);
    }
    let text = String::from_utf8_lossy(bytes);
    let t = text.trim();
    if let Ok(b) = hex::decode(t)
        && let Ok(d) = parse(&b)
    {
        return Ok(d);
    }
    use base64::Engine as _;
    if let Ok(b) = base64::engine::general_purpose::STANDARD.decode(t)
        && let Ok(d) = parse(&b)
    {
        return Ok(d);
    }
    parse(bytes).map_err(|e| CannotRun::new(format!("not an attestation document: {e}")))
}

pub fn verify(
    doc: &SignedDoc,
    root_der: &[u8],
    at: At,
    expect: &[ExpectPcr],
    all_pcrs: bool,
) -> Verification {
    let d = &doc.doc;
    let when = match at {
        At::Now => time::OffsetDateTime::now_utc().unix_timestamp(),
        At::Doc => (d.timestamp / 1000) as i64,
        At::Fixed(t) => t,
    };
    let reason = check(doc, root_der, when).err();
    let pcrs = d
        .pcrs
        .iter()
        .filter(|(_, v)| all_pcrs || v.iter().any(|b| *b != 0))
        .map(|(k, v)| (format!("PCR{k}"), hex::encode(v)))
        .collect();
    let mut chain = Vec::new();
    for (i, der) in d.cabundle.iter().enumerate() {
        if let Ok(f) = facts(der) {
            chain.push(ChainEntry {
                role: if i == 0 { "root" } else { "intermediate" },
                subject: f.subject,
                not_before: rfc3339(f.not_before),
                not_after: rfc3339(f.not_after),
            });
        }
    }
    if let Ok(f) = facts(&d.certificate) {
        chain.push(ChainEntry {
            role: "leaf",
            subject: f.subject,
            not_before: rfc3339(f.not_before),
            not_after: rfc3339(f.not_after),
        });
    }
    let expected_pcrs = expect
        .iter()
        .map(|e| {
            let actual = d.pcrs.get(&e.index).map(hex::encode);
            PcrCheck {
                pcr: format!("PCR{}", e.index),
                expected: hex::encode(&e.value),
                ok: actual.as_deref() == Some(hex::encode(&e.value).as_str()),
                actual,
            }
        })
        .collect();
    Verification {
        valid: reason.is_none(),
        reason,
        checked_at: rfc3339(when),
        module_id: d.module_id.clone(),
        timestamp_ms: d.timestamp,
        timestamp: rfc3339((d.timestamp / 1000) as i64),
        digest: d.digest.clone(),
        pcrs,
        debug_mode: d.debug_mode(),
        public_key: d.public_key.as_ref().map(hex::encode),
        user_data: d.user_data.as_ref().map(hex::encode),
        nonce: d.nonce.as_ref().map(hex::encode),
        chain,
        expected_pcrs,
    }
}

/// The first reason the document is not genuine at `when` (unix seconds), if any.
fn check(doc: &SignedDoc, root_der: &[u8], when: i64) -> Result<(), String> {
    if doc.alg != Some(ES384) {
        return Err(format!(
            "COSE algorithm is {:?}, expected ES384 (-35)",
            doc.alg
        ));
    }
    if doc.doc.digest != "SHA384" {
        return Err(format!("digest is '{}', expected SHA384", doc.doc.digest));
    }
    let leaf = facts(&doc.doc.certificate).map_err(|e| format!("leaf {e}"))?;
    let key = p384::ecdsa::VerifyingKey::from_sec1_bytes(&leaf.public_key)
        .map_err(|_| "leaf certificate's key is not P-384".to_owned())?;
    let sig = p384::ecdsa::Signature::from_slice(&doc.signature).map_err(|_| {
        format!(
            "signature is {} bytes, expected 96 (ES384)",
            doc.signature.len()
        )
    })?;
    key.verify(&sig_structure(&doc.protected, &doc.payload), &sig)
        .map_err(|_| "COSE signature does not verify with the leaf certificate".to_owned())?;
    if doc.doc.cabundle.is_empty() {
        return Err("cabundle is empty".into());
    }
    let root = CertificateDer::from(root_der);
    let anchor = webpki::anchor_from_trusted_cert(&root)
        .map_err(|e| format!("the pinned root does not parse: {e:?}"))?;
    let intermediates: Vec<CertificateDer<'_>> = doc
        .doc
        .cabundle
        .iter()
        .map(|c| CertificateDer::from(c.as_slice()))
        .collect();
    let leaf_der = CertificateDer::from(doc.doc.certificate.as_slice());
    let ee = webpki::EndEntityCert::try_from(&leaf_der)
        .map_err(|e| format!("leaf certificate is not acceptable: {e:?}"))?;
    let t = UnixTime::since_unix_epoch(Duration::from_secs(when.max(0) as u64));
    ee.verify_for_usage(
        &[webpki::aws_lc_rs::ECDSA_P384_SHA384],
        &[anchor],
        &intermediates,
        t,
        webpki::KeyUsage::server_auth(),
        None,
        None,
    )
    .map_err(|e| match e {
        webpki::Error::CertExpired { .. } => format!(
            "certificate chain expired at {} (a Nitro leaf lives about 3 hours; use --at doc \
             to check the document as of its own timestamp)",
            rfc3339(when)
        ),
        webpki::Error::CertNotValidYet { .. } => {
            format!("certificate chain not yet valid at {}", rfc3339(when))
        }
        webpki::Error::UnknownIssuer => {
            "certificate chain does not lead to the pinned root (use --root for another)".into()
        }
        other => format!("certificate chain rejected: {other:?}"),
    })?;
    Ok(())
}

pub fn human(v: &Verification) -> String {
    crate::output::clean(&human_raw(v))
}

fn human_raw(v: &Verification) -> String {
    let mut s = String::new();
    match &v.reason {
        None => s += &format!("valid        yes (checked at {})\n", v.checked_at),
        Some(r) => {
            s += &format!(
                "valid        NO: {r}\n             (checked at {})\n",
                v.checked_at
            )
        }
    }
    s += &format!("module       {}\n", v.module_id);
    s += &format!("timestamp    {} ({} ms)\n", v.timestamp, v.timestamp_ms);
    s += &format!("digest       {}\n", v.digest);
    for (k, val) in &v.pcrs {
        s += &format!("{k:<12} {val}\n");
    }
    s += &format!(
        "debug mode   {}\n",
        if v.debug_mode {
            "YES (PCR0 is all zero: no key policy should release to this enclave)"
        } else {
            "no"
        }
    );
    for (name, val) in [
        ("public key", &v.public_key),
        ("user data", &v.user_data),
        ("nonce", &v.nonce),
    ] {
        s += &format!("{name:<12} {}\n", val.as_deref().unwrap_or("-"));
    }
    s += "chain\n";
    for c in &v.chain {
        s += &format!("  {:<12} {} (until {})\n", c.role, c.subject, c.not_after);
    }
    for c in &v.expected_pcrs {
        if c.ok {
            s += &format!("{}         matches\n", c.pcr);
        } else {
            s += &format!(
                "{}         MISMATCH: expected {}, attested {}\n",
                c.pcr,
                c.expected,
                c.actual.as_deref().unwrap_or("(absent)")
            );
        }
    }
    s
}

/// Verify `doc` (bytes: CBOR, hex or base64) against the root certificate `root_pem` now, as
/// `ccctl attest verify` does: what it attests, or why it is not genuine. The demo's local
/// KMS judges Recipient documents with this.
pub fn verify_now(doc: &[u8], root_pem: &str) -> Result<(BTreeMap<u8, String>, Vec<u8>), String> {
    let doc = load(doc).map_err(|e| e.0)?;
    let root = pem_der(root_pem)?;
    let v = verify(&doc, &root, At::Now, &[], false);
    if !v.valid {
        return Err(format!(
            "the attestation document is not valid: {}",
            v.reason.unwrap_or_default()
        ));
    }
    let public_key = doc
        .doc
        .public_key
        .clone()
        .ok_or_else(|| "the attestation document carries no public key".to_owned())?;
    let pcrs = doc
        .doc
        .pcrs
        .iter()
        .filter_map(|(i, v)| u8::try_from(*i).ok().map(|i| (i, hex::encode(v))))
        .collect();
    Ok((pcrs, public_key))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../shared/fixtures/attestation")
                .join(name),
        )
        .unwrap()
    }

    #[test]
    fn the_pinned_root_is_aws_nitro_root_g1() {
        use sha2::Digest;
        let der = pem_der(AWS_NITRO_ROOT_G1_PEM).unwrap();
        assert_eq!(
            hex::encode(sha2::Sha256::digest(&der)),
            "641a0321a3e244efe456463195d606317ed7cdcc3c1756e09893f3c68f79bb5b"
        );
    }

    /// Never panics on any byte string: every truncation and many bit flips of a genuine
    /// document, and seeded random inputs, go through parse and verify.
    #[test]
    fn never_panics_on_mangled_input() {
        let root = pem_der(AWS_NITRO_ROOT_G1_PEM).unwrap();
        let doc = fixture("base_nitro_validator_hinted_2026-01-03.bin");
        let mut rng = fastrand_like(0x5eed);
        let mut inputs: Vec<Vec<u8>> = (0..doc.len())
            .step_by(7)
            .map(|n| doc[..n].to_vec())
            .collect();
        for _ in 0..600 {
            let mut d = doc.clone();
            let i = (rng() as usize) % d.len();
            d[i] ^= 1 << (rng() % 8);
            inputs.push(d);
        }
        for _ in 0..300 {
            let n = (rng() % 600) as usize;
            inputs.push((0..n).map(|_| rng() as u8).collect());
        }
        for input in inputs {
            if let Ok(d) = load(&input) {
                let _ = verify(&d, &root, At::Doc, &[], true);
            }
        }
    }

    /// A tiny deterministic generator (xorshift) so the test needs no extra dependency.
    fn fastrand_like(mut s: u64) -> impl FnMut() -> u64 {
        move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        }
    }
}
