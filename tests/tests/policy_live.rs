//! `ccctl policy check` live: three key holders in three AWS accounts on a real moto server,
//! each read through its own AWS profile (GetKeyPolicy with PolicyName=default, DescribeKey),
//! one through AWS_ENDPOINT_URL_KMS instead of an explicit endpoint.

use std::io::{Read, Write};
use std::process::Command;

use cc_tests::{Moto, bin};

const ROLE: &str = "arn:aws:iam::222222222222:role/signer";
const OLD: &str = "5e1f00000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000";
const NEW: &str = "9b2c11111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111";
const P8: &str = "7d2222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222222";

struct Creds {
    key: String,
    secret: String,
    token: String,
}

fn between(text: &str, tag: &str) -> String {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let start = text
        .find(&open)
        .unwrap_or_else(|| panic!("no {tag} in {text}"))
        + open.len();
    let end = text[start..].find(&close).unwrap() + start;
    text[start..end].to_owned()
}

/// sts:AssumeRole into a role of `account` (moto issues keys that belong to that account).
fn assume(moto: &Moto, account: &str) -> Creds {
    let body = format!(
        "Action=AssumeRole&Version=2011-06-15&RoleArn=arn%3Aaws%3Aiam%3A%3A{account}%3Arole%2Fholder&RoleSessionName=test"
    );
    let req = format!(
        "POST / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/x-www-form-urlencoded\r\nAuthorization: AWS4-HMAC-SHA256 Credential=testing/20261125/us-east-1/sts/aws4_request, SignedHeaders=host, Signature=0\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len(),
        port = moto.port
    );
    let mut s = std::net::TcpStream::connect(("127.0.0.1", moto.port)).unwrap();
    s.write_all(req.as_bytes()).unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    Creds {
        key: between(&resp, "AccessKeyId"),
        secret: between(&resp, "SecretAccessKey"),
        token: between(&resp, "SessionToken"),
    }
}

fn decrypt_policy(pcr0s: &[&str]) -> String {
    let list = pcr0s
        .iter()
        .map(|p| format!("\"{p}\""))
        .collect::<Vec<_>>()
        .join(",");
    format!(
        r#"{{"Version":"2012-10-17","Statement":[
  {{"Sid":"Admin","Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::222222222222:root"}},"Action":["kms:Describe*","kms:Get*","kms:Put*"],"Resource":"*"}},
  {{"Sid":"AttestedDecrypt","Effect":"Allow","Principal":{{"AWS":"{ROLE}"}},"Action":"kms:Decrypt","Resource":"*",
    "Condition":{{"StringEqualsIgnoreCase":{{"kms:RecipientAttestation:PCR0":[{list}],"kms:RecipientAttestation:PCR8":"{P8}"}}}}}}]}}"#
    )
}

/// Create a key with `policy` in the account of `creds`; optionally disable it.
fn create_key(moto: &Moto, creds: &Creds, policy: &str, disable: bool) -> String {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .endpoint_url(moto.endpoint())
            .credentials_provider(aws_sdk_kms::config::Credentials::new(
                creds.key.clone(),
                creds.secret.clone(),
                Some(creds.token.clone()),
                None,
                "test",
            ))
            .load()
            .await;
        let c = aws_sdk_kms::Client::new(&sdk);
        let k = c.create_key().send().await.unwrap();
        let meta = k.key_metadata().unwrap();
        let (arn, id) = (meta.arn().unwrap().to_owned(), meta.key_id().to_owned());
        c.put_key_policy()
            .key_id(&id)
            .policy_name("default")
            .policy(policy)
            .send()
            .await
            .unwrap();
        if disable {
            c.disable_key().key_id(&id).send().await.unwrap();
        }
        arn
    })
}

