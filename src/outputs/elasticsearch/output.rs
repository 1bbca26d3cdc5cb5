//! The pipeline adapter: `output.elasticsearch` as [`Output`] workers.
//!
//! # Workers (Beats semantics)
//! - `loadbalance: true` (default): `worker` × hosts workers, each bound to one host. A
//!   host that fails makes its workers hand their batches back to the shared queue, where
//!   the workers of the other hosts pick them up.
//! - `loadbalance: false`: `worker` workers, each starting at the first host and moving to
//!   the next one when a request fails at the connection level or with a 5xx (failover).
//!
//! # One batch, one verdict
//! A worker sends each batch once ([`Sender`] with no retry rounds of its own) and ends it
//! with one [`Batch::resolve`]:
//! - indexed, already present (409 on `create`) or written to the dead-letter index: `Ack`;
//! - refused as non-indexable under `non_indexable_policy: drop`: `Drop` (counted and logged
//!   at ERROR by the pipeline, with the cluster's reason);
//! - not delivered (connection, timeout, 401/403, 429/5xx, per-item 429): `Retry`, after
//!   the backoff (`backoff.init` doubling up to `backoff.max`, with jitter) — unless the
//!   batch was already retried `max_retries` times (`-1` = forever), in which case those
//!   events are dropped with the last error and the host in the reason, as Beats does.
//!
//! A connection-level failure hands the events back first and then waits, so another host's
//! worker can deliver them meanwhile; any other failure (a refused credential, an overloaded
//! cluster) waits first and hands back after, so nothing ever spins on a failing cluster. A
//! refused credential whose source can change (`api_key_path`, `password_path`, the
//! keystore) ends that wait as soon as a new credential is there.
//!
//! # Shutdown
//! The worker holds no event of its own: when the run is cancelled its future is dropped,
//! and the batch it held goes back to the queue unsettled (the batch's `Drop`). Every
//! resend after a retry is idempotent with deterministic ids (`document_id`).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use tracing::{debug, warn};

use super::settings::{ElasticsearchSettings, NonIndexableAction};
use super::{key_check, BatchOutcome, EsClient, EsError, Sender, SettingsError};
use crate::config::units::human;
use crate::config::ElasticsearchOutputConfig;
use crate::credentials::CredentialError;
use crate::event::EventMeta;
use crate::outputs::backoff::{random_jitter, Backoff};
use crate::outputs::{Output, OutputError, OutputPlan, WorkerFuture};
use crate::pipeline::{Batch, BatchSource, Fate, Metrics};

/// The output's key.
pub const KEY: &str = "output.elasticsearch";

/// Why `output.elasticsearch` cannot start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// A setting is invalid (the message names the key).
    #[error(transparent)]
    Settings(#[from] SettingsError),
    /// The HTTP client for a host could not be built (TLS material, client options).
    #[error("output.elasticsearch: {0}")]
    Client(Box<EsError>),
}

/// Validates `config` and builds its workers (see the module docs for how many).
///
/// # Errors
/// [`BuildError`] naming the key at fault.
pub fn plan(config: &ElasticsearchOutputConfig) -> Result<OutputPlan, BuildError> {
    let settings = ElasticsearchSettings::from_config(config)?;
    let workers = workers(&settings).map_err(|e| BuildError::Client(Box::new(e)))?;
    // Shares the credential with the workers (clones of one EsAuth): what it learns about
    // the key's expiry is theirs too.
    let client = EsClient::new(&settings).map_err(|e| BuildError::Client(Box::new(e)))?;
    let warning = settings.expiry_warning;
    let preflight: WorkerFuture = Box::pin(async move {
        // A cluster that does not answer must not hold the start for a whole `timeout`:
        // delivery reports it anyway.
        match tokio::time::timeout(PREFLIGHT_LIMIT, key_check::startup(&client, warning)).await {
            Ok(result) => result.map_err(OutputError::ApiKey),
            Err(_) => {
                warn!(
                    after = %human(PREFLIGHT_LIMIT),
                    "could not check the API key's validity at start; starting anyway"
                );
                Ok(())
            }
        }
    });
    Ok(OutputPlan {
        key: KEY,
        bulk_max_size: settings.bulk_max_size,
        workers,
        // Beats' Elasticsearch output has no `index` in @metadata: the defaults.
        meta: EventMeta::default(),
        writes_stdout: false,
        preflight: Some(preflight),
        pack: None,
    })
}

/// The longest the API key check may hold the start.
const PREFLIGHT_LIMIT: std::time::Duration = std::time::Duration::from_secs(10);

