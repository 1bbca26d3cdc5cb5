//! Lumberjack v1 `D` frames (logstash-forwarder, npm `lumberjack-protocol`) as events.
//!
//! A `D` frame carries flat string pairs. The event is the JSON object of those pairs,
//! every value a string (as Logstash makes it), a later duplicate key replacing an earlier
//! one (Logstash puts them into a map in wire order). Two additions, as Logstash:
//! `@timestamp` (receive time, millisecond UTC) unless a pair carries one, and `message`
//! holding the `line` value when the client sent `line` but no `message`
//! (logstash-forwarder's name for the log line; `line` is kept too, nothing is lost).
//! Bytes that are not UTF-8 are replaced by U+FFFD, as Logstash's string decoding does.

use std::time::SystemTime;

use bytes::{BufMut, Bytes, BytesMut};

use crate::event::write_json;

/// The JSON document of one v1 event.
pub fn to_json(pairs: &[(Bytes, Bytes)], now: SystemTime) -> Bytes {
    let mut out = BytesMut::with_capacity(
        64 + pairs
            .iter()
            .map(|(k, v)| k.len() + v.len() + 6)
            .sum::<usize>(),
    );
    out.put_u8(b'{');
    let mut first = true;
    let mut sep = |out: &mut BytesMut| {
        if !first {
            out.put_u8(b',');
        }
        first = false;
    };
    let has = |key: &[u8]| pairs.iter().any(|(k, _)| k.as_ref() == key);
    if !has(b"@timestamp") {
        sep(&mut out);
        out.put_slice(b"\"@timestamp\":\"");
        out.put_slice(timestamp(now).as_bytes());
        out.put_u8(b'"');
    }
    if !has(b"message") {
        if let Some((_, line)) = pairs.iter().rev().find(|(k, _)| k.as_ref() == b"line") {
            sep(&mut out);
            out.put_slice(b"\"message\":");
            put_str(&mut out, line);
        }
    }
    for (i, (key, value)) in pairs.iter().enumerate() {
        if pairs[i + 1..].iter().any(|(k, _)| k == key) {
            continue;
        }
        sep(&mut out);
        put_str(&mut out, key);
        out.put_u8(b':');
        put_str(&mut out, value);
    }
    out.put_u8(b'}');
    out.freeze()
}

fn put_str(out: &mut BytesMut, bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    // A str always serializes.
    let _ = write_json(out, text.as_ref(), false);
}

fn timestamp(now: SystemTime) -> String {
    let t = time::OffsetDateTime::from(now);
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    t.format(&format)
        .unwrap_or_else(|_| "1970-01-01T00:00:00.000Z".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn pairs(p: &[(&'static str, &'static [u8])]) -> Vec<(Bytes, Bytes)> {
        p.iter()
            .map(|(k, v)| (Bytes::from_static(k.as_bytes()), Bytes::from_static(v)))
            .collect()
    }

    #[test]
    fn pairs_become_an_object_with_timestamp_and_message() {
        let at = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        let doc = to_json(
            &pairs(&[
                ("line", b"hello \"x\""),
                ("seq", b"1"),
                ("host", b"vm"),
                ("seq", b"2"),
            ]),
            at,
        );
        assert_eq!(
            std::str::from_utf8(&doc).unwrap(),
            r#"{"@timestamp":"2023-11-14T22:13:20.123Z","message":"hello \"x\"","line":"hello \"x\"","host":"vm","seq":"2"}"#
        );
        let v: serde_json::Value = serde_json::from_slice(&doc).unwrap();
        assert!(v.is_object());
    }

    #[test]
    fn client_timestamp_and_message_are_kept_and_bad_utf8_replaced() {
        let doc = to_json(
            &pairs(&[("@timestamp", b"t"), ("message", b"m\xff"), ("line", b"l")]),
            SystemTime::now(),
        );
        assert_eq!(
            std::str::from_utf8(&doc).unwrap(),
            "{\"@timestamp\":\"t\",\"message\":\"m\u{fffd}\",\"line\":\"l\"}"
        );
    }
}
