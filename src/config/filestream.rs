//! `type: filestream`: the user-facing settings of the file input, with Filebeat 7.17's names
//! and defaults (see `shared/design/filebeat-reference.md` §1.1). Where Filebeat's default is
//! a known trap, the difference is said on the field.

use serde::{Deserialize, Serialize};

use super::units::Duration;

/// `type: filestream`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct FilestreamInputConfig {
    /// Globs of the files to read (required). Relative globs resolve against the working directory.
    pub paths: Vec<String>,
    /// `prospector.scanner.*`: how files are found.
    pub prospector: ProspectorConfig,
    /// Files not modified for this long are skipped (their offset set to their size); `0s` = off.
    pub ignore_older: Duration,
    /// Skip files not modified since skidder's first start (`since_first_start`, kept in
    /// `<path.data>/meta.json`) or since this process started (`since_last_start`), as
    /// `ignore_older` skips them. Default: unset (off).
    pub ignore_inactive: Option<IgnoreInactive>,
    /// `close.*`: when a file's descriptor is closed.
    pub close: CloseConfig,
    /// Forget the offset of a file read to its end this long after the offset last moved, once
    /// the file is closed; `0s` = never. Must be longer than `ignore_older` +
    /// `prospector.scanner.check_interval` (Filebeat's rule), so a forgotten file is an ignored
    /// one and is not read again. Default `0s` (Filebeat 7.17 ignores its own setting and
    /// forgets after 30m).
    pub clean_inactive: Duration,
    /// Forget the offsets of files that no longer exist. Default `true`.
    pub clean_removed: bool,
    /// Files open at once; `0` = unlimited. Default `0`.
    pub harvester_limit: usize,
    /// Bytes read from a file at a time. Default `16384`.
    pub buffer_size: usize,
    /// `backoff.*`: how long the reader waits when every open file is at its end.
    pub backoff: ReaderBackoffConfig,
    /// Longest message in bytes; longer lines are cut and flagged `truncated`. Default `10485760`.
    pub message_max_bytes: usize,
    /// The files' character encoding (`utf-8`, `utf-16le`, `latin1`, `shift_jis`, … any WHATWG
    /// label, `plain` = `utf-8`). Default `utf-8`.
    pub encoding: String,
    /// What ends a line. Default `auto` (LF, a CR before it is removed too).
    pub line_terminator: LineTerminator,
    /// Regexps: only lines matching one of them are shipped. Default: all lines.
    pub include_lines: Vec<String>,
    /// Regexps: lines matching one of them are not shipped.
    pub exclude_lines: Vec<String>,
    /// How a file is recognised across renames and restarts. Default `native`.
    pub file_identity: FileIdentityConfig,
    /// `rotation.external.strategy.copytruncate.*`: a logrotate `copytruncate` setup.
    pub rotation: RotationConfig,
    /// Parsers applied to each line, in order: `ndjson`, `multiline`.
    pub parsers: Vec<ParserConfig>,
}

impl Default for FilestreamInputConfig {
    fn default() -> Self {
        Self {
            paths: Vec::new(),
            prospector: ProspectorConfig::default(),
            ignore_older: Duration::default(),
            ignore_inactive: None,
            close: CloseConfig::default(),
            clean_inactive: Duration::default(),
            clean_removed: true,
            harvester_limit: 0,
            buffer_size: 16 * 1024,
            backoff: ReaderBackoffConfig::default(),
            message_max_bytes: 10 * 1024 * 1024,
            encoding: "utf-8".to_string(),
            line_terminator: LineTerminator::Auto,
            include_lines: Vec::new(),
            exclude_lines: Vec::new(),
            file_identity: FileIdentityConfig::default(),
            rotation: RotationConfig::default(),
            parsers: Vec::new(),
        }
    }
}

/// `ignore_inactive`: Filebeat's two reference points.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IgnoreInactive {
    /// Files last modified before skidder's first start on this `path.data`.
    SinceFirstStart,
    /// Files last modified before this process started.
    SinceLastStart,
}

/// `backoff.*` of the file reader (Filebeat's filestream defaults, not the outputs').
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct ReaderBackoffConfig {
    /// First wait once every open file is at its end; reset by any read. Default `2s`.
    pub init: Duration,
    /// Longest wait; the wait doubles up to it. Default `10s`. A scan
    /// (`prospector.scanner.check_interval`) that sees a file grow ends the wait early.
    pub max: Duration,
}

