//! A YAML document as a tree that remembers where every key was written, with Beats'
//! dotted-key semantics applied (`a.b: 1` is `a: {b: 1}`).
//!
//! serde's YAML values carry no positions, so this module builds its own tree from the
//! parser's marked events; errors about keys can then name the file, line and column.

use std::collections::BTreeMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// Where a key or value was written: 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub col: usize,
}

impl Pos {
    fn from_marker(m: Marker) -> Self {
        Self {
            line: m.line(),
            col: m.col() + 1,
        }
    }
}

/// A value of the tree.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `~`, `null` or nothing.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A floating-point number.
    Float(f64),
    /// A string; quoted scalars are always strings.
    Str(String),
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping, keys already split on dots and re-nested.
    Map(BTreeMap<String, Entry>),
}

/// A value and where it was written.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// The value.
    pub value: Value,
    /// Its position.
    pub pos: Pos,
    /// True for a plain (unquoted) scalar: only those get YAML type resolution, also after
    /// `${VAR}` expansion.
    pub plain: bool,
}

/// One key of a mapping.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Where the key (its first dotted segment's line) was written.
    pub key_pos: Pos,
    /// The value.
    pub node: Node,
}

/// A problem found while parsing, with the position it refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeError {
    /// Where.
    pub pos: Pos,
    /// The key path concerned, empty when none.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

/// Parses `text` into a tree. Tabs used for indentation, syntax errors (with line and
/// column), duplicate keys and keys given both dotted and nested are reported; all
/// duplicates are collected, a syntax error stops parsing.
///
/// # Errors
/// Every [`TreeError`] found, each with its position and, when known, its key path.
pub fn parse(text: &str) -> Result<Node, Vec<TreeError>> {
    let tabs = tab_indentation(text);
    if !tabs.is_empty() {
        return Err(tabs);
    }
    let mut builder = Builder::default();
    let mut parser = Parser::new_from_str(text);
    if let Err(e) = parser.load(&mut builder, true) {
        let m = e.marker();
        return Err(vec![syntax_error(text, m.line(), m.col() + 1, e.info())]);
    }
    if !builder.errors.is_empty() {
        // A nested mapping is finished before its parent, so its errors know only the keys
        // below it; the indentation tells the rest of the path.
        for e in &mut builder.errors {
            let near = key_near_line(text, e.pos.line);
            if near.len() > e.key.len() && near.ends_with(&format!(".{}", e.key)) {
                e.key = near;
            }
        }
        return Err(builder.errors);
    }
    let root = builder.root.unwrap_or(Node {
        value: Value::Map(BTreeMap::new()),
        pos: Pos { line: 1, col: 1 },
        plain: false,
    });
    Ok(root)
}

/// Resolves a plain scalar as YAML 1.2's core schema does: null, booleans, integers and
/// floats; everything else stays a string.
///
/// Numbers are taken only in their canonical spelling, so no text is lost when a string
/// was meant: `0123`, `+5` or `1.50` stay strings (a password, a file mode), and a key that
/// needs a number then says so. `True`, `yes` and `on` stay strings too; the boolean keys
/// accept them (as Beats does), string keys keep them as written.
pub fn resolve_plain(s: &str) -> Value {
    match s {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" => return Value::Bool(true),
        "false" => return Value::Bool(false),
        _ => {}
    }
    if let Ok(i) = s.parse::<i64>() {
        if i.to_string() == s {
            return Value::Int(i);
        }
        return Value::Str(s.to_string());
    }
    let numeric = s
        .chars()
        .all(|c| c.is_ascii_digit() || c == '.' || c == '-');
    if numeric && s.chars().any(|c| c.is_ascii_digit()) {
        if let Ok(f) = s.parse::<f64>() {
            if f.is_finite() && f.to_string() == s {
                return Value::Float(f);
            }
        }
    }
    Value::Str(s.to_string())
}

