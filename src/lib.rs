//! skidder: an event shipper that runs next to Logstash.
//!
//! Data flows one way, acknowledgements flow back:
//! inputs → pipeline (queue, batching, ACK tracking) → outputs.

pub mod config;
pub mod credentials;
pub mod outputs;
