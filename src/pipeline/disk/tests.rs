//! The disk queue through the pipeline's own interface: publishers in, batches out, then
//! reopened as a restart would.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::format::{self, BLOCK};
use super::{Disk, DiskError, DiskSettings, SyncMode, POSITION_SYNC_EVENTS};
use crate::event::Event;
use crate::pipeline::{Metrics, Queue};

thread_local! {
    /// Set by a test: `O_DIRECT` is refused (`EINVAL`) on this thread at this stage ("open"
    /// or "write"), as on a file system without it.
    pub(super) static REFUSE_DIRECT: std::cell::Cell<Option<&'static str>> = const { std::cell::Cell::new(None) };
    /// How many times [`REFUSE_DIRECT`] refused.
    pub(super) static REFUSED: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

fn settings(dir: &Path) -> DiskSettings {
    DiskSettings {
        path: dir.to_path_buf(),
        max_size: 0,
        segment_size: 4096,
        read_ahead: 16,
        write_ahead: 256,
        retry_interval: Duration::from_millis(10),
        max_retry_interval: Duration::from_millis(50),
        sync: SyncMode::Batch,
        pack: None,
    }
}

fn open(dir: &Path) -> (Queue, Arc<Metrics>) {
    open_with(settings(dir))
}

fn open_with(s: DiskSettings) -> (Queue, Arc<Metrics>) {
    let m = Arc::new(Metrics::default());
    (Queue::with_disk(s, Arc::clone(&m)).unwrap(), m)
}

/// [`open`], with every input started: batches flow.
fn started(dir: &Path) -> (Queue, Arc<Metrics>) {
    let (q, m) = open(dir);
    q.all_inputs_started();
    (q, m)
}

/// Why a queue on `dir` cannot be opened.
fn refused(dir: &Path) -> DiskError {
    Queue::with_disk(settings(dir), Arc::new(Metrics::default())).unwrap_err()
}

/// A stop as the pipeline makes it: the inputs end and the output is aborted, leaving
/// what was not acknowledged on disk.
fn abort(q: &Queue) {
    q.stop_inputs();
    q.cancel();
}

/// Rewrites the file at `path` through `edit`, as damage on disk would.
fn damage(path: &Path, edit: impl FnOnce(&mut Vec<u8>)) {
    let mut b = std::fs::read(path).unwrap();
    edit(&mut b);
    std::fs::write(path, &b).unwrap();
}

/// Publishes `ev-<i>` for `i` in `range` (padded so a segment holds a few dozen), 20
/// events per write.
fn publish(q: &Queue, range: std::ops::Range<u64>) {
    let mut p = q.publisher("gen");
    for i in range {
        p.publish(Bytes::from(format!("ev-{i:06}-{}", "x".repeat(60))))
            .unwrap();
        if i % 20 == 19 {
            p.flush().unwrap();
        }
    }
    p.close().unwrap();
}

fn id(doc: &Bytes) -> u64 {
    std::str::from_utf8(&doc[3..9]).unwrap().parse().unwrap()
}

/// Takes batches and acknowledges them until `stop_after` events are acknowledged (the
/// batch crossing it is acknowledged up to it and the rest retried), or until the run
/// ends. Returns the ids acknowledged.
async fn deliver(q: &Queue, stop_after: Option<usize>) -> Vec<u64> {
    let mut src = q.batch_source(50);
    let mut got = Vec::new();
    let limit = stop_after.unwrap_or(usize::MAX);
    let run = async {
        while got.len() < limit {
            let Some(b) = src.next_batch().await else {
                break;
            };
            let take = b.len().min(limit - got.len());
            got.extend(b.docs().take(take).map(id));
            let rest = b.len() - take;
            b.retry_events(rest);
        }
    };
    tokio::time::timeout(Duration::from_secs(20), run)
        .await
        .expect("the queue delivered within 20s");
    got
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    v.sort();
    v
}

/// Writes 0..n, acknowledges nothing, closes: a backlog on disk.
async fn backlog(dir: &Path, n: u64) {
    let (q, _) = started(dir);
    publish(&q, 0..n);
    abort(&q);
    assert_eq!(q.close(), n, "everything is still queued");
}

/// Reopens and delivers everything; returns ids and events counted lost.
async fn reopen_all(dir: &Path) -> (Vec<u64>, u64) {
    let (q, m) = started(dir);
    let got = deliver(&q, None).await;
    q.close();
    (got, m.disk_events_lost.load(Ordering::Relaxed))
}

#[tokio::test]
async fn delivered_events_are_not_sent_again_after_a_clean_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (q, m) = started(dir.path());
        publish(&q, 0..500);
        let got = deliver(&q, None).await;
        assert_eq!(got, (0..500).collect::<Vec<_>>(), "in publish order");
        assert_eq!(q.close(), 0);
        assert_eq!(m.acked.load(Ordering::Relaxed), 500);
        assert!(m.disk_fsyncs.load(Ordering::Relaxed) >= 2);
    }
    let (got, lost) = reopen_all(dir.path()).await;
    assert_eq!(got, Vec::<u64>::new(), "nothing re-sent");
    assert_eq!(lost, 0);
    assert!(
        segments(dir.path()).len() <= 1,
        "acknowledged segments are deleted: {:?}",
        segments(dir.path())
    );
}

