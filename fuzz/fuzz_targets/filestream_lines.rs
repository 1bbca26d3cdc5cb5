//! The filestream line splitter and registry reader on hostile bytes. The first byte picks
//! the cap and the terminator, the second the chunk size; the rest is the file. Whatever
//! the chunking, the lines are the same, none is longer than the cap, and the bytes they
//! cover plus the bytes held add up to the file. The same bytes as a registry file must
//! parse or be refused, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use skidder::config::filestream::LineTerminator;
use skidder::inputs::filestream::reader::LineSplitter;
use skidder::inputs::filestream::registry;

const TERMS: [LineTerminator; 4] = [
    LineTerminator::Auto,
    LineTerminator::CarriageReturnLineFeed,
    LineTerminator::LineSeparator,
    LineTerminator::NullTerminator,
];

fn split(term: LineTerminator, max: usize, data: &[u8], chunk: usize) -> (Vec<(Vec<u8>, u64, bool)>, u64) {
    let mut s = LineSplitter::new(term, encoding_rs::UTF_8, max);
    let mut out = Vec::new();
    for c in data.chunks(chunk.max(1)) {
        s.feed(c, &mut |l| out.push((l.bytes.to_vec(), l.raw_len, l.truncated)));
    }
    (out, s.buffered())
}

fuzz_target!(|data: &[u8]| {
    let _ = registry::parse(data, "fuzz");
    if data.len() < 2 {
        return;
    }
    let term = TERMS[usize::from(data[0] & 3)];
    let max = usize::from(data[0] >> 2) + 1;
    let chunk = usize::from(data[1]) + 1;
    let file = &data[2..];
    let whole = split(term, max, file, file.len().max(1));
    let parts = split(term, max, file, chunk);
    assert_eq!(whole, parts, "chunking changed the lines");
    let covered: u64 = whole.0.iter().map(|l| l.1).sum::<u64>() + whole.1;
    assert_eq!(covered, file.len() as u64);
    assert!(whole.0.iter().all(|l| l.0.len() <= max));
});
