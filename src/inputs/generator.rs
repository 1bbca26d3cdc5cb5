//! `type: generator`: a load generator like Beats' `benchmark` input.
//!
//! Every generated event carries `seq`, unique across threads and increasing within each
//! thread (threads claim blocks of numbers from one shared counter), so a receiver can
//! count losses and duplicates. `eps` is kept against an absolute schedule (event i is due
//! at start + i/rate), so sleeping never accumulates drift. With `replay`, the lines of an
//! NDJSON file are sent byte for byte, cycling, under the same `count`/`eps`/`duration`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;

use super::{CommonFields, InputError, InputIndex};
use crate::config::GeneratorInputConfig;
use crate::event::{EventEncoder, EventMeta};
use crate::pipeline::Publisher;

/// One piece of the `message` template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Seq,
    Rand,
    Host,
}

fn parse_template(t: &str) -> Vec<Piece> {
    let mut out = Vec::new();
    let mut rest = t;
    let mut text = String::new();
    while !rest.is_empty() {
        let hit = [
            ("{seq}", Piece::Seq),
            ("{rand}", Piece::Rand),
            ("{host}", Piece::Host),
        ]
        .into_iter()
        .find(|(p, _)| rest.starts_with(p));
        match hit {
            Some((p, piece)) => {
                if !text.is_empty() {
                    out.push(Piece::Text(std::mem::take(&mut text)));
                }
                out.push(piece);
                rest = &rest[p.len()..];
            }
            None => {
                let mut chars = rest.chars();
                if let Some(c) = chars.next() {
                    text.push(c);
                }
                rest = chars.as_str();
            }
        }
    }
    if !text.is_empty() {
        out.push(Piece::Text(text));
    }
    out
}

const HOSTS: [&str; 8] = [
    "web-01",
    "web-02",
    "api-01",
    "api-02",
    "db-01",
    "cache-01",
    "edge-01",
    "worker-01",
];

/// Top-level keys the generator writes itself.
const OWN_KEYS: [&str; 5] = ["@timestamp", "@metadata", "message", "seq", "pad"];

/// A validated generator input.
#[derive(Debug)]
pub struct GeneratorInput {
    count: u64,
    eps: u64,
    duration: Option<Duration>,
    threads: usize,
    template: Vec<Piece>,
    size: usize,
    replay: Option<Arc<Vec<Bytes>>>,
    common: CommonFields,
}

impl GeneratorInput {
    /// Validates the settings of input `index` and reads its `replay` file.
    ///
    /// # Errors
    /// [`InputError`] naming the key: `threads: 0`, an unreadable or empty replay file, a
    /// root field that collides with a generated one.
    pub fn new(
        index: InputIndex,
        c: &GeneratorInputConfig,
        common: CommonFields,
    ) -> Result<Self, InputError> {
        if c.threads == 0 {
            return Err(InputError::Invalid {
                index,
                key: "threads",
                reason: "must be at least 1".into(),
            });
        }
        if let Some(k) = common
            .root_keys
            .iter()
            .find(|k| OWN_KEYS.contains(&k.as_str()))
        {
            return Err(InputError::Invalid {
                index,
                key: "fields",
                reason: format!(
                    "with fields_under_root, key {k:?} collides with a generated field"
                ),
            });
        }
        let replay = match &c.replay {
            None => None,
            Some(path) => {
                let text = std::fs::read(path).map_err(|source| InputError::Read {
                    index,
                    key: "replay",
                    path: path.clone(),
                    source,
                })?;
                // memchr finds the newlines (a byte-at-a-time split of a multi-megabyte
                // corpus was a tenth of skidder's start-up CPU). Every line is a slice of
                // the one buffer read: no allocation per line at start or free at exit.
                // They share one reference count, but the output drops a batch's events
                // before settling it wakes the generator, so the two threads touch it in
                // turns, not at once.
                let text = Bytes::from(text);
                let mut start = 0;
                let lines: Vec<Bytes> = memchr::memchr_iter(b'\n', &text)
                    .chain(std::iter::once(text.len()))
                    .filter_map(|end| {
                        let line = start..end;
                        start = end + 1;
                        let bytes = &text[line.clone()];
                        if bytes.iter().all(u8::is_ascii_whitespace) {
                            return None;
                        }
                        let trimmed = bytes.strip_suffix(b"\r").map_or(0, |_| 1);
                        Some(text.slice(line.start..line.end - trimmed))
                    })
                    .collect();
                if lines.is_empty() {
                    return Err(InputError::Invalid {
                        index,
                        key: "replay",
                        reason: format!("{} has no lines", path.display()),
                    });
                }
                Some(Arc::new(lines))
            }
        };
        Ok(Self {
            count: c.count,
            eps: c.eps,
            duration: (!c.duration.is_zero()).then(|| c.duration.get()),
            threads: c.threads,
            template: parse_template(&c.message),
            size: c.size,
            replay,
            common,
        })
    }

