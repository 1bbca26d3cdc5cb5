//! Processors: libbeat's event processors, run on the input's thread before an event is
//! published.
//!
//! # Where they run (libbeat's order, `processing/default.go`)
//! ```text
//! input's event ─▶ input.type, fields, tags ─▶ input `processors` ─▶ built-in fields ─▶ top-level `processors` ─▶ queue
//!                  (pre-encoded, overwrite)                          (agent.*, ecs, host.name; never overwrite)
//! ```
//! So an input's processors cannot see `agent.*` or `host.name`, and a top-level processor can.
//!
//! # Cost
//! An input with no processor (its own list and the top-level one both empty) never builds
//! a tree: its events stay the bytes the input wrote. With processors, each event is parsed
//! once into an [`Event`] (`@timestamp`, `@metadata` and the fields, as libbeat keeps them
//! apart), every processor runs on it, and it is encoded once again. A list of only
//! `add_host_metadata` (Filebeat's default chain, `when.not.contains.tags: forwarded`
//! included) is the exception: its data does not depend on the event, so it is folded into
//! the input's pre-encoded tail, and its `when` decided once per input ([`pipeline`]).
//!
//! # Errors
//! A processor that fails does what Beats does with the event (most leave it as it was;
//! `rename`, `copy_fields` and `truncate_fields` with `fail_on_error` restore it and set
//! `error.message`), and the run goes on. Each failure is counted in [`Chain::failures`];
//! the first failure of each processor kind is logged at WARN with its reason, later ones
//! at DEBUG, so a per-event failure cannot flood the log.
//!
//! Processors that need Elastic's cloud, Docker or Kubernetes metadata load (they are in
//! Filebeat's default `filebeat.yml`) and are not applied; [`Chain::ignored`] lists them
//! for the WARN at start.

pub mod add_fields;
pub mod add_host_metadata;
pub mod add_locale;
pub mod add_tags;
pub mod condition;
pub mod copy_fields;
pub mod decode_json_fields;
pub mod drop_event;
pub mod drop_fields;
pub mod include_fields;
pub mod pipeline;
pub mod rename;
pub mod truncate_fields;

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use bytes::{Bytes, BytesMut};
use serde_json::{Map, Value};

use crate::event::write_json;
use condition::Condition;

/// A JSON object: the fields of an event, or a part of them.
pub type Fields = Map<String, Value>;

/// Processors whose metadata source skidder does not have; they load and are not applied.
pub const NOT_APPLIED: [&str; 3] = [
    "add_cloud_metadata",
    "add_docker_metadata",
    "add_kubernetes_metadata",
];

/// The processors skidder applies, by their Beats names.
pub const SUPPORTED: [&str; 11] = [
    "add_fields",
    "add_host_metadata",
    "add_locale",
    "add_tags",
    "copy_fields",
    "decode_json_fields",
    "drop_event",
    "drop_fields",
    "include_fields",
    "rename",
    "truncate_fields",
];

/// Why a processor list could not be built; names the list entry and key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ConfigError {
    /// The key path, `processors.0.rename.fields`.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl ConfigError {
    pub(crate) fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// Why a processor could not process one event; the event goes on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ProcessorError {
    /// What went wrong, for the log.
    pub message: String,
}

impl ProcessorError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }
}

/// What a processor decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The event goes on.
    Keep,
    /// The event is dropped (`drop_event`): acknowledged to its input, never shipped.
    Drop,
}

/// An event as processors see it: libbeat keeps `@timestamp` and `@metadata` apart from
/// the fields, and so do we (`rename` cannot move `@timestamp`; `@metadata.x` is reached by
/// its prefix).
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// `@timestamp`, as encoded.
    pub timestamp: Value,
    /// `@metadata`.
    pub meta: Fields,
    /// Everything else.
    pub fields: Fields,
}

impl Event {
    /// Parses an encoded event.
    ///
    /// # Errors
    /// When `bytes` is not a JSON object (a replayed line can be anything).
    pub fn parse(bytes: &[u8]) -> Result<Self, ProcessorError> {
        let mut fields: Fields = serde_json::from_slice(bytes)
            .map_err(|e| ProcessorError::new(format!("event is not a JSON object: {e}")))?;
        let timestamp = fields.remove("@timestamp").unwrap_or(Value::Null);
        let meta = match fields.remove("@metadata") {
            Some(Value::Object(m)) => m,
            _ => Fields::new(),
        };
        Ok(Self {
            timestamp,
            meta,
            fields,
        })
    }

