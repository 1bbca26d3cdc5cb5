//! `copy_fields`: copies each `from` to `to`; the same rules as `rename` (a `to` that exists
//! is an error; `fail_on_error`, default true, restores the event and sets `error.message`).

use super::rename::move_all;
use super::{ConfigError, Event, Processor, ProcessorError, Settings, Verdict};

/// A built `copy_fields`.
#[derive(Debug)]
pub struct CopyFields {
    fields: Vec<(String, String)>,
    ignore_missing: bool,
    fail_on_error: bool,
}

impl CopyFields {
    pub(crate) fn build(s: &Settings<'_>) -> Result<Self, ConfigError> {
        Ok(Self {
            fields: s.pairs("fields")?,
            ignore_missing: s.bool("ignore_missing", false)?,
            fail_on_error: s.bool("fail_on_error", true)?,
        })
    }
}

impl Processor for CopyFields {
    fn name(&self) -> &'static str {
        "copy_fields"
    }

    fn run(&self, event: &mut Event) -> Result<Verdict, ProcessorError> {
        move_all(
            event,
            &self.fields,
            self.ignore_missing,
            self.fail_on_error,
            true,
            "Failed to copy fields in copy_fields processor",
        )
    }
}

#[cfg(test)]
mod tests {
    use crate::processors::tests::run;
    use serde_json::json;

    #[test]
    fn copy_fields_as_libbeat() {
        let (_, got, f) = run(
            json!({"copy_fields": {"fields": [{"from": "message", "to": "event.original"}]}}),
            json!({"message": "m"}),
        );
        assert_eq!(
            (got, f),
            (json!({"message": "m", "event": {"original": "m"}}), 0)
        );
        let (_, got, f) = run(
            json!({"copy_fields": {"fields": [{"from": "a", "to": "b"}]}}),
            json!({"a": 1, "b": 2}),
        );
        assert_eq!(
            (got, f),
            (
                json!({"a": 1, "b": 2, "error": {"message": "Failed to copy fields in copy_fields processor: target field b already exists, drop or rename this field first"}}),
                1
            )
        );
    }
}
