//! The machine's limit: how fast one core compresses the corpus's J-frame windows with
//! the compressor skidder's Logstash output uses for a `compression_level` (its backend
//! and level mapping, `WireCompressor::for_level`). A shipper cannot beat this per core;
//! the report quotes skidder's events per CPU-second against it.

use std::time::{Duration, Instant};

use skidder::outputs::logstash::compress::WireCompressor;
use skidder_protocol::frame::encode_json;
use skidder_protocol::Compressor;

use crate::error::BenchError;

/// Events per window, as the scenarios use.
pub const WINDOW: usize = 2048;

/// Single-core compression rate at one level.
#[derive(Debug, Clone, PartialEq)]
pub struct Limit {
    /// Beats `compression_level`.
    pub level: u32,
    /// The backend and its level, e.g. "libdeflate level 1".
    pub backend: String,
    /// Uncompressed J-frame bytes per CPU-second.
    pub mb_per_s: f64,
    /// Events per CPU-second.
    pub events_per_s: f64,
    /// Compressed bytes per event (the W and C headers included).
    pub bytes_per_event: f64,
}

/// The compressor `WireCompressor::for_level` gives each `compression_level` 1..=9 in
/// this build, as "backend level N".
pub fn mapping() -> Vec<(u32, String)> {
    (1..=9)
        .map(|level| {
            let c = WireCompressor::for_level(level);
            (level, c.map_or_else(String::new, |c| format!("{c:?}")))
        })
        .collect()
}

/// CPU time of the calling thread: the harness shares the machine, and wall time
/// would count other processes' slices.
fn thread_cpu() -> Duration {
    // SAFETY: timespec is plain old data; clock_gettime writes it.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: valid clock id and out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Which of skidder's compressors to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// What output.logstash uses by default.
    Default,
    /// The portable flate2 fallback.
    Flate2,
}

/// What the measured loop does per window besides compressing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Work {
    /// Compression only: every window is framed once before the clock starts. The ceiling
    /// the report quotes.
    Compress,
    /// Each window's events are copied into J frames in a reused buffer, then compressed:
    /// the one copy per event the issue calls the floor, plus compression, as output.logstash
    /// does it, without its input, queue, TLS or socket.
    FrameAndCompress,
}

/// Compresses windows of the corpus for about `budget` of CPU time at Beats
/// `compression_level` `level`, with `backend` as output.logstash maps it.
///
/// # Errors
/// [`BenchError::Build`] if a line cannot be framed or the compressor fails.
pub fn measure(
    lines: &[String],
    level: u32,
    backend: Backend,
    budget: Duration,
) -> Result<Limit, BenchError> {
    measure_work(lines, level, backend, budget, Work::Compress)
}

