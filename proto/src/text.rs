//! The one terminal-text sanitiser. Text from the enclave, the cluster, KMS or a file is
//! untrusted: before a human rendering shows it, escape sequences are removed and control
//! characters made visible, so it can neither move the cursor, recolour the screen, forge a
//! table row with a line feed nor reorder what is shown with a bidi control.

/// One line from untrusted bytes: invalid UTF-8 becomes U+FFFD; ESC sequences (CSI, OSC, DCS,
/// APC, PM and two-byte ones) are removed; `\r` keeps what a terminal would show (the text
/// after the last carriage return); backspace deletes the previous character; tabs become
/// four spaces; other control characters (C0, DEL, C1) and bidi controls (U+200E/F,
/// U+202A–E, U+2066–9) become U+FFFD so their presence stays visible. A trailing line end is
/// dropped; a line feed inside becomes U+FFFD.
pub fn sanitize_line(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    clean_line(text.trim_end_matches(['\n', '\r']))
}

/// Several lines: each line as [`sanitize_line`], line feeds kept.
pub fn sanitize(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for (i, line) in s.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&clean_line(line.trim_end_matches('\r')));
    }
    out
}

/// Is `c` a bidirectional formatting control (it reorders what is displayed)?
pub fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

fn clean_line(text: &str) -> String {
    let text = match text.rfind('\r') {
        Some(i) if i + 1 < text.len() => &text[i + 1..],
        Some(i) => &text[..i],
        None => text,
    };
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => match chars.peek() {
                Some('[') => {
                    chars.next();
                    // CSI: parameters and intermediates, then one final byte @..~.
                    for c in chars.by_ref() {
                        if ('@'..='~').contains(&c) {
                            break;
                        }
                    }
                }
                Some(']') | Some('P') | Some('_') | Some('^') => {
                    chars.next();
                    // OSC/DCS/APC/PM: up to BEL or ST (ESC \).
                    while let Some(c) = chars.next() {
                        if c == '\u{7}' {
                            break;
                        }
                        if c == '\u{1b}' && chars.peek() == Some(&'\\') {
                            chars.next();
                            break;
                        }
                    }
                }
                Some(_) => {
                    chars.next();
                }
                None => {}
            },
            '\u{8}' => {
                out.pop();
            }
            '\t' => out.push_str("    "),
            c if c.is_control() || is_bidi_control(c) => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// JSON for people and programs alike: `serde_json`'s pretty output, except that every
/// character a terminal would act on or reorder by — C0 (serde_json already escapes those),
/// DEL, C1 and the bidi controls of [`is_bidi_control`] — is written as a `\uXXXX` escape.
/// The document stays valid JSON and round-trips: a parser gets the exact string back, while
/// the bytes on stdout never carry the raw control (`ccctl -o json | less` or a CI log cannot
/// be reordered or forged by a name that holds U+202E).
pub fn to_json_pretty<T: serde::Serialize + ?Sized>(v: &T) -> serde_json::Result<String> {
    let mut out = Vec::with_capacity(128);
    let mut ser = serde_json::Serializer::with_formatter(&mut out, InertJson::default());
    v.serialize(&mut ser)?;
    // The serializer writes only what it was given as `&str` plus ASCII: valid UTF-8.
    Ok(String::from_utf8(out).expect("serde_json writes UTF-8"))
}

/// Does a JSON rendering write `c` as a `\uXXXX` escape (besides what JSON itself requires)?
fn json_escapes(c: char) -> bool {
    c.is_control() || is_bidi_control(c)
}

/// `serde_json::ser::PrettyFormatter` plus the escapes of [`to_json_pretty`].
#[derive(Default)]
struct InertJson(serde_json::ser::PrettyFormatter<'static>);

impl serde_json::ser::Formatter for InertJson {
    fn write_string_fragment<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        fragment: &str,
    ) -> std::io::Result<()> {
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            if json_escapes(c) {
                w.write_all(&fragment.as_bytes()[start..i])?;
                // Every such character is in the Basic Multilingual Plane: one escape.
                write!(w, "\\u{:04x}", c as u32)?;
                start = i + c.len_utf8();
            }
        }
        w.write_all(&fragment.as_bytes()[start..])
    }
    fn begin_array<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.begin_array(w)
    }
    fn end_array<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.end_array(w)
    }
    fn begin_array_value<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        self.0.begin_array_value(w, first)
    }
    fn end_array_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.end_array_value(w)
    }
    fn begin_object<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.begin_object(w)
    }
    fn end_object<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.end_object(w)
    }
    fn begin_object_key<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        self.0.begin_object_key(w, first)
    }
    fn begin_object_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.begin_object_value(w)
    }
    fn end_object_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.end_object_value(w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_sequences_are_removed_and_controls_made_visible() {
        assert_eq!(sanitize_line(b"a\x1b[31mred\x1b[0m b"), "ared b");
        assert_eq!(sanitize_line(b"x\x1b]0;title\x07y\x1b]8;;u\x1b\\z"), "xyz");
        assert_eq!(
            sanitize_line(b"bell\x07 nul\x00 del\x7f"),
            "bell\u{fffd} nul\u{fffd} del\u{fffd}"
        );
        assert_eq!(sanitize_line("c1\u{9b}2J".as_bytes()), "c1\u{fffd}2J");
        assert_eq!(
            sanitize_line(b"progress 10%\rprogress 99%\n"),
            "progress 99%"
        );
        assert_eq!(sanitize_line(b"abc\x08\x08d\te"), "ad    e");
        assert_eq!(sanitize_line(b"bad \xff utf8"), "bad \u{fffd} utf8");
    }

    #[test]
    fn bidi_controls_and_line_feeds_cannot_forge_rows() {
        assert_eq!(
            sanitize_line("name\u{202e}gnp.exe".as_bytes()),
            "name\u{fffd}gnp.exe"
        );
        assert_eq!(sanitize_line(b"a\nforged row"), "a\u{fffd}forged row");
        assert_eq!(sanitize("one\ntwo\x1b[2J\r\nthree"), "one\ntwo\nthree");
        assert_eq!(sanitize("a\u{2066}b"), "a\u{fffd}b");
    }

    /// Issue 16 #9: serde_json escapes C0 but writes U+202E, DEL and C1 raw.
    #[test]
    fn json_escapes_bidi_c0_c1_and_round_trips() {
        let v = serde_json::json!({
            "name\u{202e}": ["a\u{202e}b\nc\u{7f}d\u{9b}e\u{2066}f\u{200f}", "é ok ✓"],
            "n": 1
        });
        let s = to_json_pretty(&v).unwrap();
        for bad in ['\u{202e}', '\u{7f}', '\u{9b}', '\u{2066}', '\u{200f}'] {
            assert!(!s.contains(bad), "{s:?}");
        }
        assert!(
            s.contains("a\\u202eb\\nc\\u007fd\\u009be\\u2066f\\u200f"),
            "{s}"
        );
        assert!(s.contains("é ok ✓"), "{s}");
        let back: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(back, v);
        // Pretty layout as serde_json's own.
        assert_eq!(
            to_json_pretty(&serde_json::json!({"a": [1, 2]})).unwrap(),
            serde_json::to_string_pretty(&serde_json::json!({"a": [1, 2]})).unwrap()
        );
    }
}
