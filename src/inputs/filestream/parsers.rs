//! The `parsers` of a filestream input (`ndjson`, `multiline`), with Filebeat 7.17's
//! semantics (`shared/design/filebeat-reference.md` §1.6). The ndjson decoder is also what
//! `type: stdin` with `json: true` uses, so the JSON rules live here only.
//!
//! Decoded values stay the line's own JSON text (byte for byte) unless a rule has to look
//! inside them (`expand_keys`, a deep merge with `log`): most lines are checked by serde and
//! copied, never rebuilt.

use std::fmt;
use std::time::{Duration, Instant, SystemTime};

use bytes::BytesMut;
use regex::Regex;
use serde::de::{DeserializeSeed, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::config::filestream::{MultilineConfig, MultilineKind, NdjsonConfig, ParserConfig};
use crate::event::{write_json, EventWriter};
use crate::inputs::CommonFields;

/// A value of a decoded line: a span of the line's text, or a value rebuilt by a rule.
#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    /// `text[start..end]` of the [`Decoded`] it belongs to.
    Span(usize, usize),
    /// A value built by `expand_keys` or a merge.
    Owned(Value),
}

/// A decoded ndjson line.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Decoded {
    text: String,
    /// The keys for the event, in the line's order, each once (the last of duplicates wins,
    /// as in Go's decoder).
    pub pairs: Vec<(String, Val)>,
    /// `@timestamp` of the line (`overwrite_keys`).
    pub timestamp: Option<SystemTime>,
    /// Keys of the line's `@metadata` object (`overwrite_keys`), to add to the event's.
    pub metadata: Vec<(String, Val)>,
    /// `@metadata._id` from `document_id`.
    pub id: Option<String>,
    /// The `message_key` value, or the raw line when it did not decode.
    pub message: Option<String>,
    /// `error.message` when `add_error_key` is on and something went wrong.
    pub error: Option<String>,
    /// The line decoded as a JSON object.
    pub ok: bool,
}

impl Decoded {
    /// The JSON text of a value.
    pub fn json<'a>(&'a self, v: &'a Val) -> std::borrow::Cow<'a, [u8]> {
        match v {
            Val::Span(a, b) => std::borrow::Cow::Borrowed(&self.text.as_bytes()[*a..*b]),
            Val::Owned(v) => std::borrow::Cow::Owned(serde_json::to_vec(v).unwrap_or_default()),
        }
    }

    /// A value as a `serde_json::Value` (for merges).
    pub fn value(&self, v: &Val) -> Value {
        match v {
            Val::Span(a, b) => serde_json::from_str(&self.text[*a..*b]).unwrap_or(Value::Null),
            Val::Owned(v) => v.clone(),
        }
    }

    /// Removes `key`; its string goes back to `pool`.
    fn take(&mut self, key: &str, pool: &mut Vec<String>) -> Option<Val> {
        let i = self.pairs.iter().position(|(k, _)| k == key)?;
        let (k, v) = self.pairs.remove(i);
        pool.push(k);
        Some(v)
    }
}

/// The pairs of a JSON object, keys decoded, values as raw text (also the HTTP intake's
/// `prefix: .` objects).
pub(crate) struct Pairs<'a>(pub(crate) Vec<(String, &'a RawValue)>);

impl<'de> serde::Deserialize<'de> for Pairs<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Pairs<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, &'de RawValue>()? {
                    out.push((k, v));
                }
                Ok(Pairs(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// The `ndjson` parser.
#[derive(Debug, Clone)]
pub struct Ndjson {
    cfg: NdjsonConfig,
}

/// Finds `null` in a value (built once: a searcher per value cost more than the search).
static NULL: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
    std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"null"));

/// Collects a JSON object's pairs into `out`, each value a span of the line's text at
/// `base`, the keys written into strings taken from `pool` (a line of the same shape as the
/// last one allocates nothing). libbeat's null rule and Go's last-duplicate-wins apply.
struct PairsInto<'p> {
    out: &'p mut Vec<(String, Val)>,
    pool: &'p mut Vec<String>,
    base: usize,
    null: &'p memchr::memmem::Finder<'static>,
}

