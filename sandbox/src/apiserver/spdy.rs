//! `pods/exec` over SPDY/3.1, as the API server serves kubectl before 1.30 (client-go's
//! `remotecommand` over `httpstream/spdy`, framing by spdystream): a `POST
//! …/pods/NAME/exec?command=…&stdout=true&stderr=true` with `Upgrade: SPDY/3.1` and the
//! `X-Stream-Protocol-Version`s the client speaks, best first. The first one served
//! (`v4.channel.k8s.io`, `v3`, `v2`) is answered in the `101 Switching Protocols`; then, on the
//! connection, SPDY/3.1 frames:
//!
//! - control frames: bit 15 set, version 3, type, flags, 24-bit length; data frames: the
//!   31-bit stream id, flags (`FIN` = 1), 24-bit length;
//! - name/value header blocks (`SYN_STREAM`, `SYN_REPLY`, `HEADERS`) are compressed with one
//!   zlib stream per direction for the whole connection, with the SPDY/3 preset dictionary,
//!   each block ending with a sync flush;
//! - the client opens one stream per `streamtype` (`error`, then `stdout`, `stderr`), waiting
//!   for each `SYN_REPLY`; when all that the query asked for are open the command runs
//!   (`exec::execute`), its output goes as data frames on `stdout` and `stderr`, then the
//!   error stream carries the `Status` as JSON (v4: `Success`, or `Failure` with reason
//!   `NonZeroExitCode` and the code in `details.causes[reason=ExitCode]`, which kubectl turns
//!   into `command terminated with exit code N`; v2/v3: the failure's message as text, nothing
//!   on success), and every stream ends with an empty `FIN` data frame;
//! - `PING` is echoed; `GOAWAY` or the connection's end closes the session.
//!
//! stdin and TTY are not served (`-i`, `-t`): the request is refused 400 before the upgrade.
//! Flow control is not enforced either way (spdystream neither sends nor waits for
//! `WINDOW_UPDATE`), which holds for output capped at `exec::MAX_OUTPUT`.

use std::io;
use std::time::Duration;

use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::exec::{execute, status};

/// The stream protocols served, as `X-Stream-Protocol-Version` names them.
const PROTOCOLS: [&str; 3] = [
    "v4.channel.k8s.io",
    "v3.channel.k8s.io",
    "v2.channel.k8s.io",
];

const VERSION: u16 = 3;
const SYN_STREAM: u16 = 1;
const SYN_REPLY: u16 = 2;
const PING: u16 = 6;
const GOAWAY: u16 = 7;
const FLAG_FIN: u8 = 1;

/// How long the client has to open its streams (the API server's `streamCreationTimeout`).
const STREAM_CREATION: Duration = Duration::from_secs(30);
/// How long the session stays up once everything is sent, for the client to hang up.
const LINGER: Duration = Duration::from_secs(60);
/// A data frame's payload at most, as sent.
const CHUNK: usize = 32 * 1024;

