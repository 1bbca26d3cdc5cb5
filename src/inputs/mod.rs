//! Inputs: where events come from. Each entry of `skidder.inputs` (or `filebeat.inputs`)
//! becomes one input with its own [`Publisher`]; what libbeat's pipeline adds to every
//! event (`input.type`, `fields`, `tags`, the built-in `agent.*`, `ecs.version`,
//! `host.name`) is encoded here once per input ([`CommonFields`]), and processors run on
//! the input's thread before publishing.

pub mod filestream;
pub mod generator;
pub mod http_endpoint;
pub mod log;
pub mod lumberjack;
pub mod stdin;

use std::thread::JoinHandle;

use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};

use crate::config::{CommonInputConfig, ElasticsearchOutputConfig, InputConfig, InputKind};
use crate::event::{write_json, EventMeta};
use crate::pipeline::{Publisher, Queue};
use crate::processors::pipeline::{Global, InputChain};
use crate::processors::{deep_update, Fields};

/// Why an input could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InputError {
    /// No input is configured (or all are disabled).
    #[error("no input is configured; add at least one entry under skidder.inputs or filebeat.inputs (type: stdin, generator, lumberjack, http_endpoint, filestream or log)")]
    NoneEnabled,
    /// A setting has a value the input cannot use.
    #[error("{index}.{key}: {reason}")]
    Invalid {
        /// The input's list and position.
        index: InputIndex,
        /// The key inside the input.
        key: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A file the input needs could not be read.
    #[error("{index}.{key}: cannot read {}: {source}", path.display())]
    Read {
        /// The input's list and position.
        index: InputIndex,
        /// The key naming the file.
        key: &'static str,
        /// The file.
        path: std::path::PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A filestream input's registry cannot be opened (locked, unreadable, corrupt).
    #[error("input {name}: {reason}")]
    Registry {
        /// The input.
        name: String,
        /// What is wrong, naming the registry file.
        reason: String,
    },
    /// A thread could not be started.
    #[error("cannot start a thread for input {name}: {source}")]
    Spawn {
        /// The input.
        name: String,
        /// The cause.
        source: std::io::Error,
    },
}

/// Where an input was written: its list (`skidder.inputs` or `filebeat.inputs`, as the
/// user wrote it) and its position there; displayed as `filebeat.inputs[2]`, so that an
/// error names the key the user can find in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InputIndex {
    /// `skidder.inputs` or `filebeat.inputs`.
    pub list: &'static str,
    /// Position in the list.
    pub position: usize,
}

impl InputIndex {
    /// Input `position` of `list`.
    pub fn new(list: &'static str, position: usize) -> Self {
        Self { list, position }
    }
}

impl std::fmt::Display for InputIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}[{}]", self.list, self.position)
    }
}

/// What an input adds to each event, encoded once: `input.type`, the top-level and the
/// input's `fields` and `tags`, the built-in `agent.*`/`ecs.version`/`host.name` (see
/// [`InputChain`]), and the processors to run.
///
/// An input takes the tail for its event ([`Self::current`], or [`Self::current_for`] when
/// the event brings top-level keys of its own beyond `message` and `log`), writes its own
/// fields, then the tail's [`Self::fields_json`] and [`Self::tags_json`] (a key of its own
/// that is also in [`Self::root_keys`] goes through [`Self::merge_own`] instead, and is
/// left out of the tail), then hands the bytes to that same tail's [`Self::finish`], which
/// runs the processors when there are any.
#[derive(Debug, Clone, Default)]
pub struct CommonFields {
    /// `,"k":v` pairs of every top-level key the event gets after its own.
    pub fields_json: Vec<u8>,
    /// Those top-level keys (for collision checks).
    pub root_keys: Vec<String>,
    /// The same pairs one by one: (key, encoded value).
    pub root_pairs: Vec<(String, Vec<u8>)>,
    /// The tags: top-level, then the input's.
    pub tags: Vec<String>,
    /// `,"tags":[...]` or empty.
    pub tags_json: Vec<u8>,
    /// The pipeline; `None` for an input built without one (its own fields and tags only).
    pub chain: Option<Arc<InputChain>>,
    /// With a tail that changes (folded `add_host_metadata` re-reading its cache): the
    /// generation and encoding in use, shared by the input's threads.
    live: Option<Arc<Mutex<Live>>>,
    /// Events written with this tail skip the processors: the chain has none, or this is
    /// its folded tail.
    folded: bool,
    /// With folded steps whose `when` reads keys an event may bring: the tail of the
    /// events that do ([`InputChain::unfolded_tail`]), which go through the processors.
    unfolded: Option<Arc<CommonFields>>,
    /// [`Self::merge_own`]'s recent results: lines of one source repeat their own `host`
    /// (a few hosts' names and addresses), and each merge parses it and the tail's value.
    merged: Arc<Mutex<MergeCache>>,
}

