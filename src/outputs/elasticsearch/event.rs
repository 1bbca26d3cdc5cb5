//! Reading an encoded event (JSON object bytes from the pipeline) just enough to index it:
//! `@metadata` (removed from the document, as Beats does: it carries routing data such as
//! `_id`, not content), `@timestamp`, and the top-level fields an index format reads.
//!
//! One serde_json pass validates the whole event and visits only the top-level members;
//! values are borrowed as raw slices, never built into a tree. The document written to the
//! bulk body is the event's own bytes with the `@metadata` member cut out, so nothing else
//! is re-encoded. Raw CR/LF bytes can only be whitespace in valid JSON (inside strings they
//! must be escaped), and the bulk format is one document per line, so the body writer turns
//! them into spaces.
//!
//! Only a literal `"@metadata"` key is recognised; a key spelt with escapes
//! (`"\u0040metadata"`) makes the event non-indexable rather than silently indexing it.

use std::borrow::Cow;
use std::ops::Range;

use serde::de::{Deserializer as _, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::index::EventFields;

/// Why an event cannot be indexed at all (it never reaches the cluster).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EventError {
    /// Not valid JSON.
    #[error("event is not valid JSON: {0}")]
    Json(String),
    /// Valid JSON, but not an object.
    #[error("event is JSON but not an object")]
    NotAnObject,
    /// `@metadata` written with escapes: cannot be cut out reliably.
    #[error("event has an @metadata key written with escapes")]
    EscapedMetadata,
    /// `@metadata._id` is present but not a non-empty string.
    #[error("@metadata._id is not a non-empty string")]
    BadId,
    /// The index or pipeline name could not be rendered.
    #[error("{what}: {source}")]
    Name {
        /// `index` or `pipeline`.
        what: &'static str,
        /// Why.
        source: super::index::RenderError,
    },
}

/// A JSON object key, borrowed from the input unless it had escapes.
pub(crate) struct Key<'de>(Cow<'de, str>);

impl Key<'_> {
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string key")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(v.to_string())))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

/// Reusable scanner: knows which top-level fields the index formats read and keeps its
/// buffers between events.
#[derive(Debug, Clone, Default)]
pub struct Scanner {
    wanted: Vec<String>,
    found: Vec<Option<Range<usize>>>,
}

/// One scanned event, borrowing the event bytes and the scanner.
#[derive(Debug)]
pub struct ScannedEvent<'a> {
    text: &'a str,
    doc: Range<usize>,
    cut: Option<Range<usize>>,
    metadata: Option<&'a RawValue>,
    timestamp: Option<&'a RawValue>,
    wanted: &'a [String],
    found: &'a [Option<Range<usize>>],
}

fn offset_in(base: &str, part: &str) -> usize {
    part.as_ptr() as usize - base.as_ptr() as usize
}

