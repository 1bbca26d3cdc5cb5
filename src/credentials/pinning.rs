//! Certificate pins (`ssl.ca_sha256`) and the trusted CA fingerprint
//! (`ssl.ca_trusted_fingerprint`), both SHA-256 over a certificate's DER, as Beats computes them.

use base64::Engine as _;
use rustls_pki_types::CertificateDer;

use super::CredentialError;

/// SHA-256 of a certificate's DER encoding.
pub fn sha256(der: &[u8]) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, der);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// Lower-case hex of a digest, as `ssl.ca_trusted_fingerprint` is written.
pub fn to_hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// A `ssl.ca_sha256` pin: base64 (standard alphabet) of a certificate's SHA-256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pin {
    /// The pin as the user wrote it, for reports.
    pub text: String,
    digest: [u8; 32],
}

impl Pin {
    /// Parses one pin.
    ///
    /// # Errors
    /// Not base64, or not 32 bytes once decoded.
    pub fn parse(text: &str) -> Result<Self, CredentialError> {
        let trimmed = text.trim();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(trimmed)
            .map_err(|e| CredentialError::Invalid {
                key: "ssl.ca_sha256",
                reason: format!("pin {trimmed:?} is not base64: {e}"),
            })?;
        let digest: [u8; 32] = bytes
            .try_into()
            .map_err(|b: Vec<u8>| CredentialError::Invalid {
                key: "ssl.ca_sha256",
                reason: format!(
                    "pin {trimmed:?} decodes to {} bytes; a SHA-256 pin has 32",
                    b.len()
                ),
            })?;
        Ok(Self {
            text: trimmed.to_string(),
            digest,
        })
    }

    /// The pin of a certificate, as a user would write it.
    pub fn of(cert: &[u8]) -> Self {
        let digest = sha256(cert);
        Self {
            text: base64::engine::general_purpose::STANDARD.encode(digest),
            digest,
        }
    }

    /// True when `cert` is the pinned certificate.
    pub fn matches(&self, cert: &[u8]) -> bool {
        sha256(cert) == self.digest
    }
}

/// The first pin that matches any of `certs`, in pin order.
pub fn matching_pin<'a>(pins: &'a [Pin], certs: &[CertificateDer<'_>]) -> Option<&'a Pin> {
    pins.iter()
        .find(|pin| certs.iter().any(|c| pin.matches(c.as_ref())))
}

/// Parses `ssl.ca_trusted_fingerprint`: 64 hex digits, colons and case ignored.
///
/// # Errors
/// Anything else.
pub fn parse_fingerprint(text: &str) -> Result<[u8; 32], CredentialError> {
    let cleaned: String = text
        .trim()
        .chars()
        .filter(|c| *c != ':')
        .collect::<String>()
        .to_ascii_lowercase();
    let bad = || CredentialError::Invalid {
        key: "ssl.ca_trusted_fingerprint",
        reason: format!(
            "{:?} is not a SHA-256 fingerprint (64 hex digits, e.g. from \
             `openssl x509 -fingerprint -sha256`)",
            text.trim()
        ),
    };
    if cleaned.len() != 64 || !cleaned.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(bad());
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&cleaned[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pin_round_trips_and_matches() {
        let pin = Pin::of(b"certificate");
        let parsed = Pin::parse(&pin.text).unwrap();
        assert!(parsed.matches(b"certificate"));
        assert!(!parsed.matches(b"other"));
    }

    #[test]
    fn bad_pins_are_config_errors() {
        assert!(Pin::parse("not base64!").unwrap_err().is_config());
        assert!(Pin::parse("AAAA")
            .unwrap_err()
            .to_string()
            .contains("3 bytes"));
    }

    #[test]
    fn fingerprint_accepts_colons_and_case() {
        let hex = to_hex(&sha256(b"ca"));
        let colons: String = hex
            .to_uppercase()
            .as_bytes()
            .chunks(2)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect::<Vec<_>>()
            .join(":");
        assert_eq!(parse_fingerprint(&colons).unwrap(), sha256(b"ca"));
        assert!(parse_fingerprint("abcd").unwrap_err().is_config());
    }
}
