//! `output.console`: NDJSON to standard output, optionally pretty-printed.

use std::io::Write;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::{Output, OutputError, WorkerFuture};
use crate::pipeline::{BatchSource, Metrics};

/// Writes each event on its own line (or indented over several with `pretty`).
#[derive(Debug)]
pub struct ConsoleOutput {
    pretty: bool,
    scratch: Vec<u8>,
}

impl ConsoleOutput {
    /// A console output.
    pub fn new(pretty: bool) -> Self {
        Self {
            pretty,
            scratch: Vec::with_capacity(64 * 1024),
        }
    }
}

impl Output for ConsoleOutput {
    fn run(mut self: Box<Self>, mut batches: BatchSource, metrics: Arc<Metrics>) -> WorkerFuture {
        Box::pin(async move {
            while let Some(batch) = batches.next_batch().await {
                self.scratch.clear();
                for doc in batch.docs() {
                    if self.pretty {
                        pretty_print(doc, &mut self.scratch);
                    } else {
                        self.scratch.extend_from_slice(doc);
                    }
                    self.scratch.push(b'\n');
                }
                let written = tokio::task::block_in_place(|| {
                    let mut out = std::io::stdout().lock();
                    out.write_all(&self.scratch).and_then(|()| out.flush())
                });
                match written {
                    Ok(()) => {
                        metrics
                            .output_bytes
                            .fetch_add(self.scratch.len() as u64, Ordering::Relaxed);
                        batch.ack();
                    }
                    Err(source) => {
                        batch.retry();
                        return Err(OutputError::Io {
                            what: "cannot write to",
                            path: "standard output".into(),
                            source,
                        });
                    }
                }
            }
            Ok(())
        })
    }
}

/// Re-indents compact JSON without parsing it into a tree, so key order and number text
/// stay exactly as encoded.
pub fn pretty_print(json: &[u8], out: &mut Vec<u8>) {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    let newline = |out: &mut Vec<u8>, depth: usize| {
        out.push(b'\n');
        out.extend(std::iter::repeat_n(b' ', depth * 2));
    };
    let mut i = 0;
    while i < json.len() {
        let c = json[i];
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == b'\\' {
                escaped = true;
            } else if c == b'"' {
                in_string = false;
            }
            i += 1;
            continue;
        }
        match c {
            b'"' => {
                in_string = true;
                out.push(c);
            }
            b'{' | b'[' => {
                let close = if c == b'{' { b'}' } else { b']' };
                if json.get(i + 1) == Some(&close) {
                    out.push(c);
                    out.push(close);
                    i += 2;
                    continue;
                }
                out.push(c);
                depth += 1;
                newline(out, depth);
            }
            b'}' | b']' => {
                depth = depth.saturating_sub(1);
                newline(out, depth);
                out.push(c);
            }
            b',' => {
                out.push(c);
                newline(out, depth);
            }
            b':' => out.extend_from_slice(b": "),
            b' ' | b'\n' | b'\r' | b'\t' => {}
            _ => out.push(c),
        }
        i += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::pretty_print;

    #[test]
    fn pretty_print_keeps_order_and_text() {
        let mut out = Vec::new();
        pretty_print(
            br#"{"b":1.50,"a":{"s":"x,{\"y\":1}","e":[],"o":{}},"l":[1,2]}"#,
            &mut out,
        );
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "{\n  \"b\": 1.50,\n  \"a\": {\n    \"s\": \"x,{\\\"y\\\":1}\",\n    \"e\": [],\n    \"o\": {}\n  },\n  \"l\": [\n    1,\n    2\n  ]\n}"
        );
    }
}
