//! The bounded memory queue (Beats' `queue.mem`), its publishers and its batch sources.
//!
//! ```text
//!  Publisher ──push chunk──▶ [ queued ............ ] ──take ≤ bulk_max_size──▶ BatchSource
//!   (blocks when               ▲ retried batches, front, original order          │
//!    queued + in flight        └──────────────────────────── Batch::retry ◀──────┤
//!    = queue.mem.events)                                                          │
//!                        ack ranges settle in publish order ◀── ack/drop ─────────┘
//! ```
//!
//! Invariants:
//! * Capacity counts an event from its publish until its fate is settled (acked or dropped),
//!   so memory is bounded by `queue.mem.events` whatever the output holds in flight.
//! * Every event gets a position; a batch takes a contiguous range of positions. A range is
//!   reported to its inputs only when every earlier range is settled (libbeat's ack loop),
//!   so each input sees its acknowledgements in publish order.
//! * A batch is released when `flush.min_events` are queued, when the oldest queued event
//!   has waited `flush.timeout`, when the queue is full, or when no more input is coming.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::Notify;

use super::batch::Batch;
use super::disk::{Appended, Disk, DiskError, DiskSettings, Loaded, DISK_INPUT};
use super::gate::{Admit, Gate};
use super::metrics::{InputMetrics, Metrics};
use crate::event::{Event, InputId};

/// Settings of the memory queue (`queue.mem.*`).
#[derive(Debug, Clone, Copy)]
pub struct QueueSettings {
    /// `queue.mem.events`: capacity, counting events until they are settled.
    pub capacity: usize,
    /// `queue.mem.flush.min_events`.
    pub min_events: usize,
    /// `queue.mem.flush.timeout`.
    pub flush_timeout: Duration,
}

impl Default for QueueSettings {
    fn default() -> Self {
        Self {
            capacity: 3200,
            min_events: 1600,
            flush_timeout: Duration::from_secs(10),
        }
    }
}

/// The input has been told to stop; the events it still held were not published.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the pipeline is shutting down; {unpublished} event(s) were not published")]
pub struct Stopped {
    /// Events this publisher held that did not enter the queue.
    pub unpublished: usize,
}

/// Why [`Publisher::try_publish_all`] queued nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TryPublishError {
    /// Not enough free places for all the events.
    #[error("the queue has {free} free place(s) of {capacity}")]
    Full {
        /// Places free now.
        free: usize,
        /// `queue.mem.events`.
        capacity: usize,
    },
    /// Shutdown has begun.
    #[error("the pipeline is shutting down")]
    Stopped,
}

/// A settled range waiting for its turn to be reported.
#[derive(Debug)]
pub(crate) struct Range {
    unsettled: usize,
    /// Per input: (input, acked, dropped).
    tallies: Vec<(InputId, u64, u64)>,
}

/// A batch put back for another attempt.
#[derive(Debug)]
pub(crate) struct RetryPiece {
    pub(crate) events: Vec<Event>,
    /// The memory position of each event, when they are not consecutive from the piece's
    /// key (events in between were settled, e.g. Elasticsearch items acknowledged around a
    /// failed one); `None` for `key, key + 1, ...`.
    pub(crate) positions: Option<Vec<u64>>,
    pub(crate) retries: u32,
}

#[derive(Debug)]
pub(crate) struct State {
    queued: VecDeque<Event>,
    /// (position after the chunk, when it was queued): the flush timer.
    chunk_times: VecDeque<(u64, Instant)>,
    /// Position of the front of `queued`.
    head: u64,
    /// Taken or retry-pending events not yet settled.
    in_flight: usize,
    /// Retry pieces by range start: handed out before fresh events, in original order.
    retry: BTreeMap<u64, RetryPiece>,
    /// Ranges not yet reported, by start.
    ranges: BTreeMap<u64, Range>,
    open_publishers: usize,
    /// Queued events at which a waiting batch source can take a batch: `flush.min_events`,
    /// or the smallest source's `bulk_max_size` if that is lower. Publishers wake the
    /// sources when the queue reaches it (or fills), not for every chunk.
    wake_at: usize,
    setup_done: bool,
    stopping: bool,
    cancelled: bool,
    /// Disk mode: `(memory position, seq)` breakpoints: the event at a position has the seq
    /// of the last breakpoint at or before it, plus the distance (seqs skip lost events).
    disk_map: VecDeque<(u64, u64)>,
    /// Disk mode: the seq the reader hands over next (everything below is in memory,
    /// settled, or lost to damage).
    disk_read: u64,
}

impl State {
    /// Disk mode: the seq of the event at memory position `pos`.
    fn seq_at(&self, pos: u64) -> u64 {
        self.disk_map
            .iter()
            .rev()
            .find(|&&(p, _)| p <= pos)
            .map_or(pos, |&(p, seq)| seq + (pos - p))
    }
}