/// A YAML syntax error in plain words, at the line the parser stopped on, quoting that line
/// (or, when the parser stopped on a blank line or at the end of the file, the last written
/// line before it: an unclosed bracket or quote is noticed only later).
fn syntax_error(text: &str, line: usize, col: usize, info: &str) -> TreeError {
    let lines: Vec<&str> = text.lines().collect();
    let written = |l: &str| !l.trim().is_empty() && !l.trim_start().starts_with('#');
    let (line, col) = match lines.get(line.wrapping_sub(1)).filter(|l| written(l)) {
        Some(_) => (line, col),
        None => match lines[..line.saturating_sub(1).min(lines.len())]
            .iter()
            .rposition(|l| written(l))
        {
            Some(i) => (i + 1, lines[i].len() - lines[i].trim_start().len() + 1),
            None => (line, col),
        },
    };
    let mut plain = plain_words(info);
    let (line, col) =
        match unclosed_flow(&lines, line) {
            // The parser notices a missing `]` or `}` only lines later, at whatever follows.
            Some((open_line, open_col, bracket)) if open_line < line => {
                plain =
                    format!(
                "{} opened with '{bracket}' is not closed (the parser gave up at line {line})",
                if bracket == '[' { "a list" } else { "a mapping" }
            );
                (open_line, open_col)
            }
            _ => (line, col),
        };
    // A line that does not line up has no trustworthy key path (indentation is what is
    // wrong), and it is broken from its first character.
    let misaligned = plain.contains("does not line up");
    let (key, col) = match lines.get(line.wrapping_sub(1)) {
        Some(l) if misaligned => (String::new(), l.len() - l.trim_start().len() + 1),
        _ => (key_near_line(text, line), col),
    };
    let quoted = lines
        .get(line.wrapping_sub(1))
        .map(|l| format!("; line {line} reads `{}`", shown_line(l.trim_end(), &key)))
        .unwrap_or_default();
    TreeError {
        pos: Pos { line, col },
        key,
        message: format!("YAML syntax error: {plain}{quoted}"),
    }
}

/// A broken line as it may be quoted in an error: the value is left out where it may be a
/// secret (a password, key, header or parameter, a URL with credentials), since errors
/// never carry secrets even when the file holds them in clear.
fn shown_line(line: &str, key: &str) -> String {
    const SECRET_WORDS: &[&str] = &[
        "password",
        "passphrase",
        "api_key",
        "token",
        "secret",
        "headers",
        "parameters",
    ];
    let secret_key = key.split('.').any(|seg| {
        let seg = seg.to_ascii_lowercase();
        seg == "key" || SECRET_WORDS.iter().any(|w| seg.contains(w))
    });
    let url_credentials = line.contains("://") && line.contains('@');
    if !(secret_key || url_credentials || line.contains("-----BEGIN")) {
        // A line long enough to flood the terminal is cut; its start locates it.
        const LONGEST: usize = 120;
        return match line.char_indices().nth(LONGEST) {
            Some((cut, _)) => format!("{}…", &line[..cut]),
            None => line.to_string(),
        };
    }
    match line.split_once(':') {
        Some((head, _)) => format!("{head}: (value not shown)"),
        None => "(not shown: it may hold a secret)".to_string(),
    }
}

/// The first `[` or `{` still open at the end of line `upto` (1-based line and column),
/// skipping quoted text and comments.
fn unclosed_flow(lines: &[&str], upto: usize) -> Option<(usize, usize, char)> {
    let mut open: Vec<(usize, usize, char)> = Vec::new();
    for (i, l) in lines.iter().take(upto).enumerate() {
        let mut quote: Option<char> = None;
        let mut prev = ' ';
        for (j, c) in l.char_indices() {
            match (quote, c) {
                (Some(q), c) if c == q => quote = None,
                (Some(_), _) => {}
                (None, '"' | '\'') if matches!(prev, ' ' | '[' | '{' | ',' | ':') => {
                    quote = Some(c);
                }
                (None, '#') if prev == ' ' || prev == '\t' => break,
                (None, '[' | '{') => open.push((i + 1, j + 1, c)),
                (None, ']' | '}') => {
                    open.pop();
                }
                _ => {}
            }
            prev = c;
        }
    }
    open.first().copied()
}

