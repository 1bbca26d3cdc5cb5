//! Queue behaviour: ordering of acknowledgements, retries, backpressure, end of run.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::*;

fn queue(capacity: usize, min_events: usize) -> Queue {
    Queue::new(
        QueueSettings {
            capacity,
            min_events,
            flush_timeout: Duration::from_secs(3600),
        },
        Arc::new(Metrics::default()),
    )
}

fn ev(n: u64) -> Bytes {
    Bytes::from(n.to_string())
}

fn nums(b: &Batch) -> Vec<u64> {
    b.docs()
        .map(|d| std::str::from_utf8(d).unwrap().parse().unwrap())
        .collect()
}

/// Waits up to 10 s for `cond`, failing with `what`.
fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        std::thread::yield_now();
    }
}

fn publish_all(p: &mut Publisher, range: std::ops::Range<u64>) {
    for n in range {
        p.publish(ev(n)).unwrap();
    }
    p.flush().unwrap();
}

#[tokio::test]
async fn acks_reach_the_input_in_publish_order() {
    let q = queue(100, 1);
    let mut p = q.publisher("in");
    q.all_inputs_started();
    publish_all(&mut p, 0..10);
    let mut src = q.batch_source(5);
    let first = src.next_batch().await.unwrap();
    let second = src.next_batch().await.unwrap();
    assert_eq!(nums(&first), [0, 1, 2, 3, 4]);
    assert_eq!(nums(&second), [5, 6, 7, 8, 9]);
    second.ack();
    assert_eq!(p.acked(), 0, "a later batch must wait for the earlier one");
    assert_eq!(q.metrics().acked.load(Ordering::Relaxed), 5);
    first.ack();
    assert_eq!(p.acked(), 10);
}

#[tokio::test]
async fn retried_batches_come_back_first_in_original_order() {
    let q = queue(100, 1);
    let mut p = q.publisher("in");
    q.all_inputs_started();
    publish_all(&mut p, 0..15);
    let mut src = q.batch_source(5);
    let a = src.next_batch().await.unwrap();
    let b = src.next_batch().await.unwrap();
    b.retry();
    a.retry();
    let again: Vec<Vec<u64>> = vec![
        nums(&src.next_batch().await.unwrap_or_else(|| panic!("a"))),
        nums(&src.next_batch().await.unwrap_or_else(|| panic!("b"))),
        nums(&src.next_batch().await.unwrap_or_else(|| panic!("c"))),
    ];
    assert_eq!(
        again,
        [
            vec![0, 1, 2, 3, 4],
            vec![5, 6, 7, 8, 9],
            vec![10, 11, 12, 13, 14]
        ]
    );
    assert_eq!(q.metrics().retried.load(Ordering::Relaxed), 10);
}

