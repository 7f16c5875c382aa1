//! Shared helpers for ccctl's tests: run the real binary, build EIFs.
#![allow(dead_code)]

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
