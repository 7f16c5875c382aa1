//! Enclave Image Files: header, CRC, sections and measurements, read in one pass.
//!
//! Format (version 4): a 548-byte big-endian header (magic `.eif`, version, flags, default
//! memory and CPUs, section count, 32 section offsets and sizes, CRC-32 of everything but the
//! CRC itself), then sections, each a 12-byte header (type, flags, size) and its bytes.
//! Measurement rule: PCRn = SHA-384(48 zero bytes ‖ SHA-384(contents)), PCR0 over kernel,
//! cmdline and all ramdisks, PCR1 over kernel, cmdline and the first ramdisk, PCR2 over the
//! other ramdisks, PCR8 over the DER signing certificate.
//!
//! Every byte is read once and fed to the CRC and the PCR hashers in the same pass; the
//! input is untrusted, so sizes are checked against the file length before anything is read.

use std::io::Read;

use ciborium::Value;
use sha2::{Digest, Sha384};

pub const MAGIC: &[u8; 4] = b".eif";
pub const HEADER_LEN: usize = 548;
const MAX_SECTIONS: usize = 32;
const SECTION_HEADER_LEN: usize = 12;
/// Signature and metadata sections are kept in memory; nothing legitimate comes near this.
const MAX_SMALL_SECTION: u64 = 4 << 20;
const CHUNK: usize = 1 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum SectionKind {
    Invalid,
    Kernel,
    Cmdline,
    Ramdisk,
    Signature,
    Metadata,
    Unknown(u16),
}