    /// Encodes the event with libbeat's string rules: `@timestamp`, `@metadata`, then the
    /// fields. `base_meta` (`beat`, `type`, `version`) is put back where a processor removed
    /// it, as libbeat's encoder always writes it.
    pub fn encode(&self, base_meta: &Fields, escape_html: bool) -> Bytes {
        // Copied only when a processor removed one of libbeat's keys.
        let patched;
        let meta = if base_meta.keys().all(|k| self.meta.contains_key(k)) {
            &self.meta
        } else {
            let mut m = self.meta.clone();
            for (k, v) in base_meta {
                m.entry(k.clone()).or_insert_with(|| v.clone());
            }
            patched = m;
            &patched
        };
        let mut out = BytesMut::with_capacity(512);
        // Strings and serde_json values always serialize.
        let pair = |out: &mut BytesMut, k: &str, v: &Value| {
            out.extend_from_slice(b",");
            let _ = write_json(out, k, escape_html);
            out.extend_from_slice(b":");
            let _ = write_json(out, v, escape_html);
        };
        out.extend_from_slice(b"{");
        if !self.timestamp.is_null() {
            out.extend_from_slice(b"\"@timestamp\":");
            let _ = write_json(&mut out, &self.timestamp, escape_html);
            out.extend_from_slice(b",");
        }
        out.extend_from_slice(b"\"@metadata\":");
        let _ = write_json(&mut out, meta, escape_html);
        for (k, v) in &self.fields {
            pair(&mut out, k, v);
        }
        out.extend_from_slice(b"}");
        out.freeze()
    }

    /// The value at a dotted path; `@timestamp` and `@metadata.x` as in libbeat.
    pub fn get(&self, key: &str) -> Option<&Value> {
        if key == "@timestamp" {
            return Some(&self.timestamp).filter(|v| !v.is_null());
        }
        match meta_key(key) {
            Some("") => None,
            Some(sub) => get(&self.meta, sub),
            None => get(&self.fields, key),
        }
    }

    /// Sets the value at a dotted path, creating objects on the way.
    ///
    /// # Errors
    /// When a part of the path is a value that is not an object.
    pub fn put(&mut self, key: &str, value: Value) -> Result<(), ProcessorError> {
        if key == "@timestamp" {
            self.timestamp = value;
            return Ok(());
        }
        match meta_key(key) {
            Some("") => match value {
                Value::Object(m) => {
                    self.meta = m;
                    Ok(())
                }
                _ => Err(ProcessorError::new("@metadata must be an object")),
            },
            Some(sub) => put(&mut self.meta, sub, value),
            None => put(&mut self.fields, key, value),
        }
    }

    /// Removes the value at a dotted path; `None` when there was none.
    pub fn delete(&mut self, key: &str) -> Option<Value> {
        match meta_key(key) {
            Some("") => Some(Value::Object(std::mem::take(&mut self.meta))),
            Some(sub) => delete(&mut self.meta, sub),
            None => delete(&mut self.fields, key),
        }
    }

    /// Sets `error.message`, as libbeat's processors do on failure.
    pub fn set_error_message(&mut self, message: &str) {
        // `error` may be a non-object the event brought; libbeat's Put fails then too.
        let _ = self.put("error.message", Value::from(message));
    }
}

fn meta_key(key: &str) -> Option<&str> {
    if key == "@metadata" {
        return Some("");
    }
    key.strip_prefix("@metadata.")
}

/// The value at a dotted path in `map`.
pub fn get<'a>(map: &'a Fields, key: &str) -> Option<&'a Value> {
    let mut parts = key.split('.');
    let mut v = map.get(parts.next()?)?;
    for p in parts {
        v = v.as_object()?.get(p)?;
    }
    Some(v)
}

