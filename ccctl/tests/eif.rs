//! `ccctl eif` against the shared fixtures and EIFs built here.

mod common;

use common::{build_eif, ccctl, fix_crc, fixtures, stderr, stdout};
use sha2::{Digest, Sha384};

fn pcr(parts: &[&[u8]]) -> String {
    let mut inner = Sha384::new();
    for p in parts {
        inner.update(p);
    }
    let mut outer = Sha384::new();
    outer.update([0u8; 48]);
    outer.update(inner.finalize());
    hex::encode(outer.finalize())
}

fn json(args: &[&str]) -> (i32, serde_json::Value) {
    let o = ccctl(args);
    let v = serde_json::from_str(&stdout(&o)).unwrap_or(serde_json::Value::Null);
    (o.status.code().unwrap_or(-1), v)
}

#[test]
fn json_uses_nitro_cli_keys_and_reference_pcrs() {
    let f = fixtures();
    let expected: serde_json::Value =
        serde_json::from_slice(&std::fs::read(f.join("eif/expected_pcrs.json")).unwrap()).unwrap();
    let nitro: serde_json::Value = serde_json::from_slice(
        &std::fs::read(f.join("nitro-cli/describe-eif.signed.json")).unwrap(),
    )
    .unwrap();
    for file in ["synthetic_signed.eif", "synthetic_unsigned.eif"] {
        let path = f.join("eif").join(file);
        let (code, v) = json(&[
            "eif",
            "describe",
            "--eif-path",
            path.to_str().unwrap(),
            "-o",
            "json",
        ]);
        assert_eq!(code, 0, "{file}");
        for (k, want) in expected[file].as_object().unwrap() {
            assert_eq!(&v["Measurements"][k], want, "{file} {k}");
        }
        assert_eq!(v["Measurements"]["HashAlgorithm"], "Sha384 { ... }");
        assert_eq!(v["CheckCRC"], true);
        assert_eq!(v["EifVersion"], 4);
    }
    let path = f.join("eif/synthetic_signed.eif");
    let (_, v) = json(&[
        "-o",
        "json",
        "eif",
        "describe",
        "--eif-path",
        path.to_str().unwrap(),
    ]);
    // Every top-level key nitro-cli prints for a signed image is there.
    for key in nitro.as_object().unwrap().keys() {
        assert!(v.get(key).is_some(), "missing key {key}: {v:#}");
    }
    assert_eq!(v["IsSigned"], true);
    assert_eq!(v["SignatureCheck"], true);
    assert_eq!(v["SigningCertificate"]["Algorithm"], "ecdsa-with-SHA384");
    assert_eq!(
        v["SigningCertificate"]["IssuerName"]["commonName"],
        "synthetic-eif-signer"
    );
}

