//! How output.logstash's `compression_level` mapping is chosen: wire size and single-core
//! CPU of every backend level (ISA-L igzip 0..=3, libdeflate 1..=9, flate2 1..=9) against
//! go-lumber's C frames (klauspost zlib, `golumber deflate`) at each level 1..=9, on the
//! windows of the harness corpus (`skidder_bench::corpus`: 8192 ~455-byte libbeat-shaped
//! events, 2048-event windows, the same bytes every `skidder-bench` scenario ships).
//!
//! `cargo bench -p skidder-bench --bench logstash_compression` prints the machine (CPU
//! model and SIMD features), every measurement, and per level the choice the rule of
//! `src/outputs/logstash/compress.rs` makes: the cheapest backend level whose wire bytes
//! are at most 2 % above go-lumber's where that costs at least 20 % less CPU than the
//! cheapest one at or below go-lumber's bytes, else that one. go-lumber is rebuilt with
//! `bash .ci/peers/build-golumber.sh` when missing. Each side's CPU is its own thread's
//! CPU clock; the candidates and go-lumber are measured in alternating rounds and the
//! medians used, as the machine is shared.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use skidder::outputs::logstash::compress::{Backend, WireCompressor};
use skidder_protocol::frame::encode_json;
use skidder_protocol::{Compressor, Flate2Compressor};

#[cfg(feature = "isal")]
use skidder_protocol::IsalCompressor;
#[cfg(feature = "libdeflate")]
use skidder_protocol::LibdeflateCompressor;

const WINDOW: usize = 2048;

