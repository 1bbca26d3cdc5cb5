//! The `_bulk` request body: NDJSON, one action line and one document line per item.
//!
//! ```text
//! {"index":{"_index":"skidder-2026.01.02","_id":"abc","pipeline":"p"}}\n
//! {"@timestamp":"2026-01-02T03:04:05Z","message":"..."}\n      <- the event, @metadata cut out
//! {"create":{"_index":"logs-app-default"}}\n                   <- op_type: create (data streams)
//! {...}\n
//! ```
//!
//! `_id` comes from `@metadata._id`, or from a hash of the document ([`DocumentId`]). A
//! Logstash pipeline that receives the same events over Lumberjack agrees on the id with
//! `document_id => "%{[@metadata][_id]}"` in its `elasticsearch` output; for `hash` ids the
//! shipper should stamp `@metadata._id` (with [`content_id`]) before the event reaches either
//! output, so both paths see the same value.
//!
//! A dead-lettered item is re-encoded as Beats does and always sent with `index`:
//! `{"@timestamp":…,"message":"<the document as a JSON string>","error.type":<status>,"error.message":"<reason>"}`
//! so a mapping conflict cannot happen again in the dead-letter index.
//!
//! The builder keeps its buffers between batches; per event it only appends.

use std::io::Write as _;

use base64::Engine as _;
use bytes::Bytes;
use flate2::write::GzEncoder;
use flate2::Compression;

use super::event::{EventError, ScannedEvent, Scanner};
use super::index::{EventFields, IndexTemplate};
use super::settings::{DocumentId, ElasticsearchSettings, OpType};

/// Length of a hash-derived id: 16 bytes of SHA-256 in unpadded base64url.
const HASH_ID_LEN: usize = 22;

/// Builds bulk bodies for one output worker.
#[derive(Debug)]
pub struct BulkBody {
    index: IndexTemplate,
    pipeline: Option<IndexTemplate>,
    op_type: OpType,
    document_id: DocumentId,
    compression_level: u32,
    escape_html: bool,
    scanner: Scanner,
    name: String,
    pipeline_name: String,
    buf: Vec<u8>,
    items: usize,
}

/// A finished body, ready to send.
#[derive(Debug, Clone)]
pub struct EncodedBody {
    /// The bytes (gzip when `gzip`).
    pub bytes: Bytes,
    /// Whether to send `Content-Encoding: gzip`.
    pub gzip: bool,
    /// Bytes before compression.
    pub plain_len: usize,
    /// Items (action + document pairs) in the body.
    pub items: usize,
}

impl BulkBody {
    /// A builder for `settings`.
    pub fn new(settings: &ElasticsearchSettings) -> Self {
        let scanner = Scanner::new(
            settings
                .index
                .top_level_fields()
                .chain(settings.pipeline.iter().flat_map(|p| p.top_level_fields())),
        );
        Self {
            index: settings.index.clone(),
            pipeline: settings.pipeline.clone(),
            op_type: settings.op_type,
            document_id: settings.document_id,
            compression_level: settings.compression_level,
            escape_html: settings.escape_html,
            scanner,
            name: String::new(),
            pipeline_name: String::new(),
            buf: Vec::new(),
            items: 0,
        }
    }

    /// Starts a new body (keeps the buffers).
    pub fn clear(&mut self) {
        self.buf.clear();
        self.items = 0;
    }

    /// Items added since [`Self::clear`].
    pub fn items(&self) -> usize {
        self.items
    }

    /// Uncompressed bytes so far.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// True when nothing was added since [`Self::clear`].
    pub fn is_empty(&self) -> bool {
        self.items == 0
    }

    /// Appends `event` (encoded JSON) as one item. On error nothing is appended.
    ///
    /// # Errors
    /// [`EventError`]: the event is not a JSON object, its `@metadata._id` is unusable, or its
    /// index/pipeline name cannot be rendered; the event is non-indexable.
    pub fn add_event(&mut self, event: &[u8]) -> Result<(), EventError> {
        let ev = self.scanner.scan(event)?;
        self.name.clear();
        self.index
            .render(&ev, &mut self.name)
            .map_err(|source| EventError::Name {
                what: "index",
                source,
            })?;
        let pipeline = match &self.pipeline {
            Some(p) => {
                self.pipeline_name.clear();
                p.render(&ev, &mut self.pipeline_name)
                    .map_err(|source| EventError::Name {
                        what: "pipeline",
                        source,
                    })?;
                Some(self.pipeline_name.as_str())
            }
            None => None,
        };
        let meta_id = match self.document_id {
            DocumentId::None => None,
            DocumentId::Metadata | DocumentId::Hash => ev.metadata_id()?,
        };
        let mut hash_buf = [0u8; HASH_ID_LEN];
        let id: Option<&str> = match (&meta_id, self.document_id) {
            (Some(id), _) => Some(id),
            (None, DocumentId::Hash) => Some(hash_id(&ev, &mut hash_buf)),
            _ => None,
        };
        write_action(
            &mut self.buf,
            self.op_type.action(id.is_some()),
            &self.name,
            id,
            pipeline,
        );
        let (a, b) = ev.document();
        write_one_line(&mut self.buf, a, self.escape_html);
        write_one_line(&mut self.buf, b, self.escape_html);
        self.buf.push(b'\n');
        self.items += 1;
        Ok(())
    }

