//! Issue 16: every event carries libbeat's built-in fields, processors run in Beats' order,
//! and `filebeat.inputs` is the input list. Events are shipped by the real binary over
//! `output.logstash` to `skidder receive --out FILE` in another process and read back.

mod common;
#[path = "common/lumberjack_peers.rs"]
mod peers;

use std::io::Write;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use peers::Receiver;
use serde_json::Value;
use skidder::config::{load_with, EnvSource, LoadOptions};

const LIMIT: Duration = Duration::from_secs(60);

/// Runs `skidder run -c yaml` in `dir` with `stdin`, shipping to a fresh `skidder receive`
/// that exits once `expect` distinct `seq`s arrived; returns the received events by seq.
fn ship(dir: &Path, yaml_inputs: &str, stdin: &[u8], expect: usize) -> Vec<Value> {
    let out = dir.join("received.ndjson");
    let out_s = out.display().to_string();
    let n = expect.to_string();
    let rx = Receiver::receive(&["--out", &out_s, "--expect", &n, "--deadline", "60s"]);
    let yaml = format!(
        "{yaml_inputs}\noutput.logstash:\n  hosts: [\"{}\"]\n  timeout: 10s\n\
         queue.mem.flush.timeout: 10ms\npath.data: data\n",
        rx.addr
    );
    let path = common::config(dir, &yaml);
    let mut child = common::bin()
        .current_dir(dir)
        .args(["run", "-e", "-c"])
        .arg(&path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin).unwrap();
    drop(input);
    let run = common::wait_output(child, LIMIT);
    assert_eq!(run.code(), Some(0), "sender:\n{}", run.stderr);
    let (code, stderr) = rx.finish(Duration::from_secs(30));
    assert_eq!(code, Some(0), "receiver:\n{stderr}");
    let text = std::fs::read_to_string(&out).unwrap();
    let mut events: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    events.sort_by_key(|e| e["seq"].as_u64());
    assert_eq!(events.len(), expect, "{text}");
    events
}

fn meta_uuid(dir: &Path) -> String {
    let meta: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("data/meta.json")).unwrap())
            .unwrap();
    meta["uuid"].as_str().unwrap().to_string()
}

fn is_uuid(v: &Value) -> bool {
    v.as_str().is_some_and(|s| {
        s.len() == 36 && s.split('-').map(str::len).collect::<Vec<_>>() == [8, 4, 4, 4, 12]
    })
}