/// Sets the value at a dotted path in `map`, creating objects on the way.
///
/// # Errors
/// When a part of the path is a value that is not an object (libbeat's `Put` refuses too).
pub fn put(map: &mut Fields, key: &str, value: Value) -> Result<(), ProcessorError> {
    let (parents, last) = match key.rsplit_once('.') {
        Some((p, l)) => (Some(p), l),
        None => (None, key),
    };
    let mut cur = map;
    if let Some(parents) = parents {
        for p in parents.split('.') {
            let slot = cur
                .entry(p.to_string())
                .or_insert_with(|| Value::Object(Fields::new()));
            cur = match slot {
                Value::Object(m) => m,
                other => {
                    return Err(ProcessorError::new(format!(
                        "cannot set {key}: {p} is a {} value, not an object",
                        kind(other)
                    )))
                }
            };
        }
    }
    cur.insert(last.to_string(), value);
    Ok(())
}

/// Removes the value at a dotted path in `map`.
pub fn delete(map: &mut Fields, key: &str) -> Option<Value> {
    match key.rsplit_once('.') {
        None => map.remove(key),
        Some((parents, last)) => {
            let mut cur = map;
            for p in parents.split('.') {
                cur = cur.get_mut(p)?.as_object_mut()?;
            }
            cur.remove(last)
        }
    }
}

/// An RFC 3339 timestamp as libbeat encodes `@timestamp`: UTC, milliseconds
/// (`2024-01-02T03:04:05.678Z`); `None` when `text` is not RFC 3339.
pub fn normalise_timestamp(text: &str) -> Option<String> {
    let t = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .ok()?
        .to_offset(time::UtcOffset::UTC);
    Some(format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    ))
}

/// The JSON type of a value, for messages.
pub fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Merges `from` into `into` as libbeat's `DeepUpdate` (objects merge key by key; any other
/// value replaces, or with `overwrite` false is kept when the key exists).
pub fn deep_update(into: &mut Fields, from: &Fields, overwrite: bool) {
    for (k, v) in from {
        match (into.get_mut(k), v) {
            (Some(Value::Object(a)), Value::Object(b)) => deep_update(a, b, overwrite),
            (Some(_), _) if !overwrite => {}
            _ => {
                into.insert(k.clone(), v.clone());
            }
        }
    }
}

/// Appends `tags` to the list at `key` (created when missing); libbeat's
/// `AddTagsWithKey`: a value there that is not a list is an error and is left alone.
///
/// # Errors
/// When `key` holds something other than a list.
pub fn add_tags(fields: &mut Fields, key: &str, tags: &[String]) -> Result<(), ProcessorError> {
    match get(fields, key) {
        None => put(
            fields,
            key,
            Value::Array(tags.iter().cloned().map(Value::from).collect()),
        ),
        Some(Value::Array(_)) => {
            if let Some(Value::Array(list)) = get_mut(fields, key) {
                list.extend(tags.iter().cloned().map(Value::from));
            }
            Ok(())
        }
        Some(other) => Err(ProcessorError::new(format!(
            "expected {key} to be a list, found a {} value",
            kind(other)
        ))),
    }
}

fn get_mut<'a>(map: &'a mut Fields, key: &str) -> Option<&'a mut Value> {
    let mut parts = key.split('.');
    let mut v = map.get_mut(parts.next()?)?;
    for p in parts {
        v = v.as_object_mut()?.get_mut(p)?;
    }
    Some(v)
}

/// One processor.
pub trait Processor: fmt::Debug + Send + Sync {
    /// Its Beats name, for logs.
    fn name(&self) -> &'static str;

    /// Processes one event.
    ///
    /// # Errors
    /// When the processor could not do its job; the event has been left as Beats leaves it.
    fn run(&self, event: &mut Event) -> Result<Verdict, ProcessorError>;

    /// Itself when it is an `add_host_metadata`, whose data an input can fold into its
    /// pre-encoded tail instead of parsing every event (see [`pipeline`]).
    fn host_metadata(&self) -> Option<&add_host_metadata::AddHostMetadata> {
        None
    }
}

/// A processor with its `when` condition.
#[derive(Debug)]
struct Step {
    when: Option<Condition>,
    processor: Box<dyn Processor>,
}

/// A processor list (top-level or an input's), in order.
#[derive(Debug, Default)]
pub struct Processors {
    steps: Vec<Step>,
    /// Entries loaded but not applied (cloud, Docker, Kubernetes metadata).
    pub ignored: Vec<String>,
}