    /// Starts the generator threads.
    ///
    /// # Errors
    /// When a thread cannot be spawned.
    pub fn start(
        self,
        name: &str,
        publisher: Publisher,
        meta: &EventMeta,
    ) -> std::io::Result<Vec<JoinHandle<()>>> {
        let shared = Arc::new(self);
        let next_seq = Arc::new(AtomicU64::new(1));
        let started = Instant::now();
        let mut handles = Vec::with_capacity(shared.threads);
        let mut publisher = Some(publisher);
        for t in 0..shared.threads {
            let p = if t + 1 == shared.threads {
                publisher.take()
            } else {
                publisher.clone()
            };
            let Some(p) = p else { break };
            let gen = Arc::clone(&shared);
            let seq = Arc::clone(&next_seq);
            let encoder = EventEncoder::new(meta);
            let handle = std::thread::Builder::new()
                .name(format!("{name}-{t}"))
                .spawn(move || gen.run_thread(t, p, encoder, &seq, started))?;
            handles.push(handle);
        }
        Ok(handles)
    }

    fn thread_rate(&self, t: usize) -> u64 {
        let threads = self.threads as u64;
        self.eps / threads + u64::from((t as u64) < self.eps % threads)
    }

    fn run_thread(
        &self,
        t: usize,
        mut publisher: Publisher,
        mut enc: EventEncoder,
        next_seq: &AtomicU64,
        started: Instant,
    ) {
        let rate = self.thread_rate(t);
        if self.eps > 0 && rate == 0 {
            // More threads than events per second: this one has nothing to do.
            let _ = publisher.close();
            return;
        }
        let deadline = self.duration.map(|d| started + d);
        let mut rng = Rng::new(t as u64);
        let mut msg = String::with_capacity(256);
        let mut produced: u64 = 0;
        let block: u64 = if rate > 0 { 64 } else { 1024 };
        let mut replay_pos = t;
        'outer: loop {
            let first = next_seq.fetch_add(block, Ordering::Relaxed);
            let last = if self.count > 0 {
                if first > self.count {
                    break;
                }
                (first + block - 1).min(self.count)
            } else {
                first + block - 1
            };
            let mut seq = first;
            while seq <= last {
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    break 'outer;
                }
                let mut n = last - seq + 1;
                if rate > 0 {
                    // Events due by now on the absolute schedule, minus those sent.
                    let due = (started.elapsed().as_secs_f64() * rate as f64) as u64 + 1;
                    let allowed = due.saturating_sub(produced);
                    if allowed == 0 {
                        if publisher.flush().is_err() {
                            break 'outer;
                        }
                        let next_at =
                            started + Duration::from_secs_f64((produced as f64) / rate as f64);
                        // Sleep at least 1 ms and send what fell due meanwhile in one go:
                        // a wake-up per event would cost more CPU than the events.
                        let wait = next_at
                            .saturating_duration_since(Instant::now())
                            .clamp(Duration::from_millis(1), Duration::from_millis(100));
                        std::thread::sleep(wait);
                        if publisher.is_stopping() {
                            break 'outer;
                        }
                        continue;
                    }
                    n = n.min(allowed);
                }
                let now = SystemTime::now();
                for s in seq..seq + n {
                    let bytes = match &self.replay {
                        // A replayed line is a whole document: sent as it is (the built-in
                        // fields are not added), through the processors if there are any.
                        Some(lines) => {
                            let line = lines[replay_pos % lines.len()].clone();
                            replay_pos += self.threads;
                            self.common.finish(line, false)
                        }
                        None => self
                            .common
                            .finish(self.encode(&mut enc, now, s, &mut rng, &mut msg), true),
                    };
                    // None: a processor dropped it (filtered, not lost).
                    if let Some(bytes) = bytes {
                        if publisher.publish(bytes).is_err() {
                            break 'outer;
                        }
                    }
                }
                seq += n;
                produced += n;
            }
        }
        if let Err(e) = publisher.close() {
            tracing::info!(unpublished = e.unpublished, "generator stopped by shutdown");
        }
    }

    fn encode(
        &self,
        enc: &mut EventEncoder,
        now: SystemTime,
        seq: u64,
        rng: &mut Rng,
        msg: &mut String,
    ) -> Bytes {
        use std::fmt::Write;
        msg.clear();
        for piece in &self.template {
            // Writing into a String cannot fail.
            let _ = match piece {
                Piece::Text(s) => {
                    msg.push_str(s);
                    Ok(())
                }
                Piece::Seq => write!(msg, "{seq}"),
                Piece::Rand => write!(msg, "{}", rng.next() % 1000),
                Piece::Host => {
                    msg.push_str(HOSTS[(rng.next() % HOSTS.len() as u64) as usize]);
                    Ok(())
                }
            };
        }
        let mut w = enc.begin(now);
        w.str_field("message", msg);
        w.u64_field("seq", seq);
        let common = self.common.current();
        w.raw_pairs(&common.fields_json);
        w.raw_pairs(&common.tags_json);
        // `,"pad":""` and the closing brace take 10 bytes.
        let pad = self.size.saturating_sub(w.len() + 10);
        if pad > 0 {
            w.pad_field("pad", pad);
        }
        w.finish()
    }
}

