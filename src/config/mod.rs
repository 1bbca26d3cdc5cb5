//! The configuration layer: Beats-style YAML, environment and `-E` overrides merged by
//! figment into the typed [`Config`], validated once.
//!
//! # Pipeline
//! 1. read the file (missing, a directory, unreadable: [`ConfigError::Read`] with the path);
//! 2. parse it into a tree that keeps every key's line and column ([`tree`]); tabs used for
//!    indentation, syntax errors and keys given twice (dotted and nested) stop here;
//! 3. expand `${VAR}`, `${VAR:default}`, `${VAR:?message}` in strings: `${path.config}`,
//!    `${path.home}`, `${path.data}`, `${path.logs}` ([`paths`]) first, then the
//!    [`SecretResolver`] (keystore), then the environment. Every keystore value used is
//!    remembered in [`Config::secrets`]: it is redacted from export and error texts
//!    wherever it landed;
//! 4. merge with figment, lowest to highest precedence: the file, then environment
//!    variables `SKIDDER_<KEY>__<KEY>...` (`SKIDDER_OUTPUT__LOGSTASH__TIMEOUT=10s`), then
//!    `-E key=value` flags. As in Beats, `-E` wins over everything;
//! 5. check keys and types against the schema ([`keys`], [`check`]), then deserialize and
//!    apply range and cross-field rules ([`Config::validate`]);
//! 6. resolve relative file paths against `path.config` ([`paths::resolve_files`]), and size
//!    `queue.mem.events` for the outputs' connections when nothing set it ([`queue_size`]).
//!
//! Every problem of steps 3 to 5 is collected into one [`ConfigError::Invalid`], each line
//! naming the file (with line and column when known), or the environment variable or `-E`
//! flag that set the value, and the key path.

pub mod beats;
pub mod check;
pub mod filestream;
pub mod keys;
pub mod log_input;
pub mod paths;
pub mod queue_size;
pub mod schema;
pub mod tree;
pub mod units;
pub mod validate;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use figment::value::{Dict, Map};
use figment::{Figment, Metadata, Profile, Provider};

pub use check::Problem;
pub use filestream::FilestreamInputConfig;
pub use keys::{accepted_key_paths, written_key_paths, ConfigKeys};
pub use paths::Paths;
pub use schema::*;
pub use units::{ByteSize, Duration};
pub use validate::{parse_host_port, HostPort, HostPortError, LOGSTASH_DEFAULT_PORT};

use crate::credentials::secret::{redact_url_password, Redactor};
use crate::credentials::Secret;
use tree::{Node, Pos, Value};

/// The prefix of environment variables that override keys.
pub const ENV_PREFIX: &str = "SKIDDER_";
/// What `skidder test config` prints for a valid configuration.
pub const CONFIG_OK: &str = "Config OK";

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read: missing, a directory, unreadable. `Display` names the
    /// file; the reason is the [`source`](std::error::Error::source), as everywhere in skidder.
    #[error("cannot read config file {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// One or more problems in the merged configuration; each names its key and file.
    #[error("{} problem(s) in the configuration:\n{}", .0.len(), .0.join("\n"))]
    Invalid(Vec<String>),
}

impl ConfigError {
    /// The error with its causes, for printing to a person: `cannot read config file
    /// /etc/skidder.yml: Is a directory (os error 21)`, or the list of problems.
    pub fn report(&self) -> String {
        let mut text = self.to_string();
        let mut cause = std::error::Error::source(self);
        while let Some(c) = cause {
            text.push_str(": ");
            text.push_str(&c.to_string());
            cause = c.source();
        }
        text
    }

    /// True when the file itself could not be read (as opposed to its content being wrong).
    pub fn is_read(&self) -> bool {
        matches!(self, Self::Read { .. })
    }
}

/// Looks up `${NAME}` before the environment is consulted; the keystore implements it.
pub trait SecretResolver {
    /// The value stored under `name`, if any.
    fn resolve(&self, name: &str) -> Option<Secret>;

    /// The file searched, for the message about a variable that is not set.
    fn location(&self) -> Option<&Path> {
        None
    }
}