/// The workers for `settings`: `worker` × hosts pinned workers with `loadbalance`,
/// otherwise `worker` failover workers.
///
/// # Errors
/// [`EsError`] when a host's HTTP client cannot be built.
pub fn workers(settings: &ElasticsearchSettings) -> Result<Vec<Box<dyn Output>>, EsError> {
    let mut out: Vec<Box<dyn Output>> = Vec::new();
    if settings.loadbalance {
        for host in &settings.hosts {
            let mut pinned = settings.clone();
            pinned.hosts = vec![host.clone()];
            for _ in 0..settings.worker {
                out.push(Box::new(ElasticsearchOutput::new(&pinned)?));
            }
        }
    } else {
        for _ in 0..settings.worker {
            out.push(Box::new(ElasticsearchOutput::new(settings)?));
        }
    }
    Ok(out)
}

/// One worker: a [`Sender`] (its own connections and buffers), its backoff and the
/// `max_retries` budget it applies to batches.
#[derive(Debug)]
pub struct ElasticsearchOutput {
    sender: Sender,
    backoff: Backoff,
    max_retries: Option<u32>,
    dead_letter_index: Option<String>,
    /// The hosts of this worker, for messages.
    hosts: String,
    /// Reused per batch: the documents handed to the sender.
    docs: Vec<Bytes>,
    /// Reused per batch: each event's verdict.
    fates: Vec<Fate>,
    /// `ssl.expiry_warning`, for the API key.
    expiry_warning: std::time::Duration,
}

impl ElasticsearchOutput {
    /// A worker for `settings`, starting at its first host.
    ///
    /// # Errors
    /// As [`Sender::new`].
    pub fn new(settings: &ElasticsearchSettings) -> Result<Self, EsError> {
        // The worker decides retries per batch (Batch::retries), so the sender makes one
        // round per batch and never waits itself.
        let mut once = settings.clone();
        once.max_retries = Some(0);
        let hosts = settings
            .hosts
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        Ok(Self {
            sender: Sender::new(&once, 0)?,
            backoff: Backoff::new(settings.backoff_init, settings.backoff_max),
            max_retries: settings.max_retries,
            dead_letter_index: match &settings.non_indexable {
                NonIndexableAction::DeadLetter { index } => Some(index.clone()),
                NonIndexableAction::Drop => None,
            },
            hosts,
            docs: Vec::new(),
            fates: Vec::new(),
            expiry_warning: settings.expiry_warning,
        })
    }

    async fn deliver(&mut self, batch: Batch, metrics: &Metrics) {
        key_check::periodic(self.sender.client(), 0, self.expiry_warning).await;
        self.docs.clear();
        self.docs.extend(batch.docs().cloned());
        let out = self.sender.send_batch(&self.docs).await;
        // The batch owns the events; keep only the capacity, not references to them.
        self.docs.clear();
        let client = self.sender.client();
        metrics.api_key_expiry_s_plus_one.store(
            key_check::seconds_left(client).map_or(0, |s| s.saturating_add(1)),
            Ordering::Relaxed,
        );
        metrics
            .output_bytes
            .fetch_add(out.bytes_sent, Ordering::Relaxed);
        if out.dead_lettered > 0 {
            warn!(
                events = out.dead_lettered,
                index = self.dead_letter_index.as_deref().unwrap_or(""),
                "events refused by Elasticsearch were written to the dead-letter index"
            );
        }
        if out.retry_later.is_empty() {
            self.backoff.reset();
            self.settle(batch, &out, false);
            return;
        }
        let exhausted = self.max_retries.is_some_and(|max| batch.retries() >= max);
        if exhausted {
            // Given up: no point in waiting before reporting it.
            self.settle(batch, &out, true);
            return;
        }
        let wait = self.backoff.next_delay(random_jitter());
        let host_failure = out
            .last_error
            .as_ref()
            .is_some_and(EsError::is_host_failure);
        if out.last_error.is_none() {
            // Items rejected one by one (429/5xx); a failed request was already logged by
            // the sender with its host and error.
            warn!(
                hosts = %self.hosts,
                events = out.retry_later.len(),
                retries = batch.retries(),
                wait = %human(wait),
                "Elasticsearch rejected items for now; retrying them after the backoff"
            );
        } else {
            debug!(
                hosts = %self.hosts,
                events = out.retry_later.len(),
                retries = batch.retries(),
                wait = %human(wait),
                "events not delivered; retrying after the backoff"
            );
        }
        // Counted as a failure of the output while it waits, so the metrics line shows the
        // destination down instead of only a filling queue.
        let _backing_off = metrics.output_failed();
        if host_failure {
            self.settle(batch, &out, false);
            tokio::time::sleep(wait).await;
        } else if let Some(EsError::Credential(CredentialError::Refused { credential, .. })) =
            &out.last_error
        {
            // A refused credential: resume as soon as its source holds a new one.
            self.wait_for_new_credential(credential, wait).await;
            self.settle(batch, &out, false);
        } else {
            tokio::time::sleep(wait).await;
            self.settle(batch, &out, false);
        }
    }

