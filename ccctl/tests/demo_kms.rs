//! The demo's local KMS through the real aws-sdk-kms client: who may do what, attested
//! Decrypt judged by the key policy, Recipient answers that the enclave's CMS reader opens.

use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{KeyEncryptionMechanism, RecipientInfo};
use cc_sandbox::chamber as demo;
use cc_sandbox::kms;
use containment_chamber_enclave::nsm::Nsm;
use containment_chamber_enclave::nsm::software::SoftwareNsm;
use rsa::pkcs8::EncodePublicKey;

struct Setup {
    _dir: tempfile::TempDir,
    kms: kms::LocalKms,
    nsm: SoftwareNsm,
    endpoint: String,
    rt: tokio::runtime::Runtime,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let (pcr0, old, pcr8) = demo::measurements();
    let keys = (0..3)
        .map(|i| kms::KeySpec {
            holder: format!("h{i}"),
            arn: demo::key_arn(i),
            policy: demo::policy("111111111111", &[if i == 2 { &old } else { &pcr0 }], &pcr8),
        })
        .collect();
    let mut sw = containment_chamber_enclave::config::Software {
        root_dir: Some(dir.path().join("root")),
        ..Default::default()
    };
    sw.pcrs.insert("0".into(), pcr0.clone());
    sw.pcrs.insert("8".into(), pcr8.clone());
    let nsm = SoftwareNsm::new(&sw).unwrap();
    let verifier: kms::Verifier = std::sync::Arc::new(|doc: &[u8], root: &str| {
        ccctl::attest::verify_now(doc, root)
            .map(|(pcrs, public_key)| kms::Attested { pcrs, public_key })
    });
    let local = kms::LocalKms::new(
        keys,
        demo::SIGNER_ROLE,
        dir.path().join("root/root.pem"),
        verifier,
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    {
        let _g = rt.enter();
        local.serve(listener);
    }
    Setup {
        _dir: dir,
        kms: local,
        nsm,
        endpoint,
        rt,
    }
}

fn client(s: &Setup, key_id: &str) -> aws_sdk_kms::Client {
    let conf = aws_sdk_kms::config::Builder::new()
        .behavior_version(aws_sdk_kms::config::BehaviorVersion::latest())
        .region(aws_sdk_kms::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_kms::config::Credentials::new(
            key_id, "x", None, None, "test",
        ))
        .endpoint_url(&s.endpoint)
        .build();
    aws_sdk_kms::Client::from_conf(conf)
}

fn code<E: aws_sdk_kms::error::ProvideErrorMetadata>(e: &E) -> String {
    e.code().unwrap_or_default().to_owned()
}

fn encrypt(s: &Setup, i: usize) -> Vec<u8> {
    let op = client(s, kms::OPERATOR_KEY_ID);
    s.rt.block_on(
        op.encrypt()
            .key_id(demo::key_arn(i))
            .plaintext(Blob::new(b"share".to_vec()))
            .encryption_context("holder", format!("h{i}"))
            .send(),
    )
    .unwrap()
    .ciphertext_blob
    .unwrap()
    .into_inner()
}

#[test]
fn attested_decrypt_is_released_only_to_the_pcr0_the_policy_lists() {
    let s = setup();
    let signer = client(&s, kms::SIGNER_KEY_ID);
    let key = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).unwrap();
    let spki = key.to_public_key().to_public_key_der().unwrap();
    let doc = s.nsm.attest(None, None, Some(spki.as_bytes())).unwrap();
    let ask = |i: usize, doc: &[u8]| {
        s.rt.block_on(
            signer
                .decrypt()
                .key_id(demo::key_arn(i))
                .ciphertext_blob(Blob::new(encrypt(&s, i)))
                .encryption_context("holder", format!("h{i}"))
                .recipient(
                    RecipientInfo::builder()
                        .key_encryption_algorithm(KeyEncryptionMechanism::RsaesOaepSha256)
                        .attestation_document(Blob::new(doc.to_vec()))
                        .build(),
                )
                .send(),
        )
        .map_err(|e| Box::new(e.into_service_error()))
    };
    // Holder 0 lists the running PCR0: the share comes back as CMS to our key, never in clear.
    let out = ask(0, &doc).unwrap();
    assert!(out.plaintext.is_none());
    let cms = out.ciphertext_for_recipient.unwrap().into_inner();
    let share = containment_chamber_enclave::cms::decrypt(&cms, &key).unwrap();
    assert_eq!(share.as_slice(), b"share");
    // Holder 2 lists only the previous PCR0.
    let e = *ask(2, &doc).unwrap_err();
    assert_eq!(code(&e), "AccessDeniedException");
    let message = aws_sdk_kms::error::ProvideErrorMetadata::message(&e).unwrap_or_default();
    assert!(
        message.contains("no resource-based policy allows the kms:Decrypt action"),
        "{message}"
    );
    // A document whose signature does not verify is refused before the policy is read.
    let mut forged = doc.clone();
    let n = forged.len();
    forged[n - 5] ^= 1;
    let e = *ask(0, &forged).unwrap_err();
    assert_eq!(code(&e), "ValidationException", "{e}");
    assert!(
        s.kms.journal().iter().any(|l| l.contains("released")),
        "{:?}",
        s.kms.journal()
    );
}

