//! `type: log`: Filebeat's classic log input (deprecated in Beats 7.16, still in most
//! `filebeat.yml` files), read with its own names and defaults
//! (`filebeat/input/log/config.go` of Beats 7.17.29) and run as skidder's filestream input.
//!
//! ```text
//!  LogInputConfig ──to_filestream()──▶ FilestreamInputConfig ──▶ inputs::filestream
//!   (Beats' names)                       (skidder's reader, registry, parsers)
//!        └─ id(), tail_files, json.* semantics ─▶ set on the FilestreamInput
//! ```
//!
//! What differs from Filebeat is said once per input, as a WARN ([`notices`]): the offsets
//! of Filebeat's own registry (`data/registry/filebeat/log.json`) are not migrated, so files
//! are read from their start (unless `tail_files`); the registry is
//! `<path.data>/registry/filestream/<id>.json` with an id derived from the paths
//! ([`derived_id`]); events keep `input.type: log`, so Logstash pipelines that route on it
//! still do; options accepted and not applied are named. An option that would change which
//! lines are delivered and that skidder cannot honour is refused ([`check`]).

use serde::{Deserialize, Serialize};

use super::beats::Notice;
use super::filestream::{
    CloseConfig, CloseOnStateChange, CloseReader, FileIdentityConfig, FilestreamInputConfig,
    LineTerminator, MultilineConfig, NdjsonConfig, ParserConfig, ProspectorConfig, ScannerConfig,
};
use super::units::Duration;
use super::{Config, InputKind};

/// `type: log`, Filebeat 7.17's names and defaults.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct LogInputConfig {
    /// Globs of the files to read (required).
    pub paths: Vec<String>,
    /// Regexps on the full path: matching files are skipped.
    pub exclude_files: Vec<String>,
    /// Regexps: only lines matching one of them are shipped. Default: all lines.
    pub include_lines: Vec<String>,
    /// Regexps: lines matching one of them are not shipped.
    pub exclude_lines: Vec<String>,
    /// The files' character encoding. Default `plain` (UTF-8).
    pub encoding: String,
    /// How often the globs are scanned (filestream's `prospector.scanner.check_interval`).
    /// Default `10s`.
    pub scan_frequency: Duration,
    /// New files not modified for this long are skipped; `0s` = off. Default `0s`.
    pub ignore_older: Duration,
    /// Close a file nothing was read from for this long. Default `5m`.
    pub close_inactive: Duration,
    /// Close a renamed file (after reading it to its end). Default `false`.
    pub close_renamed: bool,
    /// Close a removed file (after reading it to its end). Default `true`.
    pub close_removed: bool,
    /// Close a file at its end. Default `false`.
    pub close_eof: bool,
    /// Close a file this long after it was opened; `0s` = never. Default `0s`.
    pub close_timeout: Duration,
    /// Forget a file's offset this long after it last moved; `0s` = never. Default `0s`.
    pub clean_inactive: Duration,
    /// Forget the offsets of files that no longer exist. Default `true`.
    pub clean_removed: bool,
    /// Files open at once; `0` = unlimited. Default `0`.
    pub harvester_limit: usize,
    /// Bytes read from a file at a time. Default `16384`.
    pub harvester_buffer_size: usize,
    /// Longest message in bytes (filestream's `message_max_bytes`). Default `10485760`.
    pub max_bytes: usize,
    /// What ends a line. Default `auto`.
    pub line_terminator: LineTerminator,
    /// Follow symlinks (the link's path is shipped). Default `false`.
    pub symlinks: bool,
    /// At the first scan of a run, files without a stored offset start at their end.
    /// Default `false`.
    pub tail_files: bool,
    /// How a file is recognised: `native`, `path` or `inode_marker`. Default `native`.
    pub file_identity: FileIdentityConfig,
    /// `recursive_glob.*`.
    pub recursive_glob: RecursiveGlobConfig,
    /// `json.*`: decode each line as a JSON object (Filebeat's JSON reader); unset = off.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub json: Option<LogJsonConfig>,
    /// `multiline.*`: join lines into one event; unset = off.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub multiline: Option<MultilineConfig>,
    /// Accepted, not applied: skidder looks at files at their end after 10 ms, doubling up
    /// to 1 s. Default `1s`.
    pub backoff: Duration,
    /// Accepted, not applied (see `backoff`). Default `2`.
    pub backoff_factor: u64,
    /// Accepted, not applied (see `backoff`). Default `10s`.
    pub max_backoff: Duration,
    /// `scan.*`: accepted, not applied.
    pub scan: LogScanConfig,
}

