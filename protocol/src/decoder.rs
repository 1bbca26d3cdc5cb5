//! Incremental frame decoder.
//!
//! [`FrameDecoder::decode`] works like a tokio-util `Decoder`: it looks at the
//! bytes buffered so far and either removes one complete frame from the front of
//! the buffer (`Ok(Some(frame))`), leaves the buffer untouched because more bytes
//! are needed (`Ok(None)`), or reports that the stream is corrupt (`Err`, the
//! connection must be closed). It keeps no state between calls, so input may be
//! split at any byte boundary.
//!
//! Every length field is checked against [`Limits`] as soon as the header is
//! buffered, before any memory is reserved for the body.

use bytes::{Buf, Bytes, BytesMut};

use crate::error::ProtocolError;
use crate::frame::{
    Frame, FrameType, Version, ACK_FRAME_LEN, COMPRESSED_HEADER_LEN, DATA_HEADER_LEN,
    JSON_HEADER_LEN, WINDOW_FRAME_LEN,
};
use crate::limits::Limits;

/// Decodes frames from a byte buffer, enforcing [`Limits`].
#[derive(Debug, Clone, Default)]
pub struct FrameDecoder {
    limits: Limits,
}

fn be_u32(buf: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]])
}

/// What one decoding attempt found at the front of a buffer.
#[derive(Debug)]
pub(crate) enum Decoded {
    /// A complete frame, removed from the buffer.
    Frame(Frame),
    /// The buffer must hold at least this many bytes before the next attempt can make
    /// progress: a header's length, or the whole frame once its header was checked.
    Need(usize),
}

/// Asks the buffer for room for the rest of a frame whose size was already checked
/// against the limits, so a large frame arriving in many reads is not copied
/// again on every growth step.
fn wait_for(buf: &mut BytesMut, size: usize, reserve: bool) -> Result<Decoded, ProtocolError> {
    if reserve {
        buf.reserve(size.saturating_sub(buf.len()));
    }
    Ok(Decoded::Need(size))
}

impl FrameDecoder {
    /// A decoder enforcing `limits`.
    pub fn new(limits: Limits) -> Self {
        Self { limits }
    }

