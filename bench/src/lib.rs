//! The parts of the skidder-bench harness that its micro benchmarks share with the
//! `skidder-bench` command, so both measure the same corpus.

pub mod corpus;
pub mod error;
pub mod machine;
pub mod null_sink;
pub mod sections;
