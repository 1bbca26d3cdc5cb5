//! Inputs: where events come from. Each entry of `skidder.inputs` becomes one input with
//! its own [`Publisher`]; `fields`, `fields_under_root` and `tags` are applied here, once,
//! pre-encoded.

pub mod filestream;
pub mod generator;
pub mod lumberjack;
pub mod stdin;

use std::thread::JoinHandle;

use bytes::BytesMut;

use crate::config::{CommonInputConfig, InputConfig, InputKind};
use crate::event::{write_json, EventMeta};
use crate::pipeline::{Publisher, Queue};

/// Why an input could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InputError {
    /// No input is configured (or all are disabled).
    #[error("no input is configured; add at least one entry under skidder.inputs (type: stdin, generator, lumberjack or filestream)")]
    NoneEnabled,
    /// A setting has a value the input cannot use.
    #[error("skidder.inputs[{index}].{key}: {reason}")]
    Invalid {
        /// Position in `skidder.inputs`.
        index: usize,
        /// The key inside the input.
        key: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A file the input needs could not be read.
    #[error("skidder.inputs[{index}].{key}: cannot read {}: {source}", path.display())]
    Read {
        /// Position in `skidder.inputs`.
        index: usize,
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

/// `fields`, `fields_under_root` and `tags`, encoded once.
#[derive(Debug, Clone, Default)]
pub struct CommonFields {
    /// `,"fields":{...}` or, under root, `,"k":v` pairs.
    pub fields_json: Vec<u8>,
    /// Top-level keys the fields occupy (for collision checks).
    pub root_keys: Vec<String>,
    /// `fields` under root, as (key, JSON value) pairs.
    pub root_pairs: Vec<(String, Vec<u8>)>,
    /// `fields` as one JSON object (when not under root).
    pub fields_object: Option<Vec<u8>>,
    /// The configured tags.
    pub tags: Vec<String>,
    /// `,"tags":[...]` or empty.
    pub tags_json: Vec<u8>,
}

impl CommonFields {
    /// Encodes the common settings of an input with libbeat's string rules.
    pub fn new(c: &CommonInputConfig, meta: &EventMeta) -> Self {
        let enc = |v: &serde_json::Value| {
            let mut b = BytesMut::new();
            // serde_json::Value always serializes.
            let _ = write_json(&mut b, v, meta.escape_html);
            b.to_vec()
        };
        let key = |k: &str| {
            let mut b = BytesMut::new();
            let _ = write_json(&mut b, k, meta.escape_html);
            b.to_vec()
        };
        let mut out = Self {
            tags: c.tags.clone(),
            ..Self::default()
        };
        if c.fields_under_root {
            for (k, v) in &c.fields {
                let value = enc(v);
                out.fields_json.push(b',');
                out.fields_json.extend_from_slice(&key(k));
                out.fields_json.push(b':');
                out.fields_json.extend_from_slice(&value);
                out.root_keys.push(k.clone());
                out.root_pairs.push((k.clone(), value));
            }
        } else if !c.fields.is_empty() {
            let obj = serde_json::Value::Object(c.fields.clone().into_iter().collect());
            let value = enc(&obj);
            out.fields_json.extend_from_slice(b",\"fields\":");
            out.fields_json.extend_from_slice(&value);
            out.root_keys.push("fields".to_string());
            out.fields_object = Some(value);
        }
        if !c.tags.is_empty() {
            out.tags_json.extend_from_slice(b",\"tags\":");
            out.tags_json
                .extend_from_slice(&enc(&serde_json::Value::from(c.tags.clone())));
        }
        out
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
    let kind = match c.kind {
        InputKind::Stdin(_) => "stdin",
        InputKind::Generator(_) => "generator",
        InputKind::Lumberjack(_) => "lumberjack",
        InputKind::Filestream(_) => "filestream",
    };
    format!("{kind}-{index}")
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
    /// `type: filestream`.
    Filestream(Box<filestream::FilestreamInput>),
}

/// Validates every enabled input.
///
/// # Errors
/// [`InputError`] naming the input's position and key.
pub fn plan(
    inputs: &[InputConfig],
    meta: &EventMeta,
) -> Result<Vec<(String, InputPlan)>, InputError> {
    let mut out = Vec::new();
    for (index, c) in inputs.iter().enumerate() {
        if !c.common.enabled {
            continue;
        }
        let common = CommonFields::new(&c.common, meta);
        let plan = match &c.kind {
            InputKind::Stdin(s) => InputPlan::Stdin(stdin::StdinInput::new(s, common)),
            InputKind::Generator(g) => {
                InputPlan::Generator(generator::GeneratorInput::new(index, g, common)?)
            }
            InputKind::Lumberjack(l) => {
                InputPlan::Lumberjack(lumberjack::LumberjackInput::new(index, &c.common, l)?)
            }
            InputKind::Filestream(f) => InputPlan::Filestream(Box::new(
                filestream::FilestreamInput::new(index, c.common.id.as_deref(), f, common)?,
            )),
        };
        out.push((input_name(index, c), plan));
    }
    if out.is_empty() {
        return Err(InputError::NoneEnabled);
    }
    Ok(out)
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
