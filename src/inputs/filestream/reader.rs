//! Splitting a file's bytes into lines: the terminator (`line_terminator`, in the file's
//! encoding), the `message_max_bytes` cap, and decoding to UTF-8.
//!
//! The splitter is a push decoder in the tokio-codec sense: bytes go in in any chunks, a line
//! comes out only once its terminator has been read, and it resumes cleanly at any byte
//! boundary. Its memory is bounded by `message_max_bytes` plus one terminator: the rest of an
//! over-long line is counted (its bytes still move the offset) but not kept.
//!
//! Filebeat drops a line longer than 4 × `message_max_bytes` whole and cuts shorter ones;
//! here every over-long line is cut to `message_max_bytes` and flagged `truncated`, so no line
//! disappears without a trace.

use std::borrow::Cow;

use encoding_rs::Encoding;

use crate::config::filestream::LineTerminator;

/// A complete line.
#[derive(Debug, PartialEq, Eq)]
pub struct RawLine<'a> {
    /// The line's bytes without its terminator (and without the CR before an LF in `auto`).
    pub bytes: Cow<'a, [u8]>,
    /// Bytes the line occupied in the file, terminator included: what the offset moves by.
    pub raw_len: u64,
    /// The line was longer than `message_max_bytes` and was cut.
    pub truncated: bool,
}

/// Splits bytes into lines.
#[derive(Debug)]
pub struct LineSplitter {
    term: Vec<u8>,
    /// The terminator is searched for only at multiples of this from the line start
    /// (2 for UTF-16, so a byte pair across two characters never matches).
    unit: usize,
    strip_cr: bool,
    max: usize,
    /// The start of a line split across chunks (at most `max` bytes, plus a partial
    /// terminator kept in `tail`).
    pending: Vec<u8>,
    /// Bytes of the current line that did not fit in `pending`.
    dropped: u64,
    /// The last bytes seen that may be the start of a terminator across chunks.
    tail: Vec<u8>,
}

impl LineSplitter {
    /// A splitter for `term` in `encoding`, cutting lines at `max` bytes.
    pub fn new(term: LineTerminator, encoding: &'static Encoding, max: usize) -> Self {
        let text = match term {
            LineTerminator::Auto | LineTerminator::LineFeed => "\n",
            LineTerminator::VerticalTab => "\u{b}",
            LineTerminator::FormFeed => "\u{c}",
            LineTerminator::CarriageReturn => "\r",
            LineTerminator::CarriageReturnLineFeed => "\r\n",
            LineTerminator::NextLine => "\u{85}",
            LineTerminator::LineSeparator => "\u{2028}",
            LineTerminator::ParagraphSeparator => "\u{2029}",
            LineTerminator::NullTerminator => "\0",
        };
        let (bytes, unit) = encode_terminator(text, encoding);
        Self {
            term: bytes,
            unit,
            strip_cr: term == LineTerminator::Auto,
            max: max.max(1),
            pending: Vec::new(),
            dropped: 0,
            tail: Vec::new(),
        }
    }

    /// Bytes held for a line whose terminator has not come yet.
    pub fn buffered(&self) -> u64 {
        (self.pending.len() + self.tail.len()) as u64 + self.dropped
    }

