//! The user-facing configuration schema: every section and key skidder accepts, with Beats'
//! names and defaults. Each field's doc comment gives its unit and default; these structs are
//! what `config/skidder.reference.yml` documents.
//!
//! These are the `*Config` types (serde, as the user writes them). Run-time code takes them
//! only after [`super::load`] has validated them.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::units::{ByteSize, Duration};
use crate::credentials::secret::Redactor;
use crate::credentials::Secret;

/// The whole configuration file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// `skidder.*`: the inputs.
    pub skidder: SkidderConfig,
    /// `queue.*`: the event queue between inputs and the output.
    pub queue: QueueConfig,
    /// `output.*`: where events go. Exactly one output is enabled, unless a failover pair is.
    pub output: OutputsConfig,
    /// `logging.*`: log level, format and the periodic metrics line.
    pub logging: LoggingConfig,
    /// `path.*`: data and log directories.
    pub path: PathConfig,
    /// `http.*`: the local HTTP endpoint for stats, as Beats' `http` section.
    pub http: HttpConfig,
    /// The keystore values `${NAME}` put into this configuration: secret wherever they
    /// landed, so export and error texts redact them. Not a key.
    #[serde(skip)]
    pub secrets: Redactor,
    /// How long to keep draining the queue to the output after SIGINT/SIGTERM. Default `5s`
    /// (Beats: `0s`, safe there because its registry re-sends after a restart; skidder's
    /// stdin, generator and lumberjack inputs cannot re-send what a stop loses).
    pub shutdown_timeout: Duration,
    /// `filebeat.*`: Filebeat's name for the input list.
    pub filebeat: FilebeatConfig,
    /// `name`: `agent.name` and `host.name` of every event. Default: the hostname.
    pub name: Option<String>,
    /// `tags`: appended to every event's `tags`, before the input's own. Default `[]`.
    pub tags: Vec<String>,
    /// `fields`: added to every event (under `fields` unless `fields_under_root`); an
    /// input's `fields` win. Default `{}`.
    pub fields: BTreeMap<String, serde_json::Value>,
    /// Put the top-level `fields` at the event's top level. Default `false`.
    pub fields_under_root: bool,
    /// `processors`: run on every event after the input's own processors and the built-in
    /// fields (libbeat's order). Default `[]`.
    pub processors: Vec<serde_json::Value>,
    /// Where each key was set, for problems found after loading; not a key.
    #[serde(skip)]
    pub locator: super::Locator,
    /// Threads of the async runtime (Beats: GOMAXPROCS); `0` or unset = skidder's default, 2.
    pub max_procs: Option<usize>,
    /// What loading accepted but does not apply, or changed (a `preset`, an ignored
    /// management section): printed by `test config`, logged at WARN by a run. Not a key.
    #[serde(skip)]
    pub notices: Vec<super::beats::Notice>,
}

/// The default drain on SIGINT/SIGTERM (see [`Config::shutdown_timeout`]).
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

impl Default for Config {
    fn default() -> Self {
        Self {
            skidder: SkidderConfig::default(),
            queue: QueueConfig::default(),
            output: OutputsConfig::default(),
            logging: LoggingConfig::default(),
            path: PathConfig::default(),
            http: HttpConfig::default(),
            secrets: Redactor::default(),
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
            filebeat: FilebeatConfig::default(),
            name: None,
            tags: Vec::new(),
            fields: BTreeMap::new(),
            fields_under_root: false,
            processors: Vec::new(),
            locator: super::Locator::default(),
            max_procs: None,
            notices: Vec::new(),
        }
    }
}

/// `skidder.*`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct SkidderConfig {
    /// `skidder.inputs`: the list of inputs, each with a `type`.
    pub inputs: Vec<InputConfig>,
}

/// `filebeat.*`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct FilebeatConfig {
    /// `filebeat.inputs`: the input list under Filebeat's name; `skidder.inputs` and this
    /// cannot both list inputs.
    pub inputs: Vec<InputConfig>,
}

/// One entry of `skidder.inputs`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InputConfig {
    /// Settings every input has.
    #[serde(flatten)]
    pub common: CommonInputConfig,
    /// The input type (`type:`) and its own settings.
    #[serde(flatten)]
    pub kind: InputKind,
}

/// Settings shared by every input, with Beats' names.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct CommonInputConfig {
    /// An identifier for logs and metrics. Default: the type and the input's position.
    pub id: Option<String>,
    /// A disabled input is skipped. Default `true`.
    pub enabled: bool,
    /// Extra fields added to every event, under `fields` unless `fields_under_root`.
    pub fields: BTreeMap<String, serde_json::Value>,
    /// Put `fields` at the top level of the event instead of under `fields`. Default `false`.
    pub fields_under_root: bool,
    /// Tags appended to the event's `tags` list.
    pub tags: Vec<String>,
    /// Processors for this input's events, run before the built-in fields and the
    /// top-level `processors`. Default `[]`.
    pub processors: Vec<serde_json::Value>,
}

impl Default for CommonInputConfig {
    fn default() -> Self {
        Self {
            id: None,
            enabled: true,
            fields: BTreeMap::new(),
            fields_under_root: false,
            tags: Vec::new(),
            processors: Vec::new(),
        }
    }
}