impl Processors {
    /// Builds the list written at `path` (`processors`, `filebeat.inputs.0.processors`).
    ///
    /// # Errors
    /// Every entry that is not a one-key mapping naming a known processor with valid
    /// settings, each naming its key path.
    pub fn build(list: &[Value], path: &str) -> Result<Self, Vec<ConfigError>> {
        let mut out = Self::default();
        let mut errors = Vec::new();
        for (i, entry) in list.iter().enumerate() {
            let at = format!("{path}.{i}");
            match build_step(entry, &at) {
                Ok(Built::Step(s)) => out.steps.push(s),
                Ok(Built::Ignored(name)) => out.ignored.push(format!("{at}.{name}")),
                Err(e) => errors.push(e),
            }
        }
        if errors.is_empty() {
            Ok(out)
        } else {
            Err(errors)
        }
    }

    /// True when nothing runs (no entry, or only ignored ones).
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// The list's processors with their conditions when every one is a foldable
    /// `add_host_metadata` (an empty list gives an empty one); `None` otherwise.
    pub(crate) fn only_host_metadata(
        &self,
    ) -> Option<Vec<(&add_host_metadata::AddHostMetadata, Option<&Condition>)>> {
        self.steps
            .iter()
            .map(|s| {
                s.processor
                    .host_metadata()
                    .filter(|h| h.foldable())
                    .map(|h| (h, s.when.as_ref()))
            })
            .collect()
    }

    /// The `add_host_metadata` processors of the list, in order, without allocating (for a
    /// list [`Self::only_host_metadata`] accepted, every one).
    pub(crate) fn host_metadata(
        &self,
    ) -> impl Iterator<Item = &add_host_metadata::AddHostMetadata> {
        self.steps
            .iter()
            .filter_map(|s| s.processor.host_metadata())
    }

    /// Runs every processor whose condition holds, in order; stops at a drop.
    pub fn run(&self, event: &mut Event, failures: &Failures) -> Verdict {
        for step in &self.steps {
            if let Some(c) = &step.when {
                if !c.check(event) {
                    continue;
                }
            }
            match step.processor.run(event) {
                Ok(Verdict::Keep) => {}
                Ok(Verdict::Drop) => return Verdict::Drop,
                Err(e) => failures.record(step.processor.name(), &e),
            }
        }
        Verdict::Keep
    }
}

enum Built {
    Step(Step),
    Ignored(&'static str),
}

/// The settings of one processor entry (`{rename: {fields: [...], when: ...}}`).
pub(crate) struct Settings<'a> {
    /// The processor's key path, for errors.
    pub path: String,
    map: &'a Fields,
    used: std::cell::RefCell<Vec<&'static str>>,
}

