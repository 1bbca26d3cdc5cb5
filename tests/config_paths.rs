//! Configuration paths and the keystore (issue 13), through the real binary:
//! * `path.data` from the file, `-E path.data=` or `--path.data` is where the keystore is
//!   created and found;
//! * a variable missing from the keystore names the keystore file searched;
//! * relative TLS files and `generator.replay` resolve against the configuration file's
//!   directory, not the working directory; `${path.config}`, `${path.data}`, ... resolve;
//! * `keystore add NAME` without a terminal and without `--stdin` stores nothing and says
//!   to use `--stdin`.

mod common;
#[path = "credentials_pki/mod.rs"]
mod pki;

use std::path::Path;

use common::run;

/// A `stdin` input whose `fields` show what `${...}` resolved to, into the console.
fn fields_config(extra: &str, fields: &str) -> String {
    format!(
        "{extra}skidder.inputs:\n  - type: stdin\n    fields:\n{fields}output.console.enabled: true\n"
    )
}

/// Writes `yaml` as `conf/skidder.yml` under `root` and returns its absolute path.
fn conf_file(root: &Path, yaml: &str) -> String {
    let conf = root.join("conf");
    std::fs::create_dir_all(&conf).unwrap();
    let path = conf.join("skidder.yml");
    std::fs::write(&path, yaml).unwrap();
    path.display().to_string()
}

#[test]
fn path_data_from_the_file_or_a_flag_holds_the_keystore() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("state");
    let data_s = data.display().to_string();
    let cfg = conf_file(
        root.path(),
        &fields_config(
            &format!("path.data: \"{data_s}\"\n"),
            "      token: ${TOKEN}\n",
        ),
    );
    let r = run(root.path(), &["-c", &cfg, "keystore", "create"], b"");
    assert_eq!(r.code(), Some(0), "{}", r.stderr);
    assert!(
        data.join("skidder.keystore").is_file(),
        "created under path.data of the file: {}",
        r.stdout
    );
    let r = run(
        root.path(),
        &["-c", &cfg, "keystore", "add", "TOKEN", "--stdin"],
        b"from-the-keystore",
    );
    assert_eq!(r.code(), Some(0), "{}", r.stderr);
    let r = run(root.path(), &["-c", &cfg, "test", "config"], b"");
    assert_eq!(
        (r.code(), r.stdout.trim()),
        (Some(0), "Config OK"),
        "{}",
        r.stderr
    );
    let r = run(root.path(), &["-c", &cfg, "-e", "run"], b"one line\n");
    assert_eq!(r.code(), Some(0), "{}", r.stderr);
    assert!(r.stdout.contains("from-the-keystore"), "{}", r.stdout);

    // `-E path.data=` and `--path.data` move it too (here: to where nothing is stored).
    let elsewhere = root.path().join("elsewhere").display().to_string();
    for flags in [
        vec!["-E".to_string(), format!("path.data={elsewhere}")],
        vec!["--path.data".to_string(), elsewhere.clone()],
    ] {
        let mut args: Vec<&str> = flags.iter().map(String::as_str).collect();
        args.extend(["-c", &cfg, "test", "config"]);
        let r = run(root.path(), &args, b"");
        assert_eq!(r.code(), Some(1), "{flags:?}: {}", r.stdout);
        let expected = format!("none exists at {elsewhere}/skidder.keystore");
        assert!(
            r.stderr.contains("${TOKEN}") && r.stderr.contains(&expected),
            "{flags:?}: expected {expected:?} in:\n{}",
            r.stderr
        );
    }
}

#[test]
fn a_missing_variable_names_the_keystore_searched() {
    let root = tempfile::tempdir().unwrap();
    let cfg = conf_file(
        root.path(),
        &fields_config("", "      token: ${NOT_THERE}\n"),
    );
    let r = run(root.path(), &["-c", &cfg, "keystore", "create"], b"");
    assert_eq!(r.code(), Some(0), "{}", r.stderr);
    let r = run(root.path(), &["-c", &cfg, "test", "config"], b"");
    assert_eq!(r.code(), Some(1));
    let store = Path::new(".").join("data").join("skidder.keystore");
    let expected = format!("not set in the keystore {}", store.display());
    assert!(
        r.stderr.contains("${NOT_THERE}") && r.stderr.contains(&expected),
        "expected {expected:?} in:\n{}",
        r.stderr
    );
}