impl Default for ReaderBackoffConfig {
    fn default() -> Self {
        Self {
            init: Duration::from_secs(2),
            max: Duration::from_secs(10),
        }
    }
}

/// `prospector.*`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ProspectorConfig {
    /// `prospector.scanner.*`.
    pub scanner: ScannerConfig,
}

/// `prospector.scanner.*`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct ScannerConfig {
    /// How often the globs are scanned for new, grown, renamed and removed files. Default `10s`.
    pub check_interval: Duration,
    /// Regexps on the full path: matching files are skipped.
    pub exclude_files: Vec<String>,
    /// Regexps on the full path: when given, only matching files are read.
    pub include_files: Vec<String>,
    /// Follow symlinks (the path shipped is the link's). Default `false`.
    pub symlinks: bool,
    /// `**` in a glob matches any number of directories; `false` makes it a plain `*`.
    /// Default `true`.
    pub recursive_glob: bool,
    /// A file whose size did not change but whose modification time did is read again from
    /// its start (Filebeat treats it as truncated). Default `false`.
    pub resend_on_touch: bool,
    /// `fingerprint.*`: identify files by a hash of their first bytes.
    pub fingerprint: FingerprintConfig,
}

impl Default for ScannerConfig {
    fn default() -> Self {
        Self {
            check_interval: Duration::from_secs(10),
            exclude_files: Vec::new(),
            include_files: Vec::new(),
            symlinks: false,
            recursive_glob: true,
            resend_on_touch: false,
            fingerprint: FingerprintConfig::default(),
        }
    }
}

/// `prospector.scanner.fingerprint.*`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct FingerprintConfig {
    /// Compute fingerprints (required by `file_identity.fingerprint`). Default `false`.
    pub enabled: bool,
    /// First byte hashed. Default `0`.
    pub offset: u64,
    /// Bytes hashed (at least 64); smaller files wait until they are this long. Default `1024`.
    pub length: u64,
}

impl Default for FingerprintConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            offset: 0,
            length: 1024,
        }
    }
}

/// `close.*`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct CloseConfig {
    /// `close.on_state_change.*`.
    pub on_state_change: CloseOnStateChange,
    /// `close.reader.*`.
    pub reader: CloseReader,
}

/// `close.on_state_change.*`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct CloseOnStateChange {
    /// How often an open file is checked for being removed, renamed or inactive; must be
    /// longer than `0s`. Default `5s`.
    pub check_interval: Duration,
    /// Close a file nothing was read from for this long; `0s` = never. Default `5m` (Filebeat
    /// 7.17's code default is `0s`, against its own documentation).
    pub inactive: Duration,
    /// Close a file once it was renamed (after reading it to its end). Default `false`.
    pub renamed: bool,
    /// Close a file once it was removed (after reading it to its end). Default `true`.
    pub removed: bool,
}

impl Default for CloseOnStateChange {
    fn default() -> Self {
        Self {
            check_interval: Duration::from_secs(5),
            inactive: Duration::from_secs(300),
            renamed: false,
            removed: true,
        }
    }
}

/// `close.reader.*`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct CloseReader {
    /// Close a file as soon as its end is reached. Default `false`.
    pub on_eof: bool,
    /// Close a file this long after it was opened, whatever is left; `0s` = never. Default `0s`.
    pub after_interval: Duration,
}

/// `line_terminator`, Filebeat's names.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LineTerminator {
    /// LF; a CR just before it is removed too.
    #[default]
    Auto,
    /// LF (`\n`).
    LineFeed,
    /// VT (`\x0b`).
    VerticalTab,
    /// FF (`\x0c`).
    FormFeed,
    /// CR (`\r`).
    CarriageReturn,
    /// CR LF.
    CarriageReturnLineFeed,
    /// NEL (U+0085).
    NextLine,
    /// U+2028.
    LineSeparator,
    /// U+2029.
    ParagraphSeparator,
    /// NUL (`\0`).
    NullTerminator,
}

/// `file_identity`: exactly one of its keys, as Filebeat writes it (`file_identity.path: ~`;
/// a key given, even as `~`, is chosen). Keys not chosen are not exported: written back as
/// `~` they would be chosen.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct FileIdentityConfig {
    /// Inode and device (the default when no key is given).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub native: Option<EmptySection>,
    /// The path: a renamed file is a new file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<EmptySection>,
    /// Inode plus the contents of a marker file (`path`), for devices whose numbers change.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inode_marker: Option<InodeMarkerConfig>,
    /// SHA-256 of the first bytes (`prospector.scanner.fingerprint`), survives inode reuse.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<EmptySection>,
}