/// The queue shared by publishers, batch sources and batches.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) settings: QueueSettings,
    pub(crate) state: Mutex<State>,
    /// Blocking publishers wait here for space.
    space: Condvar,
    /// Async publishers wait here for space.
    space_async: Notify,
    /// Batch sources wait here for events or state changes.
    ready: Notify,
    /// The end of a run: notified only when the queue may have become idle (everything
    /// settled, every publisher closed) or was cancelled, so what waits for the end of the
    /// run (`wait_idle`, `finished`) is not woken by every publish and ACK. Those wake-ups
    /// were a third of skidder's thread switches under load.
    idle: Notify,
    pub(crate) metrics: Arc<Metrics>,
    inputs: Mutex<Vec<Arc<InputMetrics>>>,
    acked_notify: Notify,
    /// The disk queue behind the memory stage (`queue.disk`), if configured.
    disk: Option<Arc<Disk>>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        // A queue dropped without `Queue::close` (a test, an early error) still ends the
        // disk threads; they hold no reference to this.
        if let Some(d) = &self.disk {
            d.request_close();
        }
    }
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the queue half-updated in a way that
        // loses events (every update is a few assignments), so keep going.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn free(&self, st: &State) -> usize {
        self.settings
            .capacity
            .saturating_sub(st.queued.len() + st.in_flight)
    }

    /// Every publisher closed and every event settled (the run's normal end).
    fn is_idle(&self, st: &State) -> bool {
        st.open_publishers == 0 && st.queued.is_empty() && st.in_flight == 0 && self.unread(st) == 0
    }

    /// Disk mode: events on disk the reader has not handed over yet.
    fn unread(&self, st: &State) -> u64 {
        self.disk
            .as_ref()
            .map_or(0, |d| d.visible().saturating_sub(st.disk_read))
    }

    /// Disk mode: tells the disk queue how far the settled prefix reaches.
    fn report_settled(&self, st: &mut State) {
        let Some(disk) = &self.disk else { return };
        let seq = match st.ranges.first_key_value() {
            Some((&pos, _)) => st.seq_at(pos),
            None if !st.queued.is_empty() => st.seq_at(st.head),
            None => st.disk_read,
        };
        let pos = st.ranges.first_key_value().map_or(st.head, |(&p, _)| p);
        while st.disk_map.len() >= 2 && st.disk_map[1].0 <= pos {
            st.disk_map.pop_front();
        }
        disk.settled_to(seq);
    }

    /// Disk mode: the reader hands over `chunk` (seq, payload), and will read `next` next;
    /// `caught_up`: it has nothing more to hand over for now.
    pub(crate) fn push_from_disk(&self, chunk: &mut Vec<Loaded>, next: u64, caught_up: bool) {
        let mut st = self.lock();
        let n = chunk.len();
        for (seq, bytes, packed) in chunk.drain(..) {
            let pos = st.head + st.queued.len() as u64;
            if st.queued.is_empty() && st.ranges.is_empty() && st.retry.is_empty() {
                // Nothing older in memory: restart the map here.
                st.disk_map.clear();
            }
            if st.disk_map.is_empty() || st.seq_at(pos) != seq {
                st.disk_map.push_back((pos, seq));
            }
            st.queued.push_back(Event {
                input: DISK_INPUT,
                bytes,
                packed,
            });
        }
        st.disk_read = st.disk_read.max(next);
        if n > 0 {
            let end = st.head + st.queued.len() as u64;
            st.chunk_times.push_back((end, Instant::now()));
        }
        self.update_gauge(&st);
        self.report_settled(&mut st);
        let idle = self.is_idle(&st);
        // As publishers do: wake the sources once a batch is ready or nothing more is coming
        // soon, not for every chunk (each wake-up is a thread switch).
        let wake = n > 0 && (st.queued.len() >= st.wake_at || caught_up);
        drop(st);
        if wake {
            self.ready.notify_waiters();
        }
        if idle {
            self.idle.notify_waiters();
            self.ready.notify_waiters();
        }
    }

    fn update_gauge(&self, st: &State) {
        self.metrics
            .queue_filled
            .store((st.queued.len() + st.in_flight) as u64, Ordering::Relaxed);
    }

    /// Settles `settled` events of the range starting at `key`, counted per input as
    /// `(input, acked, dropped)` in `tallies`, and optionally puts the rest back as a retry
    /// piece. `split`: every event of the range before this position is now settled, so the
    /// range (and the retry piece) moves there; inputs still hear of the range as a whole,
    /// and a disk queue records the exact prefix (docs/disk-queue.md §1).
    pub(crate) fn settle(
        &self,
        key: u64,
        split: Option<u64>,
        tallies: &[(InputId, u64, u64)],
        settled: usize,
        retry: Option<RetryPiece>,
    ) {
        let mut st = self.lock();
        let acked: u64 = tallies.iter().map(|t| t.1).sum();
        let dropped: u64 = tallies.iter().map(|t| t.2).sum();
        if let Some(range) = st.ranges.get_mut(&key) {
            for &(input, a, d) in tallies {
                match range.tallies.iter_mut().find(|t| t.0 == input) {
                    Some(t) => {
                        t.1 += a;
                        t.2 += d;
                    }
                    None => range.tallies.push((input, a, d)),
                }
            }
            range.unsettled = range.unsettled.saturating_sub(settled);
        }
        st.in_flight = st.in_flight.saturating_sub(settled);
        self.metrics.acked.fetch_add(acked, Ordering::Relaxed);
        self.metrics.dropped.fetch_add(dropped, Ordering::Relaxed);
        let mut key = key;
        let mut moved = false;
        if let Some(to) = split.filter(|&to| to > key) {
            if let Some(range) = st.ranges.remove(&key) {
                let was_first = st.ranges.first_key_value().is_none_or(|(&k, _)| k > key);
                st.ranges.insert(to, range);
                moved = was_first;
            }
            key = to;
        }
        let has_retry = retry.is_some();
        if let Some(piece) = retry {
            st.retry.insert(key, piece);
        }
        // Report finished ranges in order: the first range is always the oldest unsettled.
        let mut reported = false;
        while let Some(entry) = st.ranges.first_entry() {
            if entry.get().unsettled != 0 {
                break;
            }
            let range = entry.remove();
            let inputs = self.inputs.lock().unwrap_or_else(|p| p.into_inner());
            for (input, a, d) in range.tallies {
                if let Some(m) = inputs.get(input as usize) {
                    m.acked.fetch_add(a, Ordering::Relaxed);
                    m.dropped.fetch_add(d, Ordering::Relaxed);
                }
            }
            reported = true;
        }
        self.update_gauge(&st);
        if reported || moved {
            self.report_settled(&mut st);
        }
        let idle = self.is_idle(&st);
        drop(st);
        if idle {
            self.idle.notify_waiters();
        }
        if settled > 0 {
            self.space.notify_all();
            self.space_async.notify_waiters();
        }
        if reported {
            self.acked_notify.notify_waiters();
        }
        if has_retry || settled > 0 {
            self.ready.notify_waiters();
        }
    }

    /// Puts a whole batch back without counting a failure (shutdown, or no verdict).
    pub(crate) fn requeue(&self, key: u64, piece: RetryPiece) {
        let mut st = self.lock();
        st.retry.insert(key, piece);
        drop(st);
        self.ready.notify_waiters();
    }

    pub(crate) fn is_cancelled(&self) -> bool {
        self.lock().cancelled
    }
}

