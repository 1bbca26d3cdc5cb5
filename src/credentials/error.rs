//! Errors of the credential layer. No variant ever carries a secret value.

use std::fmt;
use std::path::PathBuf;

/// Where a piece of PEM came from, for error messages: a file path, or inline text in the
/// configuration (whose content is never printed, since it may be a key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// Read from this file.
    File(PathBuf),
    /// Written inline in the configuration.
    Inline,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File(p) => write!(f, "file {}", p.display()),
            Origin::Inline => f.write_str("inline PEM"),
        }
    }
}

/// Why TLS material or a credential could not be used. Each variant names the `ssl.*` (or
/// output) key involved and, for material, where it came from.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CredentialError {
    /// A file named by a setting could not be read.
    #[error("{key}: cannot read {path}: {source}")]
    Read {
        /// The setting, e.g. `ssl.certificate`.
        key: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The PEM (or DER inside it) is not what the setting needs.
    #[error("{key}: {origin}: {reason}")]
    BadMaterial {
        /// The setting.
        key: &'static str,
        /// Where the PEM came from.
        origin: Origin,
        /// What is wrong.
        reason: String,
    },
    /// The key is encrypted and no passphrase was configured.
    #[error(
        "{key}: {origin}: the key is encrypted; set ssl.key_passphrase or ssl.key_passphrase_path"
    )]
    PassphraseMissing {
        /// The setting.
        key: &'static str,
        /// Where the key came from.
        origin: Origin,
    },
    /// The passphrase did not decrypt the key.
    #[error("{key}: {origin}: cannot decrypt the key: wrong passphrase or unsupported encryption ({reason})")]
    Decrypt {
        /// The setting.
        key: &'static str,
        /// Where the key came from.
        origin: Origin,
        /// The decryption library's reason (never the passphrase).
        reason: String,
    },
    /// The private key is not the one the certificate was issued for.
    #[error("{key}: the key in {key_origin} does not match the certificate in {certificate_origin} (ssl.certificate); use the key the certificate was issued for")]
    KeyMismatch {
        /// The setting (`ssl.key`).
        key: &'static str,
        /// Where the key came from.
        key_origin: Origin,
        /// Where the certificate came from.
        certificate_origin: Origin,
    },
    /// A setting has a value that cannot work, or settings contradict each other.
    #[error("{key}: {reason}")]
    Invalid {
        /// The setting (or settings).
        key: &'static str,
        /// What is wrong and what is accepted.
        reason: String,
    },
    /// Our own certificate is past its `notAfter`.
    #[error("{key}: {origin}: certificate {subject} expired at {not_after} (valid from {not_before} to {not_after}); renew it")]
    Expired {
        /// The setting.
        key: &'static str,
        /// Where the certificate came from.
        origin: Origin,
        /// The certificate's subject.
        subject: String,
        /// Start of validity, RFC 3339.
        not_before: String,
        /// End of validity, RFC 3339.
        not_after: String,
    },
    /// Our own certificate is before its `notBefore` (or the clock is wrong).
    #[error("{key}: {origin}: certificate {subject} is not valid yet (valid from {not_before} to {not_after}); check the clock")]
    NotYetValid {
        /// The setting.
        key: &'static str,
        /// Where the certificate came from.
        origin: Origin,
        /// The certificate's subject.
        subject: String,
        /// Start of validity, RFC 3339.
        not_before: String,
        /// End of validity, RFC 3339.
        not_after: String,
    },
    /// rustls refused to build a configuration from otherwise readable material
    /// (e.g. the key does not match the certificate).
    #[error("{context}: {source}")]
    Rustls {
        /// What was being built.
        context: &'static str,
        /// rustls' reason.
        source: rustls::Error,
    },
    /// The peer (an Elasticsearch cluster) refused a credential with 401/403.
    #[error("{credential} refused by {host} with HTTP {status}{}; check it (not retried until the backoff expires)", in_parens(.reason))]
    Refused {
        /// Which credential: `api_key`, `username elastic`, or `no credentials`.
        credential: String,
        /// The host that refused it.
        host: String,
        /// 401 or 403.
        status: u16,
        /// Elasticsearch's reason ("API key: api key is expired"), or empty.
        reason: String,
    },
}

impl CredentialError {
    /// The setting the error is about (`ssl.key`), as its `Display` starts with; for a
    /// refused credential, the credential.
    pub fn key(&self) -> &str {
        match self {
            CredentialError::Read { key, .. }
            | CredentialError::BadMaterial { key, .. }
            | CredentialError::PassphraseMissing { key, .. }
            | CredentialError::Decrypt { key, .. }
            | CredentialError::KeyMismatch { key, .. }
            | CredentialError::Invalid { key, .. }
            | CredentialError::Expired { key, .. }
            | CredentialError::NotYetValid { key, .. } => key,
            CredentialError::Rustls { context, .. } => context,
            CredentialError::Refused { credential, .. } => credential,
        }
    }

    /// True for a bad or contradictory setting, found without touching any file: fixing the
    /// configuration is the only cure.
    pub fn is_config(&self) -> bool {
        matches!(self, CredentialError::Invalid { .. })
    }

    /// True when our own certificate is outside its validity period.
    pub fn is_validity(&self) -> bool {
        matches!(
            self,
            CredentialError::Expired { .. } | CredentialError::NotYetValid { .. }
        )
    }

    /// True when the peer refused a credential (HTTP 401/403).
    pub fn is_refused(&self) -> bool {
        matches!(self, CredentialError::Refused { .. })
    }
}

/// ` (text)`, or nothing for an empty text.
fn in_parens(text: &str) -> String {
    if text.is_empty() {
        String::new()
    } else {
        format!(" ({text})")
    }
}