#[tokio::test]
async fn unsettled_events_survive_a_restart_and_only_they_are_sent() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (q, _) = started(dir.path());
        publish(&q, 0..500);
        let got = deliver(&q, Some(321)).await;
        assert_eq!(got.len(), 321);
        abort(&q);
        let left = q.close();
        // The batch the output acknowledged in part is recorded to its first event handed
        // back, not from its start.
        assert_eq!(left, 179, "left on disk");
    }
    let (got, lost) = reopen_all(dir.path()).await;
    assert_eq!(
        got,
        (321..500).collect::<Vec<_>>(),
        "nothing acknowledged re-sent"
    );
    assert_eq!(lost, 0);
}

/// Ids of a batch's events.
fn ids(b: &crate::pipeline::Batch) -> Vec<u64> {
    b.docs().map(id).collect()
}

/// Publishes 0..100 on a started queue and takes its first batch, a whole one of 50.
async fn first_batch_of_50(
    dir: &Path,
) -> (
    Queue,
    Arc<Metrics>,
    crate::pipeline::BatchSource,
    crate::pipeline::Batch,
) {
    let (q, m) = started(dir);
    let mut src = q.batch_source(50);
    publish(&q, 0..100);
    wait_in_memory(&m, 50).await;
    let b = src.next_batch().await.unwrap();
    assert_eq!(ids(&b), (0..50).collect::<Vec<_>>());
    (q, m, src, b)
}

/// Waits (bounded) until the reader has handed `n` events to the memory stage, so the next
/// batch is a whole one.
async fn wait_in_memory(m: &Metrics, n: u64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while m.queue_filled.load(Ordering::Relaxed) < n {
        assert!(
            std::time::Instant::now() < deadline,
            "the reader handed over {} of {n} events within 20s",
            m.queue_filled.load(Ordering::Relaxed)
        );
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn a_batch_acknowledged_around_a_failed_event_records_up_to_that_event() {
    use crate::pipeline::Fate;
    let dir = tempfile::tempdir().unwrap();
    {
        let (q, _, mut src, b) = first_batch_of_50(dir.path()).await;
        // Elasticsearch-like verdicts: items 10 and 20 are to be retried, the rest acked.
        b.resolve(
            |i, _| {
                if i == 10 || i == 20 {
                    Fate::Retry
                } else {
                    Fate::Ack
                }
            },
            "",
        );
        let again = src.next_batch().await.unwrap();
        assert_eq!(ids(&again), [10, 20], "only the failed items again");
        // Now 10 is delivered, 20 fails again: the prefix reaches 20.
        again.resolve(|i, _| if i == 0 { Fate::Ack } else { Fate::Retry }, "");
        let last = src.next_batch().await.unwrap();
        assert_eq!(ids(&last), [20]);
        abort(&q);
        last.cancelled();
        assert_eq!(q.close(), 80, "recorded up to event 20 exactly");
    }
    let (got, lost) = reopen_all(dir.path()).await;
    // Events 21..50 were acknowledged after the hole at 20: the documented re-send.
    assert_eq!(got, (20..100).collect::<Vec<_>>());
    assert_eq!(lost, 0);
}

#[tokio::test]
async fn a_window_partly_acknowledged_at_a_stop_is_recorded_to_its_acknowledged_end() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (q, m, _src, mut b) = first_batch_of_50(dir.path()).await;
        b.acknowledge_head(30);
        abort(&q);
        // A stop aborts the output: the batch is dropped without a verdict.
        drop(b);
        assert_eq!(m.retried.load(Ordering::Relaxed), 0, "a stop is no failure");
        assert_eq!(q.close(), 70);
    }
    let (got, _) = reopen_all(dir.path()).await;
    assert_eq!(got, (30..100).collect::<Vec<_>>());
}