/// The pipeline's queue: create publishers for inputs and batch sources for output
/// workers; observe progress; stop and cancel on shutdown.
#[derive(Debug, Clone)]
pub struct Queue {
    shared: Arc<Shared>,
}

impl Queue {
    /// An empty queue reporting into `metrics`.
    pub fn new(settings: QueueSettings, metrics: Arc<Metrics>) -> Self {
        Self::build(settings, metrics, None)
    }

    /// A queue whose events are written to the disk queue in `settings.path` before their
    /// publish returns (see [`super::disk`] and docs/disk-queue.md); what a previous run left
    /// there is delivered first.
    ///
    /// # Errors
    /// [`DiskError`] when the directory cannot be used: another process holds it, a file
    /// cannot be read or written, or a file is of an unknown format version.
    pub fn with_disk(settings: DiskSettings, metrics: Arc<Metrics>) -> Result<Self, DiskError> {
        let disk = Arc::new(Disk::open(settings, Arc::clone(&metrics))?);
        // The memory stage in front of the outputs: the reader bounds it (read window), so
        // its own capacity never blocks; batches go out as soon as the reader has handed
        // over what the disk holds.
        let stage = QueueSettings {
            capacity: usize::MAX / 2,
            min_events: usize::MAX / 2,
            flush_timeout: Duration::from_millis(5),
        };
        let q = Self::build(stage, metrics, Some(Arc::clone(&disk)));
        q.shared.metrics.queue_capacity.store(0, Ordering::Relaxed);
        disk.start_threads(Arc::downgrade(&q.shared));
        Ok(q)
    }

    fn build(settings: QueueSettings, metrics: Arc<Metrics>, disk: Option<Arc<Disk>>) -> Self {
        let settings = QueueSettings {
            capacity: settings.capacity.max(1),
            ..settings
        };
        metrics
            .queue_capacity
            .store(settings.capacity as u64, Ordering::Relaxed);
        let start = disk.as_ref().map_or(0, |d| d.start());
        Self {
            shared: Arc::new(Shared {
                settings,
                state: Mutex::new(State {
                    queued: VecDeque::with_capacity(settings.capacity.min(1 << 16)),
                    chunk_times: VecDeque::new(),
                    head: 0,
                    in_flight: 0,
                    retry: BTreeMap::new(),
                    ranges: BTreeMap::new(),
                    // The set-up token: released by `all_inputs_started`.
                    open_publishers: 1,
                    wake_at: settings.min_events,
                    setup_done: false,
                    stopping: false,
                    cancelled: false,
                    disk_map: VecDeque::from([(0, start)]),
                    disk_read: start,
                }),
                space: Condvar::new(),
                space_async: Notify::new(),
                ready: Notify::new(),
                idle: Notify::new(),
                metrics,
                inputs: Mutex::new(Vec::new()),
                acked_notify: Notify::new(),
                disk,
            }),
        }
    }

