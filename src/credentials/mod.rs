//! The credential layer: TLS material, pinning, secrets and the keystore, shared by every
//! output and by the Lumberjack receiver input.
//!
//! Everything here is validated once from [`crate::config::SslConfig`] into
//! [`TlsSettings`]; consumers then ask a [`TlsSource`] for a rustls config on every connect
//! (or accept), which re-reads certificate and key files when they change.

pub mod es_auth;
pub mod expiry;
pub mod keystore;
pub mod pem;
pub mod pinning;
pub mod reload;
pub mod report;
pub mod secret;
pub mod tls;
pub mod verify;

mod error;

pub use error::{CredentialError, Origin};
pub use es_auth::EsAuth;
pub use keystore::{Keystore, KeystoreCommand, KeystoreError};
pub use reload::TlsSource;
pub use report::{describe_handshake, tls_version_name, HandshakeReport, PeerCertificateInfo};
pub use secret::{Redactor, Secret};
pub use tls::{Alpn, TlsProblem, TlsSettings};
