//! Arbitrary bytes as the zlib payload of a compressed frame: inflation must stop at
//! the limit and never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use skidder_protocol::Inflater;

const MAX: usize = 1 << 20;

fuzz_target!(|data: &[u8]| {
    let mut out = Vec::new();
    let result = Inflater::new().inflate(data, &mut out, MAX);
    assert!(out.len() <= MAX + 1, "inflated {} bytes past the limit", out.len());
    if result.is_ok() {
        assert!(out.len() <= MAX);
    }
});
