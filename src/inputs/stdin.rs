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
        let finished = if self.json {
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
                Ok(d) => {
                    let common = self
                        .common
                        .current_for(d.pairs.iter().map(|(k, _)| k.as_str()));
                    common.finish(self.json_event(enc, now, &d, &common, escape_html), true)
                }
                Err(reason) => match self.on_error {
                    JsonErrorPolicy::Drop => return Line::Dropped(reason),
                    JsonErrorPolicy::ErrorEvent => {
                        let common = self.common.current_for(["message", "error", "tags"]);
                        let ev = self.error_event(enc, now, line, &reason, &common, escape_html);
                        common.finish(ev, true)
                    }
                },
            }
        } else {
            let text = String::from_utf8_lossy(line);
            let mut w = enc.begin(now);
            let common = self.common.current();
            // A `message` among the configured fields overwrites the line, as in libbeat.
            if !common.root_keys.iter().any(|k| k == "message") {
                w.str_field("message", &text);
            }
            w.raw_pairs(&common.fields_json);
            w.raw_pairs(&common.tags_json);
            common.finish(w.finish(), true)
        };
        match finished {
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
        common: &CommonFields,
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
        write_tail(&mut w, common, &["message", "error"]);
        let mut tags = vec!["_jsonparsefailure".to_string()];
        tags.extend(common.tags.iter().cloned());
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
        common: &CommonFields,
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
        write_decoded(&mut w, d, common, &|_| false, escape_html);
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
    use crate::inputs::Current;
    use std::sync::Arc;

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

    /// Stdin inputs over the same agent, one per processor list: `(top-level, input's)`.
    fn with_processors(
        agent: &crate::agent::Agent,
        top: serde_json::Value,
        own: serde_json::Value,
    ) -> StdinInput {
        let none = serde_json::json!([]);
        with_tags_and_processors(agent, (&none, top), (&none, own))
    }

    /// `line` as `fast` and `reference` write it, without `@timestamp` (read at different
    /// instants).
    fn through_both(
        fast: &StdinInput,
        reference: &StdinInput,
        line: &[u8],
    ) -> (serde_json::Value, serde_json::Value) {
        let mut enc = EventEncoder::new(&EventMeta::default());
        let mut got = event(fast.line(&mut enc, line, false));
        let mut want = event(reference.line(&mut enc, line, false));
        for v in [&mut got, &mut want] {
            v.as_object_mut().unwrap().remove("@timestamp");
        }
        (got, want)
    }

    /// As [`with_processors`], with `(tags, processors)` at the top level and in the input.
    fn with_tags_and_processors(
        agent: &crate::agent::Agent,
        (top_tags, top): (&serde_json::Value, serde_json::Value),
        (own_tags, own): (&serde_json::Value, serde_json::Value),
    ) -> StdinInput {
        use crate::processors::pipeline::{Global, InputChain};
        let meta = EventMeta::default();
        let config: crate::config::Config = serde_json::from_value(
            serde_json::json!({"name": "beat-name", "tags": top_tags, "processors": top}),
        )
        .unwrap();
        let global = Arc::new(Global::new(&config, agent.clone()).unwrap());
        let c: CommonInputConfig = serde_json::from_value(
            serde_json::json!({"fields": {"env": "prod"}, "tags": own_tags, "processors": own}),
        )
        .unwrap();
        let chain = InputChain::new("stdin", &c, "filebeat.inputs.0", global, &meta).unwrap();
        StdinInput {
            json: true,
            on_error: JsonErrorPolicy::ErrorEvent,
            common: CommonFields::with_chain(Arc::new(chain), &meta),
            ndjson: stdin_ndjson(),
        }
    }

    /// A chain of unconditional `add_host_metadata` folds its data into the tail and
    /// ships events unparsed, with the bytes the processors would give: the same chain
    /// with a condition that always holds runs them on each event, as before.
    #[test]
    fn folded_add_host_metadata_equals_running_it() {
        let dir = tempfile::tempdir().unwrap();
        let agent = crate::agent::Agent::load(dir.path(), Some("beat-name")).unwrap();
        let always = serde_json::json!({"not": {"has_fields": ["never.there"]}});
        let hm = |settings: serde_json::Value| serde_json::json!({"add_host_metadata": settings});
        let slow = |mut settings: serde_json::Value| {
            settings["when"] = always.clone();
            hm(settings)
        };
        let cases = [
            (vec![serde_json::json!({})], vec![]),
            (vec![], vec![serde_json::json!({"netinfo.enabled": false})]),
            (
                vec![serde_json::json!({"cache.ttl": "1h", "name": "custom"})],
                vec![serde_json::json!({"netinfo": {"enabled": false}})],
            ),
        ];
        let lines: [&[u8]; 6] = [
            br#"{"message":"m"}"#,
            br#"{"message":"m","host":{"name":"mine"}}"#,
            br#"{"host":{"name":"n","ip":["192.0.2.1"],"own":1}}"#,
            br#"{"host":{"os":{"name":"own-os","extra":true}}}"#,
            br#"{"host":"a string","env":"x","input":{"id":7}}"#,
            b"not json",
        ];
        for (top, own) in cases {
            let fast = with_processors(
                &agent,
                serde_json::Value::from(top.iter().cloned().map(hm).collect::<Vec<_>>()),
                serde_json::Value::from(own.iter().cloned().map(hm).collect::<Vec<_>>()),
            );
            let reference = with_processors(
                &agent,
                serde_json::Value::from(top.iter().cloned().map(slow).collect::<Vec<_>>()),
                serde_json::Value::from(own.iter().cloned().map(slow).collect::<Vec<_>>()),
            );
            assert!(!fast.common.runs_processors(), "{top:?} {own:?} not folded");
            assert!(reference.common.runs_processors());
            for line in lines {
                let (got, want) = through_both(&fast, &reference, line);
                assert_eq!(
                    got,
                    want,
                    "{top:?} {own:?} {}",
                    String::from_utf8_lossy(line)
                );
                assert!(got["host"]["os"]["type"] == "linux", "{got}");
            }
        }
    }

    /// Filebeat's default `add_host_metadata` with `when.not.contains.tags: forwarded`
    /// (and any `when` on keys libbeat adds) is folded too: decided once for the events
    /// that bring none of the keys it reads, and run on each event that does (its own
    /// `tags`, `fields`), with the bytes running the processors on every event gives.
    #[test]
    fn folded_conditional_add_host_metadata_equals_running_it() {
        use serde_json::json;
        let dir = tempfile::tempdir().unwrap();
        let agent = crate::agent::Agent::load(dir.path(), Some("beat-name")).unwrap();
        let hm = |when: &serde_json::Value| json!([{"add_host_metadata": {"when": when}}]);
        // The same decision with a part no fold decides: every event runs the processors.
        let unfoldable = |when: &serde_json::Value| {
            hm(&json!({"and": [when, {"not": {"has_fields": ["never.there"]}}]}))
        };
        let default = json!({"not": {"contains": {"tags": "forwarded"}}});
        let on_fields = json!({"equals": {"fields.env": "prod"}});
        let on_agent = json!({"equals": {"agent.name": "beat-name"}});
        let none = json!(null);
        // (top-level tags, input tags, top-level `when`, input's `when`); null: no processor.
        let configs = [
            (json!([]), json!([]), &default, &none),
            (json!(["forwarded"]), json!([]), &default, &none),
            (json!([]), json!(["x", "forwarded"]), &none, &default),
            (json!(["a"]), json!([]), &none, &default),
            (json!(["a"]), json!([]), &on_agent, &on_fields),
        ];
        let lines: [&[u8]; 8] = [
            br#"{"message":"m"}"#,
            br#"{"message":"m","tags":["forwarded"]}"#,
            br#"{"message":"m","tags":["other"]}"#,
            br#"{"tags":"was-forwarded","host":{"name":"mine"}}"#,
            br#"{"host":{"os":{"name":"own-os"}},"tags":[]}"#,
            br#"{"fields":{"env":"dev"},"m":1}"#,
            br#"{"host":{"ip":["192.0.2.1"]},"m":2}"#,
            b"not json",
        ];
        let (mut with_host, mut without) = (0, 0);
        for (top_tags, own_tags, top, own) in &configs {
            let chain =
                |w: &serde_json::Value, f: &dyn Fn(&serde_json::Value) -> serde_json::Value| {
                    if w.is_null() {
                        json!([])
                    } else {
                        f(w)
                    }
                };
            let fast = with_tags_and_processors(
                &agent,
                (top_tags, chain(top, &hm)),
                (own_tags, chain(own, &hm)),
            );
            let reference = with_tags_and_processors(
                &agent,
                (top_tags, chain(top, &unfoldable)),
                (own_tags, chain(own, &unfoldable)),
            );
            let what = format!("tags {top_tags}/{own_tags}, when {top}/{own}");
            assert!(!fast.common.runs_processors(), "{what}: not folded");
            assert!(reference.common.runs_processors(), "{what}");
            assert!(!fast
                .common
                .current_for(["message", "log", "m"])
                .runs_processors());
            for line in lines {
                let (got, want) = through_both(&fast, &reference, line);
                assert_eq!(got, want, "{what}: {}", String::from_utf8_lossy(line));
                if got["host"]["os"]["type"] == "linux" {
                    with_host += 1;
                } else {
                    without += 1;
                }
            }
        }
        // Both outcomes of the conditions were compared.
        assert!(with_host > 5 && without > 5, "{with_host} / {without}");
        // Events bringing a key a condition reads go through the processors.
        let fast =
            with_tags_and_processors(&agent, (&json!([]), hm(&default)), (&json!([]), json!([])));
        assert!(fast.common.current_for(["tags"]).runs_processors());
    }

    /// Only cached, overwriting `add_host_metadata`, whose `when` (if any) reads only keys
    /// libbeat adds, is folded.
    #[test]
    fn other_chains_still_run_their_processors() {
        let dir = tempfile::tempdir().unwrap();
        let agent = crate::agent::Agent::load(dir.path(), None).unwrap();
        for top in [
            serde_json::json!([{"add_host_metadata": {"cache.ttl": 0}}]),
            serde_json::json!([{"add_host_metadata": {"replace_fields": false}}]),
            serde_json::json!([{"add_host_metadata": {}}, {"add_tags": {"tags": ["t"]}}]),
            serde_json::json!([{"add_host_metadata": {"when": {"has_fields": ["x"]}}}]),
            serde_json::json!([{"add_host_metadata": {"when": {"has_fields": ["host.id"]}}}]),
            serde_json::json!([{"add_host_metadata": {"when.contains.message": "x"}}]),
        ] {
            let i = with_processors(&agent, top.clone(), serde_json::json!([]));
            assert!(i.common.runs_processors(), "{top}");
        }
    }

    /// An event's own value merged with the tail is kept per key and bytes: the same value
    /// again is the same merge, the same bytes under another key are merged for that key,
    /// and more distinct values than the cache holds all still merge right.
    #[test]
    fn merged_own_values_are_reused_per_key_and_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let agent = crate::agent::Agent::load(dir.path(), None).unwrap();
        let i = with_processors(
            &agent,
            serde_json::json!([{"add_host_metadata": {"netinfo.enabled": false}}]),
            serde_json::json!([]),
        );
        let c = i.common.current();
        let parse = |b: &[u8]| serde_json::from_slice::<serde_json::Value>(b).unwrap();
        let own = br#"{"name":"mine","type":"x"}"#;
        let first = c.merge_own("host", own, false).unwrap();
        assert!(Arc::ptr_eq(
            &first,
            &c.merge_own("host", own, false).unwrap()
        ));
        let host = parse(&first);
        assert_eq!(
            (&host["name"], &host["os"]["type"]),
            (&"mine".into(), &"linux".into())
        );
        let input = parse(&c.merge_own("input", own, false).unwrap());
        assert_eq!(input, serde_json::json!({"name": "mine", "type": "stdin"}));
        for n in 0..600 {
            let own = format!(r#"{{"n":{n}}}"#);
            let host = parse(&c.merge_own("host", own.as_bytes(), false).unwrap());
            assert_eq!(
                (&host["n"], &host["os"]["type"]),
                (&n.into(), &"linux".into())
            );
        }
        // A long own value is merged each time, not kept.
        let long = format!(r#"{{"note":"{}"}}"#, "x".repeat(5000));
        let once = c.merge_own("host", long.as_bytes(), false).unwrap();
        let again = c.merge_own("host", long.as_bytes(), false).unwrap();
        assert!(!Arc::ptr_eq(&once, &again));
        assert_eq!(parse(&once)["os"]["type"], "linux");
    }

    /// When the cached host data is re-read (`cache.ttl` expired), the next event's tail
    /// is encoded again from it.
    #[test]
    fn folded_tail_follows_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let agent = crate::agent::Agent::load(dir.path(), None).unwrap();
        let i = with_processors(
            &agent,
            serde_json::json!([{"add_host_metadata": {"cache.ttl": "20ms"}}]),
            serde_json::json!([]),
        );
        let chain = i.common.chain.clone().unwrap();
        let first = i.common.current();
        let Current::Live(first) = first else {
            panic!("a folded tail is live")
        };
        let at = chain.host_generation().unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while chain.host_generation() == Some(at) {
            assert!(
                std::time::Instant::now() < deadline,
                "the host data was not re-read within 10 s of a 20 ms ttl"
            );
            std::thread::yield_now();
        }
        let Current::Live(next) = i.common.current() else {
            panic!("a folded tail is live")
        };
        assert!(!Arc::ptr_eq(&first, &next), "tail not encoded again");
        let mut enc = EventEncoder::new(&EventMeta::default());
        let ev = event(i.line(&mut enc, br#"{"m":1}"#, false));
        assert_eq!(ev["host"]["os"]["type"], "linux", "{ev}");
        let Current::Live(again) = i.common.current() else {
            panic!("a folded tail is live")
        };
        // Within one generation the encoding is shared, not redone.
        assert!(
            Arc::ptr_eq(&next, &again) || chain.host_generation() != Some(at + 1),
            "tail encoded again without a re-read"
        );
    }
}
