//! `vsock-stdout`: the parent-side log listener. Accepts any number of enclave connections and
//! writes every complete line to stdout unchanged.
//!
//! Each connection assembles whole lines itself and hands batches of complete lines to one
//! writer thread, so two connections' half-lines can never interleave. A connection that drops
//! mid-line has its partial line flushed with a newline. Lines longer than the bound are cut,
//! marked and counted; no line is ever buffered past the bound. The channel to the writer is
//! bounded: a stalled stdout back-pressures the enclave (whose own sender drops and counts)
//! instead of growing memory here.

use std::io::Write;
use std::time::Duration;

use cc_proto::Listener;
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::metrics::{ErrorKind, ForwarderLabel, Metrics};
use crate::shutdown::Shutdown;

/// Appended to a line that was cut at the bound.
pub const CUT_MARKER: &[u8] = b" [vsock-stdout: line cut at bound]";
const FORWARDER: &str = "vsock-stdout";
const READ_CHUNK: usize = 64 * 1024;
const CHANNEL_BATCHES: usize = 256;

/// Turns a byte stream into complete lines, enforcing the line bound.
#[derive(Debug)]
pub struct LineAssembler {
    max_line: usize,
    partial: Vec<u8>,
    /// The current line was cut; its remaining bytes up to the newline are skipped.
    discarding: bool,
    out: Vec<u8>,
    /// Lines completed into `out` since the last `take`.
    pub lines: u64,
    pub cut: u64,
}

impl LineAssembler {
    pub fn new(max_line: usize) -> Self {
        Self {
            max_line: max_line.max(1),
            partial: Vec::new(),
            discarding: false,
            out: Vec::with_capacity(READ_CHUNK + 256),
            lines: 0,
            cut: 0,
        }
    }

    /// Feed bytes; complete lines accumulate in the output batch.
    pub fn push(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            match memchr::memchr(b'\n', data) {
                Some(i) => {
                    let seg = &data[..i];
                    data = &data[i + 1..];
                    if self.discarding {
                        self.discarding = false;
                        continue;
                    }
                    if self.partial.len() + seg.len() > self.max_line {
                        let take = self.max_line - self.partial.len();
                        self.emit_cut(&seg[..take]);
                    } else {
                        self.out.extend_from_slice(&self.partial);
                        self.partial.clear();
                        self.out.extend_from_slice(seg);
                        self.out.push(b'\n');
                        self.lines += 1;
                    }
                }
                None => {
                    if !self.discarding {
                        if self.partial.len() + data.len() > self.max_line {
                            let take = self.max_line - self.partial.len();
                            self.emit_cut(&data[..take]);
                            self.discarding = true;
                        } else {
                            self.partial.extend_from_slice(data);
                        }
                    }
                    data = &[];
                }
            }
        }
    }

    fn emit_cut(&mut self, tail: &[u8]) {
        let start = self.out.len();
        self.out.extend_from_slice(&self.partial);
        self.partial.clear();
        self.out.extend_from_slice(tail);
        // Not inside a character: the bytes of one cut short go too.
        let keep = without_cut_character(&self.out[start..]);
        self.out.truncate(start + keep);
        self.out.extend_from_slice(CUT_MARKER);
        self.out.push(b'\n');
        self.lines += 1;
        self.cut += 1;
    }

    /// The connection ended: flush a partial line, newline-terminated. Returns whether there
    /// was one.
    pub fn finish(&mut self) -> bool {
        if self.partial.is_empty() {
            return false;
        }
        self.out.extend_from_slice(&self.partial);
        self.partial.clear();
        self.out.push(b'\n');
        self.lines += 1;
        true
    }

    /// Take the batch of complete lines accumulated so far (empty if none).
    pub fn take(&mut self) -> Vec<u8> {
        self.lines = 0;
        self.cut = 0;
        std::mem::replace(&mut self.out, Vec::with_capacity(READ_CHUNK + 256))
    }

    pub fn has_output(&self) -> bool {
        !self.out.is_empty()
    }
}

/// The length of `line` without the UTF-8 character its end cuts short, if any (bytes that are
/// not UTF-8 are left as they are).
fn without_cut_character(line: &[u8]) -> usize {
    // The last character starts at the last byte that is not a continuation byte (10xxxxxx).
    let Some(back) = line.iter().rev().take(4).position(|b| b & 0xC0 != 0x80) else {
        return line.len();
    };
    let start = line.len() - 1 - back;
    match std::str::from_utf8(&line[start..]) {
        Err(e) if e.error_len().is_none() => start,
        _ => line.len(),
    }
}

/// A batch of complete lines on its way to the writer.
#[derive(Debug)]
pub struct Batch {
    pub bytes: Vec<u8>,
    pub lines: u64,
}