impl SectionKind {
    fn from_u16(v: u16) -> Self {
        match v {
            0 => SectionKind::Invalid,
            1 => SectionKind::Kernel,
            2 => SectionKind::Cmdline,
            3 => SectionKind::Ramdisk,
            4 => SectionKind::Signature,
            5 => SectionKind::Metadata,
            n => SectionKind::Unknown(n),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Section {
    pub kind: SectionKind,
    pub offset: u64,
    pub size: u64,
}

/// The PCR values of an image, lowercase hex.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Measurements {
    pub pcr0: String,
    pub pcr1: String,
    pub pcr2: String,
    /// Only for signed images.
    pub pcr8: Option<String>,
}

impl Measurements {
    /// PCR0, 1, 2 and (signed images) 8 as a set.
    pub fn pcr_set(&self) -> crate::pcr::PcrSet {
        let mut out = crate::pcr::PcrSet::new();
        let regs = [
            (0u8, Some(&self.pcr0)),
            (1, Some(&self.pcr1)),
            (2, Some(&self.pcr2)),
            (8, self.pcr8.as_ref()),
        ];
        for (i, v) in regs {
            if let Some(p) = v.and_then(|v| crate::pcr::Pcr::parse(v).ok()) {
                out.set(i, p);
            }
        }
        out
    }
}

/// The signature section's first entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureEntry {
    /// The signing certificate as stored (PEM).
    pub certificate_pem: Vec<u8>,
    /// Its DER form (what PCR8 measures).
    pub certificate_der: Vec<u8>,
    /// COSE_Sign1 over the CBOR `{index: 0, value: PCR0}`.
    pub signature: Vec<u8>,
}

#[derive(Debug, Clone)]
pub struct EifInfo {
    pub version: u16,
    pub flags: u16,
    pub default_memory: u64,
    pub default_cpus: u64,
    pub sections: Vec<Section>,
    pub stored_crc: u32,
    pub computed_crc: u32,
    pub measurements: Measurements,
    pub signature: Option<SignatureEntry>,
    /// The metadata section's JSON, if any.
    pub metadata: Option<serde_json::Value>,
}

impl EifInfo {
    pub fn crc_ok(&self) -> bool {
        self.stored_crc == self.computed_crc
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EifError {
    #[error("cannot read the EIF: {0}")]
    Io(#[from] std::io::Error),
    #[error("not an EIF: the file is {0} bytes, shorter than the 548-byte header")]
    TooShort(u64),
    #[error("not an EIF: bad magic {0:02x?} (expected \".eif\")")]
    BadMagic([u8; 4]),
    #[error("unsupported EIF version {0} (expected 4 or later)")]
    Version(u16),
    #[error("the header lists {0} sections (at most 32)")]
    TooManySections(u16),
    #[error("section {index} ({offset} + {size} bytes) runs past the end of the {len}-byte file")]
    PastEnd {
        index: usize,
        offset: u64,
        size: u64,
        len: u64,
    },
    #[error("section {index} starts at {offset}, before the end of the previous one ({expected})")]
    Overlap {
        index: usize,
        offset: u64,
        expected: u64,
    },
    #[error("section {index}: its header says {inner} bytes, the EIF header says {outer}")]
    SizeMismatch {
        index: usize,
        inner: u64,
        outer: u64,
    },
    #[error("section {index} ({kind:?}) is {size} bytes, more than this tool keeps in memory")]
    TooLarge {
        index: usize,
        kind: SectionKind,
        size: u64,
    },
    #[error("the image has no {0} section")]
    Missing(&'static str),
    #[error(
        "CRC mismatch: the header says {stored:08x}, the contents give {computed:08x} (the file is damaged)"
    )]
    Crc { stored: u32, computed: u32 },
    #[error("signature section is malformed: {0}")]
    Signature(String),
}

/// The PCR extend of one measured blob: SHA-384(48 zero bytes ‖ SHA-384(contents)).
fn finish_pcr(h: Sha384) -> String {
    let inner = h.finalize();
    let mut outer = Sha384::new();
    outer.update([0u8; 48]);
    outer.update(inner);
    hex::encode(outer.finalize())
}

/// PCR8 of a signing certificate (DER).
pub fn pcr8_of_certificate(der: &[u8]) -> String {
    let mut h = Sha384::new();
    h.update(der);
    finish_pcr(h)
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}
fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn be64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_be_bytes(a)
}

/// Read and measure an EIF of `len` bytes. A CRC mismatch is an error (the measurements of a
/// damaged file mean nothing); use [`describe_lenient`] to see them anyway.
pub fn describe(r: impl Read, len: u64) -> Result<EifInfo, EifError> {
    let info = describe_lenient(r, len)?;
    if !info.crc_ok() {
        return Err(EifError::Crc {
            stored: info.stored_crc,
            computed: info.computed_crc,
        });
    }
    Ok(info)
}

/// Same, returning the information even when the CRC does not match.
pub fn describe_lenient(mut r: impl Read, len: u64) -> Result<EifInfo, EifError> {
    if len < HEADER_LEN as u64 {
        return Err(EifError::TooShort(len));
    }
    let mut hdr = [0u8; HEADER_LEN];
    r.read_exact(&mut hdr)?;
    let mut magic = [0u8; 4];
    magic.copy_from_slice(&hdr[..4]);
    if &magic != MAGIC {
        return Err(EifError::BadMagic(magic));
    }
    let version = be16(&hdr, 4);
    if version < 4 {
        return Err(EifError::Version(version));
    }
    let flags = be16(&hdr, 6);
    let default_memory = be64(&hdr, 8);
    let default_cpus = be64(&hdr, 16);
    let num = be16(&hdr, 26);
    if num as usize > MAX_SECTIONS {
        return Err(EifError::TooManySections(num));
    }
    let mut table: Vec<(usize, u64, u64)> = (0..num as usize)
        .map(|i| (i, be64(&hdr, 28 + 8 * i), be64(&hdr, 28 + 256 + 8 * i)))
        .collect();
    table.sort_by_key(|(_, off, _)| *off);
    let stored_crc = be32(&hdr, 544);
    // Validate the whole layout against the file length before reading any section.
    let mut pos = HEADER_LEN as u64;
    for (index, offset, size) in &table {
        let end = offset
            .checked_add(SECTION_HEADER_LEN as u64)
            .and_then(|v| v.checked_add(*size));
        match end {
            Some(e) if e <= len => {}
            _ => {
                return Err(EifError::PastEnd {
                    index: *index,
                    offset: *offset,
                    size: *size,
                    len,
                });
            }
        }
        if *offset < pos {
            return Err(EifError::Overlap {
                index: *index,
                offset: *offset,
                expected: pos,
            });
        }
        pos = offset + SECTION_HEADER_LEN as u64 + size;
    }

    // Two hashing lanes over the same bytes, read once: this thread feeds PCR0, a second
    // thread the CRC and PCR1/PCR2 (on two cores the pass costs about one SHA-384, not two).
    let (tx, rx) = std::sync::mpsc::sync_channel::<(std::sync::Arc<Vec<u8>>, u8)>(8);
    const CRC: u8 = 1;
    const PCR1: u8 = 2;
    const PCR2: u8 = 4;
    let header_for_crc = hdr[..544].to_vec();
    let mut pcr0 = Sha384::new();
    let mut ramdisks = 0usize;
    let (mut kernel, mut cmdline) = (false, false);
    let mut sections = Vec::new();
    let mut signature_bytes = None;
    let mut metadata_bytes = None;
    let (read_result, (computed_crc, pcr1, pcr2)) = std::thread::scope(|scope| {
        let lane = scope.spawn(move || {
            let mut crc = crc32fast::Hasher::new();
            crc.update(&header_for_crc);
            let (mut pcr1, mut pcr2) = (Sha384::new(), Sha384::new());
            for (bytes, route) in rx {
                if route & CRC != 0 {
                    crc.update(&bytes);
                }
                if route & PCR1 != 0 {
                    pcr1.update(&bytes[..]);
                }
                if route & PCR2 != 0 {
                    pcr2.update(&bytes[..]);
                }
            }
            (crc.finalize(), pcr1, pcr2)
        });
        let read_result = (|| -> Result<(), EifError> {
            let mut at = HEADER_LEN as u64;
            for (index, offset, size) in table {
                // Skip (but do not measure or CRC) any gap, as the reference reader does.
                if offset > at {
                    std::io::copy(&mut (&mut r).take(offset - at), &mut std::io::sink())?;
                }
                let mut sh = [0u8; SECTION_HEADER_LEN];
                r.read_exact(&mut sh)?;
                let _ = tx.send((std::sync::Arc::new(sh.to_vec()), CRC));
                let kind = SectionKind::from_u16(be16(&sh, 0));
                let inner = be64(&sh, 4);
                if inner != size {
                    return Err(EifError::SizeMismatch {
                        index,
                        inner,
                        outer: size,
                    });
                }
                let keep = matches!(kind, SectionKind::Signature | SectionKind::Metadata);
                if keep && size > MAX_SMALL_SECTION {
                    return Err(EifError::TooLarge { index, kind, size });
                }
                let (in_pcr0, route) = match kind {
                    SectionKind::Kernel | SectionKind::Cmdline => (true, CRC | PCR1),
                    SectionKind::Ramdisk if ramdisks == 0 => (true, CRC | PCR1),
                    SectionKind::Ramdisk => (true, CRC | PCR2),
                    _ => (false, CRC),
                };
                let mut kept = Vec::new();
                let mut left = size;
                while left > 0 {
                    let n = left.min(CHUNK as u64) as usize;
                    let mut buf = vec![0u8; n];
                    r.read_exact(&mut buf)?;
                    if in_pcr0 {
                        pcr0.update(&buf);
                    }
                    if keep {
                        kept.extend_from_slice(&buf);
                    }
                    let _ = tx.send((std::sync::Arc::new(buf), route));
                    left -= n as u64;
                }
                match kind {
                    SectionKind::Kernel => kernel = true,
                    SectionKind::Cmdline => cmdline = true,
                    SectionKind::Ramdisk => ramdisks += 1,
                    SectionKind::Signature => signature_bytes = Some(kept),
                    SectionKind::Metadata => metadata_bytes = Some(kept),
                    _ => {}
                }
                sections.push(Section { kind, offset, size });
                at = offset + SECTION_HEADER_LEN as u64 + size;
            }
            Ok(())
        })();
        drop(tx);
        let lanes = lane
            .join()
            .unwrap_or_else(|_| (0, Sha384::new(), Sha384::new()));
        (read_result, lanes)
    });
    read_result?;
    if !kernel {
        return Err(EifError::Missing("kernel"));
    }
    if !cmdline {
        return Err(EifError::Missing("cmdline"));
    }
    if ramdisks == 0 {
        return Err(EifError::Missing("ramdisk"));
    }
    let signature = signature_bytes.map(|b| parse_signature(&b)).transpose()?;
    Ok(EifInfo {
        version,
        flags,
        default_memory,
        default_cpus,
        sections,
        stored_crc,
        computed_crc,
        measurements: Measurements {
            pcr0: finish_pcr(pcr0),
            pcr1: finish_pcr(pcr1),
            pcr2: finish_pcr(pcr2),
            pcr8: signature
                .as_ref()
                .map(|s| pcr8_of_certificate(&s.certificate_der)),
        },
        signature,
        metadata: metadata_bytes.and_then(|b| serde_json::from_slice(&b).ok()),
    })
}

/// Bytes stored either as a CBOR byte string or as an array of integers (serde_cbor's
/// encoding of `Vec<u8>`, which is what nitro-cli writes).
pub fn cbor_bytes(v: &Value) -> Option<Vec<u8>> {
    match v {
        Value::Bytes(b) => Some(b.clone()),
        Value::Array(a) => a
            .iter()
            .map(|x| x.as_integer().and_then(|i| u8::try_from(i).ok()))
            .collect(),
        _ => None,
    }
}

fn parse_signature(b: &[u8]) -> Result<SignatureEntry, EifError> {
    let bad = |m: &str| EifError::Signature(m.to_owned());
    let v: Value = ciborium::from_reader(b).map_err(|e| EifError::Signature(e.to_string()))?;
    let first = v
        .as_array()
        .and_then(|a| a.first())
        .and_then(Value::as_map)
        .ok_or_else(|| bad("expected a list of {signing_certificate, signature}"))?;
    let field = |name: &str| {
        first
            .iter()
            .find(|(k, _)| k.as_text() == Some(name))
            .and_then(|(_, v)| cbor_bytes(v))
    };
    let certificate_pem =
        field("signing_certificate").ok_or_else(|| bad("no signing_certificate"))?;
    let signature = field("signature").ok_or_else(|| bad("no signature"))?;
    let certificate_der =
        pem_or_der(&certificate_pem).ok_or_else(|| bad("signing_certificate is not PEM or DER"))?;
    Ok(SignatureEntry {
        certificate_pem,
        certificate_der,
        signature,
    })
}

/// DER from PEM text, or the input itself when it already is DER.
pub fn pem_or_der(b: &[u8]) -> Option<Vec<u8>> {
    use base64::Engine as _;
    if b.first() == Some(&0x30) {
        return Some(b.to_vec());
    }
    let text = std::str::from_utf8(b).ok()?;
    let body: String = text
        .lines()
        .map(str::trim)
        .skip_while(|l| !l.starts_with("-----BEGIN"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    base64::engine::general_purpose::STANDARD.decode(body).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../shared/fixtures/eif")
                .join(name),
        )
        .unwrap()
    }

    fn expected(file: &str, pcr: &str) -> String {
        let v: serde_json::Value = serde_json::from_slice(&fixture("expected_pcrs.json")).unwrap();
        v[file][pcr].as_str().unwrap().to_owned()
    }

    fn run(b: &[u8]) -> Result<EifInfo, EifError> {
        describe(b, b.len() as u64)
    }

    #[test]
    fn fixtures_measure_to_the_reference_values() {
        for f in ["synthetic_unsigned.eif", "synthetic_signed.eif"] {
            let info = run(&fixture(f)).unwrap();
            assert!(info.crc_ok());
            assert_eq!(info.measurements.pcr0, expected(f, "PCR0"), "{f}");
            assert_eq!(info.measurements.pcr1, expected(f, "PCR1"), "{f}");
            assert_eq!(info.measurements.pcr2, expected(f, "PCR2"), "{f}");
        }
        let signed = run(&fixture("synthetic_signed.eif")).unwrap();
        assert_eq!(
            signed.measurements.pcr8.as_deref(),
            Some(expected("synthetic_signed.eif", "PCR8").as_str())
        );
        let cert = pem_or_der(&fixture("synthetic_signer_cert.pem")).unwrap();
        assert_eq!(signed.signature.unwrap().certificate_der, cert);
        assert_eq!(
            run(&fixture("synthetic_unsigned.eif"))
                .unwrap()
                .measurements
                .pcr8,
            None
        );
        assert_eq!(signed.metadata.unwrap()["ImageName"], "synthetic");
    }

    #[test]
    fn damage_is_named() {
        let good = fixture("synthetic_unsigned.eif");
        let e = run(&good[..100]).unwrap_err().to_string();
        assert!(e.contains("shorter than the 548-byte header"), "{e}");
        let e = run(&good[..good.len() - 1]).unwrap_err().to_string();
        assert!(e.contains("runs past the end"), "{e}");
        let mut bad = good.clone();
        bad[0] = b'x';
        assert!(run(&bad).unwrap_err().to_string().contains("bad magic"));
        let mut bad = good.clone();
        let n = bad.len();
        bad[n - 3] ^= 0xff;
        let e = run(&bad).unwrap_err().to_string();
        assert!(e.contains("CRC mismatch"), "{e}");
        // Section size in the header pointing past the end.
        let mut bad = good.clone();
        bad[28 + 256 + 7] = 0xff;
        assert!(run(&bad).is_err());
        let mut bad = good.clone();
        bad[27] = 40;
        assert!(run(&bad).unwrap_err().to_string().contains("at most 32"));
    }

    #[test]
    fn no_prefix_of_any_byte_flip_panics() {
        let good = fixture("synthetic_signed.eif");
        for i in 0..good.len() {
            let mut b = good.clone();
            b[i] ^= 0x5a;
            let _ = describe_lenient(&b[..], b.len() as u64);
        }
        for n in 0..good.len() {
            let _ = run(&good[..n]);
        }
    }
}
