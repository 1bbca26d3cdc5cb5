//! `output.failover`: Logstash primary, Elasticsearch fallback.
//!
//! ```text
//!                     ┌─ Gate (open while primary) ──▶ output.logstash workers
//!  queue ─ BatchSource┤
//!                     └─ Gate (open while failed over) ▶ output.elasticsearch workers
//!                              ▲
//!  FailoverController ─────────┘  every tick: Logstash acks, "all refusing", outstanding
//!                                 events ─▶ Policy ─▶ open/close the gates, probe, WARN
//! ```
//!
//! # How it routes
//! Both outputs' workers run for the whole run and take batches from the one shared queue,
//! each through a [`Gate`]: only the active side's gate is open. Nothing moves between
//! queues, so a switch loses nothing by construction: whatever the closed side still holds
//! it settles as usual, and what Logstash did not acknowledge goes back to the queue
//! (`Batch::retry`/`retry_events`, partial ACKs kept) where the open side takes it next.
//! Closing Logstash's gate also *recalls* its windows in flight: a connection holding
//! batches is given up at once (not after `timeout`, which keep-alives may keep
//! extending), so a stalled Logstash does not hold events back from Elasticsearch.
//!
//! # When it switches ([`Policy`], pure and unit-tested)
//! * To Elasticsearch when every Logstash worker's latest connection attempt failed ("all
//!   hosts failing"), or when events were outstanding and no Logstash host acknowledged any
//!   for `after`. Time without outstanding events is not counted: an idle pipeline is
//!   healthy.
//! * While failed over, every `probe_interval` the Logstash gate lets exactly one batch
//!   through (a probe). A Logstash worker takes it only once it is connected; when Logstash
//!   acknowledges events after the first probe, traffic returns to it (`failback: true`).
//!   With `failback: false` the run stays on Elasticsearch.
//!
//! Each switch is logged at WARN with its reason and counted in
//! `output.failover.switches` (the metrics line) and `output_switches=` (the totals line).
//!
//! # Settings adjusted for failover
//! * `max_retries` of both outputs is treated as `-1`: an event is never given up for being
//!   undeliverable, since the other side is the remedy. Events Elasticsearch refuses as
//!   non-indexable still follow `non_indexable_policy`.
//! * Logstash's reconnect `backoff.max` is capped at `probe_interval`, so a returning host
//!   is noticed within one probe interval.
//!
//! # Ids across both paths
//! Delivery is at least once across the union of both destinations: a window Logstash
//! received but did not acknowledge before failing is re-sent to Elasticsearch. With
//! `output.elasticsearch.document_id: hash` a re-send within Elasticsearch collapses into one
//! document; for the two paths to agree, the Logstash pipeline must index with the same id
//! (`document_id => "%{[@metadata][_id]}"`). `output.logstash.event_id: hash` does that
//! end to end: each event sent to Logstash carries `@metadata._id`, its content id
//! ([`crate::outputs::elasticsearch::bulk::stamp_content_id`]), and the Elasticsearch side
//! uses `document_id: hash` (set here; `none` is refused), which gives an unstamped event
//! the same id; unset `op_type` sends it as `create`, so the second copy is a 409, counted
//! as indexed. An event delivered through both paths is one document.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::{
    DocumentId, Duration as CfgDuration, ElasticsearchOutputConfig, EventIdMode, FailoverConfig,
    LogstashOutputConfig,
};
use crate::event::EventMeta;
use crate::outputs::{elasticsearch, logstash, Output, OutputError, OutputPlan, WorkerFuture};
use crate::pipeline::{BatchSource, Gate, Metrics};

/// The plan's key.
pub const KEY: &str = "output.failover";

/// Which output takes new batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Logstash.
    Primary,
    /// Elasticsearch.
    Fallback,
}

/// Why the policy switched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Events were outstanding and Logstash acknowledged none for this long.
    Stalled {
        /// Time since the last acknowledgement (at least `after`).
        since: Duration,
    },
    /// Every Logstash worker's latest connection attempt failed.
    AllFailing,
    /// Logstash acknowledged events again after a probe.
    Accepted,
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reason::Stalled { since } => write!(
                f,
                "no Logstash host acknowledged a batch for {:.1}s",
                since.as_secs_f64()
            ),
            Reason::AllFailing => f.write_str("every Logstash host refuses connections"),
            Reason::Accepted => f.write_str("Logstash acknowledged a probe batch"),
        }
    }
}

