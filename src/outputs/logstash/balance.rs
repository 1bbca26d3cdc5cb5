//! Which connection takes the next window with `loadbalance: true`: balancing by measured
//! capacity, slow-endpoint ejection, and Beats-style strict round robin. Pure: no I/O, no
//! clock (every call gets `now`), no locks; [`super::fleet`] shares one [`Balancer`]
//! between the workers and logs what it reports.
//!
//! ```text
//!  worker connects ──join──▶ Conn ──decide(now)──▶ Take ─▶ taken, sent(now) … acked(now)
//!                                        │                         │
//!                                        └─ Wait{recheck} ◀────────┴─ review(now): eject,
//!                                             (re-decide on any change)   probe, readmit
//! ```
//!
//! Call order per connection: [`Balancer::join`] once connected; then, each time it could
//! take a batch (all it holds is written and a pipelining slot is free),
//! [`Balancer::decide`]; [`Balancer::taken`] when a batch was taken; [`Balancer::sent`] per
//! window written and [`Balancer::acked`] per window acknowledged, in order;
//! [`Balancer::leave`] when the connection ends (its unacknowledged windows are re-sent
//! elsewhere by the worker, as after any failure).
//!
//! # `capacity` (the default): least expected completion time
//! Every endpoint (an address of a Logstash) keeps an EWMA of its ACK latency (time from
//! writing a window to its final ACK; weight [`Rules::ewma_weight`] for the newest sample).
//! A connection's expected completion time for one more window is
//! `(windows outstanding + 1) × max(EWMA, age of its oldest outstanding window)`: the age
//! term makes a host that stops answering look slower at once, without waiting for its ACK.
//! A connection may take the next batch when its expected time is at most
//! [`Rules::tolerance`] × the best other measured connection's plus [`Rules::slack`];
//! otherwise it waits and decides again when anything changes. The best connection can
//! therefore always take; hosts of similar speed share the load as they pull it, and a far
//! slower one only gets a window when the fast ones are busy enough that it would finish
//! first. An endpoint not yet measured gets one window at a time until its first ACK
//! measures it, and an admitted endpoint that got nothing for [`Rules::remeasure`] gets one
//! window, so a host that was slow once (a cold start, a pause) is measured again instead of
//! being judged by an old sample forever.
//!
//! # Ejection (capacity only)
//! An endpoint is **ejected** when, continuously for [`Rules::eject_after`], its latency —
//! the p90 of its last [`Rules::samples`] ACK latencies, or the age of its oldest
//! outstanding window if that is larger — is above [`Rules::eject_ratio`] × the median EWMA
//! of the other admitted endpoints **and** at least [`Rules::eject_margin`] above it (so
//! sub-millisecond noise on a LAN ejects nothing). An ejected endpoint takes no new window
//! (those in flight finish) for [`Rules::ejection_base`], doubled for each consecutive
//! ejection up to [`Rules::ejection_max`]. Then it is **probed**: it takes one window; if
//! that window's latency is within the rule it is readmitted with that latency as its new
//! EWMA, otherwise it is ejected again for twice as long. An endpoint is never ejected
//! when no other admitted endpoint has a live connection, and ejected endpoints take
//! windows again while no admitted one is connected, so ejection never stops delivery.
//!
//! # `round_robin` (Beats-style, for comparison)
//! Connections take batches in strict turn (in the order they connected). A connection
//! whose pipelining slots are full keeps its turn until a slot frees, so one slow host
//! holds back every other host in lock-step — the behaviour of elastic/beats#12567.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use crate::config::LoadbalanceStrategy;

