//! libbeat's processing pipeline for one input: what its events get besides their own
//! fields, and which processors run, in libbeat's order (see the [module docs](super)).
//!
//! [`InputChain::tail`] is everything an event gets that does not depend on the event:
//! `input.type`, the top-level then the input's `fields` (overwriting), and, when no
//! processor runs, the built-in fields under them (never overwriting). Inputs encode it
//! once and append its bytes to every event; only an event that brings a key of its own
//! with the same name (a JSON line's `host`) has that one value merged
//! ([`InputChain::merge_own`]).
//!
//! A chain whose only processors are `add_host_metadata` (cached, with `replace_fields`,
//! as in Filebeat's default `filebeat.yml`) does not parse events either: what they add
//! does not depend on the event, so its data is folded into the tail in libbeat's order
//! (input's `add_host_metadata` over the fields, built-in fields under, top-level
//! `add_host_metadata` over). When its cache is re-read the tail changes:
//! [`InputChain::host_generation`] tells inputs to encode it again.
//!
//! Their `when` may be folded too when it reads only keys libbeat's pipeline adds
//! ([`STATIC_ROOTS`]: Filebeat's default `when.not.contains.tags: forwarded` reads `tags`).
//! For an event that brings none of those keys itself, they hold the same values in every
//! event of the input, so the condition is decided once, when the chain is built. An event
//! that does bring one (an NDJSON line with its own `tags`; [`InputChain::reads_own`])
//! is written with the unfolded tail and goes through the processors, as any chain's.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use serde_json::Value;

use super::add_host_metadata::AddHostMetadata;
use super::condition::Condition;
use super::{deep_update, put, ConfigError, Event, Failures, Fields, Processors, Verdict};
use crate::agent::Agent;
use crate::config::{CommonInputConfig, Config};

/// The top-level settings every input's events share: built once per run.
#[derive(Debug)]
pub struct Global {
    /// Who is shipping: `agent.*`, `host.name`.
    pub agent: Agent,
    tags: Vec<String>,
    fields: Fields,
    processors: Processors,
    /// Processor failures of the whole run.
    pub failures: Failures,
    /// Events processors dropped (`drop_event`).
    filtered: AtomicU64,
}

impl Global {
    /// The top-level `name`, `tags`, `fields`, `fields_under_root` and `processors` of
    /// `config`, with `agent` as the identity.
    ///
    /// # Errors
    /// The problems of the top-level `processors` (validation has reported them already).
    pub fn new(config: &Config, agent: Agent) -> Result<Self, Vec<ConfigError>> {
        let processors = Processors::build(&config.processors, "processors")?;
        let fields = as_fields(&config.fields, config.fields_under_root);
        Ok(Self {
            agent,
            tags: config.tags.clone(),
            fields,
            processors,
            failures: Failures::default(),
            filtered: AtomicU64::new(0),
        })
    }

    /// Nothing but the built-in fields (tests, embedding).
    pub fn with_agent(agent: Agent) -> Self {
        Self {
            agent,
            tags: Vec::new(),
            fields: Fields::new(),
            processors: Processors::default(),
            failures: Failures::default(),
            filtered: AtomicU64::new(0),
        }
    }

    /// Events processors dropped so far.
    pub fn filtered(&self) -> u64 {
        self.filtered.load(Ordering::Relaxed)
    }

    /// The `add_cloud_metadata`-style entries loaded and not applied, for the WARN.
    pub fn ignored(&self) -> &[String] {
        &self.processors.ignored
    }
}

/// `fields` as libbeat's `MergeFields` places them: at the root, or under `fields`.
fn as_fields(fields: &std::collections::BTreeMap<String, Value>, under_root: bool) -> Fields {
    let mut out = Fields::new();
    if fields.is_empty() {
        return out;
    }
    let map: Fields = fields.clone().into_iter().collect();
    if under_root {
        // Dotted keys written in a `-E` or env override nest as YAML's do.
        for (k, v) in map {
            let mut one = Fields::new();
            if put(&mut one, &k, v.clone()).is_err() {
                one.insert(k, v);
            }
            deep_update(&mut out, &one, true);
        }
    } else {
        out.insert("fields".into(), Value::Object(map));
    }
    out
}

