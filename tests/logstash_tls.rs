//! output.logstash over TLS against go-lumber's Go crypto/tls server requiring our client
//! certificate; refused handshakes give errors naming host and reason, and nothing reaches
//! the server.

mod common;
mod credentials_pki;
#[path = "common/golumber.rs"]
mod golumber;

use std::time::Duration;

use credentials_pki::{Ca, Files, Leaf};
use golumber::{assert_all_delivered, Server};

/// A TLS golumber server with `leaf`, requiring client certificates from `client_ca`.
fn tls_server(files: &Files, leaf: &Leaf, client_ca: &Ca) -> Server {
    let cert = files.write("server.crt", &leaf.cert_pem);
    let key = files.write("server.key", &leaf.key_pem);
    let ca = files.write("client-ca.crt", &client_ca.cert_pem);
    Server::start_mutual_tls(&cert, &key, &ca)
}

/// Config for `count` events to `host` trusting `trust`, with an optional client leaf.
fn config(files: &Files, host: &str, count: u64, trust: &Ca, client: Option<&Leaf>) -> String {
    let ca = files.write("trust.crt", &trust.cert_pem);
    let mut ssl = format!("  ssl:\n    certificate_authorities: [\"{ca}\"]\n");
    if let Some(leaf) = client {
        let cert = files.write("client.crt", &leaf.cert_pem);
        let key = files.write("client.key", &leaf.key_pem);
        ssl.push_str(&format!(
            "    certificate: \"{cert}\"\n    key: \"{key}\"\n"
        ));
    }
    format!(
        "skidder.inputs:\n  - type: generator\n    count: {count}\n\
         logging.level: debug\n\
         output.logstash:\n  hosts: [\"{host}\"]\n  timeout: 2s\n  max_retries: -1\n\
         \x20 backoff:\n    init: 100ms\n    max: 500ms\n{ssl}"
    )
}

#[test]
fn mutual_tls_delivers_everything() {
    let ca = Ca::new("test CA");
    let files = Files::new();
    let server = tls_server(
        &files,
        &ca.leaf("logstash", &["127.0.0.1", "localhost"]),
        &ca,
    );
    let client = ca.leaf("shipper", &["shipper.example"]);
    let yaml = config(&files, &server.addr, 3000, &ca, Some(&client));
    let dir = tempfile::tempdir().unwrap();
    let path = common::config(dir.path(), &yaml);
    let r = common::run_config(dir.path(), &path);
    assert_eq!(r.code(), Some(0), "{}", r.stderr);
    assert_eq!(assert_all_delivered(&server.seqs(), 3000), 0);
    // The connection span names the negotiated TLS version.
    assert!(
        r.stderr.lines().any(|l| l.contains("lumberjack{")
            && l.contains(&format!("host={}", server.addr))
            && l.contains("tls=TLSv1.3")),
        "{}",
        r.stderr
    );
}

/// Runs skidder against `server` until a stderr line contains every one of `needles`,
/// then stops it and checks that the server accepted nothing.
fn refused(yaml: &str, server: Server, needles: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let path = common::config(dir.path(), yaml);
    let (child, mut lines) = common::spawn_run(dir.path(), &path);
    lines.wait_for_line(
        &format!("with WARN and all of {needles:?}"),
        Duration::from_secs(20),
        |line| line.contains("WARN") && needles.iter().all(|n| line.contains(n)),
    );
    drop(child);
    assert_eq!(server.accepted(), 0, "no event may reach the server");
    let stats = server.stop();
    assert_eq!(stats["events"], 0, "{stats}");
    assert_eq!(stats["bytes"], 0, "no Lumberjack byte was read: {stats}");
}

#[test]
fn unknown_ca_is_refused_naming_host_and_reason() {
    let ca = Ca::new("server CA");
    let other = Ca::new("some other CA");
    let files = Files::new();
    let server = tls_server(&files, &ca.leaf("logstash", &["127.0.0.1"]), &ca);
    let client = ca.leaf("shipper", &[]);
    let yaml = config(&files, &server.addr, 10, &other, Some(&client));
    let host = server.addr.clone();
    refused(
        &yaml,
        server,
        &[
            &format!("TLS handshake with {host} failed"),
            "UnknownIssuer",
        ],
    );
}

#[test]
fn hostname_mismatch_is_refused_naming_host_and_reason() {
    let ca = Ca::new("server CA");
    let files = Files::new();
    let server = tls_server(&files, &ca.leaf("logstash", &["ls.example.org"]), &ca);
    let client = ca.leaf("shipper", &[]);
    let yaml = config(&files, &server.addr, 10, &ca, Some(&client));
    let host = server.addr.clone();
    refused(
        &yaml,
        server,
        &[
            &format!("TLS handshake with {host} failed"),
            "certificate not valid for name",
        ],
    );
}

#[test]
fn missing_client_certificate_is_refused_naming_host_and_reason() {
    let ca = Ca::new("server CA");
    let files = Files::new();
    let server = tls_server(&files, &ca.leaf("logstash", &["127.0.0.1"]), &ca);
    let yaml = config(&files, &server.addr, 10, &ca, None);
    let host = server.addr.clone();
    refused(&yaml, server, &[&host, "CertificateRequired"]);
}