/// yaml-rust2's scanner and parser messages, as a person who writes configuration files
/// would say them; a message not listed is passed on as the parser wrote it.
fn plain_words(info: &str) -> String {
    const PLAIN: &[(&str, &str)] = &[
        (
            "mapping values are not allowed",
            "a key cannot start here: a second ': ' on one line (quote a value that \
             contains ': '), or a key indented below a key that already has a value",
        ),
        (
            "while parsing a block mapping, did not find expected key",
            "this line does not line up with the keys above it (or an earlier quote or \
             bracket is not closed); indent it like its sibling keys",
        ),
        (
            "while parsing a block collection, did not find expected '-'",
            "this line does not line up with the list items above it; every item starts \
             with '- ' at the same column",
        ),
        (
            "block sequence entries are not allowed",
            "a '- ' list item cannot start here; write the list on the lines below its key, \
             indented",
        ),
        (
            "while parsing a flow sequence",
            "a list opened with '[' is not closed: a ',' or ']' is missing",
        ),
        (
            "while parsing a flow mapping",
            "a mapping opened with '{' is not closed: a ',' or '}' is missing",
        ),
        (
            "while scanning a quoted scalar, found unexpected end of stream",
            "a quoted value is never closed: the closing quote is missing",
        ),
        (
            "while parsing a quoted scalar, found unknown escape character",
            "an unknown backslash escape inside double quotes; write \\\\ for a backslash \
             or use single quotes (e.g. for Windows paths)",
        ),
        (
            "invalid trailing content after double-quoted scalar",
            "text after the closing quote; quote the whole value",
        ),
        (
            "while parsing a node, did not find expected node content",
            "a value is missing here (or a line is indented wrongly)",
        ),
        (
            "did not find expected <document start>",
            "this line does not belong to any key: check its indentation",
        ),
        (
            "unexpected eof",
            "the file ends in the middle of a value: an unclosed quote or bracket?",
        ),
        (
            "simple key expect",
            "a key must be followed by ':' on the same line",
        ),
        (
            "':' must be followed by a valid YAML whitespace",
            "a ':' after a key must be followed by a space",
        ),
        (
            "'-' must be followed by a valid YAML whitespace",
            "a '-' starting a list item must be followed by a space",
        ),
        (
            "comments must be separated from other tokens by whitespace",
            "a '#' comment needs a space before it",
        ),
        (
            "while parsing node, found unknown anchor",
            "an alias (*name) refers to an anchor (&name) that is not defined above it",
        ),
        ("tab", "a tab character; YAML allows only spaces here"),
        (
            "invalid indentation in quoted scalar",
            "a quoted value is not closed on its line (a value continued on the next line \
             must be indented)",
        ),
        ("invalid indentation", "wrong indentation"),
        (
            "recursion limit exceeded",
            "nested too deeply for the YAML parser (its recursion limit)",
        ),
    ];
    PLAIN
        .iter()
        .find(|(raw, _)| info.contains(raw))
        .map_or_else(|| info.to_string(), |(_, plain)| (*plain).to_string())
}

/// The key path written on or above `line`, judged by indentation alone: for errors where
/// the YAML parser has no tree to offer, so the message can still name a key.
fn key_near_line(text: &str, line: usize) -> String {
    let mut stack: Vec<(usize, String)> = Vec::new();
    for l in text.lines().take(line) {
        let trimmed = l.trim_start_matches([' ', '\t']);
        let indent = l.len() - trimmed.len();
        let body = trimmed.strip_prefix("- ").unwrap_or(trimmed);
        let Some((key, _)) = body.split_once(':') else {
            continue;
        };
        let key = key.trim().trim_matches(['"', '\'']);
        if key.is_empty() || key.starts_with('#') || key.contains([' ', '[', '{', '"']) {
            continue;
        }
        while stack.last().is_some_and(|(i, _)| *i >= indent) {
            stack.pop();
        }
        stack.push((indent, key.to_string()));
    }
    stack
        .into_iter()
        .map(|(_, k)| k)
        .collect::<Vec<_>>()
        .join(".")
}