    /// Feeds `data`; calls `emit` for every line it completes. Returns the bytes consumed
    /// (always all of `data`).
    pub fn feed(&mut self, data: &[u8], emit: &mut dyn FnMut(RawLine<'_>)) {
        let mut data = data;
        // A terminator may have started at the end of the previous chunk.
        if !self.tail.is_empty() {
            let need = self.term.len() - self.tail.len();
            let take = need.min(data.len());
            let mut probe = std::mem::take(&mut self.tail);
            probe.extend_from_slice(&data[..take]);
            if probe.len() < self.term.len() && self.term.starts_with(&probe) {
                self.tail = probe;
                return;
            }
            if probe == self.term {
                data = &data[take..];
                self.finish_pending(self.term.len() as u64, emit);
            } else {
                // Not a terminator: its first unit is line content, and everything after
                // it, this chunk included, is scanned again in order (a terminator may
                // start inside the kept bytes, and the bytes after it must stay after it).
                let keep_unit = self.unit.min(probe.len());
                self.push_pending(&probe[..keep_unit]);
                let mut again = probe[keep_unit..].to_vec();
                again.extend_from_slice(&data[take..]);
                self.feed(&again, emit);
                return;
            }
        }
        let mut start = 0;
        let mut i = 0;
        let first = self.term[0];
        while i < data.len() {
            // Only unit-aligned positions from the line's start may begin a terminator.
            let rel = (self.pending.len() as u64 + self.dropped + (i - start) as u64) as usize;
            let found = if self.unit == 1 {
                memchr::memchr(first, &data[i..]).map(|p| i + p)
            } else if rel % self.unit != 0 {
                i += 1;
                continue;
            } else if data[i] == first {
                Some(i)
            } else {
                i += self.unit;
                continue;
            };
            let Some(at) = found else {
                break;
            };
            let end = at + self.term.len();
            if end > data.len() {
                if data[at..] == self.term[..data.len() - at] {
                    self.push_pending(&data[start..at]);
                    self.tail = data[at..].to_vec();
                    return;
                }
                i = at + self.unit;
                continue;
            }
            if data[at..end] != self.term[..] {
                i = at + self.unit;
                continue;
            }
            if self.pending.is_empty() && self.dropped == 0 {
                let line = &data[start..at];
                let raw_len = (end - start) as u64;
                let line = if self.strip_cr {
                    line.strip_suffix(b"\r").unwrap_or(line)
                } else {
                    line
                };
                let truncated = line.len() > self.max;
                let line = &line[..line.len().min(self.max)];
                emit(RawLine {
                    bytes: Cow::Borrowed(line),
                    raw_len,
                    truncated,
                });
            } else {
                self.push_pending(&data[start..at]);
                self.finish_pending(self.term.len() as u64, emit);
            }
            start = end;
            i = end;
        }
        self.push_pending(&data[start..]);
    }

    fn push_pending(&mut self, bytes: &[u8]) {
        // One byte over the cap is kept so a CR before the LF can still be told apart from a
        // line that really is too long.
        let room = (self.max + 1).saturating_sub(self.pending.len());
        let keep = room.min(bytes.len());
        self.pending.extend_from_slice(&bytes[..keep]);
        self.dropped += (bytes.len() - keep) as u64;
    }

    fn finish_pending(&mut self, term_len: u64, emit: &mut dyn FnMut(RawLine<'_>)) {
        let raw_len = self.pending.len() as u64 + self.dropped + term_len;
        let mut line = std::mem::take(&mut self.pending);
        if self.strip_cr && self.dropped == 0 && line.last() == Some(&b'\r') {
            line.pop();
        }
        let truncated = self.dropped > 0 || line.len() > self.max;
        line.truncate(self.max);
        self.dropped = 0;
        emit(RawLine {
            bytes: Cow::Owned(line),
            raw_len,
            truncated,
        });
    }

    /// Emits the unterminated rest as a line (the file will not grow: it was removed or
    /// renamed and read to its end). Nothing is emitted when nothing is held.
    pub fn flush(&mut self, emit: &mut dyn FnMut(RawLine<'_>)) {
        if self.pending.is_empty() && self.dropped == 0 && self.tail.is_empty() {
            return;
        }
        let tail = std::mem::take(&mut self.tail);
        self.push_pending(&tail);
        let raw_len = self.pending.len() as u64 + self.dropped;
        let mut line = std::mem::take(&mut self.pending);
        let truncated = self.dropped > 0 || line.len() > self.max;
        line.truncate(self.max);
        self.dropped = 0;
        emit(RawLine {
            bytes: Cow::Owned(line),
            raw_len,
            truncated,
        });
    }

    /// Forgets any partial line (the file was truncated or reopened).
    pub fn reset(&mut self) {
        self.pending.clear();
        self.tail.clear();
        self.dropped = 0;
    }
}

fn encode_terminator(text: &str, encoding: &'static Encoding) -> (Vec<u8>, usize) {
    if encoding == encoding_rs::UTF_16LE {
        let b: Vec<u8> = text.encode_utf16().flat_map(u16::to_le_bytes).collect();
        return (b, 2);
    }
    if encoding == encoding_rs::UTF_16BE {
        let b: Vec<u8> = text.encode_utf16().flat_map(u16::to_be_bytes).collect();
        return (b, 2);
    }
    // encoding_rs encodes only into ASCII-compatible encodings, where these are one byte
    // each or (NEL, LS, PS) the UTF-8 bytes when the encoding is UTF-8.
    let (bytes, _, _) = encoding.encode(text);
    (bytes.into_owned(), 1)
}

/// Looks up an `encoding` setting: `plain`/`utf-8` and every WHATWG label encoding_rs knows
/// (`latin1`, `utf-16le`, `shift_jis`, `gbk`, `windows-1252`, …). Filebeat's `utf-16le-bom`
/// style names are accepted without the `-bom`.
pub fn encoding_for(name: &str) -> Option<&'static Encoding> {
    let n = name.trim().to_ascii_lowercase();
    match n.as_str() {
        "" | "plain" | "utf-8" | "utf8" => Some(encoding_rs::UTF_8),
        "utf-16be-bom" => Some(encoding_rs::UTF_16BE),
        "utf-16le-bom" => Some(encoding_rs::UTF_16LE),
        _ => Encoding::for_label(n.as_bytes()),
    }
}

/// Decodes a line to UTF-8 (invalid sequences become U+FFFD) and trims the BOM characters
/// Filebeat trims from every line.
pub fn decode<'a>(bytes: &'a [u8], encoding: &'static Encoding) -> Cow<'a, str> {
    let text = if encoding == encoding_rs::UTF_8 {
        // The validating check is several times faster than the lossy iterator, and
        // nearly every line is valid.
        match std::str::from_utf8(bytes) {
            Ok(s) => Cow::Borrowed(s),
            Err(_) => String::from_utf8_lossy(bytes),
        }
    } else {
        encoding.decode_without_bom_handling(bytes).0
    };
    if text.starts_with('\u{feff}') || text.ends_with('\u{feff}') {
        Cow::Owned(text.trim_matches('\u{feff}').to_string())
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn split(
        term: LineTerminator,
        enc: &'static Encoding,
        max: usize,
        chunks: &[&[u8]],
    ) -> (Vec<(Vec<u8>, u64, bool)>, u64) {
        let mut s = LineSplitter::new(term, enc, max);
        let mut out = Vec::new();
        for c in chunks {
            s.feed(c, &mut |l| {
                out.push((l.bytes.to_vec(), l.raw_len, l.truncated))
            });
        }
        (out, s.buffered())
    }

    #[test]
    fn lf_crlf_and_a_held_partial_line() {
        let (lines, held) = split(
            LineTerminator::Auto,
            encoding_rs::UTF_8,
            100,
            &[b"a\r\nbb\n", b"c", b"c\ndd"],
        );
        assert_eq!(
            lines,
            vec![
                (b"a".to_vec(), 3, false),
                (b"bb".to_vec(), 3, false),
                (b"cc".to_vec(), 3, false)
            ]
        );
        assert_eq!(held, 2, "the line without its newline must wait");
    }

    #[test]
    fn an_over_long_line_is_cut_flagged_and_its_bytes_counted() {
        let long = [b'x'; 50];
        let (lines, held) = split(
            LineTerminator::Auto,
            encoding_rs::UTF_8,
            10,
            &[&long[..20], &long[20..], b"\nok\n"],
        );
        assert_eq!(lines[0], (vec![b'x'; 10], 51, true));
        assert_eq!(lines[1], (b"ok".to_vec(), 3, false));
        assert_eq!(held, 0);
    }

    #[test]
    fn multi_byte_terminators_across_chunks() {
        let (lines, _) = split(
            LineTerminator::CarriageReturnLineFeed,
            encoding_rs::UTF_8,
            100,
            &[b"a\r", b"\nb\rc\r", b"\n"],
        );
        assert_eq!(
            lines,
            vec![(b"a".to_vec(), 3, false), (b"b\rc".to_vec(), 5, false)]
        );
    }

    #[test]
    fn utf16_lines_split_on_aligned_newlines_only() {
        // U+0A41 in UTF-16LE is 41 0A: with the next char's 00 it looks like "\n\0" at an
        // odd offset, which must not split.
        let mut data: Vec<u8> = "x\u{a41}"
            .encode_utf16()
            .flat_map(u16::to_le_bytes)
            .collect();
        data.extend("\u{0}y\n".encode_utf16().flat_map(u16::to_le_bytes));
        let (lines, _) = split(
            LineTerminator::Auto,
            encoding_rs::UTF_16LE,
            100,
            &[&data[..3], &data[3..]],
        );
        assert_eq!(lines.len(), 1);
        assert_eq!(decode(&lines[0].0, encoding_rs::UTF_16LE), "x\u{a41}\u{0}y");
        assert_eq!(lines[0].1, data.len() as u64);
    }

    #[test]
    fn invalid_utf8_is_replaced_and_boms_trimmed() {
        assert_eq!(decode(b"a\xffb", encoding_rs::UTF_8), "a\u{fffd}b");
        assert_eq!(decode("\u{feff}x".as_bytes(), encoding_rs::UTF_8), "x");
        assert_eq!(
            decode(b"caf\xe9", encoding_for("latin1").unwrap()),
            "caf\u{e9}"
        );
        assert!(encoding_for("klingon").is_none());
    }

    proptest! {
        /// The fuzzer's find: a byte that starts the terminator, then the same byte again at
        /// the next chunk, was moved after the byte that followed it.
        #[test]
        fn a_false_terminator_start_across_chunks_keeps_the_byte_order(_x in 0u8..1) {
            let data: &[u8] = &[0, 0x1c, 0xE2, 0xE2, 0xC3, 0x60, b'\n', 0xE2, 0x80, 0xA8, b'z'];
            let whole = split(LineTerminator::LineSeparator, encoding_rs::UTF_8, 64, &[data]);
            let ones: Vec<&[u8]> = data.chunks(1).collect();
            let parts = split(LineTerminator::LineSeparator, encoding_rs::UTF_8, 64, &ones);
            prop_assert_eq!(&whole, &parts);
            prop_assert_eq!(&whole.0[0].0[..], &data[..7]);
        }

        /// Whatever the chunking, the lines and the bytes they cover are the same, the
        /// offsets add up to the input, and nothing longer than the cap comes out.
        #[test]
        fn chunking_does_not_change_the_lines(
            data in proptest::collection::vec(prop_oneof![Just(b'\n'), Just(b'\r'), Just(b'a'), Just(0xE2), Just(0x80), Just(0xA8), any::<u8>()], 0..300),
            cuts in proptest::collection::vec(0usize..300, 0..8),
            max in 1usize..40,
            which in 0u8..3,
        ) {
            // One-, two- and three-byte terminators (U+2028 is E2 80 A8): a partial one at a
            // chunk's end must neither split nor reorder the bytes around it.
            let term = match which {
                0 => LineTerminator::Auto,
                1 => LineTerminator::CarriageReturnLineFeed,
                _ => LineTerminator::LineSeparator,
            };
            let whole = split(term, encoding_rs::UTF_8, max, &[&data]);
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(data.len())).collect();
            cuts.sort_unstable();
            let mut chunks: Vec<&[u8]> = Vec::new();
            let mut last = 0;
            for c in cuts { chunks.push(&data[last..c]); last = c; }
            chunks.push(&data[last..]);
            let parts = split(term, encoding_rs::UTF_8, max, &chunks);
            prop_assert_eq!(&whole, &parts);
            let covered: u64 = whole.0.iter().map(|l| l.1).sum::<u64>() + whole.1;
            prop_assert_eq!(covered, data.len() as u64);
            for l in &whole.0 { prop_assert!(l.0.len() <= max); }
        }
    }
}
