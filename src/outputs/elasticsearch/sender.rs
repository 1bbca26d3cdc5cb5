//! One batch, from encoded events to a final [`BatchOutcome`]: the worker-level logic the
//! pipeline adapter calls, so that adapter only moves events and ACKs.
//!
//! Per round, the pending items are sent in bulk requests of at most `bulk_max_size` items
//! (split in halves on 413, as often as needed). Then, per item verdict:
//! - indexed, or 409 on `create` (already there from an earlier try): done;
//! - 429/5xx: kept for the next round, which waits a backoff;
//! - other 4xx: with `dead_letter_index`, re-sent at once (same round budget) wrapped as a
//!   dead-letter document; with `drop`, or when the dead-letter write itself is refused,
//!   dropped, counted, reason kept;
//! - a whole-request failure (connection, timeout, 401/403, 429/5xx, unexpected status)
//!   keeps every item of that request for the next round; connection-level failures move
//!   to the next host.
//!
//! After `max_retries` backoff rounds, the items still pending come back in
//! [`BatchOutcome::retry_later`]: nothing is dropped for being undeliverable, only for being
//! refused. (The pipeline adapter, [`super::output`], builds its senders with
//! `max_retries: 0` and applies `max_retries` per batch through the queue instead, as Beats
//! does.) Events the output cannot even encode (not a JSON object, a missing index field)
//! are non-indexable without a request and follow the same policy.
//!
//! The future can be dropped at any await point: events belong to the caller, and a batch
//! resent later with deterministic ids is not indexed twice.

use crate::config::units::human;
use bytes::Bytes;
use tracing::{debug, error, warn};

use super::bulk::{BulkBody, EncodedBody};
use super::client::{BulkReply, EsClient, EsError};
use super::response::ItemVerdict;
use super::settings::{ElasticsearchSettings, NonIndexableAction};
use crate::outputs::backoff::{random_jitter, Backoff};

/// Status recorded for events refused before any request (they could not be encoded).
pub const LOCAL_REFUSAL: u16 = 0;

/// An event given up for good.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dropped {
    /// Position of the event in the batch.
    pub event: usize,
    /// HTTP status of the refusal, or [`LOCAL_REFUSAL`].
    pub status: u16,
    /// Why (the cluster's `type: reason`, or ours).
    pub reason: String,
}

/// The final result of [`Sender::send_batch`]. Every event of the batch is counted in
/// exactly one of `indexed`, `duplicates`, `dead_lettered`, `dropped`, `retry_later`.
#[derive(Debug, Default)]
pub struct BatchOutcome {
    /// Events indexed now.
    pub indexed: usize,
    /// Events already present (409 on `create`): delivered by an earlier try.
    pub duplicates: usize,
    /// Events written to the dead-letter index.
    pub dead_lettered: usize,
    /// Events given up, with reasons.
    pub dropped: Vec<Dropped>,
    /// Positions of events not delivered within `max_retries`; hand them back to the queue.
    pub retry_later: Vec<usize>,
    /// The last whole-request error, if any.
    pub last_error: Option<EsError>,
    /// Request body bytes (as sent, compressed or not) of the requests the cluster answered.
    pub bytes_sent: u64,
}

impl BatchOutcome {
    /// Events that are finished (indexed, duplicate, dead-lettered or dropped): the ones the
    /// pipeline may acknowledge.
    pub fn acked(&self) -> usize {
        self.indexed + self.duplicates + self.dead_lettered + self.dropped.len()
    }
}

#[derive(Debug, Clone)]
enum Kind {
    Event,
    DeadLetter { status: u16, reason: String },
}

#[derive(Debug, Clone)]
struct Pending {
    event: usize,
    kind: Kind,
}

/// Sends batches for one worker: owns the body buffers, the backoff and the host rotation.
#[derive(Debug)]
pub struct Sender {
    client: EsClient,
    body: BulkBody,
    backoff: Backoff,
    policy: NonIndexableAction,
    max_retries: Option<u32>,
    loadbalance: bool,
    bulk_max_size: usize,
    next_host: usize,
}

impl Sender {
    /// A sender for `settings`, starting at host `first_host` (spread workers over hosts).
    ///
    /// # Errors
    /// As [`EsClient::new`].
    pub fn new(settings: &ElasticsearchSettings, first_host: usize) -> Result<Self, EsError> {
        let client = EsClient::new(settings)?;
        Ok(Self {
            next_host: first_host % settings.hosts.len().max(1),
            client,
            body: BulkBody::new(settings),
            backoff: Backoff::new(settings.backoff_init, settings.backoff_max),
            policy: settings.non_indexable.clone(),
            max_retries: settings.max_retries,
            loadbalance: settings.loadbalance,
            bulk_max_size: settings.bulk_max_size.max(1),
        })
    }

