//! The accepted keys of every config section and the shape of their values: the one list
//! that unknown-key detection, type checks and the reference-file test all use.
//!
//! Each `*Config` struct implements [`ConfigKeys`] next to this list; a unit test checks
//! every list against the keys serde actually serializes for the struct, so a field added
//! to the schema without a line here fails the build's tests.

use std::collections::BTreeSet;

use super::filestream::*;
use super::log_input::*;
use super::schema::*;

/// The shape a key's value must have.
#[derive(Debug, Clone, Copy)]
pub enum Shape {
    /// `true` / `false`.
    Bool,
    /// An integer in `min..=max` (the range of the Rust type; tighter ranges are in
    /// [`Config::validate`]).
    Int {
        /// Smallest accepted.
        min: i128,
        /// Largest accepted.
        max: i128,
    },
    /// A string; numbers and booleans written unquoted are accepted as their text, as Beats does.
    Str,
    /// A duration such as `30s`, `1m`, `500ms`.
    Duration,
    /// A size such as `10MiB`, `1GB`.
    Size,
    /// One of the given words.
    Enum(&'static [&'static str]),
    /// A list of values of the inner shape.
    List(&'static Shape),
    /// `~`/`null` or the inner shape.
    Optional(&'static Shape),
    /// A section with its own keys.
    Section(FieldsFn),
    /// A free-form mapping (`fields`, `headers`, `parameters`) whose values have the inner shape.
    Map(&'static Shape),
    /// Anything; serde decides.
    Any,
    /// `skidder.inputs`: a list of inputs, each with a `type` selecting its own keys.
    Inputs,
}

/// One accepted key.
#[derive(Debug, Clone, Copy)]
pub struct Field {
    /// The key as written in YAML.
    pub name: &'static str,
    /// The shape of its value.
    pub shape: Shape,
}

/// Implemented by every config section: its accepted keys.
pub trait ConfigKeys {
    /// The keys, in the struct's field order.
    fn fields() -> &'static [Field];
}

const BOOL: Shape = Shape::Bool;
const STR: Shape = Shape::Str;
const DUR: Shape = Shape::Duration;
const SIZE: Shape = Shape::Size;
const U16: Shape = Shape::Int {
    min: 0,
    max: u16::MAX as i128,
};
const U32: Shape = Shape::Int {
    min: 0,
    max: u32::MAX as i128,
};
const U64: Shape = Shape::Int {
    min: 0,
    max: u64::MAX as i128,
};
const USIZE: Shape = Shape::Int {
    min: 0,
    max: usize::MAX as i128,
};
const I64: Shape = Shape::Int {
    min: i64::MIN as i128,
    max: i64::MAX as i128,
};
const OPT_STR: Shape = Shape::Optional(&STR);
const STR_LIST: Shape = Shape::List(&STR);

/// Lists a section's keys; what [`ConfigKeys::fields`] is as a value.
pub type FieldsFn = fn() -> &'static [Field];

/// The input types `type:` accepts, with the section of each.
pub const INPUT_TYPES: &[(&str, FieldsFn)] = &[
    ("stdin", StdinInputConfig::fields),
    ("generator", GeneratorInputConfig::fields),
    ("lumberjack", LumberjackInputConfig::fields),
    ("beats", LumberjackInputConfig::fields),
    ("http_endpoint", HttpEndpointInputConfig::fields),
    ("filestream", FilestreamInputConfig::fields),
    ("log", LogInputConfig::fields),
];

macro_rules! keys {
    ($ty:ty { $($name:ident : $shape:expr),* $(,)? }) => {
        impl ConfigKeys for $ty {
            fn fields() -> &'static [Field] {
                const FIELDS: &[Field] = &[$(Field { name: stringify!($name), shape: $shape }),*];
                FIELDS
            }
        }
    };
}

keys!(Config {
    skidder: Shape::Section(SkidderConfig::fields),
    queue: Shape::Section(QueueConfig::fields),
    output: Shape::Section(OutputsConfig::fields),
    logging: Shape::Section(LoggingConfig::fields),
    path: Shape::Section(PathConfig::fields),
    http: Shape::Section(HttpConfig::fields),
    shutdown_timeout: DUR,
    filebeat: Shape::Section(FilebeatConfig::fields),
    name: OPT_STR,
    tags: STR_LIST,
    fields: Shape::Map(&Shape::Any),
    fields_under_root: BOOL,
    processors: Shape::List(&Shape::Any),
    max_procs: Shape::Optional(&USIZE),
});

keys!(FilebeatConfig {
    inputs: Shape::Inputs
});

keys!(SkidderConfig {
    inputs: Shape::Inputs
});

keys!(CommonInputConfig {
    id: OPT_STR,
    enabled: BOOL,
    fields: Shape::Map(&Shape::Any),
    fields_under_root: BOOL,
    tags: STR_LIST,
    processors: Shape::List(&Shape::Any),
});

keys!(StdinInputConfig {
    json: BOOL,
    on_json_error: Shape::Enum(&["error_event", "drop"]),
});

keys!(GeneratorInputConfig {
    count: U64,
    eps: U64,
    duration: DUR,
    threads: USIZE,
    message: STR,
    size: USIZE,
    replay: OPT_STR,
});

keys!(LumberjackInputConfig {
    host: STR,
    ssl: Shape::Section(SslConfig::fields),
    client_inactivity_timeout: DUR,
    max_connections: USIZE,
    max_window_size: U32,
    max_frame_size: SIZE,
    max_decompressed_size: SIZE,
    max_decompressed_total: SIZE,
});

/// `line_terminator`'s values (filestream and log inputs).
const LINE_TERMINATOR: Shape = Shape::Enum(&[
    "auto",
    "line_feed",
    "vertical_tab",
    "form_feed",
    "carriage_return",
    "carriage_return_line_feed",
    "next_line",
    "line_separator",
    "paragraph_separator",
    "null_terminator",
]);

keys!(FilestreamInputConfig {
    paths: STR_LIST,
    prospector: Shape::Section(ProspectorConfig::fields),
    ignore_older: DUR,
    ignore_inactive: Shape::Optional(&Shape::Enum(&["since_first_start", "since_last_start"])),
    close: Shape::Section(CloseConfig::fields),
    clean_inactive: DUR,
    clean_removed: BOOL,
    harvester_limit: USIZE,
    buffer_size: USIZE,
    backoff: Shape::Section(ReaderBackoffConfig::fields),
    message_max_bytes: USIZE,
    encoding: STR,
    line_terminator: LINE_TERMINATOR,
    include_lines: STR_LIST,
    exclude_lines: STR_LIST,
    file_identity: Shape::Section(FileIdentityConfig::fields),
    rotation: Shape::Section(RotationConfig::fields),
    // Each entry is a one-key map (`- ndjson: {...}`); serde checks its keys and names the
    // parser it does not know.
    parsers: Shape::List(&Shape::Any),
});

keys!(LogInputConfig {
    paths: STR_LIST,
    exclude_files: STR_LIST,
    include_lines: STR_LIST,
    exclude_lines: STR_LIST,
    encoding: STR,
    scan_frequency: DUR,
    ignore_older: DUR,
    close_inactive: DUR,
    close_renamed: BOOL,
    close_removed: BOOL,
    close_eof: BOOL,
    close_timeout: DUR,
    clean_inactive: DUR,
    clean_removed: BOOL,
    harvester_limit: USIZE,
    harvester_buffer_size: USIZE,
    max_bytes: USIZE,
    line_terminator: LINE_TERMINATOR,
    symlinks: BOOL,
    tail_files: BOOL,
    file_identity: Shape::Section(FileIdentityConfig::fields),
    recursive_glob: Shape::Section(RecursiveGlobConfig::fields),
    json: Shape::Optional(&Shape::Section(LogJsonConfig::fields)),
    multiline: Shape::Optional(&Shape::Section(MultilineConfig::fields)),
    backoff: DUR,
    backoff_factor: U64,
    max_backoff: DUR,
    scan: Shape::Section(LogScanConfig::fields),
});

keys!(RecursiveGlobConfig { enabled: BOOL });

keys!(LogScanConfig {
    order: Shape::Enum(&["asc", "desc"]),
    sort: Shape::Enum(&["", "modtime", "filename"]),
});

keys!(LogJsonConfig {
    keys_under_root: BOOL,
    overwrite_keys: BOOL,
    add_error_key: BOOL,
    message_key: OPT_STR,
    document_id: OPT_STR,
    expand_keys: BOOL,
    ignore_decoding_error: BOOL,
});

// `type` and `match` are Rust keywords, which `keys!` cannot name.
impl ConfigKeys for MultilineConfig {
    fn fields() -> &'static [Field] {
        const FIELDS: &[Field] = &[
            Field {
                name: "type",
                shape: Shape::Enum(&["pattern", "count", "while_pattern"]),
            },
            Field {
                name: "pattern",
                shape: STR,
            },
            Field {
                name: "negate",
                shape: BOOL,
            },
            Field {
                name: "match",
                shape: STR,
            },
            Field {
                name: "flush_pattern",
                shape: STR,
            },
            Field {
                name: "count_lines",
                shape: USIZE,
            },
            Field {
                name: "max_lines",
                shape: USIZE,
            },
            Field {
                name: "timeout",
                shape: DUR,
            },
            Field {
                name: "skip_newline",
                shape: BOOL,
            },
        ];
        FIELDS
    }
}