/// The SPDY/3 header compression dictionary (draft-mbelshe-httpbis-spdy-00, 2.6.10.1).
const DICTIONARY: &[u8] = b"\
\x00\x00\x00\x07options\x00\x00\x00\x04head\x00\x00\x00\x04post\x00\x00\x00\x03put\x00\
\x00\x00\x06delete\x00\x00\x00\x05trace\x00\x00\x00\x06accept\x00\x00\x00\x0eaccept-char\
set\x00\x00\x00\x0faccept-encoding\x00\x00\x00\x0faccept-language\x00\x00\x00\x0daccept-\
ranges\x00\x00\x00\x03age\x00\x00\x00\x05allow\x00\x00\x00\x0dauthorization\x00\x00\x00\
\x0dcache-control\x00\x00\x00\x0aconnection\x00\x00\x00\x0ccontent-base\x00\x00\x00\x10c\
ontent-encoding\x00\x00\x00\x10content-language\x00\x00\x00\x0econtent-length\x00\x00\
\x00\x10content-location\x00\x00\x00\x0bcontent-md5\x00\x00\x00\x0dcontent-range\x00\x00\
\x00\x0ccontent-type\x00\x00\x00\x04date\x00\x00\x00\x04etag\x00\x00\x00\x06expect\x00\
\x00\x00\x07expires\x00\x00\x00\x04from\x00\x00\x00\x04host\x00\x00\x00\x08if-match\x00\
\x00\x00\x11if-modified-since\x00\x00\x00\x0dif-none-match\x00\x00\x00\x08if-range\x00\
\x00\x00\x13if-unmodified-since\x00\x00\x00\x0dlast-modified\x00\x00\x00\x08location\x00\
\x00\x00\x0cmax-forwards\x00\x00\x00\x06pragma\x00\x00\x00\x12proxy-authenticate\x00\x00\
\x00\x13proxy-authorization\x00\x00\x00\x05range\x00\x00\x00\x07referer\x00\x00\x00\x0br\
etry-after\x00\x00\x00\x06server\x00\x00\x00\x02te\x00\x00\x00\x07trailer\x00\x00\x00\
\x11transfer-encoding\x00\x00\x00\x07upgrade\x00\x00\x00\x0auser-agent\x00\x00\x00\x04va\
ry\x00\x00\x00\x03via\x00\x00\x00\x07warning\x00\x00\x00\x10www-authenticate\x00\x00\x00\
\x06method\x00\x00\x00\x03get\x00\x00\x00\x06status\x00\x00\x00\x06200 OK\x00\x00\x00\
\x07version\x00\x00\x00\x08HTTP/1.1\x00\x00\x00\x03url\x00\x00\x00\x06public\x00\x00\x00\
\x0aset-cookie\x00\x00\x00\x0akeep-alive\x00\x00\x00\x06origin10010120120220520630030230\
3304305306307402405406407408409410411412413414415416417502504505203 Non-Authoritative In\
formation204 No Content301 Moved Permanently400 Bad Request401 Unauthorized403 Forbidden\
404 Not Found500 Internal Server Error501 Not Implemented503 Service UnavailableJan Feb \
Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMT\
chunked,text/html,image/png,image/jpg,image/gif,application/xml,application/xhtml+xml,te\
xt/plain,text/javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8charset=iso-\
8859-1,utf-,*,enq=0.";

/// Answer the upgrade (or refuse it as the API server does) and serve the session on the
/// upgraded connection.
pub(super) fn upgrade(mut req: Request, cmd: Vec<String>, env: Vec<(String, String)>) -> Response {
    let query = req.uri().query().unwrap_or_default().to_owned();
    let (want_stdout, want_stderr) = match super::exec::streams(&query) {
        Ok(w) => w,
        Err(r) => return *r,
    };
    let offered: Vec<String> = req
        .headers()
        .get_all("x-stream-protocol-version")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|p| p.trim().to_owned())
        .filter(|p| !p.is_empty())
        .collect();
    // The client's order decides, as the API server's handshake does.
    let Some(protocol) = offered
        .iter()
        .find_map(|o| PROTOCOLS.iter().find(|p| *p == o))
        .copied()
    else {
        return status(
            StatusCode::FORBIDDEN,
            "Forbidden",
            format!(
                "unable to upgrade: unable to negotiate protocol: client supports {offered:?}, \
                 server supports {PROTOCOLS:?}"
            ),
        );
    };
    let want = Want {
        stdout: want_stdout,
        stderr: want_stderr,
        v4: protocol == PROTOCOLS[0],
    };
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let io = hyper_util::rt::TokioIo::new(upgraded);
        let _ = session(io, want, &cmd, &env).await;
    });
    let mut r = StatusCode::SWITCHING_PROTOCOLS.into_response();
    let h = r.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("SPDY/3.1"));
    h.insert(
        "x-stream-protocol-version",
        HeaderValue::from_static(protocol),
    );
    r
}

/// What the session serves: the streams the query asked for, and whether the error stream
/// carries a `Status` (v4) or a message (v2, v3).
#[derive(Clone, Copy)]
struct Want {
    stdout: bool,
    stderr: bool,
    v4: bool,
}

