//! The deflate backend of the wire and how `compression_level` maps onto it.
//!
//! Beats' `compression_level` promises a wire size; how much CPU it costs is ours to
//! choose. Three backends: ISA-L igzip (cargo feature `isal`, default; levels 0..=3),
//! libdeflate (feature `libdeflate`, default; 1..=12, used up to 9) and flate2 on zlib-rs
//! (always built in; 1..=9). All write the zlib stream (RFC 1950) a `C` frame carries.
//!
//! **The rule.** For each level, against go-lumber's C frames at the same level (libbeat's
//! compressor, klauspost zlib): take the cheapest backend level whose wire bytes are at
//! most go-lumber's; if one within 2 % above go-lumber's costs at least 20 % less CPU than
//! that, take it instead. Applied over all backends it gives [`AUTO`] and the default
//! build's mapping; applied to one backend it gives that backend's column, used when
//! [`BACKEND_ENV`] forces it (igzip cannot reach go-lumber's size above level 3: forced,
//! it uses its smallest, level 3).
//!
//! **Measured** by `cargo bench -p skidder-bench --bench logstash_compression` (it prints
//! this table and applies the rule) on the harness corpus (8192 ~455-byte libbeat-shaped
//! events, 2048-event windows), 2026-12-06 on a shared 2-core AMD EPYC (AVX2, no AVX-512;
//! igzip runs its AVX2 code), medians of 3 alternating rounds, each side's CPU by its own
//! thread clock. Wire bytes per event include the W and C headers; CPU is compression only.
//! An AVX-512 CPU (Intel) was not available: re-run the bench there before changing the
//! mapping for it.
//!
//! | level | go-lumber B/ev | ns/ev | default (chosen) | B/ev | vs go bytes | vs go CPU | igzip forced | libdeflate | flate2 |
//! |---|---|---|---|---|---|---|---|---|---|
//! | 1 | 50.50 | 1853 | igzip 1 | 47.63 | −5.7 % | 0.22× | 1 | 1 | 2 |
//! | 2 | 49.29 | 2283 | igzip 1 | 47.63 | −3.4 % | 0.18× | 1 | 1 | 2 |
//! | 3 | 47.53 | 2421 | igzip 2 | 47.21 | −0.7 % | 0.17× | 2 | 1 | 2 |
//! | 4 | 42.84 | 2927 | libdeflate 3 | 42.59 | −0.6 % | 0.67× | 3 | 3 | 4 |
//! | 5 | 41.63 | 3462 | libdeflate 5 | 40.20 | −3.4 % | 0.57× | 3 | 5 | 4 |
//! | 6 | 40.36 | 3184 | libdeflate 5 | 40.20 | −0.4 % | 0.62× | 3 | 5 | 5 |
//! | 7 | 40.47 | 4007 | libdeflate 5 | 40.20 | −0.7 % | 0.49× | 3 | 5 | 5 |
//! | 8 | 39.26 | 3856 | libdeflate 6 | 37.38 | −4.8 % | 0.63× | 3 | 6 | 5 |
//! | 9 | 35.22 | 9578 | libdeflate 7 | 35.12 | −0.3 % | 0.32× | 3 | 7 | 8 |
//!
//! Per backend level (B/ev, ns/ev): igzip 0: 59.3, 365; 1: 47.6, 410; 2: 47.2, 424;
//! 3: 45.8, 2256. libdeflate 1: 46.8, 1138; 3: 42.6, 1950; 5: 40.2, 1980; 6: 37.4, 2431;
//! 7: 35.1, 3078. flate2 2: 47.4, 1033; 4: 41.3, 2346; 5: 37.7, 2459; 8: 35.3, 3529.
//! No level needed the 2 % allowance: the chosen level is at or below go-lumber's bytes
//! everywhere (igzip 1 at level 3 is +0.2 % for 3 % less CPU than igzip 2, short of 20 %).
//!
//! Level 0 sends plain `J` frames, as Beats. flate2 does all decompression.
//!
//! **Whole windows, not streamed (measured, kept).** igzip compresses each window in one
//! stateless call after it is framed (~0.9 MiB at 2048 events, more than a 512 KiB L2).
//! Compressing it in cache-sized pieces while framing was measured on 2026-12-06 (same
//! shared 2-core AMD EPYC, level 2, 2048-event windows of the harness corpus, thread CPU,
//! medians of 5 alternating rounds) and loses both ways:
//! - igzip's stateful `isal_deflate` fed 16–128 KiB pieces gives byte-identical output but
//!   costs 7 % more per event than framing then compressing the whole window (575 against
//!   543 ns at 64 KiB; 563 at 128 KiB); on pre-framed input alone it is 17 % above the
//!   stateless call (542 against 459 ns), because it copies the start of each call's input
//!   and its 32 KiB history through its own buffer.
//! - Stateless calls per piece (`FULL_FLUSH`, raw deflate, our own zlib header and
//!   Adler-32) lose the history at each piece: 54.9 B per event at 64 KiB and 49.0 at
//!   256 KiB against 47.2, for 598 and 469 ns against 429.