impl<'a> Settings<'a> {
    /// The value of `key`, if set (and not null).
    pub fn get(&self, key: &'static str) -> Option<&'a Value> {
        self.used.borrow_mut().push(key);
        self.map.get(key).filter(|v| !v.is_null())
    }

    /// An error at `key`.
    pub fn error(&self, key: &str, message: impl Into<String>) -> ConfigError {
        ConfigError::new(format!("{}.{key}", self.path), message)
    }

    /// A required value of `key`.
    pub fn required(&self, key: &'static str) -> Result<&'a Value, ConfigError> {
        self.get(key).ok_or_else(|| self.error(key, "required"))
    }

    /// A boolean (YAML 1.1 words accepted, as Beats).
    pub fn bool(&self, key: &'static str, default: bool) -> Result<bool, ConfigError> {
        match self.get(key) {
            None => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(Value::String(s)) => match s.to_ascii_lowercase().as_str() {
                "yes" | "on" | "true" => Ok(true),
                "no" | "off" | "false" => Ok(false),
                _ => Err(self.error(key, format!("expected a boolean, found {s:?}"))),
            },
            Some(v) => Err(self.error(key, format!("expected a boolean, found a {}", kind(v)))),
        }
    }

    /// A string; numbers and booleans written unquoted are their text, as Beats reads them.
    pub fn string(&self, key: &'static str) -> Result<Option<String>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => scalar_text(v)
                .map(Some)
                .ok_or_else(|| self.error(key, format!("expected a string, found a {}", kind(v)))),
        }
    }

    /// A list of strings; a single string is a list of one (Beats' rule).
    pub fn strings(&self, key: &'static str) -> Result<Option<Vec<String>>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    scalar_text(v).ok_or_else(|| {
                        self.error(
                            &format!("{key}.{i}"),
                            format!("expected a string, found a {}", kind(v)),
                        )
                    })
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(v) => scalar_text(v)
                .map(|s| Some(vec![s]))
                .ok_or_else(|| self.error(key, "expected a list of strings")),
        }
    }

    /// A non-negative integer.
    pub fn uint(&self, key: &'static str) -> Result<Option<u64>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_u64()
                .map(Some)
                .ok_or_else(|| self.error(key, "expected a non-negative integer")),
        }
    }

    /// A list of `{from, to}` pairs (`rename`, `copy_fields`).
    pub fn pairs(&self, key: &'static str) -> Result<Vec<(String, String)>, ConfigError> {
        let list = match self.required(key)? {
            Value::Array(a) => a,
            _ => return Err(self.error(key, "expected a list of {from, to} mappings")),
        };
        list.iter()
            .enumerate()
            .map(|(i, item)| {
                let text = |k: &str| {
                    item.get(k)
                        .and_then(scalar_text)
                        .ok_or_else(|| self.error(&format!("{key}.{i}.{k}"), "required string"))
                };
                Ok((text("from")?, text("to")?))
            })
            .collect()
    }

    /// Fails on keys that were never asked for (a typo must not be silently ignored).
    fn finish(&self) -> Result<(), ConfigError> {
        let used = self.used.borrow();
        for k in self.map.keys() {
            if k == "when" || used.contains(&k.as_str()) {
                continue;
            }
            let hint = match crate::config::check::did_you_mean(k, used.iter().copied()) {
                Some(s) => format!("; did you mean {s}?"),
                None => String::new(),
            };
            return Err(self.error(k, format!("unknown key{hint}")));
        }
        Ok(())
    }
}

/// The text of a scalar (string, number, boolean).
pub(crate) fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn build_step(entry: &Value, at: &str) -> Result<Built, ConfigError> {
    let Some(map) = entry.as_object() else {
        return Err(ConfigError::new(
            at,
            "expected a mapping with one processor name, e.g. {drop_fields: {fields: [a]}}",
        ));
    };
    if map.len() != 1 {
        return Err(ConfigError::new(
            at,
            format!(
                "expected exactly one processor name, found {}",
                if map.is_empty() {
                    "none".to_string()
                } else {
                    map.keys().cloned().collect::<Vec<_>>().join(", ")
                }
            ),
        ));
    }
    let Some((name, settings)) = map.iter().next() else {
        return Err(ConfigError::new(at, "expected one processor name"));
    };
    let path = format!("{at}.{name}");
    if let Some(n) = NOT_APPLIED.iter().find(|n| *n == name) {
        return Ok(Built::Ignored(n));
    }
    // `netinfo.enabled: false` is `netinfo: {enabled: false}`, as everywhere in Beats.
    let expanded;
    let empty = Fields::new();
    let map = match settings {
        Value::Object(m) if m.keys().any(|k| k.contains('.')) => {
            let mut out = Fields::new();
            for (k, v) in m {
                let mut one = Fields::new();
                if put(&mut one, k, v.clone()).is_err() {
                    one.insert(k.clone(), v.clone());
                }
                deep_update(&mut out, &one, true);
            }
            expanded = out;
            &expanded
        }
        Value::Object(m) => m,
        Value::Null => &empty,
        other => {
            return Err(ConfigError::new(
                path,
                format!("expected a mapping of settings, found a {}", kind(other)),
            ))
        }
    };
    let s = Settings {
        path: path.clone(),
        map,
        used: std::cell::RefCell::new(Vec::new()),
    };
    let when = match map.get("when") {
        None | Some(Value::Null) => None,
        Some(c) => Some(Condition::build(c, &format!("{path}.when"))?),
    };
    let processor: Box<dyn Processor> = match name.as_str() {
        "add_fields" => Box::new(add_fields::AddFields::build(&s)?),
        "add_host_metadata" => Box::new(add_host_metadata::AddHostMetadata::build(&s)?),
        "add_locale" => Box::new(add_locale::AddLocale::build(&s)?),
        "add_tags" => Box::new(add_tags::AddTags::build(&s)?),
        "copy_fields" => Box::new(copy_fields::CopyFields::build(&s)?),
        "decode_json_fields" => Box::new(decode_json_fields::DecodeJsonFields::build(&s)?),
        "drop_event" => Box::new(drop_event::DropEvent),
        "drop_fields" => Box::new(drop_fields::DropFields::build(&s)?),
        "include_fields" => Box::new(include_fields::IncludeFields::build(&s)?),
        "rename" => Box::new(rename::Rename::build(&s)?),
        "truncate_fields" => Box::new(truncate_fields::TruncateFields::build(&s)?),
        other => {
            let mut known: Vec<&str> = SUPPORTED.to_vec();
            known.extend(NOT_APPLIED);
            let hint = match crate::config::check::did_you_mean(other, known.iter().copied()) {
                Some(n) => format!("; did you mean {n}?"),
                None => String::new(),
            };
            known.sort_unstable();
            return Err(ConfigError::new(
                path,
                format!(
                    "unknown processor {other:?}{hint} (skidder runs: {})",
                    known.join(", ")
                ),
            ));
        }
    };
    s.finish()?;
    Ok(Built::Step(Step { when, processor }))
}

