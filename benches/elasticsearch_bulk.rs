//! Throughput of the Elasticsearch output's pure parts: building a 1600-event bulk body
//! (plain and gzip level 1) and classifying its response.

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
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

criterion_group!(benches, bench);
criterion_main!(benches);
