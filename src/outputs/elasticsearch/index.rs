//! Index name format strings, Beats' syntax: `skidder-%{+yyyy.MM.dd}`, `logs-%{[service][name]}`,
//! `%{[fields.log_type]:default}`.
//!
//! A format is compiled once ([`IndexTemplate::compile`]) into literal, date and field parts;
//! rendering an event walks the parts and appends to a caller's reused `String`, without
//! parsing the format again. As in Beats, the rendered name is lowercased (Elasticsearch
//! refuses upper-case index names).
//!
//! - `%{+PATTERN}`: the event's `@timestamp` (RFC 3339, rendered in UTC) in a Joda-style
//!   pattern: `yyyy` `yy` (year), `xxxx` `xx` (ISO week-based year), `ww` `w` (ISO week),
//!   `MM` `M` (month), `dd` `d` (day), `HH` `H` (hour), `mm` (minute), `ss` (second); any
//!   other ASCII letter is refused at compile time, other characters are copied.
//!   `'text'` quotes letters.
//! - `%{[a][b]}` or `%{[a.b]}`: the value of a field; strings as they are, numbers and
//!   booleans as their JSON text. `:default` after the closing bracket is used when the field
//!   is missing. A missing field without default, or an object/array/null value, makes the
//!   event non-indexable (an error for that event only).

use std::fmt::Write as _;

use serde_json::value::RawValue;
use time::OffsetDateTime;

/// Why an index format could not be compiled (a configuration error).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: invalid format {format:?}: {reason}")]
pub struct FormatError {
    /// The setting, e.g. `output.elasticsearch.index`.
    pub key: String,
    /// The format as written.
    pub format: String,
    /// What is wrong.
    pub reason: String,
}

/// Why an event's index name could not be rendered. The event is non-indexable; the other
/// events of the batch are not affected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RenderError {
    /// The format uses a field the event does not have, without a default.
    #[error("field {field} is missing and the index format has no default for it")]
    MissingField {
        /// The field as written in the format, e.g. `[service][name]`.
        field: String,
    },
    /// The field is an object, array or null: it has no text form for an index name.
    #[error("field {field} is {kind}, which cannot be part of an index name")]
    NotScalar {
        /// The field as written in the format.
        field: String,
        /// `an object`, `an array` or `null`.
        kind: &'static str,
    },
    /// The format uses the date and `@timestamp` is missing or not RFC 3339.
    #[error("@timestamp is {0}; the index format needs a date")]
    Timestamp(&'static str),
    /// The name came out empty.
    #[error("the index name is empty for this event")]
    Empty,
}

/// One date element of a Joda-style pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum DatePart {
    Year4,
    Year2,
    WeekYear4,
    WeekYear2,
    Week2,
    Week,
    Month2,
    Month,
    Day2,
    Day,
    Hour2,
    Hour,
    Minute2,
    Second2,
    Text(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Date(Vec<DatePart>),
    Field {
        /// As written, for messages.
        name: String,
        path: Vec<String>,
        default: Option<String>,
    },
}

/// A compiled index (or pipeline) format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexTemplate {
    parts: Vec<Part>,
    source: String,
    lowercase: bool,
}

/// The fields of one event that a template may read: `@timestamp` and top-level members,
/// found by the event scanner without building a tree.
pub trait EventFields {
    /// The raw JSON of `@timestamp`, if present.
    fn timestamp(&self) -> Option<&RawValue>;
    /// The raw JSON of a top-level member, if present.
    fn top_level(&self, key: &str) -> Option<&RawValue>;
}

impl IndexTemplate {
    /// Compiles an index name `format` read from the setting `key`; names are lowercased.
    ///
    /// # Errors
    /// An unclosed `%{`, an empty field path, or an unknown date letter, naming `key`.
    pub fn compile(key: &str, format: &str) -> Result<Self, FormatError> {
        Self::compile_with_case(key, format, true)
    }

    /// As [`Self::compile`], for names whose case matters (ingest pipeline ids).
    ///
    /// # Errors
    /// As [`Self::compile`].
    pub fn compile_verbatim(key: &str, format: &str) -> Result<Self, FormatError> {
        Self::compile_with_case(key, format, false)
    }

    fn compile_with_case(key: &str, format: &str, lowercase: bool) -> Result<Self, FormatError> {
        let err = |reason: String| FormatError {
            key: key.to_string(),
            format: format.to_string(),
            reason,
        };
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut rest = format;
        while let Some(start) = rest.find("%{") {
            literal.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after
                .find('}')
                .ok_or_else(|| err(format!("%{{ at byte {} is never closed", start)))?;
            let body = &after[..end];
            if !literal.is_empty() {
                parts.push(Part::Literal(std::mem::take(&mut literal)));
            }
            if let Some(pattern) = body.strip_prefix('+') {
                parts.push(Part::Date(compile_date(pattern).map_err(err)?));
            } else {
                parts.push(compile_field(body).map_err(err)?);
            }
            rest = &after[end + 1..];
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            parts.push(Part::Literal(literal));
        }
        if parts.is_empty() {
            return Err(err("is empty".to_string()));
        }
        Ok(Self {
            parts,
            source: format.to_string(),
            lowercase,
        })
    }