/// Where environment variables come from, for `${VAR}` and `SKIDDER_*` overrides.
#[derive(Debug, Clone, Default)]
pub enum EnvSource {
    /// The process environment.
    #[default]
    Process,
    /// No environment at all.
    Disabled,
    /// A fixed set, for tests and embedding.
    Fixed(BTreeMap<String, String>),
}

impl EnvSource {
    fn get(&self, name: &str) -> Option<String> {
        match self {
            Self::Process => std::env::var(name).ok(),
            Self::Disabled => None,
            Self::Fixed(map) => map.get(name).cloned(),
        }
    }

    /// Variables named `prefix...`; a value that is not UTF-8 is a problem, not skipped.
    fn with_prefix(&self, prefix: &str, problems: &mut Vec<Problem>) -> Vec<(String, String)> {
        let keep = |k: &str| k.starts_with(prefix);
        let mut vars: Vec<(String, String)> = match self {
            Self::Process => std::env::vars_os()
                .filter_map(|(k, v)| {
                    let k = k.into_string().ok().filter(|k| keep(k))?;
                    match v.into_string() {
                        Ok(v) => Some((k, v)),
                        Err(_) => {
                            problems.push(Problem::new(
                                format!("environment variable {k}"),
                                "the value is not valid UTF-8",
                            ));
                            None
                        }
                    }
                })
                .collect(),
            Self::Disabled => Vec::new(),
            Self::Fixed(map) => map
                .iter()
                .filter(|(k, _)| keep(k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        };
        vars.sort();
        vars
    }
}

/// Everything [`load_with`] needs.
#[derive(Default)]
pub struct LoadOptions<'a> {
    /// The YAML file (the first `-c`; `path.config` is its directory).
    pub path: PathBuf,
    /// Further `-c` files, merged over `path` in order as Beats does ([`beats::merge_layer`]).
    pub layers: Vec<PathBuf>,
    /// `-E key=value` flags, in command-line order (later wins).
    pub overrides: Vec<String>,
    /// The environment for `${VAR}` and `SKIDDER_*` overrides.
    pub env: EnvSource,
    /// Consulted before the environment for `${VAR}`.
    pub resolver: Option<&'a dyn SecretResolver>,
    /// `--path.data`: wins over every other source of `path.data`.
    pub path_data: Option<PathBuf>,
    /// `--path.logs`: wins over every other source of `path.logs`.
    pub path_logs: Option<PathBuf>,
}

/// Loads `path`, applies `SKIDDER_*` environment and `-E key=value` overrides (values
/// parsed as YAML), and validates.
///
/// # Errors
/// [`ConfigError`] naming the file, the key and the problem.
pub fn load(path: &Path, overrides: &[String]) -> Result<Config, ConfigError> {
    load_with(&LoadOptions {
        path: path.to_path_buf(),
        overrides: overrides.to_vec(),
        ..LoadOptions::default()
    })
}

/// Loads, merges and validates as described in the [module documentation](self).
///
/// # Errors
/// [`ConfigError::Read`] when the file cannot be read, else [`ConfigError::Invalid`]
/// listing every problem found.
pub fn load_with(opts: &LoadOptions<'_>) -> Result<Config, ConfigError> {
    let paths = Paths::early(opts);
    let mut vars = Vars {
        opts,
        paths: &paths,
        secrets: Redactor::default(),
        used_store: false,
        from_store: Vec::new(),
    };
    let mut problems: Vec<Problem> = Vec::new();
    let mut locator = Locator::default();
    let mut merged_file = serde_json::Value::Null;
    for (n, path) in std::iter::once(&opts.path).chain(&opts.layers).enumerate() {
        let (file, mut root) = read_tree(path)?;
        if n == 0 {
            locator.file = file.clone();
            locator.index = root.index();
        } else {
            locator.layers.push((file.clone(), root.index()));
        }
        expand_variables(&mut root, "", &mut vars, &mut problems);
        beats::merge_layer(&mut merged_file, root.to_json());
    }
    let file = locator.file.clone();
    let secrets = vars.secrets;
    let from_store = vars.from_store;

    let mut figment = Figment::new().merge(Layer::new(format!("file {file}"), merged_file));
    let top: Vec<&str> = Config::fields().iter().map(|f| f.name).collect();
    for (var, raw) in opts.env.with_prefix(ENV_PREFIX, &mut problems) {
        let key = var[ENV_PREFIX.len()..]
            .to_ascii_lowercase()
            .replace("__", ".");
        // Other SKIDDER_* variables (the CLI's own, say) are not configuration keys.
        if !top.contains(&key.split('.').next().unwrap_or_default()) {
            tracing::debug!(variable = %var, "not a configuration section; ignored as an override");
            continue;
        }
        let value = override_value(&raw);
        figment = figment.merge(Layer::new(
            format!("environment variable {var}"),
            nest(&key, value),
        ));
        locator.env.push((key, var));
    }
    for flag in &opts.overrides {
        match flag.split_once('=') {
            Some((key, raw)) if !key.trim().is_empty() && !key.split('.').any(str::is_empty) => {
                let key = key.trim().to_string();
                figment = figment.merge(Layer::new(
                    format!("-E {flag}"),
                    nest(&key, override_value(raw)),
                ));
                locator.flags.push((key, flag.clone()));
            }
            _ => problems.push(Problem::new(
                format!("-E {flag}"),
                "expected -E key=value, e.g. -E output.logstash.hosts=[\"a:5044\"]",
            )),
        }
    }

    let mut merged: serde_json::Value = match figment.extract() {
        Ok(v) => v,
        Err(e) => {
            problems.push(Problem::new(
                "",
                format!("cannot merge the configuration: {e}"),
            ));
            serde_json::Value::Object(serde_json::Map::new())
        }
    };
    let notices = beats::apply(&mut merged, &paths.config, &mut problems);
    problems.extend(check::check_tree(&mut merged, Config::fields()));
    let queue = merged.get("queue").and_then(|q| q.as_object());
    if queue.is_some_and(|q| q.contains_key("mem") && q.contains_key("disk")) {
        problems.push(Problem::new(
            "queue.disk",
            "queue.mem and queue.disk are exclusive (as in Beats): configure one queue",
        ));
    }
    if !problems.is_empty() {
        // Unknown keys are gone from `merged`; when what remains still deserializes, its
        // range and cross-field problems are reported in the same run.
        if let Ok(partial) = serde_json::from_value::<Config>(merged) {
            if let Err(more) = partial.validate() {
                problems.extend(more);
            }
        }
        return Err(locator.error(problems, &secrets));
    }
    // Written in a file, the environment, `-E` or by a preset: the user's value stands.
    let queue_events_written = merged.pointer("/queue/mem/events").is_some();
    let mut config: Config = match serde_json::from_value(merged) {
        Ok(c) => c,
        Err(e) => return Err(locator.error(vec![Problem::new("", e.to_string())], &secrets)),
    };
    if let Err(problems) = config.validate() {
        return Err(locator.error(problems, &secrets));
    }
    if !queue_events_written && config.queue.disk.is_none() {
        config.queue.mem.events = config.sized_queue_events();
    }
    if let Some(p) = &opts.path_data {
        config.path.data = p.clone();
    }
    if let Some(p) = &opts.path_logs {
        config.path.logs = p.clone();
    }
    paths::resolve_files(&mut config, &paths.config);
    if let Some(es) = config.output.elasticsearch.as_mut() {
        let written = |key: &str| {
            from_store
                .iter()
                .find(|(p, _)| p == &format!("output.elasticsearch.{key}"))
                .map(|(_, t)| t.clone())
        };
        let source = crate::credentials::es_auth::KeystoreSource {
            file: paths.keystore(),
            api_key: written("api_key"),
            password: written("password"),
        };
        if source.api_key.is_some() || source.password.is_some() {
            es.keystore_source = Some(source);
        }
    }
    config.secrets = secrets;
    config.locator = locator;
    config.notices = notices;
    config.notices.extend(beats::setting_notices(&config));
    config.notices.extend(log_input::notices(&config));
    Ok(config)
}

/// Reads and parses one configuration file: its name for messages and its tree.
fn read_tree(path: &Path) -> Result<(String, Node), ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let file = path.display().to_string();
    let root = tree::parse(&text).map_err(|errors| {
        ConfigError::Invalid(
            errors
                .into_iter()
                .map(|e| {
                    let key = if e.key.is_empty() {
                        String::new()
                    } else {
                        format!("{}: ", e.key)
                    };
                    format!("{file}:{}:{}: {key}{}", e.pos.line, e.pos.col, e.message)
                })
                .collect(),
        )
    })?;
    if !matches!(root.value, Value::Map(_) | Value::Null) {
        return Err(ConfigError::Invalid(vec![format!(
            "{file}:{}:{}: the configuration must be a mapping of keys",
            root.pos.line, root.pos.col
        )]));
    }
    Ok((file, root))
}

