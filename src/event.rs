//! Events and their encoding.
//!
//! An event travels through skidder as the bytes of the libbeat document, encoded once by
//! the input and never re-encoded on the way to the wire:
//!
//! ```text
//! {"@timestamp":"2024-01-02T03:04:05.678Z","@metadata":{"beat":"skidder","type":"_doc","version":"0.1.0"},<fields>}
//! ```
//!
//! The queued unit is [`Event`]: those bytes plus the id of the input that made them, so a
//! relay (the future Lumberjack receiver input) can pass already-encoded events through
//! unchanged. All JSON string rules (libbeat's: U+2028/U+2029 always escaped, `<>&` when
//! `escape_html`, control bytes as `\u00XX`, NaN/Inf as `null`) live in [`BeatsFormatter`].

use std::io;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::{BufMut, Bytes, BytesMut};
use serde::Serialize;

use crate::pipeline::packed::Packed;
use serde_json::ser::{CharEscape, Formatter};

/// Index of an input in the pipeline, assigned at start-up.
pub type InputId = u32;

/// The unit the queue holds: one encoded event and the input it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// The input that published the event; its acknowledgement goes back there.
    pub input: InputId,
    /// The encoded document, without a trailing newline. Empty while the event is part of
    /// a packed window (`packed`).
    pub bytes: Bytes,
    /// The packed window (docs/disk-queue.md §11) this event was read back in, until it is
    /// taken apart ([`crate::pipeline::Batch`] does that for every output that does not
    /// send whole windows).
    pub packed: Option<Packed>,
}

impl Event {
    /// An event of `input` holding `bytes`.
    pub fn new(input: InputId, bytes: Bytes) -> Self {
        Self {
            input,
            bytes,
            packed: None,
        }
    }
}

/// What `@metadata` says about the shipper.
#[derive(Clone, Debug)]
pub struct EventMeta {
    /// `@metadata.beat`: the output's `index` setting, default `skidder`.
    pub beat: String,
    /// `@metadata.version`: the skidder version.
    pub version: String,
    /// Escape `<`, `>` and `&` in strings (the output's `escape_html`).
    pub escape_html: bool,
}

impl Default for EventMeta {
    fn default() -> Self {
        Self {
            beat: "skidder".to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            escape_html: false,
        }
    }
}

/// The serde_json formatter that applies libbeat's string rules.
#[derive(Clone, Copy, Debug, Default)]
pub struct BeatsFormatter {
    /// Escape `<`, `>` and `&` as `\u003c`, `\u003e`, `\u0026`.
    pub escape_html: bool,
}

impl Formatter for BeatsFormatter {
    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        let bytes = fragment.as_bytes();
        // Most fragments hold nothing to escape: one vectorised scan, then one copy.
        let attention = if self.escape_html {
            memchr::memchr3(b'<', b'>', b'&', bytes).is_some()
                || memchr::memchr(0xE2, bytes).is_some()
        } else {
            memchr::memchr(0xE2, bytes).is_some()
        };
        if !attention {
            return writer.write_all(bytes);
        }
        let mut start = 0;
        let mut i = 0;
        while i < bytes.len() {
            // U+2028/U+2029 are E2 80 A8 / E2 80 A9 in UTF-8; Go's encoder escapes them so
            // the JSON stays valid JavaScript, and libbeat inherits that.
            let escape: Option<(&[u8], usize)> = match bytes[i] {
                b'<' if self.escape_html => Some((b"\\u003c", 1)),
                b'>' if self.escape_html => Some((b"\\u003e", 1)),
                b'&' if self.escape_html => Some((b"\\u0026", 1)),
                0xE2 if bytes.get(i + 1) == Some(&0x80) && bytes.get(i + 2) == Some(&0xA8) => {
                    Some((b"\\u2028", 3))
                }
                0xE2 if bytes.get(i + 1) == Some(&0x80) && bytes.get(i + 2) == Some(&0xA9) => {
                    Some((b"\\u2029", 3))
                }
                _ => None,
            };
            match escape {
                Some((text, width)) => {
                    writer.write_all(&bytes[start..i])?;
                    writer.write_all(text)?;
                    i += width;
                    start = i;
                }
                None => i += 1,
            }
        }
        writer.write_all(&bytes[start..])
    }

    fn write_char_escape<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        char_escape: CharEscape,
    ) -> io::Result<()> {
        // Go writes backspace and form feed as \u0008 and \u000c, not \b and \f.
        match char_escape {
            CharEscape::Quote => writer.write_all(b"\\\""),
            CharEscape::ReverseSolidus => writer.write_all(b"\\\\"),
            CharEscape::LineFeed => writer.write_all(b"\\n"),
            CharEscape::CarriageReturn => writer.write_all(b"\\r"),
            CharEscape::Tab => writer.write_all(b"\\t"),
            CharEscape::Backspace => writer.write_all(b"\\u0008"),
            CharEscape::FormFeed => writer.write_all(b"\\u000c"),
            CharEscape::Solidus => writer.write_all(b"/"),
            CharEscape::AsciiControl(byte) => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                writer.write_all(&[
                    b'\\',
                    b'u',
                    b'0',
                    b'0',
                    HEX[usize::from(byte >> 4)],
                    HEX[usize::from(byte & 0xF)],
                ])
            }
        }
    }
}