    /// The format as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// True when the format has no `%{...}`: every event gets the same name.
    pub fn is_static(&self) -> bool {
        self.parts.iter().all(|p| matches!(p, Part::Literal(_)))
    }

    /// The top-level fields this template reads, so the scanner keeps only those.
    pub fn top_level_fields(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Field { path, .. } => path.first().map(String::as_str),
            _ => None,
        })
    }

    /// Appends the name for `event` to `out` (lowercased as Beats does for index names). On error `out` may
    /// hold a partial name; the caller clears it.
    ///
    /// # Errors
    /// [`RenderError`]: a missing field without default, a non-scalar field, a missing or
    /// malformed `@timestamp` when the date is used, or an empty result.
    pub fn render(&self, event: &dyn EventFields, out: &mut String) -> Result<(), RenderError> {
        let start = out.len();
        let mut when: Option<OffsetDateTime> = None;
        for part in &self.parts {
            match part {
                Part::Literal(s) => out.push_str(s),
                Part::Date(items) => {
                    let t = match when {
                        Some(t) => t,
                        None => {
                            let t = parse_timestamp(event.timestamp())?;
                            when = Some(t);
                            t
                        }
                    };
                    write_date(items, t, out);
                }
                Part::Field {
                    name,
                    path,
                    default,
                } => {
                    let found = path
                        .split_first()
                        .and_then(|(first, rest)| lookup(event.top_level(first)?, rest));
                    match found {
                        Some(raw) => write_scalar(raw, name, out)?,
                        None => match default {
                            Some(d) => out.push_str(d),
                            None => {
                                return Err(RenderError::MissingField {
                                    field: name.clone(),
                                })
                            }
                        },
                    }
                }
            }
        }
        let name = &mut out[start..];
        if name.is_empty() {
            return Err(RenderError::Empty);
        }
        if !self.lowercase {
            return Ok(());
        }
        if name.is_ascii() {
            name.make_ascii_lowercase();
        } else {
            // Rare: names with non-ASCII letters; lowercasing may change their length.
            let lower = name.to_lowercase();
            out.truncate(start);
            out.push_str(&lower);
        }
        Ok(())
    }
}

fn compile_field(body: &str) -> Result<Part, String> {
    let (selector, default) = match body.rfind(']') {
        Some(close) => {
            let tail = &body[close + 1..];
            let default = match tail.strip_prefix(':') {
                Some(d) => Some(d.to_string()),
                None if tail.is_empty() => None,
                None => {
                    return Err(format!(
                    "%{{{body}}}: unexpected {tail:?} after the field; write %{{[field]:default}}"
                ))
                }
            };
            (&body[..=close], default)
        }
        None => {
            return Err(format!(
            "%{{{body}}}: a field is written %{{[name]}} or %{{[a][b]}}; a date %{{+yyyy.MM.dd}}"
        ))
        }
    };
    let inner = selector
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .ok_or_else(|| format!("%{{{body}}}: a field path starts with [ and ends with ]"))?;
    let path: Vec<String> = inner
        .split("][")
        .flat_map(|seg| seg.split('.'))
        .map(str::to_string)
        .collect();
    if path
        .iter()
        .any(|s| s.is_empty() || s.contains('[') || s.contains(']'))
    {
        return Err(format!("%{{{body}}}: empty or malformed field name"));
    }
    Ok(Part::Field {
        name: selector.to_string(),
        path,
        default,
    })
}

fn compile_date(pattern: &str) -> Result<Vec<DatePart>, String> {
    let mut out = Vec::new();
    let mut chars = pattern.chars().peekable();
    let mut text = String::new();
    while let Some(c) = chars.next() {
        if c == '\'' {
            for q in chars.by_ref() {
                if q == '\'' {
                    break;
                }
                text.push(q);
            }
            continue;
        }
        if !c.is_ascii_alphabetic() {
            text.push(c);
            continue;
        }
        let mut run = 1;
        while chars.peek() == Some(&c) {
            chars.next();
            run += 1;
        }
        let part = match (c, run) {
            ('y', 4) => DatePart::Year4,
            ('y', 2) => DatePart::Year2,
            ('x', 4) => DatePart::WeekYear4,
            ('x', 2) => DatePart::WeekYear2,
            ('w', 2) => DatePart::Week2,
            ('w', 1) => DatePart::Week,
            ('M', 2) => DatePart::Month2,
            ('M', 1) => DatePart::Month,
            ('d', 2) => DatePart::Day2,
            ('d', 1) => DatePart::Day,
            ('H', 2) => DatePart::Hour2,
            ('H', 1) => DatePart::Hour,
            ('m', 2) => DatePart::Minute2,
            ('s', 2) => DatePart::Second2,
            _ => {
                return Err(format!(
                    "date pattern {pattern:?}: {} is not supported (use yyyy yy xxxx xx ww w MM M dd d HH H mm ss, quote text with ')",
                    c.to_string().repeat(run)
                ))
            }
        };
        if !text.is_empty() {
            out.push(DatePart::Text(std::mem::take(&mut text)));
        }
        out.push(part);
    }
    if !text.is_empty() {
        out.push(DatePart::Text(text));
    }
    if out.is_empty() {
        return Err("empty date pattern after %{+".to_string());
    }
    Ok(out)
}

