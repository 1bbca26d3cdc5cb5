//! `type: stdin`: one event per line of standard input.
//!
//! Without `json`, the line (without its line ending) becomes `message`. With `json`, the
//! line must be a JSON object; its keys become event fields with their values passed
//! through byte for byte, by the filestream `ndjson` parser with Filebeat's
//! `overwrite_keys` rules: an RFC 3339 `@timestamp` string sets the event time, an
//! `@metadata` object joins the event's `@metadata`, `type` must be a string not starting
//! with `_`. A line that is not a JSON object, or whose `@timestamp`, `@metadata` or `type`
//! cannot be used, becomes, per `on_json_error`, an error event (raw line in `message`, the
//! reason in `error.message`, tag `_jsonparsefailure`) or a counted drop logged with its
//! line number.

use std::io::{BufRead, Read};
use std::thread::JoinHandle;
use std::time::SystemTime;

use bytes::{Bytes, BytesMut};
use serde_json::value::RawValue;

use super::filestream::parsers::{write_decoded, Decoded, Ndjson, Pairs};
use super::CommonFields;
use crate::config::filestream::NdjsonConfig;
use crate::config::{JsonErrorPolicy, StdinInputConfig};
use crate::event::{write_json, EventEncoder, EventMeta, EventWriter};
use crate::pipeline::Publisher;

/// A validated stdin input.
#[derive(Debug)]
pub struct StdinInput {
    json: bool,
    on_error: JsonErrorPolicy,
    common: CommonFields,
    /// Filebeat's ndjson rules with `overwrite_keys`: `@timestamp` sets the event time,
    /// `@metadata` joins the event's.
    ndjson: Ndjson,
}

/// What a line turned into.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// An event to publish.
    Event(Bytes),
    /// A bad line the policy drops; the reason is for the log.
    Dropped(String),
    /// A processor dropped the event (`drop_event`): filtered, not lost.
    Filtered,
}

impl StdinInput {
    /// A stdin input with its settings.
    pub fn new(c: &StdinInputConfig, common: CommonFields) -> Self {
        Self {
            json: c.json,
            on_error: c.on_json_error,
            common,
            ndjson: stdin_ndjson(),
        }
    }

    /// Turns one line (without line ending) into an event, or a drop.
    pub fn line(&self, enc: &mut EventEncoder, line: &[u8], escape_html: bool) -> Line {
        let now = SystemTime::now();
        let bytes = if self.json {
            let parsed = std::str::from_utf8(line)
                .map_err(|e| format!("line is not UTF-8: {e}"))
                .and_then(|s| {
                    let d = self.ndjson.decode(s);
                    match (&d.error, d.ok) {
                        (Some(e), false) => Err(format!(
                            "line is not a JSON object: {}",
                            e.trim_start_matches("Error decoding JSON: ")
                        )),
                        // An @timestamp, @metadata or type that cannot be used: as Filebeat
                        // with overwrite_keys, but a bad line here follows on_json_error.
                        (Some(e), true) => Err(e.clone()),
                        (None, _) => Ok(d),
                    }
                });
            match parsed {
                Ok(d) => self.json_event(enc, now, &d, escape_html),
                Err(reason) => match self.on_error {
                    JsonErrorPolicy::Drop => return Line::Dropped(reason),
                    JsonErrorPolicy::ErrorEvent => {
                        self.error_event(enc, now, line, &reason, escape_html)
                    }
                },
            }
        } else {
            let text = String::from_utf8_lossy(line);
            let mut w = enc.begin(now);
            // A `message` among the configured fields overwrites the line, as in libbeat.
            if !self.common.root_keys.iter().any(|k| k == "message") {
                w.str_field("message", &text);
            }
            w.raw_pairs(&self.common.fields_json);
            w.raw_pairs(&self.common.tags_json);
            w.finish()
        };
        match self.common.finish(bytes, true) {
            Some(b) => Line::Event(b),
            None => Line::Filtered,
        }
    }

    fn error_event(
        &self,
        enc: &mut EventEncoder,
        now: SystemTime,
        line: &[u8],
        reason: &str,
        escape_html: bool,
    ) -> Bytes {
        let text = String::from_utf8_lossy(line);
        let mut w = enc.begin(now);
        w.str_field("message", &text);
        w.key("error");
        w.raw_pairs(b"{\"message\":");
        let mut b = BytesMut::new();
        let _ = write_json(&mut b, reason, escape_html);
        w.raw_pairs(&b);
        w.raw_pairs(b"}");
        write_tail(&mut w, &self.common, &["message", "error"]);
        let mut tags = vec!["_jsonparsefailure".to_string()];
        tags.extend(self.common.tags.iter().cloned());
        if w.value_field("tags", &tags).is_err() {
            // A Vec<String> always serializes.
        }
        w.finish()
    }

