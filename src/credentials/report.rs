//! A description of a completed TLS handshake, for `skidder test output` and debug logs.

use std::fmt;

use rustls::CommonState;
use time::OffsetDateTime;

use super::expiry::format_time;
use super::pinning::{self, Pin};

/// One certificate the peer presented.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerCertificateInfo {
    /// Subject distinguished name.
    pub subject: String,
    /// Issuer distinguished name.
    pub issuer: String,
    /// Start of validity, RFC 3339.
    pub not_before: String,
    /// End of validity, RFC 3339.
    pub not_after: String,
    /// Lower-case hex SHA-256 of the DER, as `ssl.ca_trusted_fingerprint` takes it.
    pub sha256_hex: String,
    /// Base64 SHA-256, as `ssl.ca_sha256` takes it.
    pub pin: String,
}

/// What a handshake negotiated and what the peer showed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandshakeReport {
    /// e.g. `TLSv1.3`.
    pub version: String,
    /// e.g. `TLS13_AES_256_GCM_SHA384`.
    pub cipher_suite: String,
    /// The negotiated ALPN protocol, if any.
    pub alpn: Option<String>,
    /// The peer's chain, leaf first.
    pub chain: Vec<PeerCertificateInfo>,
    /// The configured `ssl.ca_sha256` pin that matched a presented certificate.
    pub matched_pin: Option<String>,
}

/// Describes a completed handshake of a client or server connection (both deref to
/// [`CommonState`]). `pins` are the configured `ssl.ca_sha256` pins
/// ([`super::TlsSettings::pins`]); only certificates the peer presented are matched here.
pub fn describe_handshake(conn: &CommonState, pins: &[Pin]) -> HandshakeReport {
    let peer = conn.peer_certificates().unwrap_or(&[]);
    let chain = peer
        .iter()
        .map(|der| {
            let pin = Pin::of(der.as_ref());
            match x509_parser::parse_x509_certificate(der.as_ref()) {
                Ok((_, cert)) => {
                    let v = cert.validity();
                    PeerCertificateInfo {
                        subject: cert.subject().to_string(),
                        issuer: cert.issuer().to_string(),
                        not_before: format_time(v.not_before.to_datetime()),
                        not_after: format_time(v.not_after.to_datetime()),
                        sha256_hex: pinning::to_hex(&pinning::sha256(der.as_ref())),
                        pin: pin.text,
                    }
                }
                Err(e) => PeerCertificateInfo {
                    subject: format!("(unparsable certificate: {e})"),
                    issuer: String::new(),
                    not_before: String::new(),
                    not_after: String::new(),
                    sha256_hex: pinning::to_hex(&pinning::sha256(der.as_ref())),
                    pin: pin.text,
                },
            }
        })
        .collect();
    HandshakeReport {
        version: conn
            .protocol_version()
            .map_or_else(|| "(handshake not complete)".to_string(), tls_version_name),
        cipher_suite: conn
            .negotiated_cipher_suite()
            .map(|s| format!("{:?}", s.suite()))
            .unwrap_or_default(),
        alpn: conn
            .alpn_protocol()
            .map(|p| String::from_utf8_lossy(p).into_owned()),
        chain,
        matched_pin: pinning::matching_pin(pins, peer).map(|p| p.text.clone()),
    }
}

/// A TLS version as people and Beats' `supported_protocols` write it: `TLSv1.3`, not
/// rustls' `TLSv1_3`. Every place skidder prints a version goes through here.
pub fn tls_version_name(v: rustls::ProtocolVersion) -> String {
    format!("{v:?}").replace('_', ".")
}

impl fmt::Display for HandshakeReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "TLS version: {}", self.version)?;
        writeln!(f, "cipher suite: {}", self.cipher_suite)?;
        if let Some(alpn) = &self.alpn {
            writeln!(f, "ALPN: {alpn}")?;
        }
        let now = format_time(OffsetDateTime::now_utc());
        for (i, c) in self.chain.iter().enumerate() {
            writeln!(f, "peer certificate {i}: subject {}", c.subject)?;
            writeln!(f, "  issuer {}", c.issuer)?;
            writeln!(f, "  valid {} to {} (now {now})", c.not_before, c.not_after)?;
            writeln!(f, "  sha256 {} (pin {})", c.sha256_hex, c.pin)?;
        }
        match &self.matched_pin {
            Some(pin) => writeln!(f, "pin matched: {pin}"),
            None => writeln!(f, "pin matched: none"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_versions_read_as_people_write_them() {
        assert_eq!(
            tls_version_name(rustls::ProtocolVersion::TLSv1_3),
            "TLSv1.3"
        );
        assert_eq!(
            tls_version_name(rustls::ProtocolVersion::TLSv1_2),
            "TLSv1.2"
        );
    }
}