#[test]
fn built_images_measure_by_the_rule() {
    let dir = tempfile::tempdir().unwrap();
    let kernel = vec![1u8; 5000];
    let cmdline = b"console=ttyS0 reboot=k".to_vec();
    let r1 = vec![2u8; 3 << 20]; // larger than one read chunk
    let r2 = b"second ramdisk".to_vec();
    let r3 = vec![3u8; 777];
    let meta = br#"{"ImageName":"built","ImageVersion":"1.2.3","BuildMetadata":{"BuildTime":"t"},"CustomMetadata":{"team":"custody"}}"#.to_vec();
    let eif = build_eif(&[
        (1, kernel.clone()),
        (2, cmdline.clone()),
        (5, meta),
        (3, r1.clone()),
        (3, r2.clone()),
        (3, r3.clone()),
    ]);
    let p = dir.path().join("built.eif");
    std::fs::write(&p, &eif).unwrap();
    let (code, v) = json(&[
        "-o",
        "json",
        "eif",
        "describe",
        "--eif-path",
        p.to_str().unwrap(),
    ]);
    assert_eq!(code, 0);
    assert_eq!(
        v["Measurements"]["PCR0"],
        pcr(&[&kernel, &cmdline, &r1, &r2, &r3])
    );
    assert_eq!(v["Measurements"]["PCR1"], pcr(&[&kernel, &cmdline, &r1]));
    assert_eq!(v["Measurements"]["PCR2"], pcr(&[&r2, &r3]));
    assert!(v["Measurements"].get("PCR8").is_none());
    assert_eq!(v["IsSigned"], false);
    assert_eq!(v["ImageName"], "built");
    assert_eq!(
        v["Metadata"]["team"], "custody",
        "custom metadata inline, as nitro-cli"
    );
    // One ramdisk: PCR2 is the hash of nothing.
    let one = build_eif(&[(1, kernel.clone()), (2, cmdline.clone()), (3, r1.clone())]);
    let p1 = dir.path().join("one.eif");
    std::fs::write(&p1, &one).unwrap();
    let (_, v) = json(&[
        "-o",
        "json",
        "eif",
        "measure",
        p1.to_str().unwrap(),
        p.to_str().unwrap(),
    ]);
    assert_eq!(v[0]["Measurements"]["PCR2"], pcr(&[]));
    assert_eq!(v[0]["Path"], p1.to_str().unwrap());
    assert_eq!(v[1]["Measurements"]["PCR1"], pcr(&[&kernel, &cmdline, &r1]));
}

