//! The log panel's pipeline: raw bytes from the pod log (untrusted) → one clean line
//! (terminal control sequences neutralised) → parsed level/target/enclave flag → a bounded
//! ring. Filtering and search read the ring without copying it.

use std::collections::VecDeque;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Trace => "TRACE",
            Level::Debug => "DEBUG",
            Level::Info => "INFO",
            Level::Warn => "WARN",
            Level::Error => "ERROR",
        }
    }
    fn parse(s: &str) -> Option<Level> {
        Some(match s {
            "TRACE" | "trace" => Level::Trace,
            "DEBUG" | "debug" => Level::Debug,
            "INFO" | "info" => Level::Info,
            "WARN" | "warn" | "WARNING" => Level::Warn,
            "ERROR" | "error" | "FATAL:" => Level::Error,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone)]
pub struct LogLine {
    pub text: String,
    pub level: Option<Level>,
    /// The tracing target (`containment_chamber_enclave::unseal`), when the line has one.
    pub target: Option<String>,
    /// An event of the enclave (its target, or enclave fields such as `enclave_id=`,
    /// `attestation_*`), as opposed to the parent's own lines.
    pub enclave: bool,
}

/// Make untrusted bytes safe to draw: the one sanitiser, `cc_proto::text::sanitize_line`
/// (escape sequences removed, `\r` keeps what a terminal shows, backspace erases, tabs become
/// spaces, other controls and bidi controls become U+FFFD, invalid UTF-8 becomes U+FFFD).
pub fn sanitize(raw: &[u8]) -> String {
    cc_proto::text::sanitize_line(raw)
}

/// Level, target and enclave flag of a tracing-subscriber line
/// (`2026-11-25T10:00:00.000Z  INFO target: message k=v`) or a JSON line
/// (`{"level":"INFO","target":"...",...}`); other lines keep `None`.
pub fn parse(text: String) -> LogLine {
    let mut level = None;
    let mut target = None;
    let trimmed = text.trim_start();
    if trimmed.starts_with('{') {
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(trimmed) {
            level = v["level"].as_str().and_then(Level::parse);
            target = v["target"].as_str().map(str::to_owned);
        }
    } else {
        let mut words = trimmed.split_whitespace();
        let first = words.next().unwrap_or_default();
        let (lvl, next) = match Level::parse(first) {
            Some(l) => (Some(l), words.next()),
            None => (words.next().and_then(Level::parse), words.next()),
        };
        level = lvl;
        if level.is_some()
            && let Some(t) = next.and_then(|t| t.strip_suffix(':'))
            && t.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
        {
            target = Some(t.to_owned());
        }
    }
    let enclave = target.as_deref().is_some_and(|t| {
        t == "containment_chamber_enclave" || t.starts_with("containment_chamber_enclave::")
    }) || text.contains("enclave_id")
        || text.contains("attestation_");
    LogLine {
        text,
        level,
        target,
        enclave,
    }
}

/// What the panel shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Lines at or above this level (lines without a level pass only when `None`).
    pub min_level: Option<Level>,
    /// Substring of the target.
    pub target: Option<String>,
    pub enclave_only: bool,
}

impl Filter {
    pub fn passes(&self, l: &LogLine) -> bool {
        if let Some(min) = self.min_level
            && l.level.is_none_or(|lv| lv < min)
        {
            return false;
        }
        if let Some(t) = &self.target
            && !l
                .target
                .as_deref()
                .is_some_and(|lt| lt.contains(t.as_str()))
        {
            return false;
        }
        !self.enclave_only || l.enclave
    }
}

/// A ring of the last `cap` lines.
#[derive(Debug)]
pub struct LogBuffer {
    lines: VecDeque<LogLine>,
    cap: usize,
    /// Lines ever pushed (the ring keeps the last `cap`).
    pub total: u64,
}

impl LogBuffer {
    pub fn new(cap: usize) -> Self {
        LogBuffer {
            lines: VecDeque::with_capacity(cap.min(1 << 16)),
            cap: cap.max(1),
            total: 0,
        }
    }

    pub fn push_raw(&mut self, raw: &[u8]) {
        self.push(parse(sanitize(raw)));
    }

    pub fn push(&mut self, line: LogLine) {
        if self.lines.len() == self.cap {
            self.lines.pop_front();
        }
        self.lines.push_back(line);
        self.total += 1;
    }

