//! `output.discard`: acknowledges every batch without writing it — the benchmark sink.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::{Output, WorkerFuture};
use crate::pipeline::{BatchSource, Metrics};

/// Counts and acknowledges. With a delay it becomes a deliberately slow output.
#[derive(Debug)]
pub struct DiscardOutput {
    delay: Option<Duration>,
}

impl DiscardOutput {
    /// A discard output waiting `delay` per batch (tests and benchmarks only).
    pub fn new(delay: Option<Duration>) -> Self {
        Self { delay }
    }
}

impl Output for DiscardOutput {
    fn run(self: Box<Self>, mut batches: BatchSource, metrics: Arc<Metrics>) -> WorkerFuture {
        Box::pin(async move {
            while let Some(batch) = batches.next_batch().await {
                if let Some(d) = self.delay {
                    tokio::time::sleep(d).await;
                }
                let bytes: usize = batch.docs().map(|d| d.len() + 1).sum();
                metrics
                    .output_bytes
                    .fetch_add(bytes as u64, Ordering::Relaxed);
                batch.ack();
            }
            Ok(())
        })
    }
}