#[test]
fn relative_files_resolve_against_the_config_directory() {
    let root = tempfile::tempdir().unwrap();
    let conf = root.path().join("conf");
    std::fs::create_dir_all(conf.join("tls")).unwrap();
    let ca = pki::Ca::new("paths-test-ca");
    let leaf = ca.leaf("shipper", &["shipper"]);
    std::fs::write(conf.join("tls/ca.crt"), &ca.cert_pem).unwrap();
    std::fs::write(conf.join("tls/client.crt"), &leaf.cert_pem).unwrap();
    std::fs::write(conf.join("tls/client.key"), &leaf.key_pem).unwrap();
    std::fs::write(
        conf.join("events.ndjson"),
        "{\"message\":\"replayed from the config dir\"}\n",
    )
    .unwrap();
    let cfg = conf_file(
        root.path(),
        "skidder.inputs:\n  - type: generator\n    count: 1\n    replay: events.ndjson\n\
         \x20   fields:\n      data: ${path.data}\n      config: ${path.config}\n\
         output.logstash:\n  enabled: false\n  hosts: [\"127.0.0.1:5044\"]\n  ssl:\n\
         \x20   certificate_authorities: [tls/ca.crt]\n    certificate: tls/client.crt\n\
         \x20   key: ${path.config}/tls/client.key\n\
         output.console.enabled: true\n",
    );
    // Started from another directory: nothing there is called tls/ or events.ndjson.
    let elsewhere = root.path().join("cwd");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let r = run(&elsewhere, &["-c", &cfg, "test", "config"], b"");
    assert_eq!(r.code(), Some(0), "{}", r.stderr);
    let r = run(&elsewhere, &["-c", &cfg, "export", "config"], b"");
    let conf_s = conf.display().to_string();
    for expected in [
        format!("- {conf_s}/tls/ca.crt"),
        format!("certificate: {conf_s}/tls/client.crt"),
        format!("replay: {conf_s}/events.ndjson"),
        format!("config: {conf_s}"),
        "data: ./data".to_string(),
    ] {
        assert!(
            r.stdout.contains(&expected),
            "expected {expected:?} in:\n{}",
            r.stdout
        );
    }
    // The TLS files are really read from there: with the logstash output enabled instead
    // of the console, settings load them (a missing file would be an error here).
    let r = run(
        &elsewhere,
        &[
            "-c",
            &cfg,
            "-E",
            "output.console.enabled=false",
            "-E",
            "output.logstash.enabled=true",
            "test",
            "config",
        ],
        b"",
    );
    assert_eq!(r.code(), Some(0), "{}", r.stderr);
    let r = run(&elsewhere, &["-c", &cfg, "-e", "run"], b"");
    assert_eq!(r.code(), Some(0), "{}", r.stderr);
    assert!(
        r.stdout.contains("replayed from the config dir"),
        "{}",
        r.stdout
    );
}

#[test]
fn keystore_add_without_a_terminal_asks_for_stdin_and_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let r = run(dir.path(), &["keystore", "create"], b"");
    assert_eq!(r.code(), Some(0), "{}", r.stderr);
    // `run` pipes stdin: not a terminal.
    let r = run(
        dir.path(),
        &["keystore", "add", "PIPED"],
        b"piped-secret-xyz\n",
    );
    assert_eq!(r.code(), Some(1), "{}", r.stderr);
    assert!(
        r.stderr.contains("skidder keystore add PIPED --stdin"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("piped-secret-xyz"), "{}", r.stderr);
    let r = run(dir.path(), &["keystore", "list"], b"");
    assert_eq!(r.code(), Some(0), "{}", r.stderr);
    assert!(!r.stdout.contains("PIPED"), "{}", r.stdout);
}