/// Processor failures of one pipeline: counted, the first of each kind logged at WARN.
#[derive(Debug, Default)]
pub struct Failures {
    count: AtomicU64,
    logged: Mutex<Vec<&'static str>>,
}

impl Failures {
    /// Counts a failure of processor `name`; logs it at WARN if it is the first of its kind.
    pub fn record(&self, name: &'static str, e: &ProcessorError) {
        self.count.fetch_add(1, Ordering::Relaxed);
        let first = match self.logged.lock() {
            Ok(mut seen) if !seen.contains(&name) => {
                seen.push(name);
                true
            }
            _ => false,
        };
        if first {
            tracing::warn!(processor = name, error = %e, "a processor failed; the event goes on (later failures of this processor are counted and logged at DEBUG)");
        } else {
            tracing::debug!(processor = name, error = %e, "a processor failed; the event goes on");
        }
    }

    /// Failures so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    /// An event with these fields.
    pub fn event(fields: Value) -> Event {
        Event {
            timestamp: json!("2024-01-02T03:04:05.678Z"),
            meta: Fields::new(),
            fields: fields.as_object().cloned().unwrap_or_default(),
        }
    }

    /// Builds one processor from its YAML-like JSON entry.
    pub fn one(entry: Value) -> Processors {
        Processors::build(&[entry], "processors").unwrap()
    }

    /// Runs `entry` on `fields`: the verdict and the fields after.
    pub fn run(entry: Value, fields: Value) -> (Verdict, Value, u64) {
        let p = one(entry);
        let mut e = event(fields);
        let failures = Failures::default();
        let v = p.run(&mut e, &failures);
        (v, Value::Object(e.fields), failures.count())
    }

    #[test]
    fn paths_get_put_delete() {
        let mut m = json!({"a": {"b": 1}, "c": 2}).as_object().cloned().unwrap();
        assert_eq!(get(&m, "a.b"), Some(&json!(1)));
        assert_eq!(get(&m, "a.x"), None);
        put(&mut m, "a.d.e", json!(3)).unwrap();
        assert_eq!(get(&m, "a.d.e"), Some(&json!(3)));
        assert!(put(&mut m, "c.x", json!(1)).is_err());
        assert_eq!(delete(&mut m, "a.b"), Some(json!(1)));
        assert_eq!(delete(&mut m, "a.b"), None);
    }