/// What the policy wants done after an observation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Nothing changes.
    Stay,
    /// Send new and unacknowledged batches to Elasticsearch.
    FailOver(Reason),
    /// Let one batch through to Logstash.
    Probe,
    /// Send batches to Logstash again.
    FailBack(Reason),
}

/// One look at the primary's health.
#[derive(Debug, Clone, Copy)]
pub struct Observation {
    /// When.
    pub now: Instant,
    /// Events Logstash acknowledged since the start (cumulative).
    pub primary_acked: u64,
    /// Every Logstash worker's latest connection attempt failed.
    pub all_primary_failing: bool,
    /// Events are taken and not yet settled (there is work that should make progress).
    pub outstanding: bool,
}

#[derive(Debug, Clone, Copy)]
enum State {
    Primary {
        /// Last acknowledgement, or last moment nothing was outstanding.
        progress_at: Instant,
    },
    FailedOver {
        next_probe: Instant,
        /// Logstash's ack count when the first probe was granted: acks above it are the
        /// probe's (or later ones), not late acks of windows sent before the switch.
        baseline: Option<u64>,
    },
}

/// The failover decision as a small state machine: no I/O, no clock of its own.
#[derive(Debug, Clone)]
pub struct Policy {
    after: Duration,
    probe_interval: Duration,
    failback: bool,
    state: State,
    last_acked: u64,
}

impl Policy {
    /// Starts on the primary at `now`.
    pub fn new(after: Duration, probe_interval: Duration, failback: bool, now: Instant) -> Self {
        Self {
            after,
            probe_interval,
            failback,
            state: State::Primary { progress_at: now },
            last_acked: 0,
        }
    }

    /// The side taking new batches.
    pub fn side(&self) -> Side {
        match self.state {
            State::Primary { .. } => Side::Primary,
            State::FailedOver { .. } => Side::Fallback,
        }
    }

    /// Feeds one observation; returns what to do.
    pub fn observe(&mut self, o: &Observation) -> Action {
        let acked_more = o.primary_acked > self.last_acked;
        self.last_acked = self.last_acked.max(o.primary_acked);
        match &mut self.state {
            State::Primary { progress_at } => {
                if acked_more || !o.outstanding {
                    *progress_at = o.now;
                }
                let reason = if o.all_primary_failing {
                    Reason::AllFailing
                } else {
                    let since = o.now.saturating_duration_since(*progress_at);
                    if since < self.after {
                        return Action::Stay;
                    }
                    Reason::Stalled { since }
                };
                self.state = State::FailedOver {
                    next_probe: o.now + self.probe_interval,
                    baseline: None,
                };
                Action::FailOver(reason)
            }
            State::FailedOver {
                next_probe,
                baseline,
            } => {
                if !self.failback {
                    return Action::Stay;
                }
                if baseline.is_some_and(|b| o.primary_acked > b) {
                    self.state = State::Primary { progress_at: o.now };
                    return Action::FailBack(Reason::Accepted);
                }
                if o.now >= *next_probe {
                    *next_probe = o.now + self.probe_interval;
                    baseline.get_or_insert(o.primary_acked);
                    return Action::Probe;
                }
                Action::Stay
            }
        }
    }
}

