//! The deflate backend of the wire and how `compression_level` maps onto it.
//!
//! Beats' `compression_level` promises a wire size; how much CPU it costs is ours to
//! choose. Each level maps to the cheapest backend level whose output is **no larger** than
//! go-lumber's (libbeat's compressor, klauspost zlib) at that level. Measured on 2048-event
//! windows of ~460-byte libbeat-shaped events (the corpus of the since-retired
//! bench/make_corpus.py; go-lumber via `golumber client`), wire bytes per event and our
//! CPU per event. `cargo bench -p skidder-bench --bench logstash_compression` now runs on
//! the harness corpus, which deflates ~20% smaller: re-measure go-lumber and both backends
//! there before changing the mapping.
//!
//! | level | go-lumber B/ev | libdeflate (default) | B/ev | ns/ev | flate2 fallback | B/ev | ns/ev |
//! |---|---|---|---|---|---|---|---|
//! | 1 | 61.5 | 1 | 57.5 | 828 | 2 | 60.4 | 1034 |
//! | 2 | 59.8 | 1 | 57.5 | 828 | 3 | 56.7 | 1393 |
//! | 3 | 59.3 | 1 | 57.5 | 828 | 3 | 56.7 | 1393 |
//! | 4 | 58.3 | 1 | 57.5 | 828 | 3 | 56.7 | 1393 |
//! | 5 | 56.2 | 5 | 51.9 | 1198 | 4 | 54.5 | 1654 |
//! | 6 | 55.5 | 5 | 51.9 | 1198 | 4 | 54.5 | 1654 |
//! | 7 | 54.6 | 5 | 51.9 | 1198 | 5 | 53.3 | 1647 |
//! | 8 | 51.6 | 6 | 51.0 | 1450 | 7 | 51.1 | 2631 |
//! | 9 | 50.8 | 7 | 50.0 | 2511 | 8 | 50.8 | 3748 |
//!
//! Level 0 sends plain `J` frames, as Beats. libdeflate is the default (cargo feature
//! `libdeflate`, on by default); flate2 stays the portable fallback and does all
//! decompression.

use skidder_protocol::{Compressor, Flate2Compressor, ProtocolError};

#[cfg(feature = "libdeflate")]
use skidder_protocol::LibdeflateCompressor;

/// libdeflate level for each `compression_level` 1..=9 (index = level - 1).
#[cfg(feature = "libdeflate")]
pub const LIBDEFLATE_LEVELS: [u32; 9] = [1, 1, 1, 1, 5, 5, 5, 6, 7];

/// flate2 level for each `compression_level` 1..=9 (index = level - 1).
pub const FLATE2_LEVELS: [u32; 9] = [2, 3, 3, 3, 4, 4, 5, 7, 8];

/// The compressor a connection uses for `C` frames.
pub enum WireCompressor {
    /// flate2 (zlib-rs), the portable backend.
    Flate2(Flate2Compressor),
    /// libdeflate, the default.
    #[cfg(feature = "libdeflate")]
    Libdeflate(LibdeflateCompressor),
}

impl std::fmt::Debug for WireCompressor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WireCompressor::Flate2(c) => write!(f, "flate2 level {}", c.level()),
            #[cfg(feature = "libdeflate")]
            WireCompressor::Libdeflate(c) => write!(f, "libdeflate level {}", c.level()),
        }
    }
}

impl WireCompressor {
    /// The compressor for Beats' `compression_level` (0 = none: plain `J` frames), mapped
    /// as the module docs show.
    pub fn for_level(level: u32) -> Option<Self> {
        if level == 0 {
            return None;
        }
        let index = usize::try_from(level.clamp(1, 9) - 1).unwrap_or(0);
        #[cfg(feature = "libdeflate")]
        {
            Some(WireCompressor::Libdeflate(LibdeflateCompressor::new(
                LIBDEFLATE_LEVELS[index],
            )))
        }
        #[cfg(not(feature = "libdeflate"))]
        {
            Some(WireCompressor::Flate2(Flate2Compressor::new(
                FLATE2_LEVELS[index],
            )))
        }
    }

    /// The flate2 compressor for `compression_level`, whatever the default backend.
    pub fn flate2_for_level(level: u32) -> Option<Self> {
        let index = usize::try_from(level.clamp(1, 9) - 1).unwrap_or(0);
        (level > 0).then(|| WireCompressor::Flate2(Flate2Compressor::new(FLATE2_LEVELS[index])))
    }
}

impl Compressor for WireCompressor {
    fn compress_zlib(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), ProtocolError> {
        match self {
            WireCompressor::Flate2(c) => c.compress_zlib(input, out),
            #[cfg(feature = "libdeflate")]
            WireCompressor::Libdeflate(c) => c.compress_zlib(input, out),
        }
    }

    fn level(&self) -> u32 {
        match self {
            WireCompressor::Flate2(c) => c.level(),
            #[cfg(feature = "libdeflate")]
            WireCompressor::Libdeflate(c) => c.level(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use skidder_protocol::Inflater;

    #[test]
    fn every_level_round_trips_and_zero_means_plain_frames() {
        assert!(WireCompressor::for_level(0).is_none());
        assert!(WireCompressor::flate2_for_level(0).is_none());
        let input: Vec<u8> = (0..20_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        for level in 1..=9 {
            for mut c in [
                WireCompressor::for_level(level).unwrap(),
                WireCompressor::flate2_for_level(level).unwrap(),
            ] {
                let mut out = Vec::new();
                c.compress_zlib(&input, &mut out).unwrap();
                let mut back = Vec::new();
                Inflater::new()
                    .inflate(&out, &mut back, usize::MAX)
                    .unwrap();
                assert_eq!(back, input, "{c:?}");
            }
        }
    }
}
