//! `skidder test output` against real peers: go-lumber over mutual TLS (version, cipher,
//! chain, pin), a wrong CA and a closed port (the failing phase is named), and a stand-in
//! Elasticsearch answering `/`, `_authenticate` and `_has_privileges` (user, write
//! permission, a refused credential named and not retried, a cluster without security).
//! The session phase: go-lumber, `skidder receive` and nginx or a rustls HTTPS server in
//! front of Elasticsearch, all requiring client certificates, refuse a missing certificate,
//! one of another CA, and plaintext on their TLS port; each refusal is a ✗ line with the
//! reason and exit 1, and a probe never delivers an event.

mod common;
mod credentials_pki;
#[path = "common/es_server.rs"]
mod es_server;
#[path = "common/golumber.rs"]
mod golumber;
#[path = "common/nginx.rs"]
mod nginx;
#[path = "common/lumberjack_peers.rs"]
mod peers;
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

/// A cluster with security: `shipper` holds Elastic's recommended writer privileges on
/// `skidder-*`, `create_doc` and (when `auto_configure`) `auto_configure`, nothing else.
fn secured(seen: &Seen, auto_configure: bool) -> (u16, String) {
    match seen.path_and_query.as_str() {
        "/" => (200, ROOT.to_string()),
        "/_security/_authenticate" => (
            200,
            r#"{"username":"shipper","roles":["writer"],"authentication_realm":{"name":"native1"},"authentication_type":"realm"}"#.to_string(),
        ),
        "/_security/user/_has_privileges" => {
            let body: serde_json::Value = serde_json::from_str(&seen.body).unwrap();
            let pattern = body["index"][0]["names"][0].as_str().unwrap().to_string();
            let held = |p: &str| p == "create_doc" || (p == "auto_configure" && auto_configure);
            let answer = |list: &serde_json::Value| -> serde_json::Map<String, serde_json::Value> {
                list.as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|p| p.as_str())
                    .map(|p| (p.to_string(), serde_json::Value::Bool(held(p))))
                    .collect()
            };
            let index = answer(&body["index"][0]["privileges"]);
            let cluster = answer(&body["cluster"]);
            let all = index.values().chain(cluster.values()).all(|v| v == true);
            let reply = serde_json::json!({
                "username": "shipper",
                "has_all_requested": all,
                "cluster": cluster,
                "index": { pattern: index }
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
        // Elastic's recommended writer privileges are enough for the default op_type.
        "writer role on skidder-*: create_doc yes, auto_configure yes",
        "api_key_manager role (skidder apikey, not needed to ship): manage_own_api_key no (missing)",
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
        serde_json::json!({"names": ["skidder-*"], "privileges": ["create_doc", "auto_configure"]})
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
            && second.contains("create_doc yes, auto_configure no")
            && second.contains("missing auto_configure on skidder-*"),
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

// ---------------------------------------------------------------------------------------
// The session check: a server that completes the TLS handshake and then refuses us (TLS 1.3
// checks the client certificate after the client's side of the handshake is done), or a
// plaintext probe of a TLS port, must fail `test output` with the reason, and a probe must
// never deliver an event.

/// Who we are to a server requiring client certificates of the server's CA.
#[derive(Debug, Clone, Copy)]
enum Client {
    /// The right certificate.
    Good,
    /// No client certificate at all (only `certificate_authorities`).
    NoCertificate,
    /// A certificate issued by a CA the server does not trust.
    OtherCa,
    /// TLS off (no `ssl.*`) against the TLS port.
    Plaintext,
}

/// A CA, the server's certificate for 127.0.0.1 and a client certificate of each kind.
struct SessionPki {
    files: Files,
    ca: Ca,
    server: Leaf,
    client: Leaf,
    stranger: Leaf,
}

impl SessionPki {
    fn new() -> Self {
        let ca = Ca::new("session CA");
        let stranger = Ca::new("stranger CA").leaf("stranger", &[]);
        Self {
            files: Files::new(),
            server: ca.leaf("server", &["127.0.0.1", "localhost"]),
            client: ca.leaf("shipper", &[]),
            stranger,
            ca,
        }
    }

    /// The server's chain, key and client CA as file paths.
    fn server_files(&self) -> (String, String, String) {
        (
            self.files.write("server.crt", &self.server.cert_pem),
            self.files.write("server.key", &self.server.key_pem),
            self.files.write("client-ca.crt", &self.ca.cert_pem),
        )
    }

    /// The `ssl` section of `client` (empty for plaintext), indented under an output.
    fn ssl_yaml(&self, client: Client) -> String {
        let leaf = match client {
            Client::Plaintext => return String::new(),
            Client::NoCertificate => None,
            Client::Good => Some(&self.client),
            Client::OtherCa => Some(&self.stranger),
        };
        let ca = self.files.write("trust.crt", &self.ca.cert_pem);
        let mut s = format!("  ssl:\n    certificate_authorities: [\"{ca}\"]\n");
        if let Some(leaf) = leaf {
            let name = format!("{client:?}").to_lowercase();
            let cert = self.files.write(&format!("{name}.crt"), &leaf.cert_pem);
            let key = self.files.write(&format!("{name}.key"), &leaf.key_pem);
            s.push_str(&format!(
                "    certificate: \"{cert}\"\n    key: \"{key}\"\n"
            ));
        }
        s
    }

    fn logstash_yaml(&self, host: &str, client: Client) -> String {
        format!(
            "{INPUT}output.logstash:\n  hosts: [\"{host}\"]\n  timeout: 5s\n{}",
            self.ssl_yaml(client)
        )
    }
}

/// The line of the failed session phase, after checking the exit code and the result line.
fn refused_session_line(r: &common::Run) -> String {
    assert_eq!(r.code(), Some(1), "{}\n{}", r.stdout, r.stderr);
    let out = &r.stdout;
    assert!(out.contains("result: FAIL (session failed)"), "{out}");
    out.lines()
        .find(|l| l.contains("✗ session"))
        .unwrap_or_else(|| panic!("no ✗ session line in:\n{out}"))
        .to_string()
}

/// Asserts that `line` names every one of `needles`.
fn assert_names(line: &str, needles: &[&str], out: &str) {
    for needle in needles {
        assert!(
            line.contains(needle),
            "no {needle:?} in {line:?}; all:\n{out}"
        );
    }
}

/// The accepted case: every phase passed, the session line included.
fn assert_session_accepted(r: &common::Run) {
    assert_eq!(r.code(), Some(0), "{}\n{}", r.stdout, r.stderr);
    let out = &r.stdout;
    assert!(
        out.lines()
            .any(|l| l.contains("✓ session") && l.contains("accepted")),
        "no ✓ session line in:\n{out}"
    );
    assert!(out.contains("result: OK"), "{out}");
}

/// What a refused probe must say for `client`; `plaintext` is what the peer does to
/// plaintext on its TLS port.
fn expect_refusal(client: Client, plaintext: &[&'static str]) -> Vec<&'static str> {
    match client {
        Client::NoCertificate => vec![
            "refused: the server refused our client certificate",
            "we presented none",
            "ssl.certificate",
        ],
        Client::OtherCa => vec![
            "refused: the server refused our client certificate",
            "CN=stranger",
        ],
        Client::Plaintext => plaintext.to_vec(),
        Client::Good => unreachable!("the good case is accepted"),
    }
}

/// go-lumber's Go TLS server closes a connection whose first bytes are no TLS record, without
/// an alert.
const GO_PLAINTEXT: &[&str] = &[
    "refused: the server closed the connection",
    "if the port expects TLS, set ssl.enabled",
];

/// rustls answers plaintext on a TLS port with a TLS alert record.
const RUSTLS_PLAINTEXT: &[&str] = &[
    "refused: the server speaks TLS",
    "TLS alert record (0x15 0x03",
    "set ssl.enabled",
];

fn golumber_session(client: Client) {
    let pki = SessionPki::new();
    let (cert, key, client_ca) = pki.server_files();
    let server = Server::start_mutual_tls(&cert, &key, &client_ca);
    let r = test_output(&pki.logstash_yaml(&server.addr, client));
    match client {
        Client::Good => assert_session_accepted(&r),
        refused => {
            let line = refused_session_line(&r);
            assert_names(&line, &expect_refusal(refused, GO_PLAINTEXT), &r.stdout);
        }
    }
    assert_eq!(server.accepted(), 0, "a probe delivers no event");
}

#[test]
fn golumber_accepts_the_session_of_a_good_client_certificate() {
    golumber_session(Client::Good);
}

#[test]
fn golumber_refusing_a_missing_client_certificate_fails_the_session() {
    golumber_session(Client::NoCertificate);
}

#[test]
fn golumber_refusing_a_client_certificate_of_another_ca_fails_the_session() {
    golumber_session(Client::OtherCa);
}

#[test]
fn plaintext_to_golumbers_tls_port_fails_the_session() {
    golumber_session(Client::Plaintext);
}

fn receive_session(client: Client) {
    let pki = SessionPki::new();
    let (cert, key, client_ca) = pki.server_files();
    let rx = peers::Receiver::receive(&[
        "--out",
        "discard",
        "--stats",
        "--tls-cert",
        &cert,
        "--tls-key",
        &key,
        "--tls-ca",
        &client_ca,
        "--require-client-cert",
    ]);
    let r = test_output(&pki.logstash_yaml(&rx.addr, client));
    match client {
        Client::Good => assert_session_accepted(&r),
        refused => {
            let line = refused_session_line(&r);
            assert_names(&line, &expect_refusal(refused, RUSTLS_PLAINTEXT), &r.stdout);
        }
    }
    rx.terminate();
    let (_, stderr) = rx.finish(std::time::Duration::from_secs(30));
    assert_eq!(
        peers::receive_stats(&stderr)["events"],
        0,
        "a probe delivers no event:\n{stderr}"
    );
}

#[test]
fn skidder_receive_accepts_the_session_of_a_good_client_certificate() {
    receive_session(Client::Good);
}

#[test]
fn skidder_receive_refusing_a_missing_client_certificate_fails_the_session() {
    receive_session(Client::NoCertificate);
}

#[test]
fn skidder_receive_refusing_a_client_certificate_of_another_ca_fails_the_session() {
    receive_session(Client::OtherCa);
}

#[test]
fn plaintext_to_skidder_receives_tls_port_fails_the_session() {
    receive_session(Client::Plaintext);
}

/// `test output` of `output.elasticsearch` through nginx (`ssl_verify_client on`) in front of
/// the stand-in Elasticsearch; `None` when nginx is skipped.
async fn nginx_session(client: Client) -> Option<(common::Run, Vec<Seen>)> {
    let bin = nginx::require()?;
    let pki = SessionPki::new();
    let es = EsServer::start(|_, s| secured(s, true)).await;
    let upstream = es.host();
    let front = tokio::task::block_in_place(|| {
        nginx::Front::start(
            &bin,
            &upstream,
            &nginx::FrontPki {
                cert_pem: &pki.server.cert_pem,
                key_pem: &pki.server.key_pem,
                client_ca_pem: &pki.ca.cert_pem,
            },
        )
    });
    let scheme = match client {
        Client::Plaintext => "http",
        _ => "https",
    };
    let host = format!("{scheme}://127.0.0.1:{}", front.port);
    let yaml = format!(
        "{}{}",
        es_yaml(std::slice::from_ref(&host)),
        pki.ssl_yaml(client)
    );
    let r = test_output_async(yaml).await;
    // Stopped first, so nothing passes on to the upstream after it was looked at.
    drop(front);
    Some((r, es.seen()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_accepts_the_session_of_a_good_client_certificate() {
    let Some((r, seen)) = nginx_session(Client::Good).await else {
        return;
    };
    assert_eq!(r.code(), Some(0), "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("✓ GET /"), "{}", r.stdout);
    assert!(r.stdout.contains("result: OK"), "{}", r.stdout);
    let paths: Vec<&str> = seen.iter().map(|s| s.path_and_query.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/",
            "/_security/_authenticate",
            "/_security/user/_has_privileges"
        ],
        "the probe's requests only, nothing indexed"
    );
}

/// Runs the refused case `client` through nginx and checks its session line.
async fn nginx_refuses(client: Client, needles: &[&str]) {
    let Some((r, seen)) = nginx_session(client).await else {
        return;
    };
    let line = refused_session_line(&r);
    assert_names(&line, needles, &r.stdout);
    assert!(!r.stdout.contains("s3cret"), "{}", r.stdout);
    assert!(seen.is_empty(), "nginx passed a request on: {seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_refusing_a_missing_client_certificate_fails_the_session() {
    nginx_refuses(
        Client::NoCertificate,
        &[
            "refused: the server refused our client certificate",
            "we presented none",
            "HTTP 400 \"No required SSL certificate was sent\"",
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_refusing_a_client_certificate_of_another_ca_fails_the_session() {
    nginx_refuses(
        Client::OtherCa,
        &[
            "refused: the server refused our client certificate",
            "CN=stranger",
            "HTTP 400 \"The SSL certificate error\"",
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plaintext_http_to_nginxs_https_port_fails_the_session() {
    nginx_refuses(
        Client::Plaintext,
        &[
            "refused: the server speaks TLS",
            "HTTP 400 \"The plain HTTP request was sent to HTTPS port\"",
            "use https://",
        ],
    )
    .await;
}

/// `test output` of `output.elasticsearch` against a rustls HTTPS server requiring client
/// certificates of the session CA (it refuses with a TLS alert after the handshake).
async fn rustls_es_session(client: Client) -> (common::Run, Vec<Seen>) {
    let pki = SessionPki::new();
    let server_tls = TlsSource::server(
        TlsSettings::from_config(&credentials_pki::server_ssl(
            &pki.files,
            &pki.server,
            Some(&pki.ca),
        ))
        .unwrap(),
    )
    .unwrap()
    .server_config()
    .unwrap();
    let es = EsServer::start_with(
        Some(tokio_rustls::TlsAcceptor::from(server_tls)),
        std::sync::Arc::new(|_, s: &Seen| secured(s, true)),
    )
    .await;
    let scheme = match client {
        Client::Plaintext => "http",
        _ => "https",
    };
    let host = format!("{scheme}://127.0.0.1:{}", es.addr.port());
    let yaml = format!(
        "{}{}",
        es_yaml(std::slice::from_ref(&host)),
        pki.ssl_yaml(client)
    );
    let r = test_output_async(yaml).await;
    (r, es.seen())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rustls_https_accepts_the_session_of_a_good_client_certificate() {
    let (r, seen) = rustls_es_session(Client::Good).await;
    assert_eq!(r.code(), Some(0), "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("✓ GET /"), "{}", r.stdout);
    assert_eq!(seen.len(), 3, "the probe's three requests, nothing indexed");
}

/// Runs the refused case `client` against the rustls HTTPS server and checks its session
/// line; nothing reached the server's HTTP layer.
async fn rustls_https_refuses(client: Client, needles: &[&str]) {
    let (r, seen) = rustls_es_session(client).await;
    let line = refused_session_line(&r);
    assert_names(&line, needles, &r.stdout);
    assert!(seen.is_empty(), "a refused session made requests: {seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rustls_https_refusing_a_missing_client_certificate_fails_the_session() {
    rustls_https_refuses(
        Client::NoCertificate,
        &[
            "refused: the server refused our client certificate",
            "we presented none",
            "TLS alert CertificateRequired",
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rustls_https_refusing_a_client_certificate_of_another_ca_fails_the_session() {
    rustls_https_refuses(
        Client::OtherCa,
        &[
            "refused: the server refused our client certificate CN=stranger",
            "TLS alert UnknownCA",
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plaintext_http_to_a_rustls_https_port_fails_the_session() {
    rustls_https_refuses(
        Client::Plaintext,
        &[
            "refused: the server speaks TLS",
            "TLS alert record (0x15 0x03",
            "use https:// in hosts",
        ],
    )
    .await;
}

/// A TLS port that closes on anything that is not TLS, as Elasticsearch's own (Netty) does:
/// it reads what arrives and hangs up without a byte.
fn closes_on_plaintext() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for mut conn in listener.incoming().map_while(Result::ok) {
            let mut buf = [0u8; 4096];
            let _ = std::io::Read::read(&mut conn, &mut buf);
        }
    });
    addr
}

#[test]
fn plaintext_http_to_a_port_that_hangs_up_fails_the_session() {
    let addr = closes_on_plaintext();
    let r = test_output(&es_yaml(&[format!("http://{addr}")]));
    let line = refused_session_line(&r);
    assert_names(
        &line,
        &[
            "refused: the server closed the connection on a plain HTTP request",
            "if the port expects TLS, use https:// in hosts",
        ],
        &r.stdout,
    );
}

/// `supported_protocols` and `cipher_suites` by Beats' names against OpenSSL (nginx offering
/// only TLS 1.2): `test output` passes and reports the negotiated version and suite.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls12_and_a_beats_named_cipher_suite_against_nginx() {
    let Some(bin) = nginx::require() else {
        return;
    };
    let pki = SessionPki::new();
    let es = EsServer::start(|_, s| secured(s, true)).await;
    let upstream = es.host();
    let front = tokio::task::block_in_place(|| {
        nginx::Front::start_with(
            &bin,
            &upstream,
            &nginx::FrontPki {
                cert_pem: &pki.server.cert_pem,
                key_pem: &pki.server.key_pem,
                client_ca_pem: &pki.ca.cert_pem,
            },
            "TLSv1.2",
        )
    });
    let host = format!("https://127.0.0.1:{}", front.port);
    let yaml = format!(
        "{}{}    supported_protocols: [TLSv1.2]\n    cipher_suites: [ECDHE-ECDSA-AES-128-GCM-SHA256]\n",
        es_yaml(std::slice::from_ref(&host)),
        pki.ssl_yaml(Client::Good)
    );
    let r = test_output_async(yaml).await;
    drop(front);
    assert_eq!(r.code(), Some(0), "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("TLS version: TLSv1.2")
            && r.stdout.contains("TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"),
        "{}",
        r.stdout
    );
}