    /// The HTTP client (hosts, for messages).
    pub fn client(&self) -> &EsClient {
        &self.client
    }

    /// Delivers `events` as far as the cluster allows; see the module docs.
    pub async fn send_batch(&mut self, events: &[Bytes]) -> BatchOutcome {
        let mut out = BatchOutcome::default();
        let mut pending: Vec<Pending> = (0..events.len())
            .map(|event| Pending {
                event,
                kind: Kind::Event,
            })
            .collect();
        let mut retries = 0u32;
        while !pending.is_empty() {
            let mut next: Vec<Pending> = Vec::new();
            let mut failed = false;
            // A batch larger than bulk_max_size goes out in several requests; popped from
            // the end, so reversed to keep the events' order on the wire.
            let mut groups: Vec<Vec<Pending>> = pending
                .chunks(self.bulk_max_size)
                .rev()
                .map(<[Pending]>::to_vec)
                .collect();
            while let Some(group) = groups.pop() {
                match self.send_group(events, group, &mut out, &mut next).await {
                    GroupResult::Done => {}
                    GroupResult::Split(a, b) => {
                        groups.push(b);
                        groups.push(a);
                    }
                    GroupResult::Failed => failed = true,
                }
            }
            pending = next;
            if pending.is_empty() {
                break;
            }
            // Only freshly dead-lettered items and no failure: send them without waiting.
            let only_dead_letters = !failed
                && pending
                    .iter()
                    .all(|p| matches!(p.kind, Kind::DeadLetter { .. }));
            if only_dead_letters {
                continue;
            }
            if self.max_retries.is_some_and(|max| retries >= max) {
                break;
            }
            retries += 1;
            let wait = self.backoff.next_delay(random_jitter());
            debug!(items = pending.len(), retry = retries, wait = %human(wait), "bulk items pending; backing off");
            tokio::time::sleep(wait).await;
        }
        out.retry_later = pending.into_iter().map(|p| p.event).collect();
        out.retry_later.sort_unstable();
        if let Some(first) = out.dropped.first() {
            // The caller settles these events as dropped, and that is logged at ERROR once
            // (the pipeline adapter passes the reason on); here only the detail for debugging.
            debug!(
                dropped = out.dropped.len(),
                status = first.status,
                reason = %first.reason,
                "events refused as non-indexable (first reason shown; all in the outcome)"
            );
        }
        out
    }

    async fn send_group(
        &mut self,
        events: &[Bytes],
        group: Vec<Pending>,
        out: &mut BatchOutcome,
        next: &mut Vec<Pending>,
    ) -> GroupResult {
        self.body.clear();
        let mut sent: Vec<Pending> = Vec::with_capacity(group.len());
        for p in group {
            let bytes = &events[p.event];
            match &p.kind {
                Kind::Event => match self.body.add_event(bytes) {
                    Ok(()) => sent.push(p),
                    Err(e) => {
                        debug!(event = p.event, reason = %e, "event cannot be indexed");
                        self.refused(p, LOCAL_REFUSAL, e.to_string(), out, next);
                    }
                },
                Kind::DeadLetter { status, reason } => match &self.policy {
                    NonIndexableAction::DeadLetter { index } => {
                        self.body.add_dead_letter(bytes, index, *status, reason);
                        sent.push(p);
                    }
                    // Dead-letter items exist only under that policy; should the policy
                    // ever differ, the item is still accounted for, never lost silently.
                    NonIndexableAction::Drop => out.dropped.push(Dropped {
                        event: p.event,
                        status: *status,
                        reason: reason.clone(),
                    }),
                },
            }
        }
        if sent.is_empty() {
            return GroupResult::Done;
        }
        let body: EncodedBody = match self.body.finish() {
            Ok(b) => b,
            Err(e) => {
                error!(error = %e, "cannot compress the bulk body; keeping the events for a retry");
                next.extend(sent);
                return GroupResult::Failed;
            }
        };
        let host = self.pick_host();
        let reply = self.client.send_bulk(host, &body).await;
        if reply.is_ok() {
            out.bytes_sent += body.bytes.len() as u64;
        }
        match reply {
            Ok(BulkReply::Items(verdicts)) => {
                self.backoff.reset();
                for (p, verdict) in sent.into_iter().zip(verdicts) {
                    match verdict {
                        ItemVerdict::Done => match p.kind {
                            Kind::Event => out.indexed += 1,
                            Kind::DeadLetter { .. } => out.dead_lettered += 1,
                        },
                        ItemVerdict::AlreadyIndexed => out.duplicates += 1,
                        ItemVerdict::Retry { .. } => next.push(p),
                        ItemVerdict::NonIndexable { status, reason } => {
                            debug!(event = p.event, status, reason = %reason, "item refused");
                            self.refused(p, status, reason, out, next);
                        }
                    }
                }
                GroupResult::Done
            }
            Ok(BulkReply::TooLarge) if sent.len() > 1 => {
                let b = sent.split_off(sent.len() / 2);
                debug!(
                    left = sent.len(),
                    right = b.len(),
                    "bulk request too large (413); splitting"
                );
                GroupResult::Split(sent, b)
            }
            Ok(BulkReply::TooLarge) => {
                let p = sent.remove(0);
                self.refused(
                    p,
                    413,
                    "a single document exceeds the cluster's http.max_content_length".to_string(),
                    out,
                    next,
                );
                GroupResult::Done
            }
            Err(e) => {
                let host_name = self.client.hosts()[host].authority();
                if e.is_credential() {
                    // The client logged the refusal (once per credential, at ERROR).
                    debug!(host = %host_name, error = %e, "bulk request refused");
                } else {
                    warn!(host = %host_name, error = %e, items = sent.len(), "bulk request failed; events are kept and retried after the backoff");
                }
                if e.is_host_failure() {
                    self.advance_host(host);
                }
                next.extend(sent);
                out.last_error = Some(e);
                GroupResult::Failed
            }
        }
    }