/// What `skidder test config` prints and its exit code: [`CONFIG_OK`] and 0 (after one
/// `WARN` line per [`beats::Notice`]), or every problem and 1.
pub fn test_config(opts: &LoadOptions<'_>) -> (String, i32) {
    match load_with(opts) {
        Ok(c) => {
            let mut text: String = c.notices.iter().map(|n| format!("WARN {n}\n")).collect();
            text.push_str(CONFIG_OK);
            (text, 0)
        }
        Err(e) => (e.report(), 1),
    }
}

/// The effective configuration as YAML, every secret shown as `REDACTED` (what
/// `skidder export config` prints): the [`Secret`] fields (`password`, `api_key`,
/// `ssl.key`, `ssl.key_passphrase`), the values of `headers` and `parameters` (they carry
/// tokens), the password of a URL (`hosts`, `proxy_url`: scheme, user and host kept), and
/// every keystore value wherever it landed ([`Config::secrets`]).
pub fn export_yaml(cfg: &Config) -> String {
    // Only non-string map keys can fail, and the schema has none; say so rather than panic.
    let failed = |e: serde_yaml::Error| format!("# cannot export the configuration: {e}\n");
    let mut tree = match serde_yaml::to_value(cfg) {
        Ok(v) => v,
        Err(e) => return failed(e),
    };
    redact_for_export(&mut tree, "", &cfg.secrets);
    serde_yaml::to_string(&tree).unwrap_or_else(failed)
}