/// Writes `value` as JSON with libbeat's rules into `out`.
///
/// # Errors
/// Only a value whose `Serialize` impl fails (a map with non-string keys); writing to
/// memory itself cannot fail.
pub fn write_json<T: Serialize + ?Sized>(
    out: &mut BytesMut,
    value: &T,
    escape_html: bool,
) -> Result<(), serde_json::Error> {
    let mut ser =
        serde_json::Serializer::with_formatter(out.writer(), BeatsFormatter { escape_html });
    value.serialize(&mut ser)
}

/// What a byte needs in a JSON string under libbeat's rules: 0 = copied as is; 1 = a
/// two-character escape or `\u00XX` (control bytes, `"`, `\\`); 2 = `<`, `>`, `&`
/// (escaped only with `escape_html`); 3 = 0xE2, the lead byte of U+2028/U+2029.
static ESCAPE_CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 0x20 {
        t[b] = 1;
        b += 1;
    }
    t[b'"' as usize] = 1;
    t[b'\\' as usize] = 1;
    t[b'<' as usize] = 2;
    t[b'>' as usize] = 2;
    t[b'&' as usize] = 2;
    t[0xE2] = 3;
    t
};

/// Each byte of a `u64` set to `b`.
#[cfg(not(target_arch = "x86_64"))]
const fn splat(b: u8) -> u64 {
    u64::from_le_bytes([b; 8])
}

/// The top bit of each byte of `x` that is zero, and no other bit (exact per byte: no
/// carry crosses a byte, unlike the shorter "has a zero byte" test).
#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
fn zero_bytes(x: u64) -> u64 {
    let low7 = splat(0x7F);
    !(((x & low7) + low7) | x | low7)
}

/// Bit k set when byte k of the 8 little-endian bytes `w` may need escaping.
#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
fn escape_mask8(w: u64, html: bool) -> u32 {
    let mut m = zero_bytes(w & splat(0xE0))
        | zero_bytes(w ^ splat(b'"'))
        | zero_bytes(w ^ splat(b'\\'))
        | zero_bytes(w ^ splat(0xE2));
    if html {
        m |=
            zero_bytes(w ^ splat(b'<')) | zero_bytes(w ^ splat(b'>')) | zero_bytes(w ^ splat(b'&'));
    }
    // Gather the top bit of each byte into bits 0..8.
    ((m >> 7).wrapping_mul(0x0102_0408_1020_4080) >> 56) as u32
}

