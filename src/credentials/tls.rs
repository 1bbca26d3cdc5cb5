//! [`TlsSettings`]: `ssl.*` validated once, and the rustls client and server configurations
//! built from it with the ring provider (explicitly, never the process-wide default).

use std::path::PathBuf;
use std::sync::Arc;

use rustls::crypto::{CryptoProvider, SupportedKxGroup};
use rustls::server::WebPkiClientVerifier;
use rustls::sign::CertifiedKey;
use rustls::{
    CipherSuite, ClientConfig, InconsistentKeys, NamedGroup, RootCertStore, ServerConfig,
    SupportedCipherSuite, SupportedProtocolVersion,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use time::OffsetDateTime;
use tracing::warn;

use super::expiry::Validity;
use super::pinning::{self, Pin};
use super::verify::PolicyVerifier;
use super::{pem, CredentialError, Origin, Secret};
use crate::config::{ClientAuthentication, SslConfig, VerificationMode};

/// Application protocol offered in the TLS handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alpn {
    /// No ALPN (Lumberjack: Logstash's beats input does not negotiate one).
    None,
    /// `http/1.1` (Elasticsearch).
    Http11,
}

/// Beats' cipher suite names and the rustls suites they mean. The misspelt
/// `ECDHE-RSA-CHACHA20-POLY1205` is Beats' own name and is accepted as such.
const CIPHER_NAMES: &[(&str, CipherSuite)] = &[
    (
        "ECDHE-ECDSA-AES-128-GCM-SHA256",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    ),
    (
        "ECDHE-ECDSA-AES-256-GCM-SHA384",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    ),
    (
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
    (
        "ECDHE-RSA-AES-128-GCM-SHA256",
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    ),
    (
        "ECDHE-RSA-AES-256-GCM-SHA384",
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    ),
    (
        "ECDHE-RSA-CHACHA20-POLY1305",
        CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
    (
        "ECDHE-RSA-CHACHA20-POLY1205",
        CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
    (
        "TLS-AES-128-GCM-SHA256",
        CipherSuite::TLS13_AES_128_GCM_SHA256,
    ),
    (
        "TLS-AES-256-GCM-SHA384",
        CipherSuite::TLS13_AES_256_GCM_SHA384,
    ),
    (
        "TLS-CHACHA20-POLY1305-SHA256",
        CipherSuite::TLS13_CHACHA20_POLY1305_SHA256,
    ),
];

/// Beats names of suites rustls does not implement (CBC, RC4, 3DES, static RSA).
const UNSUPPORTED_CIPHERS: &[&str] = &[
    "RSA-RC4-128-SHA",
    "RSA-3DES-CBC3-SHA",
    "RSA-AES-128-CBC-SHA",
    "RSA-AES-256-CBC-SHA",
    "RSA-AES-128-CBC-SHA256",
    "RSA-AES-128-GCM-SHA256",
    "RSA-AES-256-GCM-SHA384",
    "ECDHE-ECDSA-RC4-128-SHA",
    "ECDHE-ECDSA-AES-128-CBC-SHA",
    "ECDHE-ECDSA-AES-256-CBC-SHA",
    "ECDHE-ECDSA-AES-128-CBC-SHA256",
    "ECDHE-RSA-RC4-128-SHA",
    "ECDHE-RSA-3DES-CBC3-SHA",
    "ECDHE-RSA-AES-128-CBC-SHA",
    "ECDHE-RSA-AES-256-CBC-SHA",
    "ECDHE-RSA-AES-128-CBC-SHA256",
];

/// `ssl.curve_types` names and the key exchange groups they mean.
const CURVE_NAMES: &[(&str, NamedGroup)] = &[
    ("P-256", NamedGroup::secp256r1),
    ("P-384", NamedGroup::secp384r1),
    ("X25519", NamedGroup::X25519),
];

fn valid_cipher_names() -> String {
    CIPHER_NAMES
        .iter()
        .map(|(n, _)| *n)
        .filter(|n| *n != "ECDHE-RSA-CHACHA20-POLY1205")
        .collect::<Vec<_>>()
        .join(", ")
}

/// True for the protocol names Beats accepts and skidder drops (with a WARN at start):
/// Elastic's own reference list is `[TLSv1.1, TLSv1.2, TLSv1.3]`.
pub fn is_legacy_protocol(name: &str) -> bool {
    matches!(name.trim(), "SSLv3" | "TLSv1" | "TLSv1.0" | "TLSv1.1")
}

fn parse_protocols(
    names: &[String],
) -> Result<Vec<&'static SupportedProtocolVersion>, CredentialError> {
    if names.is_empty() {
        return Ok(vec![&rustls::version::TLS13, &rustls::version::TLS12]);
    }
    let mut out: Vec<&'static SupportedProtocolVersion> = Vec::new();
    for name in names {
        let version = match name.trim() {
            "TLSv1.2" => &rustls::version::TLS12,
            "TLSv1.3" => &rustls::version::TLS13,
            old if is_legacy_protocol(old) => continue,
            other => {
                return Err(CredentialError::Invalid {
                    key: "ssl.supported_protocols",
                    reason: format!("unknown protocol {other:?}; valid values: TLSv1.2, TLSv1.3"),
                })
            }
        };
        if !out.iter().any(|v| v.version == version.version) {
            out.push(version);
        }
    }
    if out.is_empty() {
        return Err(CredentialError::Invalid {
            key: "ssl.supported_protocols",
            reason: format!(
                "{} only: not supported (insecure); use TLSv1.2 and/or TLSv1.3",
                names.join(", ")
            ),
        });
    }
    Ok(out)
}

fn parse_cipher_suites(
    names: &[String],
    provider: &CryptoProvider,
) -> Result<Vec<SupportedCipherSuite>, CredentialError> {
    let mut out: Vec<SupportedCipherSuite> = Vec::new();
    for name in names {
        let wanted = name.trim();
        let suite = CIPHER_NAMES
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(wanted))
            .map(|(_, s)| *s)
            .or_else(|| {
                // IANA names (TLS_ECDHE_RSA_WITH_...) are accepted too.
                provider
                    .cipher_suites
                    .iter()
                    .map(|s| s.suite())
                    .find(|s| s.as_str().is_some_and(|n| n.eq_ignore_ascii_case(wanted)))
            });
        let Some(suite) = suite else {
            let reason = if UNSUPPORTED_CIPHERS
                .iter()
                .any(|n| n.eq_ignore_ascii_case(wanted))
            {
                format!(
                    "{wanted} is not supported (rustls implements only forward-secret AEAD suites); \
                     valid values: {}",
                    valid_cipher_names()
                )
            } else {
                format!(
                    "unknown cipher suite {wanted:?}; valid values: {}",
                    valid_cipher_names()
                )
            };
            return Err(CredentialError::Invalid {
                key: "ssl.cipher_suites",
                reason,
            });
        };
        let Some(supported) = provider.cipher_suites.iter().find(|s| s.suite() == suite) else {
            return Err(CredentialError::Invalid {
                key: "ssl.cipher_suites",
                reason: format!("{wanted} is not available in the ring provider"),
            });
        };
        if !out.iter().any(|s| s.suite() == suite) {
            out.push(*supported);
        }
    }
    Ok(out)
}

fn parse_curves(
    names: &[String],
    provider: &CryptoProvider,
) -> Result<Vec<&'static dyn SupportedKxGroup>, CredentialError> {
    let valid = || {
        CURVE_NAMES
            .iter()
            .map(|(n, _)| *n)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut out: Vec<&'static dyn SupportedKxGroup> = Vec::new();
    for name in names {
        let wanted = name.trim();
        let Some((_, group)) = CURVE_NAMES
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(wanted))
        else {
            let reason = if wanted.eq_ignore_ascii_case("P-521") {
                format!(
                    "P-521 is not supported by the ring provider; valid values: {}",
                    valid()
                )
            } else {
                format!("unknown curve {wanted:?}; valid values: {}", valid())
            };
            return Err(CredentialError::Invalid {
                key: "ssl.curve_types",
                reason,
            });
        };
        if let Some(kx) = provider.kx_groups.iter().find(|g| g.name() == *group) {
            if !out.iter().any(|g| g.name() == *group) {
                out.push(*kx);
            }
        }
    }
    Ok(out)
}