#[tokio::test]
async fn partial_retry_acks_the_prefix_and_resends_the_rest() {
    let q = queue(100, 1);
    let mut p = q.publisher("in");
    q.all_inputs_started();
    publish_all(&mut p, 0..5);
    let mut src = q.batch_source(5);
    let b = src.next_batch().await.unwrap();
    b.retry_events(2);
    assert_eq!(q.metrics().acked.load(Ordering::Relaxed), 3);
    assert_eq!(
        p.acked(),
        0,
        "the range is reported only when all of it is settled"
    );
    let rest = src.next_batch().await.unwrap();
    assert_eq!(nums(&rest), [3, 4]);
    assert_eq!(rest.retries(), 1);
    rest.resolve(|i, _| if i == 0 { Fate::Ack } else { Fate::Drop }, "test");
    assert_eq!(p.acked(), 4);
    assert_eq!(p.settled(), 5);
    assert_eq!(q.metrics().dropped.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn a_batch_dropped_without_verdict_goes_back() {
    let q = queue(100, 1);
    let mut p = q.publisher("in");
    q.all_inputs_started();
    publish_all(&mut p, 0..3);
    let mut src = q.batch_source(10);
    drop(src.next_batch().await.unwrap());
    let b = src.next_batch().await.unwrap();
    assert_eq!(nums(&b), [0, 1, 2]);
    b.ack();
    assert_eq!(p.acked(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_queue_blocks_publishers_until_events_settle() {
    let q = queue(10, 1);
    let mut p = q.publisher("in");
    q.all_inputs_started();
    let producer = std::thread::spawn(move || {
        publish_all(&mut p, 0..25);
        p.close().unwrap();
    });
    let metrics = Arc::clone(q.metrics());
    wait_for("the queue to fill", || {
        metrics.published.load(Ordering::Relaxed) == 10
    });
    assert!(!producer.is_finished(), "the producer must wait for space");
    assert_eq!(q.unsettled(), 10);
    let mut src = q.batch_source(4);
    let mut seen = Vec::new();
    while let Some(b) = src.next_batch().await {
        assert!(q.unsettled() <= 10, "capacity counts in-flight events");
        seen.extend(nums(&b));
        b.ack();
    }
    producer.join().unwrap();
    assert_eq!(seen, (0..25).collect::<Vec<_>>());
    q.wait_idle().await;
}

// Paused time: the "nothing yet" wait below ends only once every task is idle, so
// it cannot pass merely because the machine was too slow to poll the source.
#[tokio::test(start_paused = true)]
async fn min_events_holds_small_batches_until_inputs_finish() {
    let q = queue(100, 50);
    let mut p = q.publisher("in");
    q.all_inputs_started();
    publish_all(&mut p, 0..3);
    let mut src = q.batch_source(100);
    let early = tokio::time::timeout(Duration::from_secs(1), src.next_batch()).await;
    assert!(early.is_err(), "3 events are below flush.min_events");
    p.close().unwrap();
    let b = src.next_batch().await.unwrap();
    assert_eq!(nums(&b), [0, 1, 2]);
    b.ack();
    assert!(src.next_batch().await.is_none());
}

#[tokio::test]
async fn flush_timeout_releases_a_partial_batch() {
    let q = Queue::new(
        QueueSettings {
            capacity: 100,
            min_events: 50,
            flush_timeout: Duration::from_millis(20),
        },
        Arc::new(Metrics::default()),
    );
    let mut p = q.publisher("in");
    q.all_inputs_started();
    publish_all(&mut p, 0..3);
    let mut src = q.batch_source(100);
    let b = tokio::time::timeout(Duration::from_secs(10), src.next_batch())
        .await
        .expect("flush.timeout must release the batch")
        .unwrap();
    assert_eq!(b.len(), 3);
    b.ack();
}

/// Takes a batch of at most `bulk` events that is published only after the source went to
/// sleep on the empty queue: the source is polled once first, then `events` are published;
/// `why` is the failure message if no batch comes within 10 s.
async fn batch_published_while_waiting(
    q: &Queue,
    bulk: usize,
    events: std::ops::Range<u64>,
    why: &str,
) -> Vec<u64> {
    let mut p = q.publisher("in");
    q.all_inputs_started();
    let mut src = q.batch_source(bulk);
    let waiting = src.next_batch();
    tokio::pin!(waiting);
    let early = tokio::time::timeout(Duration::from_secs(1), &mut waiting).await;
    assert!(early.is_err(), "nothing is queued yet");
    publish_all(&mut p, events);
    let got = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect(why)
        .unwrap();
    let n = nums(&got);
    got.ack();
    n
}

// Paused time: the "nothing yet" wait below ends only once every task is idle, so
// it cannot pass merely because the machine was too slow to poll the source.
#[tokio::test(start_paused = true)]
async fn a_source_waiting_on_an_empty_queue_gets_late_events_after_flush_timeout() {
    // Publishers do not wake sources for the first events of an empty queue; the source's
    // own flush.timeout wake-up must still release them.
    let q = Queue::new(
        QueueSettings {
            capacity: 100,
            min_events: 50,
            flush_timeout: Duration::from_millis(20),
        },
        Arc::new(Metrics::default()),
    );
    let why = "flush.timeout must release events published while the source slept";
    assert_eq!(
        batch_published_while_waiting(&q, 100, 0..3, why).await,
        [0, 1, 2]
    );
}

// Paused time: the "nothing yet" wait below ends only once every task is idle, so
// it cannot pass merely because the machine was too slow to poll the source.
#[tokio::test(start_paused = true)]
async fn a_waiting_source_smaller_than_min_events_is_woken_at_its_own_size() {
    // flush.timeout is an hour: only the publisher's wake-up at the source's
    // bulk_max_size (5 < flush.min_events 50) can release this batch.
    let q = queue(100, 50);
    let why = "a full bulk_max_size batch must wake the source";
    assert_eq!(
        batch_published_while_waiting(&q, 5, 0..5, why).await,
        [0, 1, 2, 3, 4]
    );
}

#[tokio::test]
async fn stop_fails_publishers_and_cancel_ends_sources() {
    let q = queue(100, 1);
    let mut p = q.publisher("in");
    q.all_inputs_started();
    p.publish(ev(1)).unwrap();
    q.stop_inputs();
    let err = p.flush().unwrap_err();
    assert_eq!(err.unpublished, 1);
    q.cancel();
    let mut src = q.batch_source(10);
    assert!(src.next_batch().await.is_none());
}

// Paused time: the "nothing yet" wait below ends only once every task is idle, so
// it cannot pass merely because the machine was too slow to poll the source.
#[tokio::test(start_paused = true)]
async fn a_source_started_before_the_inputs_does_not_end_early() {
    let q = queue(100, 1);
    let mut src = q.batch_source(10);
    let early = tokio::time::timeout(Duration::from_secs(1), src.next_batch()).await;
    assert!(early.is_err(), "no input yet, but the run is not over");
    let mut p = q.publisher("in");
    q.all_inputs_started();
    publish_all(&mut p, 0..2);
    p.close().unwrap();
    let b = src.next_batch().await.unwrap();
    assert_eq!(nums(&b), [0, 1]);
    b.ack();
    assert!(src.next_batch().await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_publishers_wait_for_space_and_learn_their_acks() {
    let q = queue(4, 1);
    let mut p = q.publisher("relay");
    q.all_inputs_started();
    let producer = tokio::spawn(async move {
        for n in 0..300 {
            p.publish_async(ev(n)).await.unwrap();
        }
        p.flush_async().await.unwrap();
        // A relay input waits for its window to be settled before acknowledging upstream.
        tokio::time::timeout(Duration::from_secs(10), p.wait_settled(300))
            .await
            .expect("all 300 settled");
        let acked = p.acked();
        p.close_async().await.unwrap();
        acked
    });
    let mut src = q.batch_source(3);
    let mut seen = Vec::new();
    while let Some(b) = src.next_batch().await {
        assert!(q.unsettled() <= 4);
        seen.extend(nums(&b));
        b.ack();
    }
    assert_eq!(seen, (0..300).collect::<Vec<_>>());
    assert_eq!(producer.await.unwrap(), 300);
}