async fn session<S>(io: S, want: Want, cmd: &[String], env: &[(String, String)]) -> io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut c = Conn::new(io)?;
    let (mut error, mut stdout, mut stderr) = (None, None, None);
    let opened = async {
        while error.is_none()
            || (want.stdout && stdout.is_none())
            || (want.stderr && stderr.is_none())
        {
            match c.read().await? {
                None => return Ok(false),
                Some(Frame::Control {
                    kind: SYN_STREAM,
                    data,
                }) if data.len() >= 10 => {
                    let id = be32(&data[0..4]) & 0x7fff_ffff;
                    let headers = parse_headers(&c.inflate(&data[10..])?)?;
                    c.reply(id).await?;
                    let kind = headers.iter().find(|(k, _)| k == "streamtype");
                    match kind.map(|(_, v)| v.as_str()) {
                        Some("error") => error = Some(id),
                        Some("stdout") => stdout = Some(id),
                        Some("stderr") => stderr = Some(id),
                        _ => {}
                    }
                }
                Some(f) => {
                    if !c.control(f).await? {
                        return Ok(false);
                    }
                }
            }
        }
        Ok::<_, io::Error>(true)
    };
    if !tokio::time::timeout(STREAM_CREATION, opened)
        .await
        .unwrap_or(Ok(false))?
    {
        return c.io.shutdown().await;
    }
    let out = execute(cmd, env).await;
    for (id, data) in [(stdout, &out.stdout), (stderr, &out.stderr)] {
        if let Some(id) = id {
            c.send(id, data).await?;
        }
    }
    let failed = out.status["status"] != "Success";
    let report = if want.v4 {
        out.status.to_string().into_bytes()
    } else if failed {
        out.status["message"]
            .as_str()
            .unwrap_or("error executing command")
            .as_bytes()
            .to_vec()
    } else {
        Vec::new()
    };
    if let Some(id) = error {
        c.send(id, &report).await?;
    }
    // Everything is sent: wait for the client to hang up (GOAWAY, or the connection's end).
    let _ = tokio::time::timeout(LINGER, async {
        while let Some(f) = c.read().await? {
            if !c.control(f).await? {
                break;
            }
        }
        Ok::<_, io::Error>(())
    })
    .await;
    c.io.shutdown().await
}

enum Frame {
    Control { kind: u16, data: Vec<u8> },
    Data,
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

fn bad(what: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.into())
}

/// A name/value header block, uncompressed: a count, then length-prefixed names and values.
fn header_block(pairs: &[(&str, &str)]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&(pairs.len() as u32).to_be_bytes());
    for (k, v) in pairs {
        for s in [k, v] {
            b.extend_from_slice(&(s.len() as u32).to_be_bytes());
            b.extend_from_slice(s.as_bytes());
        }
    }
    b
}

fn parse_headers(b: &[u8]) -> io::Result<Vec<(String, String)>> {
    let mut at = 0;
    let mut take = |n: usize| -> io::Result<&[u8]> {
        let s = b
            .get(at..at + n)
            .ok_or_else(|| bad("truncated header block"))?;
        at += n;
        Ok(s)
    };
    let count = be32(take(4)?);
    let mut out = Vec::new();
    for _ in 0..count {
        let mut pair = [String::new(), String::new()];
        for s in &mut pair {
            let n = be32(take(4)?) as usize;
            *s = String::from_utf8_lossy(take(n)?).into_owned();
        }
        let [k, v] = pair;
        out.push((k, v));
    }
    Ok(out)
}

/// One SPDY/3.1 connection, server side: the two header compression contexts.
struct Conn<S> {
    io: S,
    inflater: Decompress,
    deflater: Compress,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    fn new(io: S) -> io::Result<Self> {
        let mut deflater = Compress::new(Compression::default(), true);
        deflater
            .set_dictionary(DICTIONARY)
            .map_err(io::Error::other)?;
        Ok(Conn {
            io,
            inflater: Decompress::new(true),
            deflater,
        })
    }

    /// The next frame; `None` when the client closed the connection.
    async fn read(&mut self) -> io::Result<Option<Frame>> {
        let mut head = [0u8; 8];
        match self.io.read_exact(&mut head).await {
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
            r => r?,
        };
        let len = be32(&[0, head[5], head[6], head[7]]) as usize;
        let mut data = vec![0; len];
        self.io.read_exact(&mut data).await?;
        if head[0] & 0x80 == 0 {
            // Data (stdin is not served): dropped.
            return Ok(Some(Frame::Data));
        }
        let version = u16::from_be_bytes([head[0] & 0x7f, head[1]]);
        if version != VERSION {
            return Err(bad(format!("SPDY version {version}, not {VERSION}")));
        }
        let kind = u16::from_be_bytes([head[2], head[3]]);
        Ok(Some(Frame::Control { kind, data }))
    }

    /// Serve a frame that opens no stream: `PING` is echoed; false on `GOAWAY`.
    async fn control(&mut self, f: Frame) -> io::Result<bool> {
        match f {
            Frame::Control { kind: PING, data } => {
                self.write_control(PING, 0, &data).await?;
                Ok(true)
            }
            Frame::Control { kind: GOAWAY, .. } => Ok(false),
            Frame::Control { .. } | Frame::Data => Ok(true),
        }
    }