/// The constants of the algorithm (see the module docs for their use).
#[derive(Debug, Clone)]
pub struct Rules {
    /// Weight of the newest sample in the EWMA. Default 0.3.
    pub ewma_weight: f64,
    /// Expected completion times up to this multiple of the best count as equal. Default 1.5.
    pub tolerance: f64,
    /// And up to this much above it. Default 5 ms.
    pub slack: Duration,
    /// An admitted endpoint idle this long gets one window to be measured again. Default 1 s.
    pub remeasure: Duration,
    /// Ejection: latency above this multiple of the others' median. Default 5.
    pub eject_ratio: f64,
    /// Ejection: and at least this much above it. Default 100 ms.
    pub eject_margin: Duration,
    /// Ejection: the rule must hold this long. Default 1 s.
    pub eject_after: Duration,
    /// First ejection period. Default 10 s.
    pub ejection_base: Duration,
    /// Longest ejection period. Default 5 min.
    pub ejection_max: Duration,
    /// Latencies kept per endpoint for the p90. Default 16.
    pub samples: usize,
}

impl Default for Rules {
    fn default() -> Self {
        Self {
            ewma_weight: 0.3,
            tolerance: 1.5,
            slack: Duration::from_millis(5),
            remeasure: Duration::from_secs(1),
            eject_ratio: 5.0,
            eject_margin: Duration::from_millis(100),
            eject_after: Duration::from_secs(1),
            ejection_base: Duration::from_secs(10),
            ejection_max: Duration::from_secs(300),
            samples: 16,
        }
    }
}

/// An endpoint's index in its [`Balancer`].
pub type EndpointId = usize;

/// A connection's handle in its [`Balancer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ConnId(u64);

/// Whether a connection may take the next batch now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Take it.
    Take,
    /// Not now: decide again when the balancer changes, or at `recheck` at the latest.
    Wait {
        /// When the answer may change by time alone (an ejection ends, a window ages).
        recheck: Option<Instant>,
    },
    /// The endpoint was removed and this connection has nothing outstanding: end it.
    Leave,
}

/// An endpoint's admission state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// Takes windows.
    Admitted,
    /// Takes no new window until `until`.
    Ejected {
        /// End of the ejection period.
        until: Instant,
    },
    /// Takes one window; its ACK decides.
    Probing,
    /// Gone from DNS: takes nothing; its connections leave once their windows are answered.
    Removed,
}

/// Something the caller logs and counts.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// `endpoint` was ejected for `period`: its `latency` against the others' `reference`.
    Ejected {
        /// The endpoint.
        endpoint: EndpointId,
        /// Its p90 (or oldest outstanding window's age).
        latency: Duration,
        /// The other admitted endpoints' median EWMA.
        reference: Duration,
        /// How long.
        period: Duration,
    },
    /// `endpoint`'s ejection ended; it takes one probe window.
    Probing {
        /// The endpoint.
        endpoint: EndpointId,
    },
    /// `endpoint`'s probe window took `latency`, within the rule: it takes windows again.
    Readmitted {
        /// The endpoint.
        endpoint: EndpointId,
        /// The probe's ACK latency.
        latency: Duration,
    },
}

#[derive(Debug)]
struct Endpoint {
    ewma: Option<Duration>,
    samples: VecDeque<Duration>,
    health: Health,
    over_since: Option<Instant>,
    /// When its last window was acknowledged.
    last_ack: Option<Instant>,
    /// Consecutive ejections, for the doubling.
    streak: u32,
    /// Connections to it.
    conns: usize,
}

#[derive(Debug)]
struct Conn {
    endpoint: EndpointId,
    /// Write times of the windows not yet acknowledged, oldest first.
    outstanding: VecDeque<Instant>,
}

/// The balancing state of one `output.logstash` (see the module docs).
#[derive(Debug)]
pub struct Balancer {
    strategy: LoadbalanceStrategy,
    rules: Rules,
    endpoints: Vec<Endpoint>,
    conns: BTreeMap<ConnId, Conn>,
    next_conn: u64,
    /// round_robin: whose turn it is.
    turn: Option<ConnId>,
}

impl Balancer {
    /// A balancer without endpoints.
    pub fn new(strategy: LoadbalanceStrategy, rules: Rules) -> Self {
        Self {
            strategy,
            rules,
            endpoints: Vec::new(),
            conns: BTreeMap::new(),
            next_conn: 0,
            turn: None,
        }
    }