/// The single writer: owns the output (stdout in production), writes batches whole.
pub fn spawn_writer(
    mut out: Box<dyn Write + Send>,
    mut rx: mpsc::Receiver<Batch>,
    metrics: Metrics,
) -> std::thread::JoinHandle<()> {
    std::thread::Builder::new()
        .name("vsock-stdout-writer".into())
        .spawn(move || {
            while let Some(first) = rx.blocking_recv() {
                let mut batch = Some(first);
                while let Some(b) = batch {
                    match out.write_all(&b.bytes) {
                        Ok(()) => {
                            metrics.log_lines.inc_by(b.lines);
                            metrics.log_bytes.inc_by(b.bytes.len() as u64);
                        }
                        Err(_) => metrics.error(FORWARDER, ErrorKind::stdout),
                    }
                    metrics.log_lines_queued.dec_by(lines_i64(b.lines));
                    batch = rx.try_recv().ok();
                }
                if out.flush().is_err() {
                    metrics.error(FORWARDER, ErrorKind::stdout);
                }
            }
            let _ = out.flush();
        })
        .expect("spawning the writer thread")
}

/// Writes to the process's stdout through the std lock, so the proxy's own tracing lines
/// (which take the same lock per event) never land inside a forwarded batch.
pub struct StdoutSink;

impl Write for StdoutSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        std::io::stdout().lock().write(buf)
    }
    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        std::io::stdout().lock().write_all(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stdout().lock().flush()
    }
}

/// Options of the log listener.
#[derive(Debug, Clone)]
pub struct LogSinkOptions {
    pub max_line: usize,
    /// After shutdown, how long open connections may keep sending before they are cut off.
    pub grace: Duration,
}

impl Default for LogSinkOptions {
    fn default() -> Self {
        Self {
            max_line: cc_proto::ports::MAX_LOG_LINE,
            grace: Duration::from_secs(5),
        }
    }
}

/// Accept enclave connections until shutdown and forward their lines to `tx`.
pub async fn serve(
    listener: Listener,
    tx: mpsc::Sender<Batch>,
    metrics: Metrics,
    opts: LogSinkOptions,
    mut shutdown: Shutdown,
) {
    let label = ForwarderLabel {
        forwarder: FORWARDER.into(),
    };
    let conns_total = metrics.connections.get_or_create(&label).clone();
    let conns_active = metrics.connections_active.get_or_create(&label).clone();
    let (hard_stop_tx, hard_stop) = tokio::sync::watch::channel(false);
    let mut tasks = JoinSet::new();
    let mut accept_backoff = cc_proto::Backoff::default();
    loop {
        tokio::select! {
            _ = shutdown.wait() => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    accept_backoff.reset();
                    conns_total.inc();
                    conns_active.inc();
                    tracing::debug!(%peer, "log connection accepted");
                    let tx = tx.clone();
                    let metrics = metrics.clone();
                    let active = conns_active.clone();
                    let hard_stop = hard_stop.clone();
                    let max = opts.max_line;
                    tasks.spawn(async move {
                        read_connection(stream, tx, &metrics, max, hard_stop).await;
                        active.dec();
                    });
                }
                Err(e) => {
                    metrics.error(FORWARDER, ErrorKind::accept);
                    let delay = accept_backoff.next_delay();
                    tracing::warn!(error = %e, retry_in = ?delay, "log listener accept failed");
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }
    drop(listener);
    // Let open connections finish within the grace period, then cut them off (their partial
    // lines are still flushed).
    if tokio::time::timeout(opts.grace, async {
        while tasks.join_next().await.is_some() {}
    })
    .await
    .is_err()
    {
        let _ = hard_stop_tx.send(true);
        while tasks.join_next().await.is_some() {}
    }
}

async fn read_connection(
    mut stream: cc_proto::Stream,
    tx: mpsc::Sender<Batch>,
    metrics: &Metrics,
    max_line: usize,
    mut hard_stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut asm = LineAssembler::new(max_line);
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        let n = tokio::select! {
            r = stream.read(&mut buf) => r,
            _ = hard_stop.wait_for(|v| *v) => break,
        };
        match n {
            Ok(0) => break,
            Ok(n) => {
                asm.push(&buf[..n]);
                if asm.has_output() && !send(&mut asm, &tx, metrics, &mut hard_stop).await {
                    return;
                }
            }
            Err(e) => {
                metrics.error(FORWARDER, ErrorKind::io);
                tracing::warn!(error = %e, "log connection failed; flushing its partial line");
                break;
            }
        }
    }
    if asm.finish() {
        metrics.log_lines_unterminated.inc();
    }
    if asm.has_output() {
        send(&mut asm, &tx, metrics, &mut hard_stop).await;
    }
}

/// Hand the complete lines to the writer; when the channel stays full (stdout stalled) past the
/// grace period, drop them and count them instead. `false`: this connection must stop.
async fn send(
    asm: &mut LineAssembler,
    tx: &mpsc::Sender<Batch>,
    metrics: &Metrics,
    hard_stop: &mut tokio::sync::watch::Receiver<bool>,
) -> bool {
    metrics.log_lines_cut.inc_by(asm.cut);
    let lines = asm.lines;
    let bytes = asm.take();
    metrics.log_lines_queued.inc_by(lines_i64(lines));
    let sent = tokio::select! {
        biased;
        r = tx.send(Batch { bytes, lines }) => r.is_ok(),
        _ = hard_stop.wait_for(|v| *v) => false,
    };
    if !sent {
        metrics.log_lines_queued.dec_by(lines_i64(lines));
        metrics.log_lines_dropped.inc_by(lines);
    }
    sent
}