use std::sync::OnceLock;

use skidder_protocol::{Compressor, Flate2Compressor, ProtocolError};

#[cfg(feature = "isal")]
use skidder_protocol::IsalCompressor;
#[cfg(feature = "libdeflate")]
use skidder_protocol::LibdeflateCompressor;

/// igzip level (0..=3) for each `compression_level` 1..=9 (index = level - 1).
pub const ISAL_LEVELS: [u32; 9] = [1, 1, 2, 3, 3, 3, 3, 3, 3];

/// libdeflate level for each `compression_level` 1..=9 (index = level - 1).
pub const LIBDEFLATE_LEVELS: [u32; 9] = [1, 1, 1, 3, 5, 5, 5, 6, 7];

/// flate2 level for each `compression_level` 1..=9 (index = level - 1).
pub const FLATE2_LEVELS: [u32; 9] = [2, 2, 2, 4, 4, 5, 5, 5, 8];

/// Which backend each `compression_level` 1..=9 uses when [`BACKEND_ENV`] forces none
/// (index = level - 1), chosen by the rule in the module docs.
pub const AUTO: [Backend; 9] = [
    Backend::Isal,
    Backend::Isal,
    Backend::Isal,
    Backend::Libdeflate,
    Backend::Libdeflate,
    Backend::Libdeflate,
    Backend::Libdeflate,
    Backend::Libdeflate,
    Backend::Libdeflate,
];

/// The environment variable that forces one backend for every level at run time (`isal`,
/// `libdeflate` or `flate2`); unset or empty means [`AUTO`]'s choice per level.
pub const BACKEND_ENV: &str = "SKIDDER_DEFLATE_BACKEND";

/// A deflate implementation for `C` frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Intel ISA-L igzip (cargo feature `isal`, default).
    Isal,
    /// libdeflate (cargo feature `libdeflate`, default).
    Libdeflate,
    /// flate2 on zlib-rs, always built in.
    Flate2,
}

/// Why [`BACKEND_ENV`] cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackendError {
    /// Not a backend name.
    #[error("{BACKEND_ENV}={value:?} is not a deflate backend: use isal, libdeflate or flate2 (or leave it unset)")]
    Unknown {
        /// The variable's value.
        value: String,
    },
    /// A backend this binary was built without.
    #[error("{BACKEND_ENV}={name}: this build has no {name} (cargo feature `{name}`); built in: {built}")]
    NotBuilt {
        /// The backend asked for.
        name: &'static str,
        /// The backends this build has, comma-separated.
        built: String,
    },
}

impl Backend {
    /// Every backend, in the order the default is chosen.
    pub const ALL: [Backend; 3] = [Backend::Isal, Backend::Libdeflate, Backend::Flate2];

