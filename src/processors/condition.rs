//! `when` conditions, as libbeat's `conditions` package evaluates them.
//!
//! A condition mapping names one operator; libbeat honours only the first it finds in the
//! order `equals, contains, regexp, range, has_fields, network, or, and, not`, so a mapping
//! with two operators is refused here rather than half-ignored. Inside one operator, every
//! field must match (AND); a missing field never matches. Field maps are flattened first
//! (`equals: {http: {code: 200}}` is `equals: {http.code: 200}`), as libbeat does.

use std::net::IpAddr;

use regex::Regex;
use serde_json::Value;

use super::{kind, scalar_text, ConfigError, Event};

/// The operators, in libbeat's order of precedence.
const OPERATORS: [&str; 9] = [
    "equals",
    "contains",
    "regexp",
    "range",
    "has_fields",
    "network",
    "or",
    "and",
    "not",
];

/// A built condition.
#[derive(Debug)]
pub enum Condition {
    /// Every field equals its value (integers compared as integers, strings exactly,
    /// booleans as booleans; a type mismatch is false).
    Equals(Vec<(String, Scalar)>),
    /// Every field (a string, or any element of a list of strings) contains its substring.
    Contains(Vec<(String, String)>),
    /// Every field (as `contains`) matches its unanchored regular expression.
    Regexp(Vec<(String, Regex)>),
    /// Every numeric field is within its bounds.
    Range(Vec<(String, Bounds)>),
    /// Every field exists.
    HasFields(Vec<String>),
    /// Every field is an IP address inside one of its networks.
    Network(Vec<(String, Vec<Net>)>),
    /// Any holds.
    Or(Vec<Condition>),
    /// All hold.
    And(Vec<Condition>),
    /// The inner one does not hold.
    Not(Box<Condition>),
}

/// A value `equals` compares with.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    /// An integer.
    Int(i128),
    /// A string.
    Str(String),
    /// A boolean.
    Bool(bool),
}

/// `range` bounds of one field.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Bounds {
    gte: Option<f64>,
    gt: Option<f64>,
    lte: Option<f64>,
    lt: Option<f64>,
}

/// A network of the `network` condition: a CIDR block or one of libbeat's names.
#[derive(Debug, Clone, PartialEq)]
pub enum Net {
    /// `10.0.0.0/8`, `2001:db8::/32`.
    Cidr(IpAddr, u8),
    /// `loopback`, `private`, `public`, ...
    Named(&'static str),
}

const NAMED: [&str; 10] = [
    "loopback",
    "global_unicast",
    "unicast",
    "link_local_unicast",
    "interface_local_multicast",
    "link_local_multicast",
    "multicast",
    "unspecified",
    "private",
    "public",
];

fn flatten(prefix: &str, v: &Value, out: &mut Vec<(String, Value)>) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, v) in m {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        other => out.push((prefix.to_string(), other.clone())),
    }
}

