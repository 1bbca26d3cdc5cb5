//! The client's hot path allocates nothing in steady state: encoding a window (at
//! level 0 and with compression) and handling its ACK reuse every buffer.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::Instant;

use skidder_protocol::{ClientConfig, ClientEvent, ClientSession};

struct Counting;

thread_local! {
    // Only the test's own thread counts, into its own counter: the test harness allocates
    // on its threads at moments of its choosing, and tests run in parallel.
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

fn count() {
    if COUNTING.with(Cell::get) {
        ALLOCATIONS.with(|a| a.set(a.get() + 1));
    }
}

fn allocations() -> usize {
    ALLOCATIONS.with(Cell::get)
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: forwards the caller's layout unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `alloc` above with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: same contract as GlobalAlloc::realloc, forwarded.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn steady_state_window_encoding_does_not_allocate() {
    let events: Vec<Vec<u8>> = (0..512)
        .map(|i| format!("{{\"message\":\"event number {i} with some text\"}}").into_bytes())
        .collect();
    let ack = [b'2', b'A', 0, 0, 2, 0];
    COUNTING.with(|c| c.set(true));
    for level in [0, 1, 3] {
        let now = Instant::now();
        let mut client: ClientSession<&[u8]> = ClientSession::new(ClientConfig {
            compression_level: level,
            ..ClientConfig::default()
        });
        let mut pool: Vec<&[u8]> = events.iter().map(Vec::as_slice).collect();
        let mut out = Vec::new();
        let mut counts = Vec::new();
        for _ in 0..6 {
            let before = allocations();
            out.clear();
            client
                .send_window(std::mem::take(&mut pool), &mut out, now)
                .expect("encodes");
            client.handle_input(&ack, now).expect("valid ACK");
            match client.poll_event() {
                Some(ClientEvent::WindowAcked { events }) => pool = events,
                other => panic!("unexpected {other:?}"),
            }
            counts.push(allocations() - before);
        }
        // The first windows warm buffers (the output buffer, the compressor's state, the
        // deque of windows in flight); zlib-rs may size its state on the second call.
        assert_eq!(
            &counts[2..],
            &[0, 0, 0, 0],
            "level {level}: allocations per window {counts:?}"
        );
    }
}

#[test]
fn steady_state_borrowed_windows_do_not_allocate() {
    // The path skidder's Logstash output takes: bytes borrowed from batches it keeps,
    // acknowledgements as counts (`Vec<()>` never allocates).
    let events: Vec<Vec<u8>> = (0..512)
        .map(|i| format!("{{\"message\":\"event number {i} with some text\"}}").into_bytes())
        .collect();
    let ack = [b'2', b'A', 0, 0, 2, 0];
    COUNTING.with(|c| c.set(true));
    for level in [0, 1, 3] {
        let now = Instant::now();
        let mut client: ClientSession<()> = ClientSession::new(ClientConfig {
            compression_level: level,
            ..ClientConfig::default()
        });
        let mut out = Vec::new();
        let mut counts = Vec::new();
        for _ in 0..6 {
            let before = allocations();
            out.clear();
            client
                .send_borrowed(events.iter().map(Vec::as_slice), &mut out, now)
                .expect("encodes");
            client.handle_input(&ack, now).expect("valid ACK");
            match client.poll_event() {
                Some(ClientEvent::WindowAcked { events: acked }) => assert_eq!(acked.len(), 512),
                other => panic!("unexpected {other:?}"),
            }
            counts.push(allocations() - before);
        }
        assert_eq!(
            &counts[2..],
            &[0, 0, 0, 0],
            "level {level}: allocations per window {counts:?}"
        );
    }
}
