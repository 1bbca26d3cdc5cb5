//! A tiny authoritative DNS server on loopback UDP for the DNS discovery tests: A and SRV
//! records from a table the test changes while skidder runs, NXDOMAIN/NODATA with an SOA
//! (whose minimum is the negative TTL), and an outage switch that answers SERVFAIL.
//! RFC 1035 wire format, only what a stub resolver asks: one question, no EDNS needed.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One SRV answer.
#[derive(Debug, Clone)]
pub struct Srv {
    /// Priority.
    pub priority: u16,
    /// Weight.
    pub weight: u16,
    /// Port.
    pub port: u16,
    /// Target name (without a trailing dot).
    pub target: String,
}

#[derive(Default)]
struct Zone {
    a: HashMap<String, Vec<Ipv4Addr>>,
    srv: HashMap<String, Vec<Srv>>,
}

struct State {
    zone: Mutex<Zone>,
    ttl: u32,
    negative_ttl: u32,
    servfail: AtomicBool,
    stop: AtomicBool,
    queries: Mutex<HashMap<(String, u16), u64>>,
    total: AtomicU64,
}

/// The running server; stops when dropped.
pub struct DnsServer {
    /// `127.0.0.1:port`.
    pub addr: SocketAddr,
    state: Arc<State>,
    thread: Option<std::thread::JoinHandle<()>>,
}

const A: u16 = 1;
const SOA: u16 = 6;
const AAAA: u16 = 28;
const SRV: u16 = 33;

impl DnsServer {
    /// Starts on a free loopback port; answers carry `ttl` seconds, negative answers an
    /// SOA with minimum `negative_ttl`.
    pub fn start(ttl: u32, negative_ttl: u32) -> Self {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let addr = sock.local_addr().unwrap();
        let state = Arc::new(State {
            zone: Mutex::new(Zone::default()),
            ttl,
            negative_ttl,
            servfail: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            queries: Mutex::new(HashMap::new()),
            total: AtomicU64::new(0),
        });
        let st = Arc::clone(&state);
        let thread = std::thread::spawn(move || serve(sock, st));
        Self {
            addr,
            state,
            thread: Some(thread),
        }
    }

    /// Sets the A records of `name`; empty removes the name (NXDOMAIN).
    pub fn set_a(&self, name: &str, ips: &[Ipv4Addr]) {
        let mut z = self.state.zone.lock().unwrap();
        if ips.is_empty() {
            z.a.remove(&name.to_lowercase());
        } else {
            z.a.insert(name.to_lowercase(), ips.to_vec());
        }
    }

    /// Sets the SRV records of `name`.
    pub fn set_srv(&self, name: &str, records: &[Srv]) {
        let mut z = self.state.zone.lock().unwrap();
        z.srv.insert(name.to_lowercase(), records.to_vec());
    }

    /// While on, every query gets SERVFAIL (a resolver outage).
    pub fn servfail(&self, on: bool) {
        self.state.servfail.store(on, Ordering::SeqCst);
    }

    /// Queries seen for `name` of `qtype` (1 = A, 28 = AAAA, 33 = SRV).
    pub fn queries(&self, name: &str, qtype: u16) -> u64 {
        let q = self.state.queries.lock().unwrap();
        q.get(&(name.to_lowercase(), qtype)).copied().unwrap_or(0)
    }

