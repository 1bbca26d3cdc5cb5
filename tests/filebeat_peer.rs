//! Filebeat 7.17.29 itself (built from the Go module proxy) ships a file over mutual TLS to
//! `skidder receive`: the receiver takes the real Beats client, and the peer the parity
//! tests rely on builds and runs on a fresh machine.

mod common;
#[path = "common/filebeat.rs"]
mod filebeat;
#[path = "common/lumberjack_peers.rs"]
mod peers;
#[path = "credentials_pki/mod.rs"]
mod pki;

use std::time::Duration;

use peers::{receive_stats, Receiver};

#[test]
fn filebeat_ships_a_file_over_mutual_tls_to_skidder_receive() {
    let p = pki::MutualTlsFiles::new("filebeat-peer-ca", "filebeat");
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let lines: Vec<String> = (1..=500).map(|i| format!("line {i} é <&>")).collect();
    std::fs::write(&log, lines.join("\n") + "\n").unwrap();
    let out = dir.path().join("received.ndjson");
    let out_s = out.display().to_string();
    let mut args = vec!["--out", &out_s, "--expect", "500", "--deadline", "120s"];
    args.extend(p.receive_args());
    let rx = Receiver::receive(&args);
    let yaml = format!(
        "filebeat.inputs:\n\
         - type: filestream\n  id: app\n  paths: [{log}]\n\
         output.logstash:\n  hosts: [\"{addr}\"]\n  compression_level: 3\n  ssl:\n    \
         certificate_authorities: [{ca}]\n    certificate: {cert}\n    key: {key}\n",
        log = log.display(),
        addr = rx.addr,
        ca = p.ca,
        cert = p.client_cert,
        key = p.client_key,
    );
    let fb_log = dir.path().join("filebeat.stderr");
    let child = filebeat::command(dir.path(), &yaml)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&fb_log).unwrap())
        .spawn()
        .unwrap();
    let _fb = common::reap::Reap(child);
    let (code, stderr) = rx.finish(Duration::from_secs(150));
    assert_eq!(
        code,
        Some(0),
        "skidder receive must see all 500:\n{stderr}\nFilebeat's log:\n{}",
        std::fs::read_to_string(&fb_log).unwrap_or_default()
    );
    let stats = receive_stats(&stderr);
    assert_eq!(stats["duplicates"].as_u64(), Some(0), "{stats}");
    let events: Vec<serde_json::Value> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events.len(), 500);
    let mut messages: Vec<&str> = events
        .iter()
        .map(|e| e["message"].as_str().unwrap())
        .collect();
    messages.sort_unstable();
    let mut want: Vec<&str> = lines.iter().map(String::as_str).collect();
    want.sort_unstable();
    assert_eq!(messages, want);
    let first = &events[0];
    assert_eq!(first["agent"]["type"], "filebeat", "{first}");
    assert_eq!(first["agent"]["version"], "7.17.29", "{first}");
    assert_eq!(first["input"]["type"], "filestream", "{first}");
    assert_eq!(first["@metadata"]["beat"], "filebeat", "{first}");
    assert_eq!(
        first["log"]["file"]["path"].as_str(),
        Some(log.to_str().unwrap())
    );
}
