//! Helpers for the HTTP endpoint tests: start `skidder run` and learn the ports its
//! endpoints bound (each logs "... listening on ADDR ... endpoint=NAME").
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use crate::common::reap::Reap;
use crate::common::{config, spawn_run, LineWatch};

/// A running skidder and the address of each endpoint by name (`http` for monitoring,
/// the input's `id` for an intake).
pub struct Running {
    pub child: Reap,
    pub lines: LineWatch,
    pub addrs: HashMap<String, String>,
}

impl Running {
    /// `http://ADDR` of endpoint `name`.
    pub fn url(&self, name: &str) -> String {
        format!("http://{}", self.addr(name))
    }

    pub fn addr(&self, name: &str) -> &str {
        self.addrs
            .get(name)
            .unwrap_or_else(|| panic!("no endpoint {name}: {:?}", self.addrs))
    }
}

/// Writes `yaml`, starts skidder and waits (bounded) until every endpoint of `names` said
/// where it listens.
pub fn start(dir: &Path, yaml: &str, names: &[&str]) -> Running {
    let path = config(dir, yaml);
    let (child, mut lines) = spawn_run(dir, &path);
    let mut addrs = HashMap::new();
    for _ in names {
        lines.wait_for_line(
            "naming where an endpoint listens",
            Duration::from_secs(30),
            |l| l.contains(" listening on ") && l.contains("endpoint="),
        );
        let line = lines.seen.last().unwrap().clone();
        let addr = line
            .split(" listening on ")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .unwrap()
            .to_string();
        let name = line
            .split("endpoint=")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .unwrap()
            .trim_matches('"')
            .to_string();
        addrs.insert(name, addr);
    }
    for n in names {
        assert!(
            addrs.contains_key(*n),
            "endpoint {n} not announced: {addrs:?}"
        );
    }
    Running {
        child,
        lines,
        addrs,
    }
}

/// A keep-alive HTTP/1.1 client without proxies.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// GET `url` and parse JSON.
pub async fn get_json(c: &reqwest::Client, url: &str) -> serde_json::Value {
    let r = c.get(url).send().await.unwrap();
    assert_eq!(r.status(), 200, "GET {url}");
    r.json_value().await
}

/// reqwest is built without its `json` feature; parse with serde_json.
#[allow(async_fn_in_trait)]
pub trait JsonValue {
    async fn json_value(self) -> serde_json::Value;
}

impl JsonValue for reqwest::Response {
    async fn json_value(self) -> serde_json::Value {
        let text = self.text().await.unwrap();
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
    }
}

/// Bounded wait (async) for `probe` to return `Some`.
pub async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let until = std::time::Instant::now() + limit;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(
            std::time::Instant::now() < until,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The monitoring endpoint's `/stats` value at `pointer` (e.g. `/libbeat/pipeline/events/published`).
pub async fn stat(c: &reqwest::Client, base: &str, pointer: &str) -> u64 {
    let v = get_json(c, &format!("{base}/stats")).await;
    v.pointer(pointer)
        .and_then(|x| x.as_u64())
        .unwrap_or_else(|| panic!("/stats has no number at {pointer}: {v}"))
}
