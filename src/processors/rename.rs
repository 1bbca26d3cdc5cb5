//! `rename`: moves each `from` to `to`, in order. A `to` that exists is an error (drop or
//! rename it first), as is a missing `from` unless `ignore_missing`. With `fail_on_error`
//! (default true) the first error restores the event as it was and sets `error.message`.

use super::{ConfigError, Event, Processor, ProcessorError, Settings, Verdict};

/// A built `rename`.
#[derive(Debug)]
pub struct Rename {
    fields: Vec<(String, String)>,
    ignore_missing: bool,
    fail_on_error: bool,
}

impl Rename {
    pub(crate) fn build(s: &Settings<'_>) -> Result<Self, ConfigError> {
        Ok(Self {
            fields: s.pairs("fields")?,
            ignore_missing: s.bool("ignore_missing", false)?,
            fail_on_error: s.bool("fail_on_error", true)?,
        })
    }
}

/// Moves (or copies) `from` to `to` in the fields: libbeat's `renameField`/`copyField`.
pub(crate) fn move_field(
    event: &mut Event,
    from: &str,
    to: &str,
    ignore_missing: bool,
    keep_source: bool,
) -> Result<(), String> {
    if super::get(&event.fields, to).is_some() {
        return Err(format!(
            "target field {to} already exists, drop or rename this field first"
        ));
    }
    let value = match super::get(&event.fields, from) {
        Some(v) => v.clone(),
        None if ignore_missing => return Ok(()),
        None => {
            return Err(format!(
                "could not fetch value for key: {from}, Error: key not found"
            ))
        }
    };
    if !keep_source {
        // Deleting first lets `a` become `a.b`.
        super::delete(&mut event.fields, from);
    }
    super::put(&mut event.fields, to, value).map_err(|e| format!("could not put value: {to}: {e}"))
}

/// Runs `move_field` over `pairs` with libbeat's `fail_on_error` rules.
pub(crate) fn move_all(
    event: &mut Event,
    pairs: &[(String, String)],
    ignore_missing: bool,
    fail_on_error: bool,
    keep_source: bool,
    what: &str,
) -> Result<Verdict, ProcessorError> {
    let backup = fail_on_error.then(|| event.fields.clone());
    let mut first_error = None;
    for (from, to) in pairs {
        if let Err(e) = move_field(event, from, to, ignore_missing, keep_source) {
            let message = format!("{what}: {e}");
            if let Some(b) = backup {
                event.fields = b;
                event.set_error_message(&message);
                return Err(ProcessorError::new(message));
            }
            first_error.get_or_insert(message);
        }
    }
    match first_error {
        Some(m) => Err(ProcessorError::new(m)),
        None => Ok(Verdict::Keep),
    }
}

impl Processor for Rename {
    fn name(&self) -> &'static str {
        "rename"
    }

    fn run(&self, event: &mut Event) -> Result<Verdict, ProcessorError> {
        move_all(
            event,
            &self.fields,
            self.ignore_missing,
            self.fail_on_error,
            false,
            "Failed to rename fields in processor",
        )
    }
}

#[cfg(test)]
mod tests {
    use crate::processors::tests::run;
    use serde_json::json;

    #[test]
    fn rename_as_libbeat() {
        let pair = |f: &str, t: &str| json!({"from": f, "to": t});
        let table = [
            (
                json!({"fields": [pair("a", "b.c")]}),
                json!({"a": 1}),
                json!({"b": {"c": 1}}),
                0,
            ),
            (
                json!({"fields": [pair("a", "a.b")]}),
                json!({"a": 1}),
                json!({"a": {"b": 1}}),
                0,
            ),
            (
                json!({"fields": [pair("a", "x"), pair("b", "c")]}),
                json!({"a": 1, "b": 2, "c": 3}),
                json!({"a": 1, "b": 2, "c": 3, "error": {"message": "Failed to rename fields in processor: target field c already exists, drop or rename this field first"}}),
                1,
            ),
            (
                json!({"fields": [pair("a", "x"), pair("b", "c")], "fail_on_error": false}),
                json!({"a": 1, "b": 2, "c": 3}),
                json!({"x": 1, "b": 2, "c": 3}),
                1,
            ),
            (
                json!({"fields": [pair("nope", "x")], "ignore_missing": true}),
                json!({"a": 1}),
                json!({"a": 1}),
                0,
            ),
            (
                json!({"fields": [pair("nope", "x")]}),
                json!({}),
                json!({"error": {"message": "Failed to rename fields in processor: could not fetch value for key: nope, Error: key not found"}}),
                1,
            ),
        ];
        for (cfg, input, want, failures) in table {
            let (_, got, f) = run(json!({ "rename": cfg }), input);
            assert_eq!((got, f), (want, failures), "{cfg}");
        }
    }
}
