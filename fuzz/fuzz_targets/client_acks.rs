//! Arbitrary server replies into a client session with three pipelined windows
//! (sizes from the first three bytes). Every event must come back exactly once, in
//! order, whatever the server sends.
#![no_main]

use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use skidder_protocol::{ClientConfig, ClientEvent, ClientSession};

#[derive(Debug)]
struct Event(u32);

impl AsRef<[u8]> for Event {
    fn as_ref(&self) -> &[u8] {
        b"{}"
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let (head, replies) = data.split_at(4);
    let now = Instant::now();
    let mut client = ClientSession::new(ClientConfig {
        compression_level: u32::from(head[3] % 4),
        ..ClientConfig::default()
    });
    let mut sent = Vec::new();
    let mut out = Vec::new();
    for &size in &head[..3] {
        let events: Vec<Event> = (0..u32::from(size % 8))
            .map(|_| {
                sent.push(sent.len() as u32);
                Event(sent.len() as u32 - 1)
            })
            .collect();
        client.send_window(events, &mut out, now).expect("small windows encode");
    }
    for piece in replies.chunks(usize::from(head[3] >> 4).max(1)) {
        if client.handle_input(piece, now).is_err() {
            break;
        }
    }
    let (events, unacked) = client.into_unacked();
    let mut back = Vec::new();
    for ev in events {
        match ev {
            ClientEvent::Progress { events, acked, of } => {
                assert!(acked > 0 && acked < of);
                back.extend(events.into_iter().map(|e| e.0));
            }
            ClientEvent::WindowAcked { events } => back.extend(events.into_iter().map(|e| e.0)),
        }
    }
    back.extend(unacked.into_iter().map(|e| e.0));
    assert_eq!(back, sent, "every event handed back exactly once, in order");
});
