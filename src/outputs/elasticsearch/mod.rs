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
//! tests; `client` is a thin reqwest wrapper; `sender` runs one batch to its final outcome.

pub mod bulk;
pub mod client;
pub mod event;
pub mod index;
pub mod response;
pub mod sender;
pub mod settings;

pub use client::{BulkReply, EsClient, EsError};
pub use sender::{BatchOutcome, Dropped, Sender};
pub use settings::{ElasticsearchSettings, SettingsError};