/// The top-level keys a folded `add_host_metadata`'s `when` may read: those libbeat's
/// pipeline adds itself (`tags`, `input.type`, `fields`, the built-in `agent.*` and
/// `ecs.version`). Not `host`, which the folded processors write, nor keys only the event
/// can bring (`message`, `log`), which would differ from event to event.
pub const STATIC_ROOTS: [&str; 5] = ["tags", "input", "fields", "agent", "ecs"];

/// One folded `add_host_metadata` step.
type HostStep<'a> = (&'a AddHostMetadata, Option<&'a Condition>);

/// Whether every step can be folded: its `when`, if any, reads only [`STATIC_ROOTS`]
/// (and `tags` is not also a configured field, whose merge with the tags the encoded event
/// would not show as libbeat's `AddTags` makes it).
fn foldable(steps: &[HostStep<'_>], added: &Fields) -> bool {
    steps.iter().all(|(_, when)| {
        when.is_none_or(|c| {
            !added.contains_key("tags") && c.roots().iter().all(|r| STATIC_ROOTS.contains(r))
        })
    })
}

/// Decides each folded step's `when` for an event that brings none of the keys the
/// conditions read: such an event holds `added` and `tags` when the input's steps run, and
/// the built-in fields as well when the top-level ones run (libbeat's order).
fn decide(
    added: &Fields,
    builtin: &Fields,
    tags: &[String],
    input: &[HostStep<'_>],
    top: &[HostStep<'_>],
) -> (Vec<bool>, Vec<bool>) {
    let mut event = Event {
        timestamp: Value::Null,
        meta: Fields::new(),
        fields: added.clone(),
    };
    if !tags.is_empty() {
        event.fields.insert(
            "tags".into(),
            Value::Array(tags.iter().cloned().map(Value::from).collect()),
        );
    }
    let holds = |event: &Event, steps: &[HostStep<'_>]| -> Vec<bool> {
        steps
            .iter()
            .map(|(_, when)| when.is_none_or(|c| c.check(event)))
            .collect()
    };
    let input_on = holds(&event, input);
    deep_update(&mut event.fields, builtin, false);
    (input_on, holds(&event, top))
}

/// One input's pipeline.
#[derive(Debug)]
pub struct InputChain {
    /// `input.type` and the fields, merged over an event's own (overwriting).
    added: Fields,
    /// `agent.*`, `ecs.version`, `host.name`: under an event's own (never overwriting).
    builtin: Fields,
    /// What inputs append after their own fields: `added` (and `builtin` when no
    /// processor runs).
    tail: Fields,
    /// The top-level tags, then the input's.
    pub tags: Vec<String>,
    processors: Processors,
    global: Arc<Global>,
    /// `beat`, `type`, `version` of `@metadata`, put back if a processor removes them.
    base_meta: Fields,
    escape_html: bool,
    /// Every processor is a foldable `add_host_metadata`: folded into the tail, no parse.
    fold_host: bool,
    /// Of the folded steps (the input's, then the top-level ones), whether each applies to
    /// an event that brings none of `own_roots` itself.
    host_on: (Vec<bool>, Vec<bool>),
    /// The top-level keys the folded steps' conditions read.
    own_roots: Vec<String>,
}

impl InputChain {
    /// The chain of an input of type `kind` with settings `c`.
    ///
    /// # Errors
    /// The problems of the input's `processors`.
    pub fn new(
        kind: &str,
        c: &CommonInputConfig,
        path: &str,
        global: Arc<Global>,
        meta: &crate::event::EventMeta,
    ) -> Result<Self, Vec<ConfigError>> {
        let processors = Processors::build(&c.processors, &format!("{path}.processors"))?;
        let mut added = Fields::new();
        added.insert("input".into(), serde_json::json!({ "type": kind }));
        deep_update(&mut added, &global.fields, true);
        deep_update(&mut added, &as_fields(&c.fields, c.fields_under_root), true);
        let builtin = global.agent.builtin_fields();
        let mut tail = added.clone();
        let mut tags = global.tags.clone();
        tags.extend(c.tags.iter().cloned());
        let tree = !processors.is_empty() || !global.processors.is_empty();
        let mut host_on = (Vec::new(), Vec::new());
        let mut own_roots: Vec<String> = Vec::new();
        let fold_host = tree
            && match (
                processors.only_host_metadata(),
                global.processors.only_host_metadata(),
            ) {
                (Some(input), Some(top)) if foldable(&input, &added) && foldable(&top, &added) => {
                    host_on = decide(&added, &builtin, &tags, &input, &top);
                    for (_, when) in input.iter().chain(&top) {
                        for r in when.map(|c| c.roots()).unwrap_or_default() {
                            if !own_roots.iter().any(|o| o == r) {
                                own_roots.push(r.to_string());
                            }
                        }
                    }
                    true
                }
                _ => false,
            };
        if !tree {
            deep_update(&mut tail, &builtin, false);
        }
        let mut base_meta = Fields::new();
        base_meta.insert("beat".into(), Value::from(meta.beat.clone()));
        base_meta.insert("type".into(), Value::from("_doc"));
        base_meta.insert("version".into(), Value::from(meta.version.clone()));
        let mut chain = Self {
            added,
            builtin,
            tail,
            tags,
            processors,
            global,
            base_meta,
            escape_html: meta.escape_html,
            fold_host,
            host_on,
            own_roots,
        };
        if fold_host {
            chain.tail = chain.fold(chain.added.clone(), None);
        }
        Ok(chain)
    }

    /// What every event gets after its own fields, as top-level pairs (with folded
    /// `add_host_metadata`, its data as the chain was built; see [`Self::current_tail`]).
    pub fn tail(&self) -> &Fields {
        &self.tail
    }

    /// True when events go through processors (and so are parsed and re-encoded).
    pub fn runs_processors(&self) -> bool {
        self.has_processors() && !self.fold_host
    }

    fn has_processors(&self) -> bool {
        !self.processors.is_empty() || !self.global.processors.is_empty()
    }

    /// True when an event that brings its own top-level `key` must go through the
    /// processors, written with [`Self::unfolded_tail`]: a folded step's `when` reads it, so
    /// the decision made for the input's events does not hold for this one.
    pub fn reads_own(&self, key: &str) -> bool {
        self.own_roots.iter().any(|r| r == key)
    }

    /// With folded steps whose `when` reads an event's own keys ([`Self::reads_own`]): the
    /// tail for the events that go through the processors instead (no built-in fields, no
    /// host data: the processors add them).
    pub fn unfolded_tail(&self) -> Option<&Fields> {
        (self.fold_host && !self.own_roots.is_empty()).then_some(&self.added)
    }

    /// The folded processors of the input's list (`top` false) or the top-level one that
    /// apply to an event bringing none of the keys their conditions read. Called per
    /// event: allocates nothing.
    fn host_steps(&self, top: bool) -> impl Iterator<Item = &AddHostMetadata> {
        let (list, on) = if top {
            (&self.global.processors, &self.host_on.1)
        } else {
            (&self.processors, &self.host_on.0)
        };
        list.host_metadata()
            .zip(on)
            .filter_map(|(h, on)| on.then_some(h))
    }

    /// With folded `add_host_metadata`: the generation of its data (re-read first when
    /// its cache expired); a tail encoded at another generation is stale. `None` when the
    /// tail never changes (nothing folded, or no folded step applies).
    pub fn host_generation(&self) -> Option<u64> {
        if !self.fold_host {
            return None;
        }
        let mut steps = self
            .host_steps(false)
            .chain(self.host_steps(true))
            .peekable();
        steps.peek()?;
        Some(steps.map(|h| h.generation()).sum())
    }

    /// The tail now (see [`Self::tail`]) and the [`Self::host_generation`] it was built at.
    pub fn current_tail(&self) -> (Option<u64>, Fields) {
        let generation = self.host_generation();
        if generation.is_none() {
            return (None, self.tail.clone());
        }
        (generation, self.fold(self.added.clone(), None))
    }

    /// What the folded processors make of `m` (an event's own keys with `added` merged):
    /// the input's `add_host_metadata` overwrite, built-in fields fill in, the top-level
    /// ones overwrite, as [`Self::process`] would run them.
    /// With `only`, just that top-level key is merged (an event's own value of it).
    fn fold(&self, mut m: Fields, only: Option<&str>) -> Fields {
        let merge = |m: &mut Fields, from: &Fields, overwrite: bool| match only {
            None => deep_update(m, from, overwrite),
            Some(key) => {
                if let Some(v) = from.get(key) {
                    let mut one = Fields::new();
                    one.insert(key.to_string(), v.clone());
                    deep_update(m, &one, overwrite);
                }
            }
        };
        for h in self.host_steps(false) {
            merge(&mut m, &h.current().1, true);
        }
        merge(&mut m, &self.builtin, false);
        for h in self.host_steps(true) {
            merge(&mut m, &h.current().1, true);
        }
        m
    }

    /// The value of an event's own top-level `key` once the tail is merged into it:
    /// `added` overwrites it (objects merge key by key), `builtin` fills in what it lacks.
    /// `folded` tells which tail the event carries: the folded one, or
    /// [`Self::unfolded_tail`] (whose processors add the rest later).
    pub fn merge_own(&self, key: &str, own: Value, folded: bool) -> Value {
        let mut m = Fields::new();
        m.insert(key.to_string(), own);
        let one = |from: &Fields| -> Option<Fields> {
            from.get(key).map(|v| {
                let mut f = Fields::new();
                f.insert(key.to_string(), v.clone());
                f
            })
        };
        if let Some(a) = one(&self.added) {
            deep_update(&mut m, &a, true);
        }
        if self.fold_host {
            if folded {
                m = self.fold(m, Some(key));
            }
        } else if !self.has_processors() {
            if let Some(b) = one(&self.builtin) {
                deep_update(&mut m, &b, false);
            }
        }
        m.remove(key).unwrap_or(Value::Null)
    }

    /// Runs the processors on an encoded event (which has the tail without the built-in
    /// fields): the input's, then the built-in fields, then the top-level ones. `None`
    /// when a processor dropped it. Events of an input without processors come back as
    /// they were, unparsed, and so do those of a folded chain that carry its folded tail
    /// (`folded`; an event that arrives whole, `builtin` false, or that carries
    /// [`Self::unfolded_tail`] still goes through the processors).
    pub fn process(&self, bytes: Bytes, builtin: bool, folded: bool) -> Option<Bytes> {
        if !self.has_processors() || (self.fold_host && folded && builtin) {
            return Some(bytes);
        }
        let mut event = match Event::parse(&bytes) {
            Ok(e) => e,
            Err(e) => {
                // A replayed line that is not an object: shipped as it is, counted.
                self.global.failures.record("event", &e);
                return Some(bytes);
            }
        };
        let failures = &self.global.failures;
        let mut verdict = self.processors.run(&mut event, failures);
        if verdict == Verdict::Keep {
            if builtin {
                deep_update(&mut event.fields, &self.builtin, false);
            }
            verdict = self.global.processors.run(&mut event, failures);
        }
        if verdict == Verdict::Drop {
            self.global.filtered.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        Some(event.encode(&self.base_meta, self.escape_html))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventMeta;
    use serde_json::json;

    fn global(yaml_like: Value) -> Arc<Global> {
        let config: Config = serde_json::from_value(yaml_like).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let agent = Agent::load(dir.path(), config.name.as_deref()).unwrap();
        Arc::new(Global::new(&config, agent).unwrap())
    }

    fn chain(g: &Arc<Global>, input: Value) -> InputChain {
        let c: CommonInputConfig = serde_json::from_value(input).unwrap();
        InputChain::new(
            "stdin",
            &c,
            "skidder.inputs.0",
            Arc::clone(g),
            &EventMeta::default(),
        )
        .unwrap()
    }

    /// libbeat's precedence (`processing/default.go`): input fields win over top-level
    /// ones, tags are top-level then input, built-ins never overwrite.
    #[test]
    fn fields_tags_and_builtins_in_libbeat_precedence() {
        let g = global(json!({
            "name": "edge-7",
            "tags": ["global"],
            "fields": {"env": "prod", "team": "a"},
        }));
        let c = chain(&g, json!({"fields": {"team": "b"}, "tags": ["mine"]}));
        let tail = Value::Object(c.tail().clone());
        assert_eq!(tail["fields"], json!({"env": "prod", "team": "b"}));
        assert_eq!(tail["input"], json!({"type": "stdin"}));
        assert_eq!(tail["host"], json!({"name": "edge-7"}));
        assert_eq!(tail["agent"]["name"], "edge-7");
        assert_eq!(tail["agent"]["type"], "skidder");
        assert_eq!(c.tags, ["global", "mine"]);
        // An event's own host keeps its name; the built-in fills in nothing it has.
        assert_eq!(
            c.merge_own("host", json!({"name": "from-line", "ip": "1.2.3.4"}), true),
            json!({"name": "from-line", "ip": "1.2.3.4"})
        );
        assert_eq!(
            c.merge_own("host", json!({"ip": "1"}), true),
            json!({"ip": "1", "name": "edge-7"})
        );
        // input.type overwrites (libbeat adds it with the fields).
        assert_eq!(
            c.merge_own("input", json!({"type": "x", "id": 1}), true),
            json!({"type": "stdin", "id": 1})
        );
    }

    #[test]
    fn fields_under_root_at_top_level_and_under_root_input_fields_win() {
        let g = global(json!({"fields": {"a": 1, "svc": {"x": 1}}, "fields_under_root": true}));
        let c = chain(
            &g,
            json!({"fields": {"svc": {"y": 2}}, "fields_under_root": true}),
        );
        let tail = Value::Object(c.tail().clone());
        assert_eq!(tail["a"], 1);
        assert_eq!(tail["svc"], json!({"x": 1, "y": 2}));
        assert!(tail.get("fields").is_none());
    }

    /// Input processors run before the built-in fields exist; top-level ones after.
    #[test]
    fn input_processors_do_not_see_builtins_and_top_level_ones_do() {
        let g = global(json!({
            "name": "n",
            "processors": [{"copy_fields": {"fields": [{"from": "agent.name", "to": "seen_by_global"}]}}],
        }));
        let c = chain(
            &g,
            json!({"processors": [{"copy_fields": {"fields": [{"from": "agent.name", "to": "seen_by_input"}], "fail_on_error": false}}]}),
        );
        assert!(c.runs_processors());
        assert!(
            c.tail().get("agent").is_none(),
            "built-ins wait for the processors"
        );
        let out = c
            .process(
                Bytes::from_static(br#"{"@timestamp":"2024-01-02T03:04:05.678Z","@metadata":{"beat":"skidder","type":"_doc","version":"0.1.0"},"message":"m"}"#),
                true,
                false,
            )
            .unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert!(v.get("seen_by_input").is_none(), "{v}");
        assert_eq!(v["seen_by_global"], "n");
        assert_eq!(v["agent"]["name"], "n");
        assert_eq!(v["@timestamp"], "2024-01-02T03:04:05.678Z");
        assert_eq!(v["@metadata"]["beat"], "skidder");
        assert!(out.starts_with(br#"{"@timestamp":"#));
    }

    #[test]
    fn without_processors_bytes_pass_untouched() {
        let g = global(json!({}));
        let c = chain(&g, json!({}));
        let b = Bytes::from_static(br#"{"n":1e3}"#);
        let out = c.process(b.clone(), true, false).unwrap();
        assert_eq!(out.as_ptr(), b.as_ptr(), "not re-encoded");
    }

    #[test]
    fn drop_event_drops_at_either_level() {
        let g = global(
            json!({"processors": [{"drop_event": {"when": {"equals": {"level": "debug"}}}}]}),
        );
        let c = chain(
            &g,
            json!({"processors": [{"drop_event": {"when": {"has_fields": ["secret"]}}}]}),
        );
        let ev = |s: &'static str| Bytes::from_static(s.as_bytes());
        assert!(c.process(ev(r#"{"level":"debug"}"#), true, false).is_none());
        assert!(c.process(ev(r#"{"secret":1}"#), true, false).is_none());
        assert!(c.process(ev(r#"{"level":"info"}"#), true, false).is_some());
        assert_eq!(g.filtered(), 2);
    }
}