fn lines_i64(lines: u64) -> i64 {
    i64::try_from(lines).unwrap_or(i64::MAX)
}

/// Wait for the writer until `deadline`. If stdout has not taken everything by then (nobody
/// reads it), what is still queued is counted as dropped; `false` then. Blocking: call it where
/// blocking is fine (the writer may hold the stdout lock for ever).
pub fn wait_for_writer(
    writer: std::thread::JoinHandle<()>,
    metrics: &Metrics,
    deadline: std::time::Instant,
) -> bool {
    while !writer.is_finished() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    if !writer.is_finished() {
        let queued = metrics.log_lines_queued.get().max(0);
        metrics.log_lines_dropped.inc_by(queued.unsigned_abs());
        return false;
    }
    let _ = writer.join();
    true
}

/// A bounded channel to the writer.
pub fn channel() -> (mpsc::Sender<Batch>, mpsc::Receiver<Batch>) {
    mpsc::channel(CHANNEL_BATCHES)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(max: usize, chunks: &[&[u8]]) -> (String, u64) {
        let mut a = LineAssembler::new(max);
        let mut out = Vec::new();
        let mut cut = 0;
        for c in chunks {
            a.push(c);
            cut += a.cut;
            out.extend(a.take());
        }
        a.finish();
        out.extend(a.take());
        (String::from_utf8(out).unwrap(), cut)
    }

    #[test]
    fn whole_lines_pass_unchanged_whatever_the_chunking() {
        let text = b"alpha\nbeta gamma\n\ndelta\n";
        for split in 0..text.len() {
            let (a, b) = text.split_at(split);
            assert_eq!(run(64, &[a, b]).0, "alpha\nbeta gamma\n\ndelta\n");
        }
        let bytes: Vec<&[u8]> = text.chunks(1).collect();
        assert_eq!(run(64, &bytes).0, "alpha\nbeta gamma\n\ndelta\n");
    }

    #[test]
    fn a_line_is_only_emitted_once_complete() {
        let mut a = LineAssembler::new(64);
        a.push(b"half");
        assert!(!a.has_output());
        a.push(b" line\nnext");
        assert_eq!(a.take(), b"half line\n");
    }

    #[test]
    fn partial_line_is_flushed_on_finish() {
        assert_eq!(
            run(64, &[b"one\ntw", b"o-and-a-half"]).0,
            "one\ntwo-and-a-half\n"
        );
    }

    #[test]
    fn long_lines_are_cut_marked_and_counted() {
        let marker = std::str::from_utf8(CUT_MARKER).unwrap();
        // Within one chunk.
        let (out, cut) = run(4, &[b"abcdefgh\nok\n"]);
        assert_eq!(out, format!("abcd{marker}\nok\n"));
        assert_eq!(cut, 1);
        // Exactly at the bound is not cut.
        let (out, cut) = run(4, &[b"abcd\n"]);
        assert_eq!((out.as_str(), cut), ("abcd\n", 0));
        // Spread over chunks, rest of the line skipped up to its newline.
        let (out, cut) = run(4, &[b"ab", b"cdef", b"ghij", b"kl\nnext\n"]);
        assert_eq!(out, format!("abcd{marker}\nnext\n"));
        assert_eq!(cut, 1);
        // A cut line whose connection ends before its newline leaves nothing behind.
        let (out, _) = run(4, &[b"abcdefgh"]);
        assert_eq!(out, format!("abcd{marker}\n"));
    }

    #[test]
    fn a_cut_never_splits_a_character() {
        let marker = std::str::from_utf8(CUT_MARKER).unwrap();
        // "é" is 2 bytes, "€" 3, "😀" 4: a bound of 5 falls inside each of them.
        for (line, kept) in [
            ("aaaéb\n", "aaaé"),
            ("aaaaé\n", "aaaa"),
            ("aaa€\n", "aaa"),
            ("aa€b\n", "aa€"),
            ("a😀x\n", "a😀"),
            ("aa😀\n", "aa"),
        ] {
            // Whole, and byte by byte (the cut then falls across the partial line).
            assert_eq!(
                run(5, &[line.as_bytes()]).0,
                format!("{kept}{marker}\n"),
                "{line}"
            );
            let bytes: Vec<&[u8]> = line.as_bytes().chunks(1).collect();
            assert_eq!(run(5, &bytes).0, format!("{kept}{marker}\n"), "{line}");
        }
        // Bytes that are not UTF-8 are not this rule's business.
        let mut a = LineAssembler::new(4);
        a.push(b"ab\xff\xfexy\n");
        assert_eq!(
            a.take(),
            [b"ab\xff\xfe".as_slice(), CUT_MARKER, b"\n"].concat()
        );
    }

    #[test]
    fn memory_stays_bounded_for_an_endless_line() {
        let mut a = LineAssembler::new(1024);
        let chunk = vec![b'x'; 4096];
        for _ in 0..1000 {
            a.push(&chunk);
            let _ = a.take();
            assert!(a.partial.len() <= 1024);
        }
    }
}
