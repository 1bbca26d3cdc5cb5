//! Errors of the harness: each names the step and the thing that failed.

use std::path::PathBuf;

/// Why a benchmark step could not be carried out.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// A file or socket operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What the harness was doing.
        what: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A program could not be started.
    #[error("cannot start {program}: {source}")]
    Spawn {
        /// The program's path.
        program: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A server did not announce its address in time.
    #[error("{program} did not print {marker:?} within {seconds} s; its output: {output}")]
    NotReady {
        /// Which program.
        program: String,
        /// The line it should have printed.
        marker: String,
        /// How long the harness waited.
        seconds: u64,
        /// The tail of what it printed instead.
        output: String,
    },
    /// A child ran past its deadline and was killed.
    #[error("{program} was still running after {seconds} s and was killed")]
    Timeout {
        /// Which program.
        program: String,
        /// The deadline.
        seconds: u64,
    },
    /// A run finished but not every event arrived or its numbers are missing.
    #[error("{program} run failed (exit {code}): {detail}")]
    RunFailed {
        /// Which program.
        program: String,
        /// Its exit code, or -1 when killed by a signal.
        code: i32,
        /// The relevant output.
        detail: String,
    },
    /// A build step failed.
    #[error("building {what} failed: {detail}")]
    Build {
        /// What was being built.
        what: String,
        /// The tail of the build output.
        detail: String,
    },
    /// A plot could not be drawn.
    #[error("plot {path}: {detail}")]
    Plot {
        /// The PNG being written.
        path: PathBuf,
        /// The plotting library's message.
        detail: String,
    },
}
