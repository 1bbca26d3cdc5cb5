//! Frame types, version bytes and frame encoders.
//!
//! Every frame starts with a version byte (`'1'` or `'2'`) and a frame-type
//! byte; all integers are unsigned 32-bit big-endian. Each encoder below shows
//! the byte layout it writes.

use bytes::Bytes;

use crate::error::ProtocolError;

/// Protocol version, the first byte of every frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Version {
    /// `'1'` (0x31): legacy logstash-forwarder protocol with key/value `D` frames.
    V1 = b'1' as isize,
    /// `'2'` (0x32): the protocol libbeat speaks, with JSON `J` frames.
    V2 = b'2' as isize,
}

impl TryFrom<u8> for Version {
    type Error = ProtocolError;

    fn try_from(byte: u8) -> Result<Self, Self::Error> {
        match byte {
            b'1' => Ok(Self::V1),
            b'2' => Ok(Self::V2),
            _ => Err(ProtocolError::UnknownVersion { byte }),
        }
    }
}

impl From<Version> for u8 {
    fn from(version: Version) -> u8 {
        version as u8
    }
}

/// Frame type, the second byte of every frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FrameType {
    /// `'W'` (0x57): window, announces the number of events that follow.
    Window = b'W' as isize,
    /// `'D'` (0x44): v1 key/value data frame.
    Data = b'D' as isize,
    /// `'J'` (0x4a): v2 JSON data frame.
    Json = b'J' as isize,
    /// `'C'` (0x43): compressed frame, a zlib stream of complete frames.
    Compressed = b'C' as isize,
    /// `'A'` (0x41): acknowledgement, server to client.
    Ack = b'A' as isize,
}

impl TryFrom<u8> for FrameType {
    type Error = ProtocolError;

    fn try_from(byte: u8) -> Result<Self, Self::Error> {
        match byte {
            b'W' => Ok(Self::Window),
            b'D' => Ok(Self::Data),
            b'J' => Ok(Self::Json),
            b'C' => Ok(Self::Compressed),
            b'A' => Ok(Self::Ack),
            _ => Err(ProtocolError::UnknownFrameType { byte }),
        }
    }
}

impl From<FrameType> for u8 {
    fn from(frame_type: FrameType) -> u8 {
        frame_type as u8
    }
}

/// Size of a `W` frame.
pub const WINDOW_FRAME_LEN: usize = 6;
/// Size of an `A` frame.
pub const ACK_FRAME_LEN: usize = 6;
/// Size of a `J` frame header (version, type, seq, length).
pub const JSON_HEADER_LEN: usize = 10;
/// Size of a `C` frame header (version, type, length).
pub const COMPRESSED_HEADER_LEN: usize = 6;
/// Size of a `D` frame header (version, type, seq, pair count).
pub const DATA_HEADER_LEN: usize = 10;

/// One decoded frame.
///
/// Payloads are [`Bytes`] slices of the receive buffer: decoding copies no event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// `W`: the next `count` data frames form one window.
    Window {
        /// Version byte of the frame.
        version: Version,
        /// Number of events announced.
        count: u32,
    },
    /// v1 `D`: flat key/value map, pairs in wire order (a repeated key means the
    /// later value wins, as in Logstash). Bytes are passed on as sent; Logstash
    /// decodes them as UTF-8.
    Data {
        /// Sequence number.
        seq: u32,
        /// Key/value pairs in wire order.
        pairs: Vec<(Bytes, Bytes)>,
    },
    /// v2 `J`: one JSON document (checked to start with `{`).
    Json {
        /// Sequence number.
        seq: u32,
        /// The raw JSON bytes.
        payload: Bytes,
    },
    /// `C`: a zlib stream holding complete frames.
    Compressed {
        /// Version byte of the frame.
        version: Version,
        /// The compressed bytes (zlib, RFC 1950).
        payload: Bytes,
    },
    /// `A`: everything up to and including `seq` of the oldest open window is accepted.
    Ack {
        /// Version byte of the frame.
        version: Version,
        /// Acknowledged sequence number (absolute within the window, 0 = keep-alive).
        seq: u32,
    },
}

fn len_u32(size: usize) -> Result<u32, ProtocolError> {
    u32::try_from(size).map_err(|_| ProtocolError::FrameTooLarge {
        size: size as u64,
        max: u64::from(u32::MAX),
    })
}

/// Appends a window frame.
///
/// ```text
/// +-----+-----+-----------------+
/// | ver | 'W' | count (u32 BE)  |
/// +-----+-----+-----------------+
/// ```
pub fn encode_window(version: Version, count: u32, out: &mut Vec<u8>) {
    out.extend_from_slice(&[version.into(), FrameType::Window.into()]);
    out.extend_from_slice(&count.to_be_bytes());
}