fn redact_for_export(node: &mut serde_yaml::Value, path: &str, secrets: &Redactor) {
    use serde_yaml::Value as Y;
    let es = "output.elasticsearch";
    match node {
        Y::Mapping(map) => {
            let whole = path == format!("{es}.headers")
                || path == format!("{es}.parameters")
                || path == format!("{es}.proxy_headers");
            for (k, v) in map.iter_mut() {
                if whole && !v.is_null() {
                    *v = Y::String(Secret::REDACTED.to_string());
                    continue;
                }
                let key = k.as_str().unwrap_or_default();
                let p = if path.is_empty() {
                    key.to_string()
                } else {
                    format!("{path}.{key}")
                };
                redact_for_export(v, &p, secrets);
            }
        }
        Y::Sequence(items) => {
            let hosts = path.ends_with(".hosts");
            for item in items {
                if let (true, Y::String(s)) = (hosts, &mut *item) {
                    *s = redact_url_password(s);
                }
                redact_for_export(item, path, secrets);
            }
        }
        Y::String(s) => {
            if path.ends_with(".proxy_url") {
                *s = redact_url_password(s);
            }
            *s = secrets.redact(s);
        }
        // `port: ${PORT}` from the keystore became a number; it is secret all the same.
        Y::Number(_) | Y::Bool(_) => {
            let text = serde_yaml::to_string(node).unwrap_or_default();
            let text = text.trim_end();
            if secrets.redact(text) != text {
                *node = Y::String(Secret::REDACTED.to_string());
            }
        }
        _ => {}
    }
}

/// One figment provider per source, named so figment's own messages say where a value
/// came from.
struct Layer {
    name: String,
    value: serde_json::Value,
}

impl Layer {
    fn new(name: String, value: serde_json::Value) -> Self {
        Self { name, value }
    }
}

impl Provider for Layer {
    fn metadata(&self) -> Metadata {
        Metadata::named(self.name.clone())
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        figment::providers::Serialized::defaults(&self.value).data()
    }
}

/// Parses an override's value as YAML (`["a:5044","b:5044"]`, `10s`, `true`); text that
/// is not valid YAML is taken as a plain string, as Beats does.
fn override_value(raw: &str) -> serde_json::Value {
    match tree::parse(raw) {
        Ok(node) => node.to_json(),
        Err(_) => serde_json::Value::String(raw.to_string()),
    }
}

