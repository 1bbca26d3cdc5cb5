//! `decode_json_fields`: decodes the JSON text in string `fields`, replacing the field (or
//! writing to `target`; `target: ""` merges the object at the event's root, with
//! `overwrite_keys` deciding whether existing keys win). `max_depth` (default 1) decodes
//! JSON strings nested inside, as libbeat does; `process_array` lets that descend into
//! arrays. A parse failure is an error; with `add_error_key` the event gets libbeat's
//! `error: {message: "parsing input as JSON: …", data, field}`. Error texts are serde_json's,
//! not Go's.

use serde_json::Value;

use super::{
    deep_update, put, ConfigError, Event, Fields, Processor, ProcessorError, Settings, Verdict,
};

/// A built `decode_json_fields`.
#[derive(Debug)]
pub struct DecodeJsonFields {
    fields: Vec<String>,
    max_depth: u64,
    target: Option<String>,
    overwrite_keys: bool,
    expand_keys: bool,
    add_error_key: bool,
    process_array: bool,
    document_id: Option<String>,
}

/// The decoding was skipped (an array without `process_array` below the top level).
struct Skipped;

impl DecodeJsonFields {
    pub(crate) fn build(s: &Settings<'_>) -> Result<Self, ConfigError> {
        let max_depth = s.uint("max_depth")?.unwrap_or(1);
        if max_depth == 0 {
            return Err(s.error("max_depth", "must be at least 1"));
        }
        Ok(Self {
            fields: s
                .strings("fields")?
                .ok_or_else(|| s.error("fields", "required"))?,
            max_depth,
            target: s.string("target")?,
            overwrite_keys: s.bool("overwrite_keys", false)?,
            expand_keys: s.bool("expand_keys", false)?,
            add_error_key: s.bool("add_error_key", false)?,
            process_array: s.bool("process_array", false)?,
            document_id: s.string("document_id")?.filter(|d| !d.is_empty()),
        })
    }

    /// libbeat's `unmarshal`: decode, then decode structured strings inside, down to
    /// `depth` levels.
    fn unmarshal(&self, depth: u64, text: &str) -> Result<Result<Value, Skipped>, String> {
        let mut v: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
        if depth <= 1 {
            return Ok(Ok(v));
        }
        let mut try_inner = |item: &mut Value| {
            if let Value::String(s) = item {
                if is_structured(s) {
                    if let Ok(Ok(decoded)) = self.unmarshal(depth - 1, s) {
                        *item = decoded;
                    }
                }
            }
        };
        match &mut v {
            Value::Object(m) => m.values_mut().for_each(&mut try_inner),
            Value::Array(a) if self.process_array => a.iter_mut().for_each(&mut try_inner),
            Value::Array(_) => return Ok(Err(Skipped)),
            _ => {}
        }
        Ok(Ok(v))
    }

    fn json_error(&self, event: &mut Event, error: Value) {
        if self.add_error_key {
            event.fields.insert("error".to_string(), error);
        }
    }

    fn write_root(&self, event: &mut Event, mut keys: Fields) {
        if self.expand_keys {
            keys = expand(keys);
        }
        if !self.overwrite_keys {
            keys.remove("@timestamp");
            keys.remove("@metadata");
            deep_update(&mut event.fields, &keys, false);
            return;
        }
        if let Some(ts) = keys.remove("@timestamp") {
            match ts.as_str().and_then(super::normalise_timestamp) {
                Some(t) => event.timestamp = Value::from(t),
                None => self.json_error(
                    event,
                    serde_json::json!({"message": format!("@timestamp not overwritten (parse error on {ts})"), "type": "json"}),
                ),
            }
        }
        if let Some(meta) = keys.remove("@metadata") {
            match meta {
                Value::Object(m) => deep_update(&mut event.meta, &m, true),
                _ => self.json_error(
                    event,
                    serde_json::json!({"message": "failed to update @metadata", "type": "json"}),
                ),
            }
        }
        if let Some(t) = keys.remove("type") {
            match t.as_str() {
                Some(s) if !s.is_empty() && !s.starts_with('_') => {
                    event.fields.insert("type".into(), t.clone());
                }
                _ => self.json_error(
                    event,
                    serde_json::json!({"message": format!("type not overwritten (invalid value [{}])", t.as_str().unwrap_or_default()), "type": "json"}),
                ),
            }
        }
        deep_update(&mut event.fields, &keys, true);
    }
}

fn is_structured(s: &str) -> bool {
    let s = s.trim();
    s.len() > 1
        && ((s.starts_with('[') && s.ends_with(']')) || (s.starts_with('{') && s.ends_with('}')))
}