/// Bit k set when `block[k]` may need escaping: a control byte, `"`, `\\`, 0xE2, and
/// with `html` also `<`, `>`, `&`. Exact per byte.
#[inline(always)]
fn escape_mask(block: &[u8; 16], html: bool) -> u32 {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::*;
        // SAFETY: SSE2 is part of the x86_64 baseline, so these intrinsics are always
        // available; the load is unaligned and reads exactly the 16 bytes of `block`.
        unsafe {
            let v = _mm_loadu_si128(block.as_ptr().cast());
            let eq = |b: u8| _mm_cmpeq_epi8(v, _mm_set1_epi8(b as i8));
            // v <= 0x1F (unsigned) exactly when max(v, 0x1F) == 0x1F.
            let low = _mm_set1_epi8(0x1F);
            let control = _mm_cmpeq_epi8(_mm_max_epu8(v, low), low);
            let mut m = _mm_or_si128(
                _mm_or_si128(control, eq(b'"')),
                _mm_or_si128(eq(b'\\'), eq(0xE2)),
            );
            if html {
                m = _mm_or_si128(m, _mm_or_si128(_mm_or_si128(eq(b'<'), eq(b'>')), eq(b'&')));
            }
            _mm_movemask_epi8(m) as u32
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let mut lo = [0u8; 8];
        let mut hi = [0u8; 8];
        lo.copy_from_slice(&block[..8]);
        hi.copy_from_slice(&block[8..]);
        escape_mask8(u64::from_le_bytes(lo), html) | escape_mask8(u64::from_le_bytes(hi), html) << 8
    }
}

/// The escape for the byte at `bytes[i]`, if it needs one: (text buffer, its length,
/// bytes of input it replaces).
#[inline(always)]
fn escape_at(bytes: &[u8], i: usize, html: bool) -> Option<([u8; 6], usize, usize)> {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let b = bytes[i];
    let two = |c: u8| Some(([b'\\', c, 0, 0, 0, 0], 2, 1));
    let u = |h: &[u8; 4], width: usize| Some(([b'\\', b'u', h[0], h[1], h[2], h[3]], 6, width));
    match ESCAPE_CLASS[usize::from(b)] {
        1 => match b {
            b'"' => two(b'"'),
            b'\\' => two(b'\\'),
            b'\n' => two(b'n'),
            b'\r' => two(b'r'),
            b'\t' => two(b't'),
            // Other control bytes, backspace and form feed included (as Go writes them).
            _ => u(
                &[
                    b'0',
                    b'0',
                    HEX[usize::from(b >> 4)],
                    HEX[usize::from(b & 0xF)],
                ],
                1,
            ),
        },
        2 if html => match b {
            b'<' => u(b"003c", 1),
            b'>' => u(b"003e", 1),
            _ => u(b"0026", 1),
        },
        // U+2028/U+2029 are E2 80 A8 / E2 80 A9 in UTF-8; Go's encoder escapes them so the
        // JSON stays valid JavaScript, and libbeat inherits that.
        3 if bytes.get(i + 1) == Some(&0x80) => match bytes.get(i + 2) {
            Some(0xA8) => u(b"2028", 3),
            Some(0xA9) => u(b"2029", 3),
            _ => None,
        },
        _ => None,
    }
}

/// The 16 bytes at `bytes[i..i + 16]`, if there are that many.
#[inline(always)]
fn block_at(bytes: &[u8], i: usize) -> Option<&[u8; 16]> {
    bytes.get(i..i.checked_add(16)?)?.try_into().ok()
}

