//! `include_fields`: keeps only `fields` (and `type`, which libbeat always keeps);
//! `@timestamp` and `@metadata` are not fields and stay.

use super::{get, put, ConfigError, Event, Fields, Processor, ProcessorError, Settings, Verdict};

/// A built `include_fields`.
#[derive(Debug)]
pub struct IncludeFields {
    fields: Vec<String>,
}

impl IncludeFields {
    pub(crate) fn build(s: &Settings<'_>) -> Result<Self, ConfigError> {
        let mut fields = s
            .strings("fields")?
            .ok_or_else(|| s.error("fields", "required"))?;
        if !fields.iter().any(|f| f == "type") {
            fields.push("type".to_string());
        }
        Ok(Self { fields })
    }
}

impl Processor for IncludeFields {
    fn name(&self) -> &'static str {
        "include_fields"
    }

    fn run(&self, event: &mut Event) -> Result<Verdict, ProcessorError> {
        let mut kept = Fields::new();
        let mut errors = Vec::new();
        for f in &self.fields {
            if let Some(v) = get(&event.fields, f) {
                if let Err(e) = put(&mut kept, f, v.clone()) {
                    errors.push(e.message);
                }
            }
        }
        event.fields = kept;
        if errors.is_empty() {
            Ok(Verdict::Keep)
        } else {
            Err(ProcessorError::new(errors.join(", ")))
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::processors::tests::run;
    use serde_json::json;

    #[test]
    fn include_fields_as_libbeat() {
        let (_, got, f) = run(
            json!({"include_fields": {"fields": ["a.b", "c", "missing"]}}),
            json!({"a": {"b": 1, "x": 2}, "c": [1], "d": 4, "type": "t"}),
        );
        assert_eq!(got, json!({"a": {"b": 1}, "c": [1], "type": "t"}));
        assert_eq!(f, 0);
    }
}