/// `a.b.c` and a value as `{a: {b: {c: value}}}`.
fn nest(key: &str, value: serde_json::Value) -> serde_json::Value {
    key.rsplit('.').fold(value, |inner, seg| {
        let mut map = serde_json::Map::new();
        map.insert(seg.to_string(), inner);
        serde_json::Value::Object(map)
    })
}

/// Turns key paths into "where" text: the `-E` flag or environment variable that set the
/// value, else the file with the line and column of the nearest written key. A loaded
/// [`Config`] keeps its own, so problems found later (TLS material) read like the others.
#[derive(Debug, Clone, Default)]
pub struct Locator {
    file: String,
    index: BTreeMap<String, Pos>,
    /// Further `-c` files with their indexes, in order (the last one wins).
    layers: Vec<(String, BTreeMap<String, Pos>)>,
    env: Vec<(String, String)>,
    flags: Vec<(String, String)>,
}

fn beneath(path: &str, key: &str) -> bool {
    path == key
        || path
            .strip_prefix(key)
            .is_some_and(|rest| rest.starts_with('.'))
}

impl Locator {
    /// The "where" text and, for values from the file, the position (to sort by).
    fn locate_at(&self, path: &str) -> (String, Option<Pos>) {
        if path.starts_with("-E ") || path.starts_with("environment variable ") {
            return ("command line".to_string(), None);
        }
        if let Some((_, flag)) = self.flags.iter().rev().find(|(k, _)| beneath(path, k)) {
            return (format!("-E {flag}"), None);
        }
        if let Some((_, var)) = self.env.iter().rev().find(|(k, _)| beneath(path, k)) {
            return (format!("environment variable {var}"), None);
        }
        let mut prefix = path;
        loop {
            if let Some((file, pos)) = self
                .layers
                .iter()
                .rev()
                .find_map(|(file, index)| index.get(prefix).map(|pos| (file, pos)))
            {
                // Sorted after the first file's lines: positions are per file.
                return (format!("{file}:{}:{}", pos.line, pos.col), None);
            }
            if let Some(pos) = self.index.get(prefix) {
                return (
                    format!("{}:{}:{}", self.file, pos.line, pos.col),
                    Some(*pos),
                );
            }
            match prefix.rsplit_once('.') {
                Some((head, _)) => prefix = head,
                None => return (self.file.clone(), Some(Pos::default())),
            }
        }
    }

    /// One line per problem, in file order; problems set by the environment or flags last.
    /// A keystore value a message quotes is redacted.
    pub fn error(&self, problems: Vec<Problem>, secrets: &Redactor) -> ConfigError {
        let mut lines: Vec<(Option<(usize, usize)>, String)> = problems
            .into_iter()
            .map(|p| {
                let (at, pos) = self.locate_at(&p.path);
                // A configuration built in code (demo, receive) has no file to name.
                let at = if at.is_empty() { at } else { format!("{at}: ") };
                let text = if p.path.is_empty() {
                    format!("{at}{}", p.message)
                } else {
                    format!("{at}{}: {}", p.path, p.message)
                };
                (pos.map(|p| (p.line, p.col)), text)
            })
            .collect();
        lines.sort_by_key(|(pos, _)| pos.unwrap_or((usize::MAX, usize::MAX)));
        ConfigError::Invalid(lines.into_iter().map(|(_, t)| secrets.redact(&t)).collect())
    }
}

/// What `${...}` can refer to, and the keystore values used so far.
struct Vars<'a, 'o> {
    opts: &'a LoadOptions<'o>,
    paths: &'a Paths,
    secrets: Redactor,
    /// Set when a keystore value was used, so a credential setting can remember that it
    /// came from the keystore ([`KEYSTORE_WATCHED`]).
    used_store: bool,
    /// `(key path, text as written)` of the [`KEYSTORE_WATCHED`] settings that used the
    /// keystore.
    from_store: Vec<(String, String)>,
}

/// The settings whose keystore values are re-read while running when the keystore changes
/// (credential rotation without restart).
const KEYSTORE_WATCHED: [&str; 2] = [
    "output.elasticsearch.api_key",
    "output.elasticsearch.password",
];