/// Writes `s` as a JSON string (quotes included) with libbeat's rules, byte for byte what
/// [`write_json`] writes for a `&str`: serde_json's escapes, Go's `\u0008`/`\u000c` for
/// backspace and form feed, U+2028/U+2029 always and `<>&` with `escape_html` as
/// `\uXXXX`.
///
/// Sixteen bytes are classified at a time (SSE2 on x86_64, two 8-byte words elsewhere).
/// A first pass counts the bytes that may need an escape, which bounds the output (at most
/// 6 bytes for each); the output is sized once, and the second pass stores whole blocks
/// and fixed-size escapes into it, jumping from one flagged byte to the next. A line full
/// of quotes (a JSON document sent as plain text) then costs a few instructions per
/// escape instead of two buffer appends. Nothing is allocated beyond `out`'s growth.
pub fn write_json_str(out: &mut BytesMut, s: &str, escape_html: bool) {
    let bytes = s.as_bytes();
    // Keys and short values (a decoded line's keys, nine or so per event) are nearly always
    // clean: one look-up per byte and one copy, without the sizing pass below.
    if bytes.len() < 16 && bytes.iter().all(|b| ESCAPE_CLASS[usize::from(*b)] == 0) {
        out.reserve(bytes.len() + 2);
        out.put_u8(b'"');
        out.put_slice(bytes);
        out.put_u8(b'"');
        return;
    }
    let mut flagged = 0usize;
    let mut i = 0;
    while let Some(block) = block_at(bytes, i) {
        flagged += escape_mask(block, escape_html).count_ones() as usize;
        i += 16;
    }
    flagged += bytes[i..]
        .iter()
        .filter(|b| ESCAPE_CLASS[usize::from(**b)] != 0)
        .count();
    // Quotes, every byte once, and 5 more for each byte that may become `\uXXXX`; a
    // 3-byte U+2028 becomes 6 bytes, within its lead byte's share.
    let bound = bytes.len() + 2 + 5 * flagged;
    let start = out.len();
    out.resize(start + bound, 0);
    let dst = &mut out[start..];
    dst[0] = b'"';
    let mut j = 1;
    let mut i = 0;
    // Every position written below is under `bound`: a whole block is stored only while
    // at least 16 input bytes remain (each yields at least one output byte, and the
    // closing quote one more), and an escape's 6-byte store is paid for by its flagged
    // byte's 5 extra bytes.
    let escape =
        |dst: &mut [u8], i: &mut usize, j: &mut usize| match escape_at(bytes, *i, escape_html) {
            Some((text, len, width)) => {
                dst[*j..*j + 6].copy_from_slice(&text);
                *j += len;
                *i += width;
            }
            None => {
                dst[*j] = bytes[*i];
                *j += 1;
                *i += 1;
            }
        };
    while let Some(block) = block_at(bytes, i) {
        dst[j..j + 16].copy_from_slice(block);
        let mask = escape_mask(block, escape_html);
        if mask == 0 {
            i += 16;
            j += 16;
            continue;
        }
        // The clean bytes before the flagged one are already in place.
        let clean = mask.trailing_zeros() as usize;
        i += clean;
        j += clean;
        escape(dst, &mut i, &mut j);
    }
    while i < bytes.len() {
        if ESCAPE_CLASS[usize::from(bytes[i])] == 0 {
            dst[j] = bytes[i];
            j += 1;
            i += 1;
        } else {
            escape(dst, &mut i, &mut j);
        }
    }
    dst[j] = b'"';
    out.truncate(start + j + 1);
}

/// The `@timestamp` text of the current millisecond, re-formatted only when the second
/// changes (the milliseconds are patched in place).
#[derive(Debug)]
struct TimestampCache {
    second: u64,
    /// `yyyy-MM-ddTHH:mm:ss.SSSZ`, 24 bytes.
    text: [u8; 24],
}

impl TimestampCache {
    fn new() -> Self {
        let mut cache = Self {
            second: u64::MAX,
            text: *b"1970-01-01T00:00:00.000Z",
        };
        cache.set(UNIX_EPOCH);
        cache
    }

    fn set(&mut self, now: SystemTime) -> &[u8; 24] {
        let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
        let second = since.as_secs();
        if second != self.second {
            self.second = second;
            let secs = i64::try_from(second).unwrap_or(i64::MAX);
            if let Ok(t) = time::OffsetDateTime::from_unix_timestamp(secs) {
                let d = t.date();
                let (h, m, s) = (t.hour(), t.minute(), t.second());
                let year = d.year().clamp(0, 9999) as u32;
                let fields = [
                    (0, 4, year),
                    (5, 2, u32::from(u8::from(d.month()))),
                    (8, 2, u32::from(d.day())),
                    (11, 2, u32::from(h)),
                    (14, 2, u32::from(m)),
                    (17, 2, u32::from(s)),
                ];
                for (at, width, value) in fields {
                    write_digits(&mut self.text[at..at + width], value);
                }
            }
        }
        write_digits(&mut self.text[20..23], since.subsec_millis());
        &self.text
    }
}