/// xorshift64*: enough randomness for log-like messages, no allocation, no locking.
#[derive(Debug)]
struct Rng(u64);

impl Rng {
    fn new(stream: u64) -> Self {
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x9E37_79B9_7F4A_7C15);
        Self((nanos ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15)) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_lines_drop_blank_lines_and_carriage_returns() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("corpus.ndjson");
        std::fs::write(&path, b"{\"a\":1}\r\n\n  \r\n{\"b\":2}\n\t\n{\"c\":3}").unwrap();
        let c = GeneratorInputConfig {
            replay: Some(path),
            ..GeneratorInputConfig::default()
        };
        let g = GeneratorInput::new(
            crate::inputs::InputIndex::new("skidder.inputs", 0),
            &c,
            CommonFields::default(),
        )
        .unwrap();
        let lines = g.replay.as_deref().unwrap();
        assert_eq!(
            lines.as_slice(),
            [&b"{\"a\":1}"[..], &b"{\"b\":2}"[..], &b"{\"c\":3}"[..]]
        );
    }

    #[test]
    fn template_pieces() {
        assert_eq!(
            parse_template("a {seq} b{rand}{host}é"),
            vec![
                Piece::Text("a ".into()),
                Piece::Seq,
                Piece::Text(" b".into()),
                Piece::Rand,
                Piece::Host,
                Piece::Text("é".into())
            ]
        );
        assert_eq!(parse_template("{nope}"), vec![Piece::Text("{nope}".into())]);
    }

    #[test]
    fn padding_reaches_about_size() {
        let c = GeneratorInputConfig {
            size: 300,
            ..GeneratorInputConfig::default()
        };
        let g = GeneratorInput::new(
            crate::inputs::InputIndex::new("skidder.inputs", 0),
            &c,
            CommonFields::default(),
        )
        .unwrap();
        let mut enc = EventEncoder::new(&EventMeta::default());
        let mut msg = String::new();
        let mut rng = Rng::new(1);
        let ev = g.encode(&mut enc, SystemTime::now(), 42, &mut rng, &mut msg);
        assert_eq!(ev.len(), 300);
        let v: serde_json::Value = serde_json::from_slice(&ev).unwrap();
        assert_eq!(v["seq"], 42);
        assert!(v["message"].as_str().unwrap().starts_with("event 42 from "));
    }

    #[test]
    fn rate_is_split_over_threads() {
        let c = GeneratorInputConfig {
            eps: 10,
            threads: 3,
            ..GeneratorInputConfig::default()
        };
        let g = GeneratorInput::new(
            crate::inputs::InputIndex::new("skidder.inputs", 0),
            &c,
            CommonFields::default(),
        )
        .unwrap();
        assert_eq!(
            (0..3).map(|t| g.thread_rate(t)).collect::<Vec<_>>(),
            [4, 3, 3]
        );
    }
}