/// One problem of an `ssl` section, with the key it is about relative to the section's
/// parent (`ssl.certificate_authorities.1`), so the configuration layer can say where it
/// was written.
#[derive(Debug)]
pub struct TlsProblem {
    /// The key path, e.g. `ssl.key` or `ssl.certificate_authorities.0`.
    pub key: String,
    /// What is wrong.
    pub error: CredentialError,
}

impl TlsProblem {
    fn of(error: CredentialError) -> Self {
        // rustls' errors name two settings (`ssl.certificate/ssl.key`); the first locates it.
        let key = error
            .key()
            .split('/')
            .next()
            .unwrap_or_default()
            .to_string();
        Self { key, error }
    }

    /// The problem without its key, for a line that names the key itself.
    pub fn message(&self) -> String {
        let text = self.error.to_string();
        match text.strip_prefix(self.error.key()) {
            Some(rest) => rest.trim_start_matches(": ").to_string(),
            None => text,
        }
    }
}

/// Certificates and key read from the files (or inline PEM) of a [`TlsSettings`].
#[derive(Debug)]
pub struct TlsMaterial {
    /// `ssl.certificate_authorities`, empty when the system roots are meant.
    pub ca_certs: Vec<CertificateDer<'static>>,
    /// Our certificate chain and where it came from.
    pub chain: Option<(Origin, Vec<CertificateDer<'static>>)>,
    /// Our private key.
    pub key: Option<PrivateKeyDer<'static>>,
    /// Validity of our certificate (the first of the chain).
    pub validity: Option<Validity>,
}

/// `ssl.*` after validation: everything that can be checked without reading files has been.
/// Build it once per output or input, then ask it (or a [`super::TlsSource`]) for configs.
#[derive(Debug, Clone)]
pub struct TlsSettings {
    enabled: bool,
    certificate_authorities: Vec<String>,
    certificate: Option<String>,
    key: Option<Secret>,
    key_passphrase: Option<Secret>,
    key_passphrase_path: Option<PathBuf>,
    verification_mode: VerificationMode,
    versions: Vec<&'static SupportedProtocolVersion>,
    cipher_suites: Vec<SupportedCipherSuite>,
    kx_groups: Vec<&'static dyn SupportedKxGroup>,
    trusted_fingerprint: Option<[u8; 32]>,
    pins: Vec<Pin>,
    server_name: Option<ServerName<'static>>,
    expiry_warning: std::time::Duration,
    client_authentication: Option<ClientAuthentication>,
}

impl TlsSettings {
    /// Validates `ssl.*`. TLS is on when `ssl.enabled` says so or, when it is unset, when any
    /// other `ssl.*` key is set (as Beats). `verification_mode: none` is warned about by the
    /// application when it starts, naming the full key.
    ///
    /// # Errors
    /// The first [`CredentialError::Invalid`] (see [`Self::problems`] for all of them)
    /// naming the key: TLSv1.0/1.1 or an unknown protocol, an unknown cipher or curve
    /// (listing the valid ones), a malformed pin or fingerprint, a certificate without key
    /// (or the reverse), both passphrase settings, or `client_authentication` contradicting
    /// `certificate_authorities`.
    pub fn from_config(cfg: &SslConfig) -> Result<Self, CredentialError> {
        let (settings, problems) = Self::validate(cfg);
        match problems.into_iter().next() {
            Some(first) => Err(first.error),
            None => Ok(settings),
        }
    }

