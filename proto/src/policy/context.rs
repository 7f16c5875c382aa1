//! The request KMS judges: who calls, on which key, with which attestation and encryption
//! context — and, for every condition key, whether ccctl knows its value.
//!
//! A key ccctl cannot know (`aws:SourceIp`, `aws:SourceVpce`, `aws:PrincipalTag/…`, a field of
//! the context left `None`, anything not listed in [`RequestContext::lookup`]) is never
//! guessed: it resolves to [`KeyValue::Unknown`] and the evaluator judges the policy both ways.

use std::collections::BTreeMap;

use super::document::{AttKey, attestation_key};

/// The measurements a request would carry (lowercase hex), by PCR index. A PCR not in the map
/// is absent from the request (PCR8 of an unsigned image).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Measurements {
    pub pcrs: BTreeMap<u8, String>,
}

impl Measurements {
    pub fn get(&self, key: AttKey) -> Option<&String> {
        key.pcr().and_then(|n| self.pcrs.get(&n))
    }
}

/// The parts of an ARN: `arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE` (the resource may
/// contain `:`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arn<'a> {
    pub partition: &'a str,
    pub service: &'a str,
    pub region: &'a str,
    pub account: &'a str,
    pub resource: &'a str,
}

impl<'a> Arn<'a> {
    pub fn parse(s: &'a str) -> Option<Arn<'a>> {
        let mut it = s.splitn(6, ':');
        if it.next()? != "arn" {
            return None;
        }
        Some(Arn {
            partition: it.next()?,
            service: it.next()?,
            region: it.next()?,
            account: it.next()?,
            resource: it.next()?,
        })
    }
}

/// Who a principal ARN designates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// `arn:P:iam::A:role/PATH/NAME`.
    Role {
        partition: String,
        account: String,
        name: String,
    },
    /// `arn:P:sts::A:assumed-role/NAME/SESSION`: a session of role NAME (the path is dropped).
    Session {
        partition: String,
        account: String,
        role: String,
        session: String,
    },
    /// `arn:P:iam::A:root`, or a bare 12-digit account id (partition unknown: `None`).
    Account {
        partition: Option<String>,
        account: String,
    },
    /// Any other ARN (a user, a federated user, ...): compared as a whole.
    Other { account: Option<String> },
}

impl Identity {
    pub fn parse(s: &str) -> Identity {
        if s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit()) {
            return Identity::Account {
                partition: None,
                account: s.to_owned(),
            };
        }
        let Some(a) = Arn::parse(s) else {
            return Identity::Other { account: None };
        };
        let account = a.account.to_owned();
        let partition = a.partition.to_owned();
        match a.service {
            "iam" if a.resource == "root" => Identity::Account {
                partition: Some(partition),
                account,
            },
            "iam" if a.resource.starts_with("role/") => Identity::Role {
                partition,
                account,
                name: a.resource.rsplit('/').next().unwrap_or_default().to_owned(),
            },
            "sts" if a.resource.starts_with("assumed-role/") => {
                let mut parts = a.resource["assumed-role/".len()..].splitn(2, '/');
                let role = parts.next().unwrap_or_default().to_owned();
                let session = parts.next().unwrap_or_default().to_owned();
                Identity::Session {
                    partition,
                    account,
                    role,
                    session,
                }
            }
            _ => Identity::Other {
                account: Some(account).filter(|a| !a.is_empty()),
            },
        }
    }

    pub fn account(&self) -> Option<&str> {
        match self {
            Identity::Role { account, .. }
            | Identity::Session { account, .. }
            | Identity::Account { account, .. } => Some(account),
            Identity::Other { account } => account.as_deref(),
        }
    }

    pub fn partition(&self) -> Option<&str> {
        match self {
            Identity::Role { partition, .. } | Identity::Session { partition, .. } => {
                Some(partition)
            }
            Identity::Account { partition, .. } => partition.as_deref(),
            Identity::Other { .. } => None,
        }
    }
}

/// What a condition key resolves to in a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyValue {
    /// The key is not in the request context.
    Absent,
    /// A single-valued key.
    One(String),
    /// A multivalued key (`kms:EncryptionContextKeys`), never empty.
    Many(Vec<String>),
    /// ccctl cannot know: judged both ways.
    Unknown,
}

