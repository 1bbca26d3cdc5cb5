//! `queue.mem.events` when the configuration does not write it: large enough for every output
//! connection to keep its windows in flight.
//!
//! The memory queue counts an event until it is acknowledged (as Beats' does), so its
//! capacity is shared by the batches in flight at the outputs and the events waiting for them.
//! Beats' default of 3200 is two batches of 1600: one connection with `pipelining: 2`. With
//! two connections (`worker: 2`, or two `loadbalance` hosts) it holds one batch per connection,
//! and each connection idles from its ACK until the inputs have refilled a batch (measured
//! into the harness's null sink on a quiet 2-core machine: two connections reached 1.42× one
//! connection's events/s with 3200, 1.77× with this rule; BENCHMARKS.md, "Worker scaling").
//! So when the user did not set `queue.mem.events` (nor a preset), the capacity is
//!
//! ```text
//! max(3200, connections × max(pipelining, 2) × batch)
//!   connections = worker × hosts (one host's worth without loadbalance)
//!   batch       = min(bulk_max_size, flush.min_events)  (bulk_max_size if min_events is 0)
//! ```
//!
//! taken over the enabled Logstash and Elasticsearch outputs (the Elasticsearch output sends
//! one request per connection at a time: two batches, one in flight while the next fills).
//! This is the rule behind Beats 8.12's presets: `balanced` (1 worker) 1 × 2 × 1600 = 3200,
//! `throughput` (4 workers) 4 × 2 × 1600 = 12800. The default configuration (one connection)
//! keeps 3200 and its memory; `skidder export config` prints the value in effect.

use super::Config;

/// Beats' `queue.mem.events` default (8.12+): the floor of the sized capacity.
pub const BEATS_QUEUE_EVENTS: usize = 3200;

/// The capacity for `connections` output connections, each holding
/// `batches_per_connection` batches of `batch` events; never below [`BEATS_QUEUE_EVENTS`].
pub fn sized_queue_events(
    connections: usize,
    batches_per_connection: usize,
    batch: usize,
) -> usize {
    connections
        .saturating_mul(batches_per_connection)
        .saturating_mul(batch)
        .max(BEATS_QUEUE_EVENTS)
}

impl Config {
    /// `queue.mem.events` for this configuration when it does not set one (see the
    /// [module documentation](self)).
    pub fn sized_queue_events(&self) -> usize {
        let min_events = self.queue.mem.flush.min_events;
        let batch = |bulk: usize| match min_events {
            0 => bulk,
            m => bulk.min(m),
        };
        let connections = |worker: usize, hosts: usize, loadbalance: bool| {
            worker.max(1) * if loadbalance { hosts.max(1) } else { 1 }
        };
        let mut need = BEATS_QUEUE_EVENTS;
        if let Some(ls) = self.output.logstash.as_ref().filter(|c| c.enabled) {
            need = need.max(sized_queue_events(
                connections(ls.worker, ls.hosts.len(), ls.loadbalance),
                ls.pipelining.max(2),
                batch(ls.bulk_max_size),
            ));
        }
        if let Some(es) = self.output.elasticsearch.as_ref().filter(|c| c.enabled) {
            need = need.max(sized_queue_events(
                connections(es.worker, es.hosts.len(), es.loadbalance),
                2,
                batch(es.bulk_max_size),
            ));
        }
        need
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ElasticsearchOutputConfig, LogstashOutputConfig};

    fn logstash(worker: usize, hosts: usize, loadbalance: bool, pipelining: usize) -> Config {
        let mut c = Config::default();
        c.output.logstash = Some(LogstashOutputConfig {
            hosts: (0..hosts).map(|i| format!("ls{i}:5044")).collect(),
            worker,
            loadbalance,
            pipelining,
            ..LogstashOutputConfig::default()
        });
        c
    }

    #[test]
    fn one_connection_keeps_beats_default() {
        assert_eq!(logstash(1, 1, false, 2).sized_queue_events(), 3200);
        // Without loadbalance only one host is used at a time.
        assert_eq!(logstash(1, 3, false, 2).sized_queue_events(), 3200);
        assert_eq!(logstash(1, 1, false, 0).sized_queue_events(), 3200);
        assert_eq!(Config::default().sized_queue_events(), 3200);
    }

    #[test]
    fn each_connection_gets_its_pipelined_batches() {
        assert_eq!(logstash(2, 1, false, 2).sized_queue_events(), 6400);
        assert_eq!(logstash(1, 2, true, 2).sized_queue_events(), 6400);
        assert_eq!(logstash(2, 2, true, 2).sized_queue_events(), 12800);
        assert_eq!(logstash(2, 1, false, 4).sized_queue_events(), 12800);
        // pipelining 0 (wait for each ACK) still gets one batch filling while one is out.
        assert_eq!(logstash(2, 1, false, 0).sized_queue_events(), 6400);
    }

    #[test]
    fn batch_is_the_smaller_of_bulk_max_size_and_min_events() {
        let mut c = logstash(2, 1, false, 2);
        c.output.logstash.as_mut().unwrap().bulk_max_size = 500;
        // 2 × 2 × 500 is below Beats' default.
        assert_eq!(c.sized_queue_events(), 3200);
        c.output.logstash.as_mut().unwrap().bulk_max_size = 4096;
        c.queue.mem.flush.min_events = 0;
        assert_eq!(c.sized_queue_events(), 16384);
    }

    #[test]
    fn elasticsearch_reproduces_beats_presets() {
        let mut c = Config::default();
        // `throughput`: worker 4, bulk_max_size 1600 → Beats sets 12800.
        c.output.elasticsearch = Some(ElasticsearchOutputConfig {
            hosts: vec!["es:9200".into()],
            worker: 4,
            ..ElasticsearchOutputConfig::default()
        });
        assert_eq!(c.sized_queue_events(), 12800);
        // `balanced`: worker 1 → 3200.
        c.output.elasticsearch.as_mut().unwrap().worker = 1;
        assert_eq!(c.sized_queue_events(), 3200);
    }

    #[test]
    fn a_failover_pair_takes_the_larger_need() {
        let mut c = logstash(3, 1, false, 2);
        c.output.elasticsearch = Some(ElasticsearchOutputConfig {
            hosts: vec!["es:9200".into()],
            ..ElasticsearchOutputConfig::default()
        });
        assert_eq!(c.sized_queue_events(), 9600);
    }

    #[test]
    fn disabled_outputs_do_not_count() {
        let mut c = logstash(4, 1, false, 2);
        c.output.logstash.as_mut().unwrap().enabled = false;
        assert_eq!(c.sized_queue_events(), 3200);
    }
}