#[tokio::test]
async fn the_publisher_is_acknowledged_when_its_events_are_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let (q, _) = started(dir.path());
    let mut p = q.publisher("relay");
    p.publish(Bytes::from_static(b"one")).unwrap();
    assert_eq!(p.settled(), 0, "buffered, not yet written");
    p.flush().unwrap();
    assert_eq!(p.settled(), 1, "durable: the input may ACK its client");
    let on_disk: u64 = segments(dir.path())
        .iter()
        .map(|s| std::fs::metadata(s).unwrap().len())
        .sum();
    // The header block and one block holding the padded batch (docs/disk-queue.md §3).
    assert_eq!(on_disk, 2 * BLOCK as u64);
    p.close().unwrap();
    q.cancel();
    q.close();
}

#[tokio::test]
async fn a_second_queue_on_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (q, _) = open(dir.path());
    let err = refused(dir.path());
    assert!(matches!(err, DiskError::Locked { .. }), "{err}");
    let text = err.to_string();
    assert!(text.contains("in use by another skidder process"), "{text}");
    assert!(text.contains("skidder.lock"), "{text}");
    q.close();
    drop(q);
}

#[tokio::test]
async fn a_flipped_byte_loses_one_event_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    backlog(dir.path(), 300).await;
    let segs = segments(dir.path());
    assert!(segs.len() >= 3, "{segs:?}");
    let at = BLOCK + format::frame_len(70) + 30; // inside the second frame's payload
    damage(&segs[1], |b| b[at] ^= 0x20);
    let (got, lost) = reopen_all(dir.path()).await;
    assert_eq!(lost, 1);
    assert_eq!(got.len(), 299);
    let missing: Vec<u64> = (0..300).filter(|i| !got.contains(i)).collect();
    assert_eq!(missing.len(), 1);
}

#[tokio::test]
async fn a_zeroed_block_and_a_truncated_segment_lose_only_their_events() {
    let dir = tempfile::tempdir().unwrap();
    backlog(dir.path(), 400).await;
    let segs = segments(dir.path());
    assert!(segs.len() >= 4, "{segs:?}");
    // Zero 1 KiB in the middle of the second segment's frames.
    damage(&segs[1], |b| b[BLOCK + 512..BLOCK + 1536].fill(0));
    // Cut the third segment in half.
    damage(&segs[2], |b| b.truncate(b.len() / 2));
    let (got, lost) = reopen_all(dir.path()).await;
    assert!(lost > 0);
    assert_eq!(
        got.len() as u64 + lost,
        400,
        "every event delivered or counted lost"
    );
    let mut sorted = got.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, got, "order kept across the skipped stretches");
}

