//! `drop_fields`: removes `fields` (dotted paths; `@metadata.x` too). A missing field is an
//! error unless `ignore_missing`; the other fields are still dropped. libbeat never drops
//! `@timestamp` or `type`.

use super::{ConfigError, Event, Processor, ProcessorError, Settings, Verdict};

/// A built `drop_fields`.
#[derive(Debug)]
pub struct DropFields {
    fields: Vec<String>,
    ignore_missing: bool,
}

impl DropFields {
    pub(crate) fn build(s: &Settings<'_>) -> Result<Self, ConfigError> {
        let fields = s
            .strings("fields")?
            .ok_or_else(|| s.error("fields", "required"))?
            .into_iter()
            .filter(|f| f != "@timestamp" && f != "type")
            .collect();
        Ok(Self {
            fields,
            ignore_missing: s.bool("ignore_missing", false)?,
        })
    }
}

impl Processor for DropFields {
    fn name(&self) -> &'static str {
        "drop_fields"
    }

    fn run(&self, event: &mut Event) -> Result<Verdict, ProcessorError> {
        let missing: Vec<&str> = self
            .fields
            .iter()
            .filter(|f| event.delete(f).is_none())
            .map(String::as_str)
            .collect();
        if missing.is_empty() || self.ignore_missing {
            Ok(Verdict::Keep)
        } else {
            Err(ProcessorError::new(format!(
                "failed to drop field(s) {}: key not found",
                missing.join(", ")
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::processors::tests::run;
    use serde_json::json;

    #[test]
    fn drop_fields_as_libbeat() {
        let table = [
            (
                json!({"fields": ["a", "b.c"]}),
                json!({"a": 1, "b": {"c": 2, "d": 3}}),
                json!({"b": {"d": 3}}),
                0,
            ),
            (
                json!({"fields": ["a", "zz"]}),
                json!({"a": 1, "k": 2}),
                json!({"k": 2}),
                1,
            ),
            (
                json!({"fields": ["a", "zz"], "ignore_missing": true}),
                json!({"a": 1}),
                json!({}),
                0,
            ),
            (
                json!({"fields": ["type"]}),
                json!({"type": "t"}),
                json!({"type": "t"}),
                0,
            ),
        ];
        for (cfg, input, want, failures) in table {
            let (_, got, f) = run(json!({ "drop_fields": cfg }), input);
            assert_eq!((got, f), (want, failures), "{cfg}");
        }
    }
}
