//! `skidder test output` against real peers: go-lumber over mutual TLS (version, cipher,
//! chain, pin), a wrong CA and a closed port (the failing phase is named), and a stand-in
//! Elasticsearch answering `/`, `_authenticate` and `_has_privileges` (user, write
//! permission, a refused credential named and not retried, a cluster without security).

mod common;
mod credentials_pki;
#[path = "common/es_server.rs"]
mod es_server;
#[path = "common/golumber.rs"]
mod golumber;
#[path = "common/socks5.rs"]
mod socks5;

use std::path::Path;

use credentials_pki::{Ca, Files, Leaf};
use es_server::{Seen, Server as EsServer};
use golumber::Server;
use skidder::credentials::pinning::Pin;
use skidder::credentials::{TlsSettings, TlsSource};

/// Runs `skidder test output` with `yaml` and returns the finished run.
fn test_output(yaml: &str) -> common::Run {
    let dir = tempfile::tempdir().unwrap();
    let path = common::config(dir.path(), yaml);
    run_in(dir.path(), &path)
}

fn run_in(dir: &Path, config: &Path) -> common::Run {
    let config = config.display().to_string();
    common::run(dir, &["test", "output", "-c", &config], b"")
}

/// The same, off the async runtime that serves the stand-in Elasticsearch.
async fn test_output_async(yaml: String) -> common::Run {
    tokio::task::spawn_blocking(move || test_output(&yaml))
        .await
        .unwrap()
}

const INPUT: &str = "skidder.inputs:\n  - type: generator\n    count: 1\n";

/// A golumber TLS server presenting `leaf` and its CA, requiring client certificates.
fn tls_server(files: &Files, leaf: &Leaf, ca: &Ca) -> Server {
    let chain = format!("{}{}", leaf.cert_pem, ca.cert_pem);
    let cert = files.write("server.crt", &chain);
    let key = files.write("server.key", &leaf.key_pem);
    let client_ca = files.write("client-ca.crt", &ca.cert_pem);
    Server::start_mutual_tls(&cert, &key, &client_ca)
}

fn logstash_tls_yaml(files: &Files, host: &str, trust: &Ca, client: &Leaf, pin: &str) -> String {
    let ca = files.write("trust.crt", &trust.cert_pem);
    let cert = files.write("client.crt", &client.cert_pem);
    let key = files.write("client.key", &client.key_pem);
    format!(
        "{INPUT}output.logstash:\n  hosts: [\"{host}\"]\n  timeout: 5s\n  ssl:\n    \
         certificate_authorities: [\"{ca}\"]\n    certificate: \"{cert}\"\n    \
         key: \"{key}\"\n    ca_sha256: [\"{pin}\"]\n"
    )
}

#[test]
fn logstash_over_mutual_tls_reports_version_cipher_chain_and_pin() {
    let ca = Ca::new("probe CA");
    let files = Files::new();
    let server = tls_server(&files, &ca.leaf("logstash", &["127.0.0.1"]), &ca);
    let pin = Pin::of(ca.cert_der.as_ref()).text;
    let client = ca.leaf("shipper", &[]);
    let r = test_output(&logstash_tls_yaml(&files, &server.addr, &ca, &client, &pin));
    assert_eq!(r.code(), Some(0), "{}\n{}", r.stdout, r.stderr);
    let out = &r.stdout;
    for needle in [
        format!("output.logstash {}", server.addr),
        "✓ resolve".to_string(),
        "✓ TCP connect".to_string(),
        "✓ TLS handshake".to_string(),
        "TLS version: TLSv1.3".to_string(),
        "cipher suite: TLS13_".to_string(),
        "subject CN=logstash".to_string(),
        "issuer CN=probe CA".to_string(),
        format!("pin matched: {pin}"),
        "our certificate: subject CN=shipper, valid until".to_string(),
        "result: OK".to_string(),
        "1 host(s) tested: 1 OK, 0 failed".to_string(),
    ] {
        assert!(out.contains(&needle), "no {needle:?} in:\n{out}");
    }
    // A probe delivers nothing.
    assert_eq!(server.accepted(), 0);
}

#[test]
fn logstash_with_a_wrong_ca_fails_at_the_handshake_with_the_reason() {
    let ca = Ca::new("server CA");
    let other = Ca::new("some other CA");
    let files = Files::new();
    let server = tls_server(&files, &ca.leaf("logstash", &["127.0.0.1"]), &ca);
    let pin = Pin::of(other.cert_der.as_ref()).text;
    let client = ca.leaf("shipper", &[]);
    let r = test_output(&logstash_tls_yaml(
        &files,
        &server.addr,
        &other,
        &client,
        &pin,
    ));
    assert_eq!(r.code(), Some(1), "{}\n{}", r.stdout, r.stderr);
    let out = &r.stdout;
    assert!(out.contains("✓ TCP connect"), "{out}");
    assert!(
        out.lines().any(|l| l.contains("✗ TLS handshake")
            && l.contains(&format!("TLS handshake with {} failed", server.addr))
            && l.contains("UnknownIssuer")),
        "{out}"
    );
    assert!(out.contains("result: FAIL (TLS handshake failed)"), "{out}");
}