fn tab_indentation(text: &str) -> Vec<TreeError> {
    let mut errors = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let indent_end = line
            .find(|c: char| c != ' ' && c != '\t')
            .unwrap_or(line.len());
        if let Some(col) = line[..indent_end].find('\t') {
            // A line of only whitespace is harmless; YAML ignores it.
            if indent_end < line.len() {
                errors.push(TreeError {
                    pos: Pos {
                        line: i + 1,
                        col: col + 1,
                    },
                    key: key_near_line(text, i + 1),
                    message: "tab character used for indentation; YAML allows only spaces"
                        .to_string(),
                });
            }
        }
    }
    errors
}

enum Frame {
    Seq {
        pos: Pos,
        anchor: usize,
        items: Vec<Node>,
    },
    Map {
        pos: Pos,
        anchor: usize,
        /// Keys in written order, each with its position, before dotted re-nesting.
        entries: Vec<(String, Pos, Node)>,
        pending_key: Option<(String, Pos)>,
    },
}

/// Deeper nesting is refused: no configuration needs it, and the tree's walks recurse.
const MAX_DEPTH: usize = 64;

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    root: Option<Node>,
    anchors: BTreeMap<usize, Node>,
    errors: Vec<TreeError>,
    documents: usize,
}

impl Builder {
    fn push_value(&mut self, node: Node, anchor: usize) {
        if anchor > 0 {
            self.anchors.insert(anchor, node.clone());
        }
        match self.stack.last_mut() {
            None => self.root = Some(node),
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map {
                entries,
                pending_key,
                ..
            }) => match pending_key.take() {
                Some((key, key_pos)) => entries.push((key, key_pos, node)),
                None => match node.value {
                    Value::Str(s) => *pending_key = Some((s, node.pos)),
                    Value::Null => *pending_key = Some((String::new(), node.pos)),
                    Value::Bool(b) => *pending_key = Some((b.to_string(), node.pos)),
                    Value::Int(i) => *pending_key = Some((i.to_string(), node.pos)),
                    Value::Float(f) => *pending_key = Some((f.to_string(), node.pos)),
                    Value::Seq(_) | Value::Map(_) => {
                        self.errors.push(TreeError {
                            pos: node.pos,
                            key: String::new(),
                            message: "a mapping key must be a plain string".to_string(),
                        });
                        *pending_key = Some((String::new(), node.pos));
                    }
                },
            },
        }
    }

    fn finish_map(&mut self, pos: Pos, entries: Vec<(String, Pos, Node)>) -> Node {
        let mut map: BTreeMap<String, Entry> = BTreeMap::new();
        // The same key written twice in one mapping is a YAML error even when both values
        // are mappings; only a dotted and a nested spelling may meet and merge.
        let mut written: BTreeMap<&str, Pos> = BTreeMap::new();
        for (key, key_pos, _) in &entries {
            if let Some(first) = written.insert(key.as_str(), *key_pos) {
                self.errors.push(TreeError {
                    pos: *key_pos,
                    key: key.clone(),
                    message: format!(
                        "duplicate key: set at line {} and again at line {}",
                        first.line, key_pos.line
                    ),
                });
            }
        }
        if written.len() < entries.len() {
            return Node {
                value: Value::Map(map),
                pos,
                plain: false,
            };
        }
        for (key, key_pos, node) in entries {
            let segments: Vec<&str> = key.split('.').collect();
            if segments.iter().any(|s| s.is_empty()) {
                self.errors.push(TreeError {
                    pos: key_pos,
                    key: key.clone(),
                    message: "empty key or empty segment in a dotted key".to_string(),
                });
                continue;
            }
            insert_path(&mut map, &segments, key_pos, node, &mut self.errors, "");
        }
        Node {
            value: Value::Map(map),
            pos,
            plain: false,
        }
    }
}

