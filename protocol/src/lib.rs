//! Lumberjack v1/v2 codec and session state machines (sans-IO).
//!
//! This crate is everything skidder knows about the Beats Lumberjack wire
//! protocol: frame encoding and decoding, the client's window/ACK state machine
//! and a receiver that behaves like logstash-input-beats. It does **no I/O**: no
//! sockets, no tokio, no clock. Bytes and the current time go in as arguments;
//! bytes to write, events and deadlines come out.
//!
//! ```text
//!        network (owned by the caller: TCP, TLS, tests, fuzzers)
//!          |  bytes read              ^  bytes to write
//!          v                          |
//!   handle_input(&[u8], now)    send_window(.., &mut out) / poll_transmit()
//!   handle_timeout(now)               |
//!   +---------------------------------------------+
//!   |  ClientSession / ReceiverSession (pure)     |
//!   +---------------------------------------------+
//!          |  poll_event() / poll_batch()       poll_timeout() /
//!          v  (ACKed events, batches)           poll_keepalive_deadline()
//!        the caller (transport, receiver input)
//! ```
//!
//! # Frames
//!
//! Every frame starts with a version byte (`'1'` 0x31 or `'2'` 0x32) and a type
//! byte; integers are u32 big-endian.
//!
//! | frame | bytes | direction | versions |
//! |---|---|---|---|
//! | window `W` | `ver 'W' count` | client → server | 1, 2 |
//! | data `D` | `'1' 'D' seq pairs (klen key vlen value)*` | client → server | 1 |
//! | JSON `J` | `'2' 'J' seq len json[len]` | client → server | 2 |
//! | compressed `C` | `ver 'C' len zlib[len]` (RFC 1950 zlib stream of whole frames) | client → server | 1, 2 |
//! | ACK `A` | `ver 'A' seq` | server → client | 1, 2 |
//!
//! ```text
//!  W  +----+----+---------+            J  +----+----+---------+---------+------------+
//!     |'2' |'W' | count   |               |'2' |'J' | seq     | len     | JSON ...   |
//!     +----+----+---------+               +----+----+---------+---------+------------+
//!  C  +----+----+---------+-----------------------------------------+
//!     |'2' |'C' | len     | zlib( J J J ... )                       |
//!     +----+----+---------+-----------------------------------------+
//!  A  +----+----+---------+
//!     |'2' |'A' | seq     |   seq = highest accepted seq of the oldest window, 0 = keep-alive
//!     +----+----+---------+
//! ```
//!
//! What libbeat (and [`ClientSession`]) sends per window: `W(N)` then one `C` frame
//! holding `J` frames numbered 1..N; with compression level 0, plain `J` frames.
//!
//! # Driving a [`ClientSession`]
//!
//! 1. [`ClientSession::send_window`] encodes a window into the caller's reusable
//!    buffer; the caller writes the buffer to the connection. Repeat while
//!    [`ClientSession::in_flight`] is below the pipelining limit. A caller that keeps
//!    its events until they are acknowledged uses a `ClientSession<()>` and
//!    [`ClientSession::send_borrowed`] instead: the bytes are only borrowed, and
//!    acknowledgements come back as counts.
//! 2. Bytes read from the connection go to [`ClientSession::handle_input`].
//! 3. Drain [`ClientSession::poll_event`]: `Progress` and `WindowAcked` hand back the
//!    acknowledged events.
//! 4. Arm a timer for [`ClientSession::poll_timeout`]; when it fires call
//!    [`ClientSession::handle_timeout`].
//! 5. On any error or a broken connection, call [`ClientSession::into_unacked`] (or
//!    `on_disconnect`) and resend the returned events on a new connection.
//!
//! ```
//! use std::time::Instant;
//! use skidder_protocol::{ClientConfig, ClientEvent, ClientSession};
//!
//! let now = Instant::now();
//! let mut session = ClientSession::new(ClientConfig::default());
//! let mut out = Vec::new();
//! let events = vec![br#"{"message":"a"}"#.to_vec(), br#"{"message":"b"}"#.to_vec()];
//! session.send_window(events, &mut out, now).expect("encodable");
//! // ... write `out` to the socket; the server answers with a keep-alive, then ACK 2:
//! session.handle_input(&[b'2', b'A', 0, 0, 0, 0, b'2', b'A', 0, 0], now)?;
//! session.handle_input(&[0, 2], now)?;
//! match session.poll_event() {
//!     Some(ClientEvent::WindowAcked { events }) => assert_eq!(events.len(), 2),
//!     other => panic!("unexpected {other:?}"),
//! }
//! assert_eq!(session.poll_timeout(), None); // nothing outstanding
//! # Ok::<(), skidder_protocol::ProtocolError>(())
//! ```
//!
//! # Driving a [`ReceiverSession`]
//!
//! 1. Bytes read from the connection go to [`ReceiverSession::handle_input`].
//! 2. Take complete windows with [`ReceiverSession::poll_batch`] and store them.
//! 3. Once a batch is safely stored, call [`ReceiverSession::ack_batch`]; ACKs leave in
//!    batch order.
//! 4. Write whatever [`ReceiverSession::poll_transmit`] returns.
//! 5. Arm a timer for [`ReceiverSession::poll_keepalive_deadline`]; when it fires call
//!    [`ReceiverSession::handle_timeout`], which queues a `'2' 'A' 0` keep-alive while
//!    a batch is pending; go to 4.
//!
//! ```
//! use std::time::Instant;
//! use skidder_protocol::{Payload, ReceiverConfig, ReceiverSession};
//!
//! let now = Instant::now();
//! let mut session = ReceiverSession::new(ReceiverConfig::default());
//! // TV1 of the reference: W 1, J seq 1 {"message":"hello"}.
//! session.handle_input(b"2W\0\0\0\x012J\0\0\0\x01\0\0\0\x13", now)?;
//! session.handle_input(br#"{"message":"hello"}"#, now)?;
//! let batch = session.poll_batch().expect("a complete window");
//! assert_eq!(batch.events[0].payload, Payload::Json(br#"{"message":"hello"}"#.to_vec().into()));
//! session.ack_batch(batch.id, now)?;
//! assert_eq!(session.poll_transmit().as_deref(), Some(&b"2A\0\0\0\x01"[..]));
//! # Ok::<(), skidder_protocol::ProtocolError>(())
//! ```
//!
//! # Limits
//!
//! The receiver checks every length against [`Limits`] before buffering: window
//! size (default 10 000 events), frame size (64 MiB) and inflated size of one `C`
//! frame (256 MiB). A `C` frame is inflated in steps and decoded as it goes, so a
//! zlib bomb stops at its first byte that is not a frame, and with metered inflation
//! the caller pays for every step from a budget it may share among connections (see
//! [`ReceiverSession`]). A `C` inside a `C` is refused.
#![warn(missing_docs)]

pub mod client;
pub mod compress;
pub mod decoder;
pub mod error;
pub mod frame;
pub mod limits;
pub mod packed;
pub mod server;

pub use client::{ClientConfig, ClientEvent, ClientSession, SendError};
#[cfg(feature = "isal")]
pub use compress::IsalCompressor;
#[cfg(feature = "libdeflate")]
pub use compress::LibdeflateCompressor;
pub use compress::{Compressor, Flate2Compressor, Inflater};
pub use decoder::FrameDecoder;
pub use error::ProtocolError;
pub use frame::{Frame, FrameType, Version};
pub use limits::Limits;
pub use server::{Batch, BatchId, Payload, ReceivedEvent, ReceiverConfig, ReceiverSession};