    /// Every problem of one `ssl` section at once: its settings and, when TLS is on, its
    /// material (each CA, our certificate and its validity, the key and its passphrase, and
    /// whether key and certificate belong together). A TLS listener (`server`) also needs a
    /// certificate and key. Nothing is logged.
    pub fn problems(cfg: &SslConfig, server: bool) -> Vec<TlsProblem> {
        let (settings, mut problems) = Self::validate(cfg);
        if !settings.enabled {
            return problems;
        }
        match settings.read_material(false) {
            Err(more) => problems.extend(more),
            Ok(material) => {
                if server {
                    if let Err(e) = settings.server_config_with(&material) {
                        problems.push(TlsProblem::of(e));
                    }
                }
            }
        }
        problems
    }

    /// The settings (with safe fallbacks where a value was refused) and every problem found.
    fn validate(cfg: &SslConfig) -> (Self, Vec<TlsProblem>) {
        let mut problems = Vec::new();
        let mut keep = |e: CredentialError| problems.push(TlsProblem::of(e));
        let base = rustls::crypto::ring::default_provider();
        let versions = parse_protocols(&cfg.supported_protocols).unwrap_or_else(|e| {
            keep(e);
            vec![&rustls::version::TLS13, &rustls::version::TLS12]
        });
        let cipher_suites = parse_cipher_suites(&cfg.cipher_suites, &base).unwrap_or_else(|e| {
            keep(e);
            Vec::new()
        });
        let kx_groups = parse_curves(&cfg.curve_types, &base).unwrap_or_else(|e| {
            keep(e);
            Vec::new()
        });
        if !cipher_suites.is_empty()
            && !cipher_suites
                .iter()
                .any(|s| versions.iter().any(|v| v.version == s.version().version))
        {
            keep(CredentialError::Invalid {
                key: "ssl.cipher_suites",
                reason: "none of the listed suites can be used with ssl.supported_protocols \
                         (TLS-* suites are TLSv1.3 only, ECDHE-* suites TLSv1.2 only)"
                    .to_string(),
            });
        }
        let mut pins = Vec::new();
        for p in &cfg.ca_sha256 {
            match Pin::parse(p) {
                Ok(pin) => pins.push(pin),
                Err(e) => keep(e),
            }
        }
        let trusted_fingerprint = cfg
            .ca_trusted_fingerprint
            .as_deref()
            .map(pinning::parse_fingerprint)
            .transpose()
            .unwrap_or_else(|e| {
                keep(e);
                None
            });
        let server_name = cfg
            .server_name
            .as_deref()
            .map(|n| {
                ServerName::try_from(n.trim().to_string()).map_err(|e| CredentialError::Invalid {
                    key: "ssl.server_name",
                    reason: format!("{n:?} is not a DNS name or IP address: {e}"),
                })
            })
            .transpose()
            .unwrap_or_else(|e| {
                keep(e);
                None
            });
        match (&cfg.certificate, &cfg.key) {
            (Some(_), None) => keep(CredentialError::Invalid {
                key: "ssl.key",
                reason: "ssl.certificate is set but ssl.key is not".to_string(),
            }),
            (None, Some(_)) => keep(CredentialError::Invalid {
                key: "ssl.certificate",
                reason: "ssl.key is set but ssl.certificate is not".to_string(),
            }),
            _ => {}
        }
        if cfg.key_passphrase.is_some() && cfg.key_passphrase_path.is_some() {
            keep(CredentialError::Invalid {
                key: "ssl.key_passphrase",
                reason: "set either ssl.key_passphrase or ssl.key_passphrase_path, not both"
                    .to_string(),
            });
        }
        let has_cas = !cfg.certificate_authorities.is_empty();
        match (cfg.client_authentication, has_cas) {
            (
                Some(mode @ (ClientAuthentication::Optional | ClientAuthentication::Required)),
                false,
            ) => keep(CredentialError::Invalid {
                key: "ssl.client_authentication",
                reason: format!(
                    "{} needs ssl.certificate_authorities to check client certificates against",
                    if mode == ClientAuthentication::Optional {
                        "optional"
                    } else {
                        "required"
                    }
                ),
            }),
            (Some(ClientAuthentication::None), true) => keep(CredentialError::Invalid {
                key: "ssl.client_authentication",
                reason: "none contradicts ssl.certificate_authorities (which would only be \
                         used to check client certificates); remove one of them"
                    .to_string(),
            }),
            _ => {}
        }
        let any_set = has_cas
            || cfg.certificate.is_some()
            || cfg.key.is_some()
            || cfg.verification_mode != VerificationMode::Full
            || !cfg.supported_protocols.is_empty()
            || !cfg.cipher_suites.is_empty()
            || !cfg.curve_types.is_empty()
            || cfg.ca_trusted_fingerprint.is_some()
            || !cfg.ca_sha256.is_empty()
            || cfg.server_name.is_some()
            || cfg.client_authentication.is_some();
        let settings = Self {
            enabled: cfg.enabled.unwrap_or(any_set),
            certificate_authorities: cfg.certificate_authorities.clone(),
            certificate: cfg.certificate.clone(),
            key: cfg.key.clone(),
            key_passphrase: cfg.key_passphrase.clone(),
            key_passphrase_path: cfg.key_passphrase_path.clone(),
            verification_mode: cfg.verification_mode,
            versions,
            cipher_suites,
            kx_groups,
            trusted_fingerprint,
            pins,
            server_name,
            expiry_warning: cfg.expiry_warning.get(),
            client_authentication: cfg.client_authentication,
        };
        (settings, problems)
    }

