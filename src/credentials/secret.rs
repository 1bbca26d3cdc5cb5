//! A string that must never be printed: passwords, API keys, key passphrases; the
//! [`Redactor`] that scrubs the values taken from the keystore out of any text; and
//! [`redact_url_password`] for the password a URL may carry in its userinfo.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A secret value. `Debug`, `Display` and `Serialize` all print `REDACTED`, so a secret
/// cannot leak through a log line, an error message or `skidder export config`.
/// The value is only reachable through [`Secret::expose`], which makes every use greppable.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    /// What every printed form of a secret shows.
    pub const REDACTED: &'static str = "REDACTED";

    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the one place that must send it (a TLS key, an HTTP header).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// True when the secret holds no characters.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(Self::REDACTED)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(Self::REDACTED)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(Self::REDACTED)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Secret)
    }
}

/// The values that must never be printed whatever key they landed in: every keystore value
/// the configuration used. [`Redactor::redact`] replaces each of them, and the forms it
/// takes on the wire (percent-encoded in a URL, base64 in a `Basic` or `ApiKey` header), by
/// `REDACTED`. Even a short value is replaced wherever it occurs: mangled text is better
/// than a leaked secret. Its `Debug` shows only how many values it holds.
#[derive(Clone, Default)]
pub struct Redactor {
    /// Longest first, so a value that contains another is replaced whole.
    values: Vec<String>,
}

impl Redactor {
    /// Adds a value and its encoded forms; empty values are ignored (nothing to hide).
    pub fn add(&mut self, value: &str) {
        if value.is_empty() {
            return;
        }
        use base64::Engine as _;
        use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS, NON_ALPHANUMERIC};
        // What the url crate escapes in a URL's userinfo (WHATWG's userinfo set).
        const USERINFO: &AsciiSet = &CONTROLS
            .add(b' ')
            .add(b'"')
            .add(b'#')
            .add(b'<')
            .add(b'>')
            .add(b'?')
            .add(b'`')
            .add(b'{')
            .add(b'}')
            .add(b'/')
            .add(b':')
            .add(b';')
            .add(b'=')
            .add(b'@')
            .add(b'[')
            .add(b'\\')
            .add(b']')
            .add(b'^')
            .add(b'|');
        let forms = [
            value.to_string(),
            utf8_percent_encode(value, NON_ALPHANUMERIC).to_string(),
            utf8_percent_encode(value, USERINFO).to_string(),
            // A query string (`parameters`).
            url::form_urlencoded::byte_serialize(value.as_bytes()).collect(),
            base64::engine::general_purpose::STANDARD.encode(value),
        ];
        for v in forms {
            if !self.values.contains(&v) {
                self.values.push(v);
            }
        }
        self.values.sort_by_key(|v| std::cmp::Reverse(v.len()));
    }

    /// True when there is nothing to redact.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// `text` with every known value replaced by `REDACTED`.
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for v in &self.values {
            if out.contains(v.as_str()) {
                out = out.replace(v.as_str(), Secret::REDACTED);
            }
        }
        out
    }
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Redactor({} forms)", self.values.len())
    }
}

/// `url` with the password of its userinfo replaced by `REDACTED`, scheme, user, host and
/// path kept: `http://elastic:REDACTED@es:9200`. Works on text that is not a valid URL
/// (errors must quote it too): the userinfo is everything before the last `@` of the
/// authority, the user what precedes its first `:`.
pub fn redact_url_password(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (Some(scheme), rest),
        None => (None, url),
    };
    // A password may hold a raw `/`, `?` or `#`: the last `@` ends the userinfo, unless it
    // sits after the path has begun past it.
    let Some(at) = rest.rfind('@') else {
        return url.to_string();
    };
    let Some((user, _password)) = rest[..at].split_once(':') else {
        return url.to_string();
    };
    let mut out = String::with_capacity(url.len());
    if let Some(scheme) = scheme {
        out.push_str(scheme);
        out.push_str("://");
    }
    out.push_str(user);
    out.push(':');
    out.push_str(Secret::REDACTED);
    out.push_str(&rest[at..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_passwords_are_redacted_user_and_host_kept() {
        assert_eq!(
            redact_url_password("http://elastic:p@ss/w?rd@es:9200/x"),
            "http://elastic:REDACTED@es:9200/x"
        );
        assert_eq!(
            redact_url_password("socks5://u:pw@proxy:1080"),
            "socks5://u:REDACTED@proxy:1080"
        );
        assert_eq!(redact_url_password("u:pw@es:9200"), "u:REDACTED@es:9200");
        assert_eq!(redact_url_password("https://es:9200"), "https://es:9200");
        assert_eq!(redact_url_password("https://tok@es"), "https://tok@es");
    }

    #[test]
    fn redactor_hides_plain_percent_and_base64_forms() {
        let mut r = Redactor::default();
        r.add("p@ss word");
        r.add("");
        let text = format!(
            "a p@ss word b {} c {} d {} e {}",
            "p%40ss%20word",
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD, "p@ss word"),
            "p%40ss+word",
            url::Url::parse("socks5://u:p@ss word@h:1")
                .map(|u| u.password().unwrap_or_default().to_string())
                .unwrap_or_default(),
        );
        assert_eq!(
            r.redact(&text),
            "a REDACTED b REDACTED c REDACTED d REDACTED e REDACTED"
        );
        r.add("a-b^c");
        assert_eq!(r.redact("u:a-b%5Ec@h"), "u:REDACTED@h");
        assert!(!format!("{r:?}").contains("p@ss"));
    }

    #[test]
    fn every_printed_form_is_redacted() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s}"), "REDACTED");
        assert_eq!(format!("{s:?}"), "REDACTED");
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"REDACTED\"");
        assert_eq!(s.expose(), "hunter2");
    }
}