/// Merged values by (key's length, key, escape_html, own value's bytes), bounded: emptied
/// when full.
#[derive(Debug, Default)]
struct MergeCache {
    map: std::collections::HashMap<Vec<u8>, Arc<[u8]>>,
    /// The lookup key of the last call, kept to reuse its allocation.
    scratch: Vec<u8>,
}

impl MergeCache {
    /// At most this many merged values (a few hundred KiB with host metadata).
    const CAPACITY: usize = 256;
    /// Own values longer than this are merged without the cache: a line may carry a value
    /// up to `message_max_bytes`, and 256 of those must not stay in memory.
    const MAX_OWN: usize = 4096;
}

#[derive(Debug)]
struct Live {
    generation: u64,
    current: Arc<CommonFields>,
    escape_html: bool,
}

/// The encoded tail to write into one event: [`CommonFields::current`].
#[derive(Debug)]
pub enum Current<'a> {
    /// The tail never changes.
    Fixed(&'a CommonFields),
    /// The tail of the chain's current generation.
    Live(Arc<CommonFields>),
}

impl std::ops::Deref for Current<'_> {
    type Target = CommonFields;

    fn deref(&self) -> &CommonFields {
        match self {
            Current::Fixed(c) => c,
            Current::Live(c) => c,
        }
    }
}

impl CommonFields {
    /// The input's own `fields` and `tags` only: no built-in fields, no processors.
    pub fn new(c: &CommonInputConfig, meta: &EventMeta) -> Self {
        let mut tail = Fields::new();
        if c.fields_under_root {
            tail.extend(c.fields.clone());
        } else if !c.fields.is_empty() {
            tail.insert(
                "fields".into(),
                serde_json::Value::Object(c.fields.clone().into_iter().collect()),
            );
        }
        Self::encode(&tail, &c.tags, meta.escape_html, None)
    }

    /// Everything `chain` adds, encoded.
    pub fn with_chain(chain: Arc<InputChain>, meta: &EventMeta) -> Self {
        let (generation, tail) = chain.current_tail();
        let tags = chain.tags.clone();
        let unfolded = chain.unfolded_tail().map(|t| {
            let mut u = Self::encode(t, &tags, meta.escape_html, Some(Arc::clone(&chain)));
            u.folded = false;
            Arc::new(u)
        });
        let mut out = Self::encode(&tail, &tags, meta.escape_html, Some(chain));
        if let Some(generation) = generation {
            out.live = Some(Arc::new(Mutex::new(Live {
                generation,
                current: Arc::new(out.clone()),
                escape_html: meta.escape_html,
            })));
        }
        out.unfolded = unfolded;
        out
    }

