//! Environment and `-E` overrides, variables and precedence.

use std::collections::BTreeMap;

use skidder::config::{load_with, ConfigError, EnvSource, LoadOptions, SecretResolver};
use skidder::credentials::Secret;

fn write(text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("skidder.yml");
    std::fs::write(&path, text).expect("write");
    (dir, path)
}

fn env(pairs: &[(&str, &str)]) -> EnvSource {
    EnvSource::Fixed(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
    )
}

const BASE: &str = "output.logstash:\n  hosts: [\"file:5044\"]\n  timeout: 5s\n";

#[test]
fn flags_win_over_env_which_wins_over_the_file() {
    let (_d, path) = write(BASE);
    let cfg = load_with(&LoadOptions {
        path: path.clone(),
        overrides: vec![r#"output.logstash.hosts=["a:5044","b:5044"]"#.to_string()],
        env: env(&[
            ("SKIDDER_OUTPUT__LOGSTASH__TIMEOUT", "10s"),
            ("SKIDDER_OUTPUT__LOGSTASH__HOSTS", "[\"env:5044\"]"),
            (
                "SKIDDER_CONFIG_PATH_FOR_CLI",
                "ignored: not a config section",
            ),
        ]),
        resolver: None,
        ..LoadOptions::default()
    })
    .expect("loads");
    let ls = cfg.output.logstash.expect("logstash");
    assert_eq!(ls.hosts, ["a:5044", "b:5044"]);
    assert_eq!(ls.timeout.get(), std::time::Duration::from_secs(10));
}

#[test]
fn legacy_load_keeps_working_with_flags() {
    let (_d, path) = write(BASE);
    let cfg =
        skidder::config::load(&path, &["output.logstash.worker=4".to_string()]).expect("loads");
    assert_eq!(cfg.output.logstash.expect("logstash").worker, 4);
}

#[test]
fn problems_from_flags_and_env_name_their_source() {
    let (_d, path) = write(BASE);
    let err = load_with(&LoadOptions {
        path,
        overrides: vec![
            "output.logstash.compression_level=12".into(),
            "nonsense".into(),
        ],
        env: env(&[("SKIDDER_OUTPUT__LOGSTASH__TIMEOUT", "soon")]),
        resolver: None,
        ..LoadOptions::default()
    })
    .expect_err("invalid");
    let text = err.to_string();
    assert!(text.contains("-E nonsense"), "{text}");
    assert!(
        text.contains(
            "environment variable SKIDDER_OUTPUT__LOGSTASH__TIMEOUT: output.logstash.timeout"
        ),
        "{text}"
    );
    // The bad duration does not hide the range check: all three at once.
    let ConfigError::Invalid(lines) = err else {
        panic!("{err}")
    };
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(
        text.contains(
            "-E output.logstash.compression_level=12: output.logstash.compression_level: 12 is out of range"
        ),
        "{text}"
    );
}

struct Keystore;
impl SecretResolver for Keystore {
    fn resolve(&self, name: &str) -> Option<Secret> {
        (name == "ES_PASSWORD").then(|| Secret::new("from-keystore"))
    }
}

#[test]
fn variables_come_from_keystore_then_env_and_keep_types() {
    let (_d, path) = write(
        "output.elasticsearch:\n  hosts: [\"${ES_HOST:localhost}:${ES_PORT}\"]\n  username: elastic\n  password: ${ES_PASSWORD}\n  worker: ${WORKERS}\n",
    );
    let cfg = load_with(&LoadOptions {
        path,
        env: env(&[
            ("ES_PORT", "9201"),
            ("WORKERS", "3"),
            ("ES_PASSWORD", "from-env"),
        ]),
        resolver: Some(&Keystore),
        ..LoadOptions::default()
    })
    .expect("loads");
    let es = cfg.output.elasticsearch.expect("es");
    assert_eq!(es.hosts, ["localhost:9201"]);
    assert_eq!(es.worker, 3);
    assert_eq!(
        es.password.as_ref().map(Secret::expose),
        Some("from-keystore")
    );
}

#[test]
fn every_problem_is_reported_at_once_with_file_and_line() {
    let (_d, path) = write(
        "output.logstash:\n  host: [\"a\"]\n  timeout: 10x\n  worker: many\nqueue.mem.events: -5\n",
    );
    let err = load_with(&LoadOptions {
        path: path.clone(),
        env: EnvSource::Disabled,
        ..LoadOptions::default()
    })
    .expect_err("invalid");
    let ConfigError::Invalid(lines) = &err else {
        panic!("{err}")
    };
    // Five problems of three stages: an unknown key, two wrong types, a range, and the
    // cross-field rule the unknown key causes (no hosts) — a type error hides none of them.
    assert_eq!(lines.len(), 5, "{lines:?}");
    let file = path.display().to_string();
    let joined = lines.join("\n");
    assert!(
        joined.contains(&format!(
            "{file}:2:3: output.logstash.host: unknown key; did you mean output.logstash.hosts?"
        )),
        "{joined}"
    );
    assert!(
        joined.contains(&format!("{file}:3:3: output.logstash.timeout")),
        "{joined}"
    );
    assert!(
        joined.contains(&format!(
            "{file}:4:3: output.logstash.worker: expected a non-negative integer"
        )),
        "{joined}"
    );
    assert!(
        joined.contains(&format!("{file}:5:1: queue.mem.events")),
        "{joined}"
    );
}