/// A loopback port nobody listens on (bound, then released).
fn closed_port() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

/// A TCP listener that accepts and holds connections (a Logstash that never speaks).
fn silent_listener() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        let mut open = Vec::new();
        for conn in listener.incoming().map_while(Result::ok) {
            open.push(conn);
        }
    });
    addr
}

#[test]
fn nothing_listening_fails_the_connect_phase() {
    let up = silent_listener();
    let down = closed_port();
    let r = test_output(&format!(
        "{INPUT}output.logstash:\n  hosts: [\"{up}\", \"{down}\"]\n  timeout: 5s\n"
    ));
    assert_eq!(r.code(), Some(1), "{}\n{}", r.stdout, r.stderr);
    let out = &r.stdout;
    let block = |host: &str| -> String {
        out.split("\n\n")
            .find(|b| b.starts_with(&format!("output.logstash {host}")))
            .unwrap_or_else(|| panic!("no block for {host}:\n{out}"))
            .to_string()
    };
    let ok = block(&up);
    assert!(
        ok.contains("✓ TCP connect") && ok.contains("result: OK"),
        "{ok}"
    );
    assert!(ok.contains("TLS is off"), "{ok}");
    let bad = block(&down);
    assert!(
        bad.contains("✗ TCP connect") && bad.contains("Connection refused"),
        "{bad}"
    );
    assert!(bad.contains("result: FAIL (TCP connect failed)"), "{bad}");
    assert!(out.contains("2 host(s) tested: 1 OK, 1 failed"), "{out}");
}

const ROOT: &str = r#"{"cluster_name":"probe-cluster","version":{"number":"8.15.0"}}"#;