#[tokio::test]
async fn a_missing_position_record_resends_from_the_oldest_segment_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (q, _) = started(dir.path());
        publish(&q, 0..200);
        assert_eq!(deliver(&q, Some(120)).await.len(), 120);
        abort(&q);
        q.close();
    }
    let oldest = format::decode_header(&std::fs::read(&segments(dir.path())[0]).unwrap()).unwrap();
    std::fs::remove_file(dir.path().join("position")).unwrap();
    let (got, lost) = reopen_all(dir.path()).await;
    assert_eq!(lost, 0);
    assert_eq!(
        got,
        (oldest..200).collect::<Vec<_>>(),
        "re-sent, never lost"
    );
    assert!(oldest <= 120);
}

#[tokio::test]
async fn a_torn_tail_is_cut_silently() {
    let dir = tempfile::tempdir().unwrap();
    backlog(dir.path(), 100).await;
    let last = segments(dir.path()).pop().unwrap();
    damage(&last, |b| b.extend_from_slice(&[7u8; 10])); // half a frame header
    let (got, lost) = reopen_all(dir.path()).await;
    assert_eq!(got, (0..100).collect::<Vec<_>>());
    assert_eq!(lost, 0, "a torn tail is the normal crash case, not a loss");
}

#[tokio::test]
async fn an_unknown_format_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    backlog(dir.path(), 10).await;
    let seg = segments(dir.path()).remove(0);
    damage(&seg, |b| {
        b[4] = 9;
        let crc = crc32fast::hash(&b[0..20]);
        b[20..24].copy_from_slice(&crc.to_le_bytes());
    });
    let err = refused(dir.path());
    let text = err.to_string();
    assert!(matches!(err, DiskError::Version { .. }), "{text}");
    assert!(
        text.contains("version 9") && text.contains(".seg"),
        "{text}"
    );
}

#[tokio::test]
async fn max_size_blocks_the_publisher_until_segments_are_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let (q, m) = open_with(DiskSettings {
        max_size: 3 * 4096,
        ..settings(dir.path())
    });
    q.all_inputs_started();
    let writer = {
        let q = q.clone();
        std::thread::spawn(move || publish(&q, 0..1000))
    };
    // The writer cannot finish alone: 1000 events need ~90 KB, the queue holds 12 KB.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while m.disk_full.load(Ordering::Relaxed) == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the queue never reported full"
        );
        std::thread::yield_now();
    }
    assert!(m
        .snapshot()
        .output_state()
        .unwrap()
        .contains("disk queue full"));
    let got = deliver(&q, None).await;
    writer.join().unwrap();
    assert_eq!(
        got,
        (0..1000).collect::<Vec<_>>(),
        "slowed, nothing dropped"
    );
    q.close();
}

#[tokio::test]
async fn a_failover_pair_shares_the_disk_queue_through_gates() {
    use crate::pipeline::Gate;
    let dir = tempfile::tempdir().unwrap();
    let (q, _) = started(dir.path());
    publish(&q, 0..300);
    let primary_gate = Arc::new(Gate::new(true));
    let fallback_gate = Arc::new(Gate::new(false));
    let mut primary = q.batch_source(40).gated(Arc::clone(&primary_gate), 40);
    let mut fallback = q.batch_source(60).gated(Arc::clone(&fallback_gate), 60);
    let first = primary.next_batch().await.unwrap();
    assert!(first.len() <= 40);
    let mut got: Vec<u64> = first.docs().map(id).collect();
    first.ack();
    // The primary fails: its batch goes back and the fallback side takes over.
    let failed = primary.next_batch().await.unwrap();
    failed.retry();
    primary_gate.close();
    fallback_gate.open();
    let run = async {
        while let Some(b) = fallback.next_batch().await {
            assert!(b.len() <= 60, "the fallback's own bulk_max_size");
            got.extend(b.docs().map(id));
            b.ack();
        }
    };
    tokio::time::timeout(Duration::from_secs(20), run)
        .await
        .expect("the fallback drained the queue within 20s");
    assert_eq!(got, (0..300).collect::<Vec<_>>(), "in order, nothing lost");
    assert_eq!(q.close(), 0);
}