    /// The limits this decoder enforces.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    fn check_frame_size(&self, size: u64) -> Result<usize, ProtocolError> {
        let max = u64::from(self.limits.max_frame_size);
        if size > max {
            return Err(ProtocolError::FrameTooLarge { size, max });
        }
        // Fits because it is at most a u32.
        Ok(size as usize)
    }

    /// Removes the next complete frame from the front of `buf`.
    ///
    /// Returns `Ok(None)` when `buf` holds only part of a frame; call again once
    /// more bytes were appended. `J` payloads are checked to be non-empty and to
    /// start (after whitespace) with `{`; full JSON validation is the caller's job.
    ///
    /// # Errors
    /// Unknown version or frame type, a frame type that does not exist in its
    /// version (`'2' 'D'`, `'1' 'J'`), a limit exceeded, an empty JSON payload or one
    /// that is not an object, a `D` frame without pairs. After an error the stream
    /// cannot be resynchronised and must be closed.
    pub fn decode(&self, buf: &mut BytesMut) -> Result<Option<Frame>, ProtocolError> {
        match self.decode_step(buf, true)? {
            Decoded::Frame(frame) => Ok(Some(frame)),
            Decoded::Need(_) => Ok(None),
        }
    }

    /// Like [`decode`](Self::decode), but says how many bytes the buffer must hold
    /// before the next attempt can make progress. With `reserve` false nothing is
    /// reserved for an incomplete frame: the inflated content of a `C` frame grows
    /// only as far as its decoder asks, in steps its caller pays for.
    pub(crate) fn decode_step(
        &self,
        buf: &mut BytesMut,
        reserve: bool,
    ) -> Result<Decoded, ProtocolError> {
        let Some(&first) = buf.first() else {
            return Ok(Decoded::Need(2));
        };
        let version = Version::try_from(first)?;
        let Some(&second) = buf.get(1) else {
            return Ok(Decoded::Need(2));
        };
        let frame_type = FrameType::try_from(second)?;
        match frame_type {
            FrameType::Window | FrameType::Ack => {
                if buf.len() < WINDOW_FRAME_LEN.max(ACK_FRAME_LEN) {
                    return Ok(Decoded::Need(WINDOW_FRAME_LEN.max(ACK_FRAME_LEN)));
                }
                let value = be_u32(buf, 2);
                buf.advance(WINDOW_FRAME_LEN);
                if frame_type == FrameType::Ack {
                    return Ok(Decoded::Frame(Frame::Ack {
                        version,
                        seq: value,
                    }));
                }
                if value > self.limits.max_window_size {
                    return Err(ProtocolError::WindowTooLarge {
                        size: u64::from(value),
                        max: u64::from(self.limits.max_window_size),
                    });
                }
                Ok(Decoded::Frame(Frame::Window {
                    version,
                    count: value,
                }))
            }
            FrameType::Json => {
                if version != Version::V2 {
                    return Err(ProtocolError::FrameVersionMismatch {
                        frame_type,
                        version,
                    });
                }
                if buf.len() < JSON_HEADER_LEN {
                    return Ok(Decoded::Need(JSON_HEADER_LEN));
                }
                let seq = be_u32(buf, 2);
                let len = be_u32(buf, 6);
                if len == 0 {
                    return Err(ProtocolError::EmptyJson { seq });
                }
                let size = self.check_frame_size(JSON_HEADER_LEN as u64 + u64::from(len))?;
                if buf.len() < size {
                    // A payload that cannot be an object is refused once its first bytes
                    // are here, not after the whole frame was buffered (or inflated). Only
                    // a short prefix is looked at, so a frame arriving in many small reads
                    // is not rescanned from its start each time.
                    let prefix = &buf[JSON_HEADER_LEN..buf.len().min(JSON_HEADER_LEN + 64)];
                    if let Some(&b) = prefix.iter().find(|&&b| !is_json_space(b)) {
                        if b != b'{' {
                            return Err(ProtocolError::JsonNotObject {
                                seq,
                                first_byte: Some(b),
                            });
                        }
                    }
                    return wait_for(buf, size, reserve);
                }
                buf.advance(JSON_HEADER_LEN);
                let payload = buf.split_to(len as usize).freeze();
                let first_byte = payload.iter().copied().find(|&b| !is_json_space(b));
                if first_byte != Some(b'{') {
                    return Err(ProtocolError::JsonNotObject { seq, first_byte });
                }
                Ok(Decoded::Frame(Frame::Json { seq, payload }))
            }
            FrameType::Compressed => {
                if buf.len() < COMPRESSED_HEADER_LEN {
                    return Ok(Decoded::Need(COMPRESSED_HEADER_LEN));
                }
                let len = be_u32(buf, 2);
                let size = self.check_frame_size(COMPRESSED_HEADER_LEN as u64 + u64::from(len))?;
                if buf.len() < size {
                    return wait_for(buf, size, reserve);
                }
                buf.advance(COMPRESSED_HEADER_LEN);
                let payload = buf.split_to(len as usize).freeze();
                Ok(Decoded::Frame(Frame::Compressed { version, payload }))
            }
            FrameType::Data => {
                if version != Version::V1 {
                    return Err(ProtocolError::FrameVersionMismatch {
                        frame_type,
                        version,
                    });
                }
                self.decode_data(buf, reserve)
            }
        }
    }

    /// `D` frames have no total length field: walk the pair lengths, checking the
    /// running size against the limit, and only cut the frame once all of it is here.
    fn decode_data(&self, buf: &mut BytesMut, reserve: bool) -> Result<Decoded, ProtocolError> {
        if buf.len() < DATA_HEADER_LEN {
            return Ok(Decoded::Need(DATA_HEADER_LEN));
        }
        let seq = be_u32(buf, 2);
        let pairs = be_u32(buf, 6);
        if pairs == 0 {
            return Err(ProtocolError::EmptyDataFrame { seq });
        }
        // Each pair needs at least its two length fields.
        let min_size = DATA_HEADER_LEN as u64 + u64::from(pairs) * 8;
        self.check_frame_size(min_size)?;
        let mut end = DATA_HEADER_LEN as u64;
        for _ in 0..u64::from(pairs) * 2 {
            let at = end as usize;
            if buf.len() < at + 4 {
                return wait_for(buf, at + 4, reserve);
            }
            end += 4 + u64::from(be_u32(buf, at));
            let size = self.check_frame_size(end)?;
            if buf.len() < size {
                return wait_for(buf, size, reserve);
            }
        }
        let mut frame = buf.split_to(end as usize).freeze();
        frame.advance(DATA_HEADER_LEN);
        let mut fields = Vec::with_capacity(pairs as usize);
        for _ in 0..pairs {
            let key = take_field(&mut frame);
            let value = take_field(&mut frame);
            fields.push((key, value));
        }
        Ok(Decoded::Frame(Frame::Data { seq, pairs: fields }))
    }
}

