//! The configuration commands of the real binary: `test config`, `export config`, and
//! `${NAME}` resolved from the keystore before the environment.

mod common;

use common::{config, run};

const CONSOLE_WITH_SECRETS: &str = "\
skidder.inputs:
  - type: stdin
    fields:
      token: ${APP_TOKEN}
output.console.enabled: true
output.elasticsearch:
  enabled: false
  hosts: [\"localhost:9200\"]
  username: elastic
  password: ${ES_PWD}
";

#[test]
fn keystore_values_resolve_variables_and_never_print() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), CONSOLE_WITH_SECRETS);
    let cfg = cfg.to_str().unwrap();

    let r = run(dir.path(), &["keystore", "create"], b"");
    assert_eq!(r.code(), Some(0), "{}", r.stderr);
    for (name, value) in [
        ("APP_TOKEN", "tok-from-keystore"),
        ("ES_PWD", "hunter2-pass"),
    ] {
        let r = run(
            dir.path(),
            &["keystore", "add", name, "--stdin"],
            value.as_bytes(),
        );
        assert_eq!(r.code(), Some(0), "{}", r.stderr);
        assert!(!r.stdout.contains(value) && !r.stderr.contains(value));
    }
    let r = run(dir.path(), &["keystore", "list"], b"");
    assert_eq!(
        r.stdout.lines().collect::<Vec<_>>(),
        ["APP_TOKEN", "ES_PWD"]
    );

    let r = run(dir.path(), &["-c", cfg, "test", "config"], b"");
    assert_eq!(r.code(), Some(0), "{}", r.stderr);
    assert_eq!(r.stdout.trim(), "Config OK");

    let r = run(dir.path(), &["-c", cfg, "export", "config"], b"");
    assert_eq!(r.code(), Some(0), "{}", r.stderr);
    assert!(
        !r.stdout.contains("tok-from-keystore") && r.stdout.contains("token: REDACTED"),
        "a keystore value is secret wherever it lands, a plain field too:\n{}",
        r.stdout
    );
    assert!(
        !r.stdout.contains("hunter2-pass") && r.stdout.contains("REDACTED"),
        "the password is a secret:\n{}",
        r.stdout
    );
}

#[test]
fn test_config_lists_every_problem_with_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        "output.logstash:\n  host: [\"a:5044\"]\n  compression_level: 12\n",
    );
    let r = run(
        dir.path(),
        &["-c", cfg.to_str().unwrap(), "test", "config"],
        b"",
    );
    assert_eq!(r.code(), Some(1));
    for fragment in [
        "skidder.yml:2:3: output.logstash.host",
        "did you mean output.logstash.hosts",
        "output.logstash.compression_level",
    ] {
        assert!(
            r.stderr.contains(fragment),
            "missing {fragment:?} in:\n{}",
            r.stderr
        );
    }
}