fn field_map(v: &Value, path: &str) -> Result<Vec<(String, Value)>, ConfigError> {
    if !v.is_object() {
        return Err(ConfigError::new(
            path,
            format!("expected a mapping of field: value, found a {}", kind(v)),
        ));
    }
    let mut out = Vec::new();
    flatten("", v, &mut out);
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

impl Condition {
    /// Builds the condition written at `path`.
    ///
    /// # Errors
    /// An unknown or missing operator, several operators in one mapping, a value of the
    /// wrong type, a bad regular expression or network.
    pub fn build(v: &Value, path: &str) -> Result<Self, ConfigError> {
        let Some(map) = v.as_object() else {
            return Err(ConfigError::new(
                path,
                format!("expected a condition mapping, found a {}", kind(v)),
            ));
        };
        // In libbeat's order of precedence, for the message.
        let found: Vec<&str> = OPERATORS
            .iter()
            .copied()
            .filter(|o| map.contains_key(*o))
            .collect();
        for k in map.keys() {
            match OPERATORS.iter().find(|o| *o == k) {
                Some(_) => {}
                None => {
                    let hint =
                        match crate::config::check::did_you_mean(k, OPERATORS.iter().copied()) {
                            Some(o) => format!("; did you mean {o}?"),
                            None => String::new(),
                        };
                    return Err(ConfigError::new(
                        path,
                        format!(
                            "unknown condition {k:?}{hint} (conditions: {})",
                            OPERATORS.join(", ")
                        ),
                    ));
                }
            }
        }
        let op = match found.as_slice() {
            [one] => *one,
            [] => return Err(ConfigError::new(path, "missing condition")),
            many => {
                return Err(ConfigError::new(
                    path,
                    format!(
                        "one condition per mapping, found {} (libbeat would use only the first); \
                         combine them with and/or",
                        many.join(", ")
                    ),
                ))
            }
        };
        let at = format!("{path}.{op}");
        let arg = &map[op];
        Ok(match op {
            "equals" => Self::Equals(
                field_map(arg, &at)?
                    .into_iter()
                    .map(|(f, v)| {
                        let s = match &v {
                            Value::Number(n) if n.is_i64() || n.is_u64() => {
                                Scalar::Int(n.as_i64().map_or_else(
                                    || i128::from(n.as_u64().unwrap_or_default()),
                                    i128::from,
                                ))
                            }
                            Value::String(s) => Scalar::Str(s.clone()),
                            Value::Bool(b) => Scalar::Bool(*b),
                            other => {
                                return Err(ConfigError::new(
                                    format!("{at}.{f}"),
                                    format!(
                                        "expected a string, an integer or a boolean, found a {}",
                                        kind(other)
                                    ),
                                ))
                            }
                        };
                        Ok((f, s))
                    })
                    .collect::<Result<_, _>>()?,
            ),
            "contains" => Self::Contains(strings(arg, &at)?),
            "regexp" => Self::Regexp(
                strings(arg, &at)?
                    .into_iter()
                    .map(|(f, re)| {
                        Regex::new(&re)
                            .map(|r| (f.clone(), r))
                            .map_err(|e| ConfigError::new(format!("{at}.{f}"), e.to_string()))
                    })
                    .collect::<Result<_, _>>()?,
            ),
            "range" => {
                let mut out: Vec<(String, Bounds)> = Vec::new();
                for (key, v) in field_map(arg, &at)? {
                    let (field, bound) = key.rsplit_once('.').unwrap_or(("", key.as_str()));
                    let n = v.as_f64().ok_or_else(|| {
                        ConfigError::new(format!("{at}.{key}"), "expected a number")
                    })?;
                    if field.is_empty() || !["gte", "gt", "lte", "lt"].contains(&bound) {
                        return Err(ConfigError::new(
                            format!("{at}.{key}"),
                            "expected FIELD.gte, FIELD.gt, FIELD.lte or FIELD.lt",
                        ));
                    }
                    let i = match out.iter().position(|(f, _)| f == field) {
                        Some(i) => i,
                        None => {
                            out.push((field.to_string(), Bounds::default()));
                            out.len() - 1
                        }
                    };
                    let b = &mut out[i].1;
                    match bound {
                        "gte" => b.gte = Some(n),
                        "gt" => b.gt = Some(n),
                        "lte" => b.lte = Some(n),
                        _ => b.lt = Some(n),
                    }
                }
                Self::Range(out)
            }
            "has_fields" => {
                let list = match arg {
                    Value::Array(a) => a.clone(),
                    other => vec![other.clone()],
                };
                Self::HasFields(
                    list.iter()
                        .map(|v| {
                            scalar_text(v).ok_or_else(|| {
                                ConfigError::new(&at, "expected a list of field names")
                            })
                        })
                        .collect::<Result<_, _>>()?,
                )
            }
            "network" => {
                let mut out = Vec::new();
                for (field, v) in field_map(arg, &at)? {
                    let list = match v {
                        Value::Array(a) => a,
                        other => vec![other],
                    };
                    let nets = list
                        .iter()
                        .map(|n| {
                            n.as_str()
                                .and_then(parse_net)
                                .ok_or_else(|| {
                                    ConfigError::new(
                                        format!("{at}.{field}"),
                                        format!(
                                            "{n} is neither a CIDR block (192.0.2.0/24, 2001:db8::/32) nor one of {}",
                                            NAMED.join(", ")
                                        ),
                                    )
                                })
                        })
                        .collect::<Result<_, _>>()?;
                    out.push((field, nets));
                }
                Self::Network(out)
            }
            "or" | "and" => {
                let Value::Array(items) = arg else {
                    return Err(ConfigError::new(&at, "expected a list of conditions"));
                };
                let list = items
                    .iter()
                    .enumerate()
                    .map(|(i, c)| Self::build(c, &format!("{at}.{i}")))
                    .collect::<Result<Vec<_>, _>>()?;
                if op == "or" {
                    Self::Or(list)
                } else {
                    Self::And(list)
                }
            }
            _ => Self::Not(Box::new(Self::build(arg, &at)?)),
        })
    }

    /// The top-level keys of the event whose values the condition reads (`tags` for
    /// `contains.tags`, `http` for `equals.http.response.status_code`), each once: two
    /// events that hold the same values under these keys get the same outcome, so a
    /// condition can be decided once for every event that brings none of them itself.
    pub fn roots(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        self.visit_fields(&mut |f: &str| {
            let root = f.split('.').next().unwrap_or(f);
            if !out.contains(&root) {
                out.push(root);
            }
        });
        out
    }

    fn visit_fields<'a>(&'a self, f: &mut dyn FnMut(&'a str)) {
        match self {
            Self::Equals(list) => list.iter().for_each(|(k, _)| f(k)),
            Self::Contains(list) => list.iter().for_each(|(k, _)| f(k)),
            Self::Regexp(list) => list.iter().for_each(|(k, _)| f(k)),
            Self::Range(list) => list.iter().for_each(|(k, _)| f(k)),
            Self::HasFields(list) => list.iter().for_each(|k| f(k)),
            Self::Network(list) => list.iter().for_each(|(k, _)| f(k)),
            Self::Or(list) | Self::And(list) => list.iter().for_each(|c| c.visit_fields(f)),
            Self::Not(c) => c.visit_fields(f),
        }
    }

    /// Whether `event` satisfies the condition.
    pub fn check(&self, event: &Event) -> bool {
        match self {
            Self::Equals(list) => list.iter().all(|(f, want)| {
                event.get(f).is_some_and(|v| match (want, v) {
                    (Scalar::Int(i), Value::Number(n)) => {
                        n.as_i64().map(i128::from).or(n.as_u64().map(i128::from)) == Some(*i)
                    }
                    (Scalar::Str(s), Value::String(v)) => s == v,
                    (Scalar::Bool(b), Value::Bool(v)) => b == v,
                    _ => false,
                })
            }),
            Self::Contains(list) => list
                .iter()
                .all(|(f, sub)| matches_text(event.get(f), |s| s.contains(sub.as_str()))),
            Self::Regexp(list) => list
                .iter()
                .all(|(f, re)| matches_text(event.get(f), |s| re.is_match(s))),
            Self::Range(list) => list.iter().all(|(f, b)| {
                event
                    .get(f)
                    .and_then(Value::as_f64)
                    .is_some_and(|n| b.contains(n))
            }),
            Self::HasFields(list) => list.iter().all(|f| event.get(f).is_some()),
            Self::Network(list) => list.iter().all(|(f, nets)| {
                event
                    .get(f)
                    .and_then(Value::as_str)
                    .and_then(|s| s.parse::<IpAddr>().ok())
                    .is_some_and(|ip| nets.iter().any(|n| n.contains(ip)))
            }),
            Self::Or(list) => list.iter().any(|c| c.check(event)),
            Self::And(list) => list.iter().all(|c| c.check(event)),
            Self::Not(c) => !c.check(event),
        }
    }
}

fn strings(arg: &Value, at: &str) -> Result<Vec<(String, String)>, ConfigError> {
    field_map(arg, at)?
        .into_iter()
        .map(|(f, v)| {
            scalar_text(&v)
                .map(|s| (f.clone(), s))
                .ok_or_else(|| ConfigError::new(format!("{at}.{f}"), "expected a string"))
        })
        .collect()
}

/// A string field, or any string of a list field; other scalars by their text.
fn matches_text(v: Option<&Value>, f: impl Fn(&str) -> bool) -> bool {
    match v {
        Some(Value::String(s)) => f(s),
        Some(Value::Array(items)) => items.iter().any(|i| i.as_str().is_some_and(&f)),
        Some(other) => scalar_text(other).is_some_and(|s| f(&s)),
        None => false,
    }
}

impl Bounds {
    fn contains(&self, n: f64) -> bool {
        self.gte.is_none_or(|b| n >= b)
            && self.gt.is_none_or(|b| n > b)
            && self.lte.is_none_or(|b| n <= b)
            && self.lt.is_none_or(|b| n < b)
    }
}

fn parse_net(s: &str) -> Option<Net> {
    if let Some(n) = NAMED.iter().find(|n| **n == s) {
        return Some(Net::Named(n));
    }
    let (ip, len) = s.split_once('/')?;
    let ip: IpAddr = ip.parse().ok()?;
    let len: u8 = len.parse().ok()?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    (len <= max).then_some(Net::Cidr(ip, len))
}

/// Go's `net.IP` predicates; an IPv4-mapped IPv6 address counts as IPv4, as in Go.
impl Net {
    fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match self {
            Self::Cidr(net, len) => in_cidr(ip, *net, *len),
            Self::Named(name) => named(name, ip),
        }
    }
}

