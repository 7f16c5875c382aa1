//! Egress: is a forwarder listening, and does its upstream accept a TCP connection and
//! complete a TLS handshake from here within the deadline?
//!
//! The TLS probe only proves the endpoint speaks TLS: it accepts any certificate, because
//! validating KMS's certificate is the enclave's job (its TLS runs end to end through the
//! forwarder) and the parent must not need a trust store for that.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cc_proto::Address;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

/// Connect to a forwarder's listener. `None` when it cannot be probed from this build (a vsock
/// listener without the `vsock` feature); else `Ok` or why not.
pub async fn forwarder(listen: &Address, timeout: Duration) -> Option<Result<(), String>> {
    if matches!(listen, Address::Vsock { .. }) && !cfg!(feature = "vsock") {
        return None;
    }
    Some(
        tokio::time::timeout(timeout, cc_proto::connect(listen))
            .await
            .map_err(|_| "timed out".to_owned())
            .and_then(|r| r.map(drop).map_err(|e| e.to_string())),
    )
}

/// One egress endpoint as the dashboard shows it.
#[derive(Debug, Clone)]
pub struct EgressProbe {
    pub name: String,
    pub target: String,
    /// The forwarder accepted a connection (false too when this build cannot probe it: vsock).
    pub forwarder_up: bool,
    /// Upstream TCP + TLS round trip in milliseconds, or why it failed.
    pub upstream: Result<f64, String>,
}

/// Every endpoint of the parent proxy's `run` configuration at `path`: forwarder and upstream.
pub async fn endpoints(path: &std::path::Path, timeout: Duration) -> Vec<EgressProbe> {
    let cfg = match containment_chamber_enclave_proxy::config::RunConfig::load(path) {
        Ok(c) => c,
        Err(e) => {
            return vec![EgressProbe {
                name: "config".into(),
                target: path.display().to_string(),
                forwarder_up: false,
                upstream: Err(e.to_string()),
            }];
        }
    };
    let mut out = Vec::new();
    for (i, e) in cfg.egress.iter().enumerate() {
        let listen = cfg.egress_listen(i);
        let forwarder_up = matches!(forwarder(&listen, timeout).await, Some(Ok(())));
        let upstream = match e.target.tcp_host_port() {
            Some((host, port)) => {
                let t = Instant::now();
                upstream(host, port, timeout)
                    .await
                    .map(|_| t.elapsed().as_secs_f64() * 1000.0)
                    .map_err(|(_, why)| why)
            }
            None => Err(format!("{} is not a TCP upstream", e.target)),
        };
        out.push(EgressProbe {
            name: e.name.clone(),
            target: e.target.to_string(),
            forwarder_up,
            upstream,
        });
    }
    out
}

#[derive(Debug)]
struct AnyCert(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// TCP connect, then a TLS handshake with SNI `host`. `Err((code, why))`.
pub async fn upstream(
    host: &str,
    port: u16,
    timeout: std::time::Duration,
) -> Result<(), (&'static str, String)> {
    let tcp = tokio::time::timeout(timeout, tokio::net::TcpStream::connect((host, port)))
        .await
        .map_err(|_| {
            (
                "egress.upstream-unreachable",
                format!("no TCP connection to {host}:{port} within {timeout:?}"),
            )
        })?
        .map_err(|e| {
            (
                "egress.upstream-unreachable",
                format!("TCP connect to {host}:{port}: {e}"),
            )
        })?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| ("egress.tls-failed", e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCert(provider)))
        .with_no_client_auth();
    let name = ServerName::try_from(host.to_owned()).map_err(|e| {
        (
            "egress.tls-failed",
            format!("'{host}' is not a valid server name: {e}"),
        )
    })?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    tokio::time::timeout(timeout, connector.connect(name, tcp))
        .await
        .map_err(|_| {
            (
                "egress.tls-failed",
                format!("{host}:{port} accepted TCP but no TLS handshake within {timeout:?}"),
            )
        })?
        .map_err(|e| {
            (
                "egress.tls-failed",
                format!("TLS handshake with {host}:{port} failed: {e}"),
            )
        })?;
    Ok(())
}