    #[test]
    fn deep_update_overwrites_or_keeps() {
        let mut a = json!({"host": {"name": "mine", "ip": [1]}, "x": 1})
            .as_object()
            .cloned()
            .unwrap();
        let b = json!({"host": {"name": "beat", "os": "linux"}, "x": 2, "y": 3})
            .as_object()
            .cloned()
            .unwrap();
        let mut c = a.clone();
        deep_update(&mut a, &b, false);
        assert_eq!(
            Value::Object(a),
            json!({"host": {"name": "mine", "ip": [1], "os": "linux"}, "x": 1, "y": 3})
        );
        deep_update(&mut c, &b, true);
        assert_eq!(
            Value::Object(c),
            json!({"host": {"name": "beat", "ip": [1], "os": "linux"}, "x": 2, "y": 3})
        );
    }

    #[test]
    fn event_round_trip_keeps_timestamp_and_metadata_apart() {
        let e = Event::parse(
            br#"{"@timestamp":"2024-01-02T03:04:05.678Z","@metadata":{"beat":"filebeat","type":"_doc","version":"1"},"message":"a<b"}"#,
        )
        .unwrap();
        assert_eq!(e.fields.len(), 1);
        assert_eq!(e.get("@metadata.beat"), Some(&json!("filebeat")));
        let mut base = Fields::new();
        base.insert("beat".into(), json!("filebeat"));
        let mut dropped = e.clone();
        dropped.delete("@metadata");
        assert_eq!(
            &dropped.encode(&base, false)[..],
            br#"{"@timestamp":"2024-01-02T03:04:05.678Z","@metadata":{"beat":"filebeat"},"message":"a<b"}"#
        );
        assert!(e.encode(&base, true).ends_with(br#""a\u003cb"}"#));
    }

    #[test]
    fn config_errors_name_the_entry() {
        let err = |entry: Value| {
            Processors::build(&[json!({"add_tags": {"tags": ["a"]}}), entry], "processors")
                .unwrap_err()
                .remove(0)
                .to_string()
        };
        assert_eq!(
            err(json!({"drop_fieldz": {"fields": ["a"]}})),
            "processors.1.drop_fieldz: unknown processor \"drop_fieldz\"; did you mean drop_fields? (skidder runs: add_cloud_metadata, add_docker_metadata, add_fields, add_host_metadata, add_kubernetes_metadata, add_locale, add_tags, copy_fields, decode_json_fields, drop_event, drop_fields, include_fields, rename, truncate_fields)"
        );
        assert_eq!(
            err(json!({"drop_fields": {"field": ["a"]}})),
            "processors.1.drop_fields.fields: required"
        );
        assert_eq!(
            err(json!({"drop_fields": {"fields": ["a"], "ignore_mising": true}})),
            "processors.1.drop_fields.ignore_mising: unknown key; did you mean ignore_missing?"
        );
        assert_eq!(
            err(json!({"a": {}, "b": {}})),
            "processors.1: expected exactly one processor name, found a, b"
        );
        assert_eq!(
            err(json!({"drop_event": {"when": {"equalz": {"a": 1}}}})),
            "processors.1.drop_event.when: unknown condition \"equalz\"; did you mean equals? (conditions: equals, contains, regexp, range, has_fields, network, or, and, not)"
        );
    }

    #[test]
    fn cloud_docker_kubernetes_metadata_load_and_are_not_applied() {
        let p = Processors::build(
            &[
                json!({"add_cloud_metadata": null}),
                json!({"add_docker_metadata": {"host": "unix:///var/run/docker.sock"}}),
                json!({"add_kubernetes_metadata": {}}),
            ],
            "processors",
        )
        .unwrap();
        assert!(p.is_empty());
        assert_eq!(
            p.ignored,
            [
                "processors.0.add_cloud_metadata",
                "processors.1.add_docker_metadata",
                "processors.2.add_kubernetes_metadata"
            ]
        );
    }

    #[test]
    fn a_failure_is_counted_and_the_chain_goes_on() {
        let p = Processors::build(
            &[
                json!({"drop_fields": {"fields": ["missing"]}}),
                json!({"add_tags": {"tags": ["after"]}}),
            ],
            "processors",
        )
        .unwrap();
        let mut e = event(json!({"a": 1}));
        let f = Failures::default();
        assert_eq!(p.run(&mut e, &f), Verdict::Keep);
        assert_eq!(p.run(&mut e, &f), Verdict::Keep);
        assert_eq!(f.count(), 2);
        assert_eq!(
            Value::Object(e.fields),
            json!({"a": 1, "tags": ["after", "after"]})
        );
    }
}
