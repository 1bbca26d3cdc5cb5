//! zlib compression for `C` frames.
//!
//! Lumberjack compresses with a **zlib stream** (RFC 1950: 2-byte header, deflate
//! data, Adler-32 trailer), not raw deflate and not gzip. Compression sits behind
//! the [`Compressor`] trait so a faster deflate implementation can be plugged in;
//! [`Flate2Compressor`] reuses its zlib state and output buffer across windows.
//! [`Inflater`] inflates either a whole stream with a hard cap on the output, or a
//! step at a time ([`Inflater::inflate_into`]) so the receiver can check each step's
//! frames before inflating more.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use crate::error::ProtocolError;

/// A zlib (RFC 1950) compressor used to build `C` frames.
pub trait Compressor {
    /// Compresses all of `input` as one complete zlib stream and appends it to `out`.
    ///
    /// # Errors
    /// [`ProtocolError::Deflate`] (or an implementation's own variant) if the
    /// backend fails; `out` may then hold a partial stream and must be discarded.
    fn compress_zlib(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), ProtocolError>;

    /// The compression level, 1 (fastest) to 9 (smallest).
    fn level(&self) -> u32;
}

/// [`Compressor`] backed by flate2, keeping its zlib state between windows
/// (`Compress::reset`) so steady-state encoding allocates nothing.
pub struct Flate2Compressor {
    compress: Compress,
    level: u32,
}

impl Flate2Compressor {
    /// A compressor at `level` (clamped to 1..=9; level 0 means "no `C` frame" in
    /// Lumberjack and is handled by the client session, not here).
    pub fn new(level: u32) -> Self {
        let level = level.clamp(1, 9);
        Self {
            compress: Compress::new(Compression::new(level), true),
            level,
        }
    }
}

impl std::fmt::Debug for Flate2Compressor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flate2Compressor")
            .field("level", &self.level)
            .finish()
    }
}

/// Upper bound of the deflate output for `len` input bytes (zlib's `compressBound`).
pub fn zlib_bound(len: usize) -> usize {
    len + (len >> 12) + (len >> 14) + (len >> 25) + 13 + 6
}

impl Compressor for Flate2Compressor {
    fn compress_zlib(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), ProtocolError> {
        self.compress.reset();
        out.reserve(zlib_bound(input.len()));
        let start_in = self.compress.total_in();
        loop {
            let consumed = (self.compress.total_in() - start_in) as usize;
            let status = self
                .compress
                .compress_vec(&input[consumed..], out, FlushCompress::Finish)
                .map_err(|err| ProtocolError::Deflate {
                    backend: "flate2",
                    source: Box::new(err),
                })?;
            match status {
                Status::StreamEnd => return Ok(()),
                // The bound above should make this unreachable; grow and carry on
                // rather than trusting it.
                Status::Ok | Status::BufError => out.reserve(out.capacity().max(64)),
            }
        }
    }

    fn level(&self) -> u32 {
        self.level
    }
}

/// [`Compressor`] backed by libdeflate (one-shot, whole-buffer compression, usually
/// much faster than zlib at the same level). Enabled by the `libdeflate` feature.
#[cfg(feature = "libdeflate")]
pub struct LibdeflateCompressor {
    compressor: libdeflater::Compressor,
    level: u32,
    /// Where libdeflate writes (sized to the largest bound seen, reused).
    staging: Vec<u8>,
}

#[cfg(feature = "libdeflate")]
impl LibdeflateCompressor {
    /// A compressor at `level` (clamped to 1..=9 so levels mean what they mean for
    /// zlib; libdeflate itself goes up to 12).
    pub fn new(level: u32) -> Self {
        let level = level.clamp(1, 9);
        // Clamped to 1..=9, always a valid libdeflate level.
        let lvl = libdeflater::CompressionLvl::new(level as i32)
            .unwrap_or_else(|_| libdeflater::CompressionLvl::default());
        Self {
            compressor: libdeflater::Compressor::new(lvl),
            level,
            staging: Vec::new(),
        }
    }
}

#[cfg(feature = "libdeflate")]
impl std::fmt::Debug for LibdeflateCompressor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LibdeflateCompressor")
            .field("level", &self.level)
            .finish()
    }
}

