//! Event parity with Filebeat 7.17.29 (issue 16): the same lines through Filebeat's `stdin`
//! input and skidder's, with the same top-level `name`/`tags`/`fields`, the same input and
//! top-level processors chain, each shipped over `output.logstash` to its own
//! `skidder receive --out FILE`. The received events must be equal field by field, except
//! what cannot or need not be equal: the agent's ids and version, `agent.type` (skidder, by
//! design), `@timestamp`, `@metadata` (the beat's name and version), and `log.offset`/
//! `log.file` (Filebeat's stdin input reads through its log harvester; skidder's does not
//! write them).

mod common;
#[path = "common/filebeat.rs"]
mod filebeat;
#[path = "common/lumberjack_peers.rs"]
mod peers;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use peers::Receiver;
use serde_json::Value;

const LINES: &[&str] = &[
    "GET /index.html 200",
    "DEBUG noisy line the input drops",
    r#"{"user":"u1","n":5,"ip":"10.1.2.3","ratio":0.25}"#,
    r#"{"user":"u2","n":50,"ip":"8.8.8.8","nested":"{\"deep\":true}"}"#,
    "POST /login 302 é <&> \u{2028}",
    "not json { at all",
];
const SHIPPED: usize = 5;

/// The part both configurations share: what libbeat's pipeline does to each event.
const PIPELINE: &str = r#"
name: parity-host
tags: [global]
fields: {env: prod, team: a}
processors:
  - add_host_metadata:
      when.not.contains.tags: forwarded
  - add_tags: {tags: [web], when.regexp.message: "^(GET|POST) "}
  - copy_fields: {fields: [{from: message, to: event.original}]}
  - decode_json_fields: {fields: [event.original], target: json}
  - add_tags:
      tags: [internal]
      when.and:
        - network.json.ip: private
        - has_fields: [json.user]
  - drop_fields: {fields: [json.n], when.range.json.n.gte: 10}
  - truncate_fields: {fields: [message], max_bytes: 12}
  - rename: {fields: [{from: project.id, to: project.code}, {from: missing, to: x}], ignore_missing: true}
  - copy_fields: {fields: [{from: agent.name, to: seen_by_top}]}
  - add_locale: ~
  - add_fields:
      target: ""
      fields: {labels: {stage: parity}}
      when.or:
        - equals.json.user: u1
        - not.has_fields: [json]
"#;

const INPUT_PROCESSORS: &str = r#"
    tags: [mine]
    fields: {team: b}
    processors:
      - add_fields: {target: project, fields: {name: myproject, id: "574734885120952459"}}
      - drop_event.when.contains.message: DEBUG
      - copy_fields: {fields: [{from: agent.name, to: seen_by_input}], fail_on_error: false}
"#;

/// Ships `LINES` through `cmd` (Filebeat or skidder, configured by the caller) into a new
/// `skidder receive`; returns the received events.
fn received(
    dir: &Path,
    shipped: usize,
    run: impl FnOnce(&str, std::fs::File) -> std::process::Child,
) -> Vec<Value> {
    let lines = dir.join("lines.txt");
    std::fs::write(&lines, LINES.join("\n") + "\n").unwrap();
    let out = dir.join("received.ndjson");
    let out_s = out.display().to_string();
    let n = shipped.to_string();
    let rx = Receiver::receive(&["--out", &out_s, "--expect", &n, "--deadline", "120s"]);
    let child = run(&rx.addr, std::fs::File::open(&lines).unwrap());
    let _child = common::reap::Reap(child);
    let (code, stderr) = rx.finish(Duration::from_secs(150));
    assert_eq!(
        code,
        Some(0),
        "receiver:\n{stderr}\nsender's log: {}",
        std::fs::read_to_string(dir.join("sender.log")).unwrap_or_default()
    );
    std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn output(addr: &str) -> String {
    format!("output.logstash:\n  hosts: [\"{addr}\"]\n  bulk_max_size: 1\n")
}

/// Paths set to their values, for a readable diff.
fn leaves(prefix: &str, v: &Value, out: &mut BTreeMap<String, Value>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                leaves(&p, v, out);
            }
        }
        other => {
            out.insert(prefix.to_string(), other.clone());
        }
    }
}