keys!(ProspectorConfig {
    scanner: Shape::Section(ScannerConfig::fields)
});

keys!(ScannerConfig {
    check_interval: DUR,
    exclude_files: STR_LIST,
    include_files: STR_LIST,
    symlinks: BOOL,
    recursive_glob: BOOL,
    resend_on_touch: BOOL,
    fingerprint: Shape::Section(FingerprintConfig::fields),
});

keys!(ReaderBackoffConfig {
    init: DUR,
    max: DUR,
});

keys!(FingerprintConfig {
    enabled: BOOL,
    offset: U64,
    length: U64,
});

keys!(CloseConfig {
    on_state_change: Shape::Section(CloseOnStateChange::fields),
    reader: Shape::Section(CloseReader::fields),
});

keys!(CloseOnStateChange {
    check_interval: DUR,
    inactive: DUR,
    renamed: BOOL,
    removed: BOOL,
});

keys!(CloseReader {
    on_eof: BOOL,
    after_interval: DUR,
});

keys!(FileIdentityConfig {
    native: Shape::Optional(&Shape::Section(EmptySection::fields)),
    path: Shape::Optional(&Shape::Section(EmptySection::fields)),
    inode_marker: Shape::Optional(&Shape::Section(InodeMarkerConfig::fields)),
    fingerprint: Shape::Optional(&Shape::Section(EmptySection::fields)),
});