    /// Adds an endpoint, admitted and not yet measured.
    pub fn add_endpoint(&mut self) -> EndpointId {
        self.endpoints.push(Endpoint {
            ewma: None,
            samples: VecDeque::new(),
            health: Health::Admitted,
            over_since: None,
            last_ack: None,
            streak: 0,
            conns: 0,
        });
        self.endpoints.len() - 1
    }

    /// A new connection to `endpoint` (which must come from [`Self::add_endpoint`]).
    pub fn join(&mut self, endpoint: EndpointId) -> ConnId {
        let id = ConnId(self.next_conn);
        self.next_conn += 1;
        if let Some(e) = self.endpoints.get_mut(endpoint) {
            e.conns += 1;
        }
        self.conns.insert(
            id,
            Conn {
                endpoint,
                outstanding: VecDeque::new(),
            },
        );
        id
    }

    /// The connection ended; its outstanding windows no longer count anywhere.
    pub fn leave(&mut self, conn: ConnId) {
        if let Some(c) = self.conns.remove(&conn) {
            if let Some(e) = self.endpoints.get_mut(c.endpoint) {
                e.conns = e.conns.saturating_sub(1);
            }
        }
        if self.turn == Some(conn) {
            self.turn = self.after(conn);
        }
    }

    /// Removes `endpoint` (gone from DNS): it takes no new window, and each of its
    /// connections is told to [`Decision::Leave`] once its windows are acknowledged.
    pub fn remove_endpoint(&mut self, endpoint: EndpointId) {
        if let Some(e) = self.endpoints.get_mut(endpoint) {
            e.health = Health::Removed;
            e.over_since = None;
        }
    }

    /// An endpoint's admission state.
    pub fn health(&self, endpoint: EndpointId) -> Option<Health> {
        self.endpoints.get(endpoint).map(|e| e.health)
    }

    /// An endpoint's ACK latency EWMA, once measured.
    pub fn ewma(&self, endpoint: EndpointId) -> Option<Duration> {
        self.endpoints.get(endpoint).and_then(|e| e.ewma)
    }

    /// May `conn` take the next batch now? Also applies what time alone changed (ejections
    /// ending or starting), returned for logging.
    pub fn decide(&mut self, conn: ConnId, now: Instant) -> (Decision, Vec<Change>) {
        let changes = self.review(now);
        if let Some(c) = self.conns.get(&conn) {
            if self.health(c.endpoint) == Some(Health::Removed) {
                let decision = if c.outstanding.is_empty() {
                    Decision::Leave
                } else {
                    Decision::Wait { recheck: None }
                };
                return (decision, changes);
            }
        }
        let decision = match self.strategy {
            LoadbalanceStrategy::RoundRobin => self.decide_round_robin(conn),
            LoadbalanceStrategy::Capacity => self.decide_capacity(conn, now),
        };
        (decision, changes)
    }

    fn decide_round_robin(&mut self, conn: ConnId) -> Decision {
        if self.turn.is_none_or(|t| !self.takes(t)) {
            self.turn = self.after(self.turn.unwrap_or(ConnId(u64::MAX)));
        }
        if self.turn == Some(conn) {
            Decision::Take
        } else {
            Decision::Wait { recheck: None }
        }
    }