/// The input types.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum InputKind {
    /// One event per line of standard input.
    Stdin(StdinInputConfig),
    /// A load generator, like Beats' `benchmark` input.
    Generator(GeneratorInputConfig),
    /// A Logstash-compatible Lumberjack (beats) endpoint.
    #[serde(alias = "beats")]
    Lumberjack(Box<LumberjackInputConfig>),
    /// Events POSTed over HTTP, Filebeat's `http_endpoint` names.
    HttpEndpoint(Box<HttpEndpointInputConfig>),
    /// Log files, tailed like Filebeat's `filestream` input.
    Filestream(Box<super::filestream::FilestreamInputConfig>),
    /// Filebeat's classic `log` input, run as `filestream` (see [`super::log_input`]).
    Log(Box<super::log_input::LogInputConfig>),
}

/// `type: stdin`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct StdinInputConfig {
    /// Parse each line as a JSON object whose keys become event fields. Default `false`.
    pub json: bool,
    /// With `json`: what a line that is not a JSON object becomes. Default `error_event`.
    pub on_json_error: JsonErrorPolicy,
}

/// What the stdin input does with a line that is not valid JSON.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JsonErrorPolicy {
    /// Ship the raw line in `message` with `error.message` set and the tag
    /// `_jsonparsefailure` (nothing lost).
    #[default]
    ErrorEvent,
    /// Count and log the line, ship nothing.
    Drop,
}

/// `type: generator`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct GeneratorInputConfig {
    /// Events in all; `0` = unlimited. Default `0`.
    pub count: u64,
    /// Events per second over all threads; `0` = as fast as possible. Default `0`.
    pub eps: u64,
    /// Stop after this long; `0s` = no limit. Default `0s`.
    pub duration: Duration,
    /// Generator threads. Default `1`.
    pub threads: usize,
    /// The `message` template: `{seq}` is the event's sequence number, `{rand}` a random
    /// number, `{host}` a random host name. Default: a log-like line.
    pub message: String,
    /// Pad each event to about this many bytes; `0` = no padding. Default `0`.
    pub size: usize,
    /// Cycle through the lines of this NDJSON file, sending each line's bytes unchanged.
    pub replay: Option<PathBuf>,
}

impl Default for GeneratorInputConfig {
    fn default() -> Self {
        Self {
            count: 0,
            eps: 0,
            duration: Duration::default(),
            threads: 1,
            message: "event {seq} from {host}: request served in {rand} ms".to_string(),
            size: 0,
            replay: None,
        }
    }
}

/// `type: lumberjack` (alias `beats`): a Logstash-compatible beats endpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct LumberjackInputConfig {
    /// Listen address, `host:port`. Default `localhost:5044`.
    pub host: String,
    /// TLS for the listener; `ssl.client_authentication` selects client-certificate checks.
    pub ssl: SslConfig,
    /// Close a connection with no reads and no writes for this long. Default `60s`.
    pub client_inactivity_timeout: Duration,
    /// Maximum concurrent connections; `0` = unlimited. Default `0`.
    pub max_connections: usize,
    /// Largest window a client may announce, in events. Default `10000`.
    pub max_window_size: u32,
    /// Largest frame a client may send. Default `64MiB`.
    pub max_frame_size: ByteSize,
    /// Largest inflated content of one compressed frame. Default `256MiB`.
    pub max_decompressed_size: ByteSize,
    /// Inflated content all connections of this input may hold at once, from inflating
    /// until the output settles the window; a connection waits while it is used up.
    /// Default `256MiB`.
    pub max_decompressed_total: ByteSize,
}

impl Default for LumberjackInputConfig {
    fn default() -> Self {
        Self {
            host: "localhost:5044".to_string(),
            ssl: SslConfig::default(),
            client_inactivity_timeout: Duration::from_secs(60),
            max_connections: 0,
            max_window_size: 10_000,
            max_frame_size: ByteSize(64 << 20),
            max_decompressed_size: ByteSize(256 << 20),
            max_decompressed_total: ByteSize(256 << 20),
        }
    }
}

/// `queue.*`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct QueueConfig {
    /// `queue.mem.*`: the in-memory queue.
    pub mem: MemQueueConfig,
    /// `queue.disk.*`: the disk queue (docs/disk-queue.md); exclusive with `queue.mem`. Not
    /// exported when unset: `queue.disk: ~` loads as a disk queue with its defaults.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disk: Option<DiskQueueConfig>,
}

/// `queue.disk.*`, Beats' names and defaults, plus `sync` and `sync_interval`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct DiskQueueConfig {
    /// Queue directory. Default `${path.data}/diskqueue`.
    pub path: Option<PathBuf>,
    /// Largest total size of the segment files; 0 = unbounded. Default `10GB`.
    pub max_size: ByteSize,
    /// Size at which a segment file is closed and the next begun. Default `max_size / 10`
    /// (at least 1 MB; 100 MB when `max_size` is 0).
    pub segment_size: Option<ByteSize>,
    /// Events read ahead of the outputs. Default `512`.
    pub read_ahead: usize,
    /// Events an input buffers before one write and one sync. Default `2048`.
    pub write_ahead: usize,
    /// First wait after a failed write. Default `1s`.
    pub retry_interval: Duration,
    /// Longest wait between write attempts. Default `30s`.
    pub max_retry_interval: Duration,
    /// When written events are made durable: `batch`, `interval` or `none`. Default `batch`.
    pub sync: String,
    /// With `sync: interval`, the longest time between two syncs. Default `1s`.
    pub sync_interval: Duration,
}

impl DiskQueueConfig {
    /// `segment_size`, or its default: `max_size / 10`, at least 1 MB; 100 MB if unbounded.
    pub fn effective_segment_size(&self) -> u64 {
        match (self.segment_size, self.max_size.bytes()) {
            (Some(s), _) => s.bytes(),
            (None, 0) => 100_000_000,
            (None, max) => (max / 10).max(1_000_000),
        }
    }
}