/// Expands `${...}` in `template` as the loader does, looking names up in `resolver` (the
/// keystore) and then the environment; used to re-read a rotated keystore value.
///
/// # Errors
/// A variable that is set nowhere, or malformed `${`; the message never holds a value.
pub fn expand_secret(template: &str, resolver: &dyn SecretResolver) -> Result<String, String> {
    let opts = LoadOptions {
        resolver: Some(resolver),
        ..LoadOptions::default()
    };
    let paths = Paths::early(&opts);
    let mut vars = Vars {
        opts: &opts,
        paths: &paths,
        secrets: Redactor::default(),
        used_store: false,
        from_store: Vec::new(),
    };
    expand(template, &mut vars)
}

fn expand_variables(node: &mut Node, path: &str, vars: &mut Vars<'_, '_>, out: &mut Vec<Problem>) {
    match &mut node.value {
        Value::Map(map) => {
            for (k, e) in map.iter_mut() {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                expand_variables(&mut e.node, &p, vars, out);
            }
        }
        Value::Seq(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                expand_variables(item, &format!("{path}.{i}"), vars, out);
            }
        }
        Value::Str(s) if s.contains("${") => match expand(s, vars) {
            Ok(text) => {
                if std::mem::take(&mut vars.used_store) && KEYSTORE_WATCHED.contains(&path) {
                    vars.from_store.push((path.to_string(), s.clone()));
                }
                let whole = s.starts_with("${") && s.ends_with('}') && s.matches("${").count() == 1;
                // `port: ${PORT}` must give a number, as if the value had been written there.
                node.value = if whole && node.plain {
                    tree::resolve_plain(&text)
                } else {
                    Value::Str(text)
                };
            }
            Err(msg) => out.push(Problem::new(path, msg)),
        },
        _ => {}
    }
}