/// Builds the failover plan: Logstash's and Elasticsearch's workers behind their gates, and
/// the controller that moves the gates.
///
/// # Errors
/// [`OutputError`] naming the key: a missing or disabled output of the pair, or an invalid
/// setting of either output.
pub fn plan(
    failover: &FailoverConfig,
    ls: Option<&LogstashOutputConfig>,
    es: Option<&ElasticsearchOutputConfig>,
) -> Result<OutputPlan, OutputError> {
    let (Some(ls), Some(es)) = (ls.filter(|c| c.enabled), es.filter(|c| c.enabled)) else {
        return Err(OutputError::Invalid {
            key: KEY,
            reason: "failover needs both output.logstash and output.elasticsearch enabled"
                .to_string(),
        });
    };
    if failover.after.is_zero() || failover.probe_interval.is_zero() {
        return Err(OutputError::Invalid {
            key: KEY,
            reason: "after and probe_interval must be longer than 0s".to_string(),
        });
    }
    let probe_interval = failover.probe_interval.0;

    let mut ls = ls.clone();
    ls.max_retries = -1;
    ls.backoff.max = CfgDuration(ls.backoff.max.0.min(probe_interval));
    ls.backoff.init = CfgDuration(ls.backoff.init.0.min(ls.backoff.max.0));
    let (ls_settings, ls_workers) =
        logstash::build(&ls).map_err(|e| OutputError::Logstash(Box::new(e)))?;
    let Some(ls_shared) = ls_workers.first().map(|w| Arc::clone(w.shared())) else {
        return Err(OutputError::Invalid {
            key: "output.logstash.hosts",
            reason: "no host configured".to_string(),
        });
    };

    let mut es = es.clone();
    es.max_retries = -1;
    if ls.event_id == EventIdMode::Hash {
        // The fallback must write the _id Logstash writes: `hash` takes @metadata._id and
        // computes the same content id for an event that was never stamped.
        match es.document_id {
            DocumentId::Metadata | DocumentId::Hash => es.document_id = DocumentId::Hash,
            DocumentId::None => {
                return Err(OutputError::Invalid {
                    key: "output.elasticsearch.document_id",
                    reason: "none cannot be used with output.logstash.event_id: hash: the \
                             fallback would index events Logstash indexed a second time"
                        .to_string(),
                })
            }
        }
    }
    let es_plan =
        elasticsearch::output::plan(&es).map_err(|e| OutputError::Elasticsearch(Box::new(e)))?;

    let primary = Arc::new(Gate::new(true));
    let fallback = Arc::new(Gate::new(false));
    let mut workers: Vec<Box<dyn Output>> = Vec::new();
    let ls_count = ls_workers.len();
    for w in ls_workers {
        workers.push(Box::new(Gated {
            inner: Box::new(w),
            gate: Arc::clone(&primary),
            bulk_max_size: ls_settings.bulk_max_size,
        }));
    }
    let es_bulk_max_size = es_plan.bulk_max_size;
    for w in es_plan.workers {
        workers.push(Box::new(Gated {
            inner: w,
            gate: Arc::clone(&fallback),
            bulk_max_size: es_bulk_max_size,
        }));
    }
    workers.push(Box::new(FailoverController {
        settings: failover.clone(),
        primary,
        fallback,
        logstash: ls_shared,
        logstash_workers: ls_count,
    }));
    Ok(OutputPlan {
        key: KEY,
        bulk_max_size: ls_settings.bulk_max_size.max(es_bulk_max_size),
        workers,
        // Events are encoded once, for Logstash (the primary); Elasticsearch does not index
        // @metadata, so the same bytes serve both.
        meta: EventMeta {
            beat: ls_settings.index.clone(),
            escape_html: ls_settings.escape_html,
            ..EventMeta::default()
        },
        writes_stdout: false,
        preflight: es_plan.preflight,
        // Windows are packed for the primary; the fallback takes them apart.
        pack: ls_settings.pack_settings(),
    })
}

/// An output worker that takes batches only while its gate lets it.
struct Gated {
    inner: Box<dyn Output>,
    gate: Arc<Gate>,
    bulk_max_size: usize,
}

impl Output for Gated {
    fn run(self: Box<Self>, batches: BatchSource, metrics: Arc<Metrics>) -> WorkerFuture {
        let source = batches.gated(self.gate, self.bulk_max_size);
        self.inner.run(source, metrics)
    }
}

/// Watches Logstash's health and moves the gates; runs as one more "worker" of the plan so
/// it lives exactly as long as the outputs. It never takes a batch.
struct FailoverController {
    settings: FailoverConfig,
    primary: Arc<Gate>,
    fallback: Arc<Gate>,
    logstash: Arc<logstash::worker::Shared>,
    logstash_workers: usize,
}

impl FailoverController {
    fn observe(&self, source: &BatchSource) -> Observation {
        Observation {
            now: Instant::now(),
            primary_acked: self
                .logstash
                .hosts
                .iter()
                .map(|h| h.events_acked.load(Ordering::Relaxed))
                .sum(),
            all_primary_failing: self.logstash.refusing.load(Ordering::Relaxed)
                >= self.logstash_workers,
            outstanding: source.outstanding() > 0,
        }
    }

