//! `type: log` at run time: a [`FilestreamInput`] built from the log input's settings
//! ([`crate::config::log_input`]), with the two behaviours filestream does not have:
//! `tail_files`, and where Filebeat's log input puts the decoded JSON ([`LogJson`]).

use crate::config::log_input::{registry_id, LogInputConfig, LogJsonConfig};
use crate::config::CommonInputConfig;

use super::filestream::parsers::{Msg, Val};
use super::filestream::FilestreamInput;
use super::{CommonFields, InputError, InputIndex};

/// Builds the filestream input that runs a log input.
///
/// # Errors
/// [`InputError::Invalid`] naming the first bad key (validation has normally reported it,
/// with the log input's key names, before).
pub fn build(
    index: InputIndex,
    common_cfg: &CommonInputConfig,
    c: &LogInputConfig,
    common: CommonFields,
) -> Result<FilestreamInput, InputError> {
    let id = registry_id(common_cfg.id.as_deref(), c);
    let mut input = FilestreamInput::new(index, Some(&id), &c.to_filestream(), common)?;
    input.set_tail_files(c.tail_files);
    if let Some(j) = &c.json {
        input.set_log_json(LogJson::new(j));
    }
    Ok(input)
}

/// Filebeat's log input writes the decoded JSON differently from the filestream `ndjson`
/// parser (`libbeat/reader/readjson.MergeJSONFields`, `filebeat/input/log/harvester.go`):
/// the `message_key` value (joined by `multiline`) is written back to that key, never to a
/// top-level `message` of its own, and without `keys_under_root` a decoding error stays
/// inside `json`. Applied to each message after the line filters, which see the text.
#[derive(Debug, Clone)]
pub struct LogJson {
    keys_under_root: bool,
    message_key: Option<String>,
}

impl LogJson {
    /// The rules for `json.*`.
    pub fn new(c: &LogJsonConfig) -> Self {
        Self {
            keys_under_root: c.keys_under_root,
            message_key: c.message_key().map(str::to_string),
        }
    }

    /// Rewrites `m` into the log input's shape.
    pub fn apply(&self, m: &mut Msg) {
        let Some(d) = m.decoded.as_deref_mut() else {
            return;
        };
        // Filebeat's jsonFields: the decoded keys, or only `error` when the line was not
        // JSON and add_error_key is on; nothing at all otherwise (the raw line is `message`).
        if !d.ok && d.error.is_none() {
            return;
        }
        // Only `error` decoded and no message_key: the line stays `message` (Filebeat's
        // `len(jsonFields) == 1` rule); otherwise the text goes to message_key or nowhere.
        let keep_message = self.message_key.is_none() && !d.ok;
        let text = if keep_message {
            m.text.clone()
        } else {
            std::mem::take(&mut m.text)
        };
        if self.keys_under_root {
            if let Some(k) = &self.message_key {
                set(&mut d.pairs, k, serde_json::Value::String(text));
            }
        } else {
            let own = d
                .pairs
                .iter()
                .position(|(k, _)| k == "json")
                .map(|i| d.pairs.remove(i).1);
            let mut obj = match own.map(|v| d.value(&v)) {
                Some(serde_json::Value::Object(o)) => o,
                _ => serde_json::Map::new(),
            };
            if let Some(e) = d.error.take() {
                obj.insert(
                    "error".into(),
                    serde_json::json!({ "message": e, "type": "json" }),
                );
            }
            if let Some(k) = &self.message_key {
                obj.insert(k.clone(), serde_json::Value::String(text));
            }
            d.pairs
                .push(("json".into(), Val::Owned(serde_json::Value::Object(obj))));
        }
    }
}

fn set(pairs: &mut Vec<(String, Val)>, key: &str, v: serde_json::Value) {
    match pairs.iter_mut().find(|(k, _)| k == key) {
        Some(slot) => slot.1 = Val::Owned(v),
        None => pairs.push((key.to_string(), Val::Owned(v))),
    }
}
