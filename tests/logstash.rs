//! output.logstash against Elastic's go-lumber server (tests/peers/golumber): delivery,
//! settings, load balancing, failover, ttl and a SOCKS5 proxy. Fault scenarios are in
//! logstash_faults.rs, TLS in logstash_tls.rs.

mod common;
#[path = "common/golumber.rs"]
mod golumber;
#[path = "common/socks5.rs"]
mod socks5;

use std::time::Duration;

use golumber::{assert_all_delivered, Server};

/// A generator of `count` events (at `eps`, 0 = unlimited) into output.logstash with short
/// test timeouts; `extra` lines are added under `output.logstash`.
fn config(hosts: &[&str], count: u64, eps: u64, extra: &str) -> String {
    let hosts = hosts
        .iter()
        .map(|h| format!("\"{h}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let extra: String = extra.lines().map(|l| format!("  {l}\n")).collect();
    format!(
        "skidder.inputs:\n  - type: generator\n    count: {count}\n    eps: {eps}\n\
         queue.mem:\n  events: 4096\n  flush:\n    min_events: 100\n    timeout: 20ms\n\
         output.logstash:\n  hosts: [{hosts}]\n  timeout: 2s\n  bulk_max_size: 200\n  max_retries: -1\n\
         \x20 backoff:\n    init: 100ms\n    max: 500ms\n{extra}"
    )
}

fn run(yaml: &str) -> common::Run {
    let dir = tempfile::tempdir().unwrap();
    let path = common::config(dir.path(), yaml);
    common::run_config(dir.path(), &path)
}

fn assert_ok(run: &common::Run) {
    assert_eq!(run.code(), Some(0), "skidder failed:\n{}", run.stderr);
}

#[test]
fn delivers_every_event_with_libbeat_document_layout() {
    let server = Server::start(&[]);
    let r = run(&config(
        &[server.addr.as_str()],
        5000,
        0,
        "index: MyBeat\ncompression_level: 3",
    ));
    assert_ok(&r);
    let t = r.totals();
    assert_eq!(t["acked"], "5000");
    assert_eq!(t["retried"], "0");
    assert_eq!(assert_all_delivered(&server.seqs(), 5000), 0);
    let first = std::fs::read_to_string(&server.out).unwrap();
    let line = first.lines().next().unwrap();
    // libbeat's layout: @timestamp (UTC, ms, Z) first, then @metadata with the index.
    assert!(
        line.starts_with("{\"@timestamp\":\"")
            && line[15..39].ends_with('Z')
            && line[39..].starts_with(
                "\",\"@metadata\":{\"beat\":\"mybeat\",\"type\":\"_doc\",\"version\":\""
            ),
        "{line}"
    );
    let stats = server.stop();
    assert_eq!(stats["duplicates"], 0);
}

#[test]
fn sync_plain_and_slow_start_modes_deliver_everything() {
    for extra in [
        "pipelining: 0\ncompression_level: 0",
        "pipelining: 4\nslow_start: true\ncompression_level: 9",
        "worker: 3\ncompression_level: 1",
    ] {
        let server = Server::start(&[]);
        let r = run(&config(&[server.addr.as_str()], 3000, 0, extra));
        assert_ok(&r);
        assert_eq!(
            assert_all_delivered(&server.seqs(), 3000),
            0,
            "duplicates with {extra:?}"
        );
    }
}

#[test]
fn loadbalance_spreads_batches_over_all_hosts() {
    let a = Server::start(&[]);
    let b = Server::start(&[]);
    let r = run(&config(
        &[a.addr.as_str(), b.addr.as_str()],
        4000,
        4000,
        "loadbalance: true",
    ));
    assert_ok(&r);
    let (sa, sb) = (a.seqs(), b.seqs());
    assert!(
        !sa.is_empty() && !sb.is_empty(),
        "both hosts get events: {} / {}",
        sa.len(),
        sb.len()
    );
    let mut all = sa.clone();
    for (k, v) in sb {
        *all.entry(k).or_insert(0) += v;
    }
    assert_eq!(assert_all_delivered(&all, 4000), 0);
    assert!(
        r.stderr.contains("logstash output host totals"),
        "{}",
        r.stderr
    );
}

#[test]
fn failover_skips_a_dead_host() {
    // A port nobody listens on: bind, note the port, close.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_addr = dead.local_addr().unwrap().to_string();
    drop(dead);
    let live = Server::start(&[]);
    let r = run(&config(
        &[dead_addr.as_str(), live.addr.as_str()],
        2000,
        0,
        "",
    ));
    assert_ok(&r);
    assert_eq!(assert_all_delivered(&live.seqs(), 2000), 0);
}

#[test]
fn ttl_reconnects_with_pipelining() {
    let server = Server::start(&[]);
    let r = run(&config(
        &[server.addr.as_str()],
        3000,
        3000,
        "ttl: 200ms\npipelining: 2",
    ));
    assert_ok(&r);
    assert_eq!(assert_all_delivered(&server.seqs(), 3000), 0);
    let stats = server.stop();
    let connections = stats["connections"].as_u64().unwrap();
    assert!(
        connections >= 3,
        "ttl 200ms over ~1s of sending must reconnect; connections = {connections}"
    );
    // The reconnects came from the ttl, not from failures: nothing was re-sent and no
    // connection failed.
    assert_eq!(r.totals()["retried"], "0", "{}", r.stderr);
    assert!(
        !r.stderr.contains("logstash connection failed") && !r.stderr.contains("cannot connect"),
        "{}",
        r.stderr
    );
}

#[test]
fn through_a_socks5_proxy_with_remote_name_resolution() {
    let server = Server::start(&[]);
    let proxy = socks5::Proxy::start(Some(("ship", "s3cret")));
    let target = format!("localhost:{}", server.port());
    let r = run(&config(
        &[target.as_str()],
        2000,
        0,
        &format!("proxy_url: socks5://ship:s3cret@{}", proxy.addr),
    ));
    assert_ok(&r);
    assert_eq!(assert_all_delivered(&server.seqs(), 2000), 0);
    let targets = proxy.targets.lock().unwrap().clone();
    assert!(
        targets.contains(&target),
        "the proxy was asked for the name, not an address: {targets:?}"
    );
}

#[test]
fn socks5_proxy_refusing_the_password_is_a_clear_error() {
    let proxy = socks5::Proxy::start(Some(("ship", "right")));
    refused_password(&proxy.addr.to_string());
}

/// A proxy at `proxy` that accepts only `ship:right` refuses `ship:wrong`: a clear error
/// naming the target, and nothing reaches the server.
fn refused_password(proxy: &str) {
    let server = Server::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let path = common::config(
        dir.path(),
        &config(
            &[server.addr.as_str()],
            10,
            0,
            &format!("proxy_url: socks5://ship:wrong@{proxy}"),
        ),
    );
    let (child, mut lines) = common::spawn_run(dir.path(), &path);
    lines.wait_for(
        &format!("SOCKS5 handshake for {} failed", server.addr),
        Duration::from_secs(20),
    );
    drop(child);
    assert_eq!(server.accepted(), 0);
}

#[test]
fn socks5_proxy_with_the_local_resolver_gets_an_address() {
    let server = Server::start(&[]);
    let proxy = socks5::Proxy::start(None);
    let r = run(&config(
        &[format!("localhost:{}", server.port()).as_str()],
        500,
        0,
        &format!(
            "proxy_url: socks5://{}\nproxy_use_local_resolver: true",
            proxy.addr
        ),
    ));
    assert_ok(&r);
    assert_eq!(assert_all_delivered(&server.seqs(), 500), 0);
    let targets = proxy.targets.lock().unwrap().clone();
    assert!(
        targets
            .iter()
            .all(|t| t.parse::<std::net::SocketAddr>().is_ok())
            && !targets.is_empty(),
        "resolved here, so the proxy sees addresses only: {targets:?}"
    );
}

#[test]
fn escape_html_escapes_like_libbeat() {
    for (escape, want) in [(true, r"a\u003cb\u003e\u0026c"), (false, "a<b>&c")] {
        let server = Server::start(&[]);
        let yaml = config(
            &[server.addr.as_str()],
            10,
            0,
            &format!("escape_html: {escape}"),
        )
        .replace(
            "    eps: 0\n",
            "    eps: 0\n    message: \"a<b>&c {seq}\"\n",
        );
        let r = run(&yaml);
        assert_ok(&r);
        let text = std::fs::read_to_string(&server.out).unwrap();
        let line = text.lines().next().unwrap();
        assert!(
            line.contains(&format!("\"message\":\"{want} ")),
            "escape_html {escape}: {line}"
        );
    }
}

/// The same SOCKS5 client against a proxy nobody here wrote (github.com/armon/go-socks5 via
/// `golumber socks5`): user/password authentication and a host name the proxy resolves.
#[test]
fn through_a_third_party_socks5_proxy_with_a_password() {
    let server = Server::start(&[]);
    let proxy = golumber::Socks5::start(Some(("ship", "s3cret")));
    let target = format!("localhost:{}", server.port());
    let r = run(&config(
        &[target.as_str()],
        2000,
        0,
        &format!("proxy_url: socks5://ship:s3cret@{}", proxy.addr),
    ));
    assert_ok(&r);
    assert_eq!(assert_all_delivered(&server.seqs(), 2000), 0);
}

#[test]
fn a_third_party_socks5_proxy_refusing_the_password_is_a_clear_error() {
    let proxy = golumber::Socks5::start(Some(("ship", "right")));
    refused_password(&proxy.addr);
}