impl<'de> DeserializeSeed<'de> for PairsInto<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for PairsInto<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        loop {
            let mut k = self.pool.pop().unwrap_or_default();
            k.clear();
            if map.next_key_seed(KeyInto(&mut k))?.is_none() {
                self.pool.push(k);
                return Ok(());
            }
            let v: &'de RawValue = map.next_value()?;
            let raw = v.get();
            // libbeat drops null values from decoded objects (its MapStr normalisation):
            // `null` keys disappear, nested ones too. Only values that may hold one are
            // rebuilt; the rest stay the line's own bytes.
            if raw == "null" {
                if let Some(i) = self.out.iter().position(|(ok, _)| *ok == k) {
                    let (old, _) = self.out.remove(i);
                    self.pool.push(old);
                }
                self.pool.push(k);
                continue;
            }
            let rebuilt = (raw.len() > 4 && self.null.find(raw.as_bytes()).is_some())
                .then(|| serde_json::from_str::<Value>(raw).unwrap_or(Value::Null))
                .filter(has_null_member);
            let span = match rebuilt {
                Some(mut value) => {
                    drop_nulls(&mut value);
                    Val::Owned(value)
                }
                None => {
                    let start = raw.as_ptr() as usize - self.base;
                    Val::Span(start, start + raw.len())
                }
            };
            match self.out.iter_mut().find(|(ok, _)| *ok == k) {
                Some(slot) => {
                    slot.1 = span;
                    self.pool.push(k);
                }
                None => self.out.push((k, span)),
            }
        }
    }
}

/// Writes a decoded object key into a reused string.
struct KeyInto<'k>(&'k mut String);

impl<'de> DeserializeSeed<'de> for KeyInto<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_str(self)
    }
}

impl Visitor<'_> for KeyInto<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string key")
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<(), E> {
        self.0.push_str(v);
        Ok(())
    }
}

/// Parses an RFC 3339 `@timestamp` (also Go's `2006-01-02T15:04:05.000Z0700`, which Beats
/// accepts).
pub fn parse_timestamp(s: &str) -> Option<SystemTime> {
    use time::format_description::well_known::Rfc3339;
    if let Ok(t) = time::OffsetDateTime::parse(s, &Rfc3339) {
        return Some(t.into());
    }
    let fmt = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond][offset_hour sign:mandatory][offset_minute]"
    );
    time::OffsetDateTime::parse(s, &fmt).ok().map(Into::into)
}

impl Ndjson {
    /// The parser with its settings.
    pub fn new(cfg: NdjsonConfig) -> Self {
        Self { cfg }
    }

    /// `overwrite_keys`: the line's keys replace the event's.
    pub fn overwrite_keys(&self) -> bool {
        self.cfg.overwrite_keys
    }

    /// Decodes one line.
    pub fn decode(&self, line: &str) -> Decoded {
        let mut d = Decoded::default();
        self.decode_into(&mut d, line, &mut Vec::new());
        d
    }

    /// Decodes one line into `d`, reusing its buffers (whatever it held is replaced); the
    /// strings of its old keys go to `pool`, and new keys are written into strings from it.
    pub fn decode_into(&self, d: &mut Decoded, line: &str, pool: &mut Vec<String>) {
        pool.extend(d.pairs.drain(..).map(|(k, _)| k));
        d.text.clear();
        d.text.push_str(line);
        d.timestamp = None;
        d.metadata.clear();
        d.id = None;
        d.message = None;
        d.error = None;
        d.ok = false;
        let base = d.text.as_ptr() as usize;
        let mut de = serde_json::Deserializer::from_str(&d.text);
        let parsed = PairsInto {
            out: &mut d.pairs,
            pool,
            base,
            null: &NULL,
        }
        .deserialize(&mut de)
        .and_then(|()| de.end());
        if let Err(e) = parsed {
            pool.extend(d.pairs.drain(..).map(|(k, _)| k));
            d.message = Some(d.text.clone());
            self.error(d, format!("Error decoding JSON: {e}"));
            return;
        }
        d.ok = true;
        if self.cfg.expand_keys {
            let mut root = Map::new();
            let mut conflict = None;
            for (k, v) in std::mem::take(&mut d.pairs) {
                let v = d.value(&v);
                if let Err(e) = expand_into(&mut root, &k, v) {
                    conflict.get_or_insert(e);
                }
            }
            match conflict {
                Some(e) => self.error(d, e),
                None => d.pairs = root.into_iter().map(|(k, v)| (k, Val::Owned(v))).collect(),
            }
        }
        if !self.cfg.document_id.is_empty() {
            let key = self.cfg.document_id.clone();
            if let Some(v) = self.take_string(d, &key) {
                d.id = Some(v);
            }
        }
        if !self.cfg.message_key.is_empty() {
            let key = &self.cfg.message_key;
            match d
                .pairs
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| d.value(v))
            {
                Some(Value::String(s)) => d.message = Some(s),
                Some(_) => self.error(d, format!("Value of key '{key}' is not a string")),
                None => self.error(d, format!("Key '{key}' not found")),
            }
        }
        if !self.cfg.target.is_empty() {
            let mut obj = Map::new();
            for (k, v) in std::mem::take(&mut d.pairs) {
                obj.insert(k, d.value(&v));
            }
            d.pairs = vec![(self.cfg.target.clone(), Val::Owned(Value::Object(obj)))];
            return;
        }
        if !self.cfg.overwrite_keys {
            d.take("@timestamp", pool);
            d.take("@metadata", pool);
            return;
        }
        if let Some(v) = d.take("@timestamp", pool) {
            // The usual case, a plain string, is parsed where it lies.
            let quick = match v {
                Val::Span(a, b) => d.text[a..b]
                    .strip_prefix('"')
                    .and_then(|t| t.strip_suffix('"'))
                    .filter(|t| !t.contains('\\'))
                    .and_then(parse_timestamp),
                Val::Owned(_) => None,
            };
            if let Some(t) = quick {
                d.timestamp = Some(t);
            } else {
                self.timestamp(d, &v);
            }
        }
        if let Some(v) = d.take("@metadata", pool) {
            match d.value(&v) {
                Value::Object(m) => {
                    d.metadata = m.into_iter().map(|(k, v)| (k, Val::Owned(v))).collect();
                }
                other => self.error(
                    d,
                    format!("@metadata not overwritten (not an object) {other}"),
                ),
            }
        }
        if let Some(i) = d.pairs.iter().position(|(k, _)| k == "type") {
            let ok = matches!(d.value(&d.pairs[i].1), Value::String(ref s) if !s.is_empty() && !s.starts_with('_'));
            if !ok {
                // Go prints the value with %v: a string without its quotes.
                let v = match d.value(&d.pairs[i].1) {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                d.pairs.remove(i);
                self.error(d, format!("type not overwritten (invalid value [{v}])"));
            }
        }
    }