#[tokio::test]
async fn a_backlog_larger_than_the_recent_events_in_memory_is_read_back_from_disk() {
    let dir = tempfile::tempdir().unwrap();
    let (q, _) = open_with(DiskSettings {
        segment_size: 1 << 20,
        ..settings(dir.path())
    });
    q.all_inputs_started();
    // ~6.5 MB, more than the 4 MiB of just-written events the reader may take from memory:
    // the oldest come back from the segments, the newest from memory, in one order.
    let mut p = q.publisher("gen");
    for i in 0..60_000u64 {
        p.publish(Bytes::from(format!("ev-{i:06}-{}", "y".repeat(90))))
            .unwrap();
    }
    p.close().unwrap();
    let got = deliver(&q, None).await;
    assert_eq!(got.len(), 60_000);
    assert!(got.iter().copied().eq(0..60_000), "in publish order");
    assert_eq!(q.close(), 0);
}

/// Writes a version 1 segment, as a build before format 2 left it: the 24-byte header, then
/// `ev-<i>` frames back to back.
fn write_v1_segment(path: &Path, range: std::ops::Range<u64>) {
    let mut b = format::encode_header_version(range.start, format::VERSION_1).to_vec();
    for i in range {
        format::encode_frame(
            &mut b,
            i,
            format!("ev-{i:06}-{}", "x".repeat(60)).as_bytes(),
        );
    }
    std::fs::write(path, b).unwrap();
}

#[tokio::test]
async fn a_version_1_backlog_is_delivered_after_the_upgrade_and_new_events_are_written_as_version_2(
) {
    let dir = tempfile::tempdir().unwrap();
    write_v1_segment(&dir.path().join(format!("{:020}.seg", 1)), 0..150);
    write_v1_segment(&dir.path().join(format!("{:020}.seg", 2)), 150..200);
    let mut pos = Vec::new();
    for generation in 0..2 {
        pos.extend_from_slice(&format::encode_slot(format::Slot {
            generation,
            acked: 40,
        }));
    }
    std::fs::write(dir.path().join("position"), pos).unwrap();
    {
        let (q, m) = started(dir.path());
        publish(&q, 200..260);
        let got = deliver(&q, None).await;
        assert_eq!(
            got,
            (40..260).collect::<Vec<_>>(),
            "the old backlog, then the new"
        );
        assert_eq!(m.disk_events_lost.load(Ordering::Relaxed), 0);
        assert_eq!(q.close(), 0);
    }
    let segs = segments(dir.path());
    assert!(!segs.is_empty());
    for seg in &segs {
        let b = std::fs::read(seg).unwrap();
        assert_eq!(
            &b[4..8],
            &format::VERSION.to_le_bytes(),
            "{}",
            seg.display()
        );
        assert_eq!(b.len() % BLOCK, 0, "{}: whole blocks", seg.display());
    }
    assert!(
        !dir.path().join(format!("{:020}.seg", 1)).exists(),
        "the acknowledged version 1 segment is deleted"
    );
    let (got, lost) = reopen_all(dir.path()).await;
    assert_eq!(got, Vec::<u64>::new(), "nothing re-sent");
    assert_eq!(lost, 0);
}

/// Publishes `0..n` into a fresh queue in `dir` with `O_DIRECT` refused at `stage` (or not),
/// stops with everything queued, and returns the segment files' bytes.
fn backlog_refusing(dir: &Path, n: u64, stage: Option<&'static str>) -> Vec<Vec<u8>> {
    REFUSE_DIRECT.with(|r| r.set(stage));
    REFUSED.with(|r| r.set(0));
    let (q, _) = started(dir);
    publish(&q, 0..n);
    abort(&q);
    assert_eq!(q.close(), n);
    REFUSE_DIRECT.with(|r| r.set(None));
    segments(dir)
        .iter()
        .map(|s| std::fs::read(s).unwrap())
        .collect()
}