    fn json_event(
        &self,
        enc: &mut EventEncoder,
        now: SystemTime,
        d: &Decoded,
        escape_html: bool,
    ) -> Bytes {
        let mut extra = BytesMut::new();
        for (k, v) in &d.metadata {
            if matches!(k.as_str(), "beat" | "type" | "version") {
                continue;
            }
            extra.extend_from_slice(b",");
            let _ = write_json(&mut extra, k.as_str(), escape_html);
            extra.extend_from_slice(b":");
            extra.extend_from_slice(&d.json(v));
        }
        let mut w = enc.begin_with_metadata(d.timestamp.unwrap_or(now), &extra);
        write_decoded(&mut w, d, &self.common, &|_| false, escape_html);
        w.finish()
    }

    /// Starts the reading thread.
    ///
    /// # Errors
    /// When the thread cannot be spawned.
    pub fn start(
        self,
        name: &str,
        publisher: Publisher,
        meta: &EventMeta,
    ) -> std::io::Result<Vec<JoinHandle<()>>> {
        let escape_html = meta.escape_html;
        let enc = EventEncoder::new(meta);
        let input_name = name.to_string();
        let handle = std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || {
                let stdin = std::io::stdin();
                self.read_all(stdin.lock(), publisher, enc, escape_html, &input_name);
            })?;
        Ok(vec![handle])
    }

    /// Reads `reader` to its end, publishing every line.
    pub fn read_all<R: Read>(
        &self,
        reader: R,
        mut publisher: Publisher,
        mut enc: EventEncoder,
        escape_html: bool,
        name: &str,
    ) {
        let mut reader = std::io::BufReader::with_capacity(256 * 1024, reader);
        let mut buf = Vec::with_capacity(4096);
        let mut lineno: u64 = 0;
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(input = name, line = lineno + 1, error = %e, "cannot read standard input; input ends");
                    break;
                }
            }
            lineno += 1;
            let mut line = buf.as_slice();
            line = line.strip_suffix(b"\n").unwrap_or(line);
            line = line.strip_suffix(b"\r").unwrap_or(line);
            match self.line(&mut enc, line, escape_html) {
                Line::Event(bytes) => {
                    if publisher.publish(bytes).is_err() {
                        return;
                    }
                }
                Line::Filtered => {}
                Line::Dropped(reason) => {
                    publisher.count_input_drop();
                    tracing::warn!(input = name, line = lineno, reason = %reason, "dropped a stdin line that is not a JSON object (on_json_error: drop)");
                }
            }
            // Nothing more is waiting: hand what we have to the queue instead of holding
            // it until a chunk fills.
            if reader.buffer().is_empty() && publisher.flush().is_err() {
                return;
            }
        }
        if let Err(e) = publisher.close() {
            tracing::warn!(
                input = name,
                unpublished = e.unpublished,
                "stdin input stopped by shutdown"
            );
        }
    }
}

/// Writes the input's tail ([`CommonFields::fields_json`]) but the keys in `skip`.
fn write_tail(w: &mut EventWriter<'_>, c: &CommonFields, skip: &[&str]) {
    if !c.root_keys.iter().any(|k| skip.contains(&k.as_str())) {
        w.raw_pairs(&c.fields_json);
        return;
    }
    for (k, v) in &c.root_pairs {
        if !skip.contains(&k.as_str()) {
            w.raw_field(k, v);
        }
    }
}

/// Writes `tags`: the line's own tags (an array, or one value) followed by the configured ones.
/// One event from a JSON object's pairs at the root (stdin's `json`, the HTTP intake's
/// `prefix: .`): the object's own value of a key the input adds is merged as libbeat merges
/// (configured fields overwrite, built-in fields only fill in), configured `tags` are
/// appended to its own, and `headers` (already JSON) is added when given.
pub(crate) fn json_object_event(
    enc: &mut EventEncoder,
    now: SystemTime,
    pairs: &Pairs<'_>,
    c: &CommonFields,
    headers: Option<&[u8]>,
    escape_html: bool,
) -> Bytes {
    let mut w = enc.begin(now);
    let mut line_tags: Option<&RawValue> = None;
    let mut merged: Vec<&str> = Vec::new();
    for (k, v) in &pairs.0 {
        if k == "tags" && !c.tags.is_empty() {
            line_tags = Some(v);
            continue;
        }
        if headers.is_some() && k == "headers" {
            continue;
        }
        if c.root_keys.iter().any(|rk| rk == k) {
            if let Some(value) = c.merge_own(k, v.get().as_bytes(), escape_html) {
                w.raw_field(k, &value);
                merged.push(k);
            }
            continue;
        }
        w.raw_field(k, v.get().as_bytes());
    }
    if let Some(h) = headers {
        w.raw_field("headers", h);
    }
    write_tail(&mut w, c, &merged);
    if !c.tags.is_empty() {
        write_tags(&mut w, line_tags, &c.tags, escape_html);
    }
    w.finish()
}