impl Default for DiskQueueConfig {
    fn default() -> Self {
        Self {
            path: None,
            max_size: ByteSize(10_000_000_000),
            segment_size: None,
            read_ahead: 512,
            write_ahead: 2048,
            retry_interval: Duration::from_secs(1),
            max_retry_interval: Duration::from_secs(30),
            sync: "batch".to_string(),
            sync_interval: Duration::from_secs(1),
        }
    }
}

/// `queue.mem.*`, Beats' names and defaults.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct MemQueueConfig {
    /// Capacity in events; inputs wait when it is full. Default `3200`.
    pub events: usize,
    /// `queue.mem.flush.*`: when a batch is handed to the output.
    pub flush: FlushConfig,
}

impl Default for MemQueueConfig {
    fn default() -> Self {
        Self {
            events: 3200,
            flush: FlushConfig::default(),
        }
    }
}

/// `queue.mem.flush.*`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct FlushConfig {
    /// Hand a batch to the output once this many events are queued. Default `1600`.
    pub min_events: usize,
    /// ... or once the oldest queued event has waited this long. Default `10s`.
    pub timeout: Duration,
}

impl Default for FlushConfig {
    fn default() -> Self {
        Self {
            min_events: 1600,
            timeout: Duration::from_secs(10),
        }
    }
}

/// `output.*`: one key per output type.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct OutputsConfig {
    /// `output.console`: NDJSON to standard output.
    pub console: Option<ConsoleOutputConfig>,
    /// `output.file`: NDJSON to rotating files.
    pub file: Option<FileOutputConfig>,
    /// `output.discard`: counts and acknowledges, for benchmarks.
    pub discard: Option<DiscardOutputConfig>,
    /// `output.logstash`: Lumberjack v2 to Logstash.
    pub logstash: Option<LogstashOutputConfig>,
    /// `output.elasticsearch`: the bulk API.
    pub elasticsearch: Option<ElasticsearchOutputConfig>,
    /// `output.failover`: Logstash primary, Elasticsearch fallback.
    pub failover: Option<FailoverConfig>,
}

fn yes() -> bool {
    true
}

/// `output.console`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct ConsoleOutputConfig {
    /// Default `true`.
    pub enabled: bool,
    /// Pretty-print each event over several lines. Default `false`.
    pub pretty: bool,
    /// Events per batch. Default `2048`.
    pub bulk_max_size: usize,
}

impl Default for ConsoleOutputConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            pretty: false,
            bulk_max_size: 2048,
        }
    }
}

/// `output.file`, Beats' names and defaults.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct FileOutputConfig {
    /// Default `true`.
    pub enabled: bool,
    /// Directory of the files. Required.
    pub path: PathBuf,
    /// File name; rotated files get `.1`, `.2`, ... Default `skidder`.
    pub filename: String,
    /// Rotate when the file reaches this many KiB. Default `10240`.
    pub rotate_every_kb: u64,
    /// Files kept, the current one included, 2..=1024. Default `7`.
    pub number_of_files: u32,
    /// Mode of created files, octal. Default `0600`.
    pub permissions: String,
    /// Events per batch. Default `2048`.
    pub bulk_max_size: usize,
}

impl Default for FileOutputConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            path: PathBuf::new(),
            filename: "skidder".to_string(),
            rotate_every_kb: 10 * 1024,
            number_of_files: 7,
            permissions: "0600".to_string(),
            bulk_max_size: 2048,
        }
    }
}

/// `output.discard`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct DiscardOutputConfig {
    /// Default `true`.
    pub enabled: bool,
    /// Events per batch. Default `2048`.
    pub bulk_max_size: usize,
}

impl Default for DiscardOutputConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            bulk_max_size: 2048,
        }
    }
}

/// `backoff.*` of an output.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct BackoffConfig {
    /// First wait after a failure. Default `1s`.
    pub init: Duration,
    /// Longest wait; the wait doubles up to it, with jitter. Default `60s`.
    pub max: Duration,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        Self {
            init: Duration::from_secs(1),
            max: Duration::from_secs(60),
        }
    }
}

/// `output.logstash`, Beats' names and defaults.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct LogstashOutputConfig {
    /// Default `true`.
    pub enabled: bool,
    /// `host:port` entries; port defaults to 5044. Names are resolved at each connect.
    pub hosts: Vec<String>,
    /// Spread batches over all hosts (`true`) or use one and fail over (`false`). Default `false`.
    pub loadbalance: bool,
    /// With `loadbalance`: which connection takes the next window. Default `capacity`.
    pub loadbalance_strategy: LoadbalanceStrategy,
    /// Connections per host. Default `1`.
    pub worker: usize,
    /// Windows in flight per connection; `0` = wait for each ACK. Default `2`.
    pub pipelining: usize,
    /// zlib level 0..=9; `0` sends plain frames. Default `3`.
    pub compression_level: u32,
    /// Most events per window. Default `2048`.
    pub bulk_max_size: usize,
    /// Start with a small window and grow it on success. Default `false`.
    pub slow_start: bool,
    /// Wait for an ACK (reset by keep-alives), connect and write timeout. Default `30s`.
    pub timeout: Duration,
    /// Reconnect backoff.
    pub backoff: BackoffConfig,
    /// Retries of a batch before its events are dropped; `-1` = forever. Default `-1`:
    /// unlike libbeat's `3`, nothing is dropped unless the user asks for it.
    pub max_retries: i64,
    /// Reconnect after a connection has lived this long; `0s` = never. Default `0s`.
    pub ttl: Duration,
    /// Escape `<`, `>` and `&` in strings. Default `false`.
    pub escape_html: bool,
    /// Sets `@metadata.beat`. Default `skidder`.
    pub index: Option<String>,
    /// `socks5://[user:pass@]host:port`.
    pub proxy_url: Option<String>,
    /// Resolve host names locally instead of at the proxy. Default `false`.
    pub proxy_use_local_resolver: bool,
    /// TLS settings.
    pub ssl: SslConfig,
    /// `hash`: stamp each event's `@metadata._id` with the id `document_id: hash` gives it,
    /// so Logstash (`document_id => "%{[@metadata][_id]}"`) and the Elasticsearch fallback
    /// write the same `_id`. Default `none`.
    pub event_id: EventIdMode,
    /// DNS discovery: one endpoint per address, re-resolved periodically.
    pub dns: LogstashDnsConfig,
}