/// `expand_keys`: `{"a.b": 1}` becomes `{"a": {"b": 1}}`.
fn expand(keys: Fields) -> Fields {
    let mut out = Fields::new();
    for (k, v) in keys {
        let v = match v {
            Value::Object(m) => Value::Object(expand(m)),
            other => other,
        };
        let mut one = Fields::new();
        if put(&mut one, &k, v.clone()).is_err() {
            out.insert(k, v);
            continue;
        }
        deep_update(&mut out, &one, true);
    }
    out
}

impl Processor for DecodeJsonFields {
    fn name(&self) -> &'static str {
        "decode_json_fields"
    }

    fn run(&self, event: &mut Event) -> Result<Verdict, ProcessorError> {
        let mut errors = Vec::new();
        for field in &self.fields {
            let Some(Value::String(text)) = event.get(field) else {
                continue;
            };
            let text = text.clone();
            let mut output = match self.unmarshal(self.max_depth, &text) {
                Ok(Ok(v)) => v,
                Ok(Err(Skipped)) => {
                    errors.push("processing skipped".to_string());
                    continue;
                }
                Err(e) => {
                    self.json_error(
                        event,
                        serde_json::json!({"message": format!("parsing input as JSON: {e}"), "data": text, "field": field}),
                    );
                    errors.push(e);
                    continue;
                }
            };
            let mut id = None;
            if let (Some(key), Value::Object(m)) = (&self.document_id, &mut output) {
                if let Some(Value::String(s)) = super::get(m, key).cloned() {
                    super::delete(m, key);
                    id = Some(s);
                }
            }
            let target = self.target.as_deref().unwrap_or(field);
            if target.is_empty() {
                match output {
                    Value::Object(m) => self.write_root(event, m),
                    _ => {
                        errors.push("failed to add target to root".to_string());
                        continue;
                    }
                }
            } else if let Err(e) = event.put(target, output) {
                errors.push(e.message);
                continue;
            }
            if let Some(id) = id {
                event.meta.insert("_id".into(), Value::from(id));
            }
        }
        if errors.is_empty() {
            Ok(Verdict::Keep)
        } else {
            Err(ProcessorError::new(errors.join(", ")))
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::processors::tests::{event, one};
    use crate::processors::{Failures, Verdict};
    use serde_json::{json, Value};

    fn run(cfg: Value, fields: Value) -> (Value, Value, u64) {
        let p = one(json!({ "decode_json_fields": cfg }));
        let mut e = event(fields);
        let f = Failures::default();
        assert_eq!(p.run(&mut e, &f), Verdict::Keep);
        (Value::Object(e.fields), Value::Object(e.meta), f.count())
    }

    #[test]
    fn decode_json_fields_as_libbeat() {
        let msg = r#"{"a":{"b":1},"s":"{\"x\":2}","@timestamp":"2020-01-01T00:00:00Z"}"#;
        // Default: replace the field, depth 1 (the nested string stays a string).
        let (f, _, n) = run(json!({"fields": ["m"]}), json!({ "m": msg }));
        assert_eq!(f["m"]["a"]["b"], 1);
        assert_eq!(f["m"]["s"], r#"{"x":2}"#);
        assert_eq!(n, 0);
        // max_depth 2 decodes the nested string.
        let (f, _, _) = run(
            json!({"fields": ["m"], "max_depth": 2}),
            json!({ "m": msg }),
        );
        assert_eq!(f["m"]["s"]["x"], 2);
        // Root merge without overwrite: existing keys win, @timestamp is not a field.
        let (f, _, _) = run(
            json!({"fields": ["m"], "target": ""}),
            json!({"m": msg, "a": {"c": 3}}),
        );
        assert_eq!(f["a"], json!({"b": 1, "c": 3}));
        assert!(f.get("@timestamp").is_none());
        // A target elsewhere, document_id moved to @metadata._id.
        let (f, meta, _) = run(
            json!({"fields": ["m"], "target": "j", "document_id": "id"}),
            json!({"m": r#"{"id":"doc-1","v":1}"#}),
        );
        assert_eq!(f["j"], json!({"v": 1}));
        assert_eq!(meta["_id"], "doc-1");
        // Bad JSON: error counted, with add_error_key libbeat's error object.
        let (f, _, n) = run(
            json!({"fields": ["m"], "add_error_key": true}),
            json!({"m": "{not json"}),
        );
        assert_eq!(n, 1);
        assert_eq!(f["m"], "{not json");
        assert!(f["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("parsing input as JSON: "));
        assert_eq!(f["error"]["field"], "m");
        assert_eq!(f["error"]["data"], "{not json");
        // Two JSON values in one string are an error; a non-string field is skipped.
        let (_, _, n) = run(json!({"fields": ["m", "k"]}), json!({"m": "{} {}", "k": 1}));
        assert_eq!(n, 1);
        // expand_keys.
        let (f, _, _) = run(
            json!({"fields": ["m"], "target": "", "expand_keys": true}),
            json!({"m": r#"{"a.b":1,"a.c":2}"#}),
        );
        assert_eq!(f["a"], json!({"b": 1, "c": 2}));
    }
}