impl Scanner {
    /// A scanner that keeps the top-level members named in `wanted`.
    pub fn new<'w>(wanted: impl IntoIterator<Item = &'w str>) -> Self {
        let mut names: Vec<String> = Vec::new();
        for w in wanted {
            if !names.iter().any(|n| n == w) {
                names.push(w.to_string());
            }
        }
        Self {
            found: vec![None; names.len()],
            wanted: names,
        }
    }

    /// Validates `bytes` as one JSON object and finds its parts.
    ///
    /// # Errors
    /// [`EventError::Json`], [`EventError::NotAnObject`], [`EventError::EscapedMetadata`].
    pub fn scan<'a>(&'a mut self, bytes: &'a [u8]) -> Result<ScannedEvent<'a>, EventError> {
        let text = std::str::from_utf8(bytes).map_err(|e| EventError::Json(e.to_string()))?;
        for f in &mut self.found {
            *f = None;
        }
        struct Top<'s, 'de> {
            base: &'de str,
            wanted: &'s [String],
            found: &'s mut [Option<Range<usize>>],
        }
        #[derive(Default)]
        struct Seen<'de> {
            metadata: Option<(&'de RawValue, Option<usize>, Option<usize>)>,
            escaped_metadata: bool,
            timestamp: Option<&'de RawValue>,
        }
        impl<'de> Visitor<'de> for Top<'_, 'de> {
            type Value = Seen<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut seen = Seen::default();
                let mut prev_end: Option<usize> = None;
                while let Some(key) = map.next_key::<Key<'de>>()? {
                    let value: &'de RawValue = map.next_value()?;
                    let start = offset_in(self.base, value.get());
                    let end = start + value.get().len();
                    let key_start = match &key.0 {
                        // The key's text starts one byte after its opening quote.
                        Cow::Borrowed(k) => Some(offset_in(self.base, k) - 1),
                        Cow::Owned(_) => None,
                    };
                    match key.as_str() {
                        "@metadata" if seen.metadata.is_none() => match key_start {
                            Some(ks) => seen.metadata = Some((value, prev_end, Some(ks))),
                            None => seen.escaped_metadata = true,
                        },
                        "@timestamp" if seen.timestamp.is_none() => seen.timestamp = Some(value),
                        k => {
                            if let Some(i) = self.wanted.iter().position(|w| w == k) {
                                if self.found[i].is_none() {
                                    self.found[i] = Some(start..end);
                                }
                            }
                        }
                    }
                    prev_end = Some(end);
                }
                Ok(seen)
            }
        }
        let mut de = serde_json::Deserializer::from_str(text);
        let trimmed = text.trim_start();
        if !trimmed.starts_with('{') {
            // Distinguish "not JSON" from "JSON but not an object" for the reason.
            return Err(match serde_json::from_str::<serde::de::IgnoredAny>(text) {
                Ok(_) => EventError::NotAnObject,
                Err(e) => EventError::Json(e.to_string()),
            });
        }
        let seen = de
            .deserialize_map(Top {
                base: text,
                wanted: &self.wanted,
                found: &mut self.found,
            })
            .and_then(|seen| de.end().map(|()| seen))
            .map_err(|e| EventError::Json(e.to_string()))?;
        if seen.escaped_metadata {
            return Err(EventError::EscapedMetadata);
        }
        let doc_start = text.len() - trimmed.len();
        let doc = doc_start..text.trim_end().len();
        let (metadata, cut) = match seen.metadata {
            None => (None, None),
            Some((value, prev_end, key_start)) => {
                let value_end = offset_in(text, value.get()) + value.get().len();
                let cut = match (prev_end, key_start) {
                    // Not the first member: cut from the end of the previous value, which
                    // takes the comma before `"@metadata"` with it.
                    (Some(p), _) => p..value_end,
                    // The first member: cut up to the next key, taking the comma after it.
                    (None, Some(ks)) => {
                        let after = &text[value_end..];
                        let ws = after.len() - after.trim_start().len();
                        let rest = &after[ws..];
                        if let Some(next) = rest.strip_prefix(',') {
                            let ws2 = next.len() - next.trim_start().len();
                            ks..value_end + ws + 1 + ws2
                        } else {
                            ks..value_end
                        }
                    }
                    (None, None) => return Err(EventError::EscapedMetadata),
                };
                (Some(value), Some(cut))
            }
        };
        Ok(ScannedEvent {
            text,
            doc,
            cut,
            metadata,
            timestamp: seen.timestamp,
            wanted: &self.wanted,
            found: &self.found,
        })
    }
}

impl<'a> ScannedEvent<'a> {
    /// The document without `@metadata`, as up to two slices of the original bytes (before
    /// and after the cut). Leading/trailing whitespace is excluded.
    pub fn document(&self) -> (&'a [u8], &'a [u8]) {
        let b = self.text.as_bytes();
        match &self.cut {
            None => (&b[self.doc.clone()], &[]),
            Some(cut) => (&b[self.doc.start..cut.start], &b[cut.end..self.doc.end]),
        }
    }

    /// `@metadata`, when present.
    pub fn metadata(&self) -> Option<&'a RawValue> {
        self.metadata
    }

    /// `@metadata._id` as text, when present.
    ///
    /// # Errors
    /// [`EventError::BadId`]: present but not a non-empty string.
    pub fn metadata_id(&self) -> Result<Option<Cow<'a, str>>, EventError> {
        let Some(meta) = self.metadata else {
            return Ok(None);
        };
        let Some(raw) = super::index::member_of(meta, "_id") else {
            return Ok(None);
        };
        let text = raw.get();
        let id: Cow<'a, str> = if text.contains('\\') {
            Cow::Owned(serde_json::from_str::<String>(text).map_err(|_| EventError::BadId)?)
        } else {
            match text.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
                Some(s) => Cow::Borrowed(s),
                None => return Err(EventError::BadId),
            }
        };
        if id.is_empty() {
            return Err(EventError::BadId);
        }
        Ok(Some(id))
    }
}