    /// An item the cluster (or we) will never accept as it is: dead-letter it once, or drop.
    fn refused(
        &self,
        p: Pending,
        status: u16,
        reason: String,
        out: &mut BatchOutcome,
        next: &mut Vec<Pending>,
    ) {
        match (&self.policy, p.kind) {
            (NonIndexableAction::DeadLetter { .. }, Kind::Event) => next.push(Pending {
                event: p.event,
                kind: Kind::DeadLetter { status, reason },
            }),
            (
                NonIndexableAction::DeadLetter { .. },
                Kind::DeadLetter {
                    status: first,
                    reason: original,
                },
            ) => out.dropped.push(Dropped {
                event: p.event,
                status,
                reason: format!(
                    "dead-letter index refused it ({reason}); original refusal {first}: {original}"
                ),
            }),
            (NonIndexableAction::Drop, _) => out.dropped.push(Dropped {
                event: p.event,
                status,
                reason,
            }),
        }
    }

    fn pick_host(&mut self) -> usize {
        let n = self.client.hosts().len().max(1);
        let host = self.next_host % n;
        if self.loadbalance {
            self.next_host = (host + 1) % n;
        }
        host
    }

    fn advance_host(&mut self, failed: usize) {
        let n = self.client.hosts().len().max(1);
        if !self.loadbalance {
            self.next_host = (failed + 1) % n;
        }
    }
}

enum GroupResult {
    Done,
    Split(Vec<Pending>, Vec<Pending>),
    Failed,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ElasticsearchOutputConfig;

    fn assert_send<T: Send>(_: &T) {}

    /// The pipeline adapter spawns one sender per worker on tokio: the sender and its
    /// batch future must be `Send`.
    #[test]
    fn sender_and_its_future_are_send() {
        let settings = ElasticsearchSettings::from_config(&ElasticsearchOutputConfig {
            hosts: vec!["localhost".into()],
            ..Default::default()
        })
        .unwrap();
        let mut sender = Sender::new(&settings, 0).unwrap();
        assert_send(&sender);
        let events: Vec<Bytes> = Vec::new();
        let fut = sender.send_batch(&events);
        assert_send(&fut);
    }

    #[tokio::test]
    async fn an_empty_batch_sends_nothing() {
        let settings = ElasticsearchSettings::from_config(&ElasticsearchOutputConfig {
            // Nothing listens here; an attempt would be reported as an error.
            hosts: vec!["127.0.0.1:1".into()],
            ..Default::default()
        })
        .unwrap();
        let mut sender = Sender::new(&settings, 0).unwrap();
        let out = sender.send_batch(&[]).await;
        assert_eq!(out.acked(), 0);
        assert!(out.last_error.is_none() && out.retry_later.is_empty());
    }
}
