//! A small HTTP/1.1 client over our transports (`http://host:port`, `tcp://`, `unix://`,
//! `vsock://`), on hyper's http1 client connection over [`crate::connect`] (a general HTTP
//! client cannot reach vsock or unix sockets). Bounded in time (one deadline for the whole
//! exchange) and size (headers by hyper's limits, the body by [`MAX_BODY`]): what is read
//! from the enclave server (`/attestation`, `/status`, `/metrics`) is small, and a
//! misbehaving peer must not hang or exhaust the reader.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};

use crate::Address;

/// Largest body read.
pub const MAX_BODY: usize = 16 << 20;

/// `http://HOST:PORT[/...]` (the path is ignored), or any `tcp://` / `unix://` / `vsock://`
/// address.
pub fn parse_base(url: &str) -> Result<Address, String> {
    if let Some(rest) = url.strip_prefix("http://") {
        let hostport = rest.split('/').next().unwrap_or("");
        let with_port = if hostport
            .rsplit_once(':')
            .is_some_and(|(h, _)| !h.ends_with(']') || hostport.ends_with(']'))
            && hostport.contains(':')
        {
            hostport.to_owned()
        } else {
            format!("{hostport}:80")
        };
        return format!("tcp://{with_port}")
            .parse()
            .map_err(|e| format!("'{url}': {e}"));
    }
    if url.starts_with("https://") {
        return Err(format!(
            "'{url}': https is not supported (the enclave API is plain HTTP over vsock/ingress)"
        ));
    }
    url.parse::<Address>().map_err(|e| e.to_string())
}

#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

/// GET `path` with a deadline for the whole exchange.
pub async fn get(addr: &Address, path: &str, timeout: Duration) -> Result<Response, String> {
    request(addr, "GET", path, None, timeout).await
}

/// `method` `path` with an optional JSON body, with a deadline for the whole exchange.
pub async fn request(
    addr: &Address,
    method: &str,
    path: &str,
    body: Option<&[u8]>,
    timeout: Duration,
) -> Result<Response, String> {
    tokio::time::timeout(timeout, exchange(addr, method, path, body))
        .await
        .map_err(|_| format!("no answer from {addr} within {timeout:?}"))?
}

/// Aborts the connection task when the exchange ends or is dropped (a deadline).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn exchange(
    addr: &Address,
    method: &str,
    path: &str,
    body: Option<&[u8]>,
) -> Result<Response, String> {
    let stream = crate::connect(addr).await.map_err(|e| e.to_string())?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| format!("{addr}: {e}"))?;
    let _conn = AbortOnDrop(tokio::spawn(async move {
        let _ = conn.await;
    }));
    let mut req = http::Request::builder()
        .method(method)
        .uri(path)
        .header(http::header::HOST, "localhost")
        .header(http::header::ACCEPT, "*/*")
        .header(http::header::CONNECTION, "close");
    if body.is_some() {
        req = req.header(http::header::CONTENT_TYPE, "application/json");
    }
    let req = req
        .body(Full::new(Bytes::copy_from_slice(body.unwrap_or_default())))
        .map_err(|e| format!("{addr}{path}: {e}"))?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| format!("{addr}{path}: {e}"))?;
    let status = resp.status().as_u16();
    let body = Limited::new(resp.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                format!("{addr}{path}: answer larger than {MAX_BODY} bytes")
            } else {
                format!("{addr}{path}: {e}")
            }
        })?
        .to_bytes()
        .to_vec();
    Ok(Response { status, body })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn urls() {
        assert_eq!(
            parse_base("http://127.0.0.1:9000").unwrap().to_string(),
            "tcp://127.0.0.1:9000"
        );
        assert_eq!(
            parse_base("http://localhost:9000/x").unwrap().to_string(),
            "tcp://localhost:9000"
        );
        assert_eq!(
            parse_base("http://localhost").unwrap().to_string(),
            "tcp://localhost:80"
        );
        assert_eq!(
            parse_base("unix:///run/api.sock").unwrap().to_string(),
            "unix:///run/api.sock"
        );
        assert!(
            parse_base("https://x")
                .unwrap_err()
                .contains("https is not supported")
        );
        assert!(parse_base("ftp://x").is_err());
    }

    /// A one-shot server on loopback answering `answer` to the first request.
    async fn server(answer: Vec<u8>) -> Address {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let a = l.local_addr().unwrap();
        tokio::spawn(async move {
            if let Ok((mut s, _)) = l.accept().await {
                let mut buf = vec![0u8; 4096];
                let _ = s.read(&mut buf).await;
                let _ = s.write_all(&answer).await;
                let _ = s.shutdown().await;
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        });
        format!("tcp://{a}").parse().unwrap()
    }

    #[tokio::test]
    async fn chunked_bodies_status_and_limits() {
        let a = server(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
                .to_vec(),
        )
        .await;
        let r = get(&a, "/status", Duration::from_secs(5)).await.unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, b"abcde".as_slice()));

        let a = server(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 2\r\n\r\nno".to_vec())
            .await;
        let r = get(&a, "/x", Duration::from_secs(5)).await.unwrap();
        assert_eq!(r.status, 503);

        let mut big = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n".to_vec();
        big.resize(big.len() + MAX_BODY + 1, b'a');
        let a = server(big).await;
        let e = get(&a, "/metrics", Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(e.contains("larger than"), "{e}");

        let a = server(b"garbage\r\n\r\n".to_vec()).await;
        assert!(get(&a, "/", Duration::from_secs(5)).await.is_err());
    }

    #[tokio::test]
    async fn a_silent_server_hits_the_deadline() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let a: Address = format!("tcp://{}", l.local_addr().unwrap())
            .parse()
            .unwrap();
        let _keep = tokio::spawn(async move {
            let _s = l.accept().await;
            tokio::time::sleep(Duration::from_secs(30)).await;
        });
        let t = std::time::Instant::now();
        let e = get(&a, "/", Duration::from_millis(200)).await.unwrap_err();
        assert!(e.contains("no answer"), "{e}");
        assert!(t.elapsed() < Duration::from_secs(3));
    }
}