    fn decide_capacity(&self, conn: ConnId, now: Instant) -> Decision {
        let Some(c) = self.conns.get(&conn) else {
            return Decision::Take;
        };
        let Some(e) = self.endpoints.get(c.endpoint) else {
            return Decision::Take;
        };
        let fallback = !self.admitted_live_except(c.endpoint);
        match e.health {
            Health::Ejected { until } if !fallback => {
                return Decision::Wait {
                    recheck: Some(until),
                }
            }
            Health::Probing if !fallback => {
                let busy = self
                    .conns
                    .values()
                    .any(|o| o.endpoint == c.endpoint && !o.outstanding.is_empty());
                return if busy {
                    Decision::Wait { recheck: None }
                } else {
                    Decision::Take
                };
            }
            _ => {}
        }
        let Some(mine) = self.score(c, now) else {
            // Not measured yet: one window at a time until its first ACK.
            return if c.outstanding.is_empty() {
                Decision::Take
            } else {
                Decision::Wait { recheck: None }
            };
        };
        let idle = !self
            .conns
            .values()
            .any(|o| o.endpoint == c.endpoint && !o.outstanding.is_empty());
        if idle
            && e.last_ack
                .is_some_and(|t| now.saturating_duration_since(t) >= self.rules.remeasure)
        {
            return Decision::Take;
        }
        let best_other = self
            .conns
            .iter()
            .filter(|(id, o)| {
                **id != conn
                    && self
                        .endpoints
                        .get(o.endpoint)
                        .is_some_and(|e| e.health == Health::Admitted)
            })
            .filter_map(|(_, o)| self.score(o, now))
            .min();
        match best_other.map(|b| b.mul_f64(self.rules.tolerance) + self.rules.slack) {
            Some(bound) if mine > bound => {
                // The others' scores grow at least as fast as time while their windows age,
                // so the answer cannot change by time alone before this; an idle endpoint
                // is measured again after `remeasure`.
                let gap = (mine - bound).clamp(Duration::from_millis(1), self.rules.remeasure);
                Decision::Wait {
                    recheck: Some(now + gap),
                }
            }
            _ => Decision::Take,
        }
    }

    /// `(outstanding + 1) × max(EWMA, oldest outstanding age)`; `None` before the first ACK.
    fn score(&self, c: &Conn, now: Instant) -> Option<Duration> {
        let ewma = self.endpoints.get(c.endpoint)?.ewma?;
        let age = c
            .outstanding
            .front()
            .map_or(Duration::ZERO, |t| now.saturating_duration_since(*t));
        let n = u32::try_from(c.outstanding.len() + 1).unwrap_or(u32::MAX);
        Some(ewma.max(age).saturating_mul(n))
    }

    /// `conn` took a batch (round robin passes the turn on).
    pub fn taken(&mut self, conn: ConnId) {
        if self.strategy == LoadbalanceStrategy::RoundRobin && self.turn == Some(conn) {
            self.turn = self.after(conn);
        }
    }

    /// The connection after `conn` in connection order that may take windows, wrapping.
    fn after(&self, conn: ConnId) -> Option<ConnId> {
        let later = self.conns.range(ConnId(conn.0.saturating_add(1))..);
        later
            .chain(self.conns.range(..=conn))
            .map(|(id, _)| *id)
            .find(|id| self.takes(*id))
    }

    /// Whether `conn` exists and its endpoint is not removed.
    fn takes(&self, conn: ConnId) -> bool {
        self.conns
            .get(&conn)
            .is_some_and(|c| self.health(c.endpoint) != Some(Health::Removed))
    }