    /// `SYN_REPLY` with no headers: the stream is accepted.
    async fn reply(&mut self, id: u32) -> io::Result<()> {
        let block = self.deflate(&header_block(&[]))?;
        let mut payload = id.to_be_bytes().to_vec();
        payload.extend_from_slice(&block);
        self.write_control(SYN_REPLY, 0, &payload).await
    }

    /// `data` on stream `id` in data frames, then an empty one with `FIN`.
    async fn send(&mut self, id: u32, data: &[u8]) -> io::Result<()> {
        for chunk in data.chunks(CHUNK) {
            self.write_data(id, 0, chunk).await?;
        }
        self.write_data(id, FLAG_FIN, &[]).await
    }

    async fn write_control(&mut self, kind: u16, flags: u8, payload: &[u8]) -> io::Result<()> {
        let mut f = Vec::with_capacity(8 + payload.len());
        f.extend_from_slice(&(0x8000 | VERSION).to_be_bytes());
        f.extend_from_slice(&kind.to_be_bytes());
        f.extend_from_slice(&(u32::from(flags) << 24 | payload.len() as u32).to_be_bytes());
        f.extend_from_slice(payload);
        // One write per frame: the client reads a header block whole.
        self.io.write_all(&f).await?;
        self.io.flush().await
    }

    async fn write_data(&mut self, id: u32, flags: u8, payload: &[u8]) -> io::Result<()> {
        let mut f = Vec::with_capacity(8 + payload.len());
        f.extend_from_slice(&(id & 0x7fff_ffff).to_be_bytes());
        f.extend_from_slice(&(u32::from(flags) << 24 | payload.len() as u32).to_be_bytes());
        f.extend_from_slice(payload);
        self.io.write_all(&f).await?;
        self.io.flush().await
    }

    /// A header block from the client, through the connection's one inflate stream.
    fn inflate(&mut self, input: &[u8]) -> io::Result<Vec<u8>> {
        inflate(&mut self.inflater, input)
    }

    /// A header block to the client, through the connection's one deflate stream, ending with
    /// a sync flush.
    fn deflate(&mut self, input: &[u8]) -> io::Result<Vec<u8>> {
        deflate(&mut self.deflater, input)
    }
}

fn inflate(d: &mut Decompress, input: &[u8]) -> io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(4 * input.len() + 64);
    let start = d.total_in();
    loop {
        let at = (d.total_in() - start) as usize;
        let produced = out.len();
        match d.decompress_vec(&input[at..], &mut out, FlushDecompress::Sync) {
            Ok(_) => {}
            Err(e) if e.needs_dictionary().is_some() => {
                d.set_dictionary(DICTIONARY).map_err(bad_zlib)?;
                continue;
            }
            Err(e) => return Err(bad_zlib(e)),
        }
        let consumed = (d.total_in() - start) as usize;
        if consumed == input.len() && out.len() < out.capacity() {
            return Ok(out);
        }
        if consumed == at && out.len() == produced && out.len() < out.capacity() {
            return Err(bad("truncated header block"));
        }
        out.reserve(out.capacity().max(64));
    }
}

fn deflate(c: &mut Compress, input: &[u8]) -> io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(input.len() + 64);
    let start = c.total_in();
    loop {
        let at = (c.total_in() - start) as usize;
        c.compress_vec(&input[at..], &mut out, FlushCompress::Sync)
            .map_err(io::Error::other)?;
        if (c.total_in() - start) as usize == input.len() && out.len() < out.capacity() {
            return Ok(out);
        }
        out.reserve(out.capacity().max(64));
    }
}