/// `output.logstash.dns` (see `outputs::logstash::dns`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct LogstashDnsConfig {
    /// One endpoint per address a host resolves to; needs `loadbalance`. Default `false`.
    pub expand: bool,
    /// Hosts are SRV names (`_lumberjack._tcp.` added unless given). Default `false`.
    pub srv: bool,
    /// How often names are resolved again. Default `30s`.
    pub refresh_interval: Duration,
    /// `ip[:port]` of the DNS servers to ask (port 53 by default); empty = resolv.conf.
    pub nameservers: Vec<String>,
}

impl Default for LogstashDnsConfig {
    fn default() -> Self {
        Self {
            expand: false,
            srv: false,
            refresh_interval: Duration::from_secs(30),
            nameservers: Vec::new(),
        }
    }
}

/// `output.logstash.event_id`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventIdMode {
    /// Events are sent as they are.
    #[default]
    None,
    /// `@metadata._id` set to the document's content id, unless the event has one.
    Hash,
}

impl Default for LogstashOutputConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            hosts: Vec::new(),
            loadbalance: false,
            loadbalance_strategy: LoadbalanceStrategy::default(),
            worker: 1,
            pipelining: 2,
            compression_level: 3,
            bulk_max_size: 2048,
            slow_start: false,
            timeout: Duration::from_secs(30),
            backoff: BackoffConfig::default(),
            max_retries: -1,
            ttl: Duration::default(),
            escape_html: false,
            index: None,
            proxy_url: None,
            proxy_use_local_resolver: false,
            ssl: SslConfig::default(),
            dns: LogstashDnsConfig::default(),
            event_id: EventIdMode::None,
        }
    }
}

/// `output.elasticsearch`, Beats' names and defaults.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct ElasticsearchOutputConfig {
    /// Default `true`.
    pub enabled: bool,
    /// `[scheme://]host[:port][/path]` entries; port defaults to 9200.
    pub hosts: Vec<String>,
    /// `http` or `https` for hosts without a scheme. Default `http`.
    pub protocol: Option<String>,
    /// URL path prefix for every request.
    pub path: Option<String>,
    /// Extra HTTP headers on every request.
    pub headers: BTreeMap<String, String>,
    /// Extra URL query parameters on every bulk request.
    pub parameters: BTreeMap<String, String>,
    /// `id:key` or its base64 form; sent as `Authorization: ApiKey ...`.
    pub api_key: Option<Secret>,
    /// Basic authentication user.
    pub username: Option<String>,
    /// Basic authentication password.
    pub password: Option<Secret>,
    /// A file holding `api_key` (as Beats' `key_passphrase_path`); re-read when it changes.
    pub api_key_path: Option<PathBuf>,
    /// A file holding `password`; re-read when it changes.
    pub password_path: Option<PathBuf>,
    /// Where `api_key`/`password` came from in the keystore, so that a rotated keystore
    /// value is picked up without a restart; set by the loader, never from YAML.
    #[serde(skip)]
    pub keystore_source: Option<crate::credentials::es_auth::KeystoreSource>,
    /// Index name, a format string such as `skidder-%{+yyyy.MM.dd}`. Default `skidder-%{+yyyy.MM.dd}`.
    pub index: Option<String>,
    /// Ingest pipeline.
    pub pipeline: Option<String>,
    /// Most events per bulk request. Default `1600`.
    pub bulk_max_size: usize,
    /// gzip level 0..=9 of request bodies. Default `1`.
    pub compression_level: u32,
    /// Connections per host. Default `1`.
    pub worker: usize,
    /// Spread requests over all hosts. Default `true`.
    #[serde(default = "yes")]
    pub loadbalance: bool,
    /// Backoff after failures.
    pub backoff: BackoffConfig,
    /// Retries before items are dropped; `-1` = forever. Default `-1`: unlike libbeat's
    /// `3`, nothing is dropped unless the user asks for it.
    pub max_retries: i64,
    /// HTTP request timeout. Default `90s`.
    pub timeout: Duration,
    /// Escape `<`, `>` and `&` in strings. Default `false`.
    pub escape_html: bool,
    /// What happens to an item the cluster refuses with a non-retryable 4xx.
    pub non_indexable_policy: Option<NonIndexablePolicy>,
    /// `index` or `create` (data streams). Unset (default): `create` for an item with an
    /// `_id` skidder sends, `index` otherwise, so `create_doc` is the only write privilege
    /// needed.
    pub op_type: Option<String>,
    /// Where each document's `_id` comes from. Default `metadata`.
    pub document_id: DocumentId,
    /// TLS settings.
    pub ssl: SslConfig,
    /// Beats 8.12+ tuning preset: `balanced`, `throughput`, `scale`, `latency` set
    /// `bulk_max_size`, `worker`, `compression_level`, `idle_connection_timeout` and
    /// `queue.mem.*` over what is written (each override WARNed); `custom` or unset: none.
    pub preset: Option<String>,
    /// HTTP proxy, `http://[user:pass@]host:port`. Default: `HTTP_PROXY`/`HTTPS_PROXY`/
    /// `NO_PROXY` from the environment, as Beats.
    pub proxy_url: Option<String>,
    /// Use no proxy at all, not even from the environment. Default `false`.
    pub proxy_disable: bool,
    /// Headers sent to the proxy (on `CONNECT` for https hosts); secret in exports.
    pub proxy_headers: BTreeMap<String, String>,
    /// Beats 8.x refuses a cluster older than itself unless `true`; skidder does not
    /// compare versions, so `false` is WARNed. Default `true`.
    pub allow_older_versions: bool,
    /// Close connections idle this long; `0s` = keep them. Default `0s`.
    pub idle_connection_timeout: Duration,
}