    pub fn len(&self) -> usize {
        self.lines.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    pub fn capacity(&self) -> usize {
        self.cap
    }

    pub fn get(&self, i: usize) -> Option<&LogLine> {
        self.lines.get(i)
    }

    /// Indices of lines passing `f`, newest first, skipping the first `skip` of them.
    pub fn newest<'a>(&'a self, f: &'a Filter, skip: usize) -> impl Iterator<Item = usize> + 'a {
        (0..self.lines.len())
            .rev()
            .filter(move |i| f.passes(&self.lines[*i]))
            .skip(skip)
    }

    /// The next line (older than `before`, or the newest) at `Error` level passing `f`.
    pub fn previous_error(&self, f: &Filter, before: Option<usize>) -> Option<usize> {
        let end = before.unwrap_or(self.lines.len());
        (0..end).rev().find(|i| {
            let l = &self.lines[*i];
            l.level == Some(Level::Error) && f.passes(l)
        })
    }

    /// The next line older than `before` containing `needle` and passing `f`.
    pub fn previous_match(&self, f: &Filter, needle: &str, before: Option<usize>) -> Option<usize> {
        if needle.is_empty() {
            return None;
        }
        let end = before.unwrap_or(self.lines.len());
        (0..end)
            .rev()
            .find(|i| self.lines[*i].text.contains(needle) && f.passes(&self.lines[*i]))
    }

    /// How many lines newer than `index` pass `f` (the scroll offset that shows `index` at
    /// the bottom).
    pub fn offset_of(&self, f: &Filter, index: usize) -> usize {
        (index + 1..self.lines.len())
            .filter(|i| f.passes(&self.lines[*i]))
            .count()
    }

    /// Targets seen in the buffer, sorted.
    pub fn targets(&self) -> Vec<String> {
        let mut t: Vec<String> = self
            .lines
            .iter()
            .filter_map(|l| l.target.clone())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        t.truncate(64);
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_sequences_and_controls_are_neutralised() {
        // Colour (CSI), title change (OSC with BEL and with ST), cursor moves, a bell.
        let raw = b"\x1b[31mred\x1b[0m \x1b]0;pwned\x07title \x1b]8;;http://x\x1b\\link\x1b[2J\x1b[H\x07end";
        assert_eq!(sanitize(raw), "red title link\u{fffd}end");
    }

    #[test]
    fn carriage_returns_backspaces_tabs_and_bad_utf8() {
        assert_eq!(sanitize(b"progress 10%\rprogress 99%\n"), "progress 99%");
        assert_eq!(sanitize(b"abc\x08\x08X"), "aX");
        assert_eq!(sanitize(b"a\tb"), "a    b");
        assert_eq!(sanitize(b"ok \xff\xfe done"), "ok \u{fffd}\u{fffd} done");
        assert_eq!(sanitize(b"nul\x00del\x7f"), "nul\u{fffd}del\u{fffd}");
        // A lone ESC at the end, an unterminated OSC: nothing of them reaches the screen.
        assert_eq!(sanitize(b"x\x1b"), "x");
        assert_eq!(sanitize(b"x\x1b]0;never ends"), "x");
        // C1 control (U+009B, the 8-bit CSI) is not passed through either.
        assert_eq!(sanitize("a\u{9b}31mb".as_bytes()), "a\u{fffd}31mb");
    }

    #[test]
    fn tracing_and_json_lines_are_parsed() {
        let l = parse(
            "2026-11-25T22:13:58.147648Z  WARN containment_chamber_enclave::unseal: share not released holder=a".into(),
        );
        assert_eq!(l.level, Some(Level::Warn));
        assert_eq!(
            l.target.as_deref(),
            Some("containment_chamber_enclave::unseal")
        );
        assert!(l.enclave);
        let l = parse(
            "2026-11-25T22:13:59Z  INFO containment_chamber_enclave_proxy: shutting down".into(),
        );
        assert!(!l.enclave, "the proxy is the parent");
        let l = parse(r#"{"level":"ERROR","target":"x::y","fields":{"enclave_id":"i-1"}}"#.into());
        assert_eq!(l.level, Some(Level::Error));
        assert!(l.enclave);
        let l = parse("FATAL: PRODUCTION=true and ENCLAVE_DEBUG=1".into());
        assert_eq!(l.level, Some(Level::Error));
        assert_eq!(parse("plain text".into()).level, None);
    }

    #[test]
    fn the_ring_is_bounded_and_filters_search_and_jump() {
        let mut b = LogBuffer::new(3);
        for l in [
            "2026-01-01T00:00:00Z ERROR a::b: first",
            "2026-01-01T00:00:00Z  INFO a::b: hello",
            "2026-01-01T00:00:00Z ERROR c::d: second",
            "2026-01-01T00:00:00Z  INFO c::d: world",
        ] {
            b.push_raw(l.as_bytes());
        }
        assert_eq!((b.len(), b.total), (3, 4));
        let all = Filter::default();
        assert_eq!(b.newest(&all, 0).collect::<Vec<_>>(), [2, 1, 0]);
        let errors = Filter {
            min_level: Some(Level::Error),
            ..Filter::default()
        };
        assert_eq!(b.newest(&errors, 0).collect::<Vec<_>>(), [1]);
        assert_eq!(b.previous_error(&all, None), Some(1));
        assert_eq!(b.previous_error(&all, Some(1)), None);
        assert_eq!(b.previous_match(&all, "hello", None), Some(0));
        let target = Filter {
            target: Some("c::".into()),
            ..Filter::default()
        };
        assert_eq!(b.newest(&target, 0).count(), 2);
        assert_eq!(b.offset_of(&all, 0), 2);
        assert_eq!(b.targets(), ["a::b", "c::d"]);
    }
}