/// Expands every `${...}` in `s`, remembering the keystore values used.
fn expand(s: &str, vars: &mut Vars<'_, '_>) -> Result<String, String> {
    let opts = vars.opts;
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        // The value is not echoed in errors: it may be a secret.
        let end = after.find('}').ok_or_else(|| {
            "unterminated variable reference: ${ without a closing }; write ${NAME}".to_string()
        })?;
        let inner = &after[..end];
        let (name, default) = match inner.split_once(':') {
            Some((n, d)) => (n, Some(d)),
            None => (inner, None),
        };
        if name.is_empty() {
            return Err("empty variable name: ${}".to_string());
        }
        let from_store = || {
            let secret = opts.resolver.and_then(|r| r.resolve(name))?;
            vars.secrets.add(secret.expose());
            vars.used_store = true;
            Some(secret.expose().to_string())
        };
        let found = vars
            .paths
            .var(name)
            .or_else(from_store)
            .or_else(|| opts.env.get(name));
        match (found, default) {
            (Some(v), _) => out.push_str(&v),
            (None, Some(d)) if d.starts_with('?') => {
                return Err(format!("variable ${{{name}}} is not set: {}", &d[1..]));
            }
            (None, Some(d)) => out.push_str(d),
            (None, None) => {
                let store = match opts.resolver {
                    Some(r) => format!(
                        "in the keystore {}",
                        r.location()
                            .map_or_else(|| vars.paths.keystore(), Path::to_path_buf)
                            .display()
                    ),
                    None => format!(
                        "in a keystore (none exists at {})",
                        vars.paths.keystore().display()
                    ),
                };
                return Err(format!(
                    "variable ${{{name}}} is not set {store} or in the environment, and has no default (write ${{{name}:default}})"
                ));
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Keystore;
    impl SecretResolver for Keystore {
        fn resolve(&self, name: &str) -> Option<Secret> {
            match name {
                "ES_PWD" => Some(Secret::new("from-keystore")),
                "WORKERS" => Some(Secret::new("7")),
                _ => None,
            }
        }
    }

    #[test]
    fn export_redacts_secret_keys_url_passwords_and_keystore_values() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.yml");
        std::fs::write(
            &path,
            "output.elasticsearch:\n  hosts: [\"https://es:9200\"]\n  worker: ${WORKERS}\n\
             \x20 index: \"idx-${ES_PWD}\"\n  headers: {X-Token: env-token}\n\
             \x20 parameters: {t: env-param}\n\
             output.logstash:\n  enabled: false\n  hosts: [a]\n\
             \x20 proxy_url: \"socks5://user:env-pass@proxy:1080\"\n",
        )
        .unwrap();
        let mut o = opts(&[]);
        o.path = path;
        o.resolver = Some(&Keystore);
        let cfg = load_with(&o).unwrap();
        assert_eq!(cfg.output.elasticsearch.as_ref().map(|e| e.worker), Some(7));
        let yaml = export_yaml(&cfg);
        for leaked in ["from-keystore", "env-token", "env-param", "env-pass", "7"] {
            assert!(!yaml.contains(leaked), "{leaked} in:\n{yaml}");
        }
        for shown in [
            "worker: REDACTED",
            "index: idx-REDACTED",
            "X-Token: REDACTED",
            "t: REDACTED",
            "proxy_url: socks5://user:REDACTED@proxy:1080",
            "- https://es:9200",
        ] {
            assert!(yaml.contains(shown), "{shown} missing in:\n{yaml}");
        }
    }

    fn opts(env: &[(&str, &str)]) -> LoadOptions<'static> {
        LoadOptions {
            env: EnvSource::Fixed(
                env.iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            ..LoadOptions::default()
        }
    }

    fn expand_with(s: &str, o: &LoadOptions<'_>) -> (Result<String, String>, Redactor) {
        let paths = Paths::early(o);
        let mut vars = Vars {
            opts: o,
            paths: &paths,
            secrets: Redactor::default(),
            used_store: false,
            from_store: Vec::new(),
        };
        let r = expand(s, &mut vars);
        (r, vars.secrets)
    }

    #[test]
    fn variables_resolve_paths_then_keystore_then_env_then_default() {
        let mut o = opts(&[("ES_PWD", "from-env"), ("HOST", "h")]);
        o.path = PathBuf::from("/etc/skidder/skidder.yml");
        assert_eq!(expand_with("${HOST}:${PORT:5044}", &o).0.unwrap(), "h:5044");
        assert_eq!(
            expand_with("${path.config}/ca.pem", &o).0.unwrap(),
            "/etc/skidder/ca.pem"
        );
        let (v, secrets) = expand_with("${ES_PWD}", &o);
        assert_eq!(v.unwrap(), "from-env");
        assert!(secrets.is_empty(), "environment values are not tracked");
        let e = expand_with("${NOPE}", &o).0.unwrap_err();
        assert!(
            e.contains("${NOPE}") && e.contains("none exists at ./data/skidder.keystore"),
            "{e}"
        );
        o.resolver = Some(&Keystore);
        let (v, secrets) = expand_with("x-${ES_PWD}", &o);
        assert_eq!(v.unwrap(), "x-from-keystore");
        assert_eq!(secrets.redact("x-from-keystore"), "x-REDACTED");
        let e = expand_with("${NOPE:?set NOPE to the CA path}", &o)
            .0
            .unwrap_err();
        assert!(
            e.contains("NOPE") && e.contains("set NOPE to the CA path"),
            "{e}"
        );
        let e = expand_with("${NOPE}", &o).0.unwrap_err();
        assert!(
            e.contains("${NOPE}") && e.contains("in the keystore ./data/skidder.keystore"),
            "{e}"
        );
    }

    #[test]
    fn locations_prefer_flags_then_env_then_file() {
        let mut index = BTreeMap::new();
        index.insert("output.logstash".to_string(), Pos { line: 3, col: 1 });
        let l = Locator {
            file: "f.yml".into(),
            index,
            layers: Vec::new(),
            env: vec![(
                "output.logstash.timeout".into(),
                "SKIDDER_OUTPUT__LOGSTASH__TIMEOUT".into(),
            )],
            flags: vec![(
                "output.logstash.hosts".into(),
                "output.logstash.hosts=[]".into(),
            )],
        };
        assert_eq!(l.locate_at("output.logstash.worker").0, "f.yml:3:1");
        assert_eq!(
            l.locate_at("output.logstash.hosts.0").0,
            "-E output.logstash.hosts=[]"
        );
        assert_eq!(
            l.locate_at("output.logstash.timeout").0,
            "environment variable SKIDDER_OUTPUT__LOGSTASH__TIMEOUT"
        );
        assert_eq!(l.locate_at("queue").0, "f.yml");
    }
}