    /// `@timestamp` other than a plain string in the line: parsed as JSON, or an error.
    fn timestamp(&self, d: &mut Decoded, v: &Val) {
        match d.value(v) {
            Value::String(s) => match parse_timestamp(&s) {
                Some(t) => d.timestamp = Some(t),
                None => self.error(
                    d,
                    format!("@timestamp not overwritten (parse error on {s})"),
                ),
            },
            other => self.error(
                d,
                format!("@timestamp not overwritten (not string) {other}"),
            ),
        }
    }

    fn error(&self, d: &mut Decoded, msg: String) {
        if self.cfg.add_error_key {
            d.error = Some(msg);
        }
    }

    /// Removes the string at `key` (top level, or a dotted path into objects).
    fn take_string(&self, d: &mut Decoded, key: &str) -> Option<String> {
        if let Some(i) = d.pairs.iter().position(|(k, _)| k == key) {
            if let Value::String(s) = d.value(&d.pairs[i].1) {
                d.pairs.remove(i);
                return Some(s);
            }
            return None;
        }
        let (head, rest) = key.split_once('.')?;
        let i = d.pairs.iter().position(|(k, _)| k == head)?;
        let mut v = d.value(&d.pairs[i].1);
        let found = remove_path(&mut v, rest)?;
        d.pairs[i].1 = Val::Owned(v);
        Some(found)
    }
}

/// True when an object inside `v` has a null member.
fn has_null_member(v: &Value) -> bool {
    match v {
        Value::Object(m) => m.values().any(|x| x.is_null() || has_null_member(x)),
        Value::Array(a) => a.iter().any(has_null_member),
        _ => false,
    }
}

/// Removes null members of objects, at any depth (array elements stay).
fn drop_nulls(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|_, x| !x.is_null());
            m.values_mut().for_each(drop_nulls);
        }
        Value::Array(a) => a.iter_mut().for_each(drop_nulls),
        _ => {}
    }
}

fn remove_path(v: &mut Value, path: &str) -> Option<String> {
    let obj = v.as_object_mut()?;
    match path.split_once('.') {
        None => match obj.get(path) {
            Some(Value::String(_)) => match obj.remove(path) {
                Some(Value::String(s)) => Some(s),
                _ => None,
            },
            _ => None,
        },
        Some((head, rest)) => remove_path(obj.get_mut(head)?, rest),
    }
}

