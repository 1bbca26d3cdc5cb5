//! Beats-style value types: durations (`30s`, `1m`, `500ms`) and sizes (`10MiB`, `1GB`).

use std::fmt;
use std::str::FromStr;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A duration written as Beats writes it: a number with a unit (`ns`, `us`, `ms`, `s`, `m`,
/// `h`, `d`), several parts allowed (`1m30s`); a bare number means seconds, as in Beats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Default, Hash)]
pub struct Duration(pub std::time::Duration);

impl Duration {
    /// A duration of `secs` seconds.
    pub const fn from_secs(secs: u64) -> Self {
        Self(std::time::Duration::from_secs(secs))
    }
    /// A duration of `ms` milliseconds.
    pub const fn from_millis(ms: u64) -> Self {
        Self(std::time::Duration::from_millis(ms))
    }
    /// The standard-library duration.
    pub const fn get(self) -> std::time::Duration {
        self.0
    }
    /// True for a zero duration (often "disabled" or "do not wait").
    pub fn is_zero(self) -> bool {
        self.0.is_zero()
    }
}

impl From<std::time::Duration> for Duration {
    fn from(d: std::time::Duration) -> Self {
        Self(d)
    }
}

/// `d` as a person writes it, to the millisecond, for logs and messages: `0s`, `250ms`,
/// `1.5s`, `90s`, `5m`, `14d` (std's `Debug` prints `0ns`, `336h`, `1.234567891s`).
pub fn human(d: std::time::Duration) -> String {
    let ms = d.as_millis();
    let rounded = if d.subsec_nanos() % 1_000_000 >= 500_000 {
        ms + 1
    } else {
        ms
    };
    Duration(std::time::Duration::from_millis(
        u64::try_from(rounded).unwrap_or(u64::MAX),
    ))
    .to_string()
}

/// Why a duration or size string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} {input:?}: {reason}")]
pub struct UnitParseError {
    /// "duration" or "size".
    pub what: &'static str,
    /// The text that was given.
    pub input: String,
    /// What is wrong with it.
    pub reason: String,
}

impl FromStr for Duration {
    type Err = UnitParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason: &str| UnitParseError {
            what: "duration",
            input: s.to_string(),
            reason: reason.to_string(),
        };
        let text = s.trim();
        if text.is_empty() {
            return Err(err("empty; write e.g. 30s, 1m, 500ms"));
        }
        if let Ok(secs) = text.parse::<f64>() {
            if !(0.0..=1e12).contains(&secs) {
                return Err(err("must be between 0 and 10^12 seconds"));
            }
            return Ok(Self(std::time::Duration::from_secs_f64(secs)));
        }
        let mut total = std::time::Duration::ZERO;
        let mut rest = text;
        while !rest.is_empty() {
            let num_end = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .ok_or_else(|| err("missing unit; use ns, us, ms, s, m, h or d"))?;
            if num_end == 0 {
                return Err(err("expected a number; write e.g. 30s, 1m, 500ms"));
            }
            let value: f64 = rest[..num_end].parse().map_err(|_| err("bad number"))?;
            rest = &rest[num_end..];
            let unit_end = rest
                .find(|c: char| c.is_ascii_digit() || c == '.')
                .unwrap_or(rest.len());
            let unit = &rest[..unit_end];
            rest = &rest[unit_end..];
            let nanos_per = match unit {
                "ns" => 1.0,
                "us" | "µs" => 1e3,
                "ms" => 1e6,
                "s" => 1e9,
                "m" => 60e9,
                "h" => 3600e9,
                "d" => 86400e9,
                _ => return Err(err("unknown unit; use ns, us, ms, s, m, h or d")),
            };
            let nanos = value * nanos_per;
            if !(0.0..1e21).contains(&nanos) {
                return Err(err("out of range"));
            }
            total = total
                .checked_add(std::time::Duration::from_nanos(nanos as u64))
                .ok_or_else(|| err("out of range"))?;
        }
        Ok(Self(total))
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0;
        if d.is_zero() {
            return f.write_str("0s");
        }
        let ms = d.as_millis();
        if d.subsec_nanos() % 1_000_000 != 0 {
            write!(f, "{}ns", d.as_nanos())
        } else if ms < 1000 {
            write!(f, "{ms}ms")
        } else if ms % 1000 != 0 {
            // `1.5s`, `2.025s`: exact, and read back by the parser.
            let frac = format!("{:03}", ms % 1000);
            write!(f, "{}.{}s", ms / 1000, frac.trim_end_matches('0'))
        } else {
            let s = d.as_secs();
            if s % 86_400 == 0 {
                write!(f, "{}d", s / 86_400)
            } else if s % 3600 == 0 {
                write!(f, "{}h", s / 3600)
            } else if s % 60 == 0 {
                write!(f, "{}m", s / 60)
            } else {
                write!(f, "{s}s")
            }
        }
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Duration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration such as 30s, 1m or 500ms")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
                v.parse().map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Duration, E> {
                Ok(Duration::from_secs(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
                u64::try_from(v)
                    .map(Duration::from_secs)
                    .map_err(|_| E::custom("a duration cannot be negative"))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Duration, E> {
                v.to_string().parse().map_err(E::custom)
            }
        }
        deserializer.deserialize_any(V)
    }
}

/// A byte size: a bare number of bytes, or a number with a unit (`KB`, `MB`, `GB` powers
/// of 1000; `KiB`, `MiB`, `GiB` powers of 1024), as Beats writes them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Default, Hash)]
pub struct ByteSize(pub u64);

impl ByteSize {
    /// The number of bytes.
    pub const fn bytes(self) -> u64 {
        self.0
    }
}

impl FromStr for ByteSize {
    type Err = UnitParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason: &str| UnitParseError {
            what: "size",
            input: s.to_string(),
            reason: reason.to_string(),
        };
        let text = s.trim();
        let split = text
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(text.len());
        if split == 0 {
            return Err(err("expected a number; write e.g. 10MiB or 1GB"));
        }
        let value: f64 = text[..split].parse().map_err(|_| err("bad number"))?;
        let mult: f64 = match text[split..].trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1.0,
            "k" | "kb" => 1e3,
            "m" | "mb" => 1e6,
            "g" | "gb" => 1e9,
            "t" | "tb" => 1e12,
            "kib" => 1024.0,
            "mib" => 1024.0 * 1024.0,
            "gib" => 1024.0 * 1024.0 * 1024.0,
            "tib" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
            _ => return Err(err("unknown unit; use B, KB, MB, GB, KiB, MiB or GiB")),
        };
        let bytes = value * mult;
        if !(0.0..1.8e19).contains(&bytes) {
            return Err(err("out of range"));
        }
        Ok(Self(bytes as u64))
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [(&str, u64); 3] = [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)];
        for (unit, size) in UNITS {
            if self.0 >= size && self.0 % size == 0 {
                return write!(f, "{}{unit}", self.0 / size);
            }
        }
        write!(f, "{}B", self.0)
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = ByteSize;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size such as 10MiB or 1GB")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ByteSize, E> {
                v.parse().map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ByteSize, E> {
                Ok(ByteSize(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ByteSize, E> {
                u64::try_from(v)
                    .map(ByteSize)
                    .map_err(|_| E::custom("a size cannot be negative"))
            }
        }
        deserializer.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_as_beats_writes_them() {
        let d = |s: &str| s.parse::<Duration>().map(|d| d.0);
        assert_eq!(d("30s"), Ok(std::time::Duration::from_secs(30)));
        assert_eq!(d("1m"), Ok(std::time::Duration::from_secs(60)));
        assert_eq!(d("500ms"), Ok(std::time::Duration::from_millis(500)));
        assert_eq!(d("1m30s"), Ok(std::time::Duration::from_secs(90)));
        assert_eq!(d("10"), Ok(std::time::Duration::from_secs(10)));
        assert!(d("10x").is_err());
        assert!(d("s").is_err());
        assert!(d("").is_err());
        assert_eq!(Duration::from_secs(90).to_string(), "90s");
        assert_eq!(Duration::from_millis(500).to_string(), "500ms");
    }

    #[test]
    fn durations_print_as_people_write_them_and_read_back() {
        let cases = [
            (std::time::Duration::ZERO, "0s"),
            (std::time::Duration::from_millis(250), "250ms"),
            (std::time::Duration::from_millis(1500), "1.5s"),
            (std::time::Duration::from_millis(2025), "2.025s"),
            (std::time::Duration::from_secs(30), "30s"),
            (std::time::Duration::from_secs(300), "5m"),
            (std::time::Duration::from_secs(7200), "2h"),
            (std::time::Duration::from_secs(14 * 86_400), "14d"),
        ];
        for (d, text) in cases {
            assert_eq!(Duration(d).to_string(), text);
            assert_eq!(human(d), text);
            assert_eq!(text.parse::<Duration>().map(Duration::get), Ok(d), "{text}");
        }
        // Logs round jittered delays to the millisecond instead of printing nanoseconds.
        assert_eq!(
            human(std::time::Duration::from_nanos(1_234_567_891)),
            "1.235s"
        );
        assert_eq!(human(std::time::Duration::from_nanos(400)), "0s");
    }

    #[test]
    fn sizes_as_beats_writes_them() {
        let b = |s: &str| s.parse::<ByteSize>().map(|b| b.0);
        assert_eq!(b("10MiB"), Ok(10 << 20));
        assert_eq!(b("1GB"), Ok(1_000_000_000));
        assert_eq!(b("512"), Ok(512));
        assert!(b("1XB").is_err());
    }
}