impl EventFields for ScannedEvent<'_> {
    fn timestamp(&self) -> Option<&RawValue> {
        self.timestamp
    }

    fn top_level(&self, key: &str) -> Option<&RawValue> {
        let i = self.wanted.iter().position(|w| w == key)?;
        let span = self.found.get(i)?.clone()?;
        // Re-reading the already validated slice is cheap and only done for format fields.
        serde_json::from_str::<&RawValue>(&self.text[span]).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(scanner: &mut Scanner, json: &str) -> String {
        let ev = scanner.scan(json.as_bytes()).unwrap();
        let (a, b) = ev.document();
        let s = format!(
            "{}{}",
            std::str::from_utf8(a).unwrap(),
            std::str::from_utf8(b).unwrap()
        );
        // Whatever was cut, the rest must still be one valid object.
        serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&s)
            .unwrap_or_else(|e| panic!("{json} -> {s}: {e}"));
        s
    }

    #[test]
    fn metadata_is_cut_wherever_it_is() {
        let mut s = Scanner::default();
        let table = [
            (r#"{"a":1}"#, r#"{"a":1}"#),
            (r#"{"@metadata":{"_id":"x"},"a":1}"#, r#"{"a":1}"#),
            (r#"{"a":1,"@metadata":{"_id":"x"}}"#, r#"{"a":1}"#),
            (
                r#"{"a":1,"@metadata":{"_id":"x"},"b":2}"#,
                r#"{"a":1,"b":2}"#,
            ),
            (r#"{"@metadata":{}}"#, r#"{}"#),
            (
                " { \"@metadata\" : { \"_id\" : \"x\" } , \"a\" : [1, {\"@metadata\":2}] } \n",
                "{ \"a\" : [1, {\"@metadata\":2}] }",
            ),
            (r#"{"a":"@metadata","@metadata":1}"#, r#"{"a":"@metadata"}"#),
        ];
        for (input, want) in table {
            assert_eq!(doc(&mut s, input), want, "{input}");
        }
    }

    #[test]
    fn ids_and_fields_are_found() {
        let mut s = Scanner::new(["svc", "other"]);
        let json = r#"{"@timestamp":"2026-01-01T00:00:00Z","svc":{"n":"a"},"@metadata":{"beat":"x","_id":"id\"1"}}"#;
        let ev = s.scan(json.as_bytes()).unwrap();
        assert_eq!(ev.metadata_id().unwrap().as_deref(), Some("id\"1"));
        assert_eq!(
            ev.timestamp().map(RawValue::get),
            Some("\"2026-01-01T00:00:00Z\"")
        );
        assert_eq!(ev.top_level("svc").map(RawValue::get), Some(r#"{"n":"a"}"#));
        assert!(ev.top_level("other").is_none());
        let ev = s.scan(br#"{"@metadata":{"_id":7}}"#).unwrap();
        assert_eq!(ev.metadata_id(), Err(EventError::BadId));
        let ev = s.scan(br#"{"@metadata":{"_id":""}}"#).unwrap();
        assert_eq!(ev.metadata_id(), Err(EventError::BadId));
        let ev = s.scan(br#"{"x":1}"#).unwrap();
        assert_eq!(ev.metadata_id(), Ok(None));
    }

    #[test]
    fn bad_events_have_reasons() {
        let mut s = Scanner::default();
        assert_eq!(s.scan(b"[1,2]").unwrap_err(), EventError::NotAnObject);
        assert_eq!(s.scan(b"\"x\"").unwrap_err(), EventError::NotAnObject);
        assert!(matches!(
            s.scan(b"{\"a\":").unwrap_err(),
            EventError::Json(_)
        ));
        assert!(matches!(s.scan(b"{} {}").unwrap_err(), EventError::Json(_)));
        assert!(matches!(s.scan(b"\xff").unwrap_err(), EventError::Json(_)));
        assert_eq!(
            s.scan(br#"{"\u0040metadata":{}}"#).unwrap_err(),
            EventError::EscapedMetadata
        );
    }
}

#[cfg(test)]
mod props {
    use proptest::prelude::*;
    use serde_json::{Map, Value};

    use super::*;

    fn leaf() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            "[a-z\\\\\"\n @{}]{0,8}".prop_map(Value::from),
        ]
    }

    fn value() -> impl Strategy<Value = Value> {
        leaf().prop_recursive(3, 16, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map("[a-z@]{1,4}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// Wherever `@metadata` sits and however the object is laid out, the document is the
        /// object without it, and it stays valid JSON.
        #[test]
        fn cutting_metadata_keeps_everything_else(
            members in prop::collection::vec(("[a-z]{1,5}", value()), 0..6),
            meta in value(),
            at in 0usize..7,
            pretty in any::<bool>(),
        ) {
            let mut seen = std::collections::BTreeSet::new();
            let members: Vec<(String, Value)> =
                members.into_iter().filter(|(k, _)| seen.insert(k.clone())).collect();
            let at = at.min(members.len());
            let mut parts: Vec<String> = members
                .iter()
                .map(|(k, v)| format!("{}:{}", Value::from(k.as_str()), v))
                .collect();
            parts.insert(at, format!("\"@metadata\":{meta}"));
            let sep = if pretty { " ,\n  " } else { "," };
            let text = format!("{{{}}}", parts.join(sep));
            let mut scanner = Scanner::default();
            let ev = scanner.scan(text.as_bytes()).unwrap();
            let (a, b) = ev.document();
            let doc: Map<String, Value> =
                serde_json::from_slice(&[a, b].concat()).unwrap();
            let want: Map<String, Value> = members.into_iter().collect();
            prop_assert_eq!(doc, want);
            prop_assert_eq!(ev.metadata().map(|m| serde_json::from_str::<Value>(m.get()).unwrap()), Some(meta));
        }

        /// Arbitrary bytes never panic the scanner.
        #[test]
        fn any_bytes_are_an_event_or_an_error(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            let mut scanner = Scanner::new(["a"]);
            if let Ok(ev) = scanner.scan(&bytes) {
                let _ = ev.document();
                let _ = ev.metadata_id();
                let _ = ev.top_level("a");
            }
        }
    }
}