#[cfg(feature = "libdeflate")]
impl Compressor for LibdeflateCompressor {
    fn compress_zlib(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), ProtocolError> {
        // libdeflate writes into an initialised slice of the worst-case size. Growing the
        // caller's buffer to that bound zero-filled it on every window (as many bytes as
        // the input); the staging buffer is zeroed only when it grows, and only the
        // compressed bytes (a tenth of the input) are copied out.
        let bound = self.compressor.zlib_compress_bound(input.len());
        if self.staging.len() < bound {
            // A fresh zeroed allocation, not `resize`: the allocator hands a buffer this
            // large out as untouched zero pages (calloc over mmap), so only the pages the
            // compressed bytes reach become resident, ~a tenth of the bound. `resize` wrote
            // every byte: ~0.9 MiB resident per connection for 2048-event windows.
            self.staging = vec![0; bound];
        }
        match self
            .compressor
            .zlib_compress(input, &mut self.staging[..bound])
        {
            Ok(written) => {
                out.extend_from_slice(&self.staging[..written]);
                Ok(())
            }
            Err(err) => Err(ProtocolError::Deflate {
                backend: "libdeflate",
                source: Box::new(err),
            }),
        }
    }

    fn level(&self) -> u32 {
        self.level
    }
}

/// Streaming zlib inflater with an output cap, reused across `C` frames.
pub struct Inflater {
    decompress: Decompress,
}

impl Default for Inflater {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Inflater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inflater").finish_non_exhaustive()
    }
}

/// Output grows in steps of at most this much, so memory tracks what was really
/// inflated rather than what a header claims.
pub(crate) const INFLATE_STEP: usize = 64 * 1024;

/// What one [`Inflater::inflate_into`] call did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InflateStep {
    /// Bytes written at the start of the output slice.
    pub written: usize,
    /// The zlib stream ended (its Adler-32 trailer checked) and no byte follows it.
    pub finished: bool,
}

impl Inflater {
    /// A fresh inflater expecting zlib streams.
    pub fn new() -> Self {
        Self {
            decompress: Decompress::new(true),
        }
    }

    /// Starts a new zlib stream: the next [`inflate_into`](Self::inflate_into) reads
    /// from its first byte.
    pub fn begin(&mut self) {
        self.decompress.reset(true);
    }

    /// Inflates more of the zlib stream `input` into `out`, as far as `out` has room.
    /// `input` is the whole stream, the same slice on every call since
    /// [`begin`](Self::begin); the inflater remembers how far it has read. A caller
    /// that wants to look at the content before inflating more (to stop a bomb at its
    /// first invalid byte) calls this with a small `out` and again as needed.
    ///
    /// # Errors
    /// [`ProtocolError::Inflate`] for a corrupt stream,
    /// [`ProtocolError::TruncatedZlib`] if `input` ends before the stream does,
    /// [`ProtocolError::TrailingZlibBytes`] if bytes follow the end of the stream.
    pub fn inflate_into(
        &mut self,
        input: &[u8],
        out: &mut [u8],
    ) -> Result<InflateStep, ProtocolError> {
        let in_before = self.decompress.total_in() as usize;
        let out_before = self.decompress.total_out();
        let result = self.decompress.decompress(
            input.get(in_before..).unwrap_or_default(),
            out,
            FlushDecompress::None,
        );
        let written = (self.decompress.total_out() - out_before) as usize;
        let status = result.map_err(ProtocolError::Inflate)?;
        let in_after = self.decompress.total_in() as usize;
        match status {
            Status::StreamEnd => {
                let rest = input.len().saturating_sub(in_after);
                if rest > 0 {
                    return Err(ProtocolError::TrailingZlibBytes { count: rest });
                }
                Ok(InflateStep {
                    written,
                    finished: true,
                })
            }
            Status::Ok | Status::BufError => {
                // No progress with room to write means the input ran out before the
                // end-of-stream marker.
                if written == 0 && in_after == in_before && !out.is_empty() {
                    return Err(ProtocolError::TruncatedZlib {
                        compressed: input.len(),
                        inflated: self.decompress.total_out() as usize,
                    });
                }
                Ok(InflateStep {
                    written,
                    finished: false,
                })
            }
        }
    }

