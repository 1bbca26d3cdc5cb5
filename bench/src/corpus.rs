//! The load corpus: realistic Beats-shaped log events (~450 bytes), one JSON object per
//! line, generated from a fixed seed so every run and every sender ships the same bytes.
//!
//! Events carry no top-level `seq`: the peers' servers count events without `seq` as
//! distinct, so cycling the corpus never looks like duplicates to `--expect`.

use std::fmt::Write as _;
use std::path::Path;

use crate::error::BenchError;

/// Lines in the corpus file; senders cycle through them.
pub const CORPUS_LINES: usize = 8192;

/// xorshift64*: deterministic and dependency-free; the corpus must never change
/// between runs or machines.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

const HOSTS: [&str; 6] = ["web-01", "web-02", "web-03", "api-07", "api-08", "auth-02"];
const PATHS: [&str; 8] = [
    "/api/v1/items",
    "/api/v1/orders/checkout",
    "/login",
    "/static/js/app.4f9c2b.js",
    "/healthz",
    "/api/v2/search?q=boots&page=2",
    "/images/banner-summer.webp",
    "/account/settings",
];
const AGENTS: [&str; 4] = [
    "Mozilla/5.0 (X11; Linux x86_64; rv:126.0) Gecko/20100101 Firefox/126.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
    "curl/8.5.0",
    "Go-http-client/1.1",
];
const METHODS: [&str; 4] = ["GET", "GET", "POST", "PUT"];
const STATUSES: [&str; 6] = ["200", "200", "200", "304", "404", "502"];
const LEVELS: [&str; 4] = ["INFO", "INFO", "WARN", "ERROR"];
const LOGGERS: [&str; 4] = [
    "com.shop.orders.CheckoutService",
    "com.shop.search.QueryPlanner",
    "com.shop.auth.TokenFilter",
    "com.shop.inventory.StockSync",
];
const APP_MESSAGES: [&str; 5] = [
    "order placed: items=3 total=129.90 currency=EUR payment=card",
    "slow query: 412 ms on index products, falling back to cached facets",
    "token refresh failed for client mobile-ios: upstream returned 503",
    "stock sync finished: 1204 SKUs updated, 7 conflicts resolved by timestamp",
    "cache miss ratio above threshold: 0.41 over the last 60 s",
];
const USERS: [&str; 5] = ["alice", "bob", "deploy", "root", "svc-backup"];