    /// The tail to write into the next event, which brings no top-level key of its own
    /// beyond `message` and `log` (see [`Self::current_for`]). Inputs call it once per
    /// event: when the chain's folded `add_host_metadata` re-read its data (its `cache.ttl`
    /// expired), the tail is encoded again here, once for all the input's threads.
    pub fn current(&self) -> Current<'_> {
        let (Some(live), Some(chain)) = (&self.live, &self.chain) else {
            return Current::Fixed(self);
        };
        let now = chain.host_generation();
        let mut live = match live.lock() {
            Ok(l) => l,
            Err(poisoned) => poisoned.into_inner(),
        };
        if now != Some(live.generation) {
            let (generation, tail) = chain.current_tail();
            live.current = Arc::new(Self::encode(
                &tail,
                &self.tags,
                live.escape_html,
                Some(Arc::clone(chain)),
            ));
            live.generation = generation.unwrap_or_default();
        }
        Current::Live(Arc::clone(&live.current))
    }

    /// The tail to write into an event that brings the top-level keys `own` itself (an
    /// NDJSON line's keys): [`Self::current`], or the unfolded tail when a folded
    /// processor's `when` reads one of them ([`InputChain::reads_own`]).
    pub fn current_for<'k>(&self, own: impl IntoIterator<Item = &'k str>) -> Current<'_> {
        if let (Some(unfolded), Some(chain)) = (&self.unfolded, &self.chain) {
            if own.into_iter().any(|k| chain.reads_own(k)) {
                return Current::Fixed(unfolded);
            }
        }
        self.current()
    }

    fn encode(
        tail: &Fields,
        tags: &[String],
        escape_html: bool,
        chain: Option<Arc<InputChain>>,
    ) -> Self {
        let enc = |v: &serde_json::Value| {
            let mut b = BytesMut::new();
            // serde_json::Value always serializes.
            let _ = write_json(&mut b, v, escape_html);
            b.to_vec()
        };
        let mut out = Self {
            tags: tags.to_vec(),
            folded: chain.as_ref().is_some_and(|c| !c.runs_processors()),
            chain,
            ..Self::default()
        };
        for (k, v) in tail {
            let value = enc(v);
            out.fields_json.push(b',');
            out.fields_json
                .extend_from_slice(&enc(&serde_json::Value::from(k.as_str())));
            out.fields_json.push(b':');
            out.fields_json.extend_from_slice(&value);
            out.root_keys.push(k.clone());
            out.root_pairs.push((k.clone(), value));
        }
        if !tags.is_empty() {
            out.tags_json.extend_from_slice(b",\"tags\":");
            out.tags_json
                .extend_from_slice(&enc(&serde_json::Value::from(tags.to_vec())));
        }
        out
    }

    /// The encoded value of an event's own top-level `key` (one of [`Self::root_keys`])
    /// with the tail merged in as libbeat merges it; `None` when `own` is not JSON.
    pub fn merge_own(&self, key: &str, own: &[u8], escape_html: bool) -> Option<Arc<[u8]>> {
        if own.len() > MergeCache::MAX_OWN {
            return self.merge_uncached(key, own, escape_html).map(Arc::from);
        }
        let mut guard = match self.merged.lock() {
            Ok(c) => c,
            Err(poisoned) => poisoned.into_inner(),
        };
        let MergeCache { map, scratch } = &mut *guard;
        scratch.clear();
        scratch.extend_from_slice(&key.len().to_le_bytes());
        scratch.extend_from_slice(key.as_bytes());
        scratch.push(u8::from(escape_html));
        scratch.extend_from_slice(own);
        if let Some(hit) = map.get(scratch.as_slice()) {
            return Some(Arc::clone(hit));
        }
        let merged: Arc<[u8]> = self.merge_uncached(key, own, escape_html)?.into();
        if map.len() >= MergeCache::CAPACITY {
            map.clear();
        }
        map.insert(scratch.clone(), Arc::clone(&merged));
        Some(merged)
    }

    fn merge_uncached(&self, key: &str, own: &[u8], escape_html: bool) -> Option<Vec<u8>> {
        let own: serde_json::Value = serde_json::from_slice(own).ok()?;
        let merged = match &self.chain {
            Some(chain) => chain.merge_own(key, own, self.folded),
            // Without a chain the tail holds only fields, which overwrite.
            None => {
                let pair = self.root_pairs.iter().find(|(k, _)| k == key)?;
                let mut m = Fields::new();
                m.insert(key.to_string(), own);
                let mut add = Fields::new();
                add.insert(key.to_string(), serde_json::from_slice(&pair.1).ok()?);
                deep_update(&mut m, &add, true);
                m.remove(key)?
            }
        };
        let mut b = BytesMut::new();
        let _ = write_json(&mut b, &merged, escape_html);
        Some(b.to_vec())
    }

    /// True when events written with this tail are parsed and re-encoded by processors.
    pub fn runs_processors(&self) -> bool {
        self.chain.is_some() && !self.folded
    }

    /// Runs the processors on an encoded event (untouched without processors); `None`
    /// when one dropped it: do not publish it (Beats acknowledges such an event to its
    /// input as if delivered). `builtin` is false for events that arrive whole (a replay
    /// line), which get no built-in fields.
    pub fn finish(&self, bytes: Bytes, builtin: bool) -> Option<Bytes> {
        match &self.chain {
            Some(chain) => chain.process(bytes, builtin, self.folded),
            None => Some(bytes),
        }
    }
}

/// A started input.
#[derive(Debug)]
pub struct RunningInput {
    /// The input's name in logs and metrics.
    pub name: String,
    /// Its threads; each ends when the input is finished or stopped.
    pub threads: Vec<JoinHandle<()>>,
    /// Run once the run is over (every event settled, or the run cancelled): a filestream
    /// input's last registry write.
    pub finisher: Option<filestream::Finisher>,
}

/// The name of input `index`: its `id`, or its type and position.
pub fn input_name(index: usize, c: &InputConfig) -> String {
    if let Some(id) = &c.common.id {
        return id.clone();
    }
    format!("{}-{index}", kind_name(&c.kind))
}

