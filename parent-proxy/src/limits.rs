//! Limits that keep a forwarder (and the enclave API, which shares them) alive under a flood:
//! per-connection idle timeouts and, at the connection cap, a few reserved slots for the
//! liveness and readiness probes, recognised by their request line.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt};

/// When a connection last moved a byte.
#[derive(Debug)]
pub struct Activity {
    base: Instant,
    last_ms: AtomicU64,
}

impl Default for Activity {
    fn default() -> Self {
        Activity {
            base: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }
}

impl Activity {
    /// A byte moved now.
    pub fn touch(&self) {
        let ms = self.base.elapsed().as_millis() as u64;
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// How long since a byte last moved (since creation if none did).
    pub fn idle_for(&self) -> Duration {
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        self.base.elapsed().saturating_sub(last)
    }

    /// Resolves once nothing has moved for `timeout`.
    pub async fn idle(&self, timeout: Duration) {
        loop {
            let idle = self.idle_for();
            if idle >= timeout {
                return;
            }
            tokio::time::sleep(timeout - idle).await;
        }
    }
}

/// Longest request line prefix read to recognise a probe.
const PROBE_PREFIX_MAX: usize = 256;

/// Read the start of an HTTP request from `s` (at most [`PROBE_PREFIX_MAX`] bytes, within
/// `wait`): `Some(bytes read)` when its request line is `GET <path>` for one of `paths`
/// (followed by a space or `?`), `None` for anything else, a timeout or an error. The caller
/// forwards the bytes read before the rest of the stream.
pub async fn read_probe_request<S: AsyncRead + Unpin>(
    s: &mut S,
    paths: &[String],
    wait: Duration,
) -> Option<Vec<u8>> {
    let candidates: Vec<Vec<u8>> = paths
        .iter()
        .map(|p| format!("GET {p}").into_bytes())
        .collect();
    let mut buf = Vec::with_capacity(64);
    let read = async {
        let mut chunk = [0u8; 64];
        loop {
            match probe_match(&buf, &candidates) {
                Match::Yes => return true,
                Match::No => return false,
                Match::NeedMore => {}
            }
            if buf.len() >= PROBE_PREFIX_MAX {
                return false;
            }
            let n = match s.read(&mut chunk).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => n,
            };
            buf.extend_from_slice(&chunk[..n]);
        }
    };
    match tokio::time::timeout(wait, read).await {
        Ok(true) => Some(buf),
        _ => None,
    }
}

enum Match {
    Yes,
    No,
    NeedMore,
}

fn probe_match(buf: &[u8], candidates: &[Vec<u8>]) -> Match {
    let mut more = false;
    for c in candidates {
        if buf.len() > c.len() {
            if buf.starts_with(c) && matches!(buf[c.len()], b' ' | b'?') {
                return Match::Yes;
            }
        } else if c.starts_with(buf) {
            more = true;
        }
    }
    if more { Match::NeedMore } else { Match::No }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn probe_requests_are_recognised_by_their_request_line() {
        let paths = vec!["/upcheck".to_owned(), "/healthcheck".to_owned()];
        let w = Duration::from_millis(200);
        let mut ok: &[u8] = b"GET /upcheck HTTP/1.1\r\nHost: x\r\n\r\n";
        assert!(read_probe_request(&mut ok, &paths, w).await.is_some());
        let mut q: &[u8] = b"GET /healthcheck?x=1 HTTP/1.1\r\n\r\n";
        assert!(read_probe_request(&mut q, &paths, w).await.is_some());
        for bad in [
            &b"POST /upcheck HTTP/1.1\r\n\r\n"[..],
            b"GET /upcheckX HTTP/1.1\r\n\r\n",
            b"GET /api/v1/eth2/sign/0x HTTP/1.1\r\n\r\n",
            b"GET /upch",
            b"",
        ] {
            let mut s = bad;
            assert!(
                read_probe_request(&mut s, &paths, w).await.is_none(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[tokio::test]
    async fn idle_resolves_after_the_timeout_without_activity() {
        let a = Activity::default();
        let t = Instant::now();
        a.idle(Duration::from_millis(50)).await;
        assert!(t.elapsed() >= Duration::from_millis(50));
    }
}
