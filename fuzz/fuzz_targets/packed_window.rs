//! Arbitrary bytes as a stored packed window (docs/disk-queue.md §11), taken apart by
//! `skidder_protocol::packed::unpack` with a 1 MiB cap: never a panic, `packed_count` agrees
//! with what `unpack` accepts, and every event range lies inside `out`, after what `out`
//! already held, in order and without overlap.
#![no_main]

use libfuzzer_sys::fuzz_target;
use skidder_protocol::packed::{packed_count, unpack, PACKED_HEADER_LEN};
use skidder_protocol::Inflater;

const MAX: usize = 1 << 20;

fuzz_target!(|data: &[u8]| {
    let count = packed_count(data);
    if let Some(c) = count {
        assert!(c > 0 && data.len() >= PACKED_HEADER_LEN);
    }
    // `out` already holds bytes (a reused buffer): ranges must point past them.
    let prefix = data.first().map_or(0, |b| usize::from(b & 0x0f));
    let mut out = vec![0xA5u8; prefix];
    let mut events = Vec::new();
    let result = unpack(data, &mut Inflater::new(), MAX, &mut out, &mut events);
    assert!(
        out.len() - prefix <= MAX + 1,
        "inflated {} bytes past the cap",
        out.len() - prefix
    );
    assert!(
        &out[..prefix] == vec![0xA5u8; prefix].as_slice(),
        "the prefix was changed"
    );
    let mut end = prefix;
    for r in &events {
        assert!(r.start >= end, "range {r:?} before {end}");
        assert!(
            r.start <= r.end && r.end <= out.len(),
            "range {r:?} outside {}",
            out.len()
        );
        end = r.end;
    }
    if result.is_ok() {
        let c = count.expect("unpack accepted a window packed_count refuses");
        assert_eq!(events.len(), c as usize, "events of a W({c}) window");
        assert!(events.iter().all(|r| !r.is_empty()), "an empty event");
        assert!(out.len() - prefix <= MAX);
    }
});