impl Default for ElasticsearchOutputConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            hosts: Vec::new(),
            protocol: None,
            path: None,
            headers: BTreeMap::new(),
            parameters: BTreeMap::new(),
            api_key: None,
            username: None,
            password: None,
            api_key_path: None,
            password_path: None,
            keystore_source: None,
            index: None,
            pipeline: None,
            bulk_max_size: 1600,
            compression_level: 1,
            worker: 1,
            loadbalance: true,
            backoff: BackoffConfig::default(),
            max_retries: -1,
            timeout: Duration::from_secs(90),
            escape_html: false,
            non_indexable_policy: None,
            op_type: None,
            document_id: DocumentId::default(),
            ssl: SslConfig::default(),
            preset: None,
            proxy_url: None,
            proxy_disable: false,
            proxy_headers: BTreeMap::new(),
            allow_older_versions: true,
            idle_connection_timeout: Duration::default(),
        }
    }
}

/// `output.logstash.loadbalance_strategy` (see `outputs::logstash::balance`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoadbalanceStrategy {
    /// The connection with the least expected completion time (outstanding windows × recent
    /// ACK latency) takes the next window; a far slower host is ejected for a while.
    #[default]
    Capacity,
    /// Beats' behaviour: strict turns, so a slow host holds the others back.
    RoundRobin,
}

/// `output.elasticsearch.document_id`: where a bulk item's `_id` comes from, so that a batch
/// sent twice (after a retry or a failover) overwrites or is refused instead of being
/// indexed twice.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DocumentId {
    /// `@metadata._id` when the event has one; otherwise the cluster assigns an id (Beats).
    #[default]
    Metadata,
    /// `@metadata._id` when present, otherwise an id derived from the document's bytes
    /// (SHA-256, 128 bits, base64url): identical documents collapse into one.
    Hash,
    /// Never send an id, even when `@metadata._id` is set.
    None,
}

/// `non_indexable_policy`: `drop: ~` or `dead_letter_index: {index: NAME}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NonIndexablePolicy {
    /// Drop the item, count it and log the reason.
    Drop(Option<serde_json::Value>),
    /// Index the item into a dead-letter index instead.
    DeadLetterIndex {
        /// The dead-letter index.
        index: String,
    },
}

/// `output.failover`: Logstash primary, Elasticsearch fallback.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct FailoverConfig {
    /// Default `false`.
    pub enabled: bool,
    /// Switch to Elasticsearch when no Logstash host accepted a batch for this long. Default `30s`.
    pub after: Duration,
    /// How often Logstash is probed while failed over. Default `10s`.
    pub probe_interval: Duration,
    /// Return to Logstash once it accepts again. Default `true`.
    pub failback: bool,
}

impl Default for FailoverConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            after: Duration::from_secs(30),
            probe_interval: Duration::from_secs(10),
            failback: true,
        }
    }
}

/// TLS verification modes, Beats' names.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VerificationMode {
    /// Chain and host name.
    #[default]
    Full,
    /// As `full`, and the name must be in the subject alternative names.
    Strict,
    /// Chain only.
    Certificate,
    /// No checks at all (logged at WARN).
    None,
}

/// Client-certificate checks of a TLS server (the receiver input), Logstash's names.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuthentication {
    /// Do not ask for a client certificate.
    #[default]
    None,
    /// Ask, and check it against the CAs when given.
    Optional,
    /// Refuse clients without a certificate signed by the CAs.
    Required,
}