/// The full request a key policy is judged against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestContext {
    /// The caller: the role ARN (what `aws:PrincipalArn` returns for its sessions), or a
    /// session ARN `arn:P:sts::A:assumed-role/NAME/SESSION`.
    pub principal_arn: String,
    /// `aws:PrincipalAccount` (by default the principal ARN's account).
    pub principal_account: Option<String>,
    /// `kms:CallerAccount` (by default the principal ARN's account).
    pub caller_account: Option<String>,
    /// The key's ARN; `None`: unknown (a `Resource` naming a key, and whether the key is in
    /// another account, then depend on it).
    pub key_arn: Option<String>,
    /// `aws:RequestedRegion` (by default the key ARN's region).
    pub key_region: Option<String>,
    /// `kms:Decrypt`.
    pub action: String,
    /// The request's encryption context; `None`: unknown.
    pub encryption_context: Option<BTreeMap<String, String>>,
    /// The attestation's measurements (meaningful when `recipient`).
    pub measurements: Measurements,
    /// `aws:SecureTransport`. KMS endpoints accept only TLS, so [`RequestContext::decrypt`]
    /// sets `Some(true)`.
    pub secure_transport: Option<bool>,
    /// `aws:CurrentTime` / `aws:EpochTime`, seconds since the Unix epoch; `None`: unknown.
    pub current_time: Option<i64>,
    /// The call carries a `Recipient` (an attestation document): the
    /// `kms:RecipientAttestation:*` keys exist only then.
    pub recipient: bool,
}

/// Pseudo-key in a verdict's `depends_on`: the key's ARN was not given.
pub const KEY_ARN_UNKNOWN: &str = "(key ARN)";
/// Pseudo-key in a verdict's `depends_on`: a policy names one session of the role, and the
/// caller's session name was not given.
pub const SESSION_UNKNOWN: &str = "(role session name)";

impl RequestContext {
    /// An unattested `kms:Decrypt` by `principal_arn`; accounts from the ARN, key, encryption
    /// context and time unknown, TLS.
    pub fn decrypt(principal_arn: &str) -> RequestContext {
        let account = Identity::parse(principal_arn).account().map(str::to_owned);
        RequestContext {
            principal_arn: principal_arn.to_owned(),
            principal_account: account.clone(),
            caller_account: account,
            key_arn: None,
            key_region: None,
            action: "kms:Decrypt".to_owned(),
            encryption_context: None,
            measurements: Measurements::default(),
            secure_transport: Some(true),
            current_time: None,
            recipient: false,
        }
    }

    /// With a Recipient attesting `m`.
    pub fn attested(mut self, m: Measurements) -> Self {
        self.measurements = m;
        self.recipient = true;
        self
    }

    /// Without a Recipient (the measurements are kept but not in the request).
    pub fn unattested(mut self) -> Self {
        self.recipient = false;
        self
    }

    /// On this key (also sets the region from the ARN).
    pub fn key(mut self, key_arn: &str) -> Self {
        self.key_region = Arn::parse(key_arn).map(|a| a.region.to_owned());
        self.key_arn = Some(key_arn.to_owned());
        self
    }

    pub fn action(mut self, action: &str) -> Self {
        self.action = action.to_owned();
        self
    }

    pub fn encryption_context(mut self, ec: BTreeMap<String, String>) -> Self {
        self.encryption_context = Some(ec);
        self
    }

    pub fn secure_transport(mut self, v: Option<bool>) -> Self {
        self.secure_transport = v;
        self
    }

    pub fn current_time(mut self, unix_seconds: i64) -> Self {
        self.current_time = Some(unix_seconds);
        self
    }

    pub fn identity(&self) -> Identity {
        Identity::parse(&self.principal_arn)
    }

    /// The key's account, if its ARN is known.
    pub fn key_account(&self) -> Option<&str> {
        self.key_arn
            .as_deref()
            .and_then(Arn::parse)
            .map(|a| a.account)
            .filter(|a| !a.is_empty())
    }

    /// Is the key in another account than the principal? `None`: unknown.
    pub fn cross_account(&self) -> Option<bool> {
        Some(self.key_account()? != self.principal_account.as_deref()?)
    }