    /// Appends `event` as a dead-letter item into `index`, with the status and reason the
    /// cluster gave (Beats' layout, see the module docs). Works for any bytes, even ones
    /// that are not JSON.
    pub fn add_dead_letter(&mut self, event: &[u8], index: &str, status: u16, reason: &str) {
        let scanned: Option<ScannedEvent<'_>> = self.scanner.scan(event).ok();
        write_action(
            &mut self.buf,
            OpType::Index.action(false),
            index,
            None,
            None,
        );
        self.buf.extend_from_slice(b"{\"@timestamp\":");
        match scanned.as_ref().and_then(|e| e.timestamp()) {
            Some(ts) if ts.get().starts_with('"') => {
                self.buf.extend_from_slice(ts.get().as_bytes())
            }
            _ => {
                let now = time::OffsetDateTime::now_utc()
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_string());
                write_json_str(&mut self.buf, &now);
            }
        }
        self.buf.extend_from_slice(b",\"message\":");
        match &scanned {
            Some(ev) => {
                let (a, b) = ev.document();
                // Both halves are valid UTF-8 (scan checked); write them as one string.
                write_json_str_parts(&mut self.buf, a, b);
            }
            None => write_json_str(&mut self.buf, &String::from_utf8_lossy(event)),
        }
        self.buf.extend_from_slice(b",\"error.type\":");
        // Writing to a Vec cannot fail.
        let _ = write!(self.buf, "{status}");
        self.buf.extend_from_slice(b",\"error.message\":");
        write_json_str(&mut self.buf, reason);
        self.buf.extend_from_slice(b"}\n");
        self.items += 1;
    }

    /// The body so far, gzip-compressed at `compression_level` (plain when 0). The builder
    /// can be cleared and reused afterwards.
    ///
    /// # Errors
    /// The compressor failed (out of memory): the body cannot be sent.
    pub fn finish(&mut self) -> std::io::Result<EncodedBody> {
        let plain_len = self.buf.len();
        let (bytes, gzip) = if self.compression_level == 0 {
            (Bytes::copy_from_slice(&self.buf), false)
        } else {
            let mut gz = GzEncoder::new(
                Vec::with_capacity(plain_len / 4 + 64),
                Compression::new(self.compression_level),
            );
            gz.write_all(&self.buf)?;
            (Bytes::from(gz.finish()?), true)
        };
        Ok(EncodedBody {
            bytes,
            gzip,
            plain_len,
            items: self.items,
        })
    }
}

/// The id [`DocumentId::Hash`] gives an event: 128 bits of SHA-256 over its document
/// (`@metadata` excluded), unpadded base64url. A shipper can store it in `@metadata._id`
/// before the event is sent anywhere, so Logstash and this output use the same id.
///
/// # Errors
/// [`EventError`] when the event is not a JSON object.
pub fn content_id(event: &[u8]) -> Result<String, EventError> {
    let mut scanner = Scanner::default();
    let ev = scanner.scan(event)?;
    let mut buf = [0u8; HASH_ID_LEN];
    Ok(hash_id(&ev, &mut buf).to_string())
}