/// `ssl.*`: Beats' TLS settings, shared by every output and the receiver input.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct SslConfig {
    /// TLS on or off. Default: on when any other `ssl.*` key is set.
    pub enabled: Option<bool>,
    /// CA certificates: file paths or inline PEM. Default: the system roots.
    pub certificate_authorities: Vec<String>,
    /// Our certificate (chain): a path or inline PEM.
    pub certificate: Option<String>,
    /// Our private key (PKCS#1, PKCS#8, SEC1; encrypted PKCS#8 with a passphrase).
    pub key: Option<Secret>,
    /// Passphrase of an encrypted key.
    pub key_passphrase: Option<Secret>,
    /// File holding the passphrase of an encrypted key.
    pub key_passphrase_path: Option<PathBuf>,
    /// `full`, `strict`, `certificate` or `none`. Default `full`.
    pub verification_mode: VerificationMode,
    /// `TLSv1.2`, `TLSv1.3`. Default both.
    pub supported_protocols: Vec<String>,
    /// Cipher suites by Beats' names. Default: rustls' defaults.
    pub cipher_suites: Vec<String>,
    /// Key exchange groups (`P-256`, `P-384`, `X25519`). Default: rustls' defaults.
    pub curve_types: Vec<String>,
    /// Hex SHA-256 of a CA certificate in the presented chain that becomes trusted.
    pub ca_trusted_fingerprint: Option<String>,
    /// Base64 SHA-256 pins of which one must match a certificate in the chain.
    pub ca_sha256: Vec<String>,
    /// Name to verify instead of the host name we connect to.
    pub server_name: Option<String>,
    /// Warn this long before our certificate expires. Default `14d`.
    pub expiry_warning: Duration,
    /// Server side: `none`, `optional`, `required`. Default `none`, or `required` when
    /// `certificate_authorities` is set (as Logstash).
    pub client_authentication: Option<ClientAuthentication>,
    /// `never`, `once` or `freely`, accepted as Beats writes it; rustls never renegotiates,
    /// so `once` and `freely` are WARNed at start. Default `never`.
    pub renegotiation: Option<String>,
    /// Beats 8.x exits when the certificate files change (to be restarted by its
    /// supervisor); skidder re-reads them in place instead, so `enabled: true` is served by
    /// that reload and logged at start.
    pub restart_on_cert_change: RestartOnCertChangeConfig,
}

/// `ssl.restart_on_cert_change.*` (Beats 8.x).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct RestartOnCertChangeConfig {
    /// Default `false`.
    pub enabled: bool,
    /// How often Beats looks for a change. Accepted; skidder checks at each new
    /// connection. Default `1m`.
    pub period: Option<Duration>,
}

impl Default for SslConfig {
    fn default() -> Self {
        Self {
            enabled: None,
            certificate_authorities: Vec::new(),
            certificate: None,
            key: None,
            key_passphrase: None,
            key_passphrase_path: None,
            verification_mode: VerificationMode::Full,
            supported_protocols: Vec::new(),
            cipher_suites: Vec::new(),
            curve_types: Vec::new(),
            ca_trusted_fingerprint: None,
            ca_sha256: Vec::new(),
            server_name: None,
            expiry_warning: Duration::from_secs(14 * 86400),
            client_authentication: None,
            renegotiation: None,
            restart_on_cert_change: RestartOnCertChangeConfig::default(),
        }
    }
}

/// `logging.*`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct LoggingConfig {
    /// Beats' `debug`, `info`, `warning`, `error`, `critical` (= `error`), and `warn`,
    /// `trace`. Default `info`.
    pub level: String,
    /// One JSON object per log line. Default `false`.
    pub json: bool,
    /// Log to standard error (the `-e` flag sets it); wins over `to_files`. Default `false`.
    pub to_stderr: bool,
    /// `logging.metrics.*`: the periodic line of counters.
    pub metrics: MetricsLogConfig,
    /// Log to rotating files (`logging.files`) unless `to_stderr`. Default `true`.
    pub to_files: bool,
    /// `logging.files.*`: the log file and its rotation.
    pub files: LogFilesConfig,
    /// Beats logger names (`elasticsearch`, `logstash`, `publisher`, `*`) or skidder module
    /// paths (`outputs::logstash`) logged at debug; only with `level: debug`. Default: all.
    pub selectors: Vec<String>,
    /// Not supported (logs go to files or stderr): `true` is WARNed. Default `false`.
    pub to_syslog: bool,
    /// Windows only in Beats: `true` is WARNed. Default `false`.
    pub to_eventlog: bool,
    /// Beats' ECS log layout: `true` is WARNed (`json` gives JSON lines). Default `false`.
    pub ecs: bool,
}

/// `logging.files.*`, Beats' names and defaults (rotation by the `file-rotate` crate).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct LogFilesConfig {
    /// Directory of the log files. Default: `path.logs`.
    pub path: Option<PathBuf>,
    /// File name; rotated files get `.1` (newest) to `.N`. Default `skidder.log`.
    pub name: String,
    /// Rotate when the file would grow past this size. Default `10MiB` (Beats: 10485760).
    pub rotateeverybytes: ByteSize,
    /// Rotated files kept besides the active one, at most 1024. Default `7`.
    pub keepfiles: u32,
    /// Mode of the log files, octal. Default `0600`.
    pub permissions: String,
    /// Also rotate every interval (at least `1s`, counted from the Unix epoch); `0s` = by
    /// size only. Default `0s`.
    pub interval: Duration,
    /// Rotate an existing non-empty file at start instead of appending. Default `true`.
    pub rotateonstartup: bool,
    /// `count` (the only one skidder writes; Beats 7.17's default). Default `count`.
    pub suffix: String,
    /// Beats copies its own panics into the log; `true` is WARNed. Default `false`.
    pub redirect_stderr: bool,
}

impl Default for LogFilesConfig {
    fn default() -> Self {
        Self {
            path: None,
            name: "skidder.log".to_string(),
            rotateeverybytes: ByteSize(10 * 1024 * 1024),
            keepfiles: 7,
            permissions: "0600".to_string(),
            interval: Duration::default(),
            rotateonstartup: true,
            suffix: "count".to_string(),
            redirect_stderr: false,
        }
    }
}

