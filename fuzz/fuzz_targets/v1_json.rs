//! Lumberjack v1 `D` pairs (the fuzz bytes split at 0x00: key, value, key, value, ...)
//! into the receiver's event conversion. The result is always one JSON object holding
//! every key with its last value (bytes that are not UTF-8 replaced), `@timestamp`, and
//! `message` = `line` when only `line` was sent.
#![no_main]

use std::time::{Duration, UNIX_EPOCH};

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};
use skidder::inputs::lumberjack::v1::to_json;

fuzz_target!(|data: &[u8]| {
    let pieces: Vec<Bytes> = data
        .split(|&b| b == 0)
        .map(Bytes::copy_from_slice)
        .collect();
    let pairs: Vec<(Bytes, Bytes)> = pieces
        .chunks_exact(2)
        .map(|kv| (kv[0].clone(), kv[1].clone()))
        .collect();
    let now = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
    let json = to_json(&pairs, now);
    let doc: Map<String, Value> = serde_json::from_slice(&json)
        .unwrap_or_else(|e| panic!("not a JSON object ({e}): {json:?}"));
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let mut expected = Map::new();
    for (k, v) in &pairs {
        // Two keys that differ only in invalid bytes become the same string; the later wins.
        expected.insert(text(k), Value::String(text(v)));
    }
    for (k, v) in &expected {
        assert_eq!(doc.get(k), Some(v), "key {k:?}");
    }
    assert!(doc.get("@timestamp").is_some_and(Value::is_string));
    if !expected.contains_key("message") {
        if let Some(line) = pairs.iter().rev().find(|(k, _)| k.as_ref() == b"line") {
            assert_eq!(doc.get("message"), Some(&Value::String(text(&line.1))));
        }
    }
});