/// Appends `event` to `out` with `@metadata._id` set to its [`content_id`] (the id
/// `document_id: hash` gives it here), unless it has an `_id` already: then it is copied
/// unchanged. The bytes are copied around one insertion into `@metadata` (which is created
/// when missing); nothing is parsed into a tree or re-serialized, and the document part,
/// which the id hashes, is left as it was, so the stamped event has the same id.
///
/// # Errors
/// [`EventError`] when the event is not a JSON object (`out` may then hold part of it).
pub fn stamp_content_id(
    scanner: &mut Scanner,
    event: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), EventError> {
    let ev = scanner.scan(event)?;
    if ev.metadata_id()?.is_some() {
        out.extend_from_slice(event);
        return Ok(());
    }
    let mut buf = [0u8; HASH_ID_LEN];
    let id = hash_id(&ev, &mut buf);
    match ev.metadata() {
        Some(meta) => {
            let raw = meta.get();
            // Inside the object, just before its closing brace.
            let close = raw.as_ptr() as usize - event.as_ptr() as usize + raw.len() - 1;
            let empty = raw[1..raw.len() - 1].trim().is_empty();
            out.extend_from_slice(&event[..close]);
            out.extend_from_slice(if empty { b"\"_id\":" } else { b",\"_id\":" });
            write_json_str(out, id);
            out.extend_from_slice(&event[close..]);
        }
        None => {
            let (a, b) = ev.document();
            // `a` is the whole object here: `{` then its members.
            let open = a.as_ptr() as usize - event.as_ptr() as usize + 1;
            let empty = a[1..]
                .iter()
                .chain(b)
                .all(|c| c.is_ascii_whitespace() || *c == b'}');
            out.extend_from_slice(&event[..open]);
            out.extend_from_slice(b"\"@metadata\":{\"_id\":");
            write_json_str(out, id);
            out.extend_from_slice(if empty { b"}" } else { b"}," });
            out.extend_from_slice(&event[open..]);
        }
    }
    Ok(())
}

fn hash_id<'b>(ev: &ScannedEvent<'_>, out: &'b mut [u8; HASH_ID_LEN]) -> &'b str {
    let (a, b) = ev.document();
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(a);
    ctx.update(b);
    let digest = ctx.finish();
    let n = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode_slice(&digest.as_ref()[..16], out)
        .unwrap_or(0);
    // base64url output is ASCII.
    std::str::from_utf8(&out[..n]).unwrap_or("")
}

fn write_action(
    buf: &mut Vec<u8>,
    op: &str,
    index: &str,
    id: Option<&str>,
    pipeline: Option<&str>,
) {
    buf.extend_from_slice(b"{\"");
    buf.extend_from_slice(op.as_bytes());
    buf.extend_from_slice(b"\":{\"_index\":");
    write_json_str(buf, index);
    if let Some(id) = id {
        buf.extend_from_slice(b",\"_id\":");
        write_json_str(buf, id);
    }
    if let Some(p) = pipeline {
        buf.extend_from_slice(b",\"pipeline\":");
        write_json_str(buf, p);
    }
    buf.extend_from_slice(b"}}\n");
}

fn write_json_str(buf: &mut Vec<u8>, s: &str) {
    // serde_json escapes exactly as JSON requires; writing into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *buf, s);
}

/// Writes `a` then `b` as one JSON string, without joining them first.
fn write_json_str_parts(buf: &mut Vec<u8>, a: &[u8], b: &[u8]) {
    let a = String::from_utf8_lossy(a);
    let b = String::from_utf8_lossy(b);
    write_json_str(buf, &a);
    if !b.is_empty() {
        // Drop the closing quote of the first part and the opening quote of the second.
        buf.pop();
        let start = buf.len();
        write_json_str(buf, &b);
        buf.remove(start);
    }
}

/// Copies JSON bytes, turning raw CR/LF (only ever whitespace in valid JSON) into spaces so
/// the document stays on one line. With `escape_html`, `<`, `>` and `&` become `\u003c`,
/// `\u003e`, `\u0026`: those bytes can only occur inside strings in valid JSON, so the
/// replacement is exact without parsing (Beats' `escape_html` output, same JSON value).
fn write_one_line(buf: &mut Vec<u8>, bytes: &[u8], escape_html: bool) {
    let special =
        |b: u8| b == b'\n' || b == b'\r' || (escape_html && matches!(b, b'<' | b'>' | b'&'));
    let mut rest = bytes;
    while let Some(i) = rest.iter().position(|&b| special(b)) {
        buf.extend_from_slice(&rest[..i]);
        buf.extend_from_slice(match rest[i] {
            b'<' => b"\\u003c",
            b'>' => b"\\u003e",
            b'&' => b"\\u0026",
            _ => b" ",
        });
        rest = &rest[i + 1..];
    }
    buf.extend_from_slice(rest);
}

#[cfg(test)]
mod tests {
    use std::io::Read as _;

    use super::*;
    use crate::config::{ElasticsearchOutputConfig, NonIndexablePolicy};

