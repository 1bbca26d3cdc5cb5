//! Lumberjack v1/v2 codec and session state machines (sans-IO).
#![warn(missing_docs)]