fn in_cidr(ip: IpAddr, net: IpAddr, len: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            u32::from(a) & mask == u32::from(b) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            u128::from(a) & mask == u128::from(b) & mask
        }
        _ => false,
    }
}

fn private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_private(),
        IpAddr::V6(v6) => v6.octets()[0] == 0xfd,
    }
}

fn link_local_unicast(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => v6.segments()[0] & 0xffc0 == 0xfe80,
    }
}

fn link_local_multicast(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.octets()[..3] == [224, 0, 0],
        IpAddr::V6(v6) => v6.segments()[0] & 0xff0f == 0xff02,
    }
}

fn interface_local_multicast(ip: IpAddr) -> bool {
    matches!(ip, IpAddr::V6(v6) if v6.segments()[0] & 0xff0f == 0xff01)
}

fn broadcast(ip: IpAddr) -> bool {
    matches!(ip, IpAddr::V4(v4) if v4.is_broadcast())
}

fn global_unicast(ip: IpAddr) -> bool {
    !(broadcast(ip)
        || ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || link_local_unicast(ip))
}

fn named(name: &str, ip: IpAddr) -> bool {
    match name {
        "loopback" => ip.is_loopback(),
        "global_unicast" | "unicast" => global_unicast(ip),
        "link_local_unicast" => link_local_unicast(ip),
        "interface_local_multicast" => interface_local_multicast(ip),
        "link_local_multicast" => link_local_multicast(ip),
        "multicast" => ip.is_multicast(),
        "unspecified" => ip.is_unspecified(),
        "private" => private(ip),
        _ => {
            // public: libbeat's !isLocalOrPrivate.
            !(private(ip)
                || ip.is_loopback()
                || ip.is_unspecified()
                || broadcast(ip)
                || link_local_unicast(ip)
                || link_local_multicast(ip)
                || interface_local_multicast(ip))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::processors::tests::event;
    use serde_json::json;

    fn holds(cond: Value, fields: Value) -> bool {
        Condition::build(&cond, "when")
            .unwrap()
            .check(&event(fields))
    }

    /// Each row: condition, event fields, expected — compared with libbeat's
    /// `conditions/*_test.go` and its documented rules.
    #[test]
    fn conditions_as_libbeat_evaluates_them() {
        let ev = json!({
            "proc": {"name": "sshd", "pid": 305, "cpu": 0.5},
            "tags": ["web", "prod"],
            "ok": true,
            "src": "192.168.1.7",
            "dst": "8.8.8.8",
            "v6": "fe80::1",
            "http": {"code": 404}
        });
        let table: &[(Value, bool)] = &[
            (json!({"equals": {"proc.name": "sshd"}}), true),
            (json!({"equals": {"proc": {"name": "sshd"}}}), true),
            (json!({"equals": {"proc.pid": 305}}), true),
            (json!({"equals": {"proc.pid": "305"}}), false), // string vs number: no match
            (json!({"equals": {"proc.cpu": 0}}), false),
            (json!({"equals": {"ok": true}}), true),
            (
                json!({"equals": {"proc.name": "sshd", "proc.pid": 1}}),
                false,
            ), // fields AND-ed
            (json!({"equals": {"missing": "x"}}), false),
            (json!({"contains": {"proc.name": "ss"}}), true),
            (json!({"contains": {"tags": "pro"}}), true), // any element of a list
            (json!({"contains": {"proc.pid": "30"}}), true), // stringified
            (json!({"regexp": {"proc.name": "^s.h"}}), true),
            (json!({"regexp": {"proc.name": "sh"}}), true), // unanchored
            (json!({"regexp": {"tags": "^p"}}), true),
            (
                json!({"range": {"http.code.gte": 400, "http.code.lt": 500}}),
                true,
            ),
            (
                json!({"range": {"http.code": {"gte": 400, "lt": 404}}}),
                false,
            ),
            (json!({"range": {"proc.cpu.gt": 0.25}}), true),
            (json!({"range": {"proc.name.gt": 1}}), false), // not numeric
            (json!({"has_fields": ["proc.name", "ok"]}), true),
            (json!({"has_fields": ["proc.name", "nope"]}), false),
            (json!({"network": {"src": "192.168.0.0/16"}}), true),
            (json!({"network": {"src": "private"}}), true),
            (json!({"network": {"dst": "private"}}), false),
            (json!({"network": {"dst": ["loopback", "public"]}}), true),
            (json!({"network": {"v6": "link_local_unicast"}}), true),
            (json!({"network": {"proc.name": "private"}}), false), // not an IP
            (
                json!({"or": [{"equals": {"ok": false}}, {"has_fields": ["src"]}]}),
                true,
            ),
            (
                json!({"and": [{"equals": {"ok": true}}, {"has_fields": ["x"]}]}),
                false,
            ),
            (json!({"not": {"contains": {"tags": "forwarded"}}}), true),
            (json!({"not": {"equals": {"ok": true}}}), false),
        ];
        for (cond, want) in table {
            assert_eq!(holds(cond.clone(), ev.clone()), *want, "{cond}");
        }
    }

    #[test]
    fn bad_conditions_are_refused_with_their_path() {
        let err = |c: Value| Condition::build(&c, "when").unwrap_err().to_string();
        assert!(err(json!({"equals": {"a": 1}, "contains": {"a": "b"}}))
            .starts_with("when: one condition per mapping, found equals, contains"));
        assert!(err(json!({"regexp": {"a": "("}})).starts_with("when.regexp.a: "));
        assert!(err(json!({"network": {"a": "10.0.0.0/33"}})).starts_with("when.network.a: "));
        assert!(err(json!({"range": {"a.between": 1}})).starts_with("when.range.a.between"));
        assert!(err(json!({"or": [{"equals": {"a": [1]}}]})).starts_with("when.or.0.equals.a"));
        assert_eq!(err(json!({})), "when: missing condition");
    }

    #[test]
    fn roots_are_the_top_level_keys_read() {
        let roots = |c: Value| {
            Condition::build(&c, "when")
                .unwrap()
                .roots()
                .into_iter()
                .map(str::to_string)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            roots(json!({"not": {"contains": {"tags": "forwarded"}}})),
            ["tags"]
        );
        assert_eq!(
            roots(json!({"or": [
                {"equals": {"http": {"code": 200}}},
                {"and": [{"range": {"http.bytes.gte": 1}}, {"has_fields": ["@metadata.x", "tags"]}]},
                {"network": {"src.ip": "private"}},
                {"regexp": {"tags": "a"}},
            ]})),
            ["http", "@metadata", "tags", "src"]
        );
    }
}