    /// The disk queue's directory, when this queue has one.
    pub fn disk_path(&self) -> Option<&std::path::Path> {
        self.shared.disk.as_deref().map(Disk::path)
    }

    /// Ends a disk queue: stops its threads, records the final position and syncs. Returns
    /// the events left on disk for the next start (0 for the memory queue, whose unsettled
    /// events are lost at exit and counted by the caller).
    pub fn close(&self) -> u64 {
        let Some(disk) = &self.shared.disk else {
            return 0;
        };
        disk.close();
        let left = disk.unsettled();
        if left > 0 {
            tracing::info!(path = %disk.path().display(), queued = left, "events remain in the disk queue; they are sent at the next start");
        }
        left
    }

    /// The metrics registry of this queue.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.shared.metrics
    }

    /// Registers an input and returns its first publisher. Clone the publisher for more
    /// threads of the same input; the input is finished when all its publishers are closed.
    pub fn publisher(&self, name: &str) -> Publisher {
        let metrics = self.shared.metrics.add_input(name);
        let id = {
            let mut inputs = self.shared.inputs.lock().unwrap_or_else(|p| p.into_inner());
            inputs.push(Arc::clone(&metrics));
            (inputs.len() - 1) as InputId
        };
        self.shared.lock().open_publishers += 1;
        Publisher {
            shared: Arc::clone(&self.shared),
            input: id,
            metrics,
            buf: Vec::with_capacity(CHUNK),
            closed: false,
        }
    }

    /// Events a publisher collects before pushing them: a memory chunk, or with a disk
    /// queue `queue.disk.write_ahead` (one write and one sync each).
    fn chunk(shared: &Shared) -> usize {
        shared.disk.as_ref().map_or(CHUNK, |d| d.write_ahead())
    }

    /// Declares that every input has its publisher: from now on, when all publishers are
    /// closed and everything is settled, the run is over. Until this is called, batch
    /// sources never end (an output started before its inputs must not see an empty, finished
    /// queue).
    pub fn all_inputs_started(&self) {
        let mut st = self.shared.lock();
        if !st.setup_done {
            st.setup_done = true;
            st.open_publishers = st.open_publishers.saturating_sub(1);
        }
        drop(st);
        self.wake_all();
    }

    /// A source of batches of at most `bulk_max_size` events for one output worker.
    pub fn batch_source(&self, bulk_max_size: usize) -> BatchSource {
        let max = bulk_max_size.max(1);
        if let Some(d) = &self.shared.disk {
            d.fit_batch(max);
        }
        let mut st = self.shared.lock();
        st.wake_at = st.wake_at.min(max);
        drop(st);
        BatchSource {
            shared: Arc::clone(&self.shared),
            max,
            gate: None,
            packed: false,
        }
    }

    /// Tells inputs to stop: further publishes fail with [`Stopped`], and what is queued is
    /// released to the outputs at once.
    pub fn stop_inputs(&self) {
        self.shared.lock().stopping = true;
        if let Some(d) = &self.shared.disk {
            d.stop_inputs();
        }
        self.wake_all();
    }

    /// Ends the run: batch sources return `None`; batches still out are put back unsettled.
    pub fn cancel(&self) {
        let mut st = self.shared.lock();
        st.stopping = true;
        st.cancelled = true;
        drop(st);
        if let Some(d) = &self.shared.disk {
            d.stop_inputs();
        }
        self.wake_all();
    }

    fn wake_all(&self) {
        self.shared.space.notify_all();
        self.shared.space_async.notify_waiters();
        self.shared.ready.notify_waiters();
        self.shared.idle.notify_waiters();
    }

    /// Events published but not yet settled (queued, in flight or waiting for a retry).
    pub fn unsettled(&self) -> usize {
        if let Some(d) = &self.shared.disk {
            return d.unsettled() as usize;
        }
        let st = self.shared.lock();
        st.queued.len() + st.in_flight
    }

    /// Waits until every publisher is closed and every event is settled: a finite run is done.
    pub async fn wait_idle(&self) {
        loop {
            let notified = self.shared.idle.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.shared.is_idle(&self.shared.lock()) {
                return;
            }
            notified.await;
        }
    }

    /// Waits until every batch an output took has come back, settled or put back for a
    /// retry. Aborted output workers drop their batches on their own threads, after the
    /// abort returns; a disk queue must see those verdicts (a partly acknowledged batch's
    /// head) before it records its position and closes.
    pub async fn wait_returned(&self) {
        loop {
            let notified = self.shared.ready.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let st = self.shared.lock();
                let back: usize = st.retry.values().map(|p| p.events.len()).sum();
                if st.in_flight <= back {
                    return;
                }
            }
            notified.await;
        }
    }

    /// Waits until nothing is left unsettled (publishers may still be open), for draining.
    pub async fn wait_drained(&self) {
        loop {
            let notified = self.shared.ready.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let st = self.shared.lock();
                if st.queued.is_empty() && st.in_flight == 0 && self.shared.unread(&st) == 0 {
                    return;
                }
            }
            notified.await;
        }
    }
}