    /// `conn` wrote a window at `now`.
    pub fn sent(&mut self, conn: ConnId, now: Instant) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.outstanding.push_back(now);
        }
    }

    /// `conn`'s oldest outstanding window was acknowledged at `now`; returns its latency
    /// and what changed.
    pub fn acked(&mut self, conn: ConnId, now: Instant) -> (Option<Duration>, Vec<Change>) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return (None, Vec::new());
        };
        let Some(at) = c.outstanding.pop_front() else {
            return (None, Vec::new());
        };
        let latency = now.saturating_duration_since(at);
        let endpoint = c.endpoint;
        let reference = self.reference(endpoint);
        let mut changes = Vec::new();
        let rules = &self.rules;
        if let Some(e) = self.endpoints.get_mut(endpoint) {
            e.last_ack = Some(now);
            e.samples.push_back(latency);
            while e.samples.len() > rules.samples.max(1) {
                e.samples.pop_front();
            }
            e.ewma = Some(match e.ewma {
                None => latency,
                Some(old) => {
                    old.mul_f64(1.0 - rules.ewma_weight) + latency.mul_f64(rules.ewma_weight)
                }
            });
            if e.health == Health::Probing {
                let over = reference.is_some_and(|r| over(rules, latency, r));
                if over {
                    let period = eject(rules, e, now);
                    changes.push(Change::Ejected {
                        endpoint,
                        latency,
                        reference: reference.unwrap_or_default(),
                        period,
                    });
                } else {
                    e.health = Health::Admitted;
                    e.streak = 0;
                    e.over_since = None;
                    e.samples.clear();
                    e.samples.push_back(latency);
                    e.ewma = Some(latency);
                    changes.push(Change::Readmitted { endpoint, latency });
                }
            }
        }
        changes.extend(self.review(now));
        (Some(latency), changes)
    }

    /// Is any endpoint other than `except` admitted with a live connection?
    fn admitted_live_except(&self, except: EndpointId) -> bool {
        self.endpoints
            .iter()
            .enumerate()
            .any(|(i, e)| i != except && e.conns > 0 && e.health == Health::Admitted)
    }

    /// The median EWMA of the admitted, connected, measured endpoints other than `except`.
    fn reference(&self, except: EndpointId) -> Option<Duration> {
        let mut v: Vec<Duration> = self
            .endpoints
            .iter()
            .enumerate()
            .filter(|(i, e)| *i != except && e.conns > 0 && e.health == Health::Admitted)
            .filter_map(|(_, e)| e.ewma)
            .collect();
        if v.is_empty() {
            return None;
        }
        v.sort_unstable();
        let mid = v.len() / 2;
        Some(if v.len() % 2 == 1 {
            v[mid]
        } else {
            (v[mid - 1] + v[mid]) / 2
        })
    }

    /// The p90 of `endpoint`'s recent latencies, or its oldest outstanding window's age
    /// if larger; `None` with neither.
    fn latency(&self, endpoint: EndpointId, now: Instant) -> Option<Duration> {
        let e = self.endpoints.get(endpoint)?;
        let mut v: Vec<Duration> = e.samples.iter().copied().collect();
        v.sort_unstable();
        let p90 = (!v.is_empty()).then(|| {
            let rank = ((v.len() as f64) * 0.9).ceil() as usize;
            v[rank.clamp(1, v.len()) - 1]
        });
        let age = self
            .conns
            .values()
            .filter(|c| c.endpoint == endpoint)
            .filter_map(|c| c.outstanding.front())
            .map(|t| now.saturating_duration_since(*t))
            .max();
        match (p90, age) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }

    /// Applies the ejection rule and ends ejection periods that are over.
    pub fn review(&mut self, now: Instant) -> Vec<Change> {
        let mut changes = Vec::new();
        if self.strategy != LoadbalanceStrategy::Capacity {
            return changes;
        }
        for i in 0..self.endpoints.len() {
            match self.endpoints[i].health {
                Health::Ejected { until } if now >= until => {
                    self.endpoints[i].health = Health::Probing;
                    changes.push(Change::Probing { endpoint: i });
                }
                Health::Admitted if self.endpoints[i].conns > 0 => {
                    let verdict = self
                        .reference(i)
                        .zip(self.latency(i, now))
                        .filter(|(r, l)| over(&self.rules, *l, *r));
                    let may_eject = self.admitted_live_except(i);
                    let e = &mut self.endpoints[i];
                    let Some((reference, latency)) = verdict else {
                        e.over_since = None;
                        continue;
                    };
                    let since = *e.over_since.get_or_insert(now);
                    if may_eject && now.saturating_duration_since(since) >= self.rules.eject_after {
                        let period = eject(&self.rules, e, now);
                        changes.push(Change::Ejected {
                            endpoint: i,
                            latency,
                            reference,
                            period,
                        });
                    }
                }
                _ => {}
            }
        }
        changes
    }
}

/// The ejection rule for one latency against the reference.
fn over(rules: &Rules, latency: Duration, reference: Duration) -> bool {
    latency > reference.mul_f64(rules.eject_ratio) && latency > reference + rules.eject_margin
}