/// A cluster with security: `shipper` may write `skidder-*` when `may_index`.
fn secured(seen: &Seen, may_index: bool) -> (u16, String) {
    match seen.path_and_query.as_str() {
        "/" => (200, ROOT.to_string()),
        "/_security/_authenticate" => (
            200,
            r#"{"username":"shipper","roles":["writer"],"authentication_realm":{"name":"native1"},"authentication_type":"realm"}"#.to_string(),
        ),
        "/_security/user/_has_privileges" => {
            let body: serde_json::Value = serde_json::from_str(&seen.body).unwrap();
            let pattern = body["index"][0]["names"][0].as_str().unwrap().to_string();
            let reply = serde_json::json!({
                "username": "shipper",
                "has_all_requested": may_index,
                "index": { pattern: { "create_doc": true, "index": may_index } }
            });
            (200, reply.to_string())
        }
        other => (404, format!(r#"{{"error":"no handler for {other}"}}"#)),
    }
}

fn es_yaml(hosts: &[String]) -> String {
    let hosts = hosts
        .iter()
        .map(|h| format!("\"{h}\""))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "{INPUT}output.elasticsearch:\n  hosts: [{hosts}]\n  username: shipper\n  \
         password: s3cret-value\n  timeout: 5s\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn elasticsearch_reports_cluster_user_and_write_permission() {
    let server = EsServer::start(|_, s| secured(s, true)).await;
    let r = test_output_async(es_yaml(&[server.host()])).await;
    assert_eq!(r.code(), Some(0), "{}\n{}", r.stdout, r.stderr);
    let out = &r.stdout;
    for needle in [
        "✓ TCP connect",
        "✓ GET /",
        "cluster probe-cluster, Elasticsearch 8.15.0",
        "✓ authenticate",
        "user shipper (realm native1, roles writer)",
        "✓ write permission",
        "skidder-*: create_doc yes, index yes (op_type index needs index)",
        "result: OK",
    ] {
        assert!(out.contains(needle), "no {needle:?} in:\n{out}");
    }
    assert!(!out.contains("s3cret"), "{out}");
    let seen = server.seen();
    let paths: Vec<&str> = seen.iter().map(|s| s.path_and_query.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/",
            "/_security/_authenticate",
            "/_security/user/_has_privileges"
        ]
    );
    assert!(seen
        .iter()
        .all(|s| s.headers.get("authorization").map(String::as_str)
            == Some("Basic c2hpcHBlcjpzM2NyZXQtdmFsdWU=")));
    let body: serde_json::Value = serde_json::from_str(&seen[2].body).unwrap();
    assert_eq!(
        body["index"][0],
        serde_json::json!({"names": ["skidder-*"], "privileges": ["create_doc", "index"]})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_credential_is_named_and_not_retried() {
    let server = EsServer::start(|_, _| {
        (
            401,
            r#"{"error":{"type":"security_exception","reason":"unable to authenticate user [shipper]"}}"#
                .to_string(),
        )
    })
    .await;
    let r = test_output_async(es_yaml(&[server.host()])).await;
    assert_eq!(r.code(), Some(1), "{}\n{}", r.stdout, r.stderr);
    let out = &r.stdout;
    assert!(
        out.lines()
            .any(|l| l.contains("✗ GET /") && l.contains("refused username shipper with HTTP 401")),
        "{out}"
    );
    assert!(!out.contains("s3cret"), "{out}");
    assert_eq!(server.seen().len(), 1, "one request, no retry");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_security_plugin_passes_and_missing_write_permission_fails() {
    let open = EsServer::start(|_, s| match s.path_and_query.as_str() {
        "/" => (
            200,
            r#"{"cluster_name":"os","version":{"number":"2.11.0","distribution":"opensearch"}}"#
                .to_string(),
        ),
        _ => (404, r#"{"error":"no handler found for uri"}"#.to_string()),
    })
    .await;
    let read_only = EsServer::start(|_, s| secured(s, false)).await;
    let r = test_output_async(es_yaml(&[open.host(), read_only.host()])).await;
    assert_eq!(r.code(), Some(1), "{}\n{}", r.stdout, r.stderr);
    let out = &r.stdout;
    let blocks: Vec<&str> = out.split("\n\n").collect();
    let first = blocks[0];
    assert!(first.contains("OpenSearch 2.11.0"), "{first}");
    assert!(
        first.contains("no security plugin: requests are not authenticated"),
        "{first}"
    );
    assert!(
        first.contains("- write permission") && first.contains("not checked for skidder-*"),
        "{first}"
    );
    assert!(first.contains("result: OK"), "{first}");
    let second = blocks[1];
    assert!(
        second.contains("✗ write permission")
            && second.contains("create_doc yes, index no (op_type index needs index)"),
        "{second}"
    );
    assert!(
        second.contains("result: FAIL (write permission failed)"),
        "{second}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_tests_logstash_and_elasticsearch() {
    let es = EsServer::start(|_, s| secured(s, true)).await;
    let ls = silent_listener();
    let yaml = format!(
        "{}output.logstash:\n  hosts: [\"{ls}\"]\n  timeout: 5s\noutput.failover:\n  enabled: true\n",
        es_yaml(&[es.host()])
    );
    let r = test_output_async(yaml).await;
    assert_eq!(r.code(), Some(0), "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains(&format!("output.logstash {ls}")),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains(&format!("output.elasticsearch {}", es.host())),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("2 host(s) tested: 2 OK, 0 failed"),
        "{}",
        r.stdout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn elasticsearch_over_https_reports_the_handshake_under_the_server_name() {
    let ca = Ca::new("es CA");
    let leaf = ca.leaf("es.internal", &["es.internal"]);
    let files = Files::new();
    let server_tls = TlsSource::server(
        TlsSettings::from_config(&credentials_pki::server_ssl(&files, &leaf, None)).unwrap(),
    )
    .unwrap()
    .server_config()
    .unwrap();
    let es = EsServer::start_with(
        Some(tokio_rustls::TlsAcceptor::from(server_tls)),
        std::sync::Arc::new(|_, s: &Seen| secured(s, true)),
    )
    .await;
    let host = format!("https://127.0.0.1:{}", es.addr.port());
    let ca_file = files.write("es-ca.crt", &ca.cert_pem);
    let yaml = format!(
        "{}  ssl:\n    certificate_authorities: [\"{ca_file}\"]\n    server_name: es.internal\n",
        es_yaml(std::slice::from_ref(&host))
    );
    let r = test_output_async(yaml).await;
    assert_eq!(r.code(), Some(0), "{}\n{}", r.stdout, r.stderr);
    let out = &r.stdout;
    for needle in [
        format!("output.elasticsearch {host}"),
        "✓ TLS handshake".to_string(),
        "subject CN=es.internal".to_string(),
        "issuer CN=es CA".to_string(),
        "✓ write permission".to_string(),
        "result: OK".to_string(),
    ] {
        assert!(out.contains(&needle), "no {needle:?} in:\n{out}");
    }
}

#[test]
fn logstash_through_a_socks5_proxy_names_the_proxy_phase() {
    let proxy = socks5::Proxy::start(Some(("probe", "pw")));
    let up = silent_listener();
    let down = closed_port();
    let r = test_output(&format!(
        "{INPUT}output.logstash:\n  hosts: [\"{up}\", \"{down}\"]\n  timeout: 5s\n  \
         proxy_url: socks5://probe:pw@{}\n",
        proxy.addr
    ));
    assert_eq!(r.code(), Some(1), "{}\n{}", r.stdout, r.stderr);
    let out = &r.stdout;
    assert!(
        out.contains("✓ SOCKS5 handshake")
            && out.contains(&format!("{up} through the proxy at {}", proxy.addr)),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.contains("✗ SOCKS5 handshake") && l.contains(&down)),
        "{out}"
    );
    assert!(
        !out.contains("pw@"),
        "the proxy password is never shown: {out}"
    );
    assert!(out.contains("1 OK, 1 failed"), "{out}");
}