/// A section with no keys of its own (`file_identity.native: ~`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct EmptySection {}

/// `file_identity.inode_marker.*`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct InodeMarkerConfig {
    /// The marker file whose contents identify the device.
    pub path: String,
}

/// `rotation.*`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct RotationConfig {
    /// `rotation.external.*`.
    pub external: ExternalRotation,
}

/// `rotation.external.*`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ExternalRotation {
    /// `rotation.external.strategy.*`.
    pub strategy: RotationStrategy,
}

/// `rotation.external.strategy.*`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct RotationStrategy {
    /// logrotate's `copytruncate`: rotated copies match `suffix_regex`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub copytruncate: Option<CopytruncateConfig>,
}

/// `rotation.external.strategy.copytruncate.*`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct CopytruncateConfig {
    /// Regexp of the rotated copies' suffix, e.g. `\.\d$` (required).
    pub suffix_regex: String,
    /// Accepted for Filebeat compatibility; copies are matched by their contents, not ordered.
    pub dateformat: String,
}

/// One `parsers` entry: a one-key map, as in Filebeat.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ParserConfig {
    /// `- ndjson: {...}`.
    Ndjson(NdjsonConfig),
    /// `- multiline: {...}`.
    Multiline(MultilineConfig),
}

// Written as the one-key map it is read from: serde_yaml would write the derived form as a
// YAML tag (`!ndjson`), which `export config` must not print.
impl Serialize for ParserConfig {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(1))?;
        match self {
            ParserConfig::Ndjson(c) => m.serialize_entry("ndjson", c)?,
            ParserConfig::Multiline(c) => m.serialize_entry("multiline", c)?,
        }
        m.end()
    }
}

/// `ndjson` parser settings (also used by `type: stdin` with `json: true`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct NdjsonConfig {
    /// Put the decoded keys under this key; `""` = the event's root. Default `""`.
    pub target: String,
    /// Decoded keys replace the event's, `@timestamp` sets the event time. Default `false`.
    pub overwrite_keys: bool,
    /// Dotted keys become nested objects. Default `false`.
    pub expand_keys: bool,
    /// On a decoding problem add `error.message` and `error.type: json`. Default `false`.
    pub add_error_key: bool,
    /// This key's string value becomes `message` (and what later parsers and filters see).
    pub message_key: String,
    /// This key's string value is removed and becomes `@metadata._id`.
    pub document_id: String,
    /// Accepted for Filebeat compatibility (only silences Filebeat's log line).
    pub ignore_decoding_error: bool,
}

/// `multiline` parser settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct MultilineConfig {
    /// `pattern`, `count` or `while_pattern`. Default `pattern`.
    #[serde(rename = "type")]
    pub kind: MultilineKind,
    /// The regexp lines are tested against (`pattern`, `while_pattern`).
    pub pattern: String,
    /// Invert the match. Default `false`.
    pub negate: bool,
    /// `after` or `before` (`pattern`).
    #[serde(rename = "match")]
    pub match_: String,
    /// A line matching it ends the group.
    pub flush_pattern: String,
    /// Lines per group (`count`).
    pub count_lines: usize,
    /// Lines kept per group; further lines are dropped and the group flagged. Default `500`.
    pub max_lines: usize,
    /// Ship an open group after this long without a new line; `0s` = never. Default `5s`.
    pub timeout: Duration,
    /// Join lines without a newline between them. Default `false`.
    pub skip_newline: bool,
}

impl Default for MultilineConfig {
    fn default() -> Self {
        Self {
            kind: MultilineKind::Pattern,
            pattern: String::new(),
            negate: false,
            match_: String::new(),
            flush_pattern: String::new(),
            count_lines: 0,
            max_lines: 500,
            timeout: Duration::from_secs(5),
            skip_newline: false,
        }
    }
}

/// `multiline.type`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MultilineKind {
    /// Lines join by `pattern`, `negate` and `match`.
    #[default]
    Pattern,
    /// Every `count_lines` lines make a group.
    Count,
    /// Consecutive lines matching `pattern` (XOR `negate`) make a group.
    WhilePattern,
}