/// Inserts `node` at `segments` below `map`, merging mappings; a leaf written twice is an
/// error naming both lines.
fn insert_path(
    map: &mut BTreeMap<String, Entry>,
    segments: &[&str],
    key_pos: Pos,
    node: Node,
    errors: &mut Vec<TreeError>,
    prefix: &str,
) {
    let Some((first, rest)) = segments.split_first() else {
        return;
    };
    let path = if prefix.is_empty() {
        (*first).to_string()
    } else {
        format!("{prefix}.{first}")
    };
    let value = if rest.is_empty() {
        node
    } else {
        // The intermediate mapping an implicit dotted key creates.
        let mut inner = BTreeMap::new();
        insert_path(&mut inner, rest, key_pos, node, errors, &path);
        Node {
            value: Value::Map(inner),
            pos: key_pos,
            plain: false,
        }
    };
    match map.get_mut(*first) {
        None => {
            map.insert(
                (*first).to_string(),
                Entry {
                    key_pos,
                    node: value,
                },
            );
        }
        Some(existing) => match (&mut existing.node.value, value.value) {
            (Value::Map(old), Value::Map(new)) => {
                for (k, e) in new {
                    insert_path(old, &[k.as_str()], e.key_pos, e.node, errors, &path);
                }
            }
            _ => errors.push(TreeError {
                pos: key_pos,
                key: path.clone(),
                message: format!(
                    "duplicate key: set at line {} and again at line {}",
                    existing.key_pos.line, key_pos.line
                ),
            }),
        },
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        let pos = Pos::from_marker(mark);
        if self.stack.len() == MAX_DEPTH
            && matches!(ev, Event::SequenceStart(..) | Event::MappingStart(..))
        {
            self.errors.push(TreeError {
                pos,
                key: String::new(),
                message: format!("nested more than {MAX_DEPTH} levels deep"),
            });
        }
        match ev {
            Event::Scalar(text, style, anchor, _tag) => {
                let plain = style == TScalarStyle::Plain;
                let value = if plain {
                    resolve_plain(&text)
                } else {
                    Value::Str(text)
                };
                self.push_value(Node { value, pos, plain }, anchor);
            }
            Event::SequenceStart(anchor, _) => self.stack.push(Frame::Seq {
                pos,
                anchor,
                items: Vec::new(),
            }),
            Event::MappingStart(anchor, _) => self.stack.push(Frame::Map {
                pos,
                anchor,
                entries: Vec::new(),
                pending_key: None,
            }),
            Event::SequenceEnd => {
                if let Some(Frame::Seq { pos, anchor, items }) = self.stack.pop() {
                    let node = Node {
                        value: Value::Seq(items),
                        pos,
                        plain: false,
                    };
                    self.push_value(node, anchor);
                }
            }
            Event::MappingEnd => {
                if let Some(Frame::Map {
                    pos,
                    anchor,
                    entries,
                    ..
                }) = self.stack.pop()
                {
                    let node = self.finish_map(pos, entries);
                    self.push_value(node, anchor);
                }
            }
            Event::Alias(id) => {
                let node = match self.anchors.get(&id) {
                    Some(n) => n.clone(),
                    None => {
                        self.errors.push(TreeError {
                            pos,
                            key: String::new(),
                            message: "alias to an unknown anchor".to_string(),
                        });
                        Node {
                            value: Value::Null,
                            pos,
                            plain: false,
                        }
                    }
                };
                self.push_value(node, 0);
            }
            Event::Nothing | Event::StreamStart | Event::StreamEnd | Event::DocumentEnd => {}
            Event::DocumentStart => {
                self.documents += 1;
                if self.documents == 2 {
                    self.errors.push(TreeError {
                        pos,
                        key: String::new(),
                        message: "a second YAML document (---); a config file holds one"
                            .to_string(),
                    });
                }
            }
        }
    }
}

impl Node {
    /// A node for a value that has no position in a file (environment, `-E`).
    pub fn detached(value: Value) -> Self {
        Self {
            value,
            pos: Pos::default(),
            plain: false,
        }
    }

