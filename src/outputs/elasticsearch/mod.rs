//! `output.elasticsearch`: events as `_bulk` requests, Beats' settings and semantics.
//!
//! ```text
//!  ElasticsearchOutputConfig ──settings──▶ ElasticsearchSettings
//!                                              │
//!  &[Bytes] (encoded events) ──bulk──▶ body ──client──▶ HTTP reply ──response──▶ verdicts
//!          ▲                                                                     │
//!          └──────── retry items (backoff) / split on 413 / dead-letter ◀── sender
//! ```
//!
//! Pure parts (`settings`, `index`, `event`, `bulk`, `response`) do no I/O and have exact
//! tests; `client` is a thin reqwest wrapper; `sender` runs one batch to its final outcome
//! ([`BatchOutcome`]: indexed, duplicates, dead-lettered, dropped with reasons, retry later),
//! which is all a pipeline adapter needs: one [`Sender`] per worker, `send_batch`, then ACK
//! `acked()` events and requeue `retry_later`.
//!
//! Deterministic ids: with `@metadata._id` set on the event (or `document_id: hash`), a
//! batch replayed after a retry or a failover overwrites (`index`) or is answered 409
//! (`create`, counted as already indexed) instead of being indexed twice. A Logstash
//! pipeline receiving the same events agrees with
//! `output { elasticsearch { document_id => "%{[@metadata][_id]}" } }`.

pub mod bulk;
pub mod client;
pub mod event;
pub mod index;
pub mod output;
pub mod response;
pub mod sender;
pub mod settings;

pub use client::{BulkReply, EsClient, EsError};
pub use output::ElasticsearchOutput;
pub use sender::{BatchOutcome, Dropped, Sender};
pub use settings::{ElasticsearchSettings, SettingsError};
