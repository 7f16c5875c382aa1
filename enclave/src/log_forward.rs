//! Logs over vsock: tracing-subscriber's fmt layer writes into tracing-appender's lossy,
//! bounded non-blocking writer, whose worker thread sends each event to the parent's
//! `vsock-stdout` (vsock://3:7000 in production).
//!
//! Emitting an event only enqueues it; it never waits for the parent. While the connection is
//! down or backing off (100 ms → 5 s, ±20 %), events are dropped and counted; a full buffer
//! drops and counts too (tracing-appender's counter). `delivered + dropped == emitted` holds
//! exactly. The `WorkerGuard` lives as long as the server, so buffered events are flushed on
//! shutdown.

use std::io::{self, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cc_proto::{Address, Backoff};
use tokio::io::AsyncWriteExt;
use tracing_appender::non_blocking::{ErrorCounter, NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Counters shared between the sender thread and `/status`/`/metrics`.
#[derive(Debug, Default)]
pub struct LogStats {
    pub delivered: AtomicU64,
    /// Dropped by the sender (disconnected, backing off, write failed).
    pub dropped_disconnected: AtomicU64,
    pub connected: AtomicBool,
}

/// The sender half: runs on tracing-appender's worker thread. Events are gathered into one
/// buffer and written when the worker flushes (after each batch it drains) or at 64 KiB, so a
/// busy server sends few large writes instead of one syscall per event.
pub struct VsockWriter {
    target: Address,
    rt: tokio::runtime::Runtime,
    conn: Option<cc_proto::Stream>,
    backoff: Backoff,
    next_attempt: Instant,
    stats: Arc<LogStats>,
    pending: Vec<u8>,
    pending_events: u64,
}

const SEND_AT: usize = 64 * 1024;

impl VsockWriter {
    pub fn new(target: Address, stats: Arc<LogStats>) -> io::Result<Self> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        Ok(VsockWriter {
            target,
            rt,
            conn: None,
            backoff: Backoff::default(),
            next_attempt: Instant::now(),
            stats,
            pending: Vec::with_capacity(SEND_AT + 4096),
            pending_events: 0,
        })
    }

    fn disconnected(&mut self) {
        self.conn = None;
        self.stats.connected.store(false, Ordering::Relaxed);
        self.next_attempt = Instant::now() + self.backoff.next_delay();
    }

    /// Connected now, or (if the backoff allows) after one bounded attempt.
    fn ensure_connected(&mut self) -> bool {
        if self.conn.is_none() && Instant::now() >= self.next_attempt {
            let target = &self.target;
            // The timer must be created inside the runtime.
            let attempt = self.rt.block_on(async {
                tokio::time::timeout(CONNECT_TIMEOUT, cc_proto::connect(target)).await
            });
            match attempt {
                Ok(Ok(s)) => {
                    self.conn = Some(s);
                    self.backoff.reset();
                    self.stats.connected.store(true, Ordering::Relaxed);
                }
                _ => self.disconnected(),
            }
        }
        self.conn.is_some()
    }

    /// Write the gathered events; on failure they are all counted as dropped.
    fn send_pending(&mut self) {
        if self.pending_events == 0 {
            return;
        }
        let ok = match self.conn.as_mut() {
            Some(c) => {
                let buf = &self.pending;
                self.rt
                    .block_on(async {
                        c.write_all(buf).await?;
                        c.flush().await
                    })
                    .is_ok()
            }
            None => false,
        };
        let counter = if ok {
            &self.stats.delivered
        } else {
            &self.stats.dropped_disconnected
        };
        counter.fetch_add(self.pending_events, Ordering::Relaxed);
        self.pending.clear();
        self.pending_events = 0;
        if !ok && self.conn.is_some() {
            self.disconnected();
        }
    }
}

impl Write for VsockWriter {
    /// One call per event (the worker writes each queued event with `write_all`).
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.ensure_connected() {
            self.pending.extend_from_slice(buf);
            self.pending_events += 1;
            if self.pending.len() >= SEND_AT {
                self.send_pending();
            }
        } else {
            self.stats
                .dropped_disconnected
                .fetch_add(1, Ordering::Relaxed);
        }
        // Always "written": a lost event is counted, never retried or blocked on.
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send_pending();
        Ok(())
    }
}

impl Drop for VsockWriter {
    fn drop(&mut self) {
        self.send_pending();
    }
}

/// The running log pipeline. Keep it alive for the life of the server.
pub struct LogSink {
    _guard: WorkerGuard,
    pub stats: Arc<LogStats>,
    errors: ErrorCounter,
    pub target: Address,
}

impl LogSink {
    /// All events dropped so far, whatever the reason.
    pub fn dropped_total(&self) -> u64 {
        self.stats.dropped_disconnected.load(Ordering::Relaxed) + self.errors.dropped_lines() as u64
    }

    pub fn delivered_total(&self) -> u64 {
        self.stats.delivered.load(Ordering::Relaxed)
    }

    pub fn connected(&self) -> bool {
        self.stats.connected.load(Ordering::Relaxed)
    }

    /// Flush (drop the guard: the worker writes what is queued) and return the final
    /// `(delivered, dropped)`. The guard waits at most about a second for the worker; counts
    /// are read once they stop moving, bounded by `settle`.
    pub fn finish(self, settle: Duration) -> (u64, u64) {
        let LogSink {
            _guard,
            stats,
            errors,
            ..
        } = self;
        drop(_guard);
        let count = || {
            (
                stats.delivered.load(Ordering::Relaxed),
                stats.dropped_disconnected.load(Ordering::Relaxed) + errors.dropped_lines() as u64,
            )
        };
        let start = Instant::now();
        let mut last = count();
        while start.elapsed() < settle {
            std::thread::sleep(Duration::from_millis(20));
            let now = count();
            if now == last {
                break;
            }
            last = now;
        }
        last
    }
}

/// Build the pipeline to `target` with room for `buffer` events.
pub fn pipeline(
    target: Address,
    buffer: usize,
) -> io::Result<(tracing_appender::non_blocking::NonBlocking, LogSink)> {
    let stats = Arc::new(LogStats::default());
    let writer = VsockWriter::new(target.clone(), stats.clone())?;
    let (nb, guard) = NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(buffer)
        .thread_name("log-sender")
        .finish(writer);
    let errors = nb.error_counter();
    Ok((
        nb,
        LogSink {
            _guard: guard,
            stats,
            errors,
            target,
        },
    ))
}

/// Install the global subscriber: fmt format without colours (the parent's format), to the
/// vsock pipeline and, if asked, to stdout as well.
pub fn init(cfg: &crate::config::Logs) -> io::Result<LogSink> {
    let (nb, sink) = pipeline(cfg.target.clone(), cfg.buffer)?;
    let filter = EnvFilter::try_new(&cfg.level).unwrap_or_else(|_| EnvFilter::new("info"));
    let vsock_layer = tracing_subscriber::fmt::layer()
        .with_ansi(false)
        .with_writer(nb);
    let stdout_layer = cfg.stdout.then(|| {
        tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .with_writer(io::stdout)
    });
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(vsock_layer)
        .with(stdout_layer)
        .try_init();
    Ok(sink)
}