fn write_tags(
    w: &mut EventWriter<'_>,
    line_tags: Option<&RawValue>,
    ours: &[String],
    escape_html: bool,
) {
    let mut all: Vec<serde_json::Value> = match line_tags.map(|r| serde_json::from_str(r.get())) {
        Some(Ok(serde_json::Value::Array(a))) => a,
        Some(Ok(other)) => vec![other],
        _ => Vec::new(),
    };
    all.extend(ours.iter().cloned().map(serde_json::Value::from));
    w.key("tags");
    let mut b = BytesMut::new();
    let _ = write_json(&mut b, &all, escape_html);
    w.raw_pairs(&b);
}

/// The ndjson settings of `json: true`.
fn stdin_ndjson() -> Ndjson {
    Ndjson::new(NdjsonConfig {
        overwrite_keys: true,
        add_error_key: true,
        ..NdjsonConfig::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::CommonInputConfig;

    fn input(json: bool, on_error: JsonErrorPolicy, common: &CommonInputConfig) -> StdinInput {
        let meta = EventMeta::default();
        StdinInput {
            json,
            on_error,
            common: CommonFields::new(common, &meta),
            ndjson: stdin_ndjson(),
        }
    }

    fn event(l: Line) -> serde_json::Value {
        match l {
            Line::Event(b) => serde_json::from_slice(&b).unwrap(),
            Line::Dropped(r) => panic!("dropped: {r}"),
            Line::Filtered => panic!("filtered"),
        }
    }

    #[test]
    fn json_values_pass_through_verbatim() {
        let i = input(
            true,
            JsonErrorPolicy::ErrorEvent,
            &CommonInputConfig::default(),
        );
        let mut enc = EventEncoder::new(&EventMeta::default());
        let Line::Event(b) = i.line(
            &mut enc,
            br#"{"n":1e3,"s":"\u00e9","o":{"b":1, "a":2}}"#,
            false,
        ) else {
            panic!("dropped")
        };
        let text = std::str::from_utf8(&b).unwrap();
        assert!(
            text.ends_with(r#","n":1e3,"s":"\u00e9","o":{"b":1, "a":2}}"#),
            "{text}"
        );
    }

    #[test]
    fn bad_line_becomes_error_event_or_drop() {
        let common = CommonInputConfig {
            tags: vec!["mine".into()],
            ..CommonInputConfig::default()
        };
        let i = input(true, JsonErrorPolicy::ErrorEvent, &common);
        let mut enc = EventEncoder::new(&EventMeta::default());
        let v = event(i.line(&mut enc, b"not json", false));
        assert_eq!(v["message"], "not json");
        assert_eq!(v["tags"], serde_json::json!(["_jsonparsefailure", "mine"]));
        assert!(v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not a JSON object"));
        let i = input(true, JsonErrorPolicy::Drop, &common);
        assert!(matches!(i.line(&mut enc, b"[1]", false), Line::Dropped(_)));
        assert!(matches!(
            i.line(&mut enc, br#"{"@timestamp":1}"#, false),
            Line::Dropped(_)
        ));
    }

    #[test]
    fn fields_and_tags_are_applied() {
        let mut common = CommonInputConfig {
            tags: vec!["t2".into()],
            ..CommonInputConfig::default()
        };
        common.fields.insert("env".into(), "prod".into());
        let i = input(true, JsonErrorPolicy::ErrorEvent, &common);
        let mut enc = EventEncoder::new(&EventMeta::default());
        let v = event(i.line(&mut enc, br#"{"tags":["t1"],"a":1}"#, false));
        assert_eq!(v["fields"]["env"], "prod");
        assert_eq!(v["tags"], serde_json::json!(["t1", "t2"]));
        common.fields_under_root = true;
        let i = input(true, JsonErrorPolicy::ErrorEvent, &common);
        let v = event(i.line(&mut enc, br#"{"env":"dev","a":1}"#, false));
        assert_eq!(v["env"], "prod");
        let i = input(false, JsonErrorPolicy::ErrorEvent, &common);
        let v = event(i.line(&mut enc, b"plain <line>", false));
        assert_eq!(v["message"], "plain <line>");
    }

    #[test]
    fn timestamp_and_metadata_follow_overwrite_keys() {
        let i = input(
            true,
            JsonErrorPolicy::ErrorEvent,
            &CommonInputConfig::default(),
        );
        let mut enc = EventEncoder::new(&EventMeta::default());
        let v = event(i.line(
            &mut enc,
            br#"{"@timestamp":"2021-03-04T05:06:07.089+01:00","@metadata":{"_id":"x1"},"a":1}"#,
            false,
        ));
        assert_eq!(v["@timestamp"], "2021-03-04T04:06:07.089Z");
        assert_eq!(v["@metadata"]["_id"], "x1");
        assert_eq!(v["@metadata"]["beat"], "skidder");
        assert_eq!(v["a"], 1);
        let v = event(i.line(&mut enc, br#"{"@timestamp":"soon","a":1}"#, false));
        assert_eq!(v["tags"], serde_json::json!(["_jsonparsefailure"]));
        assert!(v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("@timestamp not overwritten"));
    }
}