fn write_digits(out: &mut [u8], mut value: u32) {
    for slot in out.iter_mut().rev() {
        *slot = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

/// Builds encoded events into one growing buffer; each finished event is carved out of it
/// with `split().freeze()`, so the only allocation is the shared buffer itself.
#[derive(Debug)]
pub struct EventEncoder {
    buf: BytesMut,
    /// `","@metadata":{...}` — everything between the timestamp and the first field.
    after_timestamp: Vec<u8>,
    timestamp: TimestampCache,
    escape_html: bool,
}

/// How much buffer is reserved at a time: events are carved from blocks this large.
const BLOCK: usize = 64 * 1024;

impl EventEncoder {
    /// An encoder writing `meta` into every event's `@metadata`.
    pub fn new(meta: &EventMeta) -> Self {
        let mut tail = BytesMut::new();
        tail.put_slice(b"\",\"@metadata\":{\"beat\":");
        // A String always serializes.
        let _ = write_json(&mut tail, meta.beat.as_str(), meta.escape_html);
        tail.put_slice(b",\"type\":\"_doc\",\"version\":");
        let _ = write_json(&mut tail, meta.version.as_str(), meta.escape_html);
        tail.put_slice(b"}");
        Self {
            buf: BytesMut::with_capacity(BLOCK),
            after_timestamp: tail.to_vec(),
            timestamp: TimestampCache::new(),
            escape_html: meta.escape_html,
        }
    }

    /// Starts an event stamped `now`; add fields on the returned writer, then `finish` it.
    pub fn begin(&mut self, now: SystemTime) -> EventWriter<'_> {
        if self.buf.capacity() - self.buf.len() < 1024 {
            self.buf.reserve(BLOCK);
        }
        self.buf.put_slice(b"{\"@timestamp\":\"");
        let ts = *self.timestamp.set(now);
        self.buf.put_slice(&ts);
        self.buf.put_slice(&self.after_timestamp);
        EventWriter { enc: self }
    }

    /// As [`Self::begin`], with `extra` (pre-encoded `,"key":value` pairs) added inside
    /// `@metadata` after `beat`, `type` and `version` (an ndjson line's `@metadata`, `_id`).
    pub fn begin_with_metadata(&mut self, now: SystemTime, extra: &[u8]) -> EventWriter<'_> {
        if extra.is_empty() {
            return self.begin(now);
        }
        if self.buf.capacity() - self.buf.len() < 1024 + extra.len() {
            self.buf.reserve(BLOCK + extra.len());
        }
        self.buf.put_slice(b"{\"@timestamp\":\"");
        let ts = *self.timestamp.set(now);
        self.buf.put_slice(&ts);
        // `after_timestamp` ends with the `}` closing @metadata.
        let open = self.after_timestamp.len() - 1;
        self.buf.put_slice(&self.after_timestamp[..open]);
        self.buf.put_slice(extra);
        self.buf.put_u8(b'}');
        EventWriter { enc: self }
    }
}

/// An event under construction. Fields are appended in call order; the caller keeps keys
/// unique.
#[derive(Debug)]
pub struct EventWriter<'a> {
    enc: &'a mut EventEncoder,
}

