//! Size limits checked before anything is buffered.

/// Limits a decoder enforces on what a peer may send.
///
/// Every length field is checked against these values as soon as the frame
/// header is readable, before any byte of the body is buffered, so a hostile or
/// broken peer cannot make the receiver reserve more memory than configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest number of events a `W` frame may announce.
    /// Default: 10 000 (go-lumber's default `MaxWindowSize`; libbeat sends at most
    /// `bulk_max_size`, default 2048).
    pub max_window_size: u32,
    /// Largest frame in bytes, header included, for `J`, `D` and `C` frames.
    /// Default: 64 MiB.
    pub max_frame_size: u32,
    /// Largest inflated content of one `C` frame, in bytes. Inflation stops at this
    /// limit (earlier when the content stops being valid frames, or a frame header
    /// claims more than is left). Default: 256 MiB.
    pub max_decompressed_size: usize,
}

impl Limits {
    /// Default for [`Limits::max_window_size`]: 10 000 events.
    pub const DEFAULT_MAX_WINDOW_SIZE: u32 = 10_000;
    /// Default for [`Limits::max_frame_size`]: 64 MiB.
    pub const DEFAULT_MAX_FRAME_SIZE: u32 = 64 * 1024 * 1024;
    /// Default for [`Limits::max_decompressed_size`]: 256 MiB.
    pub const DEFAULT_MAX_DECOMPRESSED_SIZE: usize = 256 * 1024 * 1024;
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_window_size: Self::DEFAULT_MAX_WINDOW_SIZE,
            max_frame_size: Self::DEFAULT_MAX_FRAME_SIZE,
            max_decompressed_size: Self::DEFAULT_MAX_DECOMPRESSED_SIZE,
        }
    }
}