#[tokio::test]
async fn without_o_direct_the_same_bytes_go_through_the_page_cache() {
    let direct = tempfile::tempdir().unwrap();
    let want = backlog_refusing(direct.path(), 300, None);
    assert_eq!(REFUSED.with(|r| r.get()), 0);
    assert!(want.len() >= 3, "several segments");
    for stage in ["open", "write"] {
        let dir = tempfile::tempdir().unwrap();
        let got = backlog_refusing(dir.path(), 300, Some(stage));
        assert_eq!(
            REFUSED.with(|r| r.get()),
            1,
            "refused at {stage} once: later segments go straight to the page cache"
        );
        assert!(got == want, "refused at {stage}: the same bytes on disk");
        let (ids, lost) = reopen_all(dir.path()).await;
        assert_eq!(ids, (0..300).collect::<Vec<_>>(), "refused at {stage}");
        assert_eq!(lost, 0);
    }
}

fn events(range: std::ops::Range<u64>) -> Vec<Event> {
    range
        .map(|i| Event::new(0, Bytes::from(format!("ev-{i:06}"))))
        .collect()
}

/// Waits (bounded) until `what` holds of the disk's position record.
fn wait_position(disk: &Disk, what: &str, ok: impl Fn(&super::Position) -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        {
            let p = super::lock(&disk.position);
            if ok(&p) {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "within 10s: {what} (written {}, synced {})",
                p.written,
                p.synced
            );
        }
        std::thread::yield_now();
    }
}

#[test]
fn position_syncs_are_coalesced_within_the_documented_bound_and_a_clean_stop_syncs_the_last() {
    let dir = tempfile::tempdir().unwrap();
    let m = Arc::new(Metrics::default());
    let disk = Arc::new(
        Disk::open(
            DiskSettings {
                segment_size: 1 << 30,
                ..settings(dir.path())
            },
            Arc::clone(&m),
        )
        .unwrap(),
    );
    // The acker alone: with no memory stage the reader ends at once.
    disk.start_threads(std::sync::Weak::new());
    const N: u64 = 40_000;
    for chunk in events(0..N).chunks(2000) {
        disk.append(chunk, |_| ()).unwrap();
    }
    let before = m.disk_fsyncs.load(Ordering::Relaxed);
    let started = std::time::Instant::now();
    let mut acked = 0;
    while acked < N {
        acked = (acked + 2048).min(N);
        disk.settled_to(acked);
        wait_position(&disk, "the advance is written", |p| p.written == acked);
        // What a power cut could lose of the record: less than the documented bound.
        let p = super::lock(&disk.position);
        assert!(
            p.written - p.synced < POSITION_SYNC_EVENTS,
            "written {} synced {}",
            p.written,
            p.synced
        );
    }
    let syncs = m.disk_fsyncs.load(Ordering::Relaxed) - before;
    // One per 16,384 events, plus one per second the advances took; before this, one per
    // advance (20 here).
    let allowed = N / POSITION_SYNC_EVENTS + 1 + started.elapsed().as_secs();
    assert!(
        syncs <= allowed,
        "{syncs} position syncs for 20 advances, at most {allowed}"
    );
    disk.close();
    let p = super::lock(&disk.position);
    assert_eq!(
        (p.written, p.synced),
        (N, N),
        "a clean stop syncs the record"
    );
    assert!(!p.dirty);
}

#[test]
fn an_unsynced_position_is_synced_within_a_second_without_further_advances() {
    let dir = tempfile::tempdir().unwrap();
    let disk = Arc::new(Disk::open(settings(dir.path()), Arc::new(Metrics::default())).unwrap());
    disk.start_threads(std::sync::Weak::new());
    disk.append(&events(0..30), |_| ()).unwrap();
    disk.settled_to(10);
    wait_position(&disk, "the small advance is synced by time", |p| {
        p.synced == 10 && !p.dirty
    });
    disk.close();
}

