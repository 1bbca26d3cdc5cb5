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

#[test]
fn receive_and_demo_refuse_configuration_flags_instead_of_ignoring_them() {
    let dir = tempfile::tempdir().unwrap();
    for command in ["receive", "demo"] {
        for flags in [
            &["-c", "skidder.yml"][..],
            &["-E", "queue.mem.events=10"],
            &["--path.data", "data"],
        ] {
            let mut args = vec![command];
            args.extend_from_slice(flags);
            let r = run(dir.path(), &args, b"");
            assert_eq!(r.code(), Some(2), "{args:?}: {}", r.stderr);
            assert!(
                r.stderr.contains(flags[0]) && r.stderr.contains("reads no configuration file"),
                "{args:?} names the flag it will not use: {}",
                r.stderr
            );
        }
        // Their own flags come first in their help, before the configuration options.
        let help = run(dir.path(), &[command, "--help"], b"").stdout;
        let own = help
            .find(if command == "receive" {
                "--listen"
            } else {
                "--count"
            })
            .unwrap_or_else(|| panic!("{command} --help:\n{help}"));
        let config = help
            .find("--config")
            .unwrap_or_else(|| panic!("{command} --help:\n{help}"));
        assert!(own < config, "{command} --help:\n{help}");
    }
}

#[test]
fn no_config_file_says_how_to_point_at_one_or_run_the_demo() {
    let dir = tempfile::tempdir().unwrap();
    for args in [&["test", "config"][..], &[][..], &["run"][..]] {
        let r = run(dir.path(), args, b"");
        assert_eq!(r.code(), Some(1), "{args:?}: {}", r.stderr);
        for fragment in ["skidder.yml", "-c FILE", "skidder demo"] {
            assert!(
                r.stderr.contains(fragment),
                "{args:?}: missing {fragment:?} in:\n{}",
                r.stderr
            );
        }
    }
}

#[test]
fn receive_names_its_flags_in_tls_problems() {
    let dir = tempfile::tempdir().unwrap();
    let r = run(
        dir.path(),
        &[
            "receive",
            "--listen",
            "127.0.0.1:0",
            "--tls-cert",
            "missing.crt",
            "--tls-key",
            "missing.key",
            "--tls-ca",
            "missing-ca.crt",
        ],
        b"",
    );
    assert_eq!(r.code(), Some(1), "{}", r.stderr);
    for flag in [
        "--tls-cert: cannot read",
        "--tls-key: cannot read",
        "--tls-ca: cannot read",
    ] {
        assert!(r.stderr.contains(flag), "{flag:?} in:\n{}", r.stderr);
    }
    assert!(!r.stderr.contains("skidder.inputs"), "{}", r.stderr);
}
