//! skidder: an event shipper that runs next to Logstash.
//!
//! Data flows one way, acknowledgements flow back:
//! inputs → pipeline (queue, batching, ACK tracking) → outputs.
//!
//! ```text
//!  inputs (stdin, generator) ──Publisher──▶ pipeline::Queue ──Batch──▶ outputs (console, file, discard)
//!        ▲                                         │  ▲                      │
//!        └──── acked counts, in publish order ◀────┘  └── ack/retry/drop ────┘
//! ```

pub mod agent;
pub mod app;
pub mod cli;
pub mod config;
pub mod credentials;
pub mod demo;
pub mod event;
pub mod http;
pub mod inputs;
pub mod outputs;
pub mod pipeline;
pub mod processors;
pub mod receive;
pub mod telemetry;