/// The values `logging.level` accepts, for messages.
pub const LOG_LEVELS: &str = "debug, info, warning, error, critical (Beats' names), warn, trace";

impl LoggingConfig {
    /// `level` as a tracing level name, or `None` when it is not a level. Beats' names are
    /// accepted as written in a filebeat.yml (`warning`, `critical`), skidder's own too.
    pub fn tracing_level(&self) -> Option<&'static str> {
        match self.level.to_ascii_lowercase().as_str() {
            "error" | "critical" => Some("error"),
            "warn" | "warning" => Some("warn"),
            "info" => Some("info"),
            "debug" => Some("debug"),
            "trace" => Some("trace"),
            _ => None,
        }
    }
}

impl Default for LoggingConfig {
    fn default() -> Self {
        Self {
            level: "info".to_string(),
            json: false,
            to_stderr: false,
            metrics: MetricsLogConfig::default(),
            to_files: true,
            files: LogFilesConfig::default(),
            selectors: Vec::new(),
            to_syslog: false,
            to_eventlog: false,
            ecs: false,
        }
    }
}

/// `logging.metrics.*`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct MetricsLogConfig {
    /// Default `true`.
    pub enabled: bool,
    /// How often the non-zero counters are logged. Default `30s`.
    pub period: Duration,
    /// Beats' metric registries; skidder has one, `stats`. Default `[stats]`.
    pub namespaces: Vec<String>,
}

impl Default for MetricsLogConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            period: Duration::from_secs(30),
            namespaces: vec!["stats".to_string()],
        }
    }
}

/// `path.*`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct PathConfig {
    /// Home directory; relative `data` and `logs` are under it. Default: the working directory.
    pub home: PathBuf,
    /// State (keystore, disk queue). Default `data`.
    pub data: PathBuf,
    /// Log files. Default `logs`.
    pub logs: PathBuf,
}

impl Default for PathConfig {
    fn default() -> Self {
        Self {
            home: PathBuf::from("."),
            data: PathBuf::from("data"),
            logs: PathBuf::from("logs"),
        }
    }
}

/// `http.*`: Beats' local monitoring endpoint (`/`, `/stats`, `/state`, `/metrics`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct HttpConfig {
    /// Serve the endpoint. Default `false`.
    pub enabled: bool,
    /// Address to bind, or `unix:///path` for a Unix socket (mode 0600). Default `localhost`.
    pub host: String,
    /// TCP port; `0` picks a free one (the log says which). Default `5066`.
    pub port: u16,
    /// TLS for the endpoint (server certificate; `certificate_authorities` asks clients for
    /// certificates). Default off.
    pub ssl: SslConfig,
    /// `http.auth.*`: credentials every request must carry. Default none.
    pub auth: HttpAuthConfig,
    /// Allow a non-loopback address without TLS and authentication (WARNed). Default `false`.
    pub allow_insecure: bool,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            host: "localhost".to_string(),
            port: 5066,
            ssl: SslConfig::default(),
            auth: HttpAuthConfig::default(),
            allow_insecure: false,
        }
    }
}

/// `http.auth.*`: a bearer token or basic credentials (use the keystore for the values).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct HttpAuthConfig {
    /// `Authorization: Bearer <token>`.
    pub bearer_token: Option<Secret>,
    /// Basic authentication user (with `password`).
    pub username: Option<String>,
    /// Basic authentication password.
    pub password: Option<Secret>,
}

/// `type: http_endpoint`: events POSTed by applications, Filebeat's option names plus APM
/// Server's agent authentication (`auth.*`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct HttpEndpointInputConfig {
    /// Address to bind. Default `localhost`.
    pub listen_address: String,
    /// TCP port; `0` picks a free one. Default `8000`.
    pub listen_port: u16,
    /// The path events are POSTed to. Default `/`.
    pub url: String,
    /// The `Content-Type` a request must have; empty or null disables the check. Default
    /// `application/json`.
    pub content_type: Option<String>,
    /// The field that receives each object; `.` puts its keys at the event's root. Default
    /// `json`.
    pub prefix: String,
    /// Request headers copied into the event's `headers` field. Default none.
    pub include_headers: Vec<String>,
    /// Status of a successful reply. Default `200`.
    pub response_code: u16,
    /// Body of a successful reply (JSON). Default `{"message": "success"}`.
    pub response_body: String,
    /// TLS for the listener; `ssl.client_authentication` selects client-certificate checks.
    pub ssl: SslConfig,
    /// Require basic authentication with `username` and `password`. Default `false`.
    pub basic_auth: bool,
    /// Basic authentication user.
    pub username: Option<String>,
    /// Basic authentication password.
    pub password: Option<Secret>,
    /// `secret.header` / `secret.value`: a header that must carry this value.
    pub secret: HttpSecretConfig,
    /// `hmac.*`: a header carrying the HMAC of the raw body.
    pub hmac: HmacConfig,
    /// `auth.*`: APM Server's agent authentication (secret token, API keys).
    pub auth: IntakeAuthConfig,
    /// Largest request body, after decompression. Default `10MiB`.
    pub max_message_size: ByteSize,
    /// Bytes of request bodies all connections may hold at once; beyond, 429. Default `100MiB`.
    pub max_in_flight_bytes: ByteSize,
    /// Maximum concurrent connections; `0` = unlimited. Default `0`.
    pub max_connections: usize,
    /// Time to receive one request's headers and body. Default `30s` (APM Server's code).
    pub read_timeout: Duration,
    /// Close a keep-alive connection without a request for this long. Default `45s`.
    pub idle_timeout: Duration,
    /// Largest request head. Default `1MiB`.
    pub max_header_size: ByteSize,
    /// `queued` (reply once the events are in the queue) or `end_to_end` (once the output
    /// acknowledged them). Default `queued`.
    pub ack: IntakeAck,
    /// `Retry-After` of a 429/503 reply. Default `10s`.
    pub retry_after: Duration,
    /// Allow a non-loopback address without TLS and authentication (WARNed). Default `false`.
    pub allow_insecure: bool,
}

