//! The pure part of the HTTP intake: a request body (after `Content-Encoding`) into
//! events, all or nothing.
//!
//! A body is one JSON object, a JSON array of objects, or objects one after another
//! (NDJSON; any whitespace between them). Anything else is refused whole with the line and
//! column of the first problem, so a client learns what to fix and nothing of a bad request
//! is queued.

use std::io::Read as _;
use std::time::SystemTime;

use bytes::Bytes;
use serde_json::value::RawValue;

use crate::event::EventEncoder;
use crate::inputs::filestream::parsers::Pairs;
use crate::inputs::stdin::json_object_event;
use crate::inputs::CommonFields;

/// Why a body was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BodyProblem {
    /// Not JSON, or a value that is not an object.
    #[error("line {line} column {column}: {reason}")]
    Malformed {
        /// 1-based line in the (decompressed) body.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong.
        reason: String,
    },
    /// No object at all.
    #[error("the body holds no event")]
    Empty,
    /// Decompressed, larger than the limit.
    #[error("the decompressed body is larger than {limit} bytes")]
    TooLarge {
        /// `max_message_size`, bytes.
        limit: usize,
    },
    /// The compressed body does not decompress.
    #[error("the {encoding} body does not decompress: {reason}")]
    Encoding {
        /// `gzip` or `deflate`.
        encoding: &'static str,
        /// The decoder's reason.
        reason: String,
    },
}

/// A `Content-Encoding` the intake accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// None (or `identity`).
    Identity,
    /// `gzip`.
    Gzip,
    /// `deflate` (zlib, as RFC 9110 says; raw deflate is accepted too, as browsers send it).
    Deflate,
}

impl Encoding {
    /// The encoding named by a `Content-Encoding` value, `None` for any other.
    pub fn parse(value: Option<&str>) -> Option<Self> {
        match value.map(|v| v.trim().to_ascii_lowercase()).as_deref() {
            None | Some("") | Some("identity") => Some(Self::Identity),
            Some("gzip") | Some("x-gzip") => Some(Self::Gzip),
            Some("deflate") => Some(Self::Deflate),
            _ => None,
        }
    }
}

/// The body after `Content-Encoding`, at most `limit` bytes.
///
/// # Errors
/// [`BodyProblem::TooLarge`] or [`BodyProblem::Encoding`].
pub fn decode(raw: Bytes, encoding: Encoding, limit: usize) -> Result<Bytes, BodyProblem> {
    fn inflate(
        r: impl std::io::Read,
        limit: usize,
        name: &'static str,
    ) -> Result<Bytes, BodyProblem> {
        let mut out = Vec::new();
        r.take(limit as u64 + 1)
            .read_to_end(&mut out)
            .map_err(|e| BodyProblem::Encoding {
                encoding: name,
                reason: e.to_string(),
            })?;
        if out.len() > limit {
            return Err(BodyProblem::TooLarge { limit });
        }
        Ok(Bytes::from(out))
    }
    match encoding {
        Encoding::Identity => Ok(raw),
        Encoding::Gzip => inflate(flate2::read::GzDecoder::new(&raw[..]), limit, "gzip"),
        Encoding::Deflate => {
            // zlib-wrapped per the RFC; a raw stream when the zlib header is absent.
            let zlib = raw.len() >= 2
                && (u16::from(raw[0]) << 8 | u16::from(raw[1])) % 31 == 0
                && raw[0] & 0x0f == 8;
            if zlib {
                inflate(flate2::read::ZlibDecoder::new(&raw[..]), limit, "deflate")
            } else {
                inflate(
                    flate2::read::DeflateDecoder::new(&raw[..]),
                    limit,
                    "deflate",
                )
            }
        }
    }
}

/// 1-based line and column of byte `offset` of `body`.
fn position(body: &[u8], offset: usize) -> (usize, usize) {
    let before = &body[..offset.min(body.len())];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let column = before.len()
        - before
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |p| p + 1)
        + 1;
    (line, column)
}

fn malformed(body: &[u8], offset: usize, reason: impl Into<String>) -> BodyProblem {
    let (line, column) = position(body, offset);
    BodyProblem::Malformed {
        line,
        column,
        reason: reason.into(),
    }
}

