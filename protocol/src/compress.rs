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

    /// The backend's own compression level: zlib's 1 (fastest) to 9 (smallest), or
    /// igzip's 0 (fastest) to 3 (smallest).
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

/// [`Compressor`] backed by Intel ISA-L's igzip through `isal-sys`: stateless one-shot
/// deflate of the whole window (`isal_deflate_stateless`) with one level buffer allocated
/// once per compressor and reused. igzip picks its SSE/AVX2/AVX-512 code at run time.
/// Its levels are 0..=3 (0 = fastest, hash only; 3 = smallest); they are not zlib's
/// levels, so output.logstash maps `compression_level` onto them by measurement.
/// Enabled by the `isal` feature.
#[cfg(feature = "isal")]
pub struct IsalCompressor {
    /// igzip's stream: ~80 KiB of hash state, so boxed. Its pointers are set just
    /// before each call and cleared right after, so none outlives the buffers it names.
    stream: Box<isal_sys::igzip_lib::isal_zstream>,
    /// The level buffer igzip levels 1..=3 need (empty for level 0).
    level_buf: Vec<u8>,
    level: u32,
}

// SAFETY: the raw pointers inside `isal_zstream` are null between calls (see
// `compress_zlib`) except `hufftables`, which points at igzip's static default table; the
// stream is owned, and `&mut self` keeps calls exclusive, so moving it to another thread is
// sound.
#[cfg(feature = "isal")]
unsafe impl Send for IsalCompressor {}

/// An igzip return code other than `COMP_OK`.
#[cfg(feature = "isal")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IsalError {
    /// igzip's return code.
    pub code: i32,
}

#[cfg(feature = "isal")]
impl std::fmt::Display for IsalError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use isal_sys::igzip_lib as z;
        let what = match self.code {
            z::STATELESS_OVERFLOW => "output buffer too small (STATELESS_OVERFLOW)",
            z::INVALID_FLUSH => "invalid flush (INVALID_FLUSH)",
            z::INVALID_PARAM => "invalid parameter (INVALID_PARAM)",
            z::ISAL_INVALID_LEVEL => "invalid level (ISAL_INVALID_LEVEL)",
            z::ISAL_INVALID_LEVEL_BUF => "level buffer too small (ISAL_INVALID_LEVEL_BUF)",
            z::ISAL_INVALID_STATE => "invalid state (ISAL_INVALID_STATE)",
            _ => "unknown error",
        };
        write!(f, "igzip returned {}: {what}", self.code)
    }
}

#[cfg(feature = "isal")]
impl std::error::Error for IsalError {}

#[cfg(feature = "isal")]
impl IsalCompressor {
    /// A compressor at igzip level `level` (clamped to 0..=3).
    pub fn new(level: u32) -> Self {
        use isal_sys::igzip_lib as z;
        let level = level.min(z::ISAL_DEF_MAX_LEVEL);
        let buf_size = match level {
            0 => 0,
            1 => z::ISAL_DEF_LVL1_DEFAULT,
            2 => z::ISAL_DEF_LVL2_DEFAULT,
            _ => z::ISAL_DEF_LVL3_DEFAULT,
        };
        // Allocated zeroed in place: built on the stack first, ~80 KiB would be copied.
        let layout = std::alloc::Layout::new::<z::isal_zstream>();
        // SAFETY: the layout is isal_zstream's (not zero-sized); isal_zstream is
        // integers, raw pointers and arrays of them, so all-zero is a valid value (null
        // pointers), and isal_deflate_stateless_init sets it up before every use. The
        // allocation is the global allocator's with this layout, as Box::from_raw needs.
        let stream = unsafe {
            let ptr = std::alloc::alloc_zeroed(layout).cast::<z::isal_zstream>();
            if ptr.is_null() {
                std::alloc::handle_alloc_error(layout);
            }
            Box::from_raw(ptr)
        };
        Self {
            stream,
            level_buf: vec![0; buf_size as usize],
            level,
        }
    }
}