impl ConfigKeys for EmptySection {
    fn fields() -> &'static [Field] {
        &[]
    }
}

keys!(InodeMarkerConfig { path: STR });

keys!(RotationConfig {
    external: Shape::Section(ExternalRotation::fields)
});

keys!(ExternalRotation {
    strategy: Shape::Section(RotationStrategy::fields)
});

keys!(RotationStrategy {
    copytruncate: Shape::Optional(&Shape::Section(CopytruncateConfig::fields))
});

keys!(CopytruncateConfig {
    suffix_regex: STR,
    dateformat: STR,
});

keys!(QueueConfig {
    mem: Shape::Section(MemQueueConfig::fields),
    disk: Shape::Optional(&Shape::Section(DiskQueueConfig::fields)),
});

keys!(DiskQueueConfig {
    path: OPT_STR,
    max_size: SIZE,
    segment_size: Shape::Optional(&SIZE),
    read_ahead: USIZE,
    write_ahead: USIZE,
    retry_interval: DUR,
    max_retry_interval: DUR,
    sync: STR,
    sync_interval: DUR,
});

keys!(MemQueueConfig {
    events: USIZE,
    flush: Shape::Section(FlushConfig::fields),
});

keys!(FlushConfig {
    min_events: USIZE,
    timeout: DUR,
});