/// A validated input, ready to start.
#[derive(Debug)]
pub enum InputPlan {
    /// `type: stdin`.
    Stdin(stdin::StdinInput),
    /// `type: generator`.
    Generator(generator::GeneratorInput),
    /// `type: lumberjack` (alias `beats`).
    Lumberjack(lumberjack::LumberjackInput),
    /// `type: http_endpoint`.
    HttpEndpoint(Box<http_endpoint::HttpEndpointInput>),
    /// `type: filestream`.
    Filestream(Box<filestream::FilestreamInput>),
}

/// Validates every enabled input of the list at `key` (`skidder.inputs` or
/// `filebeat.inputs`); `global` holds what every event gets; `output_es` is
/// `output.elasticsearch`, which an `http_endpoint` input's `auth.api_key` asks by default.
///
/// # Errors
/// [`InputError`] naming the input's position and key.
pub fn plan(
    key: &'static str,
    inputs: &[InputConfig],
    meta: &EventMeta,
    global: &Arc<Global>,
    output_es: Option<&ElasticsearchOutputConfig>,
) -> Result<Vec<(String, InputPlan)>, InputError> {
    let mut out = Vec::new();
    for (position, c) in inputs.iter().enumerate() {
        if !c.common.enabled {
            continue;
        }
        let index = InputIndex::new(key, position);
        let kind = kind_name(&c.kind);
        let chain = InputChain::new(
            kind,
            &c.common,
            &format!("{key}.{position}"),
            Arc::clone(global),
            meta,
        )
        .map_err(|errors| InputError::Invalid {
            index,
            key: "processors",
            reason: errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
        })?;
        let common = CommonFields::with_chain(Arc::new(chain), meta);
        let plan = match &c.kind {
            InputKind::Stdin(s) => InputPlan::Stdin(stdin::StdinInput::new(s, common)),
            InputKind::Generator(g) => {
                InputPlan::Generator(generator::GeneratorInput::new(index, g, common)?)
            }
            // A relay: its events pass through unchanged (no fields, tags, built-in
            // fields or processors), as Logstash's beats input passes them.
            InputKind::Lumberjack(l) => {
                InputPlan::Lumberjack(lumberjack::LumberjackInput::new(index, &c.common, l)?)
            }
            InputKind::HttpEndpoint(h) => {
                InputPlan::HttpEndpoint(Box::new(http_endpoint::HttpEndpointInput::new(
                    index, &c.common, h, common, meta, output_es,
                )?))
            }
            InputKind::Filestream(f) => InputPlan::Filestream(Box::new(
                filestream::FilestreamInput::new(index, c.common.id.as_deref(), f, common)?,
            )),
            // Runs as filestream; its events keep `input.type: log` (the chain's kind).
            InputKind::Log(l) => {
                InputPlan::Filestream(Box::new(log::build(index, &c.common, l, common)?))
            }
        };
        out.push((input_name(position, c), plan));
    }
    if out.is_empty() {
        return Err(InputError::NoneEnabled);
    }
    Ok(out)
}

/// The `type` of an input, as written (`beats` is `lumberjack`).
pub fn kind_name(kind: &InputKind) -> &'static str {
    match kind {
        InputKind::Stdin(_) => "stdin",
        InputKind::Generator(_) => "generator",
        InputKind::Lumberjack(_) => "lumberjack",
        InputKind::HttpEndpoint(_) => "http_endpoint",
        InputKind::Filestream(_) => "filestream",
        InputKind::Log(_) => "log",
    }
}

/// Starts a planned input on its own threads.
///
/// # Errors
/// [`InputError::Spawn`] when a thread cannot be created.
pub fn start(
    name: String,
    plan: InputPlan,
    queue: &Queue,
    meta: &EventMeta,
) -> Result<RunningInput, InputError> {
    let publisher: Publisher = queue.publisher(&name);
    if let InputPlan::Filestream(f) = plan {
        let (threads, finisher) = f.start(&name, publisher, meta)?;
        return Ok(RunningInput {
            name,
            threads,
            finisher: Some(finisher),
        });
    }
    let threads = match plan {
        InputPlan::Stdin(s) => s.start(&name, publisher, meta),
        InputPlan::Generator(g) => g.start(&name, publisher, meta),
        // Runs as tokio tasks on the app's runtime, not threads.
        InputPlan::Lumberjack(l) => {
            l.start(&name, publisher)?;
            Ok(Vec::new())
        }
        InputPlan::HttpEndpoint(h) => {
            h.start(&name, publisher)?;
            Ok(Vec::new())
        }
        InputPlan::Filestream(_) => Ok(Vec::new()),
    }
    .map_err(|source| InputError::Spawn {
        name: name.clone(),
        source,
    })?;
    Ok(RunningInput {
        name,
        threads,
        finisher: None,
    })
}
