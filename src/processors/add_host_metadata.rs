//! `add_host_metadata`: the host's `hostname`, `architecture`, `os.*`, `id`,
//! `containerized`, and with `netinfo.enabled` (default true) `ip` and `mac` of every
//! non-loopback interface, merged over `host` (overwriting). Read as go-sysinfo reads them
//! on Linux (`/etc/os-release`, `uname`, `/etc/machine-id`, `/proc/1/cgroup`,
//! `getifaddrs`) and cached for `cache.ttl` (default 5m; `0` or less re-reads for every
//! event). `name` sets `host.name`; `geo.*` is written under `host.geo`; with
//! `replace_fields: false` an event that already has `host` fields other than `host.name`
//! is left alone. MAC addresses are lowercase with colons, as in 7.17.
//!
//! # Cost
//! A chain of only `add_host_metadata` with a cache and `replace_fields` (Filebeat's
//! default chain, its `when.not.contains.tags: forwarded` decided once per input) is folded
//! into the input's pre-encoded tail ([`super::pipeline`]): events are not parsed, and only
//! an event with a `host` of its own has that one value merged (and the merge is kept per
//! value: lines of one source repeat their `host`). Measured `skidder run --once` of a 1,000,000-line NDJSON
//! file (the filestream benchmark's lines, each with its own `host`) into `output.discard`,
//! user+sys CPU, medians of 3 alternating runs on a shared 2-core AMD EPYC: with
//! `add_host_metadata` 16.0 s before the fold, 7.8 s after (without processors: 3.8 / 4.5 s
//! in the same runs, noise from other builds included); a second alternating set, 2 pairs:
//! 16.8 s before, 10.4 s after. Most of what was left was merging each line's own `host`:
//! with the merge kept per value and the default conditional form folded, 500,000 such
//! lines take 1.9–2.1 CPU-s (4.1–4.8 before the merge cache; 6.8 running the processors on
//! each event; 1.5–1.8 without processors), alternating runs on the same machine.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{
    deep_update, ConfigError, Event, Fields, Processor, ProcessorError, Settings, Verdict,
};
use crate::agent::{hostname, uname_field};

/// A built `add_host_metadata`.
#[derive(Debug)]
pub struct AddHostMetadata {
    netinfo: bool,
    ttl: Option<Duration>,
    name: Option<String>,
    geo: Option<Fields>,
    replace_fields: bool,
    /// Shared, not copied, by the events that read it while it is fresh.
    cache: Mutex<Option<(Instant, Arc<Fields>)>>,
    /// Bumped at every re-read, so that a tail encoded from the data can tell it is stale.
    generation: AtomicU64,
    /// When the cached data expires, in nanoseconds after `born` (0 before the first
    /// read): inputs check it per event without taking the cache's lock.
    expires: AtomicU64,
    born: Instant,
}

impl AddHostMetadata {
    pub(crate) fn build(s: &Settings<'_>) -> Result<Self, ConfigError> {
        let netinfo = match s.get("netinfo") {
            None => true,
            Some(Value::Object(m)) => match m.get("enabled") {
                None | Some(Value::Null) => true,
                Some(Value::Bool(b)) => *b,
                Some(_) => return Err(s.error("netinfo.enabled", "expected a boolean")),
            },
            Some(_) => return Err(s.error("netinfo", "expected a mapping with enabled")),
        };
        let ttl = match s.get("cache") {
            None => Some(Duration::from_secs(300)),
            Some(Value::Object(m)) => match m.get("ttl") {
                None | Some(Value::Null) => Some(Duration::from_secs(300)),
                Some(Value::Number(n)) => {
                    n.as_f64().filter(|f| *f > 0.0).map(Duration::from_secs_f64)
                }
                Some(Value::String(t)) if t.trim_start().starts_with('-') => None,
                Some(Value::String(t)) => {
                    let d: crate::config::Duration =
                        t.parse()
                            .map_err(|e: crate::config::units::UnitParseError| {
                                s.error("cache.ttl", e.to_string())
                            })?;
                    (!d.is_zero()).then(|| d.get())
                }
                Some(_) => return Err(s.error("cache.ttl", "expected a duration such as 5m")),
            },
            Some(_) => return Err(s.error("cache", "expected a mapping with ttl")),
        };
        let geo = match s.get("geo") {
            None => None,
            Some(Value::Object(m)) => Some(m.clone()),
            Some(_) => return Err(s.error("geo", "expected a mapping")),
        };
        Ok(Self {
            netinfo,
            ttl,
            name: s.string("name")?.filter(|n| !n.is_empty()),
            geo,
            replace_fields: s.bool("replace_fields", true)?,
            cache: Mutex::new(None),
            generation: AtomicU64::new(0),
            expires: AtomicU64::new(0),
            born: Instant::now(),
        })
    }

