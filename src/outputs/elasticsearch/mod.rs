//! `output.elasticsearch`: events as `_bulk` requests, Beats' settings and semantics.
//!
//! ```text
//!  ElasticsearchOutputConfig ──settings──▶ ElasticsearchSettings ──output::plan──▶ workers
//!                                                                                   │
//!  Batch ──docs──▶ bulk body ──client──▶ HTTP reply ──response──▶ verdicts ──sender──┘
//!    ▲                                                                 │
//!    └── Batch::resolve: Ack / Drop / Retry (after the backoff) ◀── output
//! ```
//!
//! Pure parts (`settings`, `index`, `event`, `bulk`, `response`) do no I/O and have exact
//! tests; `client` is a thin reqwest wrapper; `sender` runs one batch to a
//! [`BatchOutcome`] (indexed, duplicates, dead-lettered, dropped with reasons, retry later);
//! [`output`] is the pipeline adapter: one [`ElasticsearchOutput`] per worker (`worker` ×
//! hosts with `loadbalance`, else `worker` failing over between hosts), selected by
//! [`crate::outputs::select`].
//!
//! # Bulk semantics
//! Every batch (at most `bulk_max_size` events) is one `_bulk` request, gzip at
//! `compression_level`. The reply is judged item by item, as Beats does:
//! - `2xx`: delivered; `409` on `op_type: create`: already there from an earlier try,
//!   delivered too;
//! - `429` and `5xx` items, and whole-request failures (connection, timeout, 401/403,
//!   429/5xx): sent again after the backoff (`backoff.init` doubling to `backoff.max`, with
//!   jitter). Only the items that failed are resent, in their original order. After
//!   `max_retries` retries of the batch (`-1`: never give up) the remaining events are
//!   dropped, counted and logged at ERROR with the host and the last error;
//! - other `4xx` (mapping conflicts, bad documents) are non-indexable: with
//!   `non_indexable_policy: drop` (default) dropped and logged at ERROR with the cluster's
//!   reason; with `dead_letter_index` written at once into that index, wrapped as Beats does
//!   (`message` = the original document, `error.type` = status, `error.message` = reason),
//!   logged at WARN and counted as delivered;
//! - `413`: the request is split in halves until it fits; a single document too large is
//!   non-indexable.
//!
//! `@metadata` is never indexed; a worker resolves each batch exactly once, and a batch
//! still in flight at shutdown goes back to the queue unacknowledged.
//!
//! # `document_id`
//! Where each item's `_id` comes from, so that a batch sent again (after a retry, a
//! failover, or a restart that replays it) overwrites or is refused instead of being
//! indexed twice:
//! - `metadata` (default, Beats): `@metadata._id` when the event has one, otherwise the
//!   cluster assigns an id (a resend may then duplicate);
//! - `hash`: `@metadata._id` when present, otherwise 128 bits of SHA-256 over the document
//!   ([`bulk::content_id`]): identical documents collapse into one;
//! - `none`: never send an id, even when `@metadata._id` is set.
//!
//! With `op_type` unset (the default) an item with an id goes as `create` and one without as
//! `index` (Elasticsearch then generates the id and authorizes it as a create), so the
//! writer role's `create_doc` is enough ([`settings::WriteNeeds`], [`roles`]). With `create`
//! or unset, a resent item with a known id is answered 409 and counted as already indexed;
//! with `op_type: index` it is overwritten (and needs the `index` privilege).
//!
//! # The same ids from Logstash
//! Events that reach Elasticsearch through Logstash (the Lumberjack output) keep their
//! `@metadata._id`; a Logstash pipeline gets the same deterministic ids, and so the same
//! no-duplicates guarantee when both paths deliver the same event, with:
//!
//! ```text
//! output {
//!   elasticsearch {
//!     hosts       => ["https://es1:9200"]
//!     index       => "%{[@metadata][beat]}-%{+yyyy.MM.dd}"
//!     document_id => "%{[@metadata][_id]}"
//!   }
//! }
//! ```
//!
//! For `hash` ids, `output.logstash.event_id: hash` stamps `@metadata._id` with
//! [`bulk::content_id`] on the Logstash path ([`bulk::stamp_content_id`]); this output's
//! `hash` computes the same id for the unstamped event, so both paths agree (add
//! `action => "create"` there to keep the first copy, as `create` does here).

pub mod bulk;
pub mod client;
pub mod event;
pub mod index;
pub mod key_check;
pub mod output;
pub mod response;
pub mod roles;
pub mod security;
pub mod sender;
pub mod settings;

pub use client::{BulkReply, EsClient, EsError, EsReply};
pub use output::ElasticsearchOutput;
pub use sender::{BatchOutcome, Dropped, Sender};
pub use settings::{ElasticsearchSettings, SettingsError};