keys!(OutputsConfig {
    console: Shape::Optional(&Shape::Section(ConsoleOutputConfig::fields)),
    file: Shape::Optional(&Shape::Section(FileOutputConfig::fields)),
    discard: Shape::Optional(&Shape::Section(DiscardOutputConfig::fields)),
    logstash: Shape::Optional(&Shape::Section(LogstashOutputConfig::fields)),
    elasticsearch: Shape::Optional(&Shape::Section(ElasticsearchOutputConfig::fields)),
    failover: Shape::Optional(&Shape::Section(FailoverConfig::fields)),
});

keys!(ConsoleOutputConfig {
    enabled: BOOL,
    pretty: BOOL,
    bulk_max_size: USIZE,
});

keys!(FileOutputConfig {
    enabled: BOOL,
    path: STR,
    filename: STR,
    rotate_every_kb: U64,
    number_of_files: U32,
    permissions: STR,
    bulk_max_size: USIZE,
});

keys!(DiscardOutputConfig {
    enabled: BOOL,
    bulk_max_size: USIZE,
});

keys!(BackoffConfig {
    init: DUR,
    max: DUR,
});

keys!(LogstashOutputConfig {
    enabled: BOOL,
    hosts: STR_LIST,
    loadbalance: BOOL,
    loadbalance_strategy: Shape::Enum(&["capacity", "round_robin"]),
    worker: USIZE,
    pipelining: USIZE,
    compression_level: U32,
    bulk_max_size: USIZE,
    slow_start: BOOL,
    timeout: DUR,
    backoff: Shape::Section(BackoffConfig::fields),
    max_retries: I64,
    ttl: DUR,
    escape_html: BOOL,
    index: OPT_STR,
    proxy_url: OPT_STR,
    proxy_use_local_resolver: BOOL,
    ssl: Shape::Section(SslConfig::fields),
    event_id: Shape::Enum(&["none", "hash"]),
    dns: Shape::Section(LogstashDnsConfig::fields),
});

keys!(LogstashDnsConfig {
    expand: BOOL,
    srv: BOOL,
    refresh_interval: DUR,
    nameservers: STR_LIST,
});

keys!(ElasticsearchOutputConfig {
    enabled: BOOL,
    hosts: STR_LIST,
    protocol: OPT_STR,
    path: OPT_STR,
    headers: Shape::Map(&STR),
    parameters: Shape::Map(&STR),
    api_key: OPT_STR,
    username: OPT_STR,
    password: OPT_STR,
    api_key_path: OPT_STR,
    password_path: OPT_STR,
    index: OPT_STR,
    pipeline: OPT_STR,
    bulk_max_size: USIZE,
    compression_level: U32,
    worker: USIZE,
    loadbalance: BOOL,
    backoff: Shape::Section(BackoffConfig::fields),
    max_retries: I64,
    timeout: DUR,
    escape_html: BOOL,
    non_indexable_policy: Shape::Optional(&Shape::Any),
    op_type: OPT_STR,
    document_id: Shape::Enum(&["metadata", "hash", "none"]),
    ssl: Shape::Section(SslConfig::fields),
    preset: Shape::Optional(&Shape::Enum(super::beats::PRESET_NAMES)),
    proxy_url: OPT_STR,
    proxy_disable: BOOL,
    proxy_headers: Shape::Map(&STR),
    allow_older_versions: BOOL,
    idle_connection_timeout: DUR,
});

keys!(FailoverConfig {
    enabled: BOOL,
    after: DUR,
    probe_interval: DUR,
    failback: BOOL,
});

