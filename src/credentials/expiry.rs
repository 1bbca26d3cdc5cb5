//! Validity of our own certificate: refuse one that is expired or not yet valid, with both
//! dates in the message, and WARN when it expires within `ssl.expiry_warning`.

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tracing::warn;

use super::{CredentialError, Origin};

/// The validity period and subject of a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validity {
    /// The subject distinguished name, e.g. `CN=client`.
    pub subject: String,
    /// The serial number as hex bytes (`01:ab:...`), to tell certificates apart in logs.
    pub serial: String,
    /// Start of validity.
    pub not_before: OffsetDateTime,
    /// End of validity.
    pub not_after: OffsetDateTime,
}

/// RFC 3339 text of a time, as used in every message of this layer.
pub fn format_time(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_else(|_| t.to_string())
}

impl Validity {
    /// Reads subject and validity from a DER certificate.
    ///
    /// # Errors
    /// [`CredentialError::BadMaterial`] when the DER is not an X.509 certificate.
    pub fn of(key: &'static str, origin: &Origin, der: &[u8]) -> Result<Self, CredentialError> {
        let (_, cert) =
            x509_parser::parse_x509_certificate(der).map_err(|e| CredentialError::BadMaterial {
                key,
                origin: origin.clone(),
                reason: format!("not an X.509 certificate: {e}"),
            })?;
        let validity = cert.validity();
        Ok(Self {
            subject: cert.subject().to_string(),
            serial: cert.raw_serial_as_string(),
            not_before: validity.not_before.to_datetime(),
            not_after: validity.not_after.to_datetime(),
        })
    }

    /// Refuses a certificate outside its validity period at `now`.
    ///
    /// # Errors
    /// [`CredentialError::Expired`] or [`CredentialError::NotYetValid`] with both dates.
    pub fn check(
        &self,
        key: &'static str,
        origin: &Origin,
        now: OffsetDateTime,
    ) -> Result<(), CredentialError> {
        if now > self.not_after {
            return Err(CredentialError::Expired {
                key,
                origin: origin.clone(),
                subject: self.subject.clone(),
                not_before: format_time(self.not_before),
                not_after: format_time(self.not_after),
            });
        }
        if now < self.not_before {
            return Err(CredentialError::NotYetValid {
                key,
                origin: origin.clone(),
                subject: self.subject.clone(),
                not_before: format_time(self.not_before),
                not_after: format_time(self.not_after),
            });
        }
        Ok(())
    }

    /// True when the certificate expires within `warning` of `now`.
    pub fn expires_within(&self, now: OffsetDateTime, warning: std::time::Duration) -> bool {
        let left = self.not_after - now;
        left <= time::Duration::try_from(warning).unwrap_or(time::Duration::MAX)
    }

    /// Logs a WARN when the certificate expires within `warning` of `now`.
    pub fn warn_if_expiring(
        &self,
        key: &'static str,
        origin: &Origin,
        now: OffsetDateTime,
        warning: std::time::Duration,
    ) {
        if self.expires_within(now, warning) {
            let days_left = (self.not_after - now).whole_days();
            warn!(
                setting = key,
                origin = %origin,
                subject = %self.subject,
                not_after = %format_time(self.not_after),
                days_left,
                "certificate expires soon; renew it before it is refused"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(not_before: OffsetDateTime, not_after: OffsetDateTime) -> Vec<u8> {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["client".to_string()]).unwrap();
        params.not_before = not_before;
        params.not_after = not_after;
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn expired_certificate_is_refused_with_both_dates() {
        let now = OffsetDateTime::now_utc();
        let der = cert(
            now - time::Duration::days(30),
            now - time::Duration::days(1),
        );
        let v = Validity::of("ssl.certificate", &Origin::Inline, &der).unwrap();
        let err = v
            .check("ssl.certificate", &Origin::Inline, now)
            .unwrap_err();
        let msg = err.to_string();
        assert!(err.is_validity());
        assert!(msg.contains("expired"), "{msg}");
        assert!(msg.contains(&format_time(v.not_before)), "{msg}");
        assert!(msg.contains(&format_time(v.not_after)), "{msg}");
    }

    #[test]
    fn not_yet_valid_certificate_is_refused() {
        let now = OffsetDateTime::now_utc();
        let der = cert(
            now + time::Duration::days(1),
            now + time::Duration::days(30),
        );
        let v = Validity::of("ssl.certificate", &Origin::Inline, &der).unwrap();
        let msg = v
            .check("ssl.certificate", &Origin::Inline, now)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("not valid yet"), "{msg}");
    }

    #[test]
    fn expiry_window() {
        let now = OffsetDateTime::now_utc();
        let der = cert(
            now - time::Duration::days(1),
            now + time::Duration::days(10),
        );
        let v = Validity::of("ssl.certificate", &Origin::Inline, &der).unwrap();
        assert!(v.check("ssl.certificate", &Origin::Inline, now).is_ok());
        assert!(v.expires_within(now, std::time::Duration::from_secs(14 * 86400)));
        assert!(!v.expires_within(now, std::time::Duration::from_secs(7 * 86400)));
    }
}
