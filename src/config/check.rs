//! Checks the merged configuration tree against [`keys`](super::keys) before serde sees it:
//! unknown keys (with a "did you mean"), wrong types (naming the expected type) and
//! unparsable durations and sizes, all collected rather than stopping at the first.
//!
//! It also normalises what Beats accepts but serde would not: a number or boolean where a
//! string is expected becomes its text, and an empty section (`output.console:`) becomes `{}`.

use serde_json::Value;

use super::keys::{ConfigKeys, Field, Shape, INPUT_TYPES};
use super::schema::CommonInputConfig;
use super::units::{ByteSize, Duration};

/// One problem at a key path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The key path, `output.logstash.hosts` or `skidder.inputs.0.type`.
    pub path: String,
    /// What is wrong, as a sentence fragment.
    pub message: String,
}

impl Problem {
    /// A problem at `path`.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// Checks and normalises `value` (the whole merged config) in place.
pub fn check_tree(value: &mut Value, fields: &'static [Field]) -> Vec<Problem> {
    let mut problems = Vec::new();
    // Beats-only sections are gone by now (`beats::apply`); named here for "did you mean".
    check_keys(
        value,
        fields,
        &super::beats::top_level_keys(),
        "",
        &mut problems,
    );
    problems
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".to_string(),
        Value::Bool(b) => format!("boolean {b}"),
        Value::Number(n) => format!("number {n}"),
        Value::String(s) => format!("string {s:?}"),
        Value::Array(_) => "a list".to_string(),
        Value::Object(_) => "a mapping".to_string(),
    }
}

fn expected(shape: &Shape) -> String {
    match shape {
        Shape::Bool => "a boolean (true or false)".to_string(),
        Shape::Int { min, max } => int_range(*min, *max),
        Shape::Str => "a string".to_string(),
        Shape::Duration => "a duration such as 30s, 1m or 500ms".to_string(),
        Shape::Size => "a size such as 10MiB or 1GB".to_string(),
        Shape::Enum(words) => format!("one of {}", words.join(", ")),
        Shape::List(inner) => format!("a list of {}", expected(inner)),
        Shape::Optional(inner) => expected(inner),
        Shape::Section(_) => "a mapping of settings".to_string(),
        Shape::Map(_) => "a mapping".to_string(),
        Shape::Any => "any value".to_string(),
        Shape::Inputs => "a list of inputs, each with a type".to_string(),
    }
}

fn int_range(min: i128, max: i128) -> String {
    if min == 0 && max == u64::MAX as i128 {
        "a non-negative integer".to_string()
    } else if min == i64::MIN as i128 && max == i64::MAX as i128 {
        "an integer".to_string()
    } else {
        format!("an integer in {min}..={max}")
    }
}

fn wrong(path: &str, shape: &Shape, v: &Value) -> Problem {
    Problem::new(
        path,
        format!("expected {}, found {}", expected(shape), describe(v)),
    )
}

/// The closest of `candidates` to `key`, when it is close enough to be a likely typo.
pub fn did_you_mean<'a>(
    key: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::damerau_levenshtein(key, c), c))
        .filter(|(d, c)| {
            *d <= (c.len().max(key.len()) / 3).max(1) || c.starts_with(key) && key.len() >= 3
        })
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn check_section(value: &mut Value, fields: &'static [Field], path: &str, out: &mut Vec<Problem>) {
    check_keys(value, fields, &[], path, out);
}