    /// Waits up to `wait`, ending early when the credential changes. The source is a file
    /// (no change notification without a new dependency), so it is looked at every
    /// [`CREDENTIAL_POLL`]: one `stat` each time.
    async fn wait_for_new_credential(&self, refused: &str, wait: std::time::Duration) {
        let auth = self.sender.client().auth();
        if !auth.is_watched() {
            tokio::time::sleep(wait).await;
            return;
        }
        let before = auth.refresh();
        if auth.credential() != refused {
            // Rotated while the refused request was in flight.
            return;
        }
        let deadline = tokio::time::Instant::now() + wait;
        while tokio::time::Instant::now() < deadline {
            let step = CREDENTIAL_POLL.min(deadline - tokio::time::Instant::now());
            tokio::time::sleep(step).await;
            if auth.refresh() != before {
                debug!(credential = %auth.credential(), "new credential; retrying now");
                return;
            }
        }
    }

    /// Ends `batch` with one verdict from `out`; `give_up` turns retries into drops.
    fn settle(&mut self, batch: Batch, out: &BatchOutcome, give_up: bool) {
        self.fates.clear();
        self.fates.resize(batch.len(), Fate::Ack);
        let undelivered = if give_up { Fate::Drop } else { Fate::Retry };
        for &i in &out.retry_later {
            if let Some(f) = self.fates.get_mut(i) {
                *f = undelivered;
            }
        }
        for d in &out.dropped {
            if let Some(f) = self.fates.get_mut(d.event) {
                *f = Fate::Drop;
            }
        }
        let gave_up = give_up && !out.retry_later.is_empty();
        let reason = if out.dropped.is_empty() && !gave_up {
            String::new()
        } else {
            self.drop_reason(&batch, out, give_up)
        };
        let fates = &self.fates;
        batch.resolve(|i, _| fates.get(i).copied().unwrap_or(Fate::Retry), &reason);
    }

    fn drop_reason(&self, batch: &Batch, out: &BatchOutcome, give_up: bool) -> String {
        let mut parts = Vec::new();
        if let Some(first) = out.dropped.first() {
            let status = if first.status == super::sender::LOCAL_REFUSAL {
                "not indexable".to_string()
            } else {
                format!("HTTP {}", first.status)
            };
            parts.push(format!(
                "{} refused by Elasticsearch as non-indexable (first: {status}: {})",
                out.dropped.len(),
                first.reason
            ));
        }
        if give_up && !out.retry_later.is_empty() {
            let last = match &out.last_error {
                Some(e) => error_chain(e),
                None => "the cluster kept answering 429/5xx for these items".to_string(),
            };
            parts.push(format!(
                "{} not delivered to {} after {} retries (max_retries {}): {last}",
                out.retry_later.len(),
                self.hosts,
                batch.retries(),
                self.max_retries.map_or(-1, i64::from),
            ));
        }
        parts.join("; ")
    }
}

/// How often a worker whose credential was refused looks for a new one.
const CREDENTIAL_POLL: std::time::Duration = std::time::Duration::from_millis(200);

/// `err` and its sources on one line (reqwest's reasons sit in the sources).
fn error_chain(err: &EsError) -> String {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}

impl Output for ElasticsearchOutput {
    fn run(self: Box<Self>, mut batches: BatchSource, metrics: Arc<Metrics>) -> WorkerFuture {
        Box::pin(async move {
            let mut this = *self;
            while let Some(batch) = batches.next_batch().await {
                this.deliver(batch, &metrics).await;
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(
        hosts: &[&str],
        f: impl FnOnce(&mut ElasticsearchOutputConfig),
    ) -> ElasticsearchSettings {
        let mut c = ElasticsearchOutputConfig {
            hosts: hosts.iter().map(|h| h.to_string()).collect(),
            ..Default::default()
        };
        f(&mut c);
        ElasticsearchSettings::from_config(&c).unwrap()
    }

    #[test]
    fn loadbalance_makes_worker_times_hosts_workers() {
        let s = settings(&["a:9200", "b:9200", "c:9200"], |c| c.worker = 2);
        assert_eq!(workers(&s).unwrap().len(), 6);
        let s = settings(&["a:9200", "b:9200", "c:9200"], |c| {
            c.worker = 2;
            c.loadbalance = false;
        });
        assert_eq!(workers(&s).unwrap().len(), 2);
    }

    #[test]
    fn plan_keeps_beats_metadata_and_bulk_size() {
        let c = ElasticsearchOutputConfig {
            hosts: vec!["localhost".into()],
            bulk_max_size: 50,
            ..Default::default()
        };
        let p = plan(&c).unwrap();
        assert_eq!((p.key, p.bulk_max_size, p.workers.len()), (KEY, 50, 1));
        assert_eq!(p.meta.beat, EventMeta::default().beat);
        assert!(!p.writes_stdout);
    }

    #[test]
    fn invalid_settings_name_their_key() {
        let c = ElasticsearchOutputConfig {
            hosts: vec!["localhost".into()],
            max_retries: -2,
            ..Default::default()
        };
        let e = plan(&c).unwrap_err().to_string();
        assert!(e.starts_with("output.elasticsearch.max_retries:"), "{e}");
    }
}