keys!(SslConfig {
    enabled: Shape::Optional(&BOOL),
    certificate_authorities: STR_LIST,
    certificate: OPT_STR,
    key: OPT_STR,
    key_passphrase: OPT_STR,
    key_passphrase_path: OPT_STR,
    verification_mode: Shape::Enum(&["full", "strict", "certificate", "none"]),
    supported_protocols: STR_LIST,
    cipher_suites: STR_LIST,
    curve_types: STR_LIST,
    ca_trusted_fingerprint: OPT_STR,
    ca_sha256: STR_LIST,
    server_name: OPT_STR,
    expiry_warning: DUR,
    client_authentication: Shape::Optional(&Shape::Enum(&["none", "optional", "required"])),
    renegotiation: Shape::Optional(&Shape::Enum(&["never", "once", "freely"])),
    restart_on_cert_change: Shape::Section(RestartOnCertChangeConfig::fields),
});

keys!(RestartOnCertChangeConfig {
    enabled: BOOL,
    period: Shape::Optional(&DUR),
});

keys!(LoggingConfig {
    level: STR,
    json: BOOL,
    to_stderr: BOOL,
    metrics: Shape::Section(MetricsLogConfig::fields),
    to_files: BOOL,
    files: Shape::Section(LogFilesConfig::fields),
    selectors: STR_LIST,
    to_syslog: BOOL,
    to_eventlog: BOOL,
    ecs: BOOL,
});

keys!(LogFilesConfig {
    path: OPT_STR,
    name: STR,
    rotateeverybytes: SIZE,
    keepfiles: U32,
    permissions: STR,
    interval: DUR,
    rotateonstartup: BOOL,
    suffix: Shape::Enum(&["count"]),
    redirect_stderr: BOOL,
});

keys!(MetricsLogConfig {
    enabled: BOOL,
    period: DUR,
    namespaces: STR_LIST,
});

keys!(PathConfig {
    home: STR,
    data: STR,
    logs: STR,
});

keys!(HttpConfig {
    enabled: BOOL,
    host: STR,
    port: U16,
    ssl: Shape::Section(SslConfig::fields),
    auth: Shape::Section(HttpAuthConfig::fields),
    allow_insecure: BOOL,
});

keys!(HttpAuthConfig {
    bearer_token: OPT_STR,
    username: OPT_STR,
    password: OPT_STR,
});

keys!(HttpEndpointInputConfig {
    listen_address: STR,
    listen_port: U16,
    url: STR,
    content_type: OPT_STR,
    prefix: STR,
    include_headers: STR_LIST,
    response_code: U16,
    response_body: STR,
    ssl: Shape::Section(SslConfig::fields),
    basic_auth: BOOL,
    username: OPT_STR,
    password: OPT_STR,
    secret: Shape::Section(HttpSecretConfig::fields),
    hmac: Shape::Section(HmacConfig::fields),
    auth: Shape::Section(IntakeAuthConfig::fields),
    max_message_size: SIZE,
    max_in_flight_bytes: SIZE,
    max_connections: USIZE,
    read_timeout: DUR,
    idle_timeout: DUR,
    max_header_size: SIZE,
    ack: Shape::Enum(&["queued", "end_to_end"]),
    retry_after: DUR,
    allow_insecure: BOOL,
});

keys!(HttpSecretConfig {
    header: OPT_STR,
    value: OPT_STR,
});

impl ConfigKeys for HmacConfig {
    fn fields() -> &'static [Field] {
        // `type` is a Rust keyword, so not through `keys!`.
        const FIELDS: &[Field] = &[
            Field {
                name: "header",
                shape: OPT_STR,
            },
            Field {
                name: "key",
                shape: OPT_STR,
            },
            Field {
                name: "type",
                shape: Shape::Enum(&["sha256", "sha1"]),
            },
            Field {
                name: "prefix",
                shape: OPT_STR,
            },
        ];
        FIELDS
    }
}

keys!(IntakeAuthConfig {
    secret_token: OPT_STR,
    api_key: Shape::Section(ApiKeyAuthConfig::fields),
});

keys!(ApiKeyAuthConfig {
    enabled: BOOL,
    limit: U32,
    cache: Shape::Section(ApiKeyCacheConfig::fields),
    elasticsearch: Shape::Optional(&Shape::Section(ApiKeyElasticsearchConfig::fields)),
    application: STR,
    privilege: STR,
    resource: STR,
    index: OPT_STR,
});