    /// How often health is looked at: often enough to react within a tenth of the shorter
    /// interval, never busier than every 10 ms nor lazier than every second.
    fn tick(&self) -> Duration {
        (self.settings.after.0.min(self.settings.probe_interval.0) / 10)
            .clamp(Duration::from_millis(10), Duration::from_secs(1))
    }
}

impl Output for FailoverController {
    fn run(self: Box<Self>, source: BatchSource, metrics: Arc<Metrics>) -> WorkerFuture {
        Box::pin(async move {
            let s = &self.settings;
            let mut policy = Policy::new(s.after.0, s.probe_interval.0, s.failback, Instant::now());
            tracing::info!(after = %s.after, probe_interval = %s.probe_interval, failback = s.failback, "output failover: Logstash is primary, Elasticsearch the fallback");
            let mut ticks = tokio::time::interval(self.tick());
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = source.finished() => break,
                    _ = ticks.tick() => {}
                }
                let seen = self.observe(&source);
                match policy.observe(&seen) {
                    Action::Stay => {}
                    Action::FailOver(reason) => {
                        // Open the fallback first: the queue is never without a taker.
                        self.fallback.open();
                        self.primary.close();
                        metrics.output_switches.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(from = "logstash", to = "elasticsearch", reason = %reason, outstanding = source.outstanding(), "output failover: switching to Elasticsearch; unacknowledged events are re-sent there");
                        if !s.failback {
                            tracing::warn!("output failover: failback is off; staying on Elasticsearch for the rest of the run");
                        }
                    }
                    Action::Probe => {
                        tracing::debug!("output failover: probing Logstash with one batch");
                        self.primary.allow_one();
                    }
                    Action::FailBack(reason) => {
                        self.primary.open();
                        self.fallback.close();
                        metrics.output_switches.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(from = "elasticsearch", to = "logstash", reason = %reason, "output failover: switching back to Logstash");
                    }
                }
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AFTER: Duration = Duration::from_secs(30);
    const PROBE: Duration = Duration::from_secs(10);

    struct Clock {
        start: Instant,
    }

    impl Clock {
        fn at(&self, secs: u64, acked: u64, failing: bool, outstanding: bool) -> Observation {
            Observation {
                now: self.start + Duration::from_secs(secs),
                primary_acked: acked,
                all_primary_failing: failing,
                outstanding,
            }
        }
    }

    fn policy(failback: bool) -> (Policy, Clock) {
        let start = Instant::now();
        (Policy::new(AFTER, PROBE, failback, start), Clock { start })
    }

    #[test]
    fn acks_keep_the_primary_and_a_stall_of_after_fails_over() {
        let (mut p, c) = policy(true);
        for t in 1..=40 {
            assert_eq!(
                p.observe(&c.at(t, t * 100, false, true)),
                Action::Stay,
                "t={t}"
            );
        }
        // Acks stop at t=40 with events outstanding.
        assert_eq!(p.observe(&c.at(69, 4000, false, true)), Action::Stay);
        assert_eq!(
            p.observe(&c.at(70, 4000, false, true)),
            Action::FailOver(Reason::Stalled { since: AFTER })
        );
        assert_eq!(p.side(), Side::Fallback);
    }

    #[test]
    fn an_idle_pipeline_never_fails_over() {
        let (mut p, c) = policy(true);
        for t in [1, 100, 1000] {
            assert_eq!(p.observe(&c.at(t, 0, false, false)), Action::Stay);
        }
        // Work arrives at t=1000: the stall is counted from then.
        assert_eq!(p.observe(&c.at(1029, 0, false, true)), Action::Stay);
        assert!(matches!(
            p.observe(&c.at(1030, 0, false, true)),
            Action::FailOver(Reason::Stalled { .. })
        ));
    }

    #[test]
    fn all_hosts_failing_fails_over_at_once() {
        let (mut p, c) = policy(true);
        assert_eq!(
            p.observe(&c.at(1, 0, true, false)),
            Action::FailOver(Reason::AllFailing)
        );
    }

    #[test]
    fn probes_every_interval_and_fails_back_on_an_ack_after_a_probe() {
        let (mut p, c) = policy(true);
        assert!(matches!(
            p.observe(&c.at(5, 10, true, true)),
            Action::FailOver(_)
        ));
        // A late ACK of a window sent before the switch is not a recovery.
        assert_eq!(p.observe(&c.at(6, 20, true, true)), Action::Stay);
        assert_eq!(p.observe(&c.at(14, 20, true, true)), Action::Stay);
        assert_eq!(p.observe(&c.at(15, 20, true, true)), Action::Probe);
        // The probe batch found no connected worker: the next probe one interval later.
        assert_eq!(p.observe(&c.at(24, 20, true, true)), Action::Stay);
        assert_eq!(p.observe(&c.at(25, 20, false, true)), Action::Probe);
        assert_eq!(
            p.observe(&c.at(26, 120, false, true)),
            Action::FailBack(Reason::Accepted)
        );
        assert_eq!(p.side(), Side::Primary);
        // Back on the primary, the stall clock starts at the failback.
        assert_eq!(p.observe(&c.at(55, 120, false, true)), Action::Stay);
        assert!(matches!(
            p.observe(&c.at(56, 120, false, true)),
            Action::FailOver(Reason::Stalled { .. })
        ));
    }

    #[test]
    fn without_failback_it_stays_on_the_fallback() {
        let (mut p, c) = policy(false);
        assert!(matches!(
            p.observe(&c.at(1, 0, true, true)),
            Action::FailOver(_)
        ));
        for t in [20, 100, 1000] {
            assert_eq!(p.observe(&c.at(t, t, false, true)), Action::Stay);
        }
        assert_eq!(p.side(), Side::Fallback);
    }

    fn pair() -> (LogstashOutputConfig, ElasticsearchOutputConfig) {
        (
            LogstashOutputConfig {
                hosts: vec!["127.0.0.1:5044".into(), "127.0.0.1:5045".into()],
                loadbalance: true,
                ..Default::default()
            },
            ElasticsearchOutputConfig {
                hosts: vec!["http://127.0.0.1:9200".into()],
                bulk_max_size: 100,
                ..Default::default()
            },
        )
    }

    #[test]
    fn plan_runs_both_outputs_and_one_controller() {
        let (ls, es) = pair();
        let fo = FailoverConfig {
            enabled: true,
            ..Default::default()
        };
        let p = plan(&fo, Some(&ls), Some(&es)).unwrap();
        // Two Logstash hosts with loadbalance, one Elasticsearch worker, the controller.
        assert_eq!((p.key, p.workers.len()), (KEY, 4));
        assert_eq!(p.bulk_max_size, 2048);
        assert!(!p.writes_stdout);
    }

    #[test]
    fn plan_refuses_a_missing_half_and_zero_intervals() {
        let (ls, es) = pair();
        let fo = FailoverConfig {
            enabled: true,
            ..Default::default()
        };
        let e = plan(&fo, Some(&ls), None).unwrap_err().to_string();
        assert!(e.starts_with("output.failover:"), "{e}");
        let disabled = ElasticsearchOutputConfig {
            enabled: false,
            ..es.clone()
        };
        assert!(plan(&fo, Some(&ls), Some(&disabled)).is_err());
        let zero = FailoverConfig {
            after: CfgDuration(Duration::ZERO),
            ..fo
        };
        let e = plan(&zero, Some(&ls), Some(&es)).unwrap_err().to_string();
        assert!(e.contains("longer than 0s"), "{e}");
    }

    #[test]
    fn stamped_ids_refuse_a_fallback_that_sends_no_id() {
        let (mut ls, es) = pair();
        ls.event_id = EventIdMode::Hash;
        let fo = FailoverConfig {
            enabled: true,
            ..Default::default()
        };
        assert!(plan(&fo, Some(&ls), Some(&es)).is_ok());
        let no_ids = ElasticsearchOutputConfig {
            document_id: DocumentId::None,
            ..es
        };
        let e = plan(&fo, Some(&ls), Some(&no_ids)).unwrap_err().to_string();
        assert!(
            e.starts_with("output.elasticsearch.document_id: none cannot"),
            "{e}"
        );
    }
}
