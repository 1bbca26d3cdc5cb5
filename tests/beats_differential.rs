//! Differential test: Filebeat 7.17.29's own `test config` (the peer built by
//! `.ci/peers/filebeat.sh`) and `skidder test config` agree on accepting or refusing each
//! configuration of a table over keys skidder implements (the outputs, `ssl`, `logging`,
//! `cloud`, management sections, `max_procs`). Each side gets the row plus one stdin input
//! in its own section (`filebeat.inputs` / `skidder.inputs`); where skidder decides
//! otherwise on purpose, the row says so and why, and the test checks that it still does.
//!
//! Adding a row is one line in [`TABLE`].

mod common;
#[path = "common/filebeat.rs"]
mod filebeat;

use std::path::Path;

/// Whether the two are expected to agree.
enum Expect {
    /// Both accept, or both refuse.
    Same,
    /// skidder accepts (`true`) or refuses (`false`) while Filebeat does the opposite, for
    /// the reason given (README, "Decisions").
    Differs(bool, &'static str),
}
use Expect::{Differs, Same};

/// A valid Elastic Cloud id (libbeat's own test vector).
macro_rules! cloud_id {
    () => {
        "x:dXMtZWFzdC0xLmF3cy5mb3VuZC5pbyRjZWM2ZjI2MWE3NGJmMjRjZTMzYmI4ODExYjg0Mjk0ZiRjNmMyY2E2ZDA0MjI0OWFmMGNjN2Q3YTllOTYyNTc0Mw=="
    };
}

/// Rows: name, what skidder's refusal must name (a key; empty where skidder accepts), the
/// configuration, and the expectation.
#[rustfmt::skip]
const TABLE: &[(&str, &str, &str, Expect)] = &[
    ("logging.level warning", "", "output.console: {}\nlogging.level: warning\n", Same),
    ("logging.level critical", "", "output.console: {}\nlogging.level: critical\n", Same),
    ("logging.level unknown", "logging.level", "output.console: {}\nlogging.level: verbose\n", Same),
    ("logging.level warn", "", "output.console: {}\nlogging.level: warn\n",
     Differs(true, "skidder also takes tracing's own names, warn and trace")),
    ("logging files", "", "output.console: {}\nlogging.to_files: true\nlogging.files: {name: fb, rotateeverybytes: 1048576, keepfiles: 3, permissions: 0640, interval: 1h, rotateonstartup: false}\n", Same),
    ("keepfiles over 1024", "logging.files.keepfiles", "output.console: {}\nlogging.files.keepfiles: 2000\n", Same),
    ("rotateeverybytes 0", "logging.files.rotateeverybytes", "output.console: {}\nlogging.files.rotateeverybytes: 0\n", Same),
    ("rotation interval under 1s", "logging.files.interval", "output.console: {}\nlogging.files.interval: 500ms\n", Same),
    ("selectors, syslog, ecs, metrics", "", "output.console: {}\nlogging.level: debug\nlogging.selectors: [publisher, elasticsearch]\nlogging.to_syslog: false\nlogging.ecs: false\nlogging.metrics: {enabled: true, period: 10s, namespaces: [stats]}\n", Same),
    ("cloud.auth alone", "cloud.auth", "cloud.auth: \"elastic:pw\"\noutput.console: {}\n", Same),
    ("cloud.id not base64", "cloud.id", "cloud.id: \"garbage!!\"\noutput.console: {}\n", Same),
    ("cloud.id with logstash", "cloud.id", concat!("cloud.id: \"", cloud_id!(), "\"\noutput.logstash.hosts: [a]\n"), Same),
    ("cloud.id and cloud.auth", "", concat!("cloud.id: \"", cloud_id!(), "\"\ncloud.auth: \"elastic:pw\"\n"), Same),
    ("es proxy", "", "output.elasticsearch: {hosts: [a], proxy_url: \"http://proxy:3128\", proxy_headers: {X-Trace: \"1\"}}\n", Same),
    ("es proxy_disable", "", "output.elasticsearch: {hosts: [a], proxy_url: \"http://proxy:3128\", proxy_disable: true}\n", Same),
    ("es proxy not a URL", "output.elasticsearch.proxy_url", "output.elasticsearch: {hosts: [a], proxy_url: \"::bad\"}\n", Same),
    ("es compression 10", "output.elasticsearch.compression_level", "output.elasticsearch: {hosts: [a], compression_level: 10}\n", Same),
    ("es no hosts", "output.elasticsearch.hosts", "output.elasticsearch: {hosts: []}\n", Same),
    ("es api_key and password", "api_key", "output.elasticsearch: {hosts: [a], api_key: \"x:y\", username: u, password: p}\n", Same),
    ("two outputs", "only one output", "output.elasticsearch.hosts: [a]\noutput.logstash.hosts: [b]\n", Same),
    ("scalar hosts", "", "output.logstash.hosts: \"ls:5044\"\n", Same),
    ("ssl renegotiation freely", "", "output.logstash: {hosts: [a], ssl.renegotiation: freely}\n", Same),
    ("ssl renegotiation unknown", "output.logstash.ssl.renegotiation", "output.logstash: {hosts: [a], ssl.renegotiation: sometimes}\n", Same),
    ("ssl verification unknown", "output.logstash.ssl.verification_mode", "output.logstash: {hosts: [a], ssl.verification_mode: sloppy}\n", Same),
    ("restart_on_cert_change", "", "output.logstash: {hosts: [a], ssl.restart_on_cert_change: {enabled: true, period: 1m}}\n", Same),
    ("restart_on_cert_change period 500ms", "output.logstash.ssl.restart_on_cert_change.period", "output.logstash: {hosts: [a], ssl.restart_on_cert_change: {enabled: true, period: 500ms}}\n",
     Differs(false, "Beats 8.x refuses a period under 1s; 7.17 does not know the key and ignores it")),
    ("ssl TLSv1.1 among others", "", "output.logstash: {hosts: [a], ssl.supported_protocols: [TLSv1.1, TLSv1.2]}\n", Same),
    ("ssl TLSv1.1 only", "output.logstash.ssl.supported_protocols", "output.logstash: {hosts: [a], ssl.supported_protocols: [TLSv1.1]}\n",
     Differs(false, "skidder refuses TLS 1.0/1.1 by design; a list of only those would leave nothing")),
    ("management sections", "", "output.console: {}\nsetup.kibana.host: k\nsetup.template.enabled: false\nsetup.ilm.enabled: false\nmonitoring.enabled: false\nmigration.6_to_7.enabled: false\n", Same),
    ("max_procs", "", "output.console: {}\nmax_procs: 2\n", Same),
];

/// Filebeat's verdict: `Ok` for "Config OK", else its message.
fn filebeat_verdict(dir: &Path, yaml: &str) -> Result<(), String> {
    let config = dir.join("filebeat.yml");
    std::fs::write(
        &config,
        format!("{yaml}filebeat.inputs: [{{type: stdin}}]\n"),
    )
    .unwrap();
    let out = std::process::Command::new(filebeat::binary())
        .arg("test")
        .arg("config")
        .arg("-c")
        .arg(&config)
        .arg("--path.home")
        .arg(dir)
        .arg("--strict.perms=false")
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    if out.status.success() && text.contains("Config OK") {
        Ok(())
    } else {
        Err(text)
    }
}

fn skidder_verdict(dir: &Path, yaml: &str) -> Result<(), String> {
    let config = common::config(dir, &format!("{yaml}skidder.inputs: [{{type: stdin}}]\n"));
    let out = common::bin()
        .args(["-c", config.to_str().unwrap(), "test", "config"])
        .current_dir(dir)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    if out.status.success() && text.contains("Config OK") {
        Ok(())
    } else {
        Err(text)
    }
}

#[test]
fn filebeat_and_skidder_agree_on_accept_or_refuse() {
    let dir = tempfile::tempdir().unwrap();
    let mut disagreements = Vec::new();
    for (name, key, yaml, expect) in TABLE {
        let fb = filebeat_verdict(dir.path(), yaml);
        let sk = skidder_verdict(dir.path(), yaml);
        // A refusal must be for the row's reason, not another problem of the same file.
        let named = sk
            .as_ref()
            .err()
            .is_none_or(|e| !key.is_empty() && e.contains(key));
        let ok = named
            && match expect {
                Same => fb.is_ok() == sk.is_ok(),
                Differs(skidder_accepts, _) => {
                    sk.is_ok() == *skidder_accepts && fb.is_ok() != *skidder_accepts
                }
            };
        if !ok {
            let why = match expect {
                Same => "expected the same verdict".to_string(),
                Differs(a, why) => format!(
                    "expected skidder {} and Filebeat not ({why})",
                    if *a { "to accept" } else { "to refuse" }
                ),
            };
            disagreements.push(format!(
                "{name}: {why}\n  config:\n{yaml}  filebeat: {:?}\n  skidder: {:?}",
                fb.map_err(|e| e.lines().last().unwrap_or_default().to_string()),
                sk.map_err(|e| e.trim().to_string()),
            ));
        }
    }
    assert!(disagreements.is_empty(), "{}", disagreements.join("\n\n"));
}