#[test]
fn a_tampered_signature_is_a_finding() {
    let dir = tempfile::tempdir().unwrap();
    let mut eif = std::fs::read(fixtures().join("eif/synthetic_signed.eif")).unwrap();
    // The COSE signature is the end of the file, stored as CBOR integers (0x18 then the
    // byte for values of 24 and more); flip such a value byte so the CBOR stays well formed.
    let at = (0..eif.len() - 1)
        .rev()
        .find(|i| eif[*i] == 0x18 && eif[i + 1] >= 24)
        .unwrap()
        + 1;
    eif[at] ^= 0x01;
    fix_crc(&mut eif);
    let p = dir.path().join("tampered.eif");
    std::fs::write(&p, &eif).unwrap();
    let o = ccctl(&["eif", "describe", "--eif-path", p.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stdout(&o).contains("signature    FAILED: signature does not verify"),
        "{}",
        stdout(&o)
    );
    let (_, v) = json(&[
        "-o",
        "json",
        "eif",
        "describe",
        "--eif-path",
        p.to_str().unwrap(),
    ]);
    assert_eq!(v["SignatureCheck"], false);
}

#[test]
fn damaged_files_exit_2_naming_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let good = std::fs::read(fixtures().join("eif/synthetic_unsigned.eif")).unwrap();
    let mut crc = good.clone();
    let n = crc.len();
    crc[n - 1] ^= 1;
    let mut magic = good.clone();
    magic[1] = b'X';
    let mut past = good.clone();
    past[284] = 0x01; // first section size: 2^56 bytes
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "truncated.eif",
            good[..good.len() - 20].to_vec(),
            "runs past the end",
        ),
        (
            "short.eif",
            good[..300].to_vec(),
            "shorter than the 548-byte header",
        ),
        ("magic.eif", magic, "bad magic"),
        ("crc.eif", crc, "CRC mismatch"),
        ("past.eif", past, "runs past the end"),
    ];
    for (name, bytes, needle) in cases {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        let o = ccctl(&["eif", "describe", "--eif-path", p.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(2), "{name}");
        assert!(stderr(&o).contains(needle), "{name}: {}", stderr(&o));
        assert!(
            stderr(&o).contains(name),
            "error names the file: {}",
            stderr(&o)
        );
    }
    let o = ccctl(&["eif", "describe", "--eif-path", "/nonexistent.eif"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("cannot open '/nonexistent.eif'"));
}

/// A signature section as nitro-cli writes it: CBOR list of {signing_certificate, signature},
/// byte strings encoded as integer arrays (serde_cbor's `Vec<u8>`), the signature a COSE_Sign1
/// (ES384) over `{register_index: 0, register_value: PCR0}`.
fn signature_section(pcr0_hex: &str, signer: &rcgen::KeyPair, cert_pem: &str) -> Vec<u8> {
    use ciborium::Value;
    use rcgen::SigningKey;
    let ints = |b: &[u8]| Value::Array(b.iter().map(|x| Value::Integer((*x).into())).collect());
    let payload_v = Value::Map(vec![
        (
            Value::Text("register_index".into()),
            Value::Integer(0.into()),
        ),
        (
            Value::Text("register_value".into()),
            ints(&hex::decode(pcr0_hex).unwrap()),
        ),
    ]);
    let mut payload = Vec::new();
    ciborium::into_writer(&payload_v, &mut payload).unwrap();
    let protected = cc_proto::attestation::es384_protected();
    let der = signer
        .sign(&cc_proto::attestation::sig_structure(&protected, &payload))
        .unwrap();
    let sig = p384::ecdsa::Signature::from_der(&der).unwrap().to_bytes();
    let cose = cc_proto::attestation::cose_sign1(&protected, &payload, &sig);
    let section = Value::Array(vec![Value::Map(vec![
        (
            Value::Text("signing_certificate".into()),
            ints(cert_pem.as_bytes()),
        ),
        (Value::Text("signature".into()), ints(&cose)),
    ])]);
    let mut out = Vec::new();
    ciborium::into_writer(&section, &mut out).unwrap();
    out
}

#[test]
fn images_signed_here_verify_and_measure_pcr8() {
    let dir = tempfile::tempdir().unwrap();
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
    let mut params = rcgen::CertificateParams::new(vec![]).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "release-signer");
    let cert = params.self_signed(&key).unwrap();
    let (kernel, cmdline, r1, r2) = (
        vec![9u8; 4096],
        b"init=/init".to_vec(),
        vec![1u8; 70_000],
        vec![2u8; 10],
    );
    let pcr0 = pcr(&[&kernel, &cmdline, &r1, &r2]);
    let sections = |sig: Vec<u8>| {
        build_eif(&[
            (1, kernel.clone()),
            (2, cmdline.clone()),
            (3, r1.clone()),
            (3, r2.clone()),
            (4, sig),
        ])
    };
    let signed = dir.path().join("signed.eif");
    std::fs::write(
        &signed,
        sections(signature_section(&pcr0, &key, &cert.pem())),
    )
    .unwrap();
    let (code, v) = json(&[
        "-o",
        "json",
        "eif",
        "describe",
        "--eif-path",
        signed.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(v["IsSigned"], true);
    assert_eq!(v["SignatureCheck"], true);
    assert_eq!(v["Measurements"]["PCR0"], pcr0);
    assert_eq!(
        v["Measurements"]["PCR8"],
        pcr(&[cert.der()]),
        "PCR8 measures the DER certificate"
    );
    assert_eq!(
        v["SigningCertificate"]["IssuerName"]["commonName"],
        "release-signer"
    );
    // Signed by another key than the certificate's: the check fails (exit 1).
    let other = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
    let forged = dir.path().join("forged.eif");
    std::fs::write(
        &forged,
        sections(signature_section(&pcr0, &other, &cert.pem())),
    )
    .unwrap();
    let (code, v) = json(&[
        "-o",
        "json",
        "eif",
        "describe",
        "--eif-path",
        forged.to_str().unwrap(),
    ]);
    assert_eq!(code, 1);
    assert_eq!(v["SignatureCheck"], false);
    // A valid signature over another image's PCR0 does not vouch for this one.
    let replayed = dir.path().join("replayed.eif");
    std::fs::write(
        &replayed,
        sections(signature_section(&"ab".repeat(48), &key, &cert.pem())),
    )
    .unwrap();
    let o = ccctl(&["eif", "describe", "--eif-path", replayed.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stdout(&o).contains("signed PCR0 differs from this image's PCR0"),
        "{}",
        stdout(&o)
    );
}
