//! Server-certificate verification for `ssl.verification_mode`, `ssl.ca_sha256` pins and
//! `ssl.ca_trusted_fingerprint`, built from rustls' WebPKI functions.
//!
//! | mode          | chain to a trusted CA | host name in SAN | pins checked |
//! |---------------|-----------------------|------------------|--------------|
//! | `full`        | yes                   | yes              | yes          |
//! | `strict`      | yes                   | yes              | yes          |
//! | `certificate` | yes                   | no               | yes          |
//! | `none`        | no (WARN per connect) | no               | yes          |
//!
//! `full` and `strict` behave the same: WebPKI only ever matches names against the subject
//! alternative names (never the common name), which is what `strict` asks for. Pins stay
//! enforced under `none`: a user who pinned a certificate asked for that check explicitly.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{verify_server_cert_signed_by_trust_anchor, verify_server_name};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, WebPkiSupportedAlgorithms};
use rustls::server::ParsedCertificate;
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use tracing::warn;

use super::pinning::{self, Pin};
use crate::config::VerificationMode;

/// Why a peer certificate was refused by a policy rustls does not know about.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// No certificate of the chain matches any `ssl.ca_sha256` pin.
    #[error("ssl.ca_sha256: no certificate in the peer's chain matches any of the {pins} configured pin(s)")]
    PinMismatch {
        /// How many pins were configured.
        pins: usize,
    },
    /// No presented certificate has `ssl.ca_trusted_fingerprint` and the chain does not lead
    /// to another trusted CA either.
    #[error("ssl.ca_trusted_fingerprint: no certificate in the peer's chain has this fingerprint, and the chain does not lead to another trusted CA")]
    FingerprintNotFound,
}

/// rustls prints `OtherError` with `Debug`; `General` keeps our sentence readable in the
/// handshake error the output logs.
fn policy_error(e: PolicyError) -> rustls::Error {
    rustls::Error::General(e.to_string())
}

/// The verifier behind every client config of [`super::TlsSettings`].
#[derive(Debug)]
pub struct PolicyVerifier {
    mode: VerificationMode,
    roots: Arc<RootCertStore>,
    ca_certs: Vec<CertificateDer<'static>>,
    pins: Vec<Pin>,
    trusted_fingerprint: Option<[u8; 32]>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl PolicyVerifier {
    /// A verifier trusting `roots` (whose certificates, if configured explicitly, are
    /// `ca_certs`, used to match pins against the anchor of a chain).
    pub fn new(
        mode: VerificationMode,
        roots: Arc<RootCertStore>,
        ca_certs: Vec<CertificateDer<'static>>,
        pins: Vec<Pin>,
        trusted_fingerprint: Option<[u8; 32]>,
        algorithms: WebPkiSupportedAlgorithms,
    ) -> Self {
        Self {
            mode,
            roots,
            ca_certs,
            pins,
            trusted_fingerprint,
            algorithms,
        }
    }

    /// The presented chain plus the configured CA that issued its last certificate, so a pin
    /// of a root that the server does not send still matches (as Beats checks verified chains).
    fn chain_with_anchor(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
    ) -> Vec<CertificateDer<'static>> {
        let mut chain: Vec<CertificateDer<'static>> = std::iter::once(end_entity)
            .chain(intermediates)
            .map(|c| c.clone().into_owned())
            .collect();
        let issuer = chain.last().and_then(|last| {
            x509_parser::parse_x509_certificate(last.as_ref())
                .ok()
                .map(|(_, c)| c.issuer().as_raw().to_vec())
        });
        if let Some(issuer) = issuer {
            for ca in &self.ca_certs {
                let is_issuer = x509_parser::parse_x509_certificate(ca.as_ref())
                    .map(|(_, c)| c.subject().as_raw() == issuer.as_slice())
                    .unwrap_or(false);
                if is_issuer && !chain.contains(ca) {
                    chain.push(ca.clone());
                }
            }
        }
        chain
    }

    fn check_pins(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
    ) -> Result<(), rustls::Error> {
        if self.pins.is_empty() {
            return Ok(());
        }
        let chain = self.chain_with_anchor(end_entity, intermediates);
        match pinning::matching_pin(&self.pins, &chain) {
            Some(_) => Ok(()),
            None => Err(policy_error(PolicyError::PinMismatch {
                pins: self.pins.len(),
            })),
        }
    }

    /// The trust anchors for this handshake: the configured roots, plus the presented
    /// certificate whose SHA-256 is `ssl.ca_trusted_fingerprint`.
    fn roots_for(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
    ) -> (Arc<RootCertStore>, bool) {
        let Some(fingerprint) = self.trusted_fingerprint else {
            return (self.roots.clone(), true);
        };
        let found = std::iter::once(end_entity)
            .chain(intermediates)
            .find(|c| pinning::sha256(c.as_ref()) == fingerprint);
        match found {
            Some(ca) => {
                let mut roots = (*self.roots).clone();
                // A certificate webpki cannot use as an anchor simply adds no trust.
                let _ = roots.add(ca.clone().into_owned());
                (Arc::new(roots), true)
            }
            None => (self.roots.clone(), false),
        }
    }
}

impl ServerCertVerifier for PolicyVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if self.mode == VerificationMode::None {
            warn!(
                server = %server_name.to_str(),
                "ssl.verification_mode is none: the server certificate is NOT verified; \
                 anyone on the path can read and change this connection"
            );
            self.check_pins(end_entity, intermediates)?;
            return Ok(ServerCertVerified::assertion());
        }
        let parsed = ParsedCertificate::try_from(end_entity)?;
        let (roots, fingerprint_found) = self.roots_for(end_entity, intermediates);
        verify_server_cert_signed_by_trust_anchor(
            &parsed,
            &roots,
            intermediates,
            now,
            self.algorithms.all,
        )
        .map_err(|e| match e {
            rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)
                if !fingerprint_found =>
            {
                policy_error(PolicyError::FingerprintNotFound)
            }
            other => other,
        })?;
        if matches!(self.mode, VerificationMode::Full | VerificationMode::Strict) {
            verify_server_name(&parsed, server_name)?;
        }
        self.check_pins(end_entity, intermediates)?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