fn parse_timestamp(raw: Option<&RawValue>) -> Result<OffsetDateTime, RenderError> {
    let raw = raw.ok_or(RenderError::Timestamp("missing"))?.get();
    let text = raw
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .ok_or(RenderError::Timestamp("not a string"))?;
    OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map(|t| t.to_offset(time::UtcOffset::UTC))
        .map_err(|_| RenderError::Timestamp("not an RFC 3339 date"))
}

fn write_date(items: &[DatePart], t: OffsetDateTime, out: &mut String) {
    let (week_year, week, _) = t.to_iso_week_date();
    for item in items {
        // Writing to a String cannot fail.
        let _ = match item {
            DatePart::Year4 => write!(out, "{:04}", t.year()),
            DatePart::Year2 => write!(out, "{:02}", t.year().rem_euclid(100)),
            DatePart::WeekYear4 => write!(out, "{:04}", week_year),
            DatePart::WeekYear2 => write!(out, "{:02}", week_year.rem_euclid(100)),
            DatePart::Week2 => write!(out, "{:02}", week),
            DatePart::Week => write!(out, "{}", week),
            DatePart::Month2 => write!(out, "{:02}", u8::from(t.month())),
            DatePart::Month => write!(out, "{}", u8::from(t.month())),
            DatePart::Day2 => write!(out, "{:02}", t.day()),
            DatePart::Day => write!(out, "{}", t.day()),
            DatePart::Hour2 => write!(out, "{:02}", t.hour()),
            DatePart::Hour => write!(out, "{}", t.hour()),
            DatePart::Minute2 => write!(out, "{:02}", t.minute()),
            DatePart::Second2 => write!(out, "{:02}", t.second()),
            DatePart::Text(s) => {
                out.push_str(s);
                Ok(())
            }
        };
    }
}

/// Descends `rest` keys into `raw` (an object at each step).
fn lookup<'a>(raw: &'a RawValue, rest: &[String]) -> Option<&'a RawValue> {
    let mut cur = raw;
    for key in rest {
        cur = member_of(cur, key)?;
    }
    Some(cur)
}

/// The member `key` of the object `raw`, parsed lazily (values are skipped, not built).
pub(crate) fn member_of<'a>(raw: &'a RawValue, key: &str) -> Option<&'a RawValue> {
    use serde::de::{Deserializer as _, MapAccess, Visitor};
    struct Find<'k>(&'k str);
    impl<'de> Visitor<'de> for Find<'_> {
        type Value = Option<&'de RawValue>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut found = None;
            while let Some(k) = map.next_key::<super::event::Key<'de>>()? {
                let v: &'de RawValue = map.next_value()?;
                if found.is_none() && k.as_str() == self.0 {
                    found = Some(v);
                }
            }
            Ok(found)
        }
    }
    let text = raw.get();
    if !text.starts_with('{') {
        return None;
    }
    let mut de = serde_json::Deserializer::from_str(text);
    de.deserialize_map(Find(key)).ok().flatten()
}