    fn settings(f: impl FnOnce(&mut ElasticsearchOutputConfig)) -> ElasticsearchSettings {
        let mut c = ElasticsearchOutputConfig {
            hosts: vec!["localhost".into()],
            compression_level: 0,
            ..Default::default()
        };
        f(&mut c);
        ElasticsearchSettings::from_config(&c).unwrap()
    }

    fn body(b: &mut BulkBody) -> String {
        String::from_utf8(b.finish().unwrap().bytes.to_vec()).unwrap()
    }

    const EV: &str = r#"{"@timestamp":"2026-03-04T05:06:07Z","@metadata":{"_id":"fixed-1","beat":"skidder"},"message":"hi","svc":"Api"}"#;

    #[test]
    fn stamping_adds_the_content_id_without_changing_the_document() {
        let mut sc = Scanner::default();
        for ev in [
            r#"{"@timestamp":"t","@metadata":{"beat":"skidder"},"message":"hi"}"#,
            r#"{"@metadata":{},"message":"hi"}"#,
            r#"{"message":"hi","n":[1,{"a":"}"}]}"#,
            r#"{ "message" : "relayed", "@metadata" : { "beat" : "filebeat" } }"#,
            "{}",
        ] {
            let mut out = Vec::new();
            stamp_content_id(&mut sc, ev.as_bytes(), &mut out).unwrap();
            let id = content_id(ev.as_bytes()).unwrap();
            let v: serde_json::Value = serde_json::from_slice(&out)
                .unwrap_or_else(|e| panic!("{ev} -> {}: {e}", String::from_utf8_lossy(&out)));
            assert_eq!(v["@metadata"]["_id"], id.as_str(), "{ev}");
            assert_eq!(
                content_id(&out).unwrap(),
                id,
                "the document part is untouched: {ev}"
            );
            let mut orig: serde_json::Value = serde_json::from_str(ev).unwrap();
            let mut stamped = v.clone();
            for x in [&mut orig, &mut stamped] {
                if let Some(m) = x.get_mut("@metadata").and_then(|m| m.as_object_mut()) {
                    m.remove("_id");
                    if m.is_empty() {
                        x.as_object_mut().unwrap().remove("@metadata");
                    }
                }
            }
            assert_eq!(orig, stamped, "{ev}");
        }
        // An id the event has is kept, byte for byte.
        let mut out = Vec::new();
        stamp_content_id(&mut sc, EV.as_bytes(), &mut out).unwrap();
        assert_eq!(out, EV.as_bytes());
        assert!(stamp_content_id(&mut sc, b"not json", &mut out).is_err());
    }

    #[test]
    fn golden_index_body() {
        let s = settings(|c| c.pipeline = Some("p-%{[svc]}".into()));
        let mut b = BulkBody::new(&s);
        b.add_event(EV.as_bytes()).unwrap();
        b.add_event(b"{\n \"@timestamp\": \"2026-03-05T00:00:00Z\",\r\n \"m\": \"a\\nb\"\n}")
            .unwrap_err();
        assert_eq!(b.items(), 1, "a failed event appends nothing");
        b.add_event(
            b"{\n \"@timestamp\": \"2026-03-05T00:00:00Z\",\r\n \"m\": \"a\\nb\", \"svc\":\"x\"\n}",
        )
        .unwrap();
        assert_eq!(
            body(&mut b),
            concat!(
                // op_type unset: an id skidder sends goes with `create` (create_doc is
                // enough), a generated one with `index` (authorized as a create).
                r#"{"create":{"_index":"skidder-2026.03.04","_id":"fixed-1","pipeline":"p-Api"}}"#,
                "\n",
                r#"{"@timestamp":"2026-03-04T05:06:07Z","message":"hi","svc":"Api"}"#,
                "\n",
                r#"{"index":{"_index":"skidder-2026.03.05","pipeline":"p-x"}}"#,
                "\n",
                "{  \"@timestamp\": \"2026-03-05T00:00:00Z\",   \"m\": \"a\\nb\", \"svc\":\"x\" }",
                "\n",
            )
        );
    }

