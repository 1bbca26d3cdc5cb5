//! Parity with Filebeat 7.17.29's classic `type: log` input (issue 16): the same
//! `filebeat.inputs` (plain lines with `max_bytes`, a multiline stack trace, NDJSON under
//! `json` and at the root with `message_key`, `document_id`, `overwrite_keys` and
//! `add_error_key`) read by Filebeat and by skidder, both to `output.console`, compared
//! field by field: `message`, `log.offset`, `log.file.path`, `log.flags`, `input.type`,
//! every decoded JSON field, `@metadata._id`, and `@timestamp` where a line set it. Agent,
//! host and ECS fields are another layer's; read times differ by nature.

mod common;
#[path = "common/filebeat.rs"]
mod filebeat;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

const LIMIT: Duration = Duration::from_secs(120);

const NDJSON: &[u8] =
    br#"{"@timestamp":"2024-05-06T07:08:09.123Z","level":"info","msg":"started","n":1,"id":"doc-1"}
{"nested":{"a":{"b":[1,2]}},"flag":true,"msg":"nested one"}
{"dotted.key":"stays dotted","x":-12.5,"s":"\u00e9\t\"q\""}
{"log":{"level":"warn"},"message":"the line's own message","msg":"with a log key"}
not json at all
{"k":"no msg key here"}
{"msg":42,"k":"msg is not a string"}
"#;

/// The corpus: (file name, bytes).
fn corpus() -> Vec<(&'static str, Vec<u8>)> {
    let mut plain = Vec::new();
    plain.extend_from_slice(b"first line\n");
    plain.extend_from_slice(b"crlf line\r\n");
    plain.extend_from_slice(b"\n");
    plain.extend_from_slice(b"tabs\tand \"quotes\" and <html> & \\ backslash\n");
    plain.extend_from_slice("unicode \u{e9}\u{4e2d}\u{1f600}\n".as_bytes());
    plain.extend_from_slice(&[b'L'; 150]);
    plain.extend_from_slice(b"\n");
    plain.extend_from_slice(b"DEBUG dropped by exclude_lines\n");
    plain.extend_from_slice(b"last line without a newline");

    let java = [
        "2024-01-02 03:04:05 ERROR something failed",
        "java.lang.IllegalStateException: boom",
        "    at com.example.App.run(App.java:10)",
        "Caused by: java.io.IOException: disk",
        "    ... 2 more",
        "2024-01-02 03:04:06 INFO recovered",
        "2024-01-02 03:04:07 INFO done",
        "",
    ]
    .join("\n")
    .into_bytes();
    vec![
        ("plain.log", plain),
        ("java.log", java),
        ("under.ndjson", NDJSON.to_vec()),
        ("root.ndjson", NDJSON.to_vec()),
    ]
}

/// The inputs, as a Filebeat user writes them; both load them under `filebeat.inputs`.
fn inputs(dir: &Path) -> String {
    let d = dir.display();
    format!(
        "filebeat.inputs:\n\
         - type: log\n  paths: [\"{d}/plain.log\"]\n  max_bytes: 100\n  exclude_lines: ['^DEBUG']\n\
         - type: log\n  paths: [\"{d}/java.log\"]\n  multiline.pattern: '^[[:space:]]+(at|\\.{{3}})[[:space:]]+\\b|^Caused by:|^[a-z]+\\.'\n  multiline.negate: false\n  multiline.match: after\n\
         - type: log\n  paths: [\"{d}/under.ndjson\"]\n  json.add_error_key: true\n  json.message_key: msg\n\
         - type: log\n  paths: [\"{d}/root.ndjson\"]\n  json.keys_under_root: true\n  json.overwrite_keys: true\n  json.add_error_key: true\n  json.message_key: msg\n  json.document_id: id\n  tags: [root]\n"
    )
}

/// What is compared of an event: everything but the fields of other layers; of
/// `@metadata` only `_id`.
fn comparable(e: &Value) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for (k, v) in e.as_object().unwrap() {
        match k.as_str() {
            "agent" | "ecs" | "host" | "@timestamp" => {}
            "@metadata" => {
                if let Some(id) = v.get("_id") {
                    out.insert("@metadata._id".into(), id.clone());
                }
            }
            _ => {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    out
}

#[test]
fn log_input_events_match_filebeats_log_input_field_by_field() {
    let dir = tempfile::tempdir().unwrap();
    let logs = filebeat::write_logs(dir.path(), corpus());

    let (ours, stdout) = filebeat::skidder_once(
        dir.path(),
        &format!(
            "{}output.console: {{}}\npath.data: {}/skidder-data\n",
            inputs(&logs),
            dir.path().display()
        ),
        LIMIT,
    );
    // 5 plain lines (the empty one skipped, DEBUG excluded, the unterminated one waits),
    // 3 multiline groups, 7 + 7 NDJSON lines.
    assert_eq!(ours.len(), 22, "{stdout}");
    assert!(
        ours.iter().all(|e| e["input"]["type"] == "log"),
        "input.type: {ours:#?}"
    );

    let yaml = format!("{}output.console: {{}}\n", inputs(&logs));
    let (theirs, _fb) = filebeat::events_at_least(dir.path(), &yaml, ours.len(), LIMIT);

    let by_file = |evs: &[Value]| {
        let mut m: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        for e in evs {
            let path = e["log"]["file"]["path"].as_str().unwrap_or("").to_string();
            m.entry(path).or_default().push(e.clone());
        }
        for list in m.values_mut() {
            list.sort_by_key(|e| e["log"]["offset"].as_u64());
        }
        m
    };
    let (ours_f, theirs_f) = (by_file(&ours), by_file(&theirs));
    assert_eq!(
        ours_f.keys().collect::<Vec<_>>(),
        theirs_f.keys().collect::<Vec<_>>()
    );
    let mut problems = Vec::new();
    for (path, mine) in &ours_f {
        let fb = &theirs_f[path];
        if mine.len() != fb.len() {
            problems.push(format!(
                "{path}: skidder {} events, Filebeat {}",
                mine.len(),
                fb.len()
            ));
            continue;
        }
        for (a, b) in mine.iter().zip(fb) {
            let line_ts = b["@timestamp"].as_str().unwrap_or("");
            if line_ts.starts_with("2024-05-06") {
                assert_eq!(a["@timestamp"], b["@timestamp"], "{path}: @timestamp");
            }
            let (mut ca, mut cb) = (comparable(a), comparable(b));
            // Decoding errors name the JSON problem in each parser's own words.
            for c in [&mut ca, &mut cb] {
                normalise_error(c.get_mut("error"));
                normalise_error(c.get_mut("json").and_then(|j| j.get_mut("error")));
            }
            let keys: std::collections::BTreeSet<&String> = ca.keys().chain(cb.keys()).collect();
            for k in keys {
                let (x, y) = (ca.get(k), cb.get(k));
                let ok = match (x, y) {
                    (Some(x), Some(y)) => filebeat::same(x, y),
                    _ => false,
                };
                if !ok {
                    problems.push(format!("{path} {k}: skidder {x:?}, Filebeat {y:?}"));
                }
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{} difference(s) from Filebeat 7.17.29's log input:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

/// `Error decoding JSON: <Go's or serde's words>` becomes `Error decoding JSON: …`.
fn normalise_error(err: Option<&mut Value>) {
    if let Some(Value::Object(err)) = err {
        if let Some(Value::String(m)) = err.get_mut("message") {
            if m.starts_with("Error decoding JSON: ") {
                *m = "Error decoding JSON: …".into();
            }
        }
    }
}
