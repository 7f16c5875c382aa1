//! A small HTTP/1.1 GET client over our transports (`http://host:port`, `tcp://`, `unix://`),
//! bounded in time and size: what `ccctl` reads from the enclave server (`/attestation`,
//! `/status`, `/metrics`) is small, and a misbehaving peer must not hang or exhaust it.

use std::time::Duration;

use cc_proto::Address;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const MAX_BODY: usize = 16 << 20;

/// `http://HOST:PORT[/...]` (the path is ignored), or any `tcp://` / `unix://` address.
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
    tokio::time::timeout(timeout, request_inner(addr, method, path, body))
        .await
        .map_err(|_| format!("no answer from {addr} within {timeout:?}"))?
}

async fn request_inner(
    addr: &Address,
    method: &str,
    path: &str,
    body: Option<&[u8]>,
) -> Result<Response, String> {
    let mut s = cc_proto::connect(addr).await.map_err(|e| e.to_string())?;
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nAccept: */*\r\n"
    )
    .into_bytes();
    if let Some(b) = body {
        req.extend(
            format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                b.len()
            )
            .as_bytes(),
        );
    }
    req.extend(b"\r\n");
    req.extend(body.unwrap_or_default());
    s.write_all(&req)
        .await
        .map_err(|e| format!("{addr}: {e}"))?;
    let mut raw = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = s.read(&mut buf).await.map_err(|e| format!("{addr}: {e}"))?;
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&buf[..n]);
        if raw.len() > MAX_BODY {
            return Err(format!("{addr}{path}: answer larger than {MAX_BODY} bytes"));
        }
    }
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("{addr}{path}: not an HTTP answer"))?;
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| format!("{addr}{path}: bad status line"))?;
    let mut body = raw[split + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body).ok_or_else(|| format!("{addr}{path}: malformed chunked body"))?;
    }
    Ok(Response { status, body })
}

fn dechunk(mut b: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = b.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&b[..eol]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        if size == 0 {
            return Some(out);
        }
        let start = eol + 2;
        let end = start.checked_add(size)?;
        out.extend_from_slice(b.get(start..end)?);
        b = b.get(end + 2..)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn chunked() {
        assert_eq!(
            dechunk(b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n").unwrap(),
            b"abcde"
        );
        assert!(dechunk(b"ff\r\nab").is_none());
    }
}