    /// Its name, as [`BACKEND_ENV`] takes it.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Isal => "isal",
            Backend::Libdeflate => "libdeflate",
            Backend::Flate2 => "flate2",
        }
    }

    /// Whether this binary has it (its cargo feature was on).
    pub fn built_in(self) -> bool {
        match self {
            Backend::Isal => cfg!(feature = "isal"),
            Backend::Libdeflate => cfg!(feature = "libdeflate"),
            Backend::Flate2 => true,
        }
    }

    /// The first built in of ISA-L, libdeflate, flate2 (what [`WireCompressor::with_backend`]
    /// falls back to for a backend this build lacks).
    pub fn default_built() -> Backend {
        Self::ALL
            .into_iter()
            .find(|b| b.built_in())
            .unwrap_or(Backend::Flate2)
    }

    /// The backend named `value` (a [`BACKEND_ENV`] value); empty means
    /// [`default_built`](Self::default_built).
    ///
    /// # Errors
    /// [`BackendError::Unknown`] for another name, [`BackendError::NotBuilt`] for a
    /// backend this binary does not have.
    pub fn parse(value: &str) -> Result<Backend, BackendError> {
        let value = value.trim();
        if value.is_empty() {
            return Ok(Self::default_built());
        }
        let b = Self::ALL
            .into_iter()
            .find(|b| b.name().eq_ignore_ascii_case(value))
            .ok_or_else(|| BackendError::Unknown {
                value: value.to_string(),
            })?;
        if !b.built_in() {
            let built: Vec<&str> = Self::ALL
                .into_iter()
                .filter(|b| b.built_in())
                .map(Backend::name)
                .collect();
            return Err(BackendError::NotBuilt {
                name: b.name(),
                built: built.join(", "),
            });
        }
        Ok(b)
    }

    /// Checks [`BACKEND_ENV`]: the backend it names, or [`default_built`](Self::default_built)
    /// when it is unset.
    ///
    /// # Errors
    /// As [`parse`](Self::parse).
    pub fn from_env() -> Result<Backend, BackendError> {
        match std::env::var(BACKEND_ENV) {
            Ok(v) => Self::parse(&v),
            Err(std::env::VarError::NotPresent) => Ok(Self::default_built()),
            Err(std::env::VarError::NotUnicode(v)) => Err(BackendError::Unknown {
                value: v.to_string_lossy().into_owned(),
            }),
        }
    }

    /// The backend [`BACKEND_ENV`] forces for this process, read once; `None` when it is
    /// unset or empty (each `compression_level` then uses [`Backend::auto`]).
    /// `output.logstash` refuses to start on an invalid value (`build`), so the `None`
    /// taken here for one is never used by a running output.
    pub fn forced() -> Option<Backend> {
        static FORCED: OnceLock<Option<Backend>> = OnceLock::new();
        *FORCED.get_or_init(|| match std::env::var(BACKEND_ENV) {
            Ok(v) if !v.trim().is_empty() => Self::parse(&v).ok(),
            _ => None,
        })
    }

    /// The backend `compression_level` uses when none is forced: [`AUTO`]'s choice if
    /// built in, else the first built in of libdeflate, flate2, ISA-L (flate2 before
    /// igzip: it reaches go-lumber's size at every level, igzip only up to 3).
    pub fn auto(compression_level: u32) -> Backend {
        let index = usize::try_from(compression_level.clamp(1, 9) - 1).unwrap_or(0);
        [
            AUTO[index],
            Backend::Libdeflate,
            Backend::Flate2,
            Backend::Isal,
        ]
        .into_iter()
        .find(|b| b.built_in())
        .unwrap_or(Backend::Flate2)
    }

    /// This backend's own level for Beats' `compression_level` 1..=9 (clamped), as the
    /// module docs' table shows.
    pub fn level_for(self, compression_level: u32) -> u32 {
        let index = usize::try_from(compression_level.clamp(1, 9) - 1).unwrap_or(0);
        match self {
            Backend::Isal => ISAL_LEVELS[index],
            Backend::Libdeflate => LIBDEFLATE_LEVELS[index],
            Backend::Flate2 => FLATE2_LEVELS[index],
        }
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The compressor a connection uses for `C` frames.
pub enum WireCompressor {
    /// flate2 (zlib-rs), the portable backend.
    Flate2(Flate2Compressor),
    /// libdeflate, the first fallback.
    #[cfg(feature = "libdeflate")]
    Libdeflate(LibdeflateCompressor),
    /// ISA-L igzip, the default.
    #[cfg(feature = "isal")]
    Isal(IsalCompressor),
}

impl std::fmt::Debug for WireCompressor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} level {}", self.backend(), self.level())
    }
}

