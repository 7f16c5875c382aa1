//! Property tests: every parser that takes untrusted input returns an error, never panics,
//! whatever the bytes (attestation documents, EIFs, key policies, nitro-cli output, addresses).

use proptest::prelude::*;

fn genuine_doc() -> Vec<u8> {
    std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../shared/fixtures/attestation/oyster_sdks_rs_aws.bin"),
    )
    .unwrap()
}

fn signed_eif() -> Vec<u8> {
    std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../shared/fixtures/eif/synthetic_signed.eif"),
    )
    .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn attestation_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let root = ccctl::attest::pem_der(ccctl::attest::AWS_NITRO_ROOT_G1_PEM).unwrap();
        if let Ok(d) = ccctl::attest::load(&bytes) {
            let _ = ccctl::attest::verify(&d, &root, ccctl::attest::At::Doc, &[], true);
        }
    }

    #[test]
    fn attestation_mutated(edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)) {
        let root = ccctl::attest::pem_der(ccctl::attest::AWS_NITRO_ROOT_G1_PEM).unwrap();
        let mut doc = genuine_doc();
        for (i, b) in edits {
            let at = i.index(doc.len());
            doc[at] = b;
        }
        if let Ok(d) = ccctl::attest::load(&doc) {
            let _ = ccctl::attest::verify(&d, &root, ccctl::attest::At::Doc, &[], false);
        }
    }

    #[test]
    fn eif_mutated(edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6), cut in any::<prop::sample::Index>()) {
        let mut eif = signed_eif();
        for (i, b) in edits {
            let at = i.index(eif.len());
            eif[at] = b;
        }
        let n = cut.index(eif.len() + 1);
        let _ = cc_proto::eif::describe_lenient(&eif[..n], n as u64);
        // A file shorter than it claims to be must not make the reader hang or panic either.
        let _ = cc_proto::eif::describe_lenient(&eif[..n], eif.len() as u64);
    }

    #[test]
    fn eif_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let _ = cc_proto::eif::describe_lenient(&bytes[..], bytes.len() as u64);
    }

    #[test]
    fn policies_any_json_shape(text in "\\PC{0,400}") {
        if let Ok(p) = cc_proto::policy::Policy::parse(&text) {
            let _ = cc_proto::policy::analyse(&p, "arn:aws:iam::1:role/x", &cc_proto::policy::Measurements::default());
        }
    }

    #[test]
    fn policies_structured(effect in "Allow|Deny|X", action in "[a-zA-Z:*?]{0,12}", op in "(ForAnyValue:|ForAllValues:)?(StringEquals|StringLike|StringNotEquals|Null|NumericLessThan)(IgnoreCase)?(IfExists)?", key in "kms:RecipientAttestation:(PCR[0-9]{1,3}|ImageSha384|X)", value in "[0-9a-fA-F*?]{0,100}") {
        let text = format!(r#"{{"Statement":{{"Effect":"{effect}","Principal":"*","Action":"{action}","Condition":{{"{op}":{{"{key}":["{value}"]}}}}}}}}"#);
        if let Ok(p) = cc_proto::policy::Policy::parse(&text) {
            let mut m = cc_proto::policy::Measurements::default();
            m.pcrs.insert(0, "ab".repeat(48));
            let _ = cc_proto::policy::analyse(&p, "arn:aws:iam::1:role/x", &m);
        }
    }

    #[test]
    fn nitro_cli_output_any_text(text in "\\PC{0,300}") {
        let _ = cc_proto::nitro_cli::CliError::parse(&text);
        let _ = cc_proto::nitro_cli::parse_describe_enclaves(&text);
        let _ = text.parse::<cc_proto::Address>();
    }
}
