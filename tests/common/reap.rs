//! Kills a child process when the test ends, also when it panics, so a failed assertion
//! never leaves a shipper running in the background.
#![allow(dead_code)]

use std::process::Child;

/// Owns a child; kills and reaps it on drop.
pub struct Reap(pub Child);

impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