impl Default for LogInputConfig {
    fn default() -> Self {
        Self {
            paths: Vec::new(),
            exclude_files: Vec::new(),
            include_lines: Vec::new(),
            exclude_lines: Vec::new(),
            encoding: "plain".to_string(),
            scan_frequency: Duration::from_secs(10),
            ignore_older: Duration::default(),
            close_inactive: Duration::from_secs(300),
            close_renamed: false,
            close_removed: true,
            close_eof: false,
            close_timeout: Duration::default(),
            clean_inactive: Duration::default(),
            clean_removed: true,
            harvester_limit: 0,
            harvester_buffer_size: 16 * 1024,
            max_bytes: 10 * 1024 * 1024,
            line_terminator: LineTerminator::Auto,
            symlinks: false,
            tail_files: false,
            file_identity: FileIdentityConfig::default(),
            recursive_glob: RecursiveGlobConfig::default(),
            json: None,
            multiline: None,
            backoff: Duration::from_secs(1),
            backoff_factor: 2,
            max_backoff: Duration::from_secs(10),
            scan: LogScanConfig::default(),
        }
    }
}

/// `recursive_glob.*`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct RecursiveGlobConfig {
    /// `**` in a path matches any number of directories. Default `true`; `false` is refused
    /// for a path with `**` (skidder's globs always recurse there).
    pub enabled: bool,
}

impl Default for RecursiveGlobConfig {
    fn default() -> Self {
        Self { enabled: true }
    }
}

/// `scan.*` (experimental in Beats): the order files are opened in.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct LogScanConfig {
    /// Accepted, not applied. Default `asc`.
    pub order: String,
    /// Accepted, not applied (files are opened in the order the scan finds them). Default `""`.
    pub sort: String,
}

impl Default for LogScanConfig {
    fn default() -> Self {
        Self {
            order: "asc".to_string(),
            sort: String::new(),
        }
    }
}

/// `json.*` of the log input (libbeat's `readjson.Config`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct LogJsonConfig {
    /// Decoded keys go to the event's root instead of under `json`. Default `false`.
    pub keys_under_root: bool,
    /// With `keys_under_root`: decoded keys replace the event's, `@timestamp` sets the
    /// event time. Default `false`.
    pub overwrite_keys: bool,
    /// On a decoding problem add `error.message` and `error.type: json`. Default `false`.
    pub add_error_key: bool,
    /// This key's string value is what `include_lines`, `exclude_lines` and `multiline`
    /// see; the (joined) text is written back to this key. Default: none.
    pub message_key: Option<String>,
    /// This key's string value is removed and becomes `@metadata._id`. Default: none.
    pub document_id: Option<String>,
    /// With `keys_under_root`: dotted keys become nested objects. Default `false`.
    pub expand_keys: bool,
    /// Only silences Filebeat's log line about a line that is not JSON. Default `false`.
    pub ignore_decoding_error: bool,
}

impl LogJsonConfig {
    /// `message_key`, `None` when unset or empty.
    pub fn message_key(&self) -> Option<&str> {
        self.message_key.as_deref().filter(|k| !k.is_empty())
    }
}

/// The registry id of a log input without an `id`: `log-` and the first 16 hex digits of
/// the SHA-256 of its paths, sorted and de-duplicated, joined by newlines. Stable across
/// restarts and reorderings of `paths`; two log inputs with the same paths need an `id`.
pub fn derived_id(paths: &[String]) -> String {
    let mut sorted: Vec<&str> = paths.iter().map(String::as_str).collect();
    sorted.sort_unstable();
    sorted.dedup();
    let digest = ring::digest::digest(&ring::digest::SHA256, sorted.join("\n").as_bytes());
    let hex: String = digest.as_ref()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("log-{hex}")
}

/// The id a log input's registry is kept under: its `id`, else [`derived_id`].
pub fn registry_id(id: Option<&str>, c: &LogInputConfig) -> String {
    match id.filter(|i| !i.is_empty()) {
        Some(id) => id.to_string(),
        None => derived_id(&c.paths),
    }
}