impl EventWriter<'_> {
    /// Writes `,"key":` — the value must follow.
    pub fn key(&mut self, key: &str) {
        self.enc.buf.put_u8(b',');
        write_json_str(&mut self.enc.buf, key, self.enc.escape_html);
        self.enc.buf.put_u8(b':');
    }

    /// Appends a string field.
    pub fn str_field(&mut self, key: &str, value: &str) {
        self.key(key);
        // Escaping grows a string by a few bytes at most in practice; reserving its
        // length once keeps the copies below from checking capacity each time.
        self.enc.buf.reserve(value.len() + 2);
        write_json_str(&mut self.enc.buf, value, self.enc.escape_html);
    }

    /// Appends an unsigned integer field.
    pub fn u64_field(&mut self, key: &str, value: u64) {
        self.key(key);
        let mut digits = itoa_buf(value);
        self.enc.buf.put_slice(digits.as_bytes_mut());
    }

    /// Appends a field whose value is already JSON text (passed through unchanged).
    pub fn raw_field(&mut self, key: &str, json: &[u8]) {
        self.key(key);
        self.enc.buf.put_slice(json);
    }

    /// Appends pre-encoded `,"key":value` pairs (e.g. an input's `fields` and `tags`).
    pub fn raw_pairs(&mut self, pairs: &[u8]) {
        self.enc.buf.put_slice(pairs);
    }

    /// Appends a field serialized with libbeat's rules.
    ///
    /// # Errors
    /// When `value` cannot be represented as JSON (e.g. a map with non-string keys); the
    /// key has been written, so the caller must discard the event with [`Self::abandon`].
    pub fn value_field<T: Serialize + ?Sized>(
        &mut self,
        key: &str,
        value: &T,
    ) -> Result<(), serde_json::Error> {
        self.key(key);
        write_json(&mut self.enc.buf, value, self.enc.escape_html)
    }

    /// The event's size so far, in bytes (without the closing brace).
    pub fn len(&self) -> usize {
        self.enc.buf.len()
    }

    /// Always false: an event holds at least `@timestamp` and `@metadata`.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Appends a string field of `n` filler bytes (`size` padding of the generator).
    pub fn pad_field(&mut self, key: &str, n: usize) {
        self.key(key);
        self.enc.buf.put_u8(b'"');
        self.enc.buf.put_bytes(b'x', n);
        self.enc.buf.put_u8(b'"');
    }

    /// Closes the document and returns its bytes.
    pub fn finish(self) -> Bytes {
        self.enc.buf.put_u8(b'}');
        self.enc.buf.split().freeze()
    }

    /// Throws the event away (after a failed [`Self::value_field`]).
    pub fn abandon(self) {
        self.enc.buf.clear();
    }
}

/// Small stack buffer for integer formatting without allocation.
struct Digits {
    buf: [u8; 20],
    start: usize,
}

impl Digits {
    fn as_bytes_mut(&mut self) -> &[u8] {
        &self.buf[self.start..]
    }
}