/// As [`measure`], doing `work` per window.
///
/// # Errors
/// As [`measure`].
pub fn measure_work(
    lines: &[String],
    level: u32,
    backend: Backend,
    budget: Duration,
    work: Work,
) -> Result<Limit, BenchError> {
    let fail = |e: &dyn std::fmt::Display| BenchError::Build {
        what: format!("the compression baseline at level {level}"),
        detail: e.to_string(),
    };
    // Every window of the corpus, framed once; the measured loop compresses only.
    let mut windows = Vec::new();
    for chunk in lines.chunks(WINDOW) {
        let mut j = Vec::new();
        for (seq, line) in (1u32..).zip(chunk) {
            encode_json(seq, line.as_bytes(), &mut j).map_err(|e| fail(&e))?;
        }
        windows.push((chunk.len(), j));
    }
    let mut compressor = match backend {
        Backend::Default => WireCompressor::for_level(level),
        Backend::Flate2 => WireCompressor::flate2_for_level(level),
    };
    let name = compressor
        .as_ref()
        .map_or_else(|| "none (plain J frames)".to_string(), |c| format!("{c:?}"));
    let mut out = Vec::new();
    let mut framed = Vec::new();
    let (mut events, mut raw, mut wire) = (0u64, 0u64, 0u64);
    let start = thread_cpu();
    let mut spent = Duration::ZERO;
    let wall = Instant::now();
    while spent < budget && wall.elapsed() < budget * 20 {
        for ((n, j), chunk) in windows.iter().zip(lines.chunks(WINDOW)) {
            out.clear();
            let j = match work {
                Work::Compress => j,
                Work::FrameAndCompress => {
                    framed.clear();
                    for (seq, line) in (1u32..).zip(chunk) {
                        encode_json(seq, line.as_bytes(), &mut framed).map_err(|e| fail(&e))?;
                    }
                    &framed
                }
            };
            match compressor.as_mut() {
                None => out.extend_from_slice(j),
                Some(c) => c.compress_zlib(j, &mut out).map_err(|e| fail(&e))?,
            }
            events += *n as u64;
            raw += j.len() as u64;
            // W frame (6 bytes) plus, when compressed, the C header (6 bytes).
            wire += out.len() as u64 + 6 + if compressor.is_some() { 6 } else { 0 };
        }
        spent = thread_cpu() - start;
    }
    let secs = spent.as_secs_f64().max(1e-9);
    Ok(Limit {
        level,
        backend: name,
        mb_per_s: raw as f64 / secs / 1e6,
        events_per_s: events as f64 / secs,
        bytes_per_event: wire as f64 / events.max(1) as f64,
    })
}

/// [`Work::Compress`] and [`Work::FrameAndCompress`] at `level` with the default backend,
/// alternated for `rounds` rounds of `budget` each, so both see the same machine: the
/// medians (by events/s) of each.
///
/// # Errors
/// As [`measure`].
pub fn framing_pair(
    lines: &[String],
    level: u32,
    budget: Duration,
    rounds: usize,
) -> Result<(Limit, Limit), BenchError> {
    let (mut plain, mut framed) = (Vec::new(), Vec::new());
    for _ in 0..rounds.max(1) {
        plain.push(measure_work(
            lines,
            level,
            Backend::Default,
            budget,
            Work::Compress,
        )?);
        framed.push(measure_work(
            lines,
            level,
            Backend::Default,
            budget,
            Work::FrameAndCompress,
        )?);
    }
    let median = |mut v: Vec<Limit>| {
        v.sort_by(|a, b| a.events_per_s.total_cmp(&b.events_per_s));
        v.swap_remove(v.len() / 2)
    };
    Ok((median(plain), median(framed)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compression_shrinks_the_corpus_and_rates_are_positive() {
        let lines = crate::corpus::generate();
        let z0 = measure(
            &lines[..4096],
            0,
            Backend::Default,
            Duration::from_millis(20),
        )
        .unwrap();
        let z3 = measure(
            &lines[..4096],
            3,
            Backend::Default,
            Duration::from_millis(20),
        )
        .unwrap();
        let f3 = measure(
            &lines[..4096],
            3,
            Backend::Flate2,
            Duration::from_millis(20),
        )
        .unwrap();
        let (plain, framed) =
            framing_pair(&lines[..4096], 3, Duration::from_millis(10), 3).unwrap();
        // The same windows compressed: framing them in the loop changes the cost, not
        // the bytes.
        assert_eq!(plain.backend, z3.backend);
        assert_eq!(framed.backend, z3.backend);
        for l in [&plain, &framed] {
            assert!(
                (l.bytes_per_event - z3.bytes_per_event).abs() < 1e-9,
                "{} vs {} bytes/event",
                l.bytes_per_event,
                z3.bytes_per_event
            );
        }
        assert!(plain.events_per_s > 0.0);
        assert!(framed.events_per_s > 0.0);
        assert!(f3.backend.contains("flate2"), "{}", f3.backend);
        assert!(z3.events_per_s > 0.0 && z3.mb_per_s > 0.0);
        assert!(
            z3.bytes_per_event < z0.bytes_per_event / 2.0,
            "z3 {} vs z0 {} bytes/event",
            z3.bytes_per_event,
            z0.bytes_per_event
        );
    }
}