#[test]
fn unattested_decrypt_and_signer_administration_are_denied() {
    let s = setup();
    let signer = client(&s, kms::SIGNER_KEY_ID);
    let blob = encrypt(&s, 0);
    let e =
        s.rt.block_on(
            signer
                .decrypt()
                .ciphertext_blob(Blob::new(blob.clone()))
                .encryption_context("holder", "h0")
                .send(),
        )
        .unwrap_err()
        .into_service_error();
    assert_eq!(code(&e), "AccessDeniedException");
    let e =
        s.rt.block_on(
            signer
                .get_key_policy()
                .key_id(demo::key_arn(0))
                .policy_name("default")
                .send(),
        )
        .unwrap_err()
        .into_service_error();
    assert_eq!(code(&e), "AccessDeniedException");
    // An access key the KMS does not know.
    let stranger = client(&s, "AKIAUNKNOWN");
    let e =
        s.rt.block_on(stranger.describe_key().key_id(demo::key_arn(0)).send())
            .unwrap_err()
            .into_service_error();
    assert_eq!(code(&e), "UnrecognizedClientException");
}

#[test]
fn key_policies_are_read_replaced_and_validated() {
    let s = setup();
    let op = client(&s, kms::OPERATOR_KEY_ID);
    let arn = demo::key_arn(1);
    let got =
        s.rt.block_on(
            op.get_key_policy()
                .key_id(&arn)
                .policy_name("default")
                .send(),
        )
        .unwrap()
        .policy
        .unwrap();
    assert_eq!(Some(got.clone()), s.kms.policy(&arn));
    let e =
        s.rt.block_on(
            op.put_key_policy()
                .key_id(&arn)
                .policy_name("default")
                .policy("{not json")
                .send(),
        )
        .unwrap_err()
        .into_service_error();
    assert_eq!(code(&e), "MalformedPolicyDocumentException");
    let (_, _, pcr8) = demo::measurements();
    let new = demo::policy("222222222222", &["ab".repeat(48).as_str()], &pcr8);
    s.rt.block_on(
        op.put_key_policy()
            .key_id(&arn)
            .policy_name("default")
            .policy(&new)
            .send(),
    )
    .unwrap();
    assert_eq!(s.kms.policy(&arn).as_deref(), Some(new.as_str()));
    let meta =
        s.rt.block_on(op.describe_key().key_id(&arn).send())
            .unwrap()
            .key_metadata
            .unwrap();
    assert_eq!(meta.arn.as_deref(), Some(arn.as_str()));
    let e =
        s.rt.block_on(op.describe_key().key_id("arn:aws:kms:x:1:key/nope").send())
            .unwrap_err()
            .into_service_error();
    assert_eq!(code(&e), "NotFoundException");
}