keys!(ApiKeyElasticsearchConfig {
    hosts: STR_LIST,
    protocol: OPT_STR,
    path: OPT_STR,
    timeout: DUR,
    ssl: Shape::Section(SslConfig::fields),
});

keys!(ApiKeyCacheConfig {
    size: USIZE,
    expiry: DUR,
});

/// Every key path the code accepts, e.g. `output.logstash.ssl.key`. Free-form maps are
/// one path (`output.elasticsearch.headers`); input keys are `skidder.inputs[].KEY` for keys
/// every input has and `skidder.inputs[TYPE].KEY` for a type's own keys.
pub fn accepted_key_paths() -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    shape_paths(&Shape::Section(Config::fields), "", &mut out);
    out
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

fn shape_paths(shape: &Shape, prefix: &str, out: &mut BTreeSet<String>) {
    match shape {
        Shape::Section(fields) => {
            for f in fields() {
                let path = join(prefix, f.name);
                match f.shape {
                    Shape::Section(_) | Shape::Optional(Shape::Section(_)) | Shape::Inputs => {}
                    _ => {
                        out.insert(path.clone());
                    }
                }
                shape_paths(&f.shape, &path, out);
            }
        }
        Shape::Optional(inner @ Shape::Section(_)) => shape_paths(inner, prefix, out),
        Shape::Inputs => {
            out.insert(format!("{prefix}[].type"));
            shape_paths(
                &Shape::Section(CommonInputConfig::fields),
                &format!("{prefix}[]"),
                out,
            );
            // `beats` is an alias of `lumberjack`: listed once, under its own name.
            for (name, fields) in INPUT_TYPES.iter().filter(|(n, _)| *n != "beats") {
                shape_paths(&Shape::Section(*fields), &format!("{prefix}[{name}]"), out);
            }
        }
        _ => {}
    }
}

/// The key paths written in `value` (a parsed config file), named as
/// [`accepted_key_paths`] names them. Keys the schema does not know are listed too, so a
/// comparison shows both directions.
pub fn written_key_paths(value: &serde_json::Value) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    value_paths(value, &Shape::Section(Config::fields), "", &mut out);
    out
}

fn value_paths(value: &serde_json::Value, shape: &Shape, prefix: &str, out: &mut BTreeSet<String>) {
    match (shape, value) {
        (Shape::Optional(inner), _) => value_paths(value, inner, prefix, out),
        (Shape::Section(fields), serde_json::Value::Object(map)) => {
            let fields = fields();
            for (k, v) in map {
                let path = join(prefix, k);
                match fields.iter().find(|f| f.name == k) {
                    Some(f) => {
                        if !matches!(
                            f.shape,
                            Shape::Section(_) | Shape::Optional(Shape::Section(_)) | Shape::Inputs
                        ) {
                            out.insert(path.clone());
                        }
                        value_paths(v, &f.shape, &path, out);
                    }
                    None => {
                        out.insert(path);
                    }
                }
            }
        }
        (Shape::Inputs, serde_json::Value::Array(items)) => {
            for item in items {
                let Some(map) = item.as_object() else {
                    continue;
                };
                let kind = match map.get("type").and_then(|t| t.as_str()) {
                    Some("beats") => "lumberjack",
                    Some(k) => k,
                    None => "?",
                };
                let common = CommonInputConfig::fields();
                for (k, v) in map {
                    if k == "type" {
                        out.insert(format!("{prefix}[].type"));
                        continue;
                    }
                    let (p, section) = if common.iter().any(|f| f.name == k) {
                        (format!("{prefix}[]"), common)
                    } else {
                        let fields = INPUT_TYPES
                            .iter()
                            .find(|(n, _)| *n == kind)
                            .map(|(_, f)| f())
                            .unwrap_or(&[]);
                        (format!("{prefix}[{kind}]"), fields)
                    };
                    let mut one = serde_json::Map::new();
                    one.insert(k.clone(), v.clone());
                    let sub = serde_json::Value::Object(one);
                    let fields_of = section;
                    value_paths_in(&sub, fields_of, &p, out);
                }
            }
        }
        _ => {}
    }
}

