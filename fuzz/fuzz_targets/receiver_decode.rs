//! Arbitrary client bytes into a receiver session, split into reads of a size taken
//! from the first byte; every batch is acknowledged and keep-alives are driven.
//! Must never panic, and must never buffer past the limits.
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
    });
    let mut now = Instant::now();
    for piece in input.chunks(usize::from(chunk).max(1)) {
        if rx.handle_input(piece, now).is_err() {
            return;
        }
        while let Some(batch) = rx.poll_batch() {
            assert!(batch.events.len() <= limits.max_window_size as usize);
            rx.ack_batch(batch.id, now).expect("a batch just handed out is pending");
        }
        now += Duration::from_secs(3);
        rx.handle_timeout(now);
        let _ = rx.poll_transmit();
    }
});
