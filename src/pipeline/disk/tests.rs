//! The disk queue through the pipeline's own interface: publishers in, batches out, then
//! reopened as a restart would.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::format::{self, HEADER_LEN};
use super::{DiskError, DiskSettings, SyncMode};
use crate::pipeline::{Metrics, Queue};

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
    assert_eq!(on_disk, (HEADER_LEN + format::frame_len(3)) as u64);
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
    let at = HEADER_LEN + format::frame_len(70) + 30; // inside the second frame's payload
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
    // Zero 1 KiB in the middle of the second segment.
    damage(&segs[1], |b| b[1024..2048].fill(0));
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
