//! `ccctl eif describe` / `ccctl eif measure`: an EIF's measurements without nitro-cli or
//! Docker, with nitro-cli's `describe-eif` JSON keys so runbooks' `jq -r '.Measurements.PCR0'`
//! work unchanged. The signature section is verified against its certificate.

use std::path::{Path, PathBuf};

use cc_proto::attestation::sig_structure;
use cc_proto::eif::{EifInfo, describe};
use ciborium::Value;
use coset::{CborSerializable, CoseSign1, TaggedCborSerializable};
use p384::ecdsa::signature::Verifier;
use serde_json::json;

use crate::output::{self, CannotRun, Format, Outcome};
use crate::x509::{CertFacts, colon_hex, facts, openssl_date};

#[derive(Debug, clap::Subcommand)]
pub enum EifCommand {
    /// Describe one EIF with nitro-cli describe-eif's JSON keys.
    Describe {
        #[arg(long = "eif-path", value_name = "FILE")]
        eif_path: PathBuf,
    },
    /// Measure several EIFs.
    Measure {
        #[arg(value_name = "FILE", required = true)]
        files: Vec<PathBuf>,
    },
}

pub fn run(cmd: EifCommand, fmt: Format) -> Result<Outcome, CannotRun> {
    let (files, one) = match cmd {
        EifCommand::Describe { eif_path } => (vec![eif_path], true),
        EifCommand::Measure { files } => (files, false),
    };
    let all = files
        .iter()
        .map(|f| describe_file(f))
        .collect::<Result<Vec<_>, _>>()?;
    match fmt {
        Format::Json if one => output::emit(&(output::json(&nitro_json(&all[0])) + "\n")),
        Format::Json => output::emit(&(output::json(&measure_json(&all)) + "\n")),
        Format::Human => all.iter().for_each(|d| output::emit(&human(d))),
        Format::Junit => return Err(CannotRun::new("-o junit is only for doctor and demo")),
    }
    Ok(Outcome::clean_if(all.iter().all(|d| d.signature_ok())))
}

#[derive(Debug)]
pub struct Described {
    pub path: PathBuf,
    pub info: EifInfo,
    /// `None` for unsigned images; `Some(Err(why))` when the signature does not verify.
    pub signature_check: Option<Result<(), String>>,
    pub certificate: Option<CertFacts>,
}

impl Described {
    pub fn signature_ok(&self) -> bool {
        !matches!(self.signature_check, Some(Err(_)))
    }
}

/// Read, measure and check one EIF. Damage (truncation, bad magic, sizes past the end, CRC
/// mismatch) is `CannotRun`: exit 2.
pub fn describe_file(path: &Path) -> Result<Described, CannotRun> {
    let f = std::fs::File::open(path)
        .map_err(|e| CannotRun::new(format!("cannot open '{}': {e}", path.display())))?;
    let len = f
        .metadata()
        .map_err(|e| CannotRun::new(format!("cannot stat '{}': {e}", path.display())))?
        .len();
    // One pass, large reads: every byte is read once.
    let reader = std::io::BufReader::with_capacity(1 << 20, f);
    let info =
        describe(reader, len).map_err(|e| CannotRun::new(format!("'{}': {e}", path.display())))?;
    let (signature_check, certificate) = match &info.signature {
        None => (None, None),
        Some(sig) => {
            let cert = facts(&sig.certificate_der);
            let check = match &cert {
                Ok(c) => verify_signature(&sig.signature, c, &info.measurements.pcr0),
                Err(e) => Err(e.clone()),
            };
            (Some(check), cert.ok())
        }
    };
    Ok(Described {
        path: path.to_owned(),
        info,
        signature_check,
        certificate,
    })
}

/// The signature section's COSE_Sign1 must verify (ES384) with the certificate's key, and its
/// payload must name PCR0 with this image's PCR0.
pub fn verify_signature(cose: &[u8], cert: &CertFacts, pcr0_hex: &str) -> Result<(), String> {
    let sign1 = CoseSign1::from_slice(cose)
        .or_else(|_| CoseSign1::from_tagged_slice(cose))
        .map_err(|e| format!("signature is not COSE_Sign1: {e}"))?;
    let payload = sign1.payload.clone().ok_or("signature has no payload")?;
    let protected = sign1.protected.original_data.clone().unwrap_or_default();
    let key = p384::ecdsa::VerifyingKey::from_sec1_bytes(&cert.public_key)
        .map_err(|_| "signing certificate's key is not P-384".to_owned())?;
    let sig = p384::ecdsa::Signature::from_slice(&sign1.signature)
        .map_err(|_| "signature is not 96 bytes of ES384".to_owned())?;
    key.verify(&sig_structure(&protected, &payload), &sig)
        .map_err(|_| "signature does not verify with the signing certificate".to_owned())?;
    let v: Value = ciborium::from_reader(payload.as_slice())
        .map_err(|e| format!("signed payload is not CBOR: {e}"))?;
    let map = v.as_map().ok_or("signed payload is not a map")?;
    let get = |k: &str| {
        map.iter()
            .find(|(n, _)| n.as_text() == Some(k))
            .map(|(_, v)| v)
    };
    // nitro-cli's PcrInfo: {register_index, register_value}.
    let index = get("register_index")
        .or_else(|| get("index"))
        .and_then(Value::as_integer)
        .and_then(|i| i64::try_from(i).ok());
    let value = get("register_value")
        .or_else(|| get("value"))
        .and_then(cc_proto::eif::cbor_bytes);
    if index != Some(0) {
        return Err(match index {
            Some(i) => format!("signed payload names PCR{i}, not PCR0"),
            None => "signed payload names no PCR index".to_owned(),
        });
    }
    if value.map(hex::encode).as_deref() != Some(pcr0_hex) {
        return Err("signed PCR0 differs from this image's PCR0".into());
    }
    Ok(())
}

