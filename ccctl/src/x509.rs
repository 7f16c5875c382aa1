//! Certificate facts for display (subjects, validity, algorithms), from x509-parser.

use x509_parser::prelude::*;

#[derive(Debug, Clone, serde::Serialize)]
pub struct CertFacts {
    pub subject: String,
    pub issuer: String,
    /// Attributes of the issuer by short name (`commonName`, ...), as nitro-cli prints them.
    pub issuer_attributes: serde_json::Map<String, serde_json::Value>,
    pub not_before: i64,
    pub not_after: i64,
    pub signature_algorithm: String,
    pub signature: Vec<u8>,
    /// SubjectPublicKeyInfo's key bits (an uncompressed EC point for P-384).
    pub public_key: Vec<u8>,
}

fn attr_name(oid: &x509_parser::der_parser::oid::Oid<'_>) -> String {
    match oid.to_id_string().as_str() {
        "2.5.4.3" => "commonName".into(),
        "2.5.4.6" => "countryName".into(),
        "2.5.4.7" => "localityName".into(),
        "2.5.4.8" => "stateOrProvinceName".into(),
        "2.5.4.10" => "organizationName".into(),
        "2.5.4.11" => "organizationalUnitName".into(),
        other => other.to_owned(),
    }
}

fn algorithm_name(oid: &str) -> String {
    match oid {
        "1.2.840.10045.4.3.3" => "ecdsa-with-SHA384".into(),
        "1.2.840.10045.4.3.2" => "ecdsa-with-SHA256".into(),
        "1.2.840.113549.1.1.11" => "sha256WithRSAEncryption".into(),
        "1.2.840.113549.1.1.12" => "sha384WithRSAEncryption".into(),
        other => other.to_owned(),
    }
}

pub fn facts(der: &[u8]) -> Result<CertFacts, String> {
    let (_, cert) =
        X509Certificate::from_der(der).map_err(|e| format!("certificate does not parse: {e}"))?;
    let mut issuer_attributes = serde_json::Map::new();
    for attr in cert.issuer().iter_attributes() {
        if let Ok(v) = attr.as_str() {
            issuer_attributes.insert(attr_name(attr.attr_type()), v.into());
        }
    }
    Ok(CertFacts {
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        issuer_attributes,
        not_before: cert.validity().not_before.timestamp(),
        not_after: cert.validity().not_after.timestamp(),
        signature_algorithm: algorithm_name(&cert.signature_algorithm.algorithm.to_id_string()),
        signature: cert.signature_value.data.to_vec(),
        public_key: cert.public_key().subject_public_key.data.to_vec(),
    })
}

/// `Jan  1 00:00:00 2026 GMT`, OpenSSL's (and so nitro-cli's) date format.
pub fn openssl_date(unix: i64) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    match ::time::OffsetDateTime::from_unix_timestamp(unix) {
        Ok(t) => format!(
            "{} {:>2} {:02}:{:02}:{:02} {} GMT",
            MONTHS[t.month() as usize - 1],
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            t.year()
        ),
        Err(_) => unix.to_string(),
    }
}

pub fn rfc3339(unix: i64) -> String {
    ::time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&::time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| unix.to_string())
}

/// `30:65:02:31:00`: colon-separated hex, as OpenSSL prints signatures.
pub fn colon_hex(b: &[u8]) -> String {
    b.iter()
        .map(|x| format!("{x:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}