/// Events a publisher collects before taking the queue lock once for all of them.
const CHUNK: usize = 256;

/// An input's handle on the queue. Publishing is buffered in small chunks; a chunk is
/// pushed when full or on [`Publisher::flush`]. Blocking inputs use `publish`/`flush`;
/// async inputs use `publish_async`/`flush_async`, and must call `close_async` before
/// dropping the publisher.
#[derive(Debug)]
pub struct Publisher {
    shared: Arc<Shared>,
    input: InputId,
    metrics: Arc<InputMetrics>,
    buf: Vec<Event>,
    closed: bool,
}

impl Clone for Publisher {
    fn clone(&self) -> Self {
        self.shared.lock().open_publishers += 1;
        Self {
            shared: Arc::clone(&self.shared),
            input: self.input,
            metrics: Arc::clone(&self.metrics),
            buf: Vec::with_capacity(CHUNK),
            closed: false,
        }
    }
}

impl Publisher {
    /// This input's id, carried by its events.
    pub fn input_id(&self) -> InputId {
        self.input
    }

    /// This input's counters (`acked` grows in publish order as the output confirms).
    pub fn metrics(&self) -> &Arc<InputMetrics> {
        &self.metrics
    }

    /// Events of this input acknowledged so far (cumulative, in publish order).
    pub fn acked(&self) -> u64 {
        self.metrics.acked.load(Ordering::Acquire)
    }

    /// Events of this input settled so far: acknowledged or dropped by the output.
    pub fn settled(&self) -> u64 {
        self.metrics.acked.load(Ordering::Acquire) + self.metrics.dropped.load(Ordering::Acquire)
    }

    /// Waits until at least `n` events of this input are settled (a relay input waits for
    /// this before acknowledging its own client), or the run is cancelled.
    pub async fn wait_settled(&self, n: u64) {
        loop {
            let notified = self.shared.acked_notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.settled() >= n || self.shared.is_cancelled() {
                return;
            }
            notified.await;
        }
    }

    /// True once shutdown has begun; long-sleeping inputs check it between events.
    pub fn is_stopping(&self) -> bool {
        self.shared.lock().stopping
    }

    /// Counts a record this input refused itself (e.g. a bad line with `on_json_error: drop`).
    pub fn count_input_drop(&self) {
        self.metrics.input_dropped.fetch_add(1, Ordering::Relaxed);
    }

    /// Queues one encoded event; blocks while the queue is full.
    ///
    /// # Errors
    /// [`Stopped`] once shutdown has begun; the input should stop reading.
    pub fn publish(&mut self, bytes: Bytes) -> Result<(), Stopped> {
        self.buf.push(Event::new(self.input, bytes));
        if self.buf.len() >= Queue::chunk(&self.shared) {
            self.flush()?;
        }
        Ok(())
    }

    /// Pushes every buffered event into the queue, blocking while it is full.
    ///
    /// # Errors
    /// [`Stopped`] once shutdown has begun; the buffered events are not published.
    pub fn flush(&mut self) -> Result<(), Stopped> {
        if let Some(disk) = self.shared.disk.clone() {
            if self.buf.is_empty() {
                return Ok(());
            }
            if self.shared.lock().stopping {
                return Err(self.abandon());
            }
            let events = std::mem::take(&mut self.buf);
            let r = disk.append(&events, self.counter());
            return self.appended(r, events);
        }
        let shared = Arc::clone(&self.shared);
        while !self.buf.is_empty() {
            let mut st = shared.lock();
            loop {
                if st.stopping {
                    return Err(self.abandon());
                }
                if shared.free(&st) > 0 {
                    break;
                }
                st = shared.space.wait(st).unwrap_or_else(|p| p.into_inner());
            }
            self.push_some(&mut st);
        }
        Ok(())
    }

    /// Queues one encoded event; waits (asynchronously) while the queue is full.
    ///
    /// # Errors
    /// [`Stopped`] once shutdown has begun.
    pub async fn publish_async(&mut self, bytes: Bytes) -> Result<(), Stopped> {
        self.buf.push(Event::new(self.input, bytes));
        if self.buf.len() >= Queue::chunk(&self.shared) {
            self.flush_async().await?;
        }
        Ok(())
    }

