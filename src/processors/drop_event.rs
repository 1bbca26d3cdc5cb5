//! `drop_event`: drops the event (with `when`, the events that match). A dropped event is
//! acknowledged to its input like a delivered one, as in Beats.

use super::{Event, Processor, ProcessorError, Verdict};

/// `drop_event`.
#[derive(Debug)]
pub struct DropEvent;

impl Processor for DropEvent {
    fn name(&self) -> &'static str {
        "drop_event"
    }

    fn run(&self, _: &mut Event) -> Result<Verdict, ProcessorError> {
        Ok(Verdict::Drop)
    }
}

#[cfg(test)]
mod tests {
    use crate::processors::tests::run;
    use crate::processors::Verdict;
    use serde_json::json;

    #[test]
    fn drop_event_with_and_without_when() {
        let entry = json!({"drop_event": {"when": {"equals": {"level": "debug"}}}});
        assert_eq!(
            run(entry.clone(), json!({"level": "debug"})).0,
            Verdict::Drop
        );
        assert_eq!(run(entry, json!({"level": "info"})).0, Verdict::Keep);
        assert_eq!(run(json!({"drop_event": null}), json!({})).0, Verdict::Drop);
    }
}