#[cfg(feature = "isal")]
impl std::fmt::Debug for IsalCompressor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IsalCompressor")
            .field("level", &self.level)
            .finish()
    }
}

#[cfg(feature = "isal")]
impl Compressor for IsalCompressor {
    fn compress_zlib(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), ProtocolError> {
        use isal_sys::igzip_lib as z;
        let fail = |code: i32| ProtocolError::Deflate {
            backend: "isal",
            source: Box::new(IsalError { code }),
        };
        let avail_in = u32::try_from(input.len()).map_err(|_| fail(z::INVALID_PARAM))?;
        // igzip writes straight into `out`'s spare capacity: stateless output never
        // exceeds the input plus stored-block headers and the zlib wrapper, which zlib's
        // compressBound covers.
        out.reserve(zlib_bound(input.len()));
        let spare = out.capacity() - out.len();
        let avail_out = u32::try_from(spare).unwrap_or(u32::MAX);
        let s = &mut *self.stream;
        // SAFETY: `s` is a valid, exclusively borrowed stream. next_in/avail_in describe
        // `input` (igzip only reads it; the *mut is the C signature), next_out/avail_out
        // the spare capacity of `out` (writable, maybe uninitialised: igzip only writes
        // it), level_buf/level_buf_size our own buffer. All live for the call; the
        // pointers are cleared before returning.
        let (rc, written) = unsafe {
            z::isal_deflate_stateless_init(s);
            s.level = self.level;
            s.level_buf = if self.level_buf.is_empty() {
                std::ptr::null_mut()
            } else {
                self.level_buf.as_mut_ptr()
            };
            s.level_buf_size = self.level_buf.len() as u32;
            s.gzip_flag = z::IGZIP_ZLIB as u16;
            s.end_of_stream = 1;
            s.flush = z::NO_FLUSH as u16;
            s.next_in = input.as_ptr().cast_mut();
            s.avail_in = avail_in;
            s.next_out = out.as_mut_ptr().add(out.len());
            s.avail_out = avail_out;
            let rc = z::isal_deflate_stateless(s);
            let written = (avail_out - s.avail_out) as usize;
            s.next_in = std::ptr::null_mut();
            s.next_out = std::ptr::null_mut();
            s.level_buf = std::ptr::null_mut();
            (rc, written)
        };
        if rc != z::COMP_OK as i32 {
            return Err(fail(rc));
        }
        // SAFETY: igzip initialised exactly `written` bytes after the old length, within
        // the capacity reserved above.
        unsafe { out.set_len(out.len() + written) };
        Ok(())
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

    #[cfg(feature = "isal")]
    #[test]
    fn isal_streams_are_zlib_at_every_level_and_append() {
        let data = b"{\"message\":\"hello hello hello\",\"n\":1}".repeat(3000);
        for level in 0..=3 {
            let mut c = IsalCompressor::new(level);
            assert_eq!(c.level(), level);
            // Reused: the second window must not see the first's state.
            for input in [&data[..], b"", &data[..777], &data[..]] {
                let mut z = b"head".to_vec();
                c.compress_zlib(input, &mut z).unwrap();
                assert_eq!(&z[..4], b"head");
                assert_eq!(z[4] & 0x0f, 8, "level {level}: zlib CM 8");
                assert_eq!(u16::from_be_bytes([z[4], z[5]]) % 31, 0, "FCHECK");
                let mut back = Vec::new();
                Inflater::new()
                    .inflate(&z[4..], &mut back, input.len())
                    .unwrap();
                assert_eq!(back, input, "level {level}");
            }
        }
        assert_eq!(
            IsalCompressor::new(9).level(),
            3,
            "clamped to igzip's range"
        );
        // Incompressible input still fits the reserved bound (stored blocks).
        let noise: Vec<u8> = (0..300_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let mut z = Vec::new();
        IsalCompressor::new(1)
            .compress_zlib(&noise, &mut z)
            .unwrap();
        let mut back = Vec::new();
        Inflater::new().inflate(&z, &mut back, noise.len()).unwrap();
        assert_eq!(back, noise);
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
