//! Arbitrary client bytes into a receiver session that stores and acknowledges batches
//! late and out of order, as the receiver input does.
//!
//! Input: `[read size, n, schedule[n], client bytes...]`. Client bytes are fed in reads
//! of the read size; inflation is metered (every request granted, plus a little more on
//! odd read sizes). After each read, schedule bytes decide how many held batches to
//! acknowledge and which (any order); when the schedule runs out every held batch is
//! acknowledged. Keep-alive timers are driven between reads.
//!
//! Checks: never panics, never buffers past the limits, accounts for every granted byte;
//! every byte written is an ACK frame `<version> 'A' <u32>`; a keep-alive is exactly
//! `2A 0`; batch ACKs leave in window order, each only once it and every earlier batch
//! were stored, carrying the batch's version and highest seq; a second `ack_batch` of
//! the same batch is refused; at the end every stored batch was ACKed exactly once.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use skidder_protocol::{BatchId, Limits, ProtocolError, ReceiverConfig, ReceiverSession};

/// Batches handed out, in order, and how many of their ACKs were seen.
#[derive(Default)]
struct Ledger {
    /// (id, version byte, expected ACK value, stored by us).
    batches: Vec<(BatchId, u8, u32, bool)>,
    acked: usize,
}

impl Ledger {
    fn store(&mut self, id: BatchId) {
        let entry = self
            .batches
            .iter_mut()
            .find(|b| b.0 == id)
            .expect("held batches are known");
        entry.3 = true;
    }

    /// Bytes written after input or an `ack_batch`: batch ACKs in order, or an empty
    /// window's ACK 0.
    fn acks(&mut self, bytes: &[u8]) {
        assert_eq!(bytes.len() % 6, 0, "not whole ACK frames: {bytes:?}");
        for f in bytes.chunks(6) {
            assert!(
                matches!(f[0], b'1' | b'2') && f[1] == b'A',
                "not an ACK frame: {f:?}"
            );
            let seq = u32::from_be_bytes([f[2], f[3], f[4], f[5]]);
            match self.batches.get(self.acked) {
                Some(&(_, version, ack, true)) if version == f[0] && ack == seq => self.acked += 1,
                next => assert_eq!(
                    seq, 0,
                    "ACK {f:?} is not the next batch's (next: {next:?}, {} ACKed)",
                    self.acked
                ),
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let [chunk, n, rest @ ..] = data else {
        return;
    };
    let (schedule, input) = rest.split_at(usize::from(*n).min(rest.len()));
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
    let mut ledger = Ledger::default();
    let mut held: Vec<BatchId> = Vec::new();
    let mut ctl = schedule.iter().copied();
    let ack = |rx: &mut ReceiverSession, ledger: &mut Ledger, id: BatchId, now: Instant| {
        rx.ack_batch(id, now).expect("a held batch is pending");
        ledger.store(id);
        if let Some(bytes) = rx.poll_transmit() {
            ledger.acks(&bytes);
        }
        assert!(
            matches!(
                rx.ack_batch(id, now),
                Err(ProtocolError::UnknownBatch { .. })
            ),
            "a batch was acknowledged twice"
        );
    };
    for piece in input.chunks(usize::from(*chunk).max(1)) {
        let mut result = rx.handle_input(piece, now);
        while let (Ok(()), Some(want)) = (&result, rx.inflate_request()) {
            assert!(
                want <= (1 << 18) + 1,
                "asked for {want} bytes past the limit"
            );
            granted += want + extra;
            result = rx.grant_inflate(want + extra, now);
        }
        if result.is_err() {
            return;
        }
        // An empty window is answered at once when nothing is held before it.
        if let Some(bytes) = rx.poll_transmit() {
            ledger.acks(&bytes);
        }
        accounted += rx.take_unused_credit();
        while let Some(batch) = rx.poll_batch() {
            accounted += batch.inflated;
            assert!(
                !batch.events.is_empty() && batch.events.len() <= limits.max_window_size as usize
            );
            let highest = batch.events.iter().map(|e| e.seq).max().unwrap_or(0);
            assert_eq!(
                batch.highest_seq, highest,
                "the ACK value is the highest seq"
            );
            ledger
                .batches
                .push((batch.id, u8::from(batch.version), highest, false));
            held.push(batch.id);
        }
        match ctl.next() {
            None => {
                for id in std::mem::take(&mut held) {
                    ack(&mut rx, &mut ledger, id, now);
                }
            }
            Some(c) => {
                for _ in 0..c & 3 {
                    if held.is_empty() {
                        break;
                    }
                    let pick = usize::from(ctl.next().unwrap_or(0)) % held.len();
                    let id = held.remove(pick);
                    ack(&mut rx, &mut ledger, id, now);
                }
            }
        }
        now += Duration::from_secs(3);
        rx.handle_timeout(now);
        if let Some(bytes) = rx.poll_transmit() {
            assert_eq!(bytes, b"2A\0\0\0\0", "a keep-alive is one '2' 'A' 0");
        }
    }
    // The rest are stored late, in the schedule's order, else newest first.
    while !held.is_empty() {
        let pick = ctl
            .next()
            .map_or(held.len() - 1, |b| usize::from(b) % held.len());
        let id = held.remove(pick);
        ack(&mut rx, &mut ledger, id, now);
    }
    assert_eq!(
        ledger.acked,
        ledger.batches.len(),
        "every stored batch ACKed once, in order"
    );
    assert!(
        accounted <= granted,
        "charged {accounted} of {granted} granted bytes"
    );
});