#[test]
fn a_server_that_never_answers_the_handshake_times_out_naming_phase_host_and_limit() {
    // Accepts TCP connections and never says a word.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        let mut open = Vec::new();
        for conn in listener.incoming().map_while(Result::ok) {
            open.push(conn);
        }
    });
    let ca = Ca::new("server CA");
    let files = Files::new();
    let yaml = config(&files, &addr, 10, &ca, None).replace("timeout: 2s", "timeout: 300ms");
    let dir = tempfile::tempdir().unwrap();
    let path = common::config(dir.path(), &yaml);
    let (child, mut lines) = common::spawn_run(dir.path(), &path);
    lines.wait_for(
        &format!("TLS handshake with {addr} timed out after 300ms"),
        Duration::from_secs(20),
    );
    drop(child);
}

/// libbeat's default `max_retries: 3` drops every event of a destination that refuses us;
/// skidder's default retries until the events are published, so a refused client
/// certificate never turns into silent loss: after many more than three failed attempts a
/// stop leaves every event unacknowledged (exit 130), none dropped.
#[test]
fn by_default_a_refusing_server_costs_retries_never_events() {
    let ca = Ca::new("server CA");
    let files = Files::new();
    let server = tls_server(&files, &ca.leaf("logstash", &["127.0.0.1"]), &ca);
    // No client certificate, and no max_retries: the default applies.
    let yaml = config(&files, &server.addr, 10, &ca, None)
        .replace("  max_retries: -1\n", "")
        .replace("init: 100ms\n    max: 500ms", "init: 10ms\n    max: 20ms");
    assert!(!yaml.contains("max_retries"), "{yaml}");
    let dir = tempfile::tempdir().unwrap();
    let path = common::config(dir.path(), &yaml);
    let (mut child, mut lines) = common::spawn_run(dir.path(), &path);
    for attempt in 1..=6 {
        lines.wait_for_line(
            &format!("for failed attempt {attempt}: a WARN naming the refusal"),
            Duration::from_secs(20),
            |l| l.contains("WARN") && l.contains("CertificateRequired"),
        );
    }
    // SAFETY: plain kill(2) of our own child.
    assert_eq!(
        unsafe { libc::kill(child.0.id() as libc::pid_t, libc::SIGTERM) },
        0
    );
    let status = common::wait_exit(&mut child.0, Duration::from_secs(30));
    let stderr = lines.rest();
    assert_eq!(status.code(), Some(130), "{stderr}");
    let t = common::totals(&stderr);
    assert_eq!(
        (t["dropped"].as_str(), t["unacked"].as_str()),
        ("0", "10"),
        "{stderr}"
    );
    assert!(!stderr.contains("max_retries exhausted"), "{stderr}");
    assert_eq!(server.accepted(), 0);
}

/// A go-lumber server limited to TLS 1.2 and one suite (Go's crypto/tls, not rustls).
fn tls12_server(files: &Files, leaf: &Leaf, client_ca: &Ca, go_suite: &str) -> Server {
    let cert = files.write("server.crt", &leaf.cert_pem);
    let key = files.write("server.key", &leaf.key_pem);
    let ca = files.write("client-ca.crt", &client_ca.cert_pem);
    Server::start(&[
        "--tls-cert",
        &cert,
        "--tls-key",
        &key,
        "--tls-ca",
        &ca,
        "--require-client-cert",
        "--tls-max-version",
        "1.2",
        "--tls-ciphers",
        go_suite,
    ])
}

/// `supported_protocols` and `cipher_suites` (Beats' names) against a peer nobody here
/// wrote: the session is TLS 1.2 with the suite asked for, and every event arrives.
#[test]
fn tls12_and_a_beats_named_cipher_suite_against_go_crypto_tls() {
    let ca = Ca::new("server CA");
    let files = Files::new();
    let server = tls12_server(
        &files,
        &ca.leaf("logstash", &["127.0.0.1"]),
        &ca,
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    );
    let client = ca.leaf("shipper", &[]);
    let yaml = config(&files, &server.addr, 500, &ca, Some(&client))
        + "    supported_protocols: [TLSv1.2]\n    cipher_suites: [ECDHE-ECDSA-AES-256-GCM-SHA384]\n";
    let dir = tempfile::tempdir().unwrap();
    let path = common::config(dir.path(), &yaml);
    let r = common::run_config(dir.path(), &path);
    assert_eq!(r.code(), Some(0), "{}", r.stderr);
    assert_eq!(assert_all_delivered(&server.seqs(), 500), 0);
    assert!(
        r.stderr
            .lines()
            .any(|l| l.contains("connected to logstash") && l.contains("tls=TLSv1.2")),
        "{}",
        r.stderr
    );
    // `test output` names the negotiated suite.
    let t = common::run(
        dir.path(),
        &["test", "output", "-c", path.to_str().unwrap()],
        b"",
    );
    assert!(
        t.stdout.contains("TLSv1.2")
            && t.stdout.contains("TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"),
        "{}\n{}",
        t.stdout,
        t.stderr
    );
}

/// No suite in common with the server: the handshake is refused, naming host and reason,
/// and nothing reaches the server.
#[test]
fn no_cipher_suite_in_common_is_refused_naming_host_and_reason() {
    let ca = Ca::new("server CA");
    let files = Files::new();
    let server = tls12_server(
        &files,
        &ca.leaf("logstash", &["127.0.0.1"]),
        &ca,
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    );
    let client = ca.leaf("shipper", &[]);
    let yaml = config(&files, &server.addr, 10, &ca, Some(&client))
        + "    supported_protocols: [TLSv1.2]\n    cipher_suites: [ECDHE-ECDSA-CHACHA20-POLY1305]\n";
    let host = server.addr.clone();
    refused(
        &yaml,
        server,
        &[
            &format!("TLS handshake with {host} failed"),
            "HandshakeFailure",
        ],
    );
}