impl WireCompressor {
    /// The compressor for Beats' `compression_level` (0 = none: plain `J` frames): the
    /// backend [`BACKEND_ENV`] forces, else [`Backend::auto`]'s, at the level the module
    /// docs' table gives.
    /// The first one made in the process is logged at INFO (connections run after the
    /// log is set up; `build` runs before it).
    pub fn for_level(level: u32) -> Option<Self> {
        let backend = Backend::forced().unwrap_or_else(|| Backend::auto(level));
        let c = Self::with_backend(backend, level);
        if let Some(c) = &c {
            static LOGGED: std::sync::Once = std::sync::Once::new();
            LOGGED.call_once(|| {
                tracing::info!(
                    compression_level = level,
                    compressor = ?c,
                    "output.logstash compresses windows with {c:?}"
                );
            });
        }
        c
    }

    /// The compressor for `compression_level` with `backend`, or with the default one if
    /// this build does not have `backend`.
    pub fn with_backend(backend: Backend, level: u32) -> Option<Self> {
        if level == 0 {
            return None;
        }
        let backend = if backend.built_in() {
            backend
        } else {
            Backend::default_built()
        };
        let own = backend.level_for(level);
        Some(match backend {
            #[cfg(feature = "isal")]
            Backend::Isal => WireCompressor::Isal(IsalCompressor::new(own)),
            #[cfg(feature = "libdeflate")]
            Backend::Libdeflate => WireCompressor::Libdeflate(LibdeflateCompressor::new(own)),
            _ => WireCompressor::Flate2(Flate2Compressor::new(own)),
        })
    }

    /// The flate2 compressor for `compression_level`, whatever the default backend.
    pub fn flate2_for_level(level: u32) -> Option<Self> {
        Self::with_backend(Backend::Flate2, level)
    }

    /// Which backend compresses.
    pub fn backend(&self) -> Backend {
        match self {
            WireCompressor::Flate2(_) => Backend::Flate2,
            #[cfg(feature = "libdeflate")]
            WireCompressor::Libdeflate(_) => Backend::Libdeflate,
            #[cfg(feature = "isal")]
            WireCompressor::Isal(_) => Backend::Isal,
        }
    }
}

impl Compressor for WireCompressor {
    fn compress_zlib(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), ProtocolError> {
        match self {
            WireCompressor::Flate2(c) => c.compress_zlib(input, out),
            #[cfg(feature = "libdeflate")]
            WireCompressor::Libdeflate(c) => c.compress_zlib(input, out),
            #[cfg(feature = "isal")]
            WireCompressor::Isal(c) => c.compress_zlib(input, out),
        }
    }