impl LogInputConfig {
    /// The filestream settings that read the same lines. `json` becomes an `ndjson` parser
    /// (under `json` unless `keys_under_root`), before `multiline`, in Filebeat's order.
    pub fn to_filestream(&self) -> FilestreamInputConfig {
        let mut parsers = Vec::new();
        if let Some(j) = &self.json {
            parsers.push(ParserConfig::Ndjson(NdjsonConfig {
                target: if j.keys_under_root {
                    String::new()
                } else {
                    "json".to_string()
                },
                overwrite_keys: j.keys_under_root && j.overwrite_keys,
                // Filebeat expands dotted keys only when writing them to the root.
                expand_keys: j.keys_under_root && j.expand_keys,
                add_error_key: j.add_error_key,
                message_key: j.message_key().unwrap_or_default().to_string(),
                document_id: j.document_id.clone().unwrap_or_default(),
                ignore_decoding_error: j.ignore_decoding_error,
            }));
        }
        if let Some(m) = &self.multiline {
            parsers.push(ParserConfig::Multiline(m.clone()));
        }
        FilestreamInputConfig {
            paths: self.paths.clone(),
            prospector: ProspectorConfig {
                scanner: ScannerConfig {
                    check_interval: self.scan_frequency,
                    exclude_files: self.exclude_files.clone(),
                    symlinks: self.symlinks,
                    ..ScannerConfig::default()
                },
            },
            ignore_older: self.ignore_older,
            close: CloseConfig {
                on_state_change: CloseOnStateChange {
                    inactive: self.close_inactive,
                    renamed: self.close_renamed,
                    removed: self.close_removed,
                    ..CloseOnStateChange::default()
                },
                reader: CloseReader {
                    on_eof: self.close_eof,
                    after_interval: self.close_timeout,
                },
            },
            clean_inactive: self.clean_inactive,
            clean_removed: self.clean_removed,
            harvester_limit: self.harvester_limit,
            buffer_size: self.harvester_buffer_size,
            message_max_bytes: self.max_bytes,
            encoding: self.encoding.clone(),
            line_terminator: self.line_terminator,
            include_lines: self.include_lines.clone(),
            exclude_lines: self.exclude_lines.clone(),
            file_identity: self.file_identity.clone(),
            parsers,
            ..FilestreamInputConfig::default()
        }
    }
}

/// The log input's own rules (Filebeat's `config.Validate` and what skidder cannot honour),
/// then the filestream checks of [`LogInputConfig::to_filestream`] with their keys named as
/// the log input names them; every problem as `(key, reason)`.
pub fn check(id: Option<&str>, c: &LogInputConfig) -> Vec<(String, String)> {
    let mut p: Vec<(String, String)> = Vec::new();
    let mut push = |k: &str, r: String| p.push((k.to_string(), r));
    if c.scan_frequency.is_zero() {
        push("scan_frequency", "must be longer than 0s".into());
    }
    if c.max_bytes == 0 {
        push("max_bytes", "must be at least 1".into());
    }
    if !c.clean_inactive.is_zero() {
        if c.ignore_older.is_zero() {
            push(
                "clean_inactive",
                "needs ignore_older (as in Filebeat): set ignore_older below clean_inactive".into(),
            );
        } else if c.clean_inactive.get() <= c.ignore_older.get() + c.scan_frequency.get() {
            push(
                "clean_inactive",
                "must be longer than ignore_older + scan_frequency (as in Filebeat), or files \
                 still read would be forgotten"
                    .into(),
            );
        }
    }
    if let Some(j) = &c.json {
        if j.message_key().is_none() && c.multiline.is_some() {
            push(
                "json.message_key",
                "required with multiline (as in Filebeat): the key whose text is joined".into(),
            );
        }
        if j.message_key().is_none() && !(c.include_lines.is_empty() && c.exclude_lines.is_empty())
        {
            push(
                "json.message_key",
                "required with include_lines/exclude_lines (as in Filebeat): the key whose text \
                 is matched"
                    .into(),
            );
        }
    }
    if !c.recursive_glob.enabled && c.paths.iter().any(|g| g.contains("**")) {
        push(
            "recursive_glob.enabled",
            "false is not supported: `**` in paths always matches any number of directories \
             here; write the levels out (`*/*`) or remove this key"
                .into(),
        );
    }
    if c.file_identity.fingerprint.is_some() {
        push(
            "file_identity.fingerprint",
            "not a log input identity (native, path, inode_marker); use type: filestream for \
             fingerprints"
                .into(),
        );
    }
    if !p.is_empty() {
        return p;
    }
    let id = registry_id(id, c);
    for (key, reason) in crate::inputs::filestream::check(Some(&id), &c.to_filestream()) {
        p.push((log_key(&key, c), reason));
    }
    p
}

