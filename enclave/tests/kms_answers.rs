//! The real aws-sdk-kms client against a loopback HTTP server that answers exactly as KMS
//! does (awsJson1.1), for the answers moto cannot give: AccessDeniedException, and a
//! `CiphertextForRecipient` carrying a CMS envelope.

use std::time::Duration;

use cc_proto::status::HolderOutcome;
use containment_chamber_enclave::config::Holder;
use containment_chamber_enclave::kms::{HolderClient, Mode};
use containment_chamber_enclave::shares::{EncryptedShare, ShareFile};
use rsa::pkcs8::DecodePrivateKey;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Serve one canned answer to every request; returns the endpoint URL.
async fn kms_answering(status: u16, body: String) -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            let body = body.clone();
            tokio::spawn(async move {
                let mut req = Vec::new();
                let mut buf = [0u8; 4096];
                // Read headers and the declared body.
                loop {
                    let n = s.read(&mut buf).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    req.extend_from_slice(&buf[..n]);
                    if let Some(h) = req.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&req[..h]).to_ascii_lowercase();
                        let len: usize = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse().ok())
                            .unwrap_or(0);
                        if req.len() >= h + 4 + len {
                            break;
                        }
                    }
                }
                let resp = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/x-amz-json-1.1\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(resp.as_bytes()).await;
            });
        }
    });
    format!("http://127.0.0.1:{port}")
}

async fn client(endpoint: String) -> HolderClient {
    let holder = Holder {
        name: "bob".into(),
        key_arn: "arn:aws:kms:us-east-1:111122223333:key/b".into(),
        region: "us-east-1".into(),
        endpoint: Some(endpoint),
    };
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_kms::config::Credentials::new(
            "k", "s", None, None, "test",
        ))
        .load()
        .await;
    HolderClient::from_sdk(&holder, Duration::from_secs(10), &sdk)
}

fn share() -> EncryptedShare {
    EncryptedShare {
        holder: "bob".into(),
        key_arn: "arn:aws:kms:us-east-1:111122223333:key/b".into(),
        ciphertext: ShareFile::encode_ciphertext(b"opaque"),
    }
}

#[tokio::test]
async fn access_denied_is_classified_as_denied_with_its_code() {
    let ep = kms_answering(
        400,
        r#"{"__type":"AccessDeniedException","message":"User is not authorized to perform: kms:Decrypt"}"#.into(),
    )
    .await;
    let f = client(ep)
        .await
        .decrypt(&share(), Mode::Plain)
        .await
        .unwrap_err();
    assert_eq!(f.outcome, HolderOutcome::Denied);
    assert_eq!(f.code.as_deref(), Some("AccessDeniedException"));
    assert!(f.message.contains("not authorized"), "{}", f.message);
}

#[tokio::test]
async fn closed_port_is_unreachable() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let f = client(format!("http://127.0.0.1:{port}"))
        .await
        .decrypt(&share(), Mode::Plain)
        .await
        .unwrap_err();
    assert_eq!(f.outcome, HolderOutcome::Unreachable, "{f:?}");
    // One line an operator can read, not the SDK's Debug dump (issue 13 #8).
    assert!(!f.message.contains('\n'), "{}", f.message);
    assert!(!f.message.contains("DispatchFailure {"), "{}", f.message);
    assert!(
        f.message.contains("refused") || f.message.contains("connect"),
        "{}",
        f.message
    );
    assert!(f.message.chars().count() <= 300, "{}", f.message);
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../shared/fixtures/cms")
            .join(name),
    )
    .unwrap()
}

#[tokio::test]
async fn ciphertext_for_recipient_is_decrypted_with_the_recipient_key() {
    use base64::Engine as _;
    let ct = base64::engine::general_purpose::STANDARD.encode(fixture("ct.ber"));
    let ep = kms_answering(
        200,
        format!(r#"{{"KeyId":"arn:aws:kms:us-east-1:111122223333:key/b","CiphertextForRecipient":"{ct}","EncryptionAlgorithm":"SYMMETRIC_DEFAULT"}}"#),
    )
    .await;
    let key =
        rsa::RsaPrivateKey::from_pkcs8_pem(&String::from_utf8(fixture("k.pem")).unwrap()).unwrap();
    let f = client(ep)
        .await
        .decrypt(
            &share(),
            Mode::Recipient {
                attestation: b"doc",
                key: &key,
            },
        )
        .await
        .unwrap_err();
    // The fixture's plaintext is 14 bytes ("shamir-share-1"), not a 33-byte share: getting
    // that far proves the envelope was decrypted with the recipient key.
    assert!(
        f.message
            .contains("decrypted share is invalid: share has 14 bytes"),
        "{f:?}"
    );
}

#[tokio::test]
async fn plaintext_in_answer_to_a_recipient_request_is_refused() {
    let ep = kms_answering(
        200,
        r#"{"KeyId":"arn:aws:kms:us-east-1:111122223333:key/b","Plaintext":"AQIDBA=="}"#.into(),
    )
    .await;
    let key =
        rsa::RsaPrivateKey::from_pkcs8_pem(&String::from_utf8(fixture("k.pem")).unwrap()).unwrap();
    let f = client(ep)
        .await
        .decrypt(
            &share(),
            Mode::Recipient {
                attestation: b"doc",
                key: &key,
            },
        )
        .await
        .unwrap_err();
    assert_eq!(f.outcome, HolderOutcome::Error);
    assert!(
        f.message
            .contains("Plaintext instead of CiphertextForRecipient"),
        "{f:?}"
    );
}
