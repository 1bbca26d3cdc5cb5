//! The JSON string escaper of plain-text events (`EventWriter::str_field`, which the
//! stdin and filestream inputs use for `message`): `write_json_str` (16 bytes classified
//! at a time, jumping from escape to escape into a buffer sized once) against the
//! serde_json + `BeatsFormatter` path it replaced, which `write_json` still is. Both write
//! the same bytes (src/event.rs's property test).
//!
//! Inputs: the harness corpus's lines taken as plain text (the "same lines" of the stdin
//! plain-vs-NDJSON comparison: a JSON document as a message holds a `"` every ~10 bytes),
//! and the same lines with quotes and backslashes replaced (nothing to escape).
//!
//! The machine is shared, so the two sides alternate in rounds (A B A B ...), each timed
//! by this thread's CPU clock, and medians are printed with their ratio.
//!
//! `cargo bench -p skidder-bench --bench json_escape`

use std::hint::black_box;
use std::time::Duration;

use bytes::BytesMut;
use skidder::event::{write_json, write_json_str};

fn thread_cpu() -> Duration {
    // SAFETY: timespec is plain old data; clock_gettime writes it.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: valid clock id and out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// ns per line over `reps` passes of `lines`.
fn time(lines: &[String], reps: usize, out: &mut BytesMut, f: &dyn Fn(&mut BytesMut, &str)) -> f64 {
    let start = thread_cpu();
    for _ in 0..reps {
        out.clear();
        for l in lines {
            f(out, l);
        }
        black_box(out.len());
    }
    (thread_cpu() - start).as_nanos() as f64 / (reps * lines.len()) as f64
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let corpus: Vec<String> = skidder_bench::corpus::generate()
        .into_iter()
        .take(1024)
        .collect();
    let clean: Vec<String> = corpus.iter().map(|l| l.replace(['"', '\\'], "'")).collect();
    // `cargo test --all-targets` runs this without --bench: one pass, no numbers.
    let (rounds, reps) = if bench { (15, 40) } else { (1, 1) };
    let serde = |out: &mut BytesMut, l: &str| {
        let _ = write_json(out, l, false);
    };
    let fast = |out: &mut BytesMut, l: &str| write_json_str(out, l, false);
    if bench {
        println!("{}", skidder_bench::machine::describe());
        println!("\n| input | bytes/line | serde_json + BeatsFormatter ns/line | write_json_str ns/line | ratio |\n|---|---:|---:|---:|---:|");
    }
    for (name, lines) in [
        ("corpus lines as plain text", &corpus),
        ("nothing to escape", &clean),
    ] {
        let mut out = BytesMut::with_capacity(lines.iter().map(|l| l.len() * 2).sum());
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            a.push(time(lines, reps, &mut out, &serde));
            b.push(time(lines, reps, &mut out, &fast));
        }
        let (a, b) = (median(a), median(b));
        let avg = lines.iter().map(String::len).sum::<usize>() as f64 / lines.len() as f64;
        if bench {
            println!("| {name} | {avg:.0} | {a:.0} | {b:.0} | {:.2} |", b / a);
        }
    }
}