    /// True when TLS is to be used at all.
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// `ssl.verification_mode`.
    pub fn verification_mode(&self) -> VerificationMode {
        self.verification_mode
    }

    /// `ssl.ca_sha256`, parsed.
    pub fn pins(&self) -> &[Pin] {
        &self.pins
    }

    /// `ssl.expiry_warning`.
    pub fn expiry_warning(&self) -> std::time::Duration {
        self.expiry_warning
    }

    /// The client-certificate policy of a server built from these settings: explicit, or
    /// `required` when CAs are set and `none` otherwise (Logstash's rule).
    pub fn client_authentication(&self) -> ClientAuthentication {
        self.client_authentication
            .unwrap_or(if self.certificate_authorities.is_empty() {
                ClientAuthentication::None
            } else {
                ClientAuthentication::Required
            })
    }

    /// The name to verify and send as SNI when connecting to `host` (a name or IP, without
    /// port): `ssl.server_name` when set.
    ///
    /// # Errors
    /// `host` is neither a DNS name nor an IP address.
    pub fn server_name(&self, host: &str) -> Result<ServerName<'static>, CredentialError> {
        if let Some(name) = &self.server_name {
            return Ok(name.clone());
        }
        let trimmed = host.trim().trim_start_matches('[').trim_end_matches(']');
        ServerName::try_from(trimmed.to_string()).map_err(|e| CredentialError::Invalid {
            key: "hosts",
            reason: format!("{host:?} is not a DNS name or IP address usable for TLS: {e}"),
        })
    }