fn thread_cpu() -> Duration {
    // SAFETY: timespec is plain old data; clock_gettime writes it.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: valid clock id and out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// One backend level: name, its own level, a fresh compressor.
struct Candidate {
    backend: &'static str,
    level: u32,
    make: Box<dyn Fn() -> Box<dyn Compressor>>,
}

fn candidates() -> Vec<Candidate> {
    let mut v: Vec<Candidate> = Vec::new();
    #[cfg(feature = "isal")]
    for level in 0..=3 {
        v.push(Candidate {
            backend: "isal",
            level,
            make: Box::new(move || Box::new(IsalCompressor::new(level))),
        });
    }
    #[cfg(feature = "libdeflate")]
    for level in 1..=9 {
        v.push(Candidate {
            backend: "libdeflate",
            level,
            make: Box::new(move || Box::new(LibdeflateCompressor::new(level))),
        });
    }
    for level in 1..=9 {
        v.push(Candidate {
            backend: "flate2",
            level,
            make: Box::new(move || Box::new(Flate2Compressor::new(level))),
        });
    }
    v
}

/// (wire bytes per event incl. W and C headers, CPU ns per event) over all windows,
/// compressing for about `budget` of this thread's CPU.
fn measure(c: &mut dyn Compressor, windows: &[(usize, Vec<u8>)], budget: Duration) -> (f64, f64) {
    let mut out = Vec::new();
    let (mut events, mut wire) = (0u64, 0u64);
    let start = thread_cpu();
    let mut spent = Duration::ZERO;
    while spent < budget || events == 0 {
        for (n, j) in windows {
            out.clear();
            c.compress_zlib(j, &mut out).expect("compresses");
            events += *n as u64;
            wire += out.len() as u64 + 12;
        }
        spent = thread_cpu() - start;
    }
    (
        wire as f64 / events as f64,
        spent.as_nanos() as f64 / events as f64,
    )
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// go-lumber's (bytes, ns) per event for levels 1..=9, or why not.
fn golumber(corpus: &std::path::Path, budget: Duration) -> Result<Vec<(f64, f64)>, String> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let bin = root.join("tests/peers/golumber/bin/golumber");
    if !bin.exists() {
        let _ = Command::new("bash")
            .arg(root.join(".ci/peers/build-golumber.sh"))
            .status();
    }
    let out = Command::new(&bin)
        .arg("deflate")
        .arg("--file")
        .arg(corpus)
        .arg("--budget")
        .arg(format!("{}ms", budget.as_millis()))
        .output()
        .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let mut rows = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let v: serde_json::Value = serde_json::from_str(line).map_err(|e| e.to_string())?;
        rows.push((
            v["wire_bytes_per_event"].as_f64().unwrap_or(f64::NAN),
            v["cpu_ns_per_event"].as_f64().unwrap_or(f64::NAN),
        ));
    }
    if rows.len() != 9 {
        return Err(format!("expected 9 levels, got {}", rows.len()));
    }
    Ok(rows)
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let lines = skidder_bench::corpus::generate();
    let mut windows = Vec::new();
    for chunk in lines.chunks(WINDOW) {
        let mut j = Vec::new();
        for (seq, line) in (1u32..).zip(chunk) {
            encode_json(seq, line.as_bytes(), &mut j).expect("frames");
        }
        windows.push((chunk.len(), j));
    }
    let cands = candidates();
    if !bench {
        // `cargo test --all-targets` runs this without --bench: check that every backend
        // level encodes, measure nothing.
        for c in &cands {
            measure(&mut *(c.make)(), &windows[..1], Duration::ZERO);
        }
        return;
    }
    println!("{}", skidder_bench::machine::describe());
    let dir = std::env::temp_dir().join(format!("skidder-compression-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let corpus = dir.join("corpus.ndjson");
    skidder_bench::corpus::write(&corpus).expect("corpus written");
    let rounds = 3;
    let budget = Duration::from_millis(400);
    let mut ours: Vec<(Vec<f64>, Vec<f64>)> = cands.iter().map(|_| (vec![], vec![])).collect();
    let mut go: Vec<(Vec<f64>, Vec<f64>)> = (0..9).map(|_| (vec![], vec![])).collect();
    let mut go_err = None;
    for round in 0..rounds {
        eprintln!("round {}/{rounds}", round + 1);
        for (c, acc) in cands.iter().zip(ours.iter_mut()) {
            let (b, ns) = measure(&mut *(c.make)(), &windows, budget);
            acc.0.push(b);
            acc.1.push(ns);
        }
        match golumber(&corpus, budget) {
            Ok(rows) => {
                for ((b, ns), acc) in rows.into_iter().zip(go.iter_mut()) {
                    acc.0.push(b);
                    acc.1.push(ns);
                }
            }
            Err(e) => go_err = Some(e),
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    let ours: Vec<(f64, f64)> = ours
        .into_iter()
        .map(|(b, ns)| (median(b), median(ns)))
        .collect();
    println!("\n| backend | level | wire B/event | CPU ns/event |\n|---|---:|---:|---:|");
    for (c, (b, ns)) in cands.iter().zip(&ours) {
        println!("| {} | {} | {b:.2} | {ns:.0} |", c.backend, c.level);
    }
    if let Some(e) = go_err {
        println!("\ngo-lumber not measured: {e}");
        return;
    }
    let go: Vec<(f64, f64)> = go
        .into_iter()
        .map(|(b, ns)| (median(b), median(ns)))
        .collect();
    println!(
        "\n| compression_level | go-lumber B/ev | go-lumber ns/ev | choice (all backends) | B/ev | vs go bytes | vs go CPU | isal | libdeflate | flate2 | now mapped to |\n|---:|---:|---:|---|---:|---:|---:|---|---|---|---|"
    );
    for level in 1..=9u32 {
        let (gb, gns) = go[level as usize - 1];
        // The rule, over the candidates allowed by `keep`.
        let choose = |keep: &dyn Fn(&Candidate) -> bool| -> Option<usize> {
            let cheapest = |limit: f64| {
                cands
                    .iter()
                    .enumerate()
                    .filter(|(i, c)| keep(c) && ours[*i].0 <= limit)
                    .min_by(|a, b| ours[a.0].1.total_cmp(&ours[b.0].1))
                    .map(|(i, _)| i)
            };
            let strict = cheapest(gb);
            let loose = cheapest(gb * 1.02);
            match (strict, loose) {
                (Some(s), Some(l)) if ours[l].1 <= 0.8 * ours[s].1 => Some(l),
                (Some(s), _) => Some(s),
                (None, l) => l,
            }
        };
        let name = |i: Option<usize>| {
            i.map_or("none within 2 %".to_string(), |i| {
                format!("{} {}", cands[i].backend, cands[i].level)
            })
        };
        let all = choose(&|_| true);
        let per = |b: &'static str| name(choose(&move |c: &Candidate| c.backend == b));
        let (cb, cns) = all.map_or((f64::NAN, f64::NAN), |i| ours[i]);
        let now = WireCompressor::for_level(level).map(|c| format!("{c:?}"));
        println!(
            "| {level} | {gb:.2} | {gns:.0} | {} | {cb:.2} | {:+.1} % | {:.2}× | {} | {} | {} | {} |",
            name(all),
            (cb / gb - 1.0) * 100.0,
            cns / gns,
            per("isal"),
            per("libdeflate"),
            per("flate2"),
            now.unwrap_or_default(),
        );
    }
    let forced = Backend::forced().map_or("none".to_string(), |b| b.to_string());
    println!("\n(SKIDDER_DEFLATE_BACKEND forces: {forced})");
}