/// Ejects `e` from `now`; returns the period.
fn eject(rules: &Rules, e: &mut Endpoint, now: Instant) -> Duration {
    let doublings = e.streak.min(20);
    let period = rules
        .ejection_base
        .saturating_mul(1u32 << doublings)
        .min(rules.ejection_max);
    e.streak = e.streak.saturating_add(1);
    e.health = Health::Ejected {
        until: now + period,
    };
    e.over_since = None;
    period
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// A discrete-time simulation: each endpoint serves its connection's windows one at a
    /// time, each taking `service[endpoint]`; `pipelining` windows per connection; `windows`
    /// windows in all. Returns windows per endpoint, the time the last ACK arrived, and
    /// every change reported.
    fn simulate(
        strategy: LoadbalanceStrategy,
        service: &[Duration],
        pipelining: usize,
        windows: usize,
    ) -> (Vec<usize>, Duration, Vec<Change>) {
        let t0 = Instant::now();
        let mut b = Balancer::new(strategy, Rules::default());
        let conns: Vec<ConnId> = service
            .iter()
            .map(|_| {
                let e = b.add_endpoint();
                b.join(e)
            })
            .collect();
        // Per connection: completion times of its windows in flight (served in order).
        let mut inflight: Vec<VecDeque<Duration>> = vec![VecDeque::new(); conns.len()];
        let mut shares = vec![0; conns.len()];
        let mut changes = Vec::new();
        let (mut left, mut now) = (windows, Duration::ZERO);
        let step = ms(1);
        let mut last = Duration::ZERO;
        while left > 0 || inflight.iter().any(|q| !q.is_empty()) {
            for (i, q) in inflight.iter_mut().enumerate() {
                while q.front().is_some_and(|d| *d <= now) {
                    q.pop_front();
                    let (_, c) = b.acked(conns[i], t0 + now);
                    changes.extend(c);
                    last = now;
                }
            }
            // Give every connection with a free slot a chance, in turn, until nobody takes.
            let mut progress = true;
            while progress && left > 0 {
                progress = false;
                for i in 0..conns.len() {
                    if left == 0 || inflight[i].len() >= pipelining {
                        continue;
                    }
                    let (d, c) = b.decide(conns[i], t0 + now);
                    changes.extend(c);
                    if d == Decision::Take {
                        b.taken(conns[i]);
                        b.sent(conns[i], t0 + now);
                        let start = inflight[i].back().copied().unwrap_or(now).max(now);
                        inflight[i].push_back(start + service[i]);
                        shares[i] += 1;
                        left -= 1;
                        progress = true;
                    }
                }
            }
            now += step;
            assert!(
                now < Duration::from_secs(3600),
                "the simulation never ended"
            );
        }
        (shares, last, changes)
    }

    #[test]
    fn a_slow_endpoint_gets_a_small_share_and_is_ejected() {
        let service = [ms(5), ms(5), ms(2000)];
        let (shares, took, changes) = simulate(LoadbalanceStrategy::Capacity, &service, 2, 2000);
        assert!(shares[2] <= 3, "slow endpoint share: {shares:?}");
        assert!(shares[0] > 900 && shares[1] > 900, "{shares:?}");
        assert!(
            changes
                .iter()
                .any(|c| matches!(c, Change::Ejected { endpoint: 2, .. })),
            "{changes:?}"
        );
        // Two fast endpoints alone: 2000 windows × 5 ms / 2 endpoints = 5 s.
        let (_, fast_only, _) = simulate(LoadbalanceStrategy::Capacity, &service[..2], 2, 2000);
        assert!(
            took <= fast_only.mul_f64(1.1),
            "with the slow endpoint {took:?}, without {fast_only:?}"
        );
    }

    #[test]
    fn round_robin_is_held_back_by_the_slow_endpoint() {
        let service = [ms(5), ms(5), ms(2000)];
        let (shares, took, changes) = simulate(LoadbalanceStrategy::RoundRobin, &service, 2, 300);
        assert!(changes.is_empty(), "round robin ejects nothing");
        assert_eq!(shares, [100, 100, 100], "strict turns");
        assert!(took >= Duration::from_secs(100), "lock-step: {took:?}");
    }

    #[test]
    fn an_ejected_endpoint_is_probed_and_readmitted_when_healthy() {
        let t0 = Instant::now();
        let mut b = Balancer::new(LoadbalanceStrategy::Capacity, Rules::default());
        let (fast, slow) = (b.add_endpoint(), b.add_endpoint());
        let (f, s) = (b.join(fast), b.join(slow));
        let at = |n: u64| t0 + ms(n);
        b.sent(f, at(0));
        b.acked(f, at(5));
        b.sent(s, at(0));
        // The slow window ages: over the rule from 105 ms (5 ms × 5 and 100 ms above).
        assert!(b.review(at(500)).is_empty());
        assert_eq!(b.health(slow), Some(Health::Admitted));
        let changes = b.review(at(1_600));
        assert!(
            matches!(
                changes[..],
                [Change::Ejected { endpoint, period, .. }] if endpoint == slow && period == Duration::from_secs(10)
            ),
            "{changes:?}"
        );
        assert_eq!(
            b.decide(s, at(1_700)).0,
            Decision::Wait {
                recheck: Some(at(11_600))
            }
        );
        assert_eq!(b.decide(f, at(1_700)).0, Decision::Take);
        b.acked(s, at(2_000));
        // The period ends: one probe window, then a fast ACK readmits.
        let (d, changes) = b.decide(s, at(11_600));
        assert_eq!(d, Decision::Take);
        assert_eq!(changes, [Change::Probing { endpoint: slow }]);
        b.sent(s, at(11_600));
        assert_eq!(b.decide(s, at(11_601)).0, Decision::Wait { recheck: None });
        let (_, changes) = b.acked(s, at(11_606));
        assert_eq!(
            changes,
            [Change::Readmitted {
                endpoint: slow,
                latency: ms(6)
            }]
        );
        assert_eq!(b.ewma(slow), Some(ms(6)));
    }

    #[test]
    fn a_slow_probe_doubles_the_ejection() {
        let t0 = Instant::now();
        let mut b = Balancer::new(LoadbalanceStrategy::Capacity, Rules::default());
        let (fast, slow) = (b.add_endpoint(), b.add_endpoint());
        let (f, s) = (b.join(fast), b.join(slow));
        let at = |n: u64| t0 + ms(n);
        b.sent(f, at(0));
        b.acked(f, at(5));
        b.sent(s, at(0));
        b.review(at(200));
        b.review(at(1_300));
        b.acked(s, at(2_000));
        b.decide(s, at(11_300));
        b.sent(s, at(11_300));
        let (_, changes) = b.acked(s, at(13_300));
        assert!(
            matches!(changes[..], [Change::Ejected { period, .. }] if period == Duration::from_secs(20)),
            "{changes:?}"
        );
    }

    #[test]
    fn the_last_admitted_endpoint_is_never_ejected_and_ejected_ones_fill_in() {
        let t0 = Instant::now();
        let mut b = Balancer::new(LoadbalanceStrategy::Capacity, Rules::default());
        let (fast, slow) = (b.add_endpoint(), b.add_endpoint());
        let (f, s) = (b.join(fast), b.join(slow));
        let at = |n: u64| t0 + ms(n);
        b.sent(f, at(0));
        b.acked(f, at(5));
        b.sent(s, at(0));
        b.review(at(200));
        b.review(at(1_300));
        assert!(matches!(b.health(slow), Some(Health::Ejected { .. })));
        b.acked(s, at(1_350));
        // The fast endpoint's connection goes away: the ejected one takes windows.
        b.leave(f);
        assert_eq!(b.decide(s, at(1_400)).0, Decision::Take);
        // Alone, nothing is compared and nothing ejected.
        assert!(b
            .review(at(60_000))
            .iter()
            .all(|c| !matches!(c, Change::Ejected { .. })));
    }

    #[test]
    fn a_removed_endpoint_takes_nothing_and_leaves_once_answered() {
        let t0 = Instant::now();
        for strategy in [
            LoadbalanceStrategy::Capacity,
            LoadbalanceStrategy::RoundRobin,
        ] {
            let mut b = Balancer::new(strategy, Rules::default());
            let (keep, gone) = (b.add_endpoint(), b.add_endpoint());
            let (k, g) = (b.join(keep), b.join(gone));
            b.sent(g, t0);
            b.remove_endpoint(gone);
            assert_eq!(b.decide(g, t0).0, Decision::Wait { recheck: None });
            assert_eq!(b.decide(k, t0).0, Decision::Take, "{strategy:?}");
            b.taken(k);
            assert_eq!(
                b.decide(k, t0).0,
                Decision::Take,
                "the turn skips {strategy:?}"
            );
            b.acked(g, t0 + ms(4));
            assert_eq!(b.decide(g, t0 + ms(4)).0, Decision::Leave);
        }
    }

    #[test]
    fn a_somewhat_slower_endpoint_shares_light_load_and_an_idle_one_is_measured_again() {
        let t0 = Instant::now();
        let at = |n: u64| t0 + ms(n);
        let mut b = Balancer::new(LoadbalanceStrategy::Capacity, Rules::default());
        let (fast, other) = (b.add_endpoint(), b.add_endpoint());
        let (f, o) = (b.join(fast), b.join(other));
        b.sent(f, at(0));
        b.acked(f, at(1));
        b.sent(o, at(0));
        b.acked(o, at(4));
        // 4 ms against 1 ms idle: within 1.5 × 1 + 5 ms, both pull.
        assert_eq!(b.decide(o, at(10)).0, Decision::Take);
        // One cold window of 40 ms (EWMA 14.8 ms) keeps it out while the fast one idles ...
        b.sent(o, at(10));
        b.acked(o, at(50));
        assert!(matches!(b.decide(o, at(51)).0, Decision::Wait { .. }));
        // ... until it has been idle for `remeasure`: one window measures it again.
        assert_eq!(b.decide(o, at(1_050)).0, Decision::Take);
        b.sent(o, at(1_050));
        assert!(matches!(b.decide(o, at(1_051)).0, Decision::Wait { .. }));
        assert_eq!(b.health(other), Some(Health::Admitted));
    }

    #[test]
    fn an_unmeasured_endpoint_gets_one_window_at_a_time() {
        let t0 = Instant::now();
        let mut b = Balancer::new(LoadbalanceStrategy::Capacity, Rules::default());
        let e = b.add_endpoint();
        let c = b.join(e);
        assert_eq!(b.decide(c, t0).0, Decision::Take);
        b.sent(c, t0);
        assert_eq!(b.decide(c, t0).0, Decision::Wait { recheck: None });
        b.acked(c, t0 + ms(3));
        assert_eq!(b.decide(c, t0 + ms(3)).0, Decision::Take);
    }

    proptest! {
        /// Whatever the latencies and windows in flight, some connection may always take
        /// (the best one), and at least one endpoint stays admitted.
        #[test]
        fn someone_may_always_take(
            lat in proptest::collection::vec(1u64..5_000, 1..6),
            out in proptest::collection::vec(0usize..3, 6),
            later in 0u64..120_000,
        ) {
            let t0 = Instant::now();
            let mut b = Balancer::new(LoadbalanceStrategy::Capacity, Rules::default());
            let conns: Vec<ConnId> = lat.iter().map(|_| { let e = b.add_endpoint(); b.join(e) }).collect();
            for (i, l) in lat.iter().enumerate() {
                b.sent(conns[i], t0);
                b.acked(conns[i], t0 + ms(*l));
            }
            let base = t0 + ms(5_000);
            for (i, c) in conns.iter().enumerate() {
                for _ in 0..out[i] {
                    b.sent(*c, base);
                }
            }
            let now = base + ms(later);
            let decisions: Vec<Decision> = conns.iter().map(|c| b.decide(*c, now).0).collect();
            prop_assert!(decisions.contains(&Decision::Take), "{decisions:?}");
            prop_assert!((0..lat.len()).any(|e| b.health(e) == Some(Health::Admitted)));
        }
    }
}