    /// Files whose change means the material must be re-read, each with its setting.
    pub fn watched_files(&self) -> Vec<(&'static str, PathBuf)> {
        let mut files: Vec<(&'static str, PathBuf)> = self
            .certificate_authorities
            .iter()
            .filter_map(|v| pem::file_of(v).map(|p| ("ssl.certificate_authorities", p)))
            .collect();
        if let Some(p) = self.certificate.as_deref().and_then(pem::file_of) {
            files.push(("ssl.certificate", p));
        }
        if let Some(p) = self.key.as_ref().and_then(|k| pem::file_of(k.expose())) {
            files.push(("ssl.key", p));
        }
        if let Some(p) = &self.key_passphrase_path {
            files.push(("ssl.key_passphrase_path", p.clone()));
        }
        files
    }

    /// Reads CAs, our certificate and key now, refusing our certificate when it is expired
    /// or not yet valid or when the key is not the certificate's, and warning when it
    /// expires within `ssl.expiry_warning`.
    ///
    /// # Errors
    /// The first problem: an unreadable or invalid file, a wrong passphrase, our
    /// certificate's validity, or a key that does not match the certificate.
    pub fn load_material(&self) -> Result<TlsMaterial, CredentialError> {
        self.read_material(true).map_err(|problems| {
            problems
                .into_iter()
                .next()
                .map(|p| p.error)
                .unwrap_or_else(|| CredentialError::Invalid {
                    key: "ssl",
                    reason: "the TLS material cannot be used".to_string(),
                })
        })
    }

    /// Reads every piece of material, each independently of the others, so one run can
    /// report all of their problems; `warn` logs a certificate that expires soon.
    fn read_material(&self, warn: bool) -> Result<TlsMaterial, Vec<TlsProblem>> {
        let mut problems = Vec::new();
        let mut ca_certs = Vec::new();
        for (i, value) in self.certificate_authorities.iter().enumerate() {
            match pem::load_certificates("ssl.certificate_authorities", value) {
                Ok((_, certs)) => ca_certs.extend(certs),
                Err(error) => problems.push(TlsProblem {
                    key: format!("ssl.certificate_authorities.{i}"),
                    error,
                }),
            }
        }
        let mut validity = None;
        let chain = match self
            .certificate
            .as_deref()
            .map(|c| pem::load_certificates("ssl.certificate", c))
            .transpose()
        {
            Ok(chain) => chain,
            Err(e) => {
                problems.push(TlsProblem::of(e));
                None
            }
        };
        if let Some((origin, certs)) = &chain {
            // `load_certificates` refuses a value without any certificate.
            if let Some(leaf) = certs.first() {
                let checked =
                    Validity::of("ssl.certificate", origin, leaf.as_ref()).and_then(|v| {
                        let now = OffsetDateTime::now_utc();
                        v.check("ssl.certificate", origin, now)?;
                        if warn {
                            v.warn_if_expiring("ssl.certificate", origin, now, self.expiry_warning);
                        }
                        Ok(v)
                    });
                match checked {
                    Ok(v) => validity = Some(v),
                    Err(e) => problems.push(TlsProblem::of(e)),
                }
            }
        }
        let key = match &self.key {
            Some(k) => pem::load_passphrase(
                self.key_passphrase.as_ref(),
                self.key_passphrase_path.as_deref(),
            )
            .and_then(|passphrase| pem::load_private_key(k, passphrase.as_ref()))
            .map_err(|e| problems.push(TlsProblem::of(e)))
            .ok(),
            None => None,
        };
        if let (Some((cert_origin, certs)), Some((key_origin, key))) = (&chain, &key) {
            if let Err(e) = self.check_key_matches(certs, cert_origin, key, key_origin) {
                problems.push(TlsProblem::of(e));
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(TlsMaterial {
            ca_certs,
            chain,
            key: key.map(|(_, k)| k),
            validity,
        })
    }

    /// Refuses a key that is not the one the certificate was issued for, naming both files:
    /// rustls would otherwise only say `KeyMismatch` when the config is built.
    fn check_key_matches(
        &self,
        certs: &[CertificateDer<'static>],
        cert_origin: &Origin,
        key: &PrivateKeyDer<'static>,
        key_origin: &Origin,
    ) -> Result<(), CredentialError> {
        match CertifiedKey::from_der(certs.to_vec(), key.clone_key(), &self.provider()) {
            Ok(_) => Ok(()),
            Err(rustls::Error::InconsistentKeys(InconsistentKeys::KeyMismatch)) => {
                Err(CredentialError::KeyMismatch {
                    key: "ssl.key",
                    key_origin: key_origin.clone(),
                    certificate_origin: cert_origin.clone(),
                })
            }
            Err(e) => Err(CredentialError::BadMaterial {
                key: "ssl.key",
                origin: key_origin.clone(),
                reason: format!("the key cannot be used for TLS: {e}"),
            }),
        }
    }

    /// The ring provider narrowed to `ssl.cipher_suites` and `ssl.curve_types`.
    pub fn provider(&self) -> Arc<CryptoProvider> {
        let mut provider = rustls::crypto::ring::default_provider();
        if !self.cipher_suites.is_empty() {
            provider.cipher_suites = self.cipher_suites.clone();
        }
        if !self.kx_groups.is_empty() {
            provider.kx_groups = self.kx_groups.clone();
        }
        Arc::new(provider)
    }

    fn root_store(
        &self,
        ca_certs: &[CertificateDer<'static>],
    ) -> Result<RootCertStore, CredentialError> {
        let mut roots = RootCertStore::empty();
        if !ca_certs.is_empty() {
            for cert in ca_certs {
                roots
                    .add(cert.clone())
                    .map_err(|e| CredentialError::Invalid {
                        key: "ssl.certificate_authorities",
                        reason: format!("a certificate cannot be used as a trust anchor: {e}"),
                    })?;
            }
            return Ok(roots);
        }
        if self.verification_mode == VerificationMode::None {
            return Ok(roots);
        }
        let native = rustls_native_certs::load_native_certs();
        for error in &native.errors {
            warn!(error = %error, "cannot read part of the system trust store");
        }
        let (added, ignored) = roots.add_parsable_certificates(native.certs);
        if added == 0 && self.trusted_fingerprint.is_none() {
            warn!(
                ignored,
                "no ssl.certificate_authorities and no usable system root certificates; \
                 every server certificate will be refused"
            );
        }
        Ok(roots)
    }

    /// A client config from already loaded material (see [`Self::load_material`]).
    ///
    /// # Errors
    /// Invalid CA certificates, or rustls refusing the key (e.g. it does not match the certificate).
    pub fn client_config_with(
        &self,
        material: &TlsMaterial,
        alpn: Alpn,
    ) -> Result<Arc<ClientConfig>, CredentialError> {
        let provider = self.provider();
        let roots = Arc::new(self.root_store(&material.ca_certs)?);
        let verifier = Arc::new(PolicyVerifier::new(
            self.verification_mode,
            roots,
            material.ca_certs.clone(),
            self.pins.clone(),
            self.trusted_fingerprint,
            provider.signature_verification_algorithms,
        ));
        let builder = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&self.versions)
            .map_err(|source| CredentialError::Rustls {
                context: "ssl.supported_protocols/ssl.cipher_suites",
                source,
            })?
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let mut config = match (&material.chain, &material.key) {
            (Some((_, chain)), Some(key)) => builder
                .with_client_auth_cert(chain.clone(), key.clone_key())
                .map_err(|source| CredentialError::Rustls {
                    context: "ssl.certificate/ssl.key",
                    source,
                })?,
            _ => builder.with_no_client_auth(),
        };
        config.alpn_protocols = match alpn {
            Alpn::None => Vec::new(),
            Alpn::Http11 => vec![b"http/1.1".to_vec()],
        };
        Ok(Arc::new(config))
    }

    /// A server config (the receiver input) from already loaded material.
    ///
    /// # Errors
    /// No certificate or key, invalid CAs, or rustls refusing the key.
    pub fn server_config_with(
        &self,
        material: &TlsMaterial,
    ) -> Result<Arc<ServerConfig>, CredentialError> {
        let (Some((_, chain)), Some(key)) = (&material.chain, &material.key) else {
            return Err(CredentialError::Invalid {
                key: "ssl.certificate",
                reason: "a TLS listener needs ssl.certificate and ssl.key".to_string(),
            });
        };
        let provider = self.provider();
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&self.versions)
            .map_err(|source| CredentialError::Rustls {
                context: "ssl.supported_protocols/ssl.cipher_suites",
                source,
            })?;
        let client_auth = self.client_authentication();
        let verifier = if client_auth == ClientAuthentication::None {
            WebPkiClientVerifier::no_client_auth()
        } else {
            let roots = Arc::new(self.root_store(&material.ca_certs)?);
            let b = WebPkiClientVerifier::builder_with_provider(roots, provider);
            let b = if client_auth == ClientAuthentication::Optional {
                b.allow_unauthenticated()
            } else {
                b
            };
            b.build().map_err(|e| CredentialError::Invalid {
                key: "ssl.certificate_authorities",
                reason: format!("cannot check client certificates with these CAs: {e}"),
            })?
        };
        let config = builder
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain.clone(), key.clone_key())
            .map_err(|source| CredentialError::Rustls {
                context: "ssl.certificate/ssl.key",
                source,
            })?;
        Ok(Arc::new(config))
    }

    /// Reads the material and builds a client config, once. For long-running use prefer
    /// [`super::TlsSource`], which re-reads changed files.
    ///
    /// # Errors
    /// As [`Self::load_material`] and [`Self::client_config_with`].
    pub fn client_config(&self, alpn: Alpn) -> Result<Arc<ClientConfig>, CredentialError> {
        self.client_config_with(&self.load_material()?, alpn)
    }

    /// Reads the material and builds a server config, once.
    ///
    /// # Errors
    /// As [`Self::load_material`] and [`Self::server_config_with`].
    pub fn server_config(&self) -> Result<Arc<ServerConfig>, CredentialError> {
        self.server_config_with(&self.load_material()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> SslConfig {
        SslConfig::default()
    }

    #[test]
    fn old_protocols_are_refused_as_insecure() {
        for old in ["TLSv1.1", "TLSv1.0", "TLSv1", "SSLv3"] {
            let mut c = cfg();
            c.supported_protocols = vec![old.to_string()];
            let err = TlsSettings::from_config(&c).unwrap_err();
            let msg = err.to_string();
            assert!(err.is_config());
            assert!(msg.contains("ssl.supported_protocols"), "{msg}");
            assert!(msg.contains("not supported (insecure)"), "{msg}");
        }
        let mut c = cfg();
        c.supported_protocols = vec!["TLSv9".to_string()];
        let msg = TlsSettings::from_config(&c).unwrap_err().to_string();
        assert!(msg.contains("TLSv1.2, TLSv1.3"), "{msg}");
    }

    #[test]
    fn unknown_cipher_lists_valid_names() {
        let mut c = cfg();
        c.cipher_suites = vec!["FOO-BAR".to_string()];
        let msg = TlsSettings::from_config(&c).unwrap_err().to_string();
        assert!(msg.contains("ssl.cipher_suites"), "{msg}");
        assert!(msg.contains("ECDHE-RSA-AES-128-GCM-SHA256"), "{msg}");
        c.cipher_suites = vec!["ECDHE-RSA-AES-128-CBC-SHA".to_string()];
        let msg = TlsSettings::from_config(&c).unwrap_err().to_string();
        assert!(msg.contains("not supported"), "{msg}");
    }

    #[test]
    fn beats_cipher_and_curve_names_narrow_the_provider() {
        let mut c = cfg();
        c.cipher_suites = vec![
            "ECDHE-RSA-AES-256-GCM-SHA384".to_string(),
            "TLS-AES-128-GCM-SHA256".to_string(),
            "ECDHE-RSA-CHACHA20-POLY1205".to_string(),
        ];
        c.curve_types = vec!["X25519".to_string(), "P-256".to_string()];
        let s = TlsSettings::from_config(&c).unwrap();
        let p = s.provider();
        assert_eq!(p.cipher_suites.len(), 3);
        assert_eq!(p.kx_groups.len(), 2);
        c.curve_types = vec!["P-521".to_string()];
        assert!(TlsSettings::from_config(&c).unwrap_err().is_config());

        // TLSv1.2 suites with both versions enabled still build a config.
        let mut c = cfg();
        c.cipher_suites = vec!["ECDHE-RSA-AES-128-GCM-SHA256".to_string()];
        c.verification_mode = VerificationMode::None;
        let s = TlsSettings::from_config(&c).unwrap();
        s.client_config(Alpn::None).unwrap();
        // Only TLSv1.3 suites with only TLSv1.2 cannot work.
        c.cipher_suites = vec!["TLS-AES-128-GCM-SHA256".to_string()];
        c.supported_protocols = vec!["TLSv1.2".to_string()];
        let err = TlsSettings::from_config(&c).unwrap_err();
        assert!(err.is_config(), "{err}");
    }

    #[test]
    fn client_authentication_rules_follow_logstash() {
        let mut c = cfg();
        c.client_authentication = Some(ClientAuthentication::Required);
        assert!(TlsSettings::from_config(&c).unwrap_err().is_config());
        c.client_authentication = Some(ClientAuthentication::Optional);
        assert!(TlsSettings::from_config(&c).unwrap_err().is_config());
        c.certificate_authorities = vec!["/ca.pem".to_string()];
        c.client_authentication = Some(ClientAuthentication::None);
        assert!(TlsSettings::from_config(&c).unwrap_err().is_config());
        c.client_authentication = None;
        let s = TlsSettings::from_config(&c).unwrap();
        assert_eq!(s.client_authentication(), ClientAuthentication::Required);
        assert!(s.is_enabled());
    }

    #[test]
    fn enabled_follows_beats_rule() {
        assert!(!TlsSettings::from_config(&cfg()).unwrap().is_enabled());
        let mut c = cfg();
        c.enabled = Some(true);
        assert!(TlsSettings::from_config(&c).unwrap().is_enabled());
        c.enabled = Some(false);
        c.certificate_authorities = vec!["/ca.pem".to_string()];
        assert!(!TlsSettings::from_config(&c).unwrap().is_enabled());
    }

    #[test]
    fn problems_lists_every_setting_and_file_at_once() {
        let mut c = cfg();
        c.supported_protocols = vec!["TLSv1.0".to_string()];
        c.cipher_suites = vec!["FOO-BAR".to_string()];
        c.certificate_authorities = vec!["/nonexistent/ca.pem".to_string(); 2];
        c.certificate = Some("/nonexistent/client.pem".to_string());
        c.key = Some(Secret::new("/nonexistent/client.key"));
        let problems = TlsSettings::problems(&c, false);
        let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "ssl.supported_protocols",
                "ssl.cipher_suites",
                "ssl.certificate_authorities.0",
                "ssl.certificate_authorities.1",
                "ssl.certificate",
                "ssl.key",
            ]
        );
        // The message leaves the key to the line that names it.
        assert!(
            problems[2]
                .message()
                .starts_with("cannot read /nonexistent/ca.pem"),
            "{}",
            problems[2].message()
        );
        // from_config still answers with the first problem alone.
        let err = TlsSettings::from_config(&c).unwrap_err();
        assert_eq!(err.key(), "ssl.supported_protocols");
    }

    #[test]
    fn a_listener_without_certificate_is_a_problem_only_for_servers() {
        let mut c = cfg();
        c.enabled = Some(true);
        assert!(TlsSettings::problems(&c, false).is_empty());
        let problems = TlsSettings::problems(&c, true);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].key, "ssl.certificate");
    }

    #[test]
    fn certificate_needs_key() {
        let mut c = cfg();
        c.certificate = Some("/c.pem".to_string());
        let msg = TlsSettings::from_config(&c).unwrap_err().to_string();
        assert!(msg.contains("ssl.key"), "{msg}");
    }
}
