//! `add_locale`: writes the host's time zone at processing time into `event.timezone`, as
//! an offset (`format: offset`, the default, e.g. `+02:00`) or the zone's abbreviation
//! (`format: abbreviation`, e.g. `CEST`).

use serde_json::Value;

use super::{ConfigError, Event, Processor, ProcessorError, Settings, Verdict};

/// A built `add_locale`.
#[derive(Debug)]
pub struct AddLocale {
    abbreviation: bool,
}

impl AddLocale {
    pub(crate) fn build(s: &Settings<'_>) -> Result<Self, ConfigError> {
        let abbreviation = match s.string("format")?.as_deref() {
            None | Some("offset") => false,
            Some("abbreviation") => true,
            Some(other) => {
                return Err(s.error(
                    "format",
                    format!("{other:?} is not one of offset, abbreviation"),
                ))
            }
        };
        Ok(Self { abbreviation })
    }
}

/// The local zone now: its offset east of UTC in seconds and its abbreviation.
pub fn local_zone() -> (i64, String) {
    // SAFETY: `time` and `localtime_r` only write into the zeroed `tm` we own; `tm_zone`
    // points at static storage of the C library (or is null), read at once.
    unsafe {
        let now = libc::time(std::ptr::null_mut());
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&now, &mut tm).is_null() {
            return (0, "UTC".to_string());
        }
        let name = if tm.tm_zone.is_null() {
            String::new()
        } else {
            std::ffi::CStr::from_ptr(tm.tm_zone)
                .to_string_lossy()
                .into_owned()
        };
        (tm.tm_gmtoff, name)
    }
}

/// `+02:00`, `-05:30`, `+00:00`: Go's `-07:00` layout.
pub fn offset_text(seconds: i64) -> String {
    let sign = if seconds < 0 { '-' } else { '+' };
    let m = seconds.abs() / 60;
    format!("{sign}{:02}:{:02}", m / 60, m % 60)
}

impl Processor for AddLocale {
    fn name(&self) -> &'static str {
        "add_locale"
    }

    fn run(&self, event: &mut Event) -> Result<Verdict, ProcessorError> {
        let (offset, name) = local_zone();
        let value = if self.abbreviation {
            name
        } else {
            offset_text(offset)
        };
        event.put("event.timezone", Value::from(value))?;
        Ok(Verdict::Keep)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::processors::tests::run;
    use serde_json::json;

    #[test]
    fn offsets_are_written_as_go_does() {
        assert_eq!(offset_text(0), "+00:00");
        assert_eq!(offset_text(7200), "+02:00");
        assert_eq!(offset_text(-19800), "-05:30");
    }

    #[test]
    fn add_locale_writes_event_timezone() {
        let (offset, name) = local_zone();
        let (_, got, _) = run(json!({"add_locale": null}), json!({}));
        assert_eq!(got, json!({"event": {"timezone": offset_text(offset)}}));
        let (_, got, _) = run(json!({"add_locale": {"format": "abbreviation"}}), json!({}));
        assert_eq!(got, json!({"event": {"timezone": name}}));
        assert!(crate::processors::Processors::build(
            &[json!({"add_locale": {"format": "long"}})],
            "processors"
        )
        .is_err());
    }
}
