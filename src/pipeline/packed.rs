//! Packed windows in the pipeline: events that are one `output.logstash` window, compressed
//! once when the disk queue wrote them (docs/disk-queue.md §11).
//!
//! The disk queue packs a write batch when [`PackSettings`] say an output will send it as it
//! is. Read back, each event of the window is an [`Event`](crate::event::Event) whose
//! [`Packed`] names the window and its place in it, and whose own bytes are empty. An
//! output that takes packed windows gets a whole window as one batch and writes its bytes
//! as they are ([`Batch::packed`](super::Batch::packed)); anywhere else the window is taken
//! apart first ([`PackedWindow::event`]).

use std::ops::Range;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use skidder_protocol::{packed, Compressor, Inflater};

/// Makes the compressor a packing writer uses: the output's backend and level, so the
/// stored bytes are the ones the output would have sent.
pub type NewCompressor = Arc<dyn Fn() -> Box<dyn Compressor + Send> + Send + Sync>;

/// When and how the disk queue packs write batches.
#[derive(Clone)]
pub struct PackSettings {
    /// Events per window at most: the output's `bulk_max_size`. Batches with fewer than
    /// half of it are not packed (docs/disk-queue.md §11).
    pub max_events: usize,
    /// The output's compressor.
    pub compressor: NewCompressor,
}

impl std::fmt::Debug for PackSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PackSettings")
            .field("max_events", &self.max_events)
            .finish_non_exhaustive()
    }
}

impl PackSettings {
    /// The fewest events a packed window holds.
    pub fn min_events(&self) -> usize {
        self.max_events.div_ceil(2).max(1)
    }
}

/// The largest content a packed window may inflate to: the writer packs only windows whose
/// `J` frames fit a disk frame, so more is damage (or a zlib bomb).
pub const MAX_INFLATED: usize = super::disk::format::MAX_PAYLOAD;

/// One stored window: its bytes as they go on the wire, and, once taken apart, its events.
pub struct PackedWindow {
    wire: Bytes,
    count: u32,
    events: OnceLock<Result<Unpacked, String>>,
}

struct Unpacked {
    content: Bytes,
    spans: Vec<Range<usize>>,
}

impl std::fmt::Debug for PackedWindow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PackedWindow")
            .field("count", &self.count)
            .field("bytes", &self.wire.len())
            .finish_non_exhaustive()
    }
}

impl PackedWindow {
    /// A window of `count` events stored as `wire` (its headers were checked by the reader).
    pub fn new(wire: Bytes, count: u32) -> Arc<Self> {
        Arc::new(Self {
            wire,
            count,
            events: OnceLock::new(),
        })
    }

    /// The bytes as they go on the wire.
    pub fn wire(&self) -> &Bytes {
        &self.wire
    }

    /// Events in the window.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// The bytes of event `index`, taking the window apart the first time (inflating its
    /// zlib stream and decoding its `J` frames; the content is then kept until the last
    /// event of the window is dropped).
    ///
    /// # Errors
    /// Why the window cannot be taken apart (a bad zlib stream, content that is not the `J`
    /// frames it announces, an index past its end).
    pub fn event(&self, index: u32) -> Result<Bytes, String> {
        let unpacked = self.events.get_or_init(|| {
            let (mut out, mut spans) = (Vec::new(), Vec::new());
            packed::unpack(
                &self.wire,
                &mut Inflater::new(),
                MAX_INFLATED,
                &mut out,
                &mut spans,
            )
            .map_err(|e| e.to_string())?;
            if spans.len() != self.count as usize {
                return Err(format!(
                    "the window holds {} events, its frame says {}",
                    spans.len(),
                    self.count
                ));
            }
            Ok(Unpacked {
                content: Bytes::from(out),
                spans,
            })
        });
        match unpacked {
            Ok(u) => u
                .spans
                .get(index as usize)
                .map(|r| u.content.slice(r.clone()))
                .ok_or_else(|| format!("event {index} is past the window's end")),
            Err(e) => Err(e.clone()),
        }
    }
}

/// An event's place in a packed window.
#[derive(Clone, Debug)]
pub struct Packed {
    /// The window.
    pub window: Arc<PackedWindow>,
    /// The event's index in it, from 0.
    pub index: u32,
}

impl PartialEq for Packed {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.window, &other.window) && self.index == other.index
    }
}

impl Eq for Packed {}

#[cfg(test)]
mod tests {
    use super::*;
    use skidder_protocol::Flate2Compressor;

    fn wire(events: &[&[u8]]) -> Bytes {
        let mut out = Vec::new();
        packed::encode_window_bytes(
            events.iter().copied(),
            events.len() as u32,
            Some(&mut Flate2Compressor::new(1)),
            &mut Vec::new(),
            &mut out,
        )
        .unwrap();
        Bytes::from(out)
    }

    #[test]
    fn events_are_taken_apart_once_and_sliced_from_one_buffer() {
        let w = PackedWindow::new(wire(&[b"{\"a\":1}", b"{\"b\":2}"]), 2);
        let a = w.event(0).unwrap();
        let b = w.event(1).unwrap();
        assert_eq!((&a[..], &b[..]), (&b"{\"a\":1}"[..], &b"{\"b\":2}"[..]));
        assert!(w.event(2).is_err());
    }

    #[test]
    fn a_window_that_cannot_be_taken_apart_says_why_for_every_event() {
        let mut bad = wire(&[b"{\"a\":1}", b"{\"b\":2}"]).to_vec();
        let at = bad.len() - 6;
        bad[at] ^= 0x55;
        let w = PackedWindow::new(Bytes::from(bad), 2);
        assert!(w.event(0).is_err());
        assert!(w.event(1).is_err());
        let short = PackedWindow::new(wire(&[b"{\"a\":1}"]), 2);
        assert!(short.event(0).is_err(), "count disagrees with the frames");
    }

    #[test]
    fn batches_of_fewer_than_half_a_window_are_not_packed() {
        let s = |max| PackSettings {
            max_events: max,
            compressor: Arc::new(|| Box::new(Flate2Compressor::new(1))),
        };
        assert_eq!(s(2048).min_events(), 1024);
        assert_eq!(s(3).min_events(), 2);
        assert_eq!(s(1).min_events(), 1);
    }
}
