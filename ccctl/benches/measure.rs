//! `ccctl eif describe` on a 256 MiB EIF against `sha384sum` of the same file (the limit: one
//! read, one hash), whole processes, in one run; and `attest verify` per document in-process
//! (excluding process start). Run: `scripts/bench` (needs the release `ccctl`).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const MIB: usize = 1 << 20;

fn write_eif(path: &Path) {
    use std::io::Write;
    // kernel 16 MiB, cmdline, ramdisks 176 + 64 MiB: 256 MiB of sections.
    let sections: Vec<(u16, usize)> =
        vec![(1, 16 * MIB), (2, 64), (3, 176 * MIB), (3, 64 * MIB - 64)];
    let mut hdr = vec![0u8; 548];
    hdr[..4].copy_from_slice(b".eif");
    hdr[4..6].copy_from_slice(&4u16.to_be_bytes());
    hdr[26..28].copy_from_slice(&(sections.len() as u16).to_be_bytes());
    let mut off = 548u64;
    for (i, (_, len)) in sections.iter().enumerate() {
        hdr[28 + 8 * i..36 + 8 * i].copy_from_slice(&off.to_be_bytes());
        hdr[284 + 8 * i..292 + 8 * i].copy_from_slice(&(*len as u64).to_be_bytes());
        off += 12 + *len as u64;
    }
    // CRC over header (without its CRC) and every section, streamed.
    let mut crc = crc32fast::Hasher::new();
    crc.update(&hdr[..544]);
    let chunk: Vec<u8> = (0..MIB).map(|i| (i * 31 % 251) as u8).collect();
    for (kind, len) in &sections {
        let mut sh = Vec::new();
        sh.extend_from_slice(&kind.to_be_bytes());
        sh.extend_from_slice(&0u16.to_be_bytes());
        sh.extend_from_slice(&(*len as u64).to_be_bytes());
        crc.update(&sh);
        let mut left = *len;
        while left > 0 {
            let n = left.min(MIB);
            crc.update(&chunk[..n]);
            left -= n;
        }
    }
    hdr[544..548].copy_from_slice(&crc.finalize().to_be_bytes());
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).expect("create"));
    f.write_all(&hdr).expect("write");
    for (kind, len) in &sections {
        f.write_all(&kind.to_be_bytes()).expect("write");
        f.write_all(&0u16.to_be_bytes()).expect("write");
        f.write_all(&(*len as u64).to_be_bytes()).expect("write");
        let mut left = *len;
        while left > 0 {
            let n = left.min(MIB);
            f.write_all(&chunk[..n]).expect("write");
            left -= n;
        }
    }
}

fn time(cmd: &mut Command) -> Duration {
    let t = Instant::now();
    let out = cmd.output().expect("run");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    t.elapsed()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let exe = std::env::current_exe().expect("exe");
    let ccctl = exe
        .parent()
        .and_then(Path::parent)
        .expect("target dir")
        .join("ccctl");
    assert!(
        ccctl.exists(),
        "{} missing: cargo build --release -p ccctl",
        ccctl.display()
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let eif = dir.path().join("big.eif");
    write_eif(&eif);
    let size = std::fs::metadata(&eif).expect("stat").len();
    // Warm the page cache so both read from memory.
    let _ = std::fs::read(&eif);
    let (mut sha, mut ours) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        sha.push(time(Command::new("sha384sum").arg(&eif)));
        ours.push(time(
            Command::new(&ccctl)
                .args(["eif", "describe", "--eif-path"])
                .arg(&eif),
        ));
    }
    let (sha, ours) = (median(sha), median(ours));
    println!(
        "EIF of {} MiB, page cache warm, median of 5 runs (whole processes):\n",
        size >> 20
    );
    println!("| command | wall time | MiB/s | ratio to sha384sum |");
    println!("|---|---:|---:|---:|");
    for (name, d) in [
        ("sha384sum FILE (limit)", sha),
        ("ccctl eif describe --eif-path FILE", ours),
    ] {
        println!(
            "| {name} | {:.0} ms | {:.0} | {:.2}× |",
            d.as_secs_f64() * 1e3,
            (size as f64 / MIB as f64) / d.as_secs_f64(),
            d.as_secs_f64() / sha.as_secs_f64()
        );
    }

    // attest verify, in-process, every genuine fixture at its own time.
    let fx = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/attestation");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fx.join("MANIFEST.json")).expect("manifest"))
            .expect("json");
    let root = ccctl::attest::pem_der(ccctl::attest::AWS_NITRO_ROOT_G1_PEM).expect("root");
    let docs: Vec<Vec<u8>> = manifest
        .as_array()
        .expect("list")
        .iter()
        .filter(|e| e["kind"].as_str().unwrap_or("").starts_with("genuine"))
        .map(|e| std::fs::read(fx.join(e["file"].as_str().unwrap_or(""))).expect("doc"))
        .collect();
    let mut per = Vec::new();
    for _ in 0..50 {
        for d in &docs {
            let t = Instant::now();
            let parsed = ccctl::attest::load(d).expect("parse");
            let v = ccctl::attest::verify(&parsed, &root, ccctl::attest::At::Doc, &[], false);
            per.push(t.elapsed());
            assert!(v.valid);
        }
    }
    per.sort();
    println!(
        "\nattest verify (parse, ES384, chain to the pinned root), {} verifications of {} genuine documents, in-process: p50 {:.2} ms, p99 {:.2} ms (target ≤ 5 ms)",
        per.len(),
        docs.len(),
        per[per.len() / 2].as_secs_f64() * 1e3,
        per[per.len() * 99 / 100].as_secs_f64() * 1e3
    );
}