    fn level(&self) -> u32 {
        match self {
            WireCompressor::Flate2(c) => c.level(),
            #[cfg(feature = "libdeflate")]
            WireCompressor::Libdeflate(c) => c.level(),
            #[cfg(feature = "isal")]
            WireCompressor::Isal(c) => c.level(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use skidder_protocol::Inflater;

    fn round_trip(c: &mut WireCompressor, input: &[u8]) {
        let mut out = b"prefix".to_vec();
        c.compress_zlib(input, &mut out).unwrap();
        assert_eq!(&out[..6], b"prefix", "{c:?} must append, not overwrite");
        let z = &out[6..];
        // RFC 1950: CM 8 (deflate), header check, no preset dictionary: what go-lumber's
        // and Logstash's zlib readers expect of a C frame.
        assert_eq!(z[0] & 0x0f, 8, "{c:?}: not a zlib stream");
        assert_eq!(u16::from_be_bytes([z[0], z[1]]) % 31, 0, "{c:?}: FCHECK");
        assert_eq!(z[1] & 0x20, 0, "{c:?}: FDICT set");
        let mut back = Vec::new();
        Inflater::new().inflate(z, &mut back, usize::MAX).unwrap();
        assert_eq!(back, input, "{c:?}");
        // flate2's own zlib reader, independent of our Inflater's checks.
        let mut d = flate2::read::ZlibDecoder::new(z);
        let mut again = Vec::new();
        std::io::Read::read_to_end(&mut d, &mut again).unwrap();
        assert_eq!(again, input, "{c:?}");
    }

    #[test]
    fn every_backend_and_level_round_trips_and_zero_means_plain_frames() {
        assert!(WireCompressor::for_level(0).is_none());
        assert!(WireCompressor::flate2_for_level(0).is_none());
        let input: Vec<u8> = (0..20_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        for backend in Backend::ALL.into_iter().filter(|b| b.built_in()) {
            for level in 1..=9 {
                let mut c = WireCompressor::with_backend(backend, level).unwrap();
                assert_eq!(c.backend(), backend);
                assert_eq!(c.level(), backend.level_for(level));
                // Twice: the second call reuses the compressor's state and buffers.
                round_trip(&mut c, &input);
                round_trip(&mut c, b"");
                round_trip(&mut c, &input[..1000]);
            }
        }
    }

    #[test]
    fn backend_names_parse_and_unknown_or_missing_ones_are_refused() {
        assert_eq!(Backend::parse("").unwrap(), Backend::default_built());
        assert_eq!(Backend::parse("flate2").unwrap(), Backend::Flate2);
        assert_eq!(Backend::parse(" FLATE2 ").unwrap(), Backend::Flate2);
        let err = Backend::parse("zopfli").unwrap_err();
        assert_eq!(
            err.to_string(),
            "SKIDDER_DEFLATE_BACKEND=\"zopfli\" is not a deflate backend: use isal, libdeflate or flate2 (or leave it unset)"
        );
        for b in Backend::ALL {
            match Backend::parse(b.name()) {
                Ok(got) => assert!(got == b && b.built_in()),
                Err(e) => {
                    assert!(!b.built_in());
                    assert!(matches!(e, BackendError::NotBuilt { .. }), "{e}");
                }
            }
        }
    }

    #[cfg(all(feature = "isal", feature = "libdeflate"))]
    #[test]
    fn default_build_uses_the_measured_choice_per_level() {
        assert_eq!(Backend::default_built(), Backend::Isal);
        for level in 1..=9u32 {
            let i = level as usize - 1;
            assert_eq!(Backend::auto(level), AUTO[i]);
            let c = WireCompressor::with_backend(AUTO[i], level).unwrap();
            assert_eq!(
                format!("{c:?}"),
                format!("{} level {}", AUTO[i], AUTO[i].level_for(level))
            );
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Whatever the bytes (random, or repetitive like JSON events), every built-in
        /// backend's C-frame payload inflates back to them.
        #[test]
        fn any_input_round_trips(
            data in proptest::collection::vec(any::<u8>(), 0..70_000),
            words in proptest::collection::vec("[a-z\\\"{}:,]{0,12}", 0..3000),
            level in 1u32..=9,
        ) {
            let text = words.concat().into_bytes();
            for backend in Backend::ALL.into_iter().filter(|b| b.built_in()) {
                let mut c = WireCompressor::with_backend(backend, level).unwrap();
                round_trip(&mut c, &data);
                round_trip(&mut c, &text);
            }
        }
    }
}