/// Appends an ACK frame.
///
/// ```text
/// +-----+-----+-----------------+
/// | ver | 'A' | seq (u32 BE)    |
/// +-----+-----+-----------------+
/// ```
pub fn encode_ack(version: Version, seq: u32, out: &mut Vec<u8>) {
    out.extend_from_slice(&[version.into(), FrameType::Ack.into()]);
    out.extend_from_slice(&seq.to_be_bytes());
}

/// Appends a v2 JSON frame.
///
/// ```text
/// +-----+-----+--------------+--------------+----------------+
/// | '2' | 'J' | seq (u32 BE) | len (u32 BE) | len bytes JSON |
/// +-----+-----+--------------+--------------+----------------+
/// ```
///
/// # Errors
/// [`ProtocolError::FrameTooLarge`] if the payload length does not fit a u32.
pub fn encode_json(seq: u32, payload: &[u8], out: &mut Vec<u8>) -> Result<(), ProtocolError> {
    let len = len_u32(payload.len())?;
    out.extend_from_slice(&[Version::V2.into(), FrameType::Json.into()]);
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(payload);
    Ok(())
}

/// Appends a v1 key/value data frame.
///
/// ```text
/// +-----+-----+--------------+----------------+
/// | '1' | 'D' | seq (u32 BE) | pairs (u32 BE) |
/// +-----+-----+--------------+----------------+
/// then `pairs` times:
/// +-----------------+-----------+-----------------+-------------+
/// | key len (u32 BE)| key bytes | val len (u32 BE)| value bytes |
/// +-----------------+-----------+-----------------+-------------+
/// ```
///
/// # Errors
/// [`ProtocolError::FrameTooLarge`] if a length or the pair count does not fit a u32.
pub fn encode_data<K: AsRef<[u8]>, V: AsRef<[u8]>>(
    seq: u32,
    pairs: &[(K, V)],
    out: &mut Vec<u8>,
) -> Result<(), ProtocolError> {
    let count = len_u32(pairs.len())?;
    out.extend_from_slice(&[Version::V1.into(), FrameType::Data.into()]);
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(&count.to_be_bytes());
    for (key, value) in pairs {
        for field in [key.as_ref(), value.as_ref()] {
            out.extend_from_slice(&len_u32(field.len())?.to_be_bytes());
            out.extend_from_slice(field);
        }
    }
    Ok(())
}

/// Appends a compressed frame around an already compressed zlib stream.
///
/// ```text
/// +-----+-----+--------------+-------------------------------+
/// | ver | 'C' | len (u32 BE) | len bytes zlib (RFC 1950)     |
/// +-----+-----+--------------+-------------------------------+
/// ```
///
/// # Errors
/// [`ProtocolError::FrameTooLarge`] if the payload length does not fit a u32.
pub fn encode_compressed(
    version: Version,
    zlib: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), ProtocolError> {
    let len = len_u32(zlib.len())?;
    out.extend_from_slice(&[version.into(), FrameType::Compressed.into()]);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(zlib);
    Ok(())
}

/// Encodes a frame value with [`encode_window`], [`encode_json`], ... (round-trip helper
/// for tests, fuzzers and tools; the hot paths call the specific encoders).
///
/// # Errors
/// As the specific encoders.
pub fn encode_frame(frame: &Frame, out: &mut Vec<u8>) -> Result<(), ProtocolError> {
    match frame {
        Frame::Window { version, count } => encode_window(*version, *count, out),
        Frame::Ack { version, seq } => encode_ack(*version, *seq, out),
        Frame::Json { seq, payload } => encode_json(*seq, payload, out)?,
        Frame::Data { seq, pairs } => encode_data(*seq, pairs, out)?,
        Frame::Compressed { version, payload } => encode_compressed(*version, payload, out)?,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_round_trip() {
        for v in [Version::V1, Version::V2] {
            assert_eq!(Version::try_from(u8::from(v)).unwrap(), v);
        }
        for t in [
            FrameType::Window,
            FrameType::Data,
            FrameType::Json,
            FrameType::Compressed,
            FrameType::Ack,
        ] {
            assert_eq!(FrameType::try_from(u8::from(t)).unwrap(), t);
        }
        assert_eq!(u8::from(FrameType::Json), 0x4a);
        assert!(matches!(
            Version::try_from(b'3'),
            Err(ProtocolError::UnknownVersion { byte: b'3' })
        ));
        assert!(matches!(
            FrameType::try_from(b'X'),
            Err(ProtocolError::UnknownFrameType { byte: b'X' })
        ));
    }

    #[test]
    fn window_and_ack_layout() {
        let mut out = Vec::new();
        encode_window(Version::V2, 2, &mut out);
        encode_ack(Version::V1, 0x0102_0304, &mut out);
        assert_eq!(out, [0x32, 0x57, 0, 0, 0, 2, 0x31, 0x41, 1, 2, 3, 4]);
    }
}
