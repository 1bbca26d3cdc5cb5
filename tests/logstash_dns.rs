//! output.logstash `dns.*` against go-lumber servers on several loopback addresses and a
//! DNS server of our own (tests/common/dns.rs) that the test changes while skidder runs.

mod common;
#[path = "common/dns.rs"]
mod dns;
#[path = "common/golumber.rs"]
mod golumber;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use dns::{DnsServer, Srv};
use golumber::{assert_all_delivered, Server};

/// A port free on 127.0.0.1 now (the servers then bind it on several loopback addresses).
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn ip(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, last)
}

fn server_on(last: u8, port: u16) -> Server {
    Server::start_on(&format!("127.0.0.{last}:{port}"), &[])
}

fn config(hosts: &str, dns_port: u16, count: u64, eps: u64, extra: &str) -> String {
    let extra: String = extra.lines().map(|l| format!("    {l}\n")).collect();
    format!(
        "skidder.inputs:\n  - type: generator\n    count: {count}\n    eps: {eps}\n\
         queue.mem:\n  events: 4096\n  flush:\n    min_events: 50\n    timeout: 20ms\n\
         output.logstash:\n  hosts: [{hosts}]\n  loadbalance: true\n  timeout: 3s\n\
         \x20 bulk_max_size: 100\n  backoff:\n    init: 100ms\n    max: 500ms\n\
         \x20 dns:\n    expand: true\n    refresh_interval: 500ms\n\
         \x20   nameservers: [\"127.0.0.1:{dns_port}\"]\n{extra}"
    )
}

fn merged(servers: &[&Server]) -> BTreeMap<u64, u32> {
    let mut all = BTreeMap::new();
    for s in servers {
        for (k, v) in s.seqs() {
            *all.entry(k).or_insert(0) += v;
        }
    }
    all
}

#[test]
fn a_name_grows_to_three_addresses_survives_an_outage_and_drains_one_losing_nothing() {
    let port = free_port();
    let (s1, s2, s3) = (server_on(1, port), server_on(2, port), server_on(3, port));
    // TTL 0: every refresh asks; the missing name's NXDOMAIN is cached for 30 s.
    let dns = DnsServer::start(0, 30);
    dns.set_a("ls.test", &[ip(1)]);
    let count = 40_000;
    let dir = tempfile::tempdir().unwrap();
    let yaml = config(
        &format!("\"ls.test:{port}\", \"missing.test:{port}\""),
        dns.addr.port(),
        count,
        5_000,
        "",
    );
    let path = common::config(dir.path(), &yaml);
    let (mut child, mut lines) = common::spawn_run(dir.path(), &path);
    lines.wait_for("address joined from DNS", Duration::from_secs(20));
    s1.wait_accepted(500, Duration::from_secs(20));
    assert_eq!(
        (s2.accepted(), s3.accepted()),
        (0, 0),
        "only one address yet"
    );

    // A resolver outage: the last good set (s1) keeps working.
    dns.servfail(true);
    lines.wait_for(
        "DNS lookup failed; keeping the last good addresses",
        Duration::from_secs(20),
    );
    let before = s1.accepted();
    s1.wait_accepted(before + 1_000, Duration::from_secs(20));
    dns.servfail(false);

    // 1 → 3 addresses: both new ones get traffic within a refresh (0.5 s) and a margin.
    dns.set_a("ls.test", &[ip(1), ip(2), ip(3)]);
    s2.wait_accepted(1, Duration::from_secs(5));
    s3.wait_accepted(1, Duration::from_secs(5));

    // .1 leaves: it drains; the rest goes to .2 and .3.
    dns.set_a("ls.test", &[ip(2), ip(3)]);
    lines.wait_for(
        "address left the DNS answer; draining it",
        Duration::from_secs(10),
    );
    let status = common::wait_exit(&mut child.0, Duration::from_secs(60));
    let stderr = lines.rest();
    assert_eq!(status.code(), Some(0), "{stderr}");
    let all = merged(&[&s1, &s2, &s3]);
    assert_eq!(assert_all_delivered(&all, count), 0, "duplicates");
    assert!(
        !s1.seqs().contains_key(&count),
        "the drained address got the last event"
    );
    assert!(s2.accepted() > 0 && s3.accepted() > 0);
    // Negative caching: NXDOMAIN for missing.test (SOA minimum 30 s) is asked once, not at
    // every refresh.
    assert!(
        dns.queries("missing.test", 1) <= 2,
        "missing.test asked {} times",
        dns.queries("missing.test", 1)
    );
    // Per-address totals, and the DNS changes on the name: +1, +2, -1.
    for last in [1, 2, 3] {
        let addr = format!("127.0.0.{last}:{port} (ls.test)");
        assert!(
            stderr
                .lines()
                .any(|l| l.contains("host totals") && l.contains(&addr)),
            "no totals for {addr}:\n{stderr}"
        );
    }
    assert!(
        stderr.lines().any(|l| l.contains("host totals")
            && l.contains(&format!("host=ls.test:{port} "))
            && l.contains("dns_changes=4")),
        "{stderr}"
    );
}

#[test]
fn srv_records_give_targets_and_ports() {
    let (pa, pb) = (free_port(), free_port());
    let (a, b) = (server_on(4, pa), server_on(5, pb));
    let dns = DnsServer::start(1, 1);
    dns.set_a("a.test", &[ip(4)]);
    dns.set_a("b.test", &[ip(5)]);
    dns.set_srv(
        "_lumberjack._tcp.fleet.test",
        &[
            Srv {
                priority: 10,
                weight: 1,
                port: pa,
                target: "a.test".into(),
            },
            Srv {
                priority: 10,
                weight: 1,
                port: pb,
                target: "b.test".into(),
            },
        ],
    );
    let count = 4_000;
    let dir = tempfile::tempdir().unwrap();
    let yaml = config("\"fleet.test\"", dns.addr.port(), count, 2_000, "srv: true");
    let path = common::config(dir.path(), &yaml);
    let r = common::run_config(dir.path(), &path);
    assert_eq!(r.code(), Some(0), "{}", r.stderr);
    assert_eq!(assert_all_delivered(&merged(&[&a, &b]), count), 0);
    assert!(
        a.accepted() > 0 && b.accepted() > 0,
        "{} / {}",
        a.accepted(),
        b.accepted()
    );
}
