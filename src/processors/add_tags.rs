//! `add_tags`: appends `tags` to the list at `target` (default `tags`), without removing
//! duplicates; a `target` that holds something other than a list is left alone (an error).

use super::{add_tags, ConfigError, Event, Processor, ProcessorError, Settings, Verdict};

/// A built `add_tags`.
#[derive(Debug)]
pub struct AddTags {
    tags: Vec<String>,
    target: String,
}

impl AddTags {
    pub(crate) fn build(s: &Settings<'_>) -> Result<Self, ConfigError> {
        let tags = s
            .strings("tags")?
            .ok_or_else(|| s.error("tags", "required"))?;
        let target = s
            .string("target")?
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| "tags".to_string());
        Ok(Self { tags, target })
    }
}

impl Processor for AddTags {
    fn name(&self) -> &'static str {
        "add_tags"
    }

    fn run(&self, event: &mut Event) -> Result<Verdict, ProcessorError> {
        add_tags(&mut event.fields, &self.target, &self.tags)?;
        Ok(Verdict::Keep)
    }
}

#[cfg(test)]
mod tests {
    use crate::processors::tests::run;
    use serde_json::json;

    #[test]
    fn add_tags_as_libbeat() {
        let table = [
            (
                json!({"tags": ["a", "b"]}),
                json!({}),
                json!({"tags": ["a", "b"]}),
                0,
            ),
            (
                json!({"tags": "a"}),
                json!({"tags": ["a"]}),
                json!({"tags": ["a", "a"]}),
                0,
            ),
            (
                json!({"tags": ["x"], "target": "labels.t"}),
                json!({}),
                json!({"labels": {"t": ["x"]}}),
                0,
            ),
            (
                json!({"tags": ["x"]}),
                json!({"tags": "s"}),
                json!({"tags": "s"}),
                1,
            ),
        ];
        for (cfg, input, want, failures) in table {
            let (_, got, f) = run(json!({ "add_tags": cfg }), input);
            assert_eq!((got, f), (want, failures), "{cfg}");
        }
    }
}
