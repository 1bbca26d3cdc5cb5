//! Reading what a disk-queue run delivered and what its queue still holds, for the tests
//! that SIGKILL skidder and then prove every accepted `(run, seq)` arrived.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use skidder::pipeline::disk::format::{decode_header, FrameReader, Step, HEADER_LEN};
use skidder::pipeline::PackedWindow;

/// `(run, seq)` → times go-lumber accepted it, from its `--out` file.
pub fn delivered(out: &Path) -> BTreeMap<(u64, u64), u32> {
    let mut m = BTreeMap::new();
    let text = std::fs::read_to_string(out).unwrap_or_default();
    // The server may be mid-write: only whole lines count.
    for line in text.split_inclusive('\n').filter(|l| l.ends_with('\n')) {
        let v: serde_json::Value = serde_json::from_str(line.trim_end()).unwrap();
        let key = (v["run"].as_u64().unwrap(), v["seq"].as_u64().unwrap());
        *m.entry(key).or_insert(0) += 1;
    }
    m
}

/// The queue's segment files, by name (= by id).
pub fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    v.retain(|p| p.extension().is_some_and(|e| e == "seg"));
    v.sort();
    v
}

/// Every step of every segment's frames in `dir`, in order (a segment with a bad header is
/// skipped).
fn for_each_step(dir: &Path, mut f: impl FnMut(Step)) {
    for seg in segments(dir) {
        let bytes = std::fs::read(&seg).unwrap();
        let Ok(first) = decode_header(&bytes) else {
            continue;
        };
        let mut r = FrameReader::new(first);
        r.feed(&bytes[HEADER_LEN..]);
        loop {
            match r.next(true) {
                Step::Tail { .. } | Step::End { .. } => break,
                step => f(step),
            }
        }
    }
}

/// Per run, the largest generator `seq` in the queue's segment files: events the queue
/// accepted (durably) and may not have delivered yet.
pub fn on_disk(dir: &Path) -> BTreeMap<u64, u64> {
    let mut max = BTreeMap::new();
    let mut note = |payload: &[u8]| {
        let v: serde_json::Value = serde_json::from_slice(payload).unwrap();
        let (run, seq) = (v["run"].as_u64().unwrap(), v["seq"].as_u64().unwrap());
        let e = max.entry(run).or_insert(0);
        *e = seq.max(*e);
    };
    for_each_step(dir, |step| match step {
        Step::Frame { payload, .. } => note(&payload),
        Step::Packed { count, wire, .. } => {
            let window = PackedWindow::new(wire, count);
            for i in 0..count {
                note(&window.event(i).unwrap());
            }
        }
        _ => {}
    });
    max
}

/// Packed windows (docs/disk-queue.md §11) in the queue's segment files.
pub fn packed_windows(dir: &Path) -> usize {
    let mut n = 0;
    for_each_step(dir, |step| {
        if matches!(step, Step::Packed { .. }) {
            n += 1;
        }
    });
    n
}