/// JSON's insignificant whitespace (RFC 8259).
fn is_json_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// Cuts one length-prefixed field; the caller has already checked that it is complete.
fn take_field(frame: &mut Bytes) -> Bytes {
    let len = frame.get_u32() as usize;
    frame.split_to(len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::encode_frame;

    fn decoder() -> FrameDecoder {
        FrameDecoder::new(Limits {
            max_window_size: 100,
            max_frame_size: 1000,
            max_decompressed_size: 10_000,
        })
    }

    fn decode_all(bytes: &[u8]) -> Result<Vec<Frame>, ProtocolError> {
        let mut buf = BytesMut::from(bytes);
        let mut frames = Vec::new();
        while let Some(frame) = decoder().decode(&mut buf)? {
            frames.push(frame);
        }
        assert!(buf.is_empty(), "left over: {buf:?}");
        Ok(frames)
    }

    fn sample_frames() -> Vec<Frame> {
        vec![
            Frame::Window {
                version: Version::V2,
                count: 3,
            },
            Frame::Json {
                seq: 1,
                payload: Bytes::from_static(b" {\"a\":1}"),
            },
            Frame::Data {
                seq: 7,
                pairs: vec![
                    (Bytes::from_static(b"line"), Bytes::from_static(b"hi")),
                    (Bytes::from_static(b""), Bytes::from_static(b"")),
                ],
            },
            Frame::Compressed {
                version: Version::V1,
                payload: Bytes::from_static(b"xyz"),
            },
            Frame::Ack {
                version: Version::V2,
                seq: 0,
            },
        ]
    }

    #[test]
    fn every_split_point_yields_the_same_frames() {
        let frames = sample_frames();
        let mut wire = Vec::new();
        for f in &frames {
            encode_frame(f, &mut wire).unwrap();
        }
        for split in 0..=wire.len() {
            let mut buf = BytesMut::new();
            let mut got = Vec::new();
            for chunk in [&wire[..split], &wire[split..]] {
                buf.extend_from_slice(chunk);
                while let Some(f) = decoder().decode(&mut buf).unwrap() {
                    got.push(f);
                }
            }
            assert_eq!(got, frames, "split at {split}");
        }
        // One byte at a time.
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for b in &wire {
            buf.extend_from_slice(&[*b]);
            while let Some(f) = decoder().decode(&mut buf).unwrap() {
                got.push(f);
            }
        }
        assert_eq!(got, frames);
    }

    #[test]
    fn malformed_frames_are_refused_with_their_numbers() {
        let cases: &[(&str, &[u8], &str)] = &[
            (
                "bad version",
                b"3W\0\0\0\x01",
                "UnknownVersion { byte: 51 }",
            ),
            ("bad type", b"2X", "UnknownFrameType { byte: 88 }"),
            ("zero json", b"2J\0\0\0\x01\0\0\0\0", "EmptyJson { seq: 1 }"),
            (
                "json array",
                b"2J\0\0\0\x02\0\0\0\x02[]",
                "JsonNotObject { seq: 2, first_byte: Some(91) }",
            ),
            (
                "blank json",
                b"2J\0\0\0\x02\0\0\0\x01 ",
                "JsonNotObject { seq: 2, first_byte: None }",
            ),
            (
                "huge json",
                b"2J\0\0\0\x01\xff\xff\xff\xff",
                "FrameTooLarge { size: 4294967305, max: 1000 }",
            ),
            (
                "json just over",
                b"2J\0\0\0\x01\0\0\x03\xdf",
                "FrameTooLarge { size: 1001, max: 1000 }",
            ),
            (
                "huge compressed",
                b"2C\x7f\xff\xff\xff",
                "FrameTooLarge { size: 2147483653, max: 1000 }",
            ),
            (
                "window too large",
                b"2W\0\0\0\x65",
                "WindowTooLarge { size: 101, max: 100 }",
            ),
            (
                "v2 data",
                b"2D",
                "FrameVersionMismatch { frame_type: Data, version: V2 }",
            ),
            (
                "v1 json",
                b"1J",
                "FrameVersionMismatch { frame_type: Json, version: V1 }",
            ),
            (
                "no pairs",
                b"1D\0\0\0\x05\0\0\0\0",
                "EmptyDataFrame { seq: 5 }",
            ),
            (
                "too many pairs",
                b"1D\0\0\0\x05\0\0\x01\0",
                "FrameTooLarge { size: 2058, max: 1000 }",
            ),
            (
                "huge key",
                b"1D\0\0\0\x05\0\0\0\x01\xff\0\0\0",
                "FrameTooLarge { size: 4278190094, max: 1000 }",
            ),
        ];
        for (name, bytes, expected) in cases {
            let err = decode_all(bytes).expect_err(name);
            assert_eq!(format!("{err:?}"), *expected, "{name}");
        }
    }

    #[test]
    fn a_json_payload_that_is_no_object_is_refused_before_the_frame_is_complete() {
        // Header claims 900 bytes; the first payload bytes already show an array.
        let mut buf = BytesMut::from(&b"2J\0\0\0\x07\0\0\x03\x84 \n["[..]);
        let err = decoder().decode(&mut buf).unwrap_err();
        assert!(
            matches!(
                err,
                ProtocolError::JsonNotObject {
                    seq: 7,
                    first_byte: Some(b'[')
                }
            ),
            "{err:?}"
        );
        // Whitespace so far, or an object's start: wait for the rest.
        for partial in [
            &b"2J\0\0\0\x07\0\0\x03\x84  "[..],
            b"2J\0\0\0\x07\0\0\x03\x84 {\"a",
        ] {
            let mut buf = BytesMut::from(partial);
            assert_eq!(decoder().decode(&mut buf).unwrap(), None);
        }
    }

    #[test]
    fn limits_are_checked_before_the_body_arrives() {
        // Only the 10-byte header of a frame claiming 2 GiB: refused at once.
        let mut buf = BytesMut::from(&b"2J\0\0\0\x01\x80\0\0\0"[..]);
        assert!(decoder().decode(&mut buf).unwrap_err().is_limit());
        // Within limits, the decoder waits and reserves only what the frame needs.
        let mut buf = BytesMut::from(&b"2J\0\0\0\x01\0\0\x01\0"[..]);
        assert_eq!(decoder().decode(&mut buf).unwrap(), None);
        assert!(buf.capacity() >= 266 && buf.capacity() < 1000);
    }
}