/// No processor: the pre-encoded tail. Every event gets agent.*, ecs.version, host.name
/// (the hostname when `name` is unset) and input.type; a line's own `host` keeps its
/// values and gains nothing it has; `agent.id` is the one kept in path.data/meta.json,
/// the same on the next run, while `agent.ephemeral_id` changes.
#[test]
fn stdin_events_carry_libbeat_builtin_fields_and_keep_agent_id_across_runs() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = "skidder.inputs:\n  - type: stdin\n    json: true\n";
    let lines = b"{\"seq\":1,\"message\":\"plain\"}\n{\"seq\":2,\"host\":{\"name\":\"from-line\",\"ip\":\"10.1.2.3\"},\"agent\":{\"type\":\"filebeat\"}}\n";
    let events = ship(dir.path(), inputs, lines, 2);
    let host = hostname();
    let id = meta_uuid(dir.path());
    let first = &events[0];
    assert_eq!(first["agent"]["type"], "skidder");
    assert_eq!(first["agent"]["name"], host.as_str());
    assert_eq!(first["agent"]["hostname"], host.as_str());
    assert_eq!(first["agent"]["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(first["agent"]["id"], id.as_str());
    assert!(is_uuid(&first["agent"]["ephemeral_id"]), "{first}");
    assert_eq!(first["ecs"]["version"], "1.12.0");
    assert_eq!(first["host"]["name"], host.as_str());
    assert_eq!(first["input"]["type"], "stdin");
    assert_eq!(first["message"], "plain");
    assert_eq!(first["@metadata"]["beat"], "skidder");
    // The line's own fields are never overwritten by built-in ones.
    let second = &events[1];
    assert_eq!(
        second["host"],
        serde_json::json!({"name": "from-line", "ip": "10.1.2.3"})
    );
    assert_eq!(second["agent"]["type"], "filebeat");
    assert_eq!(
        second["agent"]["id"],
        id.as_str(),
        "filled in under the line's agent"
    );

    // Same path.data: the same agent.id; a new process: a new ephemeral_id.
    std::fs::remove_file(dir.path().join("received.ndjson")).unwrap();
    let again = ship(dir.path(), inputs, b"{\"seq\":3}\n", 1);
    assert_eq!(again[0]["agent"]["id"], id.as_str());
    assert_ne!(
        again[0]["agent"]["ephemeral_id"],
        first["agent"]["ephemeral_id"]
    );
}

/// `filebeat.inputs`, top-level `name`/`tags`/`fields`, input fields and tags, and both
/// processor lists in Beats' order: the input's processors run before the built-in fields
/// exist (so they cannot copy `agent.name`), the top-level ones after; `drop_event` drops.
#[test]
fn filebeat_inputs_with_top_level_fields_and_processors_in_beats_order() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = r#"
name: edge-7
tags: [global]
fields: {env: prod, team: a}
processors:
  - add_tags: {tags: [err], when.equals.level: error}
  - copy_fields: {fields: [{from: agent.name, to: seen.top}]}
filebeat.inputs:
  - type: stdin
    json: true
    tags: [mine]
    fields: {team: b}
    processors:
      - rename: {fields: [{from: msg, to: message}]}
      - copy_fields: {fields: [{from: agent.name, to: seen.input}], fail_on_error: false}
      - drop_event.when.equals.level: debug
      - decode_json_fields: {fields: [payload], target: ""}
"#;
    let lines = concat!(
        "{\"seq\":1,\"msg\":\"a\",\"level\":\"info\",\"payload\":\"{\\\"user\\\":\\\"u1\\\"}\"}\n",
        "{\"seq\":2,\"msg\":\"b\",\"level\":\"debug\"}\n",
        "{\"seq\":3,\"msg\":\"c\",\"level\":\"error\"}\n",
    );
    let events = ship(dir.path(), inputs, lines.as_bytes(), 2);
    let (a, c) = (&events[0], &events[1]);
    assert_eq!((a["seq"].as_u64(), c["seq"].as_u64()), (Some(1), Some(3)));
    assert_eq!(a["message"], "a");
    assert!(a.get("msg").is_none());
    assert_eq!(a["user"], "u1");
    assert_eq!(a["fields"], serde_json::json!({"env": "prod", "team": "b"}));
    assert_eq!(a["tags"], serde_json::json!(["global", "mine"]));
    assert_eq!(c["tags"], serde_json::json!(["global", "mine", "err"]));
    assert_eq!(a["agent"]["name"], "edge-7");
    assert_eq!(a["host"]["name"], "edge-7");
    assert_eq!(a["input"]["type"], "stdin");
    assert!(a.get("seen").and_then(|s| s.get("input")).is_none(), "{a}");
    assert_eq!(a["seen"]["top"], "edge-7");
    assert_eq!(a["@metadata"]["version"], env!("CARGO_PKG_VERSION"));
}

/// A processor that fails on every event: counted, the first failure of the kind logged
/// at WARN with its reason, the total at the end; every event is still delivered. A
/// metadata processor skidder does not apply is named in a WARN at start.
#[test]
fn processor_failures_are_counted_logged_once_and_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = common::config(
        dir.path(),
        "skidder.inputs:\n  - type: stdin\n    processors:\n      - drop_fields: {fields: [nope]}\n      - drop_event.when.equals.message: skip\nprocessors:\n  - add_cloud_metadata: ~\noutput.file:\n  path: out\n",
    );
    let r = common::run(
        dir.path(),
        &["-c", cfg.to_str().unwrap(), "-e"],
        b"a\nskip\nb\nc\n",
    );
    assert_eq!(r.code(), Some(0), "{}", r.stderr);
    let t = r.totals();
    assert_eq!(t["acked"], "3", "{t:?}");
    let first = r
        .stderr
        .lines()
        .filter(|l| l.contains("a processor failed"))
        .collect::<Vec<_>>();
    assert_eq!(first.len(), 1, "{}", r.stderr);
    assert!(
        first[0].contains("drop_fields") && first[0].contains("nope"),
        "{}",
        first[0]
    );
    assert!(
        r.stderr.contains("processors failed 4 time(s)"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("processors dropped 1 event(s)"),
        "{}",
        r.stderr
    );
}

