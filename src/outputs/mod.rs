//! Outputs.

pub mod backoff;
pub mod elasticsearch;
