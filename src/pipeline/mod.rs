//! The pipeline between inputs and outputs: the bounded memory queue with backpressure,
//! batching, end-to-end acknowledgement in publish order, and the flow counters; optionally
//! a disk queue ([`disk`]) behind the memory stage.
//!
//! Inputs get a [`Publisher`]; each output worker gets a [`BatchSource`] and ends every
//! [`Batch`] with a verdict. See [`queue`] for the invariants.

pub mod batch;
pub mod disk;
pub mod gate;
pub mod metrics;
pub mod packed;
pub mod queue;

pub use batch::{Batch, Fate};
pub use disk::{DiskError, DiskSettings, SyncMode};
pub use gate::Gate;
pub use metrics::{BackingOff, InputMetrics, Metrics, Snapshot};
pub use packed::{PackSettings, Packed, PackedWindow};
pub use queue::{BatchSource, Publisher, Queue, QueueSettings, Stopped, TryPublishError};

#[cfg(test)]
mod tests;