    /// All queries seen.
    pub fn total_queries(&self) -> u64 {
        self.state.total.load(Ordering::SeqCst)
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(sock: UdpSocket, st: Arc<State>) {
    let mut buf = [0u8; 1500];
    while !st.stop.load(Ordering::SeqCst) {
        let Ok((n, peer)) = sock.recv_from(&mut buf) else {
            continue;
        };
        if let Some(reply) = answer(&buf[..n], &st) {
            let _ = sock.send_to(&reply, peer);
        }
    }
}

/// Reads the question's name at `pos`; returns it (lower case, no trailing dot) and the
/// position after it. Queries never use compression.
fn read_name(msg: &[u8], mut pos: usize) -> Option<(String, usize)> {
    let mut labels = Vec::new();
    loop {
        let len = *msg.get(pos)? as usize;
        pos += 1;
        if len == 0 {
            break;
        }
        if len & 0xC0 != 0 {
            return None;
        }
        labels.push(String::from_utf8_lossy(msg.get(pos..pos + len)?).to_lowercase());
        pos += len;
    }
    Some((labels.join("."), pos))
}

fn write_name(out: &mut Vec<u8>, name: &str) {
    for label in name.split('.').filter(|l| !l.is_empty()) {
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
}

fn record(out: &mut Vec<u8>, rtype: u16, ttl: u32, rdata: &[u8]) {
    // The owner is the question's name: a compression pointer to offset 12.
    out.extend_from_slice(&[0xC0, 0x0C]);
    out.extend_from_slice(&rtype.to_be_bytes());
    out.extend_from_slice(&1u16.to_be_bytes());
    out.extend_from_slice(&ttl.to_be_bytes());
    out.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    out.extend_from_slice(rdata);
}

fn answer(q: &[u8], st: &State) -> Option<Vec<u8>> {
    if q.len() < 12 || u16::from_be_bytes([q[4], q[5]]) != 1 {
        return None;
    }
    let (name, pos) = read_name(q, 12)?;
    let qtype = u16::from_be_bytes([*q.get(pos)?, *q.get(pos + 1)?]);
    let question = &q[12..pos + 4];
    st.total.fetch_add(1, Ordering::SeqCst);
    *st.queries
        .lock()
        .unwrap()
        .entry((name.clone(), qtype))
        .or_insert(0) += 1;
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(&q[0..2]);
    // QR, opcode 0, AA, RD copied; RA.
    let rd = q[2] & 0x01;
    if st.servfail.load(Ordering::SeqCst) {
        out.extend_from_slice(&[0x84 | rd, 0x82]);
        out.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
        out.extend_from_slice(question);
        return Some(out);
    }
    let zone = st.zone.lock().unwrap();
    let mut answers: Vec<(u16, Vec<u8>)> = Vec::new();
    let known = zone.a.contains_key(&name) || zone.srv.contains_key(&name);
    match qtype {
        A => {
            for ip in zone.a.get(&name).into_iter().flatten() {
                answers.push((A, ip.octets().to_vec()));
            }
        }
        SRV => {
            for s in zone.srv.get(&name).into_iter().flatten() {
                let mut rd = Vec::new();
                rd.extend_from_slice(&s.priority.to_be_bytes());
                rd.extend_from_slice(&s.weight.to_be_bytes());
                rd.extend_from_slice(&s.port.to_be_bytes());
                write_name(&mut rd, &s.target);
                answers.push((SRV, rd));
            }
        }
        _ => {}
    }
    let rcode = if known { 0 } else { 3 };
    out.extend_from_slice(&[0x84 | rd, 0x80 | rcode]);
    out.extend_from_slice(&1u16.to_be_bytes());
    out.extend_from_slice(&(answers.len() as u16).to_be_bytes());
    let authority = u16::from(answers.is_empty());
    out.extend_from_slice(&authority.to_be_bytes());
    out.extend_from_slice(&0u16.to_be_bytes());
    out.extend_from_slice(question);
    for (t, rd) in &answers {
        record(&mut out, *t, st.ttl, rd);
    }
    if answers.is_empty() {
        // NXDOMAIN / NODATA: an SOA whose minimum is the negative TTL (RFC 2308).
        let mut rd = Vec::new();
        write_name(&mut rd, "ns.test");
        write_name(&mut rd, "admin.test");
        for v in [1u32, 60, 60, 600, st.negative_ttl] {
            rd.extend_from_slice(&v.to_be_bytes());
        }
        record(&mut out, SOA, st.negative_ttl, &rd);
    }
    let _ = AAAA;
    Some(out)
}