#[test]
fn a_write_is_counted_before_close_can_read_the_queue_and_none_is_taken_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let disk = Arc::new(Disk::open(settings(dir.path()), Arc::new(Metrics::default())).unwrap());
    disk.start_threads(std::sync::Weak::new());
    let counted = std::sync::atomic::AtomicU64::new(0);
    // `count` runs inside the write: what a stop's totals read afterwards includes it.
    let a = disk
        .append(&events(0..30), |a| {
            counted.fetch_add(a.written as u64, Ordering::Relaxed);
        })
        .unwrap();
    assert_eq!(a.written, 30);
    assert_eq!(counted.load(Ordering::Relaxed), 30);
    disk.close();
    assert_eq!(disk.unsettled(), 30);
    // After close the queue's count is final: a late input's batch is refused, not kept
    // uncounted (its input is told it was not published).
    assert!(disk
        .append(&events(30..40), |_| panic!("counted after close"))
        .is_err());
    assert_eq!(disk.unsettled(), 30);
    drop(disk);
    let reopened = Disk::open(settings(dir.path()), Arc::new(Metrics::default())).unwrap();
    assert_eq!(reopened.unsettled(), 30, "nothing was written after close");
}

// Packed windows (docs/disk-queue.md §11).

/// [`settings`] packing windows of up to `max` events, with flate2 as the output would.
fn packing(dir: &Path, max: usize) -> DiskSettings {
    DiskSettings {
        pack: Some(crate::pipeline::PackSettings {
            max_events: max,
            compressor: Arc::new(|| Box::new(skidder_protocol::Flate2Compressor::new(1))),
        }),
        segment_size: 1 << 20,
        ..settings(dir)
    }
}

/// A started queue packing windows of 16 and a source that takes them whole, made before
/// anything is published (its bulk_max_size widens what the reader may hold).
fn packed_source(dir: &Path) -> (Queue, Arc<Metrics>, crate::pipeline::BatchSource) {
    let (q, m) = open_with(packing(dir, 16));
    q.all_inputs_started();
    let mut src = q.batch_source(16);
    src.accept_packed(true);
    (q, m, src)
}

/// Ids of a batch's events, packed or not.
fn any_ids(b: &crate::pipeline::Batch) -> Vec<u64> {
    b.events()
        .iter()
        .map(|e| match &e.packed {
            Some(p) => id(&p.window.event(p.index).unwrap()),
            None => id(&e.bytes),
        })
        .collect()
}

#[tokio::test]
async fn a_source_that_takes_packed_windows_gets_each_whole_and_alone() {
    let dir = tempfile::tempdir().unwrap();
    let (q, m, mut src) = packed_source(dir.path());
    // Writes of 20: a window of 16, then 4 events too few to pack.
    publish(&q, 0..40);
    // Windows are loaded whole once their first event is within read_ahead +
    // bulk_max_size (32): both windows and the 4 events between them.
    wait_in_memory(&m, 36).await;
    let (mut got, mut windows) = (Vec::new(), 0);
    while got.len() < 40 {
        let b = tokio::time::timeout(Duration::from_secs(20), src.next_batch())
            .await
            .expect("a batch within 20s")
            .expect("the run is not over");
        match b.packed() {
            Some(wire) => {
                windows += 1;
                assert_eq!(b.len(), 16, "a window comes whole");
                assert_eq!(
                    skidder_protocol::packed::packed_count(wire),
                    Some(16),
                    "the stored bytes are a window of its events"
                );
            }
            None => assert!(
                b.events().iter().all(|e| e.packed.is_none()),
                "a window is never cut into a batch with other events"
            ),
        }
        got.extend(any_ids(&b));
        b.ack();
    }
    assert_eq!(windows, 2);
    assert_eq!(m.disk_events_packed.load(Ordering::Relaxed), 32);
    assert_eq!(got, (0..40).collect::<Vec<_>>(), "in publish order");
    q.close();
}

#[tokio::test]
async fn packed_windows_are_taken_apart_for_other_sources_and_after_a_partial_ack() {
    let dir = tempfile::tempdir().unwrap();
    let (q, m, mut src) = packed_source(dir.path());
    publish(&q, 0..40);
    wait_in_memory(&m, 16).await;
    let b = src.next_batch().await.unwrap();
    assert!(b.packed().is_some());
    // A Lumberjack partial ACK: 10 acknowledged, 6 handed back.
    b.retry_events(6);
    let b = src.next_batch().await.unwrap();
    assert!(
        b.packed().is_none(),
        "the rest of a window is not the window"
    );
    assert_eq!(
        ids(&b),
        (10..16).collect::<Vec<_>>(),
        "taken apart: own bytes"
    );
    b.ack();
    // A source that does not take packed windows (Elasticsearch, a failover's fallback).
    let got = deliver(&q, None).await;
    assert_eq!(got, (16..40).collect::<Vec<_>>());
    q.close();
}

