//! Re-reading certificates and keys when their files change, so that new connections use
//! renewed material without a restart.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use std::sync::atomic::{AtomicU64, Ordering};

use rustls::{ClientConfig, ServerConfig};
use time::OffsetDateTime;
use tracing::{error, info};

/// Credentials reloaded without a restart in this process: certificates and keys
/// ([`TlsSource`]) and Elasticsearch API keys and passwords
/// ([`super::EsAuth`]). One counter for the metrics line and the totals.
static RELOADS: AtomicU64 = AtomicU64::new(0);

/// How many credential reloads took effect so far in this process.
pub fn reloads() -> u64 {
    RELOADS.load(Ordering::Relaxed)
}

/// Counts one reload that took effect.
pub(crate) fn count_reload() {
    RELOADS.fetch_add(1, Ordering::Relaxed);
}

use super::expiry::Validity;
use super::tls::{Alpn, TlsMaterial, TlsSettings};
use super::{CredentialError, Origin};

/// What is cheap to compare about a file: a change in any of these means "re-read it".
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FileStamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

/// The file's stamp now; `None` when it cannot be read.
pub(crate) fn stamp(path: &std::path::Path) -> Option<FileStamp> {
    let meta = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(&meta);
    #[cfg(not(unix))]
    let inode = 0;
    Some(FileStamp {
        modified: meta.modified().ok(),
        len: meta.len(),
        inode,
    })
}

#[derive(Debug, Clone, Copy)]
enum Side {
    Client(Alpn),
    Server,
}

#[derive(Debug, Clone)]
enum Built {
    Client(Arc<ClientConfig>),
    Server(Arc<ServerConfig>),
}

#[derive(Debug)]
struct State {
    stamps: Vec<Option<FileStamp>>,
    built: Built,
    validity: Option<(Origin, Validity)>,
    /// The day (since the epoch) of the last expiry warning, so a soon-expiring certificate
    /// is reported daily rather than on every connect.
    warned_day: Option<i64>,
}

/// A rustls config that follows its files: each call to [`Self::client_config`] or
/// [`Self::server_config`] compares the files' metadata (a few `stat` calls) and rebuilds
/// when any changed. A reload is logged at INFO with the certificate serials and counted
/// ([`reloads`]); a failed rebuild keeps the previous config and logs an ERROR; our
/// certificate's validity is re-checked on every call, so an expired one is refused even
/// when nothing changed on disk.
#[derive(Debug)]
pub struct TlsSource {
    settings: TlsSettings,
    side: Side,
    files: Vec<(&'static str, PathBuf)>,
    state: Mutex<State>,
}

impl TlsSource {
    /// When our certificate stops being valid (`None` without a certificate), as of the
    /// material last loaded: the monitoring endpoint shows the seconds left.
    pub fn not_after(&self) -> Option<OffsetDateTime> {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.validity.as_ref().map(|(_, v)| v.not_after)
    }

    /// A source of client configs (outputs). Reads the material now.
    ///
    /// # Errors
    /// As [`TlsSettings::client_config`]: startup fails loudly, later reload failures do not.
    pub fn client(settings: TlsSettings, alpn: Alpn) -> Result<Self, CredentialError> {
        Self::new(settings, Side::Client(alpn))
    }

    /// A source of server configs (the receiver input). Reads the material now.
    ///
    /// # Errors
    /// As [`TlsSettings::server_config`].
    pub fn server(settings: TlsSettings) -> Result<Self, CredentialError> {
        Self::new(settings, Side::Server)
    }

    fn new(settings: TlsSettings, side: Side) -> Result<Self, CredentialError> {
        let files = settings.watched_files();
        let stamps = files.iter().map(|(_, p)| stamp(p)).collect();
        let (built, validity) = build(&settings, side)?;
        Ok(Self {
            settings,
            side,
            files,
            state: Mutex::new(State {
                stamps,
                built,
                validity,
                warned_day: Some(OffsetDateTime::now_utc().unix_timestamp() / 86400),
            }),
        })
    }

    /// The settings this source was built from.
    pub fn settings(&self) -> &TlsSettings {
        &self.settings
    }

    /// The current client config, rebuilt first if a file changed.
    ///
    /// # Errors
    /// Our certificate is now expired, or this is a server source.
    pub fn client_config(&self) -> Result<Arc<ClientConfig>, CredentialError> {
        match self.current()? {
            Built::Client(c) => Ok(c),
            Built::Server(_) => Err(CredentialError::Invalid {
                key: "ssl",
                reason: "a server TLS source cannot make client configs".to_string(),
            }),
        }
    }

    /// The current server config, rebuilt first if a file changed.
    ///
    /// # Errors
    /// Our certificate is now expired, or this is a client source.
    pub fn server_config(&self) -> Result<Arc<ServerConfig>, CredentialError> {
        match self.current()? {
            Built::Server(c) => Ok(c),
            Built::Client(_) => Err(CredentialError::Invalid {
                key: "ssl",
                reason: "a client TLS source cannot make server configs".to_string(),
            }),
        }
    }

    fn current(&self) -> Result<Built, CredentialError> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let stamps: Vec<Option<FileStamp>> = self.files.iter().map(|(_, p)| stamp(p)).collect();
        if stamps != state.stamps {
            match build(&self.settings, self.side) {
                Ok((built, validity)) => {
                    info!(
                        files = ?self.files.iter().map(|(_, p)| p.display().to_string()).collect::<Vec<_>>(),
                        from_serial = state.validity.as_ref().map_or("", |(_, v)| v.serial.as_str()),
                        to_serial = validity.as_ref().map_or("", |(_, v)| v.serial.as_str()),
                        "TLS certificate or key files changed; new connections use the new material"
                    );
                    state.built = built;
                    state.validity = validity;
                    count_reload();
                }
                Err(error) => {
                    error!(
                        error = %error,
                        "TLS files changed but cannot be loaded; keeping the previous certificate and key"
                    );
                }
            }
            // Remember the failed stamps too: a broken file is reported once, not per connect,
            // and fixing it changes the stamps again.
            state.stamps = stamps;
        }
        let now = OffsetDateTime::now_utc();
        if let Some((origin, validity)) = &state.validity {
            validity.check("ssl.certificate", origin, now)?;
            let today = now.unix_timestamp() / 86400;
            if state.warned_day != Some(today) {
                validity.warn_if_expiring(
                    "ssl.certificate",
                    origin,
                    now,
                    self.settings.expiry_warning(),
                );
                state.warned_day = Some(today);
            }
        }
        Ok(state.built.clone())
    }
}

fn build(
    settings: &TlsSettings,
    side: Side,
) -> Result<(Built, Option<(Origin, Validity)>), CredentialError> {
    let material: TlsMaterial = settings.load_material()?;
    let validity = match (&material.chain, &material.validity) {
        (Some((origin, _)), Some(v)) => Some((origin.clone(), v.clone())),
        _ => None,
    };
    let built = match side {
        Side::Client(alpn) => Built::Client(settings.client_config_with(&material, alpn)?),
        Side::Server => Built::Server(settings.server_config_with(&material)?),
    };
    Ok((built, validity))
}