/// The objects of `body`, verbatim.
///
/// # Errors
/// [`BodyProblem::Malformed`] at the first bad byte or non-object value,
/// [`BodyProblem::Empty`] when there is none.
pub fn objects(body: &[u8]) -> Result<Vec<&RawValue>, BodyProblem> {
    let text = std::str::from_utf8(body)
        .map_err(|e| malformed(body, e.valid_up_to(), "the body is not UTF-8"))?;
    let start = text.len() - text.trim_start().len();
    let mut out = Vec::new();
    if text[start..].starts_with('[') {
        let items: Vec<&RawValue> =
            serde_json::from_str(text).map_err(|e| BodyProblem::Malformed {
                line: e.line(),
                column: e.column(),
                reason: e.to_string(),
            })?;
        for item in items {
            if !item.get().starts_with('{') {
                let offset = item.get().as_ptr() as usize - text.as_ptr() as usize;
                return Err(malformed(
                    body,
                    offset,
                    "an array element is not a JSON object",
                ));
            }
            out.push(item);
        }
    } else {
        let mut stream = serde_json::Deserializer::from_str(text).into_iter::<&RawValue>();
        loop {
            match stream.next() {
                None => break,
                Some(Ok(v)) => {
                    if !v.get().starts_with('{') {
                        let at = v.get().as_ptr() as usize - text.as_ptr() as usize;
                        return Err(malformed(body, at, "a value is not a JSON object"));
                    }
                    out.push(v);
                }
                Some(Err(e)) => {
                    return Err(BodyProblem::Malformed {
                        line: e.line(),
                        column: e.column(),
                        reason: e.to_string(),
                    });
                }
            }
        }
    }
    if out.is_empty() {
        return Err(BodyProblem::Empty);
    }
    Ok(out)
}

/// How each object becomes an event.
#[derive(Debug, Clone)]
pub struct Shape {
    /// `prefix`: `None` for `.` (the object's keys at the root).
    pub prefix: Option<String>,
    /// `fields`, `tags` of the input.
    pub common: CommonFields,
    /// Whether `<>&` are escaped in strings skidder writes.
    pub escape_html: bool,
}

/// Encodes every object of a request, with the included headers (already JSON) as
/// `headers`, and runs the input's processors on each.
///
/// # Errors
/// [`BodyProblem::Malformed`] when an object's keys cannot be read (duplicate handling is
/// serde_json's: the object was valid JSON already) or with `prefix: .` when it uses a key
/// skidder owns (`@timestamp`, `@metadata`).
pub fn events(
    body: &[u8],
    objects: &[&RawValue],
    shape: &Shape,
    headers_json: Option<&[u8]>,
    enc: &mut EventEncoder,
    now: SystemTime,
) -> Result<Vec<Bytes>, BodyProblem> {
    let base = body.as_ptr() as usize;
    let mut out = Vec::with_capacity(objects.len());
    for obj in objects {
        let raw = obj.get();
        let ev = match &shape.prefix {
            Some(prefix) => {
                let mut w = enc.begin(now);
                w.raw_field(prefix, raw.as_bytes());
                if let Some(h) = headers_json {
                    w.raw_field("headers", h);
                }
                let own = std::iter::once(prefix.as_str());
                let common = shape
                    .common
                    .current_for(own.chain(headers_json.map(|_| "headers")));
                w.raw_pairs(&common.fields_json);
                w.raw_pairs(&common.tags_json);
                common.finish(one_line(w.finish()), true)
            }
            None => {
                let at = raw.as_ptr() as usize - base;
                let pairs: Pairs<'_> =
                    serde_json::from_str(raw).map_err(|e| malformed(body, at, e.to_string()))?;
                if let Some((k, _)) = pairs
                    .0
                    .iter()
                    .find(|(k, _)| k == "@timestamp" || k == "@metadata")
                {
                    return Err(malformed(
                        body,
                        at,
                        format!("key {k:?} is reserved for skidder; use prefix: json"),
                    ));
                }
                let own = pairs.0.iter().map(|(k, _)| k.as_str());
                let own = own.chain(headers_json.map(|_| "headers"));
                let common = shape.common.current_for(own);
                let ev =
                    json_object_event(enc, now, &pairs, &common, headers_json, shape.escape_html);
                common.finish(one_line(ev), true)
            }
        };
        // The processors ran above, on the request's task; a drop_event is filtered, not lost.
        if let Some(ev) = ev {
            out.push(ev);
        }
    }
    Ok(out)
}