    /// True when the data can be folded into an input's pre-encoded tail: it is cached
    /// (`cache.ttl` above 0) and overwrites `host` whatever the event holds
    /// (`replace_fields`, the default), so it does not depend on the event.
    pub(crate) fn foldable(&self) -> bool {
        self.replace_fields && self.ttl.is_some()
    }

    /// The data (re-read when the cache expired) and its generation.
    pub(crate) fn current(&self) -> (u64, Arc<Fields>) {
        let data = self.data();
        (self.generation.load(Ordering::Acquire), data)
    }

    /// The generation of the data, re-reading it first when the cache expired. While the
    /// data is fresh: a clock read and two atomic loads, no lock.
    pub(crate) fn generation(&self) -> u64 {
        if self.since_born() < self.expires.load(Ordering::Acquire) {
            return self.generation.load(Ordering::Acquire);
        }
        self.current().0
    }

    fn since_born(&self) -> u64 {
        u64::try_from(self.born.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    fn data(&self) -> Arc<Fields> {
        let mut cache = match self.cache.lock() {
            Ok(c) => c,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let (Some(ttl), Some((at, data))) = (self.ttl, cache.as_ref()) {
            if at.elapsed() < ttl {
                return Arc::clone(data);
            }
        }
        let data = Arc::new(self.read());
        *cache = Some((Instant::now(), Arc::clone(&data)));
        self.generation.fetch_add(1, Ordering::AcqRel);
        if let Some(ttl) = self.ttl {
            let ttl = u64::try_from(ttl.as_nanos()).unwrap_or(u64::MAX);
            // Published after the generation: whoever sees it fresh sees the new generation.
            self.expires
                .store(self.since_born().saturating_add(ttl), Ordering::Release);
        }
        data
    }

    fn read(&self) -> Fields {
        let os = os_release();
        let mut host = json!({
            "hostname": hostname(),
            "architecture": uname_field(|u| &u.machine),
            "os": {
                "platform": os.platform,
                "version": os.version,
                "family": os.family,
                "name": os.name,
                "kernel": uname_field(|u| &u.release),
                "type": "linux",
            },
            "containerized": containerized(),
        });
        if !os.codename.is_empty() {
            host["os"]["codename"] = Value::from(os.codename);
        }
        if !os.build.is_empty() {
            host["os"]["build"] = Value::from(os.build);
        }
        if let Some(id) = machine_id() {
            host["id"] = Value::from(id);
        }
        if self.netinfo {
            let (ips, macs) = net_info();
            if !ips.is_empty() {
                host["ip"] = Value::from(ips);
            }
            if !macs.is_empty() {
                host["mac"] = Value::from(macs);
            }
        }
        if let Some(n) = &self.name {
            host["name"] = Value::from(n.clone());
        }
        if let Some(g) = &self.geo {
            host["geo"] = Value::Object(g.clone());
        }
        let mut out = Fields::new();
        out.insert("host".into(), host);
        out
    }
}

/// libbeat's `skipAddingHostMetadata`: `host` holds more than `name`.
fn has_own_host_fields(event: &Event) -> bool {
    match event.fields.get("host") {
        Some(Value::Object(m)) => !(m.len() == 1 && m.contains_key("name")),
        _ => false,
    }
}

impl Processor for AddHostMetadata {
    fn name(&self) -> &'static str {
        "add_host_metadata"
    }

    fn host_metadata(&self) -> Option<&AddHostMetadata> {
        Some(self)
    }

    fn run(&self, event: &mut Event) -> Result<Verdict, ProcessorError> {
        if !self.replace_fields && has_own_host_fields(event) {
            return Ok(Verdict::Keep);
        }
        deep_update(&mut event.fields, &self.data(), true);
        Ok(Verdict::Keep)
    }
}

#[derive(Debug, Default)]
struct OsRelease {
    platform: String,
    name: String,
    version: String,
    family: String,
    codename: String,
    build: String,
}

/// go-sysinfo's `getOSRelease`: `/etc/lsb-release` then `/etc/os-release` (later keys win).
fn os_release() -> OsRelease {
    let text = ["/etc/lsb-release", "/etc/os-release"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .collect::<Vec<_>>()
        .join("\n");
    parse_os_release(&text)
}

fn parse_os_release(text: &str) -> OsRelease {
    let mut kv: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let v = v.trim();
        let v = v
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .or_else(|| v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
            .map_or(v, str::trim);
        kv.retain(|(key, _)| key != k.trim());
        kv.push((k.trim().to_string(), v.to_string()));
    }
    let get = |k: &str| {
        kv.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let mut os = OsRelease {
        platform: get("ID"),
        name: get("NAME"),
        version: get("VERSION"),
        codename: get("VERSION_CODENAME"),
        build: get("BUILD_ID"),
        ..OsRelease::default()
    };
    if os.codename.is_empty() {
        if let Some((_, v)) = kv.iter().find(|(k, _)| k.contains("CODENAME")) {
            os.codename = v.clone();
        }
    }
    if os.platform.is_empty() {
        os.platform = os.name.split(' ').next().unwrap_or_default().to_lowercase();
    }
    if os.codename.is_empty() {
        // "22.04.3 LTS (Jammy Jellyfish)" carries no one-word codename; "7 (Core)" does.
        if let Some(c) = os
            .version
            .split_once(" (")
            .and_then(|(_, rest)| rest.strip_suffix(')'))
            .filter(|c| c.chars().all(|ch| ch.is_alphanumeric() || ch == '_'))
        {
            os.codename = c.to_string();
        }
    }
    os.family = match os.platform.to_lowercase().as_str() {
        "redhat" | "fedora" | "centos" | "scientific" | "oraclelinux" | "ol" | "amzn" | "rhel" => {
            "redhat"
        }
        "debian" | "ubuntu" | "raspbian" | "linuxmint" => "debian",
        "suse" | "sles" | "opensuse" => "suse",
        _ => "",
    }
    .to_string();
    os
}

fn machine_id() -> Option<String> {
    ["/etc/machine-id", "/var/lib/dbus/machine-id"]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// go-sysinfo's `IsContainerized`: a cgroup line of PID 1 naming docker, lxc, kubepods or
/// a `.slice`.
fn containerized() -> bool {
    std::fs::read_to_string("/proc/1/cgroup").is_ok_and(|t| {
        t.lines().any(|l| {
            ["docker", ".slice", "lxc", "kubepods"]
                .iter()
                .any(|w| l.contains(w))
        })
    })
}

/// Addresses and MACs of the non-loopback interfaces, interface by interface (IPv4 before
/// IPv6 within one), as Go's `net.Interfaces` lists them.
pub fn net_info() -> (Vec<String>, Vec<String>) {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    struct Iface {
        name: String,
        mac: Option<String>,
        v4: Vec<String>,
        v6: Vec<String>,
    }
    let mut ifaces: Vec<Iface> = Vec::new();
    // SAFETY: getifaddrs gives a list we walk read-only and free once; every sockaddr is
    // read as the type its family says, and sll_addr only up to sll_halen (at most 8).
    unsafe {
        let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
        if libc::getifaddrs(&mut head) != 0 {
            return (Vec::new(), Vec::new());
        }
        let mut cur = head;
        while !cur.is_null() {
            let ifa = &*cur;
            cur = ifa.ifa_next;
            if ifa.ifa_flags & (libc::IFF_LOOPBACK as libc::c_uint) != 0 || ifa.ifa_name.is_null() {
                continue;
            }
            let name = std::ffi::CStr::from_ptr(ifa.ifa_name)
                .to_string_lossy()
                .into_owned();
            let i = match ifaces.iter().position(|f| f.name == name) {
                Some(i) => i,
                None => {
                    ifaces.push(Iface {
                        name,
                        mac: None,
                        v4: Vec::new(),
                        v6: Vec::new(),
                    });
                    ifaces.len() - 1
                }
            };
            if ifa.ifa_addr.is_null() {
                continue;
            }
            match i32::from((*ifa.ifa_addr).sa_family) {
                libc::AF_INET => {
                    let sa = &*(ifa.ifa_addr as *const libc::sockaddr_in);
                    let ip = Ipv4Addr::from(u32::from_be(sa.sin_addr.s_addr));
                    ifaces[i].v4.push(IpAddr::V4(ip).to_string());
                }
                libc::AF_INET6 => {
                    let sa = &*(ifa.ifa_addr as *const libc::sockaddr_in6);
                    let ip = Ipv6Addr::from(sa.sin6_addr.s6_addr);
                    ifaces[i].v6.push(IpAddr::V6(ip).to_string());
                }
                libc::AF_PACKET => {
                    let sa = &*(ifa.ifa_addr as *const libc::sockaddr_ll);
                    let n = usize::from(sa.sll_halen).min(sa.sll_addr.len());
                    if n > 0 {
                        let mac: Vec<String> = sa.sll_addr[..n]
                            .iter()
                            .map(|b| format!("{b:02x}"))
                            .collect();
                        ifaces[i].mac = Some(mac.join(":"));
                    }
                }
                _ => {}
            }
        }
        libc::freeifaddrs(head);
    }
    let mut ips = Vec::new();
    let mut macs = Vec::new();
    for f in ifaces {
        macs.extend(f.mac);
        ips.extend(f.v4);
        ips.extend(f.v6);
    }
    (ips, macs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::processors::tests::run;

    #[test]
    fn os_release_as_go_sysinfo_reads_it() {
        let os = parse_os_release(
            "DISTRIB_CODENAME=jammy\nNAME=\"Ubuntu\"\nVERSION=\"22.04.3 LTS (Jammy Jellyfish)\"\nID=ubuntu\n",
        );
        assert_eq!(
            (
                os.platform.as_str(),
                os.family.as_str(),
                os.codename.as_str()
            ),
            ("ubuntu", "debian", "jammy")
        );
        let os = parse_os_release("NAME=\"CentOS Linux\"\nVERSION=\"7 (Core)\"\n");
        assert_eq!(
            (
                os.platform.as_str(),
                os.family.as_str(),
                os.codename.as_str()
            ),
            ("centos", "redhat", "Core")
        );
    }

    #[test]
    fn host_fields_are_merged_over_host() {
        let (_, got, f) = run(
            json!({"add_host_metadata": {"netinfo.enabled": false}}),
            json!({"host": {"name": "beat-name"}}),
        );
        assert_eq!(f, 0);
        assert_eq!(
            got["host"]["name"], "beat-name",
            "host.name stays the beat's name"
        );
        assert_eq!(got["host"]["hostname"], hostname());
        assert_eq!(got["host"]["os"]["type"], "linux");
        assert_eq!(got["host"]["os"]["kernel"], uname_field(|u| &u.release));
        assert!(got["host"].get("ip").is_none());
        let (_, got, _) = run(
            json!({"add_host_metadata": {"replace_fields": false}}),
            json!({"host": {"name": "n", "id": "mine"}}),
        );
        assert_eq!(got, json!({"host": {"name": "n", "id": "mine"}}));
        let (_, got, _) = run(
            json!({"add_host_metadata": {"name": "custom", "geo": {"city_name": "Paris"}}}),
            json!({}),
        );
        assert_eq!(got["host"]["name"], "custom");
        assert_eq!(got["host"]["geo"]["city_name"], "Paris");
    }

    #[test]
    fn netinfo_lists_no_loopback_address() {
        let (ips, macs) = net_info();
        assert!(
            !ips.iter().any(|ip| ip == "127.0.0.1" || ip == "::1"),
            "{ips:?}"
        );
        assert!(
            macs.iter().all(|m| m.len() >= 2 && m.to_lowercase() == *m),
            "{macs:?}"
        );
    }
}
