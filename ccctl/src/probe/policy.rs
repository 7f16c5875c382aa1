//! Key policies: each holder's policy text and key state, read live from KMS (`GetKeyPolicy`
//! with `PolicyName=default`, `DescribeKey`, honouring AWS profiles, regions and
//! `AWS_ENDPOINT_URL_KMS`) or from a file (offline).

use std::path::PathBuf;
use std::time::Duration;

use crate::config::Holder;

/// Where a holder's policy comes from.
#[derive(Debug, Clone)]
pub enum Source {
    File(PathBuf),
    Live(Holder),
}

/// Read one holder's policy text and key state.
pub async fn fetch(source: &Source, timeout: Duration) -> Result<(String, Option<String>), String> {
    match source {
        Source::File(p) => std::fs::read_to_string(p)
            .map(|t| (t, None))
            .map_err(|e| format!("cannot read '{}': {e}", p.display())),
        Source::Live(h) => {
            let client = kms_client(h, timeout).await;
            let (policy, key) = tokio::join!(
                client
                    .get_key_policy()
                    .key_id(&h.key_arn)
                    .policy_name("default")
                    .send(),
                client.describe_key().key_id(&h.key_arn).send()
            );
            let err = |e: String| format!("holder '{}' ({}): {e}", h.name, h.key_arn);
            let policy = policy.map_err(|e| {
                err(format!(
                    "GetKeyPolicy failed: {}",
                    aws_sdk_kms::error::DisplayErrorContext(&e)
                ))
            })?;
            let text = policy
                .policy
                .ok_or_else(|| err("GetKeyPolicy returned no policy".into()))?;
            let state = key
                .ok()
                .and_then(|k| k.key_metadata)
                .and_then(|m| m.key_state)
                .map(|s| s.as_str().to_owned());
            Ok((text, state))
        }
    }
}

/// The AWS SDK configuration for `region` with `profile`, one deadline per operation.
pub(crate) async fn aws_sdk_config(
    profile: Option<&str>,
    region: &str,
    timeout: Duration,
) -> aws_config::SdkConfig {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(region.to_owned()))
        .timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .operation_timeout(timeout)
                .build(),
        );
    if let Some(p) = profile {
        loader = loader.profile_name(p);
    }
    loader.load().await
}

/// A KMS client for a holder's key: its region, profile and endpoint override.
pub(crate) async fn kms_client(h: &Holder, timeout: Duration) -> aws_sdk_kms::Client {
    let sdk = aws_sdk_config(h.profile.as_deref(), &h.region, timeout).await;
    let mut b = aws_sdk_kms::config::Builder::from(&sdk);
    if let Some(ep) = &h.endpoint {
        b = b.endpoint_url(ep);
    }
    aws_sdk_kms::Client::from_conf(b.build())
}

/// Where each holder of a config's policy is read: its `policy_file`, else live from KMS.
pub fn sources(cfg: &crate::config::Config) -> Vec<(String, Source)> {
    cfg.holders
        .iter()
        .map(|h| {
            let source = match &h.policy_file {
                Some(p) => Source::File(p.clone()),
                None => Source::Live(h.clone()),
            };
            (h.name.clone(), source)
        })
        .collect()
}

/// One holder's current policy text, read live from KMS.
pub async fn fetch_text(h: &Holder, timeout: Duration) -> Result<String, String> {
    fetch(&Source::Live(h.clone()), timeout)
        .await
        .map(|(t, _)| t)
}

/// One holder's policy text and key state, as one probe.
pub async fn probe(source: &Source, timeout: Duration) -> super::Probe<(String, Option<String>)> {
    super::Probe::take(fetch(source, timeout)).await
}
