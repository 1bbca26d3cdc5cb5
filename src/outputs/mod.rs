//! Outputs: where batches go. Exactly one output is enabled (Beats' rule), or Logstash and
//! Elasticsearch as a pair with `output.failover.enabled: true` ([`failover`]).
//!
//! # The contract
//! An output is built from its config into one [`Output`] value per worker. Each worker
//! runs until its [`BatchSource`] returns `None`, and ends every [`crate::pipeline::Batch`]
//! it takes with a verdict (`ack`, `retry`, `retry_events`, `drop_events`, `resolve`, or
//! `cancelled`). A worker may hold several batches at once (pipelining) and may decide
//! retries with pure code from `Batch::retries()`. Returning `Err` ends the run as a
//! runtime failure; the batches it still held go back to the queue by their `Drop`.
//!
//! `BatchSource::next_batch` returns `None` only when inputs are finished and nothing is
//! unsettled — including the batches the calling worker still holds. A pipelining worker
//! (Logstash, several windows in flight) therefore `select!`s between `next_batch` and its
//! ACK reader, and stops asking for more when its own window limit is reached. Retried
//! events go to the front of the shared queue in their original order; whichever worker
//! asks next gets them, which is how a worker that lost its connection hands its events to
//! another one.

pub mod backoff;
pub mod console;
pub mod discard;
pub mod elasticsearch;
pub mod failover;
pub mod file;
pub mod logstash;
pub mod probe;

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::config::OutputsConfig;
use crate::event::EventMeta;
use crate::pipeline::{BatchSource, Metrics, PackSettings};

/// The future of one running output worker.
pub type WorkerFuture = Pin<Box<dyn Future<Output = Result<(), OutputError>> + Send>>;

/// One output worker.
pub trait Output: Send {
    /// Consumes batches from `batches` until it returns `None`, reporting each batch's fate
    /// and the bytes written to `metrics.output_bytes`.
    fn run(self: Box<Self>, batches: BatchSource, metrics: Arc<Metrics>) -> WorkerFuture;
}

/// Why an output could not be selected, built or kept running.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OutputError {
    /// No output section is enabled.
    #[error("no output is enabled; enable exactly one of output.console, output.file, output.discard, output.logstash, output.elasticsearch")]
    NoneEnabled,
    /// Two outputs are enabled.
    #[error("{first} and {second} are both enabled; enable exactly one output (set `enabled: false` on the other)")]
    TwoEnabled {
        /// The first enabled output's key.
        first: &'static str,
        /// The second one.
        second: &'static str,
    },
    /// A setting has a value the output cannot use.
    #[error("{key}: {reason}")]
    Invalid {
        /// The full key, e.g. `output.file.permissions`.
        key: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// `output.elasticsearch` cannot start (the message names the key).
    #[error(transparent)]
    Elasticsearch(Box<elasticsearch::output::BuildError>),
    /// The Elasticsearch API key is expired, invalidated or refused (names the key id).
    #[error(transparent)]
    ApiKey(elasticsearch::key_check::KeyCheckError),
    /// `output.logstash` could not be built (the message names the setting).
    #[error(transparent)]
    Logstash(Box<logstash::BuildError>),
    /// An output worker's own thread (and runtime) could not be started, or it panicked.
    #[error("output worker {worker}: {reason}")]
    Worker {
        /// The worker's thread name.
        worker: String,
        /// What went wrong.
        reason: String,
    },
    /// Reading or writing failed.
    #[error("{what} {}: {source}", path.display())]
    Io {
        /// What was being done ("cannot write to file").
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// Knobs that are not user configuration but test/benchmark aids.
#[derive(Debug, Clone, Copy, Default)]
pub struct OutputKnobs {
    /// `output.discard` waits this long per batch (a deliberately slow output, for the
    /// backpressure test and benchmarks).
    pub discard_delay: Option<Duration>,
}

/// The selected output, ready to run.
pub struct OutputPlan {
    /// The output's key, e.g. `output.file`.
    pub key: &'static str,
    /// Events per batch.
    pub bulk_max_size: usize,
    /// One value per worker.
    pub workers: Vec<Box<dyn Output>>,
    /// What goes into every event's `@metadata`.
    pub meta: EventMeta,
    /// The output writes events to standard output (then no progress view there).
    pub writes_stdout: bool,
    /// A check to pass before any input starts (the Elasticsearch API key's validity);
    /// its error refuses the run.
    pub preflight: Option<WorkerFuture>,
    /// How a disk queue stores windows ready for this output to send, if it can
    /// (docs/disk-queue.md §11).
    pub pack: Option<PackSettings>,
}

impl std::fmt::Debug for OutputPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutputPlan")
            .field("key", &self.key)
            .field("bulk_max_size", &self.bulk_max_size)
            .field("workers", &self.workers.len())
            .finish()
    }
}