/// What is compared: everything but the documented differences.
fn comparable(mut e: Value) -> BTreeMap<String, Value> {
    let m = e.as_object_mut().unwrap();
    m.remove("@timestamp");
    m.remove("@metadata");
    if let Some(Value::Object(agent)) = m.get_mut("agent") {
        for k in ["id", "ephemeral_id", "version", "type"] {
            agent.remove(k);
        }
    }
    if let Some(Value::Object(log)) = m.get_mut("log") {
        log.remove("offset");
        log.remove("file");
        if log.is_empty() {
            m.remove("log");
        }
    }
    let mut out = BTreeMap::new();
    leaves("", &e, &mut out);
    out
}

/// Runs both senders with the same `pipeline` (top-level settings) and `input` (the stdin
/// input's settings) and asserts their events are equal but for the documented
/// differences.
fn assert_parity(pipeline: &str, input: &str, shipped: usize) {
    let yaml = |addr: &str| {
        format!(
            "{pipeline}\nfilebeat.inputs:\n  - type: stdin\n{input}\n{}",
            output(addr)
        )
    };
    let fb_dir = tempfile::tempdir().unwrap();
    let fb_events = received(fb_dir.path(), shipped, |addr, stdin| {
        filebeat::command(fb_dir.path(), &yaml(addr))
            .stdin(stdin)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(fb_dir.path().join("sender.log")).unwrap())
            .spawn()
            .unwrap()
    });
    let sk_dir = tempfile::tempdir().unwrap();
    let sk_events = received(sk_dir.path(), shipped, |addr, stdin| {
        let path = common::config(sk_dir.path(), &yaml(addr));
        common::bin()
            .current_dir(sk_dir.path())
            .args(["run", "-e", "-c"])
            .arg(&path)
            .stdin(stdin)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(sk_dir.path().join("sender.log")).unwrap())
            .spawn()
            .unwrap()
    });
    assert_eq!(fb_events[0]["agent"]["type"], "filebeat");
    assert_eq!(sk_events[0]["agent"]["type"], "skidder");
    let key = |e: &Value| {
        e["event"]["original"]
            .as_str()
            .or(e["message"].as_str())
            .unwrap_or("?")
            .to_string()
    };
    let fb: BTreeMap<String, _> = fb_events
        .iter()
        .map(|e| (key(e), comparable(e.clone())))
        .collect();
    let sk: BTreeMap<String, _> = sk_events
        .iter()
        .map(|e| (key(e), comparable(e.clone())))
        .collect();
    assert_eq!(
        fb.keys().collect::<Vec<_>>(),
        sk.keys().collect::<Vec<_>>(),
        "the same events"
    );
    let mut diffs = Vec::new();
    for (line, want) in &fb {
        let got = &sk[line];
        for (path, v) in want {
            match got.get(path) {
                Some(g) if g == v => {}
                other => diffs.push(format!("{line:?}: {path}: Filebeat {v}, skidder {other:?}")),
            }
        }
        for path in got.keys().filter(|p| !want.contains_key(*p)) {
            diffs.push(format!(
                "{line:?}: {path}: only skidder has it ({})",
                got[path]
            ));
        }
    }
    assert!(diffs.is_empty(), "events differ:\n{}", diffs.join("\n"));
}

/// The whole chain: top-level `name`, `tags`, `fields`; input `tags`, `fields` and
/// processors (one dropping an event, one that cannot see `agent.name` yet); top-level
/// processors with every kind of condition, `add_host_metadata` (netinfo on), `add_locale`,
/// `decode_json_fields`, `truncate_fields`, `rename`, `copy_fields`, `drop_fields`.
#[test]
fn skidder_events_equal_filebeats_field_by_field() {
    assert_parity(PIPELINE, INPUT_PROCESSORS, SHIPPED);
}

/// No processor anywhere (skidder's pre-encoded path): the built-in fields with `name`
/// unset (the hostname), top-level fields at the root, the input's under `fields`.
#[test]
fn without_processors_the_added_fields_equal_filebeats() {
    assert_parity(
        "tags: [global]\nfields: {env: prod, svc: {tier: web}}\nfields_under_root: true\n",
        "    tags: [mine]\n    fields: {team: b}\n",
        LINES.len(),
    );
}

