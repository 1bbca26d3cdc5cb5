//! TLS material problems read like configuration problems: every one at once, each as
//! `file:line:col: key.path: message`, with a key that is not its certificate's named as
//! such; and `ssl.verification_mode: none` is warned about at start, naming the key.

mod common;
mod credentials_pki;

use std::time::Duration;

use common::{config, run, spawn_run};
use credentials_pki::{Ca, Files};

/// `file:line:col` of `item` on the first line containing `line`: where the key (or list
/// item) a problem is about was written.
fn at(file: &str, yaml: &str, line: &str, item: &str) -> String {
    let (i, text) = yaml
        .lines()
        .enumerate()
        .find(|(_, l)| l.contains(line))
        .unwrap_or_else(|| panic!("{line:?} not in the test YAML"));
    let col = text
        .find(item)
        .unwrap_or_else(|| panic!("{item:?} not in {text:?}"));
    format!("{file}:{}:{}", i + 1, col + 1)
}

#[test]
fn every_tls_problem_of_outputs_and_inputs_is_reported_at_once_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("Test CA");
    let client = ca.leaf("client", &["client"]);
    let other = ca.leaf("other", &["other"]);
    let server = ca.leaf("localhost", &["localhost"]);
    let files = Files::new();
    let ca_file = files.write("ca.crt", &ca.cert_pem);
    let missing_ca = files.path("missing-ca.crt").display().to_string();
    let client_crt = files.write("client.crt", &client.cert_pem);
    let other_key = files.write("other.key", &other.key_pem);
    let garbage_crt = files.write("garbage.crt", "this is not PEM\n");
    let server_key = files.write("server.key", &server.encrypted_key_pem("right-pass-QRS"));
    let wrong = "wrong-pass-XYZ";
    let yaml = format!(
        "\
skidder.inputs:
  - type: lumberjack
    host: \"127.0.0.1:0\"
    ssl:
      certificate_authorities: [\"{missing_ca}\"]
      certificate: {garbage_crt}
      key: {server_key}
      key_passphrase: {wrong}
output.logstash:
  hosts: [\"127.0.0.1:5044\"]
  ssl:
    certificate_authorities:
      - {ca_file}
      - {missing_ca}
    certificate: {client_crt}
    key: {other_key}
"
    );
    let cfg = config(dir.path(), &yaml);
    let file = cfg.display().to_string();
    let cfg = cfg.to_str().unwrap();
    for args in [
        &["-c", cfg, "test", "config"][..],
        &["-c", cfg, "run", "-e"][..],
    ] {
        let r = run(dir.path(), args, b"");
        assert_eq!(r.code(), Some(1), "{args:?}: {}", r.stderr);
        let expected = [
            format!(
                "{}: skidder.inputs.0.ssl.certificate_authorities.0: cannot read {missing_ca}",
                at(&file, &yaml, "certificate_authorities: [", "\"")
            ),
            format!(
                "{}: skidder.inputs.0.ssl.certificate: file {garbage_crt}:",
                at(&file, &yaml, &garbage_crt, "certificate")
            ),
            format!(
                "{}: skidder.inputs.0.ssl.key: file {server_key}: cannot decrypt the key",
                at(&file, &yaml, &server_key, "key")
            ),
            format!(
                "{}: output.logstash.ssl.certificate_authorities.1: cannot read {missing_ca}",
                at(&file, &yaml, &format!("- {missing_ca}"), "/")
            ),
            format!(
                "{}: output.logstash.ssl.key: the key in file {other_key} does not match \
                 the certificate in file {client_crt}",
                at(&file, &yaml, &other_key, "key")
            ),
        ];
        for line in &expected {
            assert!(
                r.stderr.lines().any(|l| l.contains(line.as_str())),
                "{args:?}: no line containing\n  {line}\nin:\n{}",
                r.stderr
            );
        }
        assert!(
            r.stderr.contains("5 problem(s)"),
            "{args:?}: every problem in one run:\n{}",
            r.stderr
        );
        assert!(!r.stderr.contains("KeyMismatch"), "{}", r.stderr);
        assert!(
            !r.stderr.contains(wrong),
            "the passphrase leaked:\n{}",
            r.stderr
        );
    }
}

#[test]
fn verification_mode_none_is_warned_about_at_start_naming_each_key() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("Test CA");
    let server = ca.leaf("localhost", &["localhost"]);
    let files = Files::new();
    let crt = files.write("server.crt", &server.cert_pem);
    let key = files.write("server.key", &server.key_pem);
    // Nothing listens on the output's port: the run keeps retrying until it is killed.
    let yaml = format!(
        "\
skidder.inputs:
  - type: lumberjack
    host: \"127.0.0.1:0\"
    ssl:
      certificate: {crt}
      key: {key}
      verification_mode: none
output.logstash:
  hosts: [\"127.0.0.1:1\"]
  ssl.verification_mode: none
"
    );
    let cfg = config(dir.path(), &yaml);
    let (_child, mut lines) = spawn_run(dir.path(), &cfg);
    for key in [
        "output.logstash.ssl.verification_mode is none",
        "skidder.inputs.0.ssl.verification_mode is none",
    ] {
        lines.wait_for_line(
            &format!("a WARN containing {key:?}"),
            Duration::from_secs(30),
            |l| l.contains("WARN") && l.contains(key),
        );
    }
}

#[test]
fn a_key_that_is_not_the_certificates_names_both_files() {
    use skidder::credentials::{Alpn, Secret, TlsSettings};
    let ca = Ca::new("Test CA");
    let client = ca.leaf("client", &["client"]);
    let other = ca.leaf("other", &["other"]);
    let files = Files::new();
    let crt = files.write("client.crt", &client.cert_pem);
    let key = files.write("other.key", &other.key_pem);
    let mut ssl = credentials_pki::client_ssl(&ca, None);
    ssl.certificate = Some(crt.clone());
    ssl.key = Some(Secret::new(key.clone()));
    let settings = TlsSettings::from_config(&ssl).unwrap();
    for err in [
        settings.client_config(Alpn::None).unwrap_err(),
        settings.server_config().unwrap_err(),
    ] {
        let text = err.to_string();
        assert!(
            text.starts_with(&format!(
                "ssl.key: the key in file {key} does not match the certificate in file {crt}"
            )),
            "{text}"
        );
        assert!(!text.contains("KeyMismatch"), "{text}");
    }
}

/// The `ssl` block as Elastic's reference file writes it loads: `supported_protocols:
/// [TLSv1.1, TLSv1.2, TLSv1.3]`, `renegotiation`, an empty `ca_trusted_fingerprint`. What
/// skidder does not apply is WARNed at start, naming the key.
#[test]
fn elastics_reference_ssl_block_loads_and_what_is_not_applied_is_warned() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("Test CA");
    let files = Files::new();
    let ca_file = files.write("ca.crt", &ca.cert_pem);
    let yaml = format!(
        "\
skidder.inputs:
  - type: generator
    count: 10
output.logstash:
  hosts: [\"127.0.0.1:1\"]
  ssl:
    certificate_authorities: [\"{ca_file}\"]
    supported_protocols: [TLSv1.1, TLSv1.2, TLSv1.3]
    renegotiation: freely
    ca_trusted_fingerprint: \"\"
"
    );
    let cfg = config(dir.path(), &yaml);
    let r = common::run(
        dir.path(),
        &["test", "config", "-c", cfg.to_str().unwrap()],
        b"",
    );
    assert_eq!(r.code(), Some(0), "{}\n{}", r.stdout, r.stderr);
    // Nothing listens on the output's port: the run keeps retrying until it is killed.
    let (_child, mut lines) = spawn_run(dir.path(), &cfg);
    for needle in [
        "output.logstash.ssl.supported_protocols: TLSv1.1 dropped",
        "output.logstash.ssl.renegotiation: freely is not applied",
    ] {
        lines.wait_for_line(
            &format!("a WARN containing {needle:?}"),
            Duration::from_secs(30),
            |l| l.contains("WARN") && l.contains(needle),
        );
    }
}