    /// Inflates the complete zlib stream `input`, appending the content to `out`,
    /// and stops with an error as soon as more than `max` bytes would be produced.
    ///
    /// # Errors
    /// [`ProtocolError::DecompressedTooLarge`] past `max` bytes, and the errors of
    /// [`inflate_into`](Self::inflate_into).
    pub fn inflate(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
        max: usize,
    ) -> Result<(), ProtocolError> {
        self.begin();
        let start_len = out.len();
        loop {
            let produced = out.len() - start_len;
            // Room for one byte past the limit, so a stream that ends exactly at the
            // limit is told apart from one that goes beyond it.
            let allowed = max.saturating_sub(produced).saturating_add(1);
            let step = allowed.min(INFLATE_STEP);
            let at = out.len();
            out.resize(at + step, 0);
            let result = self.inflate_into(input, &mut out[at..]);
            let written = result.as_ref().map_or(0, |s| s.written);
            out.truncate(at + written);
            let step = result?;
            if out.len() - start_len > max {
                return Err(ProtocolError::DecompressedTooLarge { max: max as u64 });
            }
            if step.finished {
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zlib(level: u32, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        Flate2Compressor::new(level)
            .compress_zlib(data, &mut out)
            .unwrap();
        out
    }

    #[test]
    fn round_trip_and_reuse() {
        let mut c = Flate2Compressor::new(3);
        let mut inflater = Inflater::new();
        for data in [&b""[..], b"hello hello hello", &[7u8; 100_000]] {
            let mut z = Vec::new();
            c.compress_zlib(data, &mut z).unwrap();
            assert_eq!(z[0], 0x78, "zlib header, not raw deflate or gzip");
            let mut back = Vec::new();
            inflater.inflate(&z, &mut back, data.len()).unwrap();
            assert_eq!(back, data);
        }
    }

    #[cfg(feature = "libdeflate")]
    #[test]
    fn libdeflate_streams_are_zlib() {
        let mut c = LibdeflateCompressor::new(3);
        let data = b"hello hello hello hello".repeat(100);
        let mut z = Vec::new();
        for _ in 0..2 {
            z.clear();
            c.compress_zlib(&data, &mut z).unwrap();
            let mut back = Vec::new();
            Inflater::new().inflate(&z, &mut back, data.len()).unwrap();
            assert_eq!(back, data);
        }
    }

    #[test]
    fn bomb_stops_at_the_limit() {
        let bomb = zlib(9, &vec![0u8; 8 * 1024 * 1024]);
        assert!(bomb.len() < 16 * 1024);
        let mut out = Vec::new();
        let err = Inflater::new()
            .inflate(&bomb, &mut out, 1024 * 1024)
            .unwrap_err();
        assert!(matches!(
            err,
            ProtocolError::DecompressedTooLarge { max: 1048576 }
        ));
        assert!(out.len() <= 1024 * 1024 + 1);
        assert!(
            out.capacity() <= 2 * 1024 * 1024,
            "capacity {}",
            out.capacity()
        );
    }

    #[test]
    fn exact_limit_is_accepted() {
        let z = zlib(6, &[1u8; 5000]);
        let mut out = Vec::new();
        Inflater::new().inflate(&z, &mut out, 5000).unwrap();
        assert_eq!(out.len(), 5000);
        let mut out = Vec::new();
        assert!(Inflater::new().inflate(&z, &mut out, 4999).is_err());
    }

    #[test]
    fn truncated_trailing_and_corrupt_streams() {
        let z = zlib(6, b"some content some content");
        let mut inflater = Inflater::new();
        for cut in 0..z.len() {
            let err = inflater
                .inflate(&z[..cut], &mut Vec::new(), 1000)
                .unwrap_err();
            assert!(
                matches!(
                    err,
                    ProtocolError::TruncatedZlib { .. } | ProtocolError::Inflate(_)
                ),
                "cut {cut}: {err:?}"
            );
        }
        let mut long = z.clone();
        long.extend_from_slice(b"xx");
        assert!(matches!(
            inflater.inflate(&long, &mut Vec::new(), 1000),
            Err(ProtocolError::TrailingZlibBytes { count: 2 })
        ));
        // Raw deflate and gzip are not zlib.
        assert!(inflater.inflate(&z[2..], &mut Vec::new(), 1000).is_err());
        assert!(inflater
            .inflate(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0], &mut Vec::new(), 1000)
            .is_err());
    }
}