fn hostname() -> String {
    skidder::agent::hostname()
}

fn load(yaml: &str) -> Result<skidder::config::Config, String> {
    let dir = tempfile::tempdir().unwrap();
    let path = common::config(dir.path(), yaml);
    load_with(&LoadOptions {
        path,
        env: EnvSource::Disabled,
        ..LoadOptions::default()
    })
    .map_err(|e| e.to_string())
}

#[test]
fn filebeat_inputs_load_as_the_input_list() {
    let cfg = load(
        "filebeat.inputs:\n  - type: stdin\n    processors:\n      - add_locale: ~\noutput.discard: {}\n",
    )
    .unwrap();
    let (key, inputs) = cfg.inputs();
    assert_eq!((key, inputs.len()), ("filebeat.inputs", 1));
    let cfg = load("skidder.inputs:\n  - type: stdin\noutput.discard: {}\n").unwrap();
    assert_eq!(cfg.inputs().0, "skidder.inputs");
}

#[test]
fn both_input_lists_at_once_are_refused() {
    let err = load(
        "skidder.inputs:\n  - type: stdin\nfilebeat.inputs:\n  - type: stdin\noutput.discard: {}\n",
    )
    .unwrap_err();
    assert!(
        err.contains(":3:1: filebeat.inputs: skidder.inputs lists inputs too"),
        "{err}"
    );
}

#[test]
fn an_input_type_skidder_does_not_run_is_refused_with_the_supported_ones() {
    let err = load("filebeat.inputs:\n  - type: kafka\noutput.discard: {}\n").unwrap_err();
    assert!(err.contains("filebeat.inputs.0.type: unknown input type \"kafka\"; expected one of stdin, generator,"), "{err}");
}

#[test]
fn processor_mistakes_are_config_errors_naming_file_line_and_key() {
    let err = load(
        "skidder.inputs:\n  - type: stdin\n    processors:\n      - drop_fieldz: {fields: [a]}\n\
         processors:\n  - rename: {fields: [{from: a}]}\n  - add_tags: {tags: [x], when: {equals: {a: 1}, contains: {a: b}}}\n\
         output.discard: {}\n",
    )
    .unwrap_err();
    assert!(
        err.contains("skidder.inputs.0.processors.0.drop_fieldz: unknown processor \"drop_fieldz\"; did you mean drop_fields?"),
        "{err}"
    );
    assert!(
        err.contains("processors.0.rename.fields.0.to: required string"),
        "{err}"
    );
    assert!(
        err.contains(
            "processors.1.add_tags.when: one condition per mapping, found equals, contains"
        ),
        "{err}"
    );
    assert!(err.contains(":4:"), "line of the input's processor: {err}");
}

#[test]
fn cloud_docker_and_kubernetes_metadata_processors_load() {
    let cfg = load(
        "processors:\n  - add_host_metadata:\n      when.not.contains.tags: forwarded\n  - add_cloud_metadata: ~\n  - add_docker_metadata: ~\n  - add_kubernetes_metadata: ~\nskidder.inputs:\n  - type: stdin\noutput.discard: {}\n",
    )
    .unwrap();
    assert_eq!(cfg.processors.len(), 4);
}

#[test]
fn a_relay_input_refuses_processors() {
    let cfg = load(
        "skidder.inputs:\n  - type: lumberjack\n    host: \"127.0.0.1:0\"\n    processors:\n      - add_locale: ~\noutput.discard: {}\n",
    )
    .unwrap();
    let err = skidder::app::plan(&cfg, Default::default()).unwrap_err();
    assert!(
        err.to_string()
            .contains("processors: the lumberjack input passes events through unchanged"),
        "{err}"
    );
}