impl Default for HttpEndpointInputConfig {
    fn default() -> Self {
        Self {
            listen_address: "localhost".to_string(),
            listen_port: 8000,
            url: "/".to_string(),
            content_type: Some("application/json".to_string()),
            prefix: "json".to_string(),
            include_headers: Vec::new(),
            response_code: 200,
            response_body: r#"{"message": "success"}"#.to_string(),
            ssl: SslConfig::default(),
            basic_auth: false,
            username: None,
            password: None,
            secret: HttpSecretConfig::default(),
            hmac: HmacConfig::default(),
            auth: IntakeAuthConfig::default(),
            max_message_size: ByteSize(10 << 20),
            max_in_flight_bytes: ByteSize(100 << 20),
            max_connections: 0,
            read_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(45),
            max_header_size: ByteSize(1 << 20),
            ack: IntakeAck::Queued,
            retry_after: Duration::from_secs(10),
            allow_insecure: false,
        }
    }
}

/// When the HTTP intake answers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IntakeAck {
    /// Once the events are in the queue.
    #[default]
    Queued,
    /// Once the output acknowledged (or dropped by policy) every event of the request.
    EndToEnd,
}

/// `secret.*` of the HTTP intake.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct HttpSecretConfig {
    /// The header's name.
    pub header: Option<String>,
    /// The value it must carry.
    pub value: Option<Secret>,
}

/// `hmac.*` of the HTTP intake.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct HmacConfig {
    /// The header carrying the signature (hex or base64).
    pub header: Option<String>,
    /// The HMAC key.
    pub key: Option<Secret>,
    /// `sha256` or `sha1`. Default `sha256`.
    #[serde(rename = "type")]
    pub kind: String,
    /// A prefix stripped from the header value, e.g. `sha256=`.
    pub prefix: Option<String>,
}

impl Default for HmacConfig {
    fn default() -> Self {
        Self {
            header: None,
            key: None,
            kind: "sha256".to_string(),
            prefix: None,
        }
    }
}

/// `auth.*` of the HTTP intake (APM Server's names).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct IntakeAuthConfig {
    /// `Authorization: Bearer <secret_token>`, compared in constant time.
    pub secret_token: Option<Secret>,
    /// `auth.api_key.*`: Elasticsearch API keys.
    pub api_key: ApiKeyAuthConfig,
}

/// `auth.api_key.*`: `Authorization: ApiKey base64(id:key)` checked with Elasticsearch's
/// `_security/user/_has_privileges`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct ApiKeyAuthConfig {
    /// Accept API keys. Default `false`.
    pub enabled: bool,
    /// Verifications sent to Elasticsearch per minute; beyond, 503. Default `100`.
    pub limit: u32,
    /// `cache.size` (keys remembered, default `1000`) and `cache.expiry` (default `1m`).
    pub cache: ApiKeyCacheConfig,
    /// The Elasticsearch to ask; default: `output.elasticsearch` without its credentials.
    pub elasticsearch: Option<ApiKeyElasticsearchConfig>,
    /// The application of the required privilege. Default `skidder`.
    pub application: String,
    /// The required privilege (application privilege, or index privilege with `index`).
    /// Default `event:write`.
    pub privilege: String,
    /// The application resource. Default `*`.
    pub resource: String,
    /// Check `privilege` as an index privilege on this index pattern instead.
    pub index: Option<String>,
}

impl Default for ApiKeyAuthConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            limit: 100,
            cache: ApiKeyCacheConfig::default(),
            elasticsearch: None,
            application: "skidder".to_string(),
            privilege: "event:write".to_string(),
            resource: "*".to_string(),
            index: None,
        }
    }
}

/// `auth.api_key.elasticsearch.*`: where API keys are checked (APM Server's keys; no
/// credentials: only the client's own key is sent).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct ApiKeyElasticsearchConfig {
    /// `[scheme://]host[:port][/path]` entries; port defaults to 9200.
    pub hosts: Vec<String>,
    /// `http` or `https` for hosts without a scheme. Default `http` (`https` with `ssl`).
    pub protocol: Option<String>,
    /// A path prefix for every request.
    pub path: Option<String>,
    /// Whole-request timeout. Default `5s`.
    pub timeout: Duration,
    /// TLS to Elasticsearch.
    pub ssl: SslConfig,
}

impl Default for ApiKeyElasticsearchConfig {
    fn default() -> Self {
        Self {
            hosts: Vec::new(),
            protocol: None,
            path: None,
            timeout: Duration::from_secs(5),
            ssl: SslConfig::default(),
        }
    }
}

/// `auth.api_key.cache.*`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct ApiKeyCacheConfig {
    /// Keys whose verdict is remembered. Default `1000`.
    pub size: usize,
    /// How long a verdict is kept: an invalidated key keeps working this long. Default `1m`.
    pub expiry: Duration,
}

impl Default for ApiKeyCacheConfig {
    fn default() -> Self {
        Self {
            size: 1000,
            expiry: Duration::from_secs(60),
        }
    }
}
