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
