//! The one error type of the protocol layer.
//!
//! Every variant carries the numbers a person needs to understand what the
//! peer sent (`FrameTooLarge { size, max }`, `UnexpectedAck { seq, window }`).
//! An error from a decoder or session means the byte stream is corrupt or the
//! peer broke the protocol: the connection must be closed. Nothing is silently
//! skipped.

use std::time::Duration;

use crate::frame::{FrameType, Version};

/// Everything that can go wrong while encoding, decoding or driving a session.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// The first byte of a frame is neither `'1'` nor `'2'`.
    #[error("unknown protocol version byte 0x{byte:02x} (expected '1' or '2')")]
    UnknownVersion {
        /// The byte that was found.
        byte: u8,
    },
    /// The second byte of a frame names no Lumberjack frame type.
    #[error("unknown frame type byte 0x{byte:02x}")]
    UnknownFrameType {
        /// The byte that was found.
        byte: u8,
    },
    /// A frame type that does not exist in the version it is tagged with
    /// (`D` only exists in v1, `J` only in v2).
    #[error("frame type {frame_type:?} does not exist in protocol {version:?}")]
    FrameVersionMismatch {
        /// The frame type found.
        frame_type: FrameType,
        /// The version byte it carried.
        version: Version,
    },
    /// A data frame's version differs from the version of the window it belongs to.
    #[error("data frame of protocol {frame:?} inside a window of protocol {window:?}")]
    BatchVersionMismatch {
        /// Version of the `W` frame that opened the window.
        window: Version,
        /// Version of the offending data frame.
        frame: Version,
    },
    /// A frame (header included) is larger than [`Limits::max_frame_size`](crate::Limits::max_frame_size).
    #[error("frame of {size} bytes exceeds the limit of {max} bytes")]
    FrameTooLarge {
        /// Size of the whole frame in bytes, header included.
        size: u64,
        /// The configured limit.
        max: u64,
    },
    /// A window announces more events than [`Limits::max_window_size`](crate::Limits::max_window_size).
    #[error("window of {size} events exceeds the limit of {max} events")]
    WindowTooLarge {
        /// Announced number of events.
        size: u64,
        /// The configured limit.
        max: u64,
    },
    /// A `J` frame with a zero-length payload (Logstash: "Invalid json length").
    #[error("JSON frame seq {seq} has an empty payload")]
    EmptyJson {
        /// Sequence number of the frame.
        seq: u32,
    },
    /// A `J` payload that does not start with `{` (Logstash requires an object).
    #[error("JSON frame seq {seq} is not a JSON object: it is {}", json_found(*first_byte))]
    JsonNotObject {
        /// Sequence number of the frame.
        seq: u32,
        /// First non-whitespace byte, if any.
        first_byte: Option<u8>,
    },
    /// A v1 `D` frame with zero key/value pairs (Logstash rejects it).
    #[error("data frame seq {seq} has no key/value pairs")]
    EmptyDataFrame {
        /// Sequence number of the frame.
        seq: u32,
    },
    /// A compressed frame inside a compressed frame.
    #[error("compressed frame nested inside a compressed frame is refused")]
    NestedCompressed,
    /// Inflating a compressed frame produced more than
    /// [`Limits::max_decompressed_size`](crate::Limits::max_decompressed_size) bytes.
    #[error("compressed frame inflates to more than {max} bytes")]
    DecompressedTooLarge {
        /// The configured limit.
        max: u64,
    },
    /// The zlib stream of a compressed frame ends before its end marker.
    #[error("zlib stream of {compressed} bytes is truncated (inflated {inflated} bytes so far)")]
    TruncatedZlib {
        /// Length of the compressed payload.
        compressed: usize,
        /// Bytes inflated before the input ran out.
        inflated: usize,
    },
    /// Bytes follow the end of the zlib stream inside a compressed frame.
    #[error("{count} bytes follow the end of the zlib stream in a compressed frame")]
    TrailingZlibBytes {
        /// Number of unused bytes.
        count: usize,
    },
    /// The inflated content of a compressed frame ends in the middle of a frame.
    #[error("inflated content ends inside a frame ({remaining} bytes left over)")]
    TruncatedCompressedContent {
        /// Bytes of the incomplete frame.
        remaining: usize,
    },
    /// The zlib stream is corrupt.
    #[error("corrupt zlib stream in compressed frame")]
    Inflate(#[source] flate2::DecompressError),
    /// The compressor backend failed.
    #[error("zlib compression with {backend} failed")]
    Deflate {
        /// Which [`Compressor`](crate::Compressor) implementation failed.
        backend: &'static str,
        /// The backend's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A frame arrived where the protocol does not allow it.
    #[error("unexpected {frame_type:?} frame: {reason}")]
    UnexpectedFrame {
        /// Type of the frame.
        frame_type: FrameType,
        /// Why it is not allowed here.
        reason: &'static str,
    },
    /// A data frame arrived while no window was open.
    #[error("data frame seq {seq} arrived outside any window")]
    DataOutsideWindow {
        /// Sequence number of the frame.
        seq: u32,
    },
    /// A new window was announced before the previous one was complete.
    #[error("new window announced after {received} of {expected} events of the previous window")]
    WindowIncomplete {
        /// Events received for the open window.
        received: u32,
        /// Events it announced.
        expected: u32,
    },
    /// The server's reply does not start with `'2' 'A'` (libbeat closes the connection).
    #[error("reply starts with 0x{:02x} 0x{:02x}, expected '2' 'A'", bytes[0], bytes[1])]
    UnexpectedReply {
        /// The first two bytes of the reply.
        bytes: [u8; 2],
    },
    /// An ACK larger than the window it acknowledges (or a non-zero ACK with no window outstanding).
    #[error("ACK {seq} for a window of {window} events")]
    UnexpectedAck {
        /// The ACK value received.
        seq: u32,
        /// Size of the oldest outstanding window (0 if none).
        window: u32,
    },
    /// No ACK arrived within the configured timeout.
    #[error("no ACK within {timeout:?}")]
    AckTimeout {
        /// The configured ACK timeout.
        timeout: Duration,
    },
    /// `ack_batch` was called with an id the session does not know or already acknowledged.
    #[error("batch {id} is not pending")]
    UnknownBatch {
        /// The id given.
        id: u64,
    },
    /// A window with more events than a u32 can count.
    #[error("window of {count} events cannot be encoded (more than u32::MAX)")]
    TooManyEvents {
        /// Number of events given.
        count: usize,
    },
    /// The events given for a window ended before the count they announced (an
    /// `ExactSizeIterator` whose `len` was wrong): sending the window would make the
    /// server wait for events that never come.
    #[error("window announced {announced} events but only {given} were given")]
    EventCountMismatch {
        /// The announced count.
        announced: u32,
        /// Events actually given.
        given: u32,
    },
    /// The session already failed with an earlier error and must be dropped.
    #[error("session already failed; the connection must be closed")]
    SessionFailed,
}

/// What a JSON document starting with `first` (its first non-whitespace byte) is, in
/// words a person sending it recognises.
fn json_found(first: Option<u8>) -> String {
    match first {
        None => "empty (only whitespace)".into(),
        Some(b'"') => "a JSON string".into(),
        Some(b'[') => "a JSON array".into(),
        Some(b'-' | b'0'..=b'9') => "a JSON number".into(),
        Some(b't' | b'f') => "a JSON boolean (or not JSON)".into(),
        Some(b'n') => "JSON null (or not JSON)".into(),
        Some(b) if b.is_ascii_graphic() => format!("not JSON (it starts with {:?})", b as char),
        Some(b) => format!("not JSON (it starts with byte 0x{b:02x})"),
    }
}

impl ProtocolError {
    /// True if the error is the ACK read deadline expiring (the peer may just be slow
    /// or gone), as opposed to the peer sending bytes that break the protocol.
    pub fn is_timeout(&self) -> bool {
        matches!(self, Self::AckTimeout { .. })
    }

    /// True if a configured [`Limits`](crate::Limits) value was exceeded.
    pub fn is_limit(&self) -> bool {
        matches!(
            self,
            Self::FrameTooLarge { .. }
                | Self::WindowTooLarge { .. }
                | Self::DecompressedTooLarge { .. }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_json_frame_that_is_not_an_object_says_what_it_is() {
        let cases: &[(Option<u8>, &str)] = &[
            (Some(b'"'), "it is a JSON string"),
            (Some(b'['), "it is a JSON array"),
            (Some(b'4'), "it is a JSON number"),
            (Some(b'-'), "it is a JSON number"),
            (Some(b't'), "it is a JSON boolean"),
            (Some(b'n'), "it is JSON null"),
            (None, "it is empty (only whitespace)"),
            (Some(b'<'), "it is not JSON (it starts with '<')"),
            (Some(0), "it is not JSON (it starts with byte 0x00)"),
        ];
        for (first_byte, expected) in cases {
            let text = ProtocolError::JsonNotObject {
                seq: 3,
                first_byte: *first_byte,
            }
            .to_string();
            assert!(
                text.starts_with("JSON frame seq 3 is not a JSON object: ")
                    && text.contains(expected),
                "{first_byte:?}: {text}"
            );
            assert!(!text.contains("Some("), "{text}");
        }
    }
}