    /// Pushes every buffered event, waiting asynchronously while the queue is full.
    ///
    /// # Errors
    /// [`Stopped`] once shutdown has begun; the buffered events are not published.
    pub async fn flush_async(&mut self) -> Result<(), Stopped> {
        if let Some(disk) = self.shared.disk.clone() {
            if self.buf.is_empty() {
                return Ok(());
            }
            if self.shared.lock().stopping {
                return Err(self.abandon());
            }
            let events = std::mem::take(&mut self.buf);
            // Writing and fdatasync block: off the runtime's threads.
            let count = self.counter();
            let done = tokio::task::spawn_blocking(move || {
                let r = disk.append(&events, count);
                (r, events)
            })
            .await;
            return match done {
                Ok((r, events)) => self.appended(r, events),
                Err(e) => {
                    tracing::error!(error = %e, "disk queue write task failed");
                    Err(Stopped { unpublished: 0 })
                }
            };
        }
        let shared = Arc::clone(&self.shared);
        while !self.buf.is_empty() {
            let notified = shared.space_async.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut st = shared.lock();
                if st.stopping {
                    return Err(self.abandon());
                }
                if shared.free(&st) > 0 {
                    self.push_some(&mut st);
                    continue;
                }
            }
            notified.await;
        }
        Ok(())
    }

    /// Queues all of `events` at once or none of them, without waiting: an HTTP intake
    /// answers "try later" rather than holding a request while the queue is full. Returns
    /// the input's `published` count right after the push, the watermark to pass to
    /// [`Self::wait_settled`] for end-to-end acknowledgement.
    ///
    /// # Errors
    /// [`TryPublishError::Full`] when fewer than `events.len()` places are free (nothing is
    /// queued), [`TryPublishError::Stopped`] once shutdown has begun.
    pub fn try_publish_all(&mut self, events: Vec<Bytes>) -> Result<u64, TryPublishError> {
        let n = events.len();
        let shared = Arc::clone(&self.shared);
        let mut st = shared.lock();
        if st.stopping {
            return Err(TryPublishError::Stopped);
        }
        let free = shared.free(&st);
        if free < n {
            return Err(TryPublishError::Full {
                free,
                capacity: shared.settings.capacity,
            });
        }
        let input = self.input;
        self.buf
            .extend(events.into_iter().map(|bytes| Event::new(input, bytes)));
        self.push_some(&mut st);
        // Read under the lock: no other publisher of this input moves it in between.
        Ok(self.metrics.published.load(Ordering::Relaxed))
    }

    /// Flushes (async) and closes this publisher.
    ///
    /// # Errors
    /// [`Stopped`] if shutdown began before everything was queued.
    pub async fn close_async(mut self) -> Result<(), Stopped> {
        let r = self.flush_async().await;
        self.close_now();
        r
    }

    /// Flushes (blocking) and closes this publisher; the input is finished when all its
    /// publishers are closed.
    ///
    /// # Errors
    /// [`Stopped`] if shutdown began before everything was queued.
    pub fn close(mut self) -> Result<(), Stopped> {
        let r = self.flush();
        self.close_now();
        r
    }

    /// Disk mode: the events are durable in the queue, which is their acknowledgement to
    /// this input (a relay input ACKs its own client now, docs/disk-queue.md §10).
    fn appended(&mut self, r: Result<Appended, ()>, mut events: Vec<Event>) -> Result<(), Stopped> {
        let unpublished = events.len();
        events.clear();
        self.buf = events;
        r.map_err(|()| Stopped { unpublished })?;
        self.shared.acked_notify.notify_waiters();
        Ok(())
    }

    /// Counts a disk write for this input, inside the write (see `Disk::append`).
    fn counter(&self) -> impl FnOnce(&Appended) + Send + 'static {
        let queue = Arc::clone(&self.shared.metrics);
        let input = Arc::clone(&self.metrics);
        move |a| {
            let n = a.written as u64;
            queue.published.fetch_add(n, Ordering::Relaxed);
            input.published.fetch_add(n, Ordering::Relaxed);
            input.acked.fetch_add(n, Ordering::Release);
            input
                .input_dropped
                .fetch_add(a.oversize as u64, Ordering::Relaxed);
        }
    }

    fn abandon(&mut self) -> Stopped {
        let unpublished = self.buf.len();
        self.buf.clear();
        Stopped { unpublished }
    }

    fn push_some(&mut self, st: &mut State) {
        let n = self.shared.free(st).min(self.buf.len());
        let was_empty = st.queued.is_empty();
        st.queued.extend(self.buf.drain(..n));
        let end = st.head + st.queued.len() as u64;
        st.chunk_times.push_back((end, Instant::now()));
        self.shared
            .metrics
            .published
            .fetch_add(n as u64, Ordering::Relaxed);
        self.metrics
            .published
            .fetch_add(n as u64, Ordering::Relaxed);
        self.shared.update_gauge(st);
        // A source waiting on an empty queue sleeps at most `flush.timeout` (see
        // `poll_batch`), so the first events need no wake-up of their own: each one was a
        // thread switch or more per batch. Without a flush timeout nothing may wait.
        let no_timeout = self.shared.settings.flush_timeout.is_zero();
        if st.queued.len() >= st.wake_at || self.shared.free(st) == 0 || (was_empty && no_timeout) {
            self.shared.ready.notify_waiters();
        }
    }

    fn close_now(&mut self) {
        if self.closed {
            return;
        }
        self.closed = true;
        let mut st = self.shared.lock();
        st.open_publishers = st.open_publishers.saturating_sub(1);
        let idle = self.shared.is_idle(&st);
        drop(st);
        self.shared.ready.notify_waiters();
        if idle {
            self.shared.idle.notify_waiters();
        }
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        if !self.closed {
            if !self.buf.is_empty() {
                // A blocking flush is the only way not to lose them; async inputs must call
                // close_async first (documented), so this runs only for blocking inputs.
                if let Err(e) = self.flush() {
                    tracing::warn!(input = %self.metrics.name, unpublished = e.unpublished, "input stopped with events not yet queued");
                }
            }
            self.close_now();
        }
    }
}

