//! Shared helpers for ccctl's tests: run the real binary, build EIFs.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn ccctl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ccctl"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("run ccctl")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures")
}

/// Build an EIF (version 4) from `(section type, contents)`; the CRC is computed like
/// nitro-cli's: header without its CRC field, then every section header and contents.
pub fn build_eif(sections: &[(u16, Vec<u8>)]) -> Vec<u8> {
    let mut hdr = vec![0u8; 548];
    hdr[..4].copy_from_slice(b".eif");
    hdr[4..6].copy_from_slice(&4u16.to_be_bytes());
    hdr[8..16].copy_from_slice(&(1u64 << 30).to_be_bytes());
    hdr[16..24].copy_from_slice(&2u64.to_be_bytes());
    hdr[26..28].copy_from_slice(&(sections.len() as u16).to_be_bytes());
    let mut body = Vec::new();
    let mut off = 548u64;
    for (i, (kind, data)) in sections.iter().enumerate() {
        hdr[28 + 8 * i..36 + 8 * i].copy_from_slice(&off.to_be_bytes());
        hdr[284 + 8 * i..292 + 8 * i].copy_from_slice(&(data.len() as u64).to_be_bytes());
        body.extend_from_slice(&kind.to_be_bytes());
        body.extend_from_slice(&0u16.to_be_bytes());
        body.extend_from_slice(&(data.len() as u64).to_be_bytes());
        body.extend_from_slice(data);
        off += 12 + data.len() as u64;
    }
    let mut crc = crc32fast::Hasher::new();
    crc.update(&hdr[..544]);
    crc.update(&body);
    hdr[544..548].copy_from_slice(&crc.finalize().to_be_bytes());
    hdr.extend(body);
    hdr
}

/// Recompute the CRC of an EIF after editing it.
pub fn fix_crc(eif: &mut [u8]) {
    let mut crc = crc32fast::Hasher::new();
    crc.update(&eif[..544]);
    crc.update(&eif[548..]);
    let c = crc.finalize();
    eif[544..548].copy_from_slice(&c.to_be_bytes());
}

/// Every `.rs` file below `dir`.
pub fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The finding families (one runbook page each).
pub const FAMILIES: &[&str] = &[
    "config", "doctor", "egress", "enclave", "kms", "logs", "metrics", "nsm", "pcr", "policy",
];

/// Codes passed to `Finding::new("…"` or chosen in a `match` arm as `=> "family.code"`.
pub fn codes() -> BTreeSet<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    for d in ["ccctl/src", "proto/src"] {
        sources(&root.join(d), &mut files);
    }
    // Check ids (`enclave.pod-phase`) are names of checks, not finding codes.
    let mut check_ids: BTreeSet<String> = ccctl::doctor::checks::local()
        .iter()
        .map(|c| c.id().to_owned())
        .collect();
    check_ids.extend(ccctl::doctor::pod::CHECKS.iter().map(|c| c.0.to_owned()));
    check_ids.extend([
        "enclave.in-pod".to_owned(),
        "nsm.device".to_owned(),
        ccctl::doctor::live::CHECK_ID.to_owned(),
    ]);
    let mut out = BTreeSet::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        // Test modules use made-up codes.
        let text = text.split("#[cfg(test)]").next().unwrap_or("");
        for marker in ["Finding::new(", "=> \"", "base(", "code: \"", "("] {
            for part in text.split(marker).skip(1) {
                let part = part.trim_start();
                // A code is a string literal (not `s.code` or a variable).
                if !marker.ends_with('"') && !part.starts_with('"') {
                    continue;
                }
                let part = part.trim_start_matches('"');
                let code: String = part
                    .chars()
                    .take_while(|c| {
                        c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '.' || *c == '-'
                    })
                    .collect();
                let family = code.split('.').next().unwrap_or_default();
                if code.contains('.')
                    && !code.ends_with('.')
                    && FAMILIES.contains(&family)
                    && code.matches('.').count() == 1
                    && !code.ends_with(".md")
                    && !code.ends_with(".rs")
                    // A bare `("…"` may be a check's id; the other markers are codes.
                    && (marker != "(" || !check_ids.contains(&code))
                {
                    out.insert(code);
                }
            }
        }
    }
    out
}
