//! `add_fields`: merges `fields` under `target` (default `fields`; `""` = the event's root),
//! overwriting what is there (libbeat's `DeepUpdate`).

use serde_json::Value;

use super::{
    deep_update, put, ConfigError, Event, Fields, Processor, ProcessorError, Settings, Verdict,
};

/// A built `add_fields`.
#[derive(Debug)]
pub struct AddFields {
    fields: Fields,
}

impl AddFields {
    pub(crate) fn build(s: &Settings<'_>) -> Result<Self, ConfigError> {
        let Value::Object(fields) = s.required("fields")? else {
            return Err(s.error("fields", "expected a mapping"));
        };
        let target = s.string("target")?.unwrap_or_else(|| "fields".to_string());
        let fields = if target.is_empty() {
            fields.clone()
        } else {
            let mut m = Fields::new();
            put(&mut m, &target, Value::Object(fields.clone()))
                .map_err(|e| s.error("target", e.message))?;
            m
        };
        Ok(Self { fields })
    }
}

impl Processor for AddFields {
    fn name(&self) -> &'static str {
        "add_fields"
    }

    fn run(&self, event: &mut Event) -> Result<Verdict, ProcessorError> {
        deep_update(&mut event.fields, &self.fields, true);
        Ok(Verdict::Keep)
    }
}

#[cfg(test)]
mod tests {
    use crate::processors::tests::run;
    use serde_json::json;

    #[test]
    fn add_fields_as_libbeat() {
        let table = [
            (
                json!({"fields": {"a": 1}}),
                json!({"x": 1}),
                json!({"x": 1, "fields": {"a": 1}}),
            ),
            (
                json!({"fields": {"a": 1}, "target": ""}),
                json!({"a": 0, "b": 2}),
                json!({"a": 1, "b": 2}),
            ),
            (
                json!({"fields": {"name": "p"}, "target": "project"}),
                json!({"project": {"id": 7}}),
                json!({"project": {"id": 7, "name": "p"}}),
            ),
            (
                json!({"fields": {"b": 1}, "target": "x.y"}),
                json!({}),
                json!({"x": {"y": {"b": 1}}}),
            ),
        ];
        for (cfg, input, want) in table {
            let (_, got, failures) = run(json!({ "add_fields": cfg }), input);
            assert_eq!(got, want, "{cfg}");
            assert_eq!(failures, 0);
        }
    }
}