/// One output worker's source of batches.
#[derive(Debug)]
pub struct BatchSource {
    shared: Arc<Shared>,
    max: usize,
    /// A router's gate: while closed, `next_batch` waits (see [`Gate`]).
    gate: Option<Arc<Gate>>,
    /// Hands out packed windows whole, not taken apart (see [`Self::accept_packed`]).
    packed: bool,
}

impl BatchSource {
    /// Another source of the same queue, batch size and gate: for workers started while the
    /// run goes on (`output.logstash` `dns.expand` adds one per address that joins).
    pub fn fork(&self) -> BatchSource {
        BatchSource {
            shared: Arc::clone(&self.shared),
            max: self.max,
            gate: self.gate.clone(),
            packed: self.packed,
        }
    }

    /// Whether this source's worker writes packed windows as they are (docs/disk-queue.md
    /// §11): then a packed window that fits `bulk_max_size` comes as one batch of its own,
    /// untouched ([`Batch::packed`]); any other batch, and every batch of a source that does
    /// not accept them, has its packed events taken apart first. Events of a window that
    /// cannot be taken apart are dropped there, counted and logged at ERROR.
    pub fn accept_packed(&mut self, accept: bool) {
        self.packed = accept;
    }

    /// The largest batch this source hands out (`bulk_max_size`).
    pub fn bulk_max_size(&self) -> usize {
        self.max
    }

    /// This source, handing out batches of at most `bulk_max_size` events and only while
    /// `gate` lets it: how the failover router shares one queue between two outputs, each
    /// with its own batch size.
    pub fn gated(self, gate: Arc<Gate>, bulk_max_size: usize) -> Self {
        let max = bulk_max_size.max(1);
        if let Some(d) = &self.shared.disk {
            d.fit_batch(max);
        }
        let mut st = self.shared.lock();
        st.wake_at = st.wake_at.min(max);
        drop(st);
        Self {
            max,
            gate: Some(gate),
            ..self
        }
    }

    /// The gate of a gated source (see [`Self::gated`]).
    pub fn gate(&self) -> Option<&Arc<Gate>> {
        self.gate.as_ref()
    }

    /// Events taken by outputs (or waiting to be retried) and not yet settled: the work
    /// outstanding at the outputs, which the failover policy watches for progress.
    pub fn outstanding(&self) -> usize {
        self.shared.lock().in_flight
    }

    fn run_over(&self) -> bool {
        let st = self.shared.lock();
        st.cancelled || self.shared.is_idle(&st)
    }

    /// Waits until the run is over for this source (what makes [`Self::next_batch`] return
    /// `None`) without taking a batch. A worker that holds no batches and is waiting for
    /// something else (a reconnect backoff) selects on this to end promptly.
    pub async fn finished(&self) {
        loop {
            let notified = self.shared.idle.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.run_over() {
                return;
            }
            notified.await;
        }
    }