/// Checks a mapping against `fields` (and `extra`, keys checked elsewhere such as `type`).
fn check_keys(
    value: &mut Value,
    fields: &'static [Field],
    extra: &[&'static str],
    path: &str,
    out: &mut Vec<Problem>,
) {
    if value.is_null() {
        *value = Value::Object(serde_json::Map::new());
    }
    let Value::Object(map) = value else {
        out.push(wrong(path, &Shape::Section(|| &[]), value));
        return;
    };
    let mut unknown = Vec::new();
    for (k, v) in map.iter_mut() {
        let key_path = join(path, k);
        match fields.iter().find(|f| f.name == k) {
            Some(f) => {
                let before = out.len();
                check_value(v, &f.shape, &key_path, out);
                // A value of the wrong type or range (or a list or map holding one) is
                // reported, then dropped like an unknown key: the default takes its place,
                // so the rest still deserializes and the cross-field rules run in the same
                // pass. Sections and inputs keep their good keys (checked inside).
                let leaf = !matches!(
                    f.shape,
                    Shape::Section(_) | Shape::Optional(Shape::Section(_)) | Shape::Inputs
                );
                let bad = out[before..].iter().any(|p| {
                    p.path == key_path
                        || p.path
                            .strip_prefix(key_path.as_str())
                            .is_some_and(|rest| rest.starts_with('.'))
                });
                if leaf && bad {
                    unknown.push(k.clone());
                }
            }
            None if extra.contains(&k.as_str()) => {}
            None => {
                let names = fields.iter().map(|f| f.name).chain(extra.iter().copied());
                let hint = match did_you_mean(k, names) {
                    Some(s) => format!("; did you mean {}?", join(path, s)),
                    None => String::new(),
                };
                out.push(Problem::new(key_path, format!("unknown key{hint}")));
                unknown.push(k.clone());
            }
        }
    }
    // Reported above (unknown, or a wrong value); removed so the rest of the file can still
    // be deserialized and its range and cross-field rules checked in the same run (all
    // problems at once).
    for k in unknown {
        map.remove(&k);
    }
}

fn check_value(v: &mut Value, shape: &Shape, path: &str, out: &mut Vec<Problem>) {
    match shape {
        Shape::Bool => match v {
            Value::Bool(_) => {}
            // YAML 1.1 booleans, which Beats (go-yaml v2) accepts: `enabled: yes`.
            Value::String(s) => match s.to_ascii_lowercase().as_str() {
                "yes" | "on" | "true" => *v = Value::Bool(true),
                "no" | "off" | "false" => *v = Value::Bool(false),
                _ => out.push(wrong(path, shape, v)),
            },
            _ => out.push(wrong(path, shape, v)),
        },
        Shape::Int { min, max } => {
            let n = v
                .as_i64()
                .map(i128::from)
                .or_else(|| v.as_u64().map(i128::from));
            match n {
                Some(n) if (*min..=*max).contains(&n) => {}
                Some(n) => out.push(Problem::new(
                    path,
                    format!("{n} is out of range; expected {}", int_range(*min, *max)),
                )),
                None => out.push(wrong(path, shape, v)),
            }
        }
        Shape::Str => match v {
            Value::String(_) => {}
            Value::Number(n) => *v = Value::String(n.to_string()),
            Value::Bool(b) => *v = Value::String(b.to_string()),
            _ => out.push(wrong(path, shape, v)),
        },
        Shape::Duration => match v {
            Value::String(s) => {
                if let Err(e) = s.parse::<Duration>() {
                    out.push(Problem::new(path, e.to_string()));
                }
            }
            Value::Number(n) if n.as_f64().is_some_and(|f| f >= 0.0) => {}
            _ => out.push(wrong(path, shape, v)),
        },
        Shape::Size => match v {
            Value::String(s) => {
                if let Err(e) = s.parse::<ByteSize>() {
                    out.push(Problem::new(path, e.to_string()));
                }
            }
            Value::Number(n) if n.is_u64() => {}
            _ => out.push(wrong(path, shape, v)),
        },
        Shape::Enum(words) => match v.as_str() {
            Some(s) if words.contains(&s) => {}
            Some(s) => {
                let hint = match did_you_mean(s, words.iter().copied()) {
                    Some(w) => format!("; did you mean {w}?"),
                    None => String::new(),
                };
                out.push(Problem::new(
                    path,
                    format!("{s:?} is not one of {}{hint}", words.join(", ")),
                ));
            }
            None => out.push(wrong(path, shape, v)),
        },
        Shape::List(inner) => {
            // As Beats' config library: a single value where a list is expected is a list
            // of one (`hosts: "ls:5044"`); an empty string is an empty list (the reference
            // filebeat.yml writes `ssl.ca_sha256: ""`).
            if v.as_str() == Some("") {
                *v = Value::Array(Vec::new());
            }
            if matches!(v, Value::String(_) | Value::Number(_) | Value::Bool(_)) {
                *v = Value::Array(vec![v.take()]);
            }
            match v {
                Value::Array(items) => {
                    for (i, item) in items.iter_mut().enumerate() {
                        check_value(item, inner, &join(path, &i.to_string()), out);
                    }
                }
                _ => out.push(wrong(path, shape, v)),
            }
        }
        Shape::Optional(inner) => {
            // An empty string means unset, as Beats reads `ca_trusted_fingerprint: ""` (a
            // section written as "" stays an error, not a section with its defaults).
            if v.as_str() == Some("") && !matches!(inner, Shape::Section(_)) {
                *v = Value::Null;
            }
            // An empty section key (`output.console:`) means the section with its defaults.
            if !v.is_null() || matches!(inner, Shape::Section(_)) {
                check_value(v, inner, path, out);
            }
        }
        Shape::Section(fields) => check_section(v, fields(), path, out),
        Shape::Map(inner) => match v {
            Value::Null => *v = Value::Object(serde_json::Map::new()),
            Value::Object(map) => {
                for (k, item) in map.iter_mut() {
                    check_value(item, inner, &join(path, k), out);
                }
            }
            _ => out.push(wrong(path, shape, v)),
        },
        Shape::Any => {}
        Shape::Inputs => match v {
            Value::Null => *v = Value::Array(Vec::new()),
            Value::Array(items) => {
                for (i, item) in items.iter_mut().enumerate() {
                    check_input(item, &join(path, &i.to_string()), out);
                }
            }
            _ => out.push(wrong(path, shape, v)),
        },
    }
}

fn check_input(item: &mut Value, path: &str, out: &mut Vec<Problem>) {
    let type_names: Vec<&str> = INPUT_TYPES.iter().map(|(n, _)| *n).collect();
    let kind = match item.get("type") {
        None => {
            out.push(Problem::new(
                join(path, "type"),
                format!(
                    "missing; every input needs a type: {}",
                    type_names.join(", ")
                ),
            ));
            None
        }
        Some(Value::String(t)) => match INPUT_TYPES.iter().find(|(n, _)| n == t) {
            Some((_, fields)) => Some(fields()),
            None => {
                let hint = match did_you_mean(t, type_names.iter().copied()) {
                    Some(w) => format!("; did you mean {w}?"),
                    None => String::new(),
                };
                out.push(Problem::new(
                    join(path, "type"),
                    format!(
                        "unknown input type {t:?}; expected one of {}{hint}",
                        type_names.join(", ")
                    ),
                ));
                None
            }
        },
        Some(other) => {
            out.push(Problem::new(
                join(path, "type"),
                format!(
                    "expected a string (the input type), found {}",
                    describe(other)
                ),
            ));
            None
        }
    };
    let Value::Object(map) = item else {
        out.push(wrong(path, &Shape::Inputs, item));
        return;
    };
    let common = CommonInputConfig::fields();
    for (k, v) in map.iter_mut() {
        if k == "type" {
            continue;
        }
        let key_path = join(path, k);
        let field = common
            .iter()
            .chain(kind.unwrap_or(&[]).iter())
            .find(|f| f.name == k);
        match field {
            Some(f) => check_value(v, &f.shape, &key_path, out),
            // Without a known type its own keys cannot be judged; the type error says enough.
            None if kind.is_none() => {}
            None => {
                let names = common
                    .iter()
                    .chain(kind.unwrap_or(&[]).iter())
                    .map(|f| f.name)
                    .chain(["type"]);
                let hint = match did_you_mean(k, names) {
                    Some(s) => format!("; did you mean {}?", join(path, s)),
                    None => String::new(),
                };
                out.push(Problem::new(key_path, format!("unknown key{hint}")));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn problems(json: serde_json::Value) -> Vec<Problem> {
        let mut v = json;
        check_tree(&mut v, Config::fields())
    }

    #[test]
    fn unknown_keys_get_a_did_you_mean() {
        let p = problems(serde_json::json!({"output": {"logstash": {"host": ["a"]}}}));
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].path, "output.logstash.host");
        assert!(
            p[0].message.contains("did you mean output.logstash.hosts?"),
            "{p:?}"
        );
    }

    #[test]
    fn all_problems_are_collected() {
        let p = problems(serde_json::json!({
            "output": {"logstash": {"timeout": "10x", "worker": "two", "hosts": {"a": 5044}}},
            "queue": {"mem": {"events": -1}},
            "nope": 1,
        }));
        let paths: Vec<&str> = p.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(p.len(), 5, "{p:?}");
        for want in [
            "output.logstash.timeout",
            "output.logstash.worker",
            "output.logstash.hosts",
            "queue.mem.events",
            "nope",
        ] {
            assert!(paths.contains(&want), "{want} not in {paths:?}");
        }
    }

    #[test]
    fn input_keys_are_checked_per_type() {
        let p = problems(serde_json::json!({"skidder": {"inputs": [
            {"type": "generator", "count": 5, "json": true},
            {"type": "stdin", "json": true, "tags": ["a"]},
            {"type": "genrator"},
        ]}}));
        assert_eq!(p.len(), 2, "{p:?}");
        assert_eq!(p[0].path, "skidder.inputs.0.json");
        assert_eq!(p[1].path, "skidder.inputs.2.type");
        assert!(p[1].message.contains("did you mean generator?"), "{p:?}");
    }

    #[test]
    fn a_single_value_where_a_list_is_expected_is_a_list_of_one() {
        let mut v = serde_json::json!({"output": {"logstash": {"hosts": "ls:5044"}}});
        assert!(check_tree(&mut v, Config::fields()).is_empty());
        assert_eq!(
            v["output"]["logstash"]["hosts"],
            serde_json::json!(["ls:5044"])
        );
        let mut v =
            serde_json::json!({"output": {"logstash": {"hosts": ["a"], "ssl": {"ca_sha256": ""}}}});
        assert!(check_tree(&mut v, Config::fields()).is_empty());
        assert_eq!(
            v["output"]["logstash"]["ssl"]["ca_sha256"],
            serde_json::json!([])
        );
        // A mapping is still not a list.
        let mut v = serde_json::json!({"output": {"logstash": {"hosts": {"a": 1}}}});
        assert_eq!(check_tree(&mut v, Config::fields()).len(), 1);
    }

    #[test]
    fn numbers_become_strings_where_strings_are_expected() {
        let mut v = serde_json::json!({"output": {"logstash": {"index": 2024, "hosts": [1]}}});
        assert!(check_tree(&mut v, Config::fields()).is_empty());
        assert_eq!(v["output"]["logstash"]["index"], "2024");
    }
}
