//! The deflate backend of the wire and how `compression_level` maps onto it.
//!
//! See the module docs of [`super`] for the measurements behind the choice.

use skidder_protocol::{Compressor, Flate2Compressor, ProtocolError};

/// The compressor a connection uses for `C` frames.
pub enum WireCompressor {
    /// flate2 (zlib-rs), the portable backend.
    Flate2(Flate2Compressor),
}

impl std::fmt::Debug for WireCompressor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WireCompressor::Flate2(c) => write!(f, "flate2 level {}", c.level()),
        }
    }
}

impl WireCompressor {
    /// The compressor for `compression_level` (0 = none: plain `J` frames).
    pub fn for_level(level: u32) -> Option<Self> {
        if level == 0 {
            return None;
        }
        Some(WireCompressor::Flate2(Flate2Compressor::new(level.min(9))))
    }
}

impl Compressor for WireCompressor {
    fn compress_zlib(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), ProtocolError> {
        match self {
            WireCompressor::Flate2(c) => c.compress_zlib(input, out),
        }
    }

    fn level(&self) -> u32 {
        match self {
            WireCompressor::Flate2(c) => c.level(),
        }
    }
}