/// nitro-cli `describe-eif` JSON.
pub fn nitro_json(d: &Described) -> serde_json::Value {
    let m = &d.info.measurements;
    let mut measurements = json!({
        "HashAlgorithm": "Sha384 { ... }",
        "PCR0": m.pcr0,
        "PCR1": m.pcr1,
        "PCR2": m.pcr2,
    });
    if let Some(p8) = &m.pcr8 {
        measurements["PCR8"] = json!(p8);
    }
    let mut out = json!({
        "EifVersion": d.info.version,
        "Measurements": measurements,
        "IsSigned": d.info.signature.is_some(),
        "CheckCRC": d.info.crc_ok(),
    });
    if let Some(check) = &d.signature_check {
        out["SignatureCheck"] = json!(check.is_ok());
        if let Err(why) = check {
            out["SignatureError"] = json!(why);
        }
    }
    if let Some(c) = &d.certificate {
        out["SigningCertificate"] = json!({
            "IssuerName": c.issuer_attributes,
            "Algorithm": c.signature_algorithm,
            "NotBefore": openssl_date(c.not_before),
            "NotAfter": openssl_date(c.not_after),
            "Signature": colon_hex(&c.signature),
        });
    }
    if let Some(meta) = &d.info.metadata {
        if let Some(v) = meta.get("ImageName") {
            out["ImageName"] = v.clone();
        }
        if let Some(v) = meta.get("ImageVersion") {
            out["ImageVersion"] = v.clone();
        }
        // nitro-cli flattens build metadata, Docker info and custom keys into "Metadata".
        let mut flat = serde_json::Map::new();
        if let Some(serde_json::Value::Object(b)) = meta.get("BuildMetadata") {
            flat.extend(b.clone());
        }
        if let Some(v) = meta.get("DockerInfo") {
            flat.insert("DockerInfo".into(), v.clone());
        }
        if let Some(serde_json::Value::Object(c)) = meta.get("CustomMetadata") {
            flat.extend(c.clone());
        }
        out["Metadata"] = serde_json::Value::Object(flat);
    }
    out
}

pub fn human(d: &Described) -> String {
    crate::output::clean(&human_raw(d))
}

fn human_raw(d: &Described) -> String {
    let m = &d.info.measurements;
    let mut s = format!("{}\n", d.path.display());
    s += &format!("  EIF version  {}\n", d.info.version);
    if let Some(meta) = &d.info.metadata {
        let name = meta
            .get("ImageName")
            .and_then(|v| v.as_str())
            .unwrap_or("-");
        let ver = meta
            .get("ImageVersion")
            .and_then(|v| v.as_str())
            .unwrap_or("-");
        s += &format!("  image        {name} {ver}\n");
    }
    s += &format!(
        "  sections     {}\n",
        d.info
            .sections
            .iter()
            .map(|x| format!("{:?} ({} B)", x.kind, x.size))
            .collect::<Vec<_>>()
            .join(", ")
    );
    s += &format!("  CRC          ok ({:08x})\n", d.info.computed_crc);
    s += &format!(
        "  PCR0         {}\n  PCR1         {}\n  PCR2         {}\n",
        m.pcr0, m.pcr1, m.pcr2
    );
    match (&m.pcr8, &d.signature_check) {
        (Some(p8), Some(Ok(()))) => s += &format!("  PCR8         {p8}\n  signature    ok\n"),
        (Some(p8), Some(Err(why))) => {
            s += &format!("  PCR8         {p8}\n  signature    FAILED: {why}\n")
        }
        _ => s += "  signature    unsigned (no PCR8)\n",
    }
    if let Some(c) = &d.certificate {
        s += &format!(
            "  certificate  {} (valid {} to {})\n",
            c.subject,
            openssl_date(c.not_before),
            openssl_date(c.not_after)
        );
    }
    s
}

/// `measure` rows: path and PCRs.
pub fn measure_json(all: &[Described]) -> serde_json::Value {
    serde_json::Value::Array(
        all.iter()
            .map(|d| {
                let mut v = nitro_json(d);
                v["Path"] = json!(d.path.display().to_string());
                v
            })
            .collect(),
    )
}