/// Generates the corpus: nginx access lines, application logs and sshd auth logs
/// (4:3:1), with `@timestamp`, `@metadata`, `host`, `log`, `input`, `service` and `event`
/// fields, as Filebeat sends them.
pub fn generate() -> Vec<String> {
    let mut rng = Rng(0x5eed_0009_b0b5_1ced);
    // Base: 2026-11-27T08:00:00Z; timestamps advance a few ms per event.
    let mut ms_of_day: u64 = 8 * 3_600_000;
    let mut offsets = [0u64; 3];
    (0..CORPUS_LINES)
        .map(|_| {
            ms_of_day += rng.below(7);
            let ts = format!(
                "2026-11-27T{:02}:{:02}:{:02}.{:03}Z",
                ms_of_day / 3_600_000,
                ms_of_day / 60_000 % 60,
                ms_of_day / 1000 % 60,
                ms_of_day % 1000
            );
            let host = rng.pick(&HOSTS);
            let kind = rng.below(8);
            let (path, service, dataset, message) = if kind < 4 {
                let ip = format!(
                    "{}.{}.{}.{}",
                    10 + rng.below(180),
                    rng.below(256),
                    rng.below(256),
                    1 + rng.below(254)
                );
                let message = format!(
                    "{ip} - - [27/Nov/2026:{:02}:{:02}:{:02} +0000] \\\"{} {} HTTP/1.1\\\" {} {} \\\"-\\\" \\\"{}\\\"",
                    ms_of_day / 3_600_000,
                    ms_of_day / 60_000 % 60,
                    ms_of_day / 1000 % 60,
                    rng.pick(&METHODS),
                    rng.pick(&PATHS),
                    rng.pick(&STATUSES),
                    200 + rng.below(48_000),
                    rng.pick(&AGENTS),
                );
                ("/var/log/nginx/access.log", "nginx", "nginx.access", message)
            } else if kind < 7 {
                let message = format!(
                    "{} [{}] {} {} - trace_id={:016x} {}",
                    ts,
                    rng.pick(&LEVELS),
                    rng.pick(&LOGGERS),
                    format_args!("pool-{}-thread-{}", 1 + rng.below(4), 1 + rng.below(32)),
                    rng.next(),
                    rng.pick(&APP_MESSAGES),
                );
                ("/var/log/shop/app.log", "shop-api", "shop.app", message)
            } else {
                let user = rng.pick(&USERS);
                let message = if rng.below(3) == 0 {
                    format!(
                        "Failed password for invalid user {user} from 203.0.113.{} port {} ssh2",
                        rng.below(256),
                        1024 + rng.below(60_000)
                    )
                } else {
                    format!(
                        "Accepted publickey for {user} from 198.51.100.{} port {} ssh2: ED25519 SHA256:{:016x}{:08x}",
                        rng.below(256),
                        1024 + rng.below(60_000),
                        rng.next(),
                        rng.below(1 << 32)
                    )
                };
                ("/var/log/auth.log", "sshd", "system.auth", message)
            };
            let which = match service {
                "nginx" => 0,
                "shop-api" => 1,
                _ => 2,
            };
            let offset = offsets[which];
            offsets[which] += message.len() as u64 + 1;
            let mut line = String::with_capacity(512);
            // Writing to a String cannot fail.
            let _ = write!(
                line,
                concat!(
                    "{{\"@timestamp\":\"{ts}\",",
                    "\"@metadata\":{{\"beat\":\"filebeat\",\"type\":\"_doc\",\"version\":\"8.15.0\"}},",
                    "\"host\":{{\"name\":\"{host}\"}},",
                    "\"log\":{{\"file\":{{\"path\":\"{path}\"}},\"offset\":{offset}}},",
                    "\"input\":{{\"type\":\"filestream\"}},",
                    "\"service\":{{\"type\":\"{service}\"}},",
                    "\"event\":{{\"dataset\":\"{dataset}\"}},",
                    "\"message\":\"{message}\"}}"
                ),
                ts = ts,
                host = host,
                path = path,
                offset = offset,
                service = service,
                dataset = dataset,
                message = message,
            );
            line
        })
        .collect()
}

/// Writes the corpus as NDJSON to `path` and returns the mean event size in bytes.
///
/// # Errors
/// [`BenchError::Io`] naming the file.
pub fn write(path: &Path) -> Result<f64, BenchError> {
    let lines = generate();
    let total: usize = lines.iter().map(String::len).sum();
    let mut text = lines.join("\n");
    text.push('\n');
    std::fs::write(path, text).map_err(|source| BenchError::Io {
        what: format!("writing the corpus {}", path.display()),
        source,
    })?;
    Ok(total as f64 / lines.len() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corpus_is_deterministic_valid_json_and_about_450_bytes() {
        let a = generate();
        let b = generate();
        assert_eq!(a, b, "same seed must give the same corpus");
        let mean = a.iter().map(String::len).sum::<usize>() as f64 / a.len() as f64;
        assert!((380.0..=520.0).contains(&mean), "mean event size {mean}");
        for (i, line) in a.iter().enumerate() {
            let v: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("line {i} is not JSON: {e}: {line}"));
            assert!(v.get("seq").is_none(), "line {i} has a top-level seq");
            for key in [
                "@timestamp",
                "@metadata",
                "host",
                "log",
                "service",
                "message",
            ] {
                assert!(v.get(key).is_some(), "line {i} lacks {key}");
            }
        }
    }
}