fn write_scalar(raw: &RawValue, name: &str, out: &mut String) -> Result<(), RenderError> {
    let text = raw.get();
    let kind = match text.as_bytes().first() {
        Some(b'{') => "an object",
        Some(b'[') => "an array",
        Some(b'n') => "null",
        Some(b'"') => {
            if text.contains('\\') {
                // Escapes must be decoded; rare in index-relevant fields.
                let s: String = serde_json::from_str(text).map_err(|_| RenderError::NotScalar {
                    field: name.to_string(),
                    kind: "a malformed string",
                })?;
                out.push_str(&s);
            } else {
                out.push_str(&text[1..text.len() - 1]);
            }
            return Ok(());
        }
        _ => {
            out.push_str(text);
            return Ok(());
        }
    };
    Err(RenderError::NotScalar {
        field: name.to_string(),
        kind,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Ev(
        serde_json::Map<String, serde_json::Value>,
        Vec<Box<RawValue>>,
    );

    fn ev(json: &str) -> Ev {
        let map: serde_json::Map<String, serde_json::Value> = serde_json::from_str(json).unwrap();
        let raws = map
            .values()
            .map(|v| RawValue::from_string(v.to_string()).unwrap())
            .collect();
        Ev(map, raws)
    }

    impl EventFields for Ev {
        fn timestamp(&self) -> Option<&RawValue> {
            self.top_level("@timestamp")
        }
        fn top_level(&self, key: &str) -> Option<&RawValue> {
            let i = self.0.keys().position(|k| k == key)?;
            Some(&self.1[i])
        }
    }

    fn render(format: &str, json: &str) -> Result<String, RenderError> {
        let t = IndexTemplate::compile("index", format).unwrap();
        let mut out = String::from("kept|");
        t.render(&ev(json), &mut out)?;
        Ok(out["kept|".len()..].to_string())
    }

    const TS: &str = r#"{"@timestamp":"2026-01-02T03:04:05.678+02:00","service":{"name":"Web\u0041pp","port":8080},"tags":["a"],"flag":true,"n":null,"fields.log_type":"x"}"#;

    #[test]
    fn formats_render_exactly() {
        let table = [
            ("skidder-%{+yyyy.MM.dd}", "skidder-2026.01.02"),
            // The event is at +02:00: 01:04:05 UTC, still 2 January.
            ("h-%{+yyyy.MM.dd.HH}", "h-2026.01.02.01"),
            ("%{+yy-M-d H:mm:ss}", "26-1-2 1:04:05"),
            ("w-%{+xxxx.ww}", "w-2026.01"),
            ("%{+'week'w}", "week1"),
            ("svc-%{[service][name]}", "svc-webapp"),
            ("svc-%{[service.port]}", "svc-8080"),
            ("f-%{[flag]}", "f-true"),
            ("d-%{[missing]:fallback}", "d-fallback"),
            ("d-%{[service][nope]:}x", "d-x"),
            ("Static-Index", "static-index"),
        ];
        for (format, want) in table {
            assert_eq!(render(format, TS).as_deref(), Ok(want), "{format}");
        }
    }

    #[test]
    fn iso_week_year_differs_from_calendar_year() {
        // 2024-12-30 is in ISO week 1 of 2025.
        let json = r#"{"@timestamp":"2024-12-30T00:00:00Z"}"#;
        assert_eq!(
            render("%{+yyyy}-%{+xxxx.ww}", json).unwrap(),
            "2024-2025.01"
        );
    }

    #[test]
    fn render_errors_name_the_field() {
        assert_eq!(
            render("x-%{[nope]}", TS),
            Err(RenderError::MissingField {
                field: "[nope]".into()
            })
        );
        assert_eq!(
            render("x-%{[service]}", TS),
            Err(RenderError::NotScalar {
                field: "[service]".into(),
                kind: "an object"
            })
        );
        assert!(matches!(
            render("x-%{[tags]}", TS),
            Err(RenderError::NotScalar {
                kind: "an array",
                ..
            })
        ));
        assert!(matches!(
            render("x-%{[n]}", TS),
            Err(RenderError::NotScalar { kind: "null", .. })
        ));
        assert_eq!(
            render("x-%{+yyyy}", r#"{"a":1}"#),
            Err(RenderError::Timestamp("missing"))
        );
        assert_eq!(
            render("x-%{+yyyy}", r#"{"@timestamp":"yesterday"}"#),
            Err(RenderError::Timestamp("not an RFC 3339 date"))
        );
        assert_eq!(render("%{[e]:}", TS), Err(RenderError::Empty));
    }

    #[test]
    fn bad_formats_are_config_errors() {
        for (format, needle) in [
            ("x-%{+yyyy", "never closed"),
            ("x-%{+YYYY}", "YYYY is not supported"),
            ("x-%{field}", "written %{[name]}"),
            ("x-%{[a]]}", "malformed"),
            ("x-%{[]}", "malformed"),
            ("x-%{[a]x}", "unexpected"),
            ("", "is empty"),
        ] {
            let err = IndexTemplate::compile("output.elasticsearch.index", format).unwrap_err();
            let msg = err.to_string();
            assert!(
                msg.contains(needle) && msg.contains("output.elasticsearch.index"),
                "{format}: {msg}"
            );
        }
    }

    #[test]
    fn template_reports_fields_and_staticness() {
        let t = IndexTemplate::compile("index", "a-%{[x][y]}-%{[z]}-%{+yyyy}").unwrap();
        assert_eq!(t.top_level_fields().collect::<Vec<_>>(), vec!["x", "z"]);
        assert!(!t.is_static());
        assert!(IndexTemplate::compile("index", "plain")
            .unwrap()
            .is_static());
    }
}