#[tokio::test]
async fn a_restart_inside_a_packed_window_sends_only_its_unacknowledged_events() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (q, _) = open_with(packing(dir.path(), 16));
        q.all_inputs_started();
        publish(&q, 0..100);
        assert_eq!(deliver(&q, Some(23)).await.len(), 23);
        abort(&q);
        assert_eq!(q.close(), 77, "left on disk");
    }
    // Read back from the segments this time (nothing recent in memory after a restart).
    let (q, m) = open_with(packing(dir.path(), 16));
    q.all_inputs_started();
    let got = deliver(&q, None).await;
    q.close();
    assert_eq!(
        got,
        (23..100).collect::<Vec<_>>(),
        "nothing acknowledged re-sent"
    );
    assert_eq!(m.disk_events_lost.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn a_packed_window_that_cannot_be_taken_apart_drops_its_events_and_delivers_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (q, _) = open_with(packing(dir.path(), 16));
        q.all_inputs_started();
        publish(&q, 0..40);
        abort(&q);
        assert_eq!(q.close(), 40);
    }
    // The first window's zlib stream damaged, its frame's CRC made to match again: only a
    // writer bug or a crafted file can do this, and the reader cannot tell without
    // inflating.
    let seg = segments(dir.path()).pop().unwrap();
    damage(&seg, |b| {
        let mut fr = format::FrameReader::new(0);
        fr.feed(&b[format::HEADER_LEN..]);
        let (seq, count, offset, wire) = loop {
            match fr.next(true) {
                format::Step::Packed {
                    seq,
                    count,
                    offset,
                    wire,
                } => break (seq, count, offset, wire),
                format::Step::End { .. } => panic!("no packed window in {seg:?}"),
                _ => {}
            }
        };
        let mut bad = wire.to_vec();
        let mid = bad.len() - 8;
        bad[mid] ^= 0xff;
        let mut frame = Vec::new();
        format::encode_packed_frame(&mut frame, seq, count, &bad);
        let at = offset as usize;
        b[at..at + frame.len()].copy_from_slice(&frame);
    });
    let (q, m) = started(dir.path());
    let got = deliver(&q, None).await;
    q.close();
    assert_eq!(got, (16..40).collect::<Vec<_>>(), "the rest is delivered");
    assert_eq!(
        m.failed.load(Ordering::Relaxed),
        16,
        "the window's events, dropped"
    );
    assert_eq!(m.disk_events_lost.load(Ordering::Relaxed), 0);
}

#[test]
fn writers_packing_at_once_share_at_most_one_compressor_per_core_and_every_event_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let m = Arc::new(Metrics::default());
    let disk = Arc::new(Disk::open(packing(dir.path(), 16), Arc::clone(&m)).unwrap());
    const WRITERS: u64 = 12;
    std::thread::scope(|s| {
        for w in 0..WRITERS {
            let disk = Arc::clone(&disk);
            s.spawn(move || {
                for batch in events(w * 1000..w * 1000 + 320).chunks(32) {
                    disk.append(batch, |_| ()).unwrap();
                }
            });
        }
    });
    let pool = super::lock(&disk.packers);
    assert!(
        (1..=super::max_packers()).contains(&pool.made),
        "{} compressors made for {WRITERS} writers, at most {}",
        pool.made,
        super::max_packers()
    );
    assert_eq!(pool.idle.len(), pool.made, "every one put back");
    drop(pool);
    assert_eq!(
        m.disk_events_packed.load(Ordering::Relaxed),
        WRITERS * 320,
        "every batch of 32 is two full windows"
    );
    disk.close();
}
