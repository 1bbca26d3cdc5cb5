//! `truncate_fields`: shortens string `fields` to `max_bytes` or `max_characters` (exactly
//! one) and adds `truncated` to `log.flags`. A field that is not a string, or missing
//! without `ignore_missing`, is an error; with `fail_on_error` (default true) the event is
//! restored as it was.

use serde_json::Value;

use super::{add_tags, ConfigError, Event, Processor, ProcessorError, Settings, Verdict};

/// A built `truncate_fields`.
#[derive(Debug)]
pub struct TruncateFields {
    fields: Vec<String>,
    limit: Limit,
    ignore_missing: bool,
    fail_on_error: bool,
}

#[derive(Debug, Clone, Copy)]
enum Limit {
    Bytes(usize),
    Chars(usize),
}

impl TruncateFields {
    pub(crate) fn build(s: &Settings<'_>) -> Result<Self, ConfigError> {
        let fields = s
            .strings("fields")?
            .ok_or_else(|| s.error("fields", "required"))?;
        let as_usize = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
        let limit = match (s.uint("max_bytes")?, s.uint("max_characters")?) {
            (Some(b), None) if b > 0 => Limit::Bytes(as_usize(b)),
            (None, Some(c)) if c > 0 => Limit::Chars(as_usize(c)),
            (Some(_), Some(_)) => {
                return Err(s.error(
                    "max_bytes",
                    "set either max_bytes or max_characters, not both",
                ))
            }
            _ => {
                return Err(s.error(
                    "max_bytes",
                    "one of max_bytes or max_characters (> 0) is required",
                ))
            }
        };
        Ok(Self {
            fields,
            limit,
            ignore_missing: s.bool("ignore_missing", false)?,
            fail_on_error: s.bool("fail_on_error", true)?,
        })
    }

    fn truncate(&self, text: &str) -> Option<String> {
        match self.limit {
            Limit::Bytes(n) if text.len() > n => {
                // libbeat cuts bytes; a cut rune becomes U+FFFD when encoded, as here.
                Some(String::from_utf8_lossy(&text.as_bytes()[..n]).into_owned())
            }
            Limit::Chars(n) if text.chars().count() > n => Some(text.chars().take(n).collect()),
            _ => None,
        }
    }

    fn one(&self, event: &mut Event, field: &str) -> Result<(), ProcessorError> {
        let text = match event.get(field) {
            Some(Value::String(s)) => s,
            Some(other) => {
                return Err(ProcessorError::new(format!(
                    "value cannot be truncated: {other}"
                )))
            }
            None if self.ignore_missing => return Ok(()),
            None => {
                return Err(ProcessorError::new(format!(
                    "could not fetch value for key: {field}: key not found"
                )))
            }
        };
        if let Some(short) = self.truncate(text) {
            event.put(field, Value::from(short))?;
            add_tags(&mut event.fields, "log.flags", &["truncated".to_string()])?;
        }
        Ok(())
    }
}

impl Processor for TruncateFields {
    fn name(&self) -> &'static str {
        "truncate_fields"
    }

    fn run(&self, event: &mut Event) -> Result<Verdict, ProcessorError> {
        let backup = self.fail_on_error.then(|| event.fields.clone());
        let mut first = None;
        for f in &self.fields {
            if let Err(e) = self.one(event, f) {
                if let Some(b) = backup {
                    event.fields = b;
                    return Err(e);
                }
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(Verdict::Keep), Err)
    }
}

#[cfg(test)]
mod tests {
    use crate::processors::tests::run;
    use serde_json::json;

    #[test]
    fn truncate_fields_as_libbeat() {
        let table = [
            (
                json!({"fields": ["message"], "max_bytes": 3}),
                json!({"message": "abcdef"}),
                json!({"message": "abc", "log": {"flags": ["truncated"]}}),
                0,
            ),
            (
                json!({"fields": ["message"], "max_characters": 2}),
                json!({"message": "éèà"}),
                json!({"message": "éè", "log": {"flags": ["truncated"]}}),
                0,
            ),
            (
                json!({"fields": ["message"], "max_bytes": 10}),
                json!({"message": "short"}),
                json!({"message": "short"}),
                0,
            ),
            (
                json!({"fields": ["message", "n"], "max_bytes": 1}),
                json!({"message": "ab", "n": 5}),
                json!({"message": "ab", "n": 5}),
                1,
            ),
            (
                json!({"fields": ["nope"], "max_bytes": 1, "ignore_missing": true}),
                json!({}),
                json!({}),
                0,
            ),
        ];
        for (cfg, input, want, failures) in table {
            let (_, got, f) = run(json!({ "truncate_fields": cfg }), input);
            assert_eq!((got, f), (want, failures), "{cfg}");
        }
    }
}
