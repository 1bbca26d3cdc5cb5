//! Throughput of the Elasticsearch output's pure parts: building a 1600-event bulk body
//! (plain and gzip level 1) and classifying its response; and the per-request cost of a
//! credential that can rotate (`api_key_path`: one `stat` per request) next to a fixed one.
//!
//! With `SKIDDER_BENCH_ES_URL` set (e.g. the OpenSearch peer's URL from
//! `.ci/peers/opensearch.sh start`), also one end-to-end run of the real binary:
//! generator → queue → `output.elasticsearch` → the cluster, reporting events/s, CPU per
//! million events and peak RSS from the run's totals line. `SKIDDER_BENCH_ES_EVENTS`
//! (default 300000), `SKIDDER_BENCH_ES_WORKERS` (default 1) and
//! `SKIDDER_BENCH_ES_COMPRESSION` (default 1) vary it. One run, not sampled: a cluster's
//! throughput is no micro-benchmark.

use bytes::Bytes;
use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use skidder::config::ElasticsearchOutputConfig;
use skidder::outputs::elasticsearch::bulk::BulkBody;
use skidder::outputs::elasticsearch::response::classify;
use skidder::outputs::elasticsearch::ElasticsearchSettings;

const EVENTS: usize = 1600;

fn events() -> Vec<Bytes> {
    (0..EVENTS)
        .map(|i| {
            Bytes::from(format!(
                r#"{{"@timestamp":"2026-07-01T10:00:{:02}.123Z","@metadata":{{"beat":"skidder","_id":"id-{i}"}},"host":{{"name":"web-{}"}},"log":{{"file":{{"path":"/var/log/app.log"}},"offset":{}}},"message":"GET /api/v1/items/{i} 200 1234 \"-\" \"curl/8.0\" rt=0.{:03}"}}"#,
                i % 60,
                i % 7,
                i * 120,
                i % 1000
            ))
        })
        .collect()
}

/// `Authorization` per request: an inline key against one read from `api_key_path`, whose
/// file is compared (one `stat`) on every call.
fn bench_auth(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("key");
    std::fs::write(&path, "bench-id:bench-secret").expect("key file");
    let inline = skidder::credentials::EsAuth::from_config(&ElasticsearchOutputConfig {
        api_key: Some(skidder::credentials::Secret::new("bench-id:bench-secret")),
        ..Default::default()
    })
    .expect("inline key");
    let watched = skidder::credentials::EsAuth::from_config(&ElasticsearchOutputConfig {
        api_key_path: Some(path),
        ..Default::default()
    })
    .expect("key file");
    let mut group = c.benchmark_group("es_auth_per_request");
    group.bench_function("inline_api_key", |b| b.iter(|| inline.authorization()));
    group.bench_function("api_key_path", |b| b.iter(|| watched.authorization()));
    group.finish();
}

fn bench(c: &mut Criterion) {
    let events = events();
    let bytes: u64 = events.iter().map(|e| e.len() as u64).sum();
    let mut group = c.benchmark_group("es_bulk_body");
    group.throughput(Throughput::Bytes(bytes));
    for level in [0u32, 1] {
        let settings = ElasticsearchSettings::from_config(&ElasticsearchOutputConfig {
            hosts: vec!["localhost".into()],
            index: Some("skidder-%{[host][name]}-%{+yyyy.MM.dd}".into()),
            compression_level: level,
            ..Default::default()
        })
        .expect("valid settings");
        let mut body = BulkBody::new(&settings);
        group.bench_with_input(BenchmarkId::new("gzip_level", level), &level, |b, _| {
            b.iter(|| {
                body.clear();
                for e in &events {
                    body.add_event(e).expect("indexable");
                }
                body.finish().expect("compressed")
            })
        });
    }
    group.finish();

    let items: Vec<String> = (0..EVENTS)
        .map(|i| {
            format!(
                r#"{{"index":{{"_index":"skidder-2026.07.01","_id":"id-{i}","_version":1,"result":"created","_shards":{{"total":2,"successful":1,"failed":0}},"_seq_no":{i},"_primary_term":1,"status":201}}}}"#
            )
        })
        .collect();
    let response = format!(
        r#"{{"took":12,"errors":false,"items":[{}]}}"#,
        items.join(",")
    );
    let mut group = c.benchmark_group("es_bulk_response");
    group.throughput(Throughput::Bytes(response.len() as u64));
    group.bench_function("classify_1600_created", |b| {
        b.iter(|| classify(200, response.as_bytes(), EVENTS).expect("valid response"))
    });
    group.finish();
}

/// `name` from the environment, or `default`.
fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The end-to-end run described in the module docs.
fn end_to_end(url: &str) {
    let events = env_or("SKIDDER_BENCH_ES_EVENTS", 300_000);
    let workers = env_or("SKIDDER_BENCH_ES_WORKERS", 1);
    let level = env_or("SKIDDER_BENCH_ES_COMPRESSION", 1);
    let dir = tempfile::tempdir().expect("temp dir");
    let index = format!("skidder-bench-{}", std::process::id());
    let config = dir.path().join("skidder.yml");
    std::fs::write(
        &config,
        format!(
            "skidder:\n  inputs:\n    - type: generator\n      count: {events}\n\
             output.elasticsearch:\n  hosts: [\"{url}\"]\n  index: {index}\n  worker: {workers}\n  compression_level: {level}\n"
        ),
    )
    .expect("write the config");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_skidder"))
        .arg("-c")
        .arg(&config)
        .arg("-e")
        .current_dir(dir.path())
        .output()
        .expect("run skidder");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let totals = stderr
        .lines()
        .find(|l| l.starts_with("skidder totals:"))
        .unwrap_or_else(|| panic!("no totals line (exit {:?}):\n{stderr}", out.status));
    println!(
        "es_end_to_end/generator_{events}_worker_{workers}_gzip_{level} ({index}): {}",
        &totals["skidder totals:".len()..].trim()
    );
}

criterion_group!(benches, bench, bench_auth);

fn main() {
    benches();
    if let Ok(url) = std::env::var("SKIDDER_BENCH_ES_URL") {
        end_to_end(&url);
    }
    Criterion::default().configure_from_args().final_summary();
}