fn bad_zlib(e: flate2::DecompressError) -> io::Error {
    bad(format!("header block: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn adler32(b: &[u8]) -> u32 {
        let (mut a, mut s) = (1u32, 0u32);
        for &x in b {
            a = (a + u32::from(x)) % 65521;
            s = (s + a) % 65521;
        }
        s << 16 | a
    }

    #[test]
    fn the_dictionary_is_spdy3s() {
        assert_eq!(DICTIONARY.len(), 1423);
        assert_eq!(adler32(DICTIONARY), 0xe3c6_a7c2);
    }

    #[test]
    fn header_blocks_round_trip_through_one_stream_per_direction() {
        let mut c = Compress::new(Compression::default(), true);
        c.set_dictionary(DICTIONARY).unwrap();
        let mut d = Decompress::new(true);
        for kind in ["error", "stdout", "stderr"] {
            let raw = header_block(&[("streamtype", kind)]);
            let z = deflate(&mut c, &raw).unwrap();
            // A sync flush ends every block.
            assert!(z.ends_with(&[0, 0, 0xff, 0xff]), "{z:02x?}");
            let back = inflate(&mut d, &z).unwrap();
            assert_eq!(
                parse_headers(&back).unwrap(),
                [("streamtype".to_owned(), kind.to_owned())]
            );
        }
        let empty = deflate(&mut c, &header_block(&[])).unwrap();
        assert!(
            parse_headers(&inflate(&mut d, &empty).unwrap())
                .unwrap()
                .is_empty()
        );
    }

    /// One raw frame as the client reads it: the 8-byte head and the payload.
    async fn raw<S: AsyncRead + Unpin>(io: &mut S) -> ([u8; 8], Vec<u8>) {
        let mut head = [0u8; 8];
        io.read_exact(&mut head).await.unwrap();
        let mut data = vec![0; be32(&[0, head[5], head[6], head[7]]) as usize];
        io.read_exact(&mut data).await.unwrap();
        (head, data)
    }

    /// The client's side of a session, as spdystream frames it: streams error, stdout, stderr,
    /// each waiting for its reply; then what the server sends on each, until FIN.
    async fn client(want: Want, cmd: &[&str]) -> [Vec<u8>; 3] {
        let (client, server) = tokio::io::duplex(1 << 16);
        let cmd: Vec<String> = cmd.iter().map(|s| (*s).to_owned()).collect();
        let task = tokio::spawn(async move { session(server, want, &cmd, &[]).await });
        let mut c = Conn::new(client).unwrap();
        c.write_control(PING, 0, &1u32.to_be_bytes()).await.unwrap();
        let (head, data) = raw(&mut c.io).await;
        assert_eq!(
            (head[0..4].to_vec(), data),
            (vec![0x80, 3, 0, 6], vec![0, 0, 0, 1])
        );
        for (id, kind) in [(1u32, "error"), (3, "stdout"), (5, "stderr")] {
            let mut payload = id.to_be_bytes().to_vec();
            payload.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
            let block = c.deflate(&header_block(&[("streamtype", kind)])).unwrap();
            payload.extend_from_slice(&block);
            c.write_control(SYN_STREAM, 0, &payload).await.unwrap();
            let (head, data) = raw(&mut c.io).await;
            assert_eq!(head[0..4], [0x80, 3, 0, 2], "{kind}");
            assert_eq!(be32(&data[0..4]), id);
            assert!(
                parse_headers(&c.inflate(&data[4..]).unwrap())
                    .unwrap()
                    .is_empty()
            );
        }
        let mut got: [Vec<u8>; 3] = Default::default();
        let mut open = 3;
        while open > 0 {
            let (head, data) = raw(&mut c.io).await;
            assert_eq!(head[0] & 0x80, 0, "a data frame");
            let at = (be32(&head[0..4]) / 2) as usize;
            got[at].extend_from_slice(&data);
            if head[4] & FLAG_FIN != 0 {
                open -= 1;
            }
        }
        c.write_control(GOAWAY, 0, &[0; 8]).await.unwrap();
        task.await.unwrap().unwrap();
        got
    }

    #[tokio::test]
    async fn a_session_sends_the_output_then_the_v4_status() {
        let want = Want {
            stdout: true,
            stderr: true,
            v4: true,
        };
        let [error, out, err] = client(want, &["sh", "-c", "echo out; echo err >&2; exit 3"]).await;
        assert_eq!(
            (out.as_slice(), err.as_slice()),
            (&b"out\n"[..], &b"err\n"[..])
        );
        let status: serde_json::Value = serde_json::from_slice(&error).unwrap();
        assert_eq!(status["reason"], "NonZeroExitCode");
        assert_eq!(
            status["details"]["causes"][0],
            serde_json::json!({"reason": "ExitCode", "message": "3"})
        );
        let [error, out, _] = client(want, &["true"]).await;
        assert!(out.is_empty());
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&error).unwrap()["status"],
            "Success"
        );
    }

    #[tokio::test]
    async fn before_v4_the_error_stream_carries_the_message_only() {
        let want = Want {
            stdout: true,
            stderr: true,
            v4: false,
        };
        let [error, ..] = client(want, &["no-such-command-here"]).await;
        assert_eq!(
            String::from_utf8(error).unwrap(),
            "exec: \"no-such-command-here\": executable file not found in $PATH"
        );
        let [error, out, _] = client(want, &["echo", "fine"]).await;
        assert_eq!(
            (error.as_slice(), out.as_slice()),
            (&b""[..], &b"fine\n"[..])
        );
    }
}