/// Filebeat's default processors (`add_host_metadata` with `when.not.contains.tags:
/// forwarded`), which skidder folds into its pre-encoded tail and decides once per input:
/// filestream NDJSON lines with and without tags of their own, an input whose configured
/// tags hold `forwarded`, and plain lines, each read by both to `output.console` and equal
/// field by field (agent ids/version/type, `@timestamp`, `@metadata`, `log.*` aside).
#[test]
fn default_processors_on_filestream_lines_equal_filebeats() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("own.ndjson"),
        concat!(
            r#"{"message":"no tags"}"#,
            "\n",
            r#"{"message":"forwarded by the line","tags":["forwarded"]}"#,
            "\n",
            r#"{"message":"other tags","tags":["other"]}"#,
            "\n",
            r#"{"message":"own host","host":{"name":"own","ip":["192.0.2.1"]}}"#,
            "\n",
            r#"{"message":"own host and tags","host":{"os":{"name":"mine"}},"tags":["forwarded"]}"#,
            "\n",
        ),
    )
    .unwrap();
    std::fs::write(
        d.join("fwd.ndjson"),
        concat!(
            r#"{"message":"forwarded input"}"#,
            "\n",
            r#"{"message":"forwarded input, own tags","tags":["x"]}"#,
            "\n",
        ),
    )
    .unwrap();
    std::fs::write(d.join("plain.log"), "a plain line\n").unwrap();
    let ndjson = "    parsers:\n      - ndjson:\n          overwrite_keys: true\n";
    let inputs = format!(
        "  - type: filestream\n    id: own\n    paths: [\"{0}/own.ndjson\"]\n{ndjson}\
         \x20 - type: filestream\n    id: fwd\n    tags: [forwarded]\n    paths: [\"{0}/fwd.ndjson\"]\n{ndjson}\
         \x20 - type: filestream\n    id: plain\n    paths: [\"{0}/plain.log\"]\n",
        d.display()
    );
    let pipeline = "name: parity-host\nfields: {env: prod}\nprocessors:\n  - add_host_metadata:\n      when.not.contains.tags: forwarded\n";
    let limit = Duration::from_secs(120);
    let (ours, stdout) = filebeat::skidder_once(
        d,
        &format!(
            "{pipeline}filebeat.inputs:\n{inputs}output.console: {{}}\npath.data: {}/skidder-data\n",
            d.display()
        ),
        limit,
    );
    assert_eq!(ours.len(), 8, "{stdout}");
    let fb_dir = d.join("fb");
    std::fs::create_dir(&fb_dir).unwrap();
    let (theirs, _fb) = filebeat::events_at_least(
        &fb_dir,
        &format!("{pipeline}filebeat.inputs:\n{inputs}output.console: {{}}\n"),
        ours.len(),
        limit,
    );
    let by_message = |evs: &[Value]| -> BTreeMap<String, BTreeMap<String, Value>> {
        evs.iter()
            .map(|e| {
                (
                    e["message"].as_str().unwrap_or("?").to_string(),
                    comparable(e.clone()),
                )
            })
            .collect()
    };
    let (sk, fb) = (by_message(&ours), by_message(&theirs));
    assert_eq!(
        sk.keys().collect::<Vec<_>>(),
        fb.keys().collect::<Vec<_>>(),
        "the same events"
    );
    // Both outcomes of the condition are among them.
    let with_host = sk
        .values()
        .filter(|e| e.contains_key("host.os.type"))
        .count();
    assert_eq!(with_host, 4, "{sk:#?}");
    let mut diffs = Vec::new();
    for (line, want) in &fb {
        let got = &sk[line];
        let paths: std::collections::BTreeSet<&String> = want.keys().chain(got.keys()).collect();
        for path in paths {
            match (got.get(path), want.get(path)) {
                (Some(g), Some(w)) if filebeat::same(g, w) => {}
                (g, w) => diffs.push(format!("{line:?}: {path}: Filebeat {w:?}, skidder {g:?}")),
            }
        }
    }
    assert!(diffs.is_empty(), "events differ:\n{}", diffs.join("\n"));
}