/// Picks the one enabled output and builds its workers.
///
/// # Errors
/// [`OutputError`] naming the keys: none or two enabled, an output that cannot be built, or
/// an invalid setting.
pub fn select(config: &OutputsConfig, knobs: OutputKnobs) -> Result<OutputPlan, OutputError> {
    let enabled = config.enabled();
    if let Some(fo) = config.failover.as_ref().filter(|c| c.enabled) {
        if let Some(other) = enabled
            .iter()
            .find(|k| **k != "output.logstash" && **k != "output.elasticsearch")
        {
            return Err(OutputError::Invalid {
                key: failover::KEY,
                reason: format!(
                    "failover pairs output.logstash with output.elasticsearch; disable {other}"
                ),
            });
        }
        return failover::plan(fo, config.logstash.as_ref(), config.elasticsearch.as_ref());
    }
    let key = match enabled.as_slice() {
        [] => return Err(OutputError::NoneEnabled),
        [one] => *one,
        [first, second, ..] => return Err(OutputError::TwoEnabled { first, second }),
    };
    let meta = EventMeta::default();
    match (key, &config.console, &config.file, &config.discard) {
        ("output.console", Some(c), _, _) => Ok(OutputPlan {
            key,
            bulk_max_size: positive("output.console.bulk_max_size", c.bulk_max_size)?,
            workers: vec![Box::new(console::ConsoleOutput::new(c.pretty))],
            meta,
            writes_stdout: true,
            preflight: None,
            pack: None,
        }),
        ("output.file", _, Some(c), _) => Ok(OutputPlan {
            key,
            bulk_max_size: positive("output.file.bulk_max_size", c.bulk_max_size)?,
            workers: vec![Box::new(file::FileOutput::new(c)?)],
            meta,
            writes_stdout: false,
            preflight: None,
            pack: None,
        }),
        ("output.discard", _, _, Some(c)) => Ok(OutputPlan {
            key,
            bulk_max_size: positive("output.discard.bulk_max_size", c.bulk_max_size)?,
            workers: vec![Box::new(discard::DiscardOutput::new(knobs.discard_delay))],
            meta,
            writes_stdout: false,
            preflight: None,
            pack: None,
        }),
        ("output.elasticsearch", ..) => match &config.elasticsearch {
            Some(c) => {
                elasticsearch::output::plan(c).map_err(|e| OutputError::Elasticsearch(Box::new(e)))
            }
            None => Err(OutputError::NoneEnabled),
        },
        ("output.logstash", ..) => {
            let cfg = config.logstash.as_ref().ok_or(OutputError::NoneEnabled)?;
            let (settings, workers) =
                logstash::build(cfg).map_err(|e| OutputError::Logstash(Box::new(e)))?;
            Ok(OutputPlan {
                key,
                bulk_max_size: settings.bulk_max_size,
                workers: workers
                    .into_iter()
                    .map(|w| Box::new(w) as Box<dyn Output>)
                    .collect(),
                meta: EventMeta {
                    beat: settings.index.clone(),
                    escape_html: settings.escape_html,
                    ..EventMeta::default()
                },
                writes_stdout: false,
                preflight: None,
                pack: settings.pack_settings(),
            })
        }
        // `OutputsConfig::enabled` names only the five outputs matched above.
        _ => Err(OutputError::NoneEnabled),
    }
}

fn positive(key: &'static str, value: usize) -> Result<usize, OutputError> {
    if value == 0 {
        return Err(OutputError::Invalid {
            key,
            reason: "must be at least 1".to_string(),
        });
    }
    Ok(value)
}