fn itoa_buf(mut value: u64) -> Digits {
    let mut d = Digits {
        buf: [0; 20],
        start: 20,
    };
    loop {
        d.start -= 1;
        d.buf[d.start] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::time::Duration;

    /// The serde_json path with [`BeatsFormatter`]: what `str_field` wrote before
    /// [`write_json_str`], and what every non-string value still goes through.
    fn via_serde(s: &str, html: bool) -> Vec<u8> {
        let mut b = BytesMut::new();
        write_json(&mut b, s, html).unwrap();
        b.to_vec()
    }

    fn fast(s: &str, html: bool) -> Vec<u8> {
        let mut b = BytesMut::new();
        write_json_str(&mut b, s, html);
        b.to_vec()
    }

    #[test]
    fn string_escapes_follow_libbeat() {
        let cases: [(&str, bool, &str); 8] = [
            ("plain text", false, r#""plain text""#),
            ("a\"b\\c\n\r\t", false, r#""a\"b\\c\n\r\t""#),
            (
                "\u{8}\u{c}\u{1}\u{1f}\u{7f}",
                false,
                "\"\\u0008\\u000c\\u0001\\u001f\u{7f}\"",
            ),
            ("<a&b>", false, r#""<a&b>""#),
            ("<a&b>", true, r#""\u003ca\u0026b\u003e""#),
            (
                "x\u{2028}y\u{2029}z\u{2027}",
                false,
                "\"x\\u2028y\\u2029z\u{2027}\"",
            ),
            (
                "0123456789abcdef\"0123456789abcdef",
                false,
                r#""0123456789abcdef\"0123456789abcdef""#,
            ),
            ("", true, r#""""#),
        ];
        for (input, html, want) in cases {
            assert_eq!(
                String::from_utf8(fast(input, html)).unwrap(),
                want,
                "{input:?}"
            );
            assert_eq!(fast(input, html), via_serde(input, html), "{input:?}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        /// The fast escaper writes exactly what serde_json with libbeat's formatter writes,
        /// for any string: random Unicode, and strings dense in the bytes that matter
        /// (control bytes, quotes, `<>&`, U+2028/9 and their neighbours that share 0xE2).
        #[test]
        fn fast_escaper_equals_serde_with_beats_formatter(
            any_text in any::<String>(),
            dense in proptest::collection::vec(
                prop_oneof![
                    Just("\"".to_string()), Just("\\".to_string()), Just("<".to_string()),
                    Just(">".to_string()), Just("&".to_string()), Just("\u{2028}".to_string()),
                    Just("\u{2029}".to_string()), Just("\u{2026}".to_string()),
                    Just("\u{20ac}".to_string()), Just("\u{7f}".to_string()),
                    (0u8..0x20).prop_map(|b| char::from(b).to_string()),
                    "[a-zA-Z0-9 ]{0,9}",
                ],
                0..64,
            ),
        ) {
            let dense = dense.concat();
            for s in [any_text.as_str(), dense.as_str()] {
                for html in [false, true] {
                    prop_assert_eq!(fast(s, html), via_serde(s, html), "{:?} html {}", s, html);
                }
            }
        }
    }

    fn at(ms: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(ms)
    }

    #[test]
    fn document_layout_matches_libbeat() {
        let meta = EventMeta {
            beat: "filebeat".into(),
            version: "8.15.0".into(),
            escape_html: false,
        };
        let mut enc = EventEncoder::new(&meta);
        // 2024-01-02T03:04:05.678Z
        let mut w = enc.begin(at(1_704_164_645_678));
        w.str_field("message", "x");
        let bytes = w.finish();
        assert_eq!(
            &bytes[..],
            br#"{"@timestamp":"2024-01-02T03:04:05.678Z","@metadata":{"beat":"filebeat","type":"_doc","version":"8.15.0"},"message":"x"}"#
        );
        assert_eq!(bytes.len(), 120);
    }

    #[test]
    fn timestamp_cache_patches_millis_and_reformats_on_new_second() {
        let mut enc = EventEncoder::new(&EventMeta::default());
        let a = enc.begin(at(1_704_164_645_001)).finish();
        let b = enc.begin(at(1_704_164_645_999)).finish();
        let c = enc.begin(at(1_704_164_706_007)).finish();
        assert!(a.starts_with(br#"{"@timestamp":"2024-01-02T03:04:05.001Z""#));
        assert!(b.starts_with(br#"{"@timestamp":"2024-01-02T03:04:05.999Z""#));
        assert!(c.starts_with(br#"{"@timestamp":"2024-01-02T03:05:06.007Z""#));
    }

    #[test]
    fn strings_follow_libbeat_escaping() {
        let mut out = BytesMut::new();
        write_json(
            &mut out,
            "a<b>&\u{2028}\u{2029}\u{8}\u{c}\u{1}\"\\\n",
            false,
        )
        .unwrap();
        assert_eq!(&out[..], br#""a<b>&\u2028\u2029\u0008\u000c\u0001\"\\\n""#);
        out.clear();
        write_json(&mut out, "<a&b>", true).unwrap();
        assert_eq!(&out[..], br#""\u003ca\u0026b\u003e""#);
        out.clear();
        write_json(&mut out, &[f64::NAN, f64::INFINITY, 1.5], false).unwrap();
        assert_eq!(&out[..], b"[null,null,1.5]");
    }

    #[test]
    fn fields_of_every_kind_are_valid_json() {
        let mut enc = EventEncoder::new(&EventMeta::default());
        let mut w = enc.begin(SystemTime::now());
        w.u64_field("seq", 18_446_744_073_709_551_615);
        w.u64_field("zero", 0);
        w.raw_field("raw", br#"{"k":[1,2]}"#);
        w.value_field("tags", &["a", "b"]).unwrap();
        w.pad_field("pad", 3);
        let bytes = w.finish();
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["seq"], 18_446_744_073_709_551_615u64);
        assert_eq!(v["zero"], 0);
        assert_eq!(v["raw"]["k"][1], 2);
        assert_eq!(v["pad"], "xxx");
        assert_eq!(v["@metadata"]["type"], "_doc");
    }

    #[test]
    fn events_are_carved_without_sharing_content() {
        let mut enc = EventEncoder::new(&EventMeta::default());
        let mut all = Vec::new();
        for i in 0..5000u64 {
            let mut w = enc.begin(SystemTime::now());
            w.u64_field("seq", i);
            all.push(w.finish());
        }
        for (i, b) in all.iter().enumerate() {
            let v: serde_json::Value = serde_json::from_slice(b).unwrap();
            assert_eq!(v["seq"], i as u64);
        }
    }
}