    /// Converts to JSON for figment; positions are dropped (they live in [`Node::index`]).
    pub fn to_json(&self) -> serde_json::Value {
        match &self.value {
            Value::Null => serde_json::Value::Null,
            Value::Bool(b) => serde_json::Value::Bool(*b),
            Value::Int(i) => serde_json::Value::from(*i),
            Value::Float(f) => serde_json::Number::from_f64(*f)
                .map(serde_json::Value::Number)
                .unwrap_or_else(|| serde_json::Value::String(f.to_string())),
            Value::Str(s) => serde_json::Value::String(s.clone()),
            Value::Seq(items) => {
                serde_json::Value::Array(items.iter().map(Node::to_json).collect())
            }
            Value::Map(map) => serde_json::Value::Object(
                map.iter()
                    .map(|(k, e)| (k.clone(), e.node.to_json()))
                    .collect(),
            ),
        }
    }

    /// Every key path (`output.logstash.hosts`, `skidder.inputs.0.type`) with the position
    /// of its key, or of the item for sequence entries.
    pub fn index(&self) -> BTreeMap<String, Pos> {
        let mut out = BTreeMap::new();
        index_into(self, "", &mut out);
        out
    }
}

fn index_into(node: &Node, prefix: &str, out: &mut BTreeMap<String, Pos>) {
    let join = |k: &str| {
        if prefix.is_empty() {
            k.to_string()
        } else {
            format!("{prefix}.{k}")
        }
    };
    match &node.value {
        Value::Map(map) => {
            for (k, e) in map {
                let path = join(k);
                out.insert(path.clone(), e.key_pos);
                index_into(&e.node, &path, out);
            }
        }
        Value::Seq(items) => {
            for (i, item) in items.iter().enumerate() {
                let path = join(&i.to_string());
                out.insert(path.clone(), item.pos);
                index_into(item, &path, out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get<'a>(node: &'a Node, path: &str) -> &'a Node {
        let mut cur = node;
        for seg in path.split('.') {
            match &cur.value {
                Value::Map(m) => cur = &m[seg].node,
                other => panic!("{path}: not a map at {seg}: {other:?}"),
            }
        }
        cur
    }

    #[test]
    fn dotted_and_nested_keys_are_the_same_thing() {
        let a = parse("output.logstash.hosts: [\"a:5044\"]\n").unwrap();
        let b = parse("output:\n  logstash:\n    hosts: [\"a:5044\"]\n").unwrap();
        assert_eq!(a.to_json(), b.to_json());
        let mixed =
            parse("output.logstash:\n  hosts: [a]\noutput:\n  logstash.timeout: 5s\n").unwrap();
        assert_eq!(
            get(&mixed, "output.logstash.timeout").value,
            Value::Str("5s".into())
        );
        assert_eq!(mixed.index()["output.logstash.timeout"].line, 4);
    }

    #[test]
    fn a_key_given_dotted_and_nested_names_both_lines() {
        let errs = parse("output.logstash.hosts: [a]\noutput:\n  logstash:\n    hosts: [b]\n")
            .unwrap_err();
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!(errs[0].key, "output.logstash.hosts");
        assert!(errs[0].message.contains("at line 1"), "{}", errs[0].message);
        assert!(errs[0].message.contains("line 4"), "{}", errs[0].message);
    }

    #[test]
    fn literal_duplicates_and_second_documents_are_errors() {
        let errs = parse("a:\n  b: 1\na:\n  c: 2\n").unwrap_err();
        assert_eq!(errs[0].key, "a");
        assert!(
            errs[0].message.contains("line 1 and again at line 3"),
            "{errs:?}"
        );
        let errs = parse("a: 1\n---\nb: 2\n").unwrap_err();
        assert!(errs[0].message.contains("second YAML document"), "{errs:?}");
        assert_eq!(errs[0].pos.line, 2);
    }

    #[test]
    fn scalars_are_typed_like_yaml_and_quoted_stay_strings() {
        let n = parse("a: 1\nb: \"1\"\nc: true\nd: 30s\ne: 1.5\nf: ~\n").unwrap();
        assert_eq!(get(&n, "a").value, Value::Int(1));
        assert_eq!(get(&n, "b").value, Value::Str("1".into()));
        assert_eq!(get(&n, "c").value, Value::Bool(true));
        assert_eq!(get(&n, "d").value, Value::Str("30s".into()));
        assert_eq!(get(&n, "e").value, Value::Float(1.5));
        assert_eq!(get(&n, "f").value, Value::Null);
        let n = parse("a: 0123\nb: True\nc: 1.50\nd: -7\n").unwrap();
        assert_eq!(get(&n, "a").value, Value::Str("0123".into()));
        assert_eq!(get(&n, "b").value, Value::Str("True".into()));
        assert_eq!(get(&n, "c").value, Value::Str("1.50".into()));
        assert_eq!(get(&n, "d").value, Value::Int(-7));
    }

    #[test]
    fn syntax_errors_are_plain_words_at_the_broken_line_quoting_it() {
        let cases = [
            (
                "output.logstash:\n  hosts: a: b\n  timeout: 5s\n",
                2,
                "a second ': ' on one line",
                "line 2 reads `  hosts: a: b`",
            ),
            (
                "output:\n  logstash:\n    hosts: [a]\n   timeout: 5s\n",
                4,
                "does not line up",
                "line 4 reads `   timeout: 5s`",
            ),
            (
                "a: [1, 2\nb: 3\n",
                1,
                "list opened with '[' is not closed",
                "reads `",
            ),
            (
                "a: 1\nb: \"unclosed\n\n",
                2,
                "closing quote is missing",
                "line 2 reads `b: \"unclosed`",
            ),
            (
                "a: \"unclosed\nb: 1\n",
                1,
                "quoted value is not closed on its line",
                "line 1 reads `a: \"unclosed`",
            ),
            (
                "a: b\n  c: d\n",
                2,
                "a key indented below a key that already has a value",
                "line 2 reads `  c: d`",
            ),
        ];
        for (text, line, plain, quote) in cases {
            let errs = parse(text).unwrap_err();
            let e = &errs[0];
            assert_eq!(e.pos.line, line, "{text:?}: {e:?}");
            assert!(e.message.contains(plain), "{text:?}: {e:?}");
            assert!(e.message.contains(quote), "{text:?}: {e:?}");
            // yaml-rust2's own wording is gone.
            assert!(!e.message.contains("while parsing"), "{text:?}: {e:?}");
            assert!(!e.message.contains("not allowed in this context"), "{e:?}");
        }
    }

    #[test]
    fn a_line_that_does_not_line_up_is_located_at_its_start_without_a_guessed_key() {
        let e = &parse("output:\n  logstash:\n    hosts: [a]\n   timeout: 5s\n").unwrap_err()[0];
        assert_eq!(e.pos, Pos { line: 4, col: 4 }, "{e:?}");
        assert_eq!(e.key, "", "{e:?}");
    }

    #[test]
    fn a_broken_line_holding_a_secret_is_quoted_without_its_value() {
        for text in [
            "output.elasticsearch:\n  password: \"hunter2-XYZ\n",
            "output.elasticsearch:\n  hosts: [\"https://u:hunter2-XYZ@h\"\n",
        ] {
            let e = &parse(text).unwrap_err()[0];
            assert!(e.message.contains("value not shown"), "{e:?}");
            assert!(!e.message.contains("hunter2-XYZ"), "{e:?}");
        }
    }

    #[test]
    fn tabs_and_syntax_errors_have_line_and_column() {
        let errs = parse("output:\n\tlogstash: {}\n").unwrap_err();
        assert_eq!(errs[0].pos, Pos { line: 2, col: 1 });
        let errs = parse("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(errs[0].message.starts_with("YAML syntax error"), "{errs:?}");
        assert!(errs[0].pos.line >= 1);
    }
}