/// Puts `value` at the dotted `key` inside `root`, merging objects (`expand_keys`).
fn expand_into(root: &mut Map<String, Value>, key: &str, value: Value) -> Result<(), String> {
    let value = match value {
        Value::Object(m) => {
            let mut inner = Map::new();
            for (k, v) in m {
                expand_into(&mut inner, &k, v)?;
            }
            Value::Object(inner)
        }
        v => v,
    };
    let mut parts = key.split('.').peekable();
    let mut cur = root;
    while let Some(p) = parts.next() {
        if parts.peek().is_none() {
            match (cur.get_mut(p), value) {
                (Some(Value::Object(have)), Value::Object(add)) => {
                    for (k, v) in add {
                        expand_into(have, &k, v)?;
                    }
                }
                (Some(_), _) => {
                    return Err(format!("cannot expand {key:?}: found conflicting key"))
                }
                (None, v) => {
                    cur.insert(p.to_string(), v);
                }
            }
            return Ok(());
        }
        let next = cur
            .entry(p.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        cur = match next {
            Value::Object(m) => m,
            _ => return Err(format!("cannot expand {key:?}: found conflicting key")),
        };
    }
    Ok(())
}

/// Merges `add` into `base` (Beats' DeepUpdate): objects merge key by key; any other value
/// replaces when `overwrite`, and is ignored otherwise (DeepUpdateNoOverwrite).
pub fn deep_merge(base: &mut Value, add: Value, overwrite: bool) {
    match (base, add) {
        (Value::Object(b), Value::Object(a)) => {
            for (k, v) in a {
                match b.get_mut(&k) {
                    Some(slot) => deep_merge(slot, v, overwrite),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (slot, v) => {
            if overwrite {
                *slot = v;
            }
        }
    }
}

/// Writes a decoded line's keys (except those `skip` names, and those the input's `fields`
/// replace), its `error` (`add_error_key`), the input's `fields`, and `tags`: the line's own
/// followed by the configured ones.
pub fn write_decoded(
    w: &mut EventWriter<'_>,
    d: &Decoded,
    common: &CommonFields,
    skip: &dyn Fn(&str) -> bool,
    escape_html: bool,
) {
    let mut line_tags = None;
    let mut merged: Vec<&str> = Vec::new();
    for (k, v) in &d.pairs {
        if skip(k) || (k == "error" && d.error.is_some()) {
            continue;
        }
        if k == "tags" && !common.tags.is_empty() {
            line_tags = Some(v);
            continue;
        }
        // A key the input also adds: merged as libbeat merges (configured fields overwrite
        // the line's, built-in fields only fill in), and left out of the tail below.
        if common.root_keys.iter().any(|rk| rk == k) {
            if let Some(value) = common.merge_own(k, &d.json(v), escape_html) {
                w.raw_field(k, &value);
                merged.push(k.as_str());
            }
            continue;
        }
        w.raw_field(k, &d.json(v));
    }
    if let Some(e) = &d.error {
        w.key("error");
        w.raw_pairs(b"{\"message\":");
        let mut b = BytesMut::new();
        let _ = write_json(&mut b, e.as_str(), escape_html);
        w.raw_pairs(&b);
        w.raw_pairs(b",\"type\":\"json\"}");
    }
    if merged.is_empty() {
        w.raw_pairs(&common.fields_json);
    } else {
        for (k, v) in &common.root_pairs {
            if !merged.contains(&k.as_str()) {
                w.raw_field(k, v);
            }
        }
    }
    if common.tags.is_empty() {
        return;
    }
    let mut all: Vec<Value> = match line_tags.map(|v| d.value(v)) {
        Some(Value::Array(a)) => a,
        Some(other) => vec![other],
        None => Vec::new(),
    };
    all.extend(common.tags.iter().cloned().map(Value::from));
    w.key("tags");
    let mut b = BytesMut::new();
    let _ = write_json(&mut b, &all, escape_html);
    w.raw_pairs(&b);
}

/// A line or a group of lines on its way to becoming an event.
#[derive(Debug, Clone)]
pub struct Msg {
    /// The content: the line, the joined group, or an ndjson line's `message_key` value.
    pub text: String,
    /// Offset of the (first) line in the file.
    pub offset: u64,
    /// Offset just after the last line: where reading resumes once this event is acknowledged.
    pub end: u64,
    /// Several lines were joined.
    pub multiline: bool,
    /// Cut at `message_max_bytes` (or lines dropped past `max_lines`).
    pub truncated: bool,
    /// When the (first) line was read: the event's time.
    pub read_at: SystemTime,
    /// The ndjson decoding, when an ndjson parser ran.
    pub decoded: Option<Box<Decoded>>,
}

/// The `multiline` parser.
#[derive(Debug)]
pub struct Multiline {
    kind: MultilineKind,
    pattern: Option<Regex>,
    negate: bool,
    after: bool,
    flush: Option<Regex>,
    count: usize,
    max_lines: usize,
    timeout: Duration,
    separator: &'static str,
    max_bytes: usize,
    group: Option<(Msg, usize, Instant)>,
    /// Whether the last line of the open group matched (for `before` and `while_pattern`).
    last_matched: bool,
}

impl Multiline {
    /// Builds the parser.
    ///
    /// # Errors
    /// A sentence naming the bad setting.
    pub fn new(c: &MultilineConfig, max_bytes: usize) -> Result<Self, String> {
        let compile = |what: &str, s: &str| Regex::new(s).map_err(|e| format!("{what}: {e}"));
        let pattern = match c.kind {
            MultilineKind::Count => None,
            _ if c.pattern.is_empty() => return Err("pattern: required for this type".into()),
            _ => Some(compile("pattern", &c.pattern)?),
        };
        let after = match (c.kind, c.match_.as_str()) {
            (MultilineKind::Pattern, "after") => true,
            (MultilineKind::Pattern, "before") => false,
            (MultilineKind::Pattern, other) => {
                return Err(format!("match: must be after or before, not {other:?}"))
            }
            _ => true,
        };
        if c.kind == MultilineKind::Count && c.count_lines == 0 {
            return Err("count_lines: must be at least 1 for type count".into());
        }
        let flush = if c.flush_pattern.is_empty() {
            None
        } else {
            Some(compile("flush_pattern", &c.flush_pattern)?)
        };
        Ok(Self {
            kind: c.kind,
            pattern,
            negate: c.negate,
            after,
            flush,
            count: c.count_lines,
            max_lines: c.max_lines.max(1),
            timeout: c.timeout.get(),
            separator: if c.skip_newline { "" } else { "\n" },
            max_bytes,
            group: None,
            last_matched: false,
        })
    }

    fn matches(&self, text: &str) -> bool {
        self.pattern.as_ref().is_some_and(|p| p.is_match(text)) != self.negate
    }

    /// Takes one message; pushes the groups it completes onto `out`.
    pub fn push(&mut self, m: Msg, now: Instant, out: &mut Vec<Msg>) {
        let matched = self.matches(&m.text);
        let joins = match (&self.group, self.kind) {
            (None, _) => false,
            (Some((_, n, _)), MultilineKind::Count) => *n < self.count,
            (Some(_), MultilineKind::Pattern) if self.after => matched,
            (Some(_), MultilineKind::Pattern) => self.last_matched,
            (Some(_), MultilineKind::WhilePattern) => matched && self.last_matched,
        };
        if !joins {
            if let Some(g) = self.take() {
                out.push(g);
            }
        }
        let flushes = self.flush.as_ref().is_some_and(|f| f.is_match(&m.text));
        match self.group.as_mut() {
            Some((g, n, _)) if joins => {
                *n += 1;
                g.end = m.end;
                g.multiline = true;
                g.truncated |= m.truncated;
                if *n > self.max_lines {
                    g.truncated = true;
                } else {
                    let room = self.max_bytes.saturating_sub(g.text.len());
                    let add = self.separator.len() + m.text.len();
                    if add <= room {
                        g.text.push_str(self.separator);
                        g.text.push_str(&m.text);
                    } else {
                        g.text
                            .push_str(&self.separator[..self.separator.len().min(room)]);
                        let room = self.max_bytes.saturating_sub(g.text.len());
                        g.text.push_str(floor_str(&m.text, room));
                        g.truncated = true;
                    }
                }
            }
            _ => self.group = Some((m, 1, now)),
        }
        if let Some((_, n, at)) = self.group.as_mut() {
            *at = now;
            self.last_matched = matched;
            if flushes || (self.kind == MultilineKind::Count && *n >= self.count) {
                if let Some(g) = self.take() {
                    out.push(g);
                }
            }
        }
    }

    fn take(&mut self) -> Option<Msg> {
        self.last_matched = false;
        self.group.take().map(|(g, _, _)| g)
    }

    /// The open group, when no line came for `timeout`.
    pub fn poll_timeout(&mut self, now: Instant) -> Option<Msg> {
        let (_, _, at) = self.group.as_ref()?;
        if !self.timeout.is_zero() && now.duration_since(*at) >= self.timeout {
            return self.take();
        }
        None
    }

    /// The open group, whatever its age (end of file for good, or `--once`).
    pub fn flush(&mut self) -> Option<Msg> {
        self.take()
    }

    /// When the open group times out, if there is one.
    pub fn deadline(&self) -> Option<Instant> {
        let (_, _, at) = self.group.as_ref()?;
        (!self.timeout.is_zero()).then(|| *at + self.timeout)
    }
}

/// The longest prefix of `s` of at most `n` bytes that ends on a character boundary.
pub fn floor_str(s: &str, n: usize) -> &str {
    if n >= s.len() {
        return s;
    }
    let mut i = n;
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    &s[..i]
}

/// One configured parser.
#[derive(Debug)]
pub enum Parser {
    /// `ndjson`.
    Ndjson(Ndjson),
    /// `multiline`.
    Multiline(Multiline),
}

/// The configured parsers, in order.
#[derive(Debug, Default)]
pub struct Chain {
    parsers: Vec<Parser>,
    spare: Spare,
}

/// What shipped messages leave behind, kept for the next lines: their text and decoding
/// buffers and their keys' strings, so a steady stream of lines allocates nothing here.
#[derive(Debug, Default)]
struct Spare {
    texts: Vec<String>,
    // Boxed as a message carries them: handed back and forth without moving the contents.
    #[allow(clippy::vec_box)]
    decoded: Vec<Box<Decoded>>,
    keys: Vec<String>,
}

/// Spare buffers kept at most (a multiline group or a flush can free a few at once).
const SPARE: usize = 8;
/// Spare key strings kept at most.
const SPARE_KEYS: usize = 256;

impl Chain {
    /// Builds the chain.
    ///
    /// # Errors
    /// `(index, reason)` for the first bad parser.
    pub fn new(cfg: &[ParserConfig], max_bytes: usize) -> Result<Self, (usize, String)> {
        let mut parsers = Vec::new();
        for (i, p) in cfg.iter().enumerate() {
            parsers.push(match p {
                ParserConfig::Ndjson(n) => Parser::Ndjson(Ndjson::new(n.clone())),
                ParserConfig::Multiline(m) => {
                    Parser::Multiline(Multiline::new(m, max_bytes).map_err(|e| (i, e))?)
                }
            });
        }
        Ok(Self {
            parsers,
            spare: Spare::default(),
        })
    }

    /// A message for one line of text, in a recycled buffer when there is one.
    pub fn msg(
        &mut self,
        text: &str,
        offset: u64,
        end: u64,
        truncated: bool,
        read_at: SystemTime,
    ) -> Msg {
        let mut buf = self.spare.texts.pop().unwrap_or_default();
        buf.clear();
        buf.push_str(text);
        Msg {
            text: buf,
            offset,
            end,
            multiline: false,
            truncated,
            read_at,
            decoded: None,
        }
    }

    /// Takes back a message that was shipped (or filtered out): its buffers serve the
    /// next lines.
    pub fn recycle(&mut self, m: Msg) {
        let spare = &mut self.spare;
        if spare.texts.len() < SPARE {
            spare.texts.push(m.text);
        }
        if let Some(mut d) = m.decoded {
            if spare.keys.len() < SPARE_KEYS {
                spare.keys.extend(d.pairs.drain(..).map(|(k, _)| k));
            }
            if spare.decoded.len() < SPARE {
                spare.decoded.push(d);
            }
        }
    }

    /// The ndjson parser's `overwrite_keys` (the last ndjson parser's), if any.
    pub fn overwrite_keys(&self) -> bool {
        self.parsers.iter().rev().find_map(|p| match p {
            Parser::Ndjson(n) => Some(n.overwrite_keys()),
            Parser::Multiline(_) => None,
        }) == Some(true)
    }

    /// Runs `m` through every parser from `from`; finished messages go to `out`.
    pub fn push_from(&mut self, from: usize, mut m: Msg, now: Instant, out: &mut Vec<Msg>) {
        for i in from..self.parsers.len() {
            match &mut self.parsers[i] {
                Parser::Ndjson(n) => {
                    let spare = &mut self.spare;
                    let mut d = m
                        .decoded
                        .take()
                        .or_else(|| spare.decoded.pop())
                        .unwrap_or_default();
                    n.decode_into(&mut d, &m.text, &mut spare.keys);
                    m.text.clear();
                    if let Some(message) = &d.message {
                        m.text.push_str(message);
                    }
                    m.decoded = Some(d);
                }
                Parser::Multiline(ml) => {
                    // Only a multiline stage turns one message into zero, one or two.
                    let mut next = Vec::new();
                    ml.push(m, now, &mut next);
                    for g in next {
                        self.push_from(i + 1, g, now, out);
                    }
                    return;
                }
            }
        }
        out.push(m);
    }

    /// Groups that timed out (or all open groups when `all`), run through the parsers after
    /// their multiline stage.
    pub fn flush(&mut self, now: Instant, all: bool, out: &mut Vec<Msg>) {
        for i in 0..self.parsers.len() {
            let taken = match &mut self.parsers[i] {
                Parser::Multiline(ml) if all => ml.flush(),
                Parser::Multiline(ml) => ml.poll_timeout(now),
                Parser::Ndjson(_) => None,
            };
            if let Some(g) = taken {
                self.push_from(i + 1, g, now, out);
            }
        }
    }

    /// The earliest multiline timeout, if a group is open.
    pub fn deadline(&self) -> Option<Instant> {
        self.parsers
            .iter()
            .filter_map(|p| match p {
                Parser::Multiline(m) => m.deadline(),
                Parser::Ndjson(_) => None,
            })
            .min()
    }

    /// True when a multiline group is open (its lines are read but not yet an event).
    pub fn holds(&self) -> bool {
        self.parsers
            .iter()
            .any(|p| matches!(p, Parser::Multiline(m) if m.group.is_some()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nd(cfg: NdjsonConfig) -> Ndjson {
        Ndjson::new(cfg)
    }

    fn msg(text: &str, offset: u64) -> Msg {
        Msg {
            text: text.into(),
            offset,
            end: offset + text.len() as u64 + 1,
            multiline: false,
            truncated: false,
            read_at: SystemTime::now(),
            decoded: None,
        }
    }

    #[test]
    fn ndjson_without_overwrite_drops_timestamp_and_metadata() {
        let d = nd(NdjsonConfig::default()).decode(
            r#"{"@timestamp":"2024-01-01T00:00:00Z","@metadata":{"a":1},"a":1e3,"a":2,"b":"x"}"#,
        );
        assert!(d.ok);
        let keys: Vec<&str> = d.pairs.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, vec!["a", "b"]);
        assert_eq!(&*d.json(&d.pairs[0].1), b"2", "the last duplicate wins");
        assert!(d.timestamp.is_none());
    }

    #[test]
    fn ndjson_overwrite_sets_time_metadata_and_checks_type() {
        let n = nd(NdjsonConfig {
            overwrite_keys: true,
            add_error_key: true,
            ..NdjsonConfig::default()
        });
        let d = n.decode(r#"{"@timestamp":"2024-01-02T03:04:05.678Z","@metadata":{"pipeline":"p"},"type":"_bad"}"#);
        assert_eq!(d.timestamp, parse_timestamp("2024-01-02T03:04:05.678Z"));
        assert_eq!(d.metadata[0].0, "pipeline");
        assert!(d.pairs.is_empty());
        assert_eq!(
            d.error.as_deref(),
            Some("type not overwritten (invalid value [_bad])")
        );
        let d = n.decode(r#"{"@timestamp":"yesterday"}"#);
        assert!(d.timestamp.is_none());
        assert_eq!(
            d.error.as_deref(),
            Some("@timestamp not overwritten (parse error on yesterday)")
        );
        assert!(parse_timestamp("2024-01-02T03:04:05.000+0100").is_some());
    }

    #[test]
    fn ndjson_message_key_document_id_target_expand_and_errors() {
        let d = nd(NdjsonConfig {
            message_key: "msg".into(),
            document_id: "meta.id".into(),
            ..NdjsonConfig::default()
        })
        .decode(r#"{"msg":"hello","meta":{"id":"abc","k":1}}"#);
        assert_eq!(d.message.as_deref(), Some("hello"));
        assert_eq!(d.id.as_deref(), Some("abc"));
        assert_eq!(d.value(&d.pairs[1].1), serde_json::json!({"k":1}));
        let d = nd(NdjsonConfig {
            target: "j".into(),
            ..NdjsonConfig::default()
        })
        .decode(r#"{"@timestamp":"x","a":1}"#);
        assert_eq!(d.pairs[0].0, "j");
        assert_eq!(
            d.value(&d.pairs[0].1),
            serde_json::json!({"@timestamp":"x","a":1})
        );
        let d = nd(NdjsonConfig {
            expand_keys: true,
            ..NdjsonConfig::default()
        })
        .decode(r#"{"a.b":1,"a":{"c":2}}"#);
        assert_eq!(d.value(&d.pairs[0].1), serde_json::json!({"b":1,"c":2}));
        let d = nd(NdjsonConfig {
            expand_keys: true,
            add_error_key: true,
            ..NdjsonConfig::default()
        })
        .decode(r#"{"a.b":1,"a":2}"#);
        assert!(d.pairs.is_empty());
        assert!(d.error.unwrap().contains("conflicting"));
        let d = nd(NdjsonConfig {
            add_error_key: true,
            ..NdjsonConfig::default()
        })
        .decode("{not json");
        assert!(!d.ok);
        assert_eq!(d.message.as_deref(), Some("{not json"));
        assert!(d.error.unwrap().starts_with("Error decoding JSON: "));
    }

    #[test]
    fn decoding_into_a_reused_buffer_equals_a_fresh_decoding() {
        // Lines of other shapes one after another through one recycled Decoded and key
        // pool: nothing of a line may leak into the next (keys, time, metadata, errors).
        let n = nd(NdjsonConfig {
            overwrite_keys: true,
            add_error_key: true,
            ..NdjsonConfig::default()
        });
        let lines = [
            r#"{"@timestamp":"2024-01-02T03:04:05.678Z","@metadata":{"p":1},"a":1,"b":{"c":null},"a":2}"#,
            r#"{"x":"y"}"#,
            "{not json",
            r#"{"@timestamp":"bad","type":"_x","n":null,"k\u0041":"v"}"#,
            r#"{"@timestamp":"2024-01-02T03:04:05\u002e678Z"}"#,
            "",
            r#"{"a":1,"b":2,"c":3,"d":4,"e":5,"f":6,"g":7,"h":8,"i":9}"#,
        ];
        let mut reused = Decoded::default();
        let mut pool = Vec::new();
        for _ in 0..2 {
            for l in lines {
                n.decode_into(&mut reused, l, &mut pool);
                assert_eq!(reused, n.decode(l), "{l}");
            }
        }
    }

    #[test]
    fn deep_merge_keeps_or_overwrites() {
        let mut base = serde_json::json!({"log":{"offset":1,"file":{"path":"/a"}}});
        deep_merge(
            &mut base,
            serde_json::json!({"log":{"offset":9,"level":"x"}}),
            false,
        );
        assert_eq!(
            base,
            serde_json::json!({"log":{"offset":1,"level":"x","file":{"path":"/a"}}})
        );
        deep_merge(&mut base, serde_json::json!({"log":{"offset":9}}), true);
        assert_eq!(base["log"]["offset"], 9);
    }

    fn ml(kind: &str, pattern: &str, negate: bool, m: &str) -> Multiline {
        let c: MultilineConfig = serde_json::from_value(serde_json::json!({
            "type": kind, "pattern": pattern, "negate": negate, "match": m, "count_lines": 2,
        }))
        .unwrap();
        Multiline::new(&c, 1000).unwrap()
    }

    fn run(m: &mut Multiline, lines: &[&str]) -> Vec<(String, u64, u64, bool)> {
        let now = Instant::now();
        let mut out = Vec::new();
        let mut off = 0;
        for l in lines {
            let x = msg(l, off);
            off = x.end;
            m.push(x, now, &mut out);
        }
        out.extend(m.flush());
        out.into_iter()
            .map(|g| (g.text, g.offset, g.end, g.multiline))
            .collect()
    }

    #[test]
    fn java_stack_traces_join_after_the_first_line() {
        let mut m = ml("pattern", r"^[[:space:]]", false, "after");
        let g = run(
            &mut m,
            &["Exception: x", "  at a", "  at b", "next", "last"],
        );
        assert_eq!(g[0], ("Exception: x\n  at a\n  at b".into(), 0, 27, true));
        assert_eq!(g[1], ("next".into(), 27, 32, false));
        assert_eq!(g[2].0, "last");
    }

    #[test]
    fn negate_before_count_and_while_pattern() {
        let mut m = ml("pattern", r"^\[", true, "after");
        assert_eq!(run(&mut m, &["[1] a", "b", "[2] c"]).len(), 2);
        let mut m = ml("pattern", r"\\$", false, "before");
        let g = run(&mut m, &["a \\", "b \\", "c", "d"]);
        assert_eq!(g[0].0, "a \\\nb \\\nc");
        assert_eq!(g[1].0, "d");
        let mut m = ml("count", "", false, "");
        let g = run(&mut m, &["1", "2", "3"]);
        assert_eq!((g[0].0.as_str(), g[1].0.as_str()), ("1\n2", "3"));
        let mut m = ml("while_pattern", r"^ ", false, "");
        let g = run(&mut m, &["a", " b", " c", "d"]);
        let texts: Vec<&str> = g.iter().map(|x| x.0.as_str()).collect();
        assert_eq!(texts, vec!["a", " b\n c", "d"]);
    }

    #[test]
    fn a_group_times_out() {
        let mut m = ml("pattern", r"^ ", false, "after");
        let t0 = Instant::now();
        let mut out = Vec::new();
        m.push(msg("a", 0), t0, &mut out);
        assert!(out.is_empty());
        assert!(m.poll_timeout(t0 + Duration::from_secs(1)).is_none());
        assert_eq!(
            m.poll_timeout(t0 + Duration::from_secs(5)).unwrap().text,
            "a"
        );
    }
}