/// Valid JSON holds raw line breaks only between tokens: spaces keep the document one line
/// (NDJSON outputs) without changing its meaning.
fn one_line(ev: Bytes) -> Bytes {
    if memchr::memchr2(b'\n', b'\r', &ev).is_none() {
        return ev;
    }
    Bytes::from(
        ev.iter()
            .map(|&b| if b == b'\n' || b == b'\r' { b' ' } else { b })
            .collect::<Vec<u8>>(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventMeta;
    use std::io::Write as _;

    #[test]
    fn object_array_and_ndjson() {
        assert_eq!(objects(br#"{"a":1}"#).unwrap().len(), 1);
        assert_eq!(objects(b" [ {\"a\":1}, {\"b\":2} ] ").unwrap().len(), 2);
        assert_eq!(
            objects(b"{\"a\":1}\n{\"b\":2}\n\n{\"c\":3}\n")
                .unwrap()
                .len(),
            3
        );
        assert_eq!(objects(b"{\n  \"a\": 1\n}\n{\"b\":2}").unwrap().len(), 2);
        assert_eq!(objects(b"  \n").unwrap_err(), BodyProblem::Empty);
        assert_eq!(objects(b"[]").unwrap_err(), BodyProblem::Empty);
    }

    #[test]
    fn malformed_json_names_the_line() {
        let err = objects(b"{\"a\":1}\n{\"b\":2}\n{\"c\":\n").unwrap_err();
        assert!(
            matches!(
                err,
                BodyProblem::Malformed { line: 4, .. } | BodyProblem::Malformed { line: 3, .. }
            ),
            "{err}"
        );
        let err = objects(b"{\"a\":1}\n{\"b\" 2}\n").unwrap_err();
        assert!(
            matches!(err, BodyProblem::Malformed { line: 2, .. }),
            "{err}"
        );
        let err = objects(b"{\"a\":1}\n\"text\"\n").unwrap_err();
        assert_eq!(
            err,
            BodyProblem::Malformed {
                line: 2,
                column: 1,
                reason: "a value is not a JSON object".into()
            }
        );
        let err = objects(b"[{\"a\":1},\n 5]").unwrap_err();
        assert!(
            matches!(
                err,
                BodyProblem::Malformed {
                    line: 2,
                    column: 2,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn gzip_and_deflate_are_decoded_and_bounded() {
        let plain = b"{\"a\":1}\n".repeat(100);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&plain).unwrap();
        let gz = Bytes::from(gz.finish().unwrap());
        assert_eq!(
            decode(gz.clone(), Encoding::Gzip, 1 << 20).unwrap(),
            &plain[..]
        );
        assert_eq!(
            decode(gz, Encoding::Gzip, 100).unwrap_err(),
            BodyProblem::TooLarge { limit: 100 }
        );
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(&plain).unwrap();
        assert_eq!(
            decode(Bytes::from(z.finish().unwrap()), Encoding::Deflate, 1 << 20).unwrap(),
            &plain[..]
        );
        let mut d = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        d.write_all(&plain).unwrap();
        assert_eq!(
            decode(Bytes::from(d.finish().unwrap()), Encoding::Deflate, 1 << 20).unwrap(),
            &plain[..]
        );
        assert!(matches!(
            decode(Bytes::from_static(b"not gzip"), Encoding::Gzip, 100),
            Err(BodyProblem::Encoding { .. })
        ));
        assert_eq!(Encoding::parse(Some("br")), None);
    }

    #[test]
    fn prefix_and_root_events() {
        let meta = EventMeta::default();
        let mut enc = EventEncoder::new(&meta);
        let body = b"{\n\"msg\": \"hi\"}\n{\"n\":2}";
        let objs = objects(body).unwrap();
        let shape = Shape {
            prefix: Some("json".into()),
            common: CommonFields::default(),
            escape_html: false,
        };
        let evs = events(
            body,
            &objs,
            &shape,
            Some(br#"{"X-Id":["1"]}"#),
            &mut enc,
            SystemTime::now(),
        )
        .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&evs[0]).unwrap();
        assert_eq!(v["json"]["msg"], "hi");
        assert_eq!(v["headers"]["X-Id"][0], "1");
        assert!(!evs[0].contains(&b'\n'));
        let root = Shape {
            prefix: None,
            ..shape
        };
        let evs = events(body, &objs, &root, None, &mut enc, SystemTime::now()).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&evs[1]).unwrap();
        assert_eq!(v["n"], 2);
        assert!(v["@timestamp"].is_string());
        let bad = b"{\"a\":1}\n{\"@timestamp\":1}";
        let objs = objects(bad).unwrap();
        assert!(matches!(
            events(bad, &objs, &root, None, &mut enc, SystemTime::now()),
            Err(BodyProblem::Malformed { line: 2, .. })
        ));
    }
}
