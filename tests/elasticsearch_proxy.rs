//! `output.elasticsearch` through a real HTTP proxy (Debian's tinyproxy, installed by
//! `.ci/peers/tinyproxy.sh`) in front of the in-process Elasticsearch stand-in: plain http
//! hosts are forwarded (tinyproxy adds `Via: 1.1 tinyproxy`), https hosts are tunnelled with
//! `CONNECT`; `proxy_headers` reach the proxy (it demands `Proxy-Authorization`); without
//! `proxy_url` the environment's `HTTP_PROXY` is used as in Beats, and `proxy_disable`
//! ignores it.

mod common;
mod credentials_pki;
#[path = "common/es_server.rs"]
mod es_server;
#[path = "common/tinyproxy.rs"]
mod tinyproxy;

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use credentials_pki::{server_ssl, Ca, Files};
use skidder::credentials::{TlsSettings, TlsSource};

const N: u64 = 300;
const RUN_LIMIT: Duration = Duration::from_secs(60);

fn bulk_ok() -> Arc<es_server::Script> {
    Arc::new(|_, seen: &es_server::Seen| {
        if seen.path_and_query.contains("_bulk") {
            (200, es_server::all_indexed(seen))
        } else {
            (200, r#"{"version":{"number":"8.15.0"}}"#.to_string())
        }
    })
}

/// Runs skidder on `es_yaml` (the body of `output.elasticsearch`, indented) with `env`,
/// expecting every generated event to be acknowledged.
fn ship(dir: &std::path::Path, es_yaml: &str, env: &[(&str, &str)]) -> common::Run {
    let yaml = format!(
        "skidder.inputs:\n  - type: generator\n    count: {N}\n\
         queue.mem.flush.min_events: 100\nqueue.mem.flush.timeout: 50ms\n\
         output.elasticsearch:\n  bulk_max_size: 100\n  backoff.init: 50ms\n  backoff.max: 200ms\n\
         {es_yaml}"
    );
    let config = common::config(dir, &yaml);
    let mut cmd = common::bin();
    cmd.arg("-e")
        .arg("-c")
        .arg(&config)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for var in [
        "HTTP_PROXY",
        "http_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "ALL_PROXY",
        "all_proxy",
        "NO_PROXY",
        "no_proxy",
    ] {
        cmd.env_remove(var);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let run = common::wait_output(cmd.spawn().unwrap(), RUN_LIMIT);
    assert_eq!(run.code(), Some(0), "skidder failed:\n{}", run.stderr);
    assert_eq!(run.totals()["acked"], N.to_string(), "{}", run.stderr);
    run
}

fn bulk_requests(server: &es_server::Server) -> Vec<es_server::Seen> {
    server
        .seen()
        .into_iter()
        .filter(|s| s.path_and_query.contains("_bulk"))
        .collect()
}

fn via_proxy(seen: &es_server::Seen) -> bool {
    seen.headers
        .get("via")
        .is_some_and(|v| v.contains("tinyproxy"))
}

fn basic(user: &str, pass: &str) -> String {
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
    format!("Basic {token}")
}

#[test]
fn proxy_url_forwards_every_bulk_request_with_the_proxy_headers() {
    let Some(bin) = tinyproxy::require() else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let es = rt.block_on(es_server::Server::start_with(None, bulk_ok()));
    // The proxy refuses (407) any request without these credentials: delivery proves that
    // proxy_headers reached it.
    let proxy = tinyproxy::Proxy::start(&bin, Some(("shipper", "pr0xy-pass")));
    let dir = tempfile::tempdir().unwrap();
    let es_yaml = format!(
        "  hosts: [\"{}\"]\n  proxy_url: \"{}\"\n  proxy_headers:\n    Proxy-Authorization: \"{}\"\n",
        es.host(),
        proxy.url(),
        basic("shipper", "pr0xy-pass")
    );
    let run = ship(dir.path(), &es_yaml, &[]);
    let bulks = bulk_requests(&es);
    let docs: usize = bulks.iter().map(|s| s.docs().len()).sum();
    assert_eq!(docs as u64, N, "every event indexed once");
    assert!(
        bulks.iter().all(via_proxy),
        "a bulk request bypassed the proxy: {:?}",
        bulks
            .iter()
            .map(|s| s.headers.get("via"))
            .collect::<Vec<_>>()
    );
    assert!(
        proxy
            .log()
            .contains(&format!("GET http://127.0.0.1:{}/", es.addr.port()))
            || proxy
                .log()
                .contains(&format!("POST http://127.0.0.1:{}/", es.addr.port())),
        "tinyproxy logged no request to the stand-in:\n{}",
        proxy.log()
    );
    assert!(!run.stderr.contains("pr0xy-pass"), "{}", run.stderr);
    // export config shows neither the header value nor a URL password.
    let export = common::bin()
        .args(["-c", "skidder.yml", "export", "config"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&export.stdout);
    let token = basic("shipper", "pr0xy-pass");
    assert!(export.status.success() && !text.contains(&token), "{text}");
    assert!(text.contains("Proxy-Authorization: REDACTED"), "{text}");
}

#[test]
fn https_hosts_are_tunnelled_with_connect() {
    let Some(bin) = tinyproxy::require() else {
        return;
    };
    let ca = Ca::new("proxy-test-ca");
    let leaf = ca.leaf("127.0.0.1", &["127.0.0.1"]);
    let files = Files::new();
    let server_tls =
        TlsSource::server(TlsSettings::from_config(&server_ssl(&files, &leaf, None)).unwrap())
            .unwrap()
            .server_config()
            .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let es = rt.block_on(es_server::Server::start_with(
        Some(tokio_rustls::TlsAcceptor::from(server_tls)),
        bulk_ok(),
    ));
    let proxy = tinyproxy::Proxy::start(&bin, None);
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &ca.cert_pem).unwrap();
    let es_yaml = format!(
        "  hosts: [\"https://127.0.0.1:{}\"]\n  proxy_url: \"{}\"\n  ssl.certificate_authorities: [\"{}\"]\n",
        es.addr.port(),
        proxy.url(),
        ca_file.display()
    );
    ship(dir.path(), &es_yaml, &[]);
    let docs: usize = bulk_requests(&es).iter().map(|s| s.docs().len()).sum();
    assert_eq!(docs as u64, N);
    assert!(
        proxy
            .log()
            .contains(&format!("CONNECT 127.0.0.1:{} HTTP/1.1", es.addr.port())),
        "no CONNECT to the stand-in in tinyproxy's log:\n{}",
        proxy.log()
    );
}

#[test]
fn the_environment_proxy_is_used_unless_proxy_disable() {
    let Some(bin) = tinyproxy::require() else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let es = rt.block_on(es_server::Server::start_with(None, bulk_ok()));
    let proxy = tinyproxy::Proxy::start(&bin, None);
    let env = [("HTTP_PROXY", proxy.url()), ("http_proxy", proxy.url())];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let hosts = format!("  hosts: [\"{}\"]\n", es.host());

    // As Beats: without proxy_url, HTTP_PROXY from the environment is used.
    let dir = tempfile::tempdir().unwrap();
    ship(dir.path(), &hosts, &env);
    let first = bulk_requests(&es);
    assert!(
        !first.is_empty() && first.iter().all(via_proxy),
        "the environment's proxy was not used"
    );

    // proxy_disable: straight to the host, the environment notwithstanding.
    let dir = tempfile::tempdir().unwrap();
    ship(dir.path(), &format!("{hosts}  proxy_disable: true\n"), &env);
    let second = &bulk_requests(&es)[first.len()..];
    let docs: usize = second.iter().map(|s| s.docs().len()).sum();
    assert_eq!(docs as u64, N);
    assert!(
        second.iter().all(|s| !via_proxy(s)),
        "proxy_disable still went through the proxy"
    );
}
