//! The Elasticsearch output over mutual TLS through a TLS front that is not rustls: Debian's
//! nginx (OpenSSL) with `ssl_verify_client on`, proxying to the OpenSearch peer. The output
//! uses the same `ssl.certificate_authorities` / `ssl.certificate` / `ssl.key` keys as the
//! Logstash output; the PKI is made with rcgen at test time.
//!
//! Needs nginx (`.ci/peers/nginx.sh` installs it): a missing nginx fails the test unless
//! `SKIDDER_SKIP_NGINX=1` asks for an explicit skip. Skipped (with a message) when `java` or
//! `mvn` is missing for the OpenSearch peer, as the other OpenSearch tests are.

mod common;
mod credentials_pki;
#[path = "common/nginx.rs"]
mod nginx;
#[path = "common/opensearch.rs"]
mod opensearch;

use credentials_pki::{Ca, Files, Leaf};
use nginx::{Front, FrontPki};

/// Events of the delivery run.
const N: u64 = 3_000;

/// A front for the OpenSearch peer trusting client certificates of `ca`, with its admin
/// client; `None` when the test is skipped.
fn front(ca: &Ca) -> Option<(Front, opensearch::Admin)> {
    let bin = nginx::require()?;
    let peer = opensearch::peer()?;
    let server = ca.leaf("localhost", &["localhost", "127.0.0.1", "::1"]);
    let front = Front::start(
        &bin,
        &peer.url,
        &FrontPki {
            cert_pem: &server.cert_pem,
            key_pem: &server.key_pem,
            client_ca_pem: &ca.cert_pem,
        },
    );
    Some((front, opensearch::Admin::new(peer)))
}

/// The `ssl` section: the CA, and the client certificate and key when given.
fn ssl_yaml(files: &Files, ca: &Ca, client: Option<&Leaf>) -> String {
    let ca_file = files.write("ca.crt", &ca.cert_pem);
    let mut s = format!("  ssl:\n    certificate_authorities: [\"{ca_file}\"]\n");
    if let Some(leaf) = client {
        let cert = files.write("client.crt", &leaf.cert_pem);
        let key = files.write("client.key", &leaf.key_pem);
        s.push_str(&format!(
            "    certificate: \"{cert}\"\n    key: \"{key}\"\n"
        ));
    }
    s
}

#[test]
fn generator_events_reach_opensearch_through_nginx_with_a_client_certificate() {
    let ca = Ca::new("front CA");
    let Some((front, admin)) = front(&ca) else {
        return;
    };
    let files = Files::new();
    let client = ca.leaf("shipper", &[]);
    let index = "skidder-tls-front";
    let yaml = format!(
        "skidder:\n  inputs:\n    - type: generator\n      count: {N}\n\
         output.elasticsearch:\n  hosts: [\"https://localhost:{port}\"]\n  index: {index}\n  \
         bulk_max_size: 500\n  timeout: 10s\n  backoff.init: 50ms\n  backoff.max: 500ms\n{ssl}",
        port = front.port,
        ssl = ssl_yaml(&files, &ca, Some(&client)),
    );
    let dir = tempfile::tempdir().unwrap();
    let cfg = common::config(dir.path(), &yaml).display().to_string();
    let r = common::run(dir.path(), &["run", "-e", "-c", &cfg], b"");
    assert_eq!(
        r.code(),
        Some(0),
        "{}\nnginx error.log:\n{}",
        r.stderr,
        front.error_log()
    );
    let t = r.totals();
    let n = N.to_string();
    assert_eq!(
        (
            t["published"].as_str(),
            t["acked"].as_str(),
            t["dropped"].as_str()
        ),
        (n.as_str(), n.as_str(), "0"),
        "{}",
        r.stderr
    );
    assert_eq!(admin.count(index), N, "documents in OpenSearch");
    // The bulk requests went through the front, each with our verified client certificate.
    let access = front.access_log();
    let bulks: Vec<&str> = access
        .lines()
        .filter(|l| l.contains("POST /_bulk"))
        .collect();
    assert!(
        !bulks.is_empty(),
        "no bulk request in nginx's access log:\n{access}"
    );
    assert!(
        bulks
            .iter()
            .all(|l| l.contains(" 200 ") && l.contains("verify=SUCCESS dn=CN=shipper")),
        "every bulk request succeeds with the verified client certificate:\n{access}"
    );
}

/// Runs `skidder test output` against the front, with or without `client`.
fn test_output(front: &Front, ca: &Ca, client: Option<&Leaf>) -> (String, common::Run) {
    let files = Files::new();
    let host = format!("https://localhost:{}", front.port);
    let yaml = format!(
        "skidder.inputs:\n  - type: generator\n    count: 1\n\
         output.elasticsearch:\n  hosts: [\"{host}\"]\n  timeout: 10s\n{}",
        ssl_yaml(&files, ca, client),
    );
    let dir = tempfile::tempdir().unwrap();
    let cfg = common::config(dir.path(), &yaml).display().to_string();
    (
        host,
        common::run(dir.path(), &["test", "output", "-c", &cfg], b""),
    )
}

#[test]
fn test_output_with_the_client_certificate_passes_the_front() {
    let ca = Ca::new("front CA");
    let Some((front, _admin)) = front(&ca) else {
        return;
    };
    let (host, r) = test_output(&front, &ca, Some(&ca.leaf("shipper", &[])));
    assert_eq!(r.code(), Some(0), "{}\n{}", r.stdout, r.stderr);
    let out = &r.stdout;
    for needle in [
        format!("output.elasticsearch {host}"),
        "TLS version: TLSv1.3".to_string(),
        "issuer CN=front CA".to_string(),
        "our certificate: subject CN=shipper".to_string(),
        "✓ GET /".to_string(),
        "OpenSearch".to_string(),
        "result: OK".to_string(),
    ] {
        assert!(out.contains(&needle), "no {needle:?} in:\n{out}");
    }
}

#[test]
fn without_a_client_certificate_the_front_refuses_and_test_output_names_it() {
    let ca = Ca::new("front CA");
    let Some((front, _admin)) = front(&ca) else {
        return;
    };
    let (host, r) = test_output(&front, &ca, None);
    assert_eq!(r.code(), Some(1), "{}\n{}", r.stdout, r.stderr);
    let out = &r.stdout;
    assert!(
        out.contains(&format!("output.elasticsearch {host}")),
        "{out}"
    );
    // nginx completes the handshake without a certificate and refuses at the request level
    // (400): the probe reports the session as refused, with the status and nginx's reason.
    assert!(out.contains("✓ TLS handshake"), "{out}");
    assert!(
        out.lines().any(|l| l.contains("✗ session")
            && l.contains("refused our client certificate")
            && l.contains("HTTP 400")),
        "the failing phase and status:\n{out}"
    );
    assert!(
        out.contains("No required SSL certificate was sent"),
        "nginx's reason:\n{out}"
    );
    assert!(out.contains("result: FAIL (session failed)"), "{out}");
    assert!(
        front
            .error_log()
            .contains("client sent no required SSL certificate"),
        "nginx logs the refusal:\n{}",
        front.error_log()
    );
}