    /// What `key` (case-insensitive) resolves to in this request. Known keys: the attestation
    /// keys, `aws:PrincipalArn` (not for a session ARN: its role's path is unknown),
    /// `aws:PrincipalAccount`, `kms:CallerAccount`, `aws:ResourceAccount`,
    /// `aws:RequestedRegion`, `aws:SecureTransport`, `aws:CurrentTime`, `aws:EpochTime`,
    /// `kms:EncryptionContext:NAME`, `kms:EncryptionContextKeys`. Everything else is unknown.
    pub fn lookup(&self, key: &str) -> KeyValue {
        let k = key.to_ascii_lowercase();
        let known = |v: Option<String>| v.map_or(KeyValue::Unknown, KeyValue::One);
        if let Some(att) = attestation_key(&k) {
            return match (self.recipient, self.measurements.get(att)) {
                (true, Some(v)) => KeyValue::One(v.clone()),
                _ => KeyValue::Absent,
            };
        }
        if let Some(name) = k.strip_prefix("kms:encryptioncontext:") {
            let Some(ec) = &self.encryption_context else {
                return KeyValue::Unknown;
            };
            let mut hits = ec.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name));
            return match (hits.next(), hits.next()) {
                (None, _) => KeyValue::Absent,
                (Some((_, v)), None) => KeyValue::One(v.clone()),
                // Two pairs differing only by case: which one KMS compares is not documented.
                (Some(_), Some(_)) => KeyValue::Unknown,
            };
        }
        match k.as_str() {
            "aws:principalarn" => match self.identity() {
                Identity::Session { .. } => KeyValue::Unknown,
                _ => KeyValue::One(self.principal_arn.clone()),
            },
            "aws:principalaccount" => known(self.principal_account.clone()),
            "kms:calleraccount" => known(self.caller_account.clone()),
            "aws:resourceaccount" => known(self.key_account().map(str::to_owned)),
            "aws:requestedregion" => known(self.key_region.clone()),
            "aws:securetransport" => known(self.secure_transport.map(|b| b.to_string())),
            "aws:currenttime" => known(self.current_time.map(iso8601)),
            "aws:epochtime" => known(self.current_time.map(|t| t.to_string())),
            "kms:encryptioncontextkeys" => match &self.encryption_context {
                None => KeyValue::Unknown,
                Some(ec) if ec.is_empty() => KeyValue::Absent,
                Some(ec) => KeyValue::Many(ec.keys().cloned().collect()),
            },
            _ => KeyValue::Unknown,
        }
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
pub(crate) fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `YYYY-MM-DDTHH:MM:SSZ` for seconds since the epoch (how `aws:CurrentTime` reads).
pub fn iso8601(t: i64) -> String {
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    // civil_from_days
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_across_partitions_and_paths() {
        assert_eq!(
            Identity::parse("arn:aws-cn:iam::111122223333:role/svc/team/signer"),
            Identity::Role {
                partition: "aws-cn".into(),
                account: "111122223333".into(),
                name: "signer".into()
            }
        );
        assert_eq!(
            Identity::parse("arn:aws-us-gov:sts::111122223333:assumed-role/signer/i-0abc"),
            Identity::Session {
                partition: "aws-us-gov".into(),
                account: "111122223333".into(),
                role: "signer".into(),
                session: "i-0abc".into()
            }
        );
        assert_eq!(
            Identity::parse("111122223333").account(),
            Some("111122223333")
        );
        assert_eq!(
            Identity::parse("arn:aws:iam::1:root").partition(),
            Some("aws")
        );
    }

    #[test]
    fn iso8601_round_numbers() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso8601(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(iso8601(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
    }

    #[test]
    fn lookups() {
        let ctx = RequestContext::decrypt("arn:aws:iam::111122223333:role/svc/signer")
            .key("arn:aws:kms:eu-west-1:444455556666:key/k")
            .encryption_context(BTreeMap::from([("Purpose".into(), "share".into())]));
        assert_eq!(
            ctx.lookup("AWS:PrincipalArn"),
            KeyValue::One("arn:aws:iam::111122223333:role/svc/signer".into())
        );
        assert_eq!(
            ctx.lookup("kms:EncryptionContext:purpose"),
            KeyValue::One("share".into())
        );
        assert_eq!(ctx.lookup("kms:EncryptionContext:holder"), KeyValue::Absent);
        assert_eq!(
            ctx.lookup("kms:EncryptionContextKeys"),
            KeyValue::Many(vec!["Purpose".into()])
        );
        assert_eq!(ctx.lookup("aws:SourceIp"), KeyValue::Unknown);
        assert_eq!(ctx.lookup("aws:CurrentTime"), KeyValue::Unknown);
        assert_eq!(
            ctx.lookup("kms:RecipientAttestation:PCR0"),
            KeyValue::Absent
        );
        assert_eq!(
            ctx.lookup("aws:RequestedRegion"),
            KeyValue::One("eu-west-1".into())
        );
        assert_eq!(ctx.cross_account(), Some(true));
        let s = RequestContext::decrypt("arn:aws:sts::111122223333:assumed-role/signer/x");
        assert_eq!(s.lookup("aws:PrincipalArn"), KeyValue::Unknown);
        assert_eq!(s.cross_account(), None);
    }
}