#[test]
fn three_accounts_three_profiles_one_releases() {
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let accounts = ["111111111111", "222222222222", "333333333333"];
    let creds: Vec<Creds> = accounts.iter().map(|a| assume(&moto, a)).collect();
    let arns = [
        create_key(&moto, &creds[0], &decrypt_policy(&[NEW, OLD]), false),
        create_key(&moto, &creds[1], &decrypt_policy(&[OLD]), false),
        create_key(&moto, &creds[2], &decrypt_policy(&[NEW]), true),
    ];
    for (arn, acct) in arns.iter().zip(accounts) {
        assert!(
            arn.contains(&format!(":{acct}:key/")),
            "{arn} not in {acct}"
        );
    }
    let mut credentials = String::new();
    let mut config = String::new();
    for (name, c) in ["holder-a", "holder-b", "holder-c"].iter().zip(&creds) {
        credentials += &format!(
            "[{name}]\naws_access_key_id = {}\naws_secret_access_key = {}\naws_session_token = {}\n",
            c.key, c.secret, c.token
        );
        config += &format!("[profile {name}]\nregion = us-east-1\n");
    }
    std::fs::write(dir.path().join("credentials"), credentials).unwrap();
    std::fs::write(dir.path().join("config"), config).unwrap();
    let ep = moto.endpoint();
    let cfg = dir.path().join("ccctl.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"principal = "{ROLE}"
threshold = 2
[[holder]]
name = "a"
key_arn = "{}"
region = "us-east-1"
profile = "holder-a"
endpoint = "{ep}"
[[holder]]
name = "b"
key_arn = "{}"
region = "us-east-1"
profile = "holder-b"
endpoint = "{ep}"
[[holder]]
name = "c"
key_arn = "{}"
region = "us-east-1"
profile = "holder-c"
"#,
            arns[0], arns[1], arns[2]
        ),
    )
    .unwrap();
    let o = Command::new(bin("ccctl"))
        .args([
            "-o",
            "json",
            "policy",
            "check",
            "--config",
            cfg.to_str().unwrap(),
            "--pcr0",
            NEW,
            "--pcr8",
            P8,
        ])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", dir.path())
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            dir.path().join("credentials"),
        )
        .env("AWS_CONFIG_FILE", dir.path().join("config"))
        .env("AWS_ENDPOINT_URL_KMS", &ep)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|_| {
        panic!(
            "{}\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    });
    assert_eq!(o.status.code(), Some(1), "{v:#}");
    let h = v["holders"].as_array().unwrap();
    assert_eq!(h[0]["decrypt_allowed"], true, "{v:#}");
    assert_eq!(h[0]["source"], format!("kms:{}", arns[0]));
    assert_eq!(h[0]["key_state"], "Enabled");
    assert_eq!(h[1]["decrypt_allowed"], false);
    assert!(
        h[1]["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["code"] == "policy.measurement-not-allowed")
    );
    assert_eq!(
        h[2]["decrypt_allowed"], false,
        "disabled key, read through AWS_ENDPOINT_URL_KMS"
    );
    assert_eq!(h[2]["key_state"], "Disabled");
    assert!(
        h[2]["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["code"] == "policy.key-state")
    );
    assert_eq!(v["holders_releasing"], 1);
    assert_eq!(v["release_possible"], false);
    let global: Vec<&str> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap())
        .collect();
    assert!(
        global.contains(&"policy.threshold-unmet")
            && global.contains(&"policy.holder-disagreement"),
        "{global:?}"
    );
}

/// The IAM side and grants, live on moto: the role's inline policy (kms:Decrypt on holder a's
/// key only), an attached managed policy and a permissions boundary read through IAM; a grant
/// on holder b's key read through ListGrants. Holder a's key is in another account: IAM decides
/// and allows. Holder b's key is in the role's account and names the role: the key policy
/// decides, but a Decrypt grant to the role bypasses attestation. Holder c's key is in a third
/// account and no identity policy allows it: denied, saying why.
#[test]
fn iam_side_and_grants_read_live() {
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let accounts = ["111111111111", "222222222222", "333333333333"];
    let creds: Vec<Creds> = accounts.iter().map(|a| assume(&moto, a)).collect();
    let arns = [
        create_key(&moto, &creds[0], &decrypt_policy(&[NEW]), false),
        create_key(&moto, &creds[1], &decrypt_policy(&[NEW]), false),
        create_key(&moto, &creds[2], &decrypt_policy(&[NEW]), false),
    ];
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let c = &creds[1];
        let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .endpoint_url(moto.endpoint())
            .credentials_provider(aws_sdk_kms::config::Credentials::new(
                c.key.clone(),
                c.secret.clone(),
                Some(c.token.clone()),
                None,
                "test",
            ))
            .load()
            .await;
        let iam = aws_sdk_iam::Client::new(&sdk);
        let boundary = iam
            .create_policy()
            .policy_name("boundary")
            .policy_document(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"kms:*","Resource":"*"}]}"#)
            .send()
            .await
            .unwrap();
        let boundary_arn = boundary.policy().unwrap().arn().unwrap().to_owned();
        iam.create_role()
            .role_name("signer")
            .assume_role_policy_document(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#)
            .permissions_boundary(&boundary_arn)
            .send()
            .await
            .unwrap();
        iam.put_role_policy()
            .role_name("signer")
            .policy_name("decrypt-a")
            .policy_document(format!(
                r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"kms:Decrypt","Resource":"{}"}}]}}"#,
                arns[0]
            ))
            .send()
            .await
            .unwrap();
        let logs = iam
            .create_policy()
            .policy_name("logs")
            .policy_document(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"logs:PutLogEvents","Resource":"*"}]}"#)
            .send()
            .await
            .unwrap();
        iam.attach_role_policy()
            .role_name("signer")
            .policy_arn(logs.policy().unwrap().arn().unwrap())
            .send()
            .await
            .unwrap();
        let kms = aws_sdk_kms::Client::new(&sdk);
        kms.create_grant()
            .key_id(&arns[1])
            .grantee_principal(ROLE)
            .operations(aws_sdk_kms::types::GrantOperation::Decrypt)
            .send()
            .await
            .unwrap();
    });
    let mut credentials = String::new();
    let mut config = String::new();
    for (name, c) in ["holder-a", "holder-b", "holder-c"].iter().zip(&creds) {
        credentials += &format!(
            "[{name}]\naws_access_key_id = {}\naws_secret_access_key = {}\naws_session_token = {}\n",
            c.key, c.secret, c.token
        );
        config += &format!("[profile {name}]\nregion = us-east-1\n");
    }
    std::fs::write(dir.path().join("credentials"), credentials).unwrap();
    std::fs::write(dir.path().join("config"), config).unwrap();
    let ep = moto.endpoint();
    let cfg = dir.path().join("ccctl.toml");
    let holders: String = ["a", "b", "c"]
        .iter()
        .zip(&arns)
        .map(|(n, arn)| {
            format!(
                "[[holder]]\nname = \"{n}\"\nkey_arn = \"{arn}\"\nregion = \"us-east-1\"\nprofile = \"holder-{n}\"\nendpoint = \"{ep}\"\n"
            )
        })
        .collect();
    std::fs::write(
        &cfg,
        format!(
            "principal = \"{ROLE}\"\nthreshold = 2\n[iam]\nlive = true\nprofile = \"holder-b\"\nendpoint = \"{ep}\"\n{holders}"
        ),
    )
    .unwrap();
    let o = Command::new(bin("ccctl"))
        .args(["-o", "json", "policy", "check", "--config"])
        .arg(&cfg)
        .args(["--pcr0", NEW, "--pcr8", P8])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", dir.path())
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            dir.path().join("credentials"),
        )
        .env("AWS_CONFIG_FILE", dir.path().join("config"))
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|_| {
        panic!(
            "{}\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    });
    let h = v["holders"].as_array().unwrap();
    let codes = |i: usize| -> Vec<String> {
        h[i]["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["code"].as_str().unwrap().to_owned())
            .collect()
    };
    // a: cross-account, the role's inline policy allows Decrypt on it.
    assert_eq!(h[0]["decrypt_allowed"], true, "{v:#}");
    assert!(
        !codes(0).iter().any(|c| c.starts_with("policy.identity")),
        "{v:#}"
    );
    // b: allowed, and the grant is reported as a bypass of attestation.
    assert_eq!(h[1]["decrypt_allowed"], true, "{v:#}");
    assert!(
        codes(1).contains(&"policy.grant-bypasses-attestation".to_owned()),
        "{v:#}"
    );
    // c: cross-account and no identity policy allows it: denied, with the reason named.
    assert_eq!(h[2]["decrypt_allowed"], false, "{v:#}");
    assert_eq!(h[2]["verdict"], "denied");
    let why = h[2]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == "policy.identity-lacks-decrypt")
        .unwrap_or_else(|| panic!("{v:#}"));
    assert_eq!(why["severity"], "error");
    assert!(
        why["summary"].as_str().unwrap().contains("holder 'c'"),
        "{why}"
    );
    assert_eq!(v["holders_releasing"], 2);
    assert_eq!(
        o.status.code(),
        Some(1),
        "a grant bypassing attestation is an error"
    );
}
