//! Arbitrary client bytes into a receiver session, split into reads of a size taken
//! from the first byte; inflation is metered (every request granted, plus a little
//! more on odd chunk sizes), every batch is acknowledged and keep-alives are driven.
//! Must never panic, never buffer past the limits, and account for every granted byte.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use skidder_protocol::{Limits, ReceiverConfig, ReceiverSession};

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, input)) = data.split_first() else {
        return;
    };
    let limits = Limits {
        max_window_size: 64,
        max_frame_size: 1 << 16,
        max_decompressed_size: 1 << 18,
    };
    let mut rx = ReceiverSession::new(ReceiverConfig {
        limits,
        keepalive_interval: Duration::from_secs(5),
        metered_inflation: true,
    });
    let extra = usize::from(chunk % 2) * 1000;
    let (mut granted, mut accounted) = (0usize, 0usize);
    let mut now = Instant::now();
    for piece in input.chunks(usize::from(chunk).max(1)) {
        let mut result = rx.handle_input(piece, now);
        while let (Ok(()), Some(want)) = (&result, rx.inflate_request()) {
            assert!(want <= (1 << 18) + 1, "asked for {want} bytes past the limit");
            granted += want + extra;
            result = rx.grant_inflate(want + extra, now);
        }
        if result.is_err() {
            return;
        }
        accounted += rx.take_unused_credit();
        while let Some(batch) = rx.poll_batch() {
            accounted += batch.inflated;
            assert!(batch.events.len() <= limits.max_window_size as usize);
            rx.ack_batch(batch.id, now).expect("a batch just handed out is pending");
        }
        now += Duration::from_secs(3);
        rx.handle_timeout(now);
        let _ = rx.poll_transmit();
    }
    assert!(accounted <= granted, "charged {accounted} of {granted} granted bytes");
});