/// A filestream key of [`LogInputConfig::to_filestream`] as the log input names it.
fn log_key(key: &str, c: &LogInputConfig) -> String {
    let renamed = [
        ("prospector.scanner.check_interval", "scan_frequency"),
        ("prospector.scanner.exclude_files", "exclude_files"),
        ("message_max_bytes", "max_bytes"),
        ("buffer_size", "harvester_buffer_size"),
    ];
    for (fs, log) in renamed {
        if let Some(rest) = key.strip_prefix(fs) {
            return format!("{log}{rest}");
        }
    }
    if let Some(rest) = key.strip_prefix("parsers.") {
        // `parsers.N.KIND`: N is 0 for json, and the last for multiline.
        let multiline = rest.ends_with("multiline") || c.json.is_none();
        return if multiline { "multiline" } else { "json" }.to_string();
    }
    key.to_string()
}

/// One WARN per enabled log input of `cfg`, naming what differs from Filebeat's log input.
pub fn notices(cfg: &Config) -> Vec<Notice> {
    let (list, inputs) = cfg.inputs();
    let mut out = Vec::new();
    for (i, input) in inputs.iter().enumerate() {
        let InputKind::Log(c) = &input.kind else {
            continue;
        };
        if !input.common.enabled {
            continue;
        }
        let id = registry_id(input.common.id.as_deref(), c);
        let start = if c.tail_files {
            "files without a stored offset start at their end (tail_files)"
        } else {
            "files are read from their start"
        };
        let mut ignored: Vec<&str> = Vec::new();
        let d = LogInputConfig::default();
        if c.backoff != d.backoff {
            ignored.push("backoff");
        }
        if c.backoff_factor != d.backoff_factor {
            ignored.push("backoff_factor");
        }
        if c.max_backoff != d.max_backoff {
            ignored.push("max_backoff");
        }
        if c.scan.order != d.scan.order {
            ignored.push("scan.order");
        }
        if c.scan.sort != d.scan.sort {
            ignored.push("scan.sort");
        }
        let ignored = if ignored.is_empty() {
            String::new()
        } else {
            format!(
                "; accepted but not applied: {} (skidder looks at a file's end after 10ms, \
                 doubling up to 1s, and opens files in the order found)",
                ignored.join(", ")
            )
        };
        out.push(Notice {
            key: format!("{list}.{i}"),
            message: format!(
                "type: log runs as skidder's filestream input: offsets are kept in \
                 <path.data>/registry/filestream/{id}.json (id {}); Filebeat's log-input \
                 registry is not migrated, so {start}; events keep input.type: log; lines over \
                 max_bytes are cut and flagged, never dropped{ignored}",
                if input.common.id.as_deref().is_some_and(|i| !i.is_empty()) {
                    "as configured"
                } else {
                    "derived from paths"
                },
            ),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_ids_are_stable_and_order_independent() {
        let a = derived_id(&["/var/log/b.log".into(), "/var/log/a.log".into()]);
        let b = derived_id(&[
            "/var/log/a.log".into(),
            "/var/log/b.log".into(),
            "/var/log/a.log".into(),
        ]);
        assert_eq!(a, b);
        assert_ne!(a, derived_id(&["/var/log/a.log".into()]));
        assert!(a.starts_with("log-") && a.len() == 20, "{a}");
        // The documented value: a change here moves every user's registry.
        assert_eq!(
            derived_id(&["/var/log/*.log".into()]),
            "log-acdf1d15ca8b987b"
        );
    }

    #[test]
    fn settings_map_onto_filestream() {
        let c = LogInputConfig {
            paths: vec!["/l/*.log".into()],
            exclude_files: vec!["gz$".into()],
            scan_frequency: Duration::from_secs(3),
            close_eof: true,
            close_timeout: Duration::from_secs(60),
            max_bytes: 100,
            harvester_buffer_size: 4096,
            json: Some(LogJsonConfig {
                message_key: Some("msg".into()),
                expand_keys: true,
                overwrite_keys: true,
                ..LogJsonConfig::default()
            }),
            multiline: Some(MultilineConfig::default()),
            ..LogInputConfig::default()
        };
        let f = c.to_filestream();
        assert_eq!(f.prospector.scanner.check_interval, Duration::from_secs(3));
        assert_eq!(f.prospector.scanner.exclude_files, ["gz$"]);
        assert!(f.close.reader.on_eof);
        assert_eq!(f.close.reader.after_interval, Duration::from_secs(60));
        assert_eq!((f.message_max_bytes, f.buffer_size), (100, 4096));
        match &f.parsers[..] {
            [ParserConfig::Ndjson(n), ParserConfig::Multiline(_)] => {
                // Not under the root: Filebeat neither expands nor overwrites there.
                assert_eq!(n.target, "json");
                assert!(!n.expand_keys && !n.overwrite_keys);
                assert_eq!(n.message_key, "msg");
            }
            other => panic!("{other:?}"),
        }
    }
}