fn value_paths_in(
    value: &serde_json::Value,
    fields: &'static [Field],
    prefix: &str,
    out: &mut BTreeSet<String>,
) {
    if let serde_json::Value::Object(map) = value {
        for (k, v) in map {
            let path = join(prefix, k);
            match fields.iter().find(|f| f.name == k) {
                Some(f) => {
                    if !matches!(
                        f.shape,
                        Shape::Section(_) | Shape::Optional(Shape::Section(_))
                    ) {
                        out.insert(path.clone());
                    }
                    value_paths(v, &f.shape, &path, out);
                }
                None => {
                    out.insert(path);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Serialize;

    fn serialized_keys<T: Serialize>(value: &T) -> BTreeSet<String> {
        match serde_json::to_value(value) {
            Ok(serde_json::Value::Object(map)) => map.keys().cloned().collect(),
            other => panic!("not a map: {other:?}"),
        }
    }

    fn listed<T: ConfigKeys>() -> BTreeSet<String> {
        T::fields().iter().map(|f| f.name.to_string()).collect()
    }

    /// The key lists above must be exactly serde's field names, struct by struct.
    #[test]
    fn key_lists_match_the_serde_schema() {
        // `queue.disk` is not serialized when unset (see QueueConfig::disk).
        let mut queue = listed::<QueueConfig>();
        queue.remove("disk");
        assert_eq!(
            queue,
            serialized_keys(&QueueConfig::default()),
            "QueueConfig"
        );
        // `json` and `multiline` of a log input are not serialized when unset (off).
        let mut log = listed::<LogInputConfig>();
        log.remove("json");
        log.remove("multiline");
        assert_eq!(
            log,
            serialized_keys(&LogInputConfig::default()),
            "LogInputConfig"
        );
        macro_rules! same {
            ($($ty:ty),*) => {$(
                assert_eq!(listed::<$ty>(), serialized_keys(&<$ty>::default()), "{}", stringify!($ty));
            )*};
        }
        same!(
            Config,
            SkidderConfig,
            CommonInputConfig,
            StdinInputConfig,
            GeneratorInputConfig,
            LumberjackInputConfig,
            MemQueueConfig,
            DiskQueueConfig,
            FlushConfig,
            OutputsConfig,
            ConsoleOutputConfig,
            FileOutputConfig,
            DiscardOutputConfig,
            BackoffConfig,
            LogstashOutputConfig,
            ElasticsearchOutputConfig,
            FailoverConfig,
            SslConfig,
            RestartOnCertChangeConfig,
            LoggingConfig,
            LogFilesConfig,
            MetricsLogConfig,
            PathConfig,
            HttpConfig,
            HttpAuthConfig,
            HttpEndpointInputConfig,
            HttpSecretConfig,
            HmacConfig,
            IntakeAuthConfig,
            ApiKeyAuthConfig,
            ApiKeyElasticsearchConfig,
            ApiKeyCacheConfig,
            FilestreamInputConfig,
            ProspectorConfig,
            ScannerConfig,
            ReaderBackoffConfig,
            FingerprintConfig,
            CloseConfig,
            CloseOnStateChange,
            CloseReader,
            InodeMarkerConfig,
            RotationConfig,
            ExternalRotation,
            CopytruncateConfig,
            RecursiveGlobConfig,
            LogScanConfig,
            LogJsonConfig,
            MultilineConfig
        );
    }

    #[test]
    fn accepted_paths_cover_inputs_and_nested_sections() {
        let paths = accepted_key_paths();
        for p in [
            "output.logstash.hosts",
            "output.logstash.backoff.init",
            "output.elasticsearch.ssl.key",
            "skidder.inputs[].type",
            "skidder.inputs[].fields",
            "skidder.inputs[generator].count",
            "queue.mem.flush.timeout",
            "http.port",
        ] {
            assert!(paths.contains(p), "{p} missing from {paths:?}");
        }
        assert!(!paths.contains("output.logstash"));
    }
}