    /// The next batch: retried batches first (oldest first), then fresh events. `None` when
    /// the run is over: inputs finished and everything settled, or the run was cancelled.
    ///
    /// A gated source (see [`Self::gated`]) waits while its gate is closed, and still returns
    /// `None` when the run is over.
    pub async fn next_batch(&mut self) -> Option<Batch> {
        loop {
            let notified = self.shared.ready.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let gate_changed = self.gate.as_ref().map(|g| g.changed.notified());
            tokio::pin!(gate_changed);
            if let Some(n) = gate_changed.as_mut().as_pin_mut() {
                n.enable();
            }
            let gate_moved = async {
                match gate_changed.as_mut().as_pin_mut() {
                    Some(n) => n.await,
                    None => std::future::pending().await,
                }
            };
            let admit = self.gate.as_ref().map_or(Admit::Open, |g| g.admit());
            if admit == Admit::Shut {
                if self.run_over() {
                    return None;
                }
                tokio::select! {
                    _ = &mut notified => {}
                    () = gate_moved => {}
                }
                continue;
            }
            let polled = match self.poll_batch() {
                Ok(Some(batch)) => match self.deliverable(batch) {
                    Some(batch) => Ok(Some(batch)),
                    // Nothing deliverable left in it: look again at once.
                    None => Err(Some(Instant::now())),
                },
                other => other,
            };
            if admit == Admit::Permit && !matches!(polled, Ok(Some(_))) {
                if let Some(g) = &self.gate {
                    g.return_permit();
                }
            }
            let deadline = match polled {
                Ok(batch) => return batch,
                Err(deadline) => deadline,
            };
            let until = async {
                match deadline {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = &mut notified => {}
                () = gate_moved => {}
                () = until => {}
            }
        }
    }

    /// `batch` as this source hands it out: packed windows whole for a source that accepts
    /// them, otherwise taken apart; events of a window that cannot be taken apart are
    /// dropped (the rest go back), and then there is nothing to hand out this time.
    fn deliverable(&self, mut batch: Batch) -> Option<Batch> {
        // Only the disk queue's reader makes packed events.
        if self.shared.disk.is_none()
            || !batch.has_packed()
            || (self.packed && batch.packed().is_some())
        {
            return Some(batch);
        }
        match batch.unpack() {
            None => Some(batch),
            Some((bad, reason)) => {
                let reason =
                    format!("a packed window in the disk queue cannot be taken apart: {reason}");
                batch.drop_undeliverable(&bad, &reason);
                None
            }
        }
    }

    /// Events to take from the front of `queued`, at most `max`: a source that accepts
    /// packed windows takes a window that fits alone and whole, and stops before one that
    /// would be cut, so windows reach its worker intact.
    fn batch_len(&self, queued: &std::collections::VecDeque<Event>) -> usize {
        let n = queued.len().min(self.max);
        if !self.packed {
            return n;
        }
        let starts = |e: &Event| {
            e.packed
                .as_ref()
                .filter(|p| p.index == 0)
                .map(|p| p.window.count() as usize)
        };
        if let Some(count) = queued.front().and_then(starts) {
            if count <= self.max && count <= queued.len() {
                return count;
            }
            return n;
        }
        for (i, e) in queued.iter().enumerate().take(n) {
            if let Some(count) = starts(e) {
                if i + count > n {
                    return i;
                }
            }
        }
        n
    }

    /// `Ok(Some)` a batch, `Ok(None)` the end, `Err(deadline)` wait (for a flush timer).
    fn poll_batch(&self) -> Result<Option<Batch>, Option<Instant>> {
        let shared = &self.shared;
        let mut st = shared.lock();
        if st.cancelled {
            return Ok(None);
        }
        if let Some((key, piece)) = st.retry.pop_first() {
            drop(st);
            return Ok(Some(Batch::new(Arc::clone(shared), key, piece)));
        }
        let available = st.queued.len();
        let now = Instant::now();
        if available == 0 {
            if st.open_publishers == 0 && st.in_flight == 0 && shared.unread(&st) == 0 {
                return Ok(None);
            }
            if shared.disk.is_some() {
                // The disk reader wakes the sources when it hands events over.
                return Err(None);
            }
            // Publishers do not wake sources for the first events of an empty queue, so
            // look again after `flush.timeout`: whatever came meanwhile is then due at its
            // own arrival + `flush.timeout`, never later.
            let timeout = shared.settings.flush_timeout;
            return Err((!timeout.is_zero()).then(|| now + timeout));
        }
        let oldest = st.chunk_times.front().map(|&(_, t)| t);
        let timed_out = oldest.is_some_and(|t| now >= t + shared.settings.flush_timeout);
        let release = available >= shared.settings.min_events.min(self.max)
            || shared.free(&st) == 0
            || st.open_publishers == 0
            || st.stopping
            || timed_out;
        if !release {
            return Err(oldest.map(|t| t + shared.settings.flush_timeout));
        }
        let n = self.batch_len(&st.queued);
        let key = st.head;
        let events: Vec<Event> = st.queued.drain(..n).collect();
        st.head += n as u64;
        st.in_flight += n;
        let head = st.head;
        while st.chunk_times.front().is_some_and(|&(end, _)| end <= head) {
            st.chunk_times.pop_front();
        }
        st.ranges.insert(
            key,
            Range {
                unsettled: n,
                tallies: Vec::new(),
            },
        );
        drop(st);
        shared.metrics.batches.fetch_add(1, Ordering::Relaxed);
        let piece = RetryPiece {
            events,
            positions: None,
            retries: 0,
        };
        Ok(Some(Batch::new(Arc::clone(shared), key, piece)))
    }
}