    #[test]
    fn explicit_index_keeps_index_with_an_id() {
        let s = settings(|c| {
            c.op_type = Some("index".into());
            c.index = Some("i".into());
        });
        let mut b = BulkBody::new(&s);
        b.add_event(EV.as_bytes()).unwrap();
        b.add_event(br#"{"a":1}"#).unwrap();
        let text = body(&mut b);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with(r#"{"index":{"#) && lines[0].contains("fixed-1"));
        assert!(lines[2].starts_with(r#"{"index":{"#) && !lines[2].contains("_id"));
    }

    #[test]
    fn create_and_hash_ids() {
        let mut s = settings(|c| {
            c.op_type = Some("create".into());
            c.index = Some("logs-app-default".into());
        });
        s.document_id = DocumentId::Hash;
        let mut b = BulkBody::new(&s);
        b.add_event(br#"{"a":1}"#).unwrap();
        b.add_event(br#"{"a":1,"@metadata":{"x":1}}"#).unwrap();
        b.add_event(EV.as_bytes()).unwrap();
        let text = body(&mut b);
        let lines: Vec<&str> = text.lines().collect();
        let id = content_id(br#"{"a":1}"#).unwrap();
        assert_eq!(id.len(), HASH_ID_LEN);
        assert_eq!(
            lines[0],
            format!(r#"{{"create":{{"_index":"logs-app-default","_id":"{id}"}}}}"#)
        );
        // @metadata does not change the content id.
        assert_eq!(lines[0], lines[2]);
        // @metadata._id wins over the hash.
        assert!(lines[4].contains(r#""_id":"fixed-1""#), "{}", lines[4]);
        assert_ne!(content_id(br#"{"a":2}"#).unwrap(), id);

        s.document_id = DocumentId::None;
        let mut b = BulkBody::new(&s);
        b.add_event(EV.as_bytes()).unwrap();
        assert!(!body(&mut b).contains("_id"));
    }

    #[test]
    fn escape_html_escapes_inside_strings_only() {
        let ev = br#"{"m":"<b>&amp;</b>","n":1}"#;
        let mut b = BulkBody::new(&settings(|c| c.index = Some("i".into())));
        b.add_event(ev).unwrap();
        assert!(body(&mut b).ends_with("{\"m\":\"<b>&amp;</b>\",\"n\":1}\n"));
        let mut b = BulkBody::new(&settings(|c| {
            c.index = Some("i".into());
            c.escape_html = true;
        }));
        b.add_event(ev).unwrap();
        let text = body(&mut b);
        let doc = text.lines().nth(1).unwrap();
        assert_eq!(
            doc,
            r#"{"m":"\u003cb\u003e\u0026amp;\u003c/b\u003e","n":1}"#
        );
        let value: serde_json::Value = serde_json::from_str(doc).unwrap();
        assert_eq!(value["m"], "<b>&amp;</b>");
    }

    #[test]
    fn dead_letter_wraps_the_document() {
        let s = settings(|c| {
            c.non_indexable_policy = Some(NonIndexablePolicy::DeadLetterIndex {
                index: "dlq".into(),
            })
        });
        let mut b = BulkBody::new(&s);
        b.add_dead_letter(EV.as_bytes(), "dlq", 400, "mapper_parsing_exception: \"x\"");
        b.add_dead_letter(b"not json", "dlq", 400, "r");
        let text = body(&mut b);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], r#"{"index":{"_index":"dlq"}}"#);
        let doc: serde_json::Value = serde_json::from_str(lines[1]).unwrap();
        assert_eq!(doc["@timestamp"], "2026-03-04T05:06:07Z");
        assert_eq!(
            doc["message"],
            r#"{"@timestamp":"2026-03-04T05:06:07Z","message":"hi","svc":"Api"}"#
        );
        assert_eq!(doc["error.type"], 400);
        assert_eq!(doc["error.message"], "mapper_parsing_exception: \"x\"");
        let doc: serde_json::Value = serde_json::from_str(lines[3]).unwrap();
        assert_eq!(doc["message"], "not json");
        assert!(doc["@timestamp"].as_str().unwrap().len() >= 20);
    }

    #[test]
    fn gzip_round_trips_and_buffers_are_reused() {
        let s = settings(|c| c.compression_level = 1);
        let mut b = BulkBody::new(&s);
        for _ in 0..100 {
            b.add_event(EV.as_bytes()).unwrap();
        }
        let out = b.finish().unwrap();
        assert!(out.gzip && out.bytes.len() < out.plain_len / 4);
        let mut plain = String::new();
        flate2::read::GzDecoder::new(&out.bytes[..])
            .read_to_string(&mut plain)
            .unwrap();
        assert_eq!(plain.len(), out.plain_len);
        assert_eq!(plain.lines().count(), 200);
        let cap = b.buf.capacity();
        b.clear();
        b.add_event(EV.as_bytes()).unwrap();
        assert_eq!(b.buf.capacity(), cap);
        assert_eq!(b.items(), 1);
    }
}
