//! Elasticsearch credentials: `api_key`, `username`/`password` and custom `headers`, turned
//! into header values once; the HTTP client asks for the current `Authorization` value on
//! every request.
//!
//! # Rotation without restart
//! A credential may come from a source that changes while skidder runs: `api_key_path` or
//! `password_path` (a file holding the value, as Beats' `key_passphrase_path`), or the
//! keystore (`api_key: ${ES_KEY}` with `ES_KEY` in `<path.data>/skidder.keystore`). Every
//! request first compares the source file's metadata (one `stat`, as
//! [`super::TlsSource`] does for certificates) and re-reads it when it changed. A new value
//! is used from the next request on; requests already sent finish with the old one. All
//! clones of one [`EsAuth`] share the credential, so every worker of the output, and the
//! Elasticsearch side of `output.failover`, switch at once. Each reload is logged at INFO
//! naming the key ids (never a secret) and counted ([`super::reload::reloads`]); a reload that fails (unreadable file,
//! a malformed key, a keystore that cannot be opened) keeps the previous credential and
//! logs an ERROR once per change of the file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use base64::Engine as _;
use tracing::{error, info};

use super::reload::{stamp, FileStamp};
use super::{CredentialError, Secret};
use crate::config::ElasticsearchOutputConfig;

/// Where `api_key`/`password` came from in the keystore: the file and the settings' text
/// before `${...}` expansion, so a changed keystore can be expanded again. Set by the
/// configuration loader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeystoreSource {
    /// The keystore file.
    pub file: PathBuf,
    /// `api_key` as written, e.g. `${ES_API_KEY}`, when it used the keystore.
    pub api_key: Option<String>,
    /// `password` as written, when it used the keystore.
    pub password: Option<String>,
}

/// The credential in use at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Current {
    authorization: Option<Secret>,
    /// For messages: `api_key id ID`, `username NAME` or `no credentials`.
    credential: String,
    /// The API key's id, when the credential is an API key.
    key_id: Option<String>,
}

/// What can change while running.
#[derive(Debug)]
enum Source {
    /// Written in the configuration: never re-read.
    Fixed,
    /// `api_key_path` or `password_path`.
    File { key: &'static str, path: PathBuf },
    /// A keystore value.
    Keystore(KeystoreSource),
}

#[derive(Debug)]
struct State {
    current: Arc<Current>,
    stamp: Option<FileStamp>,
    /// The generation whose refusal was logged at ERROR: one ERROR per credential.
    refusal_logged: Option<u64>,
}

#[derive(Debug)]
struct Shared {
    source: Source,
    username: Option<String>,
    state: Mutex<State>,
    /// Bumped by every reload that changed the credential.
    generation: AtomicU64,
    expiry: Mutex<ExpiryWatch>,
}

/// What is known about the API key's expiry, shared by the workers so that one of them
/// asks Elasticsearch per period.
#[derive(Debug, Default)]
struct ExpiryWatch {
    /// The generation last checked and when.
    checked: Option<(u64, std::time::Instant)>,
    /// The key's expiry, when it has one.
    expiration: Option<time::OffsetDateTime>,
}

/// The credentials of one Elasticsearch output; clones share the current credential.
#[derive(Debug, Clone)]
pub struct EsAuth {
    shared: Arc<Shared>,
    headers: Vec<(String, String)>,
}

/// The id of an API key given as `id:key` or its base64 form (already checked by
/// [`normalize_api_key`]); `None` for anything else.
pub fn api_key_id(normalized: &Secret) -> Option<String> {
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(normalized.expose())
        .ok()?;
    let text = std::str::from_utf8(&decoded).ok()?;
    text.split_once(':').map(|(id, _)| id.to_string())
}

/// The reason Elasticsearch gives for refusing a credential, from its error body
/// (elastic-security.md §1.8): `additional_unsuccessful_credentials` ("API key: api key is
/// expired") when present, else the error's `reason`. Bounded; never echoes a secret
/// (Elasticsearch does not put one there).
pub fn refusal_reason(body: &[u8]) -> String {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or(serde_json::Value::Null);
    let err = &v["error"];
    let text = err["additional_unsuccessful_credentials"]
        .as_str()
        .or_else(|| err["root_cause"][0]["additional_unsuccessful_credentials"].as_str())
        .or_else(|| err["reason"].as_str())
        .or_else(|| err.as_str())
        .map(str::to_string)
        .unwrap_or_else(|| String::from_utf8_lossy(body).trim().to_string());
    text.chars().take(300).collect()
}

/// Reads a one-line secret file, trimmed.
fn read_secret_file(key: &'static str, path: &Path) -> Result<Secret, CredentialError> {
    let text = std::fs::read_to_string(path).map_err(|e| CredentialError::Invalid {
        key,
        reason: format!("cannot read {}: {e}", path.display()),
    })?;
    let value = text.trim();
    if value.is_empty() {
        return Err(CredentialError::Invalid {
            key,
            reason: format!("{} is empty", path.display()),
        });
    }
    Ok(Secret::new(value))
}

fn build_current(
    api_key: Option<&Secret>,
    username: Option<&str>,
    password: Option<&Secret>,
) -> Result<Current, CredentialError> {
    match (api_key, username, password) {
        (Some(_), Some(_), _) | (Some(_), None, Some(_)) => Err(CredentialError::Invalid {
            key: "api_key",
            reason: "set either api_key or username/password, not both".to_string(),
        }),
        (Some(key), None, None) => {
            let normalized = normalize_api_key(key)?;
            let key_id = api_key_id(&normalized);
            Ok(Current {
                authorization: Some(Secret::new(format!("ApiKey {}", normalized.expose()))),
                credential: match &key_id {
                    Some(id) => format!("api_key id {id}"),
                    None => "api_key".to_string(),
                },
                key_id,
            })
        }
        (None, Some(user), password) => {
            if user.contains(':') {
                return Err(CredentialError::Invalid {
                    key: "username",
                    reason: "must not contain ':' (Basic authentication separates user and password with it)".to_string(),
                });
            }
            let pair = format!("{user}:{}", password.map(Secret::expose).unwrap_or(""));
            Ok(Current {
                authorization: Some(Secret::new(format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(pair.as_bytes())
                ))),
                credential: format!("username {user}"),
                key_id: None,
            })
        }
        (None, None, Some(_)) => Err(CredentialError::Invalid {
            key: "password",
            reason: "is set but username is not".to_string(),
        }),
        (None, None, None) => Ok(Current {
            authorization: None,
            credential: "no credentials".to_string(),
            key_id: None,
        }),
    }
}

/// `api_key` as Elasticsearch wants it after `ApiKey `: base64 of `id:key`. Accepts `id:key`
/// or that base64 form.
///
/// # Errors
/// Neither form (the message never contains the key).
pub fn normalize_api_key(key: &Secret) -> Result<Secret, CredentialError> {
    let text = key.expose().trim();
    let bad = |reason: &str| CredentialError::Invalid {
        key: "api_key",
        reason: reason.to_string(),
    };
    if text.is_empty() {
        return Err(bad("is empty; write id:key or its base64 form"));
    }
    if let Some((id, secret)) = text.split_once(':') {
        if id.is_empty() || secret.is_empty() {
            return Err(bad("id:key form needs a non-empty id and key"));
        }
        return Ok(Secret::new(
            base64::engine::general_purpose::STANDARD.encode(text.as_bytes()),
        ));
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|_| bad("is neither id:key nor base64 of id:key"))?;
    match std::str::from_utf8(&decoded)
        .ok()
        .and_then(|s| s.split_once(':'))
    {
        Some((id, secret)) if !id.is_empty() && !secret.is_empty() => Ok(Secret::new(text)),
        _ => Err(bad("decodes from base64 but not to id:key")),
    }
}

fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

impl EsAuth {
    /// From `output.elasticsearch`, reading `api_key_path`/`password_path` now.
    ///
    /// # Errors
    /// As [`Self::new`]; also a value given both inline and by file, or an unreadable or
    /// empty file.
    pub fn from_config(cfg: &ElasticsearchOutputConfig) -> Result<Self, CredentialError> {
        let both = |key: &'static str| CredentialError::Invalid {
            key,
            reason: format!("set {key} or {key}_path, not both"),
        };
        let (api_key, password, source) = match (&cfg.api_key_path, &cfg.password_path) {
            (Some(_), Some(_)) => {
                return Err(CredentialError::Invalid {
                    key: "api_key_path",
                    reason: "set either api_key_path or password_path, not both".to_string(),
                })
            }
            (Some(path), None) => {
                if cfg.api_key.is_some() {
                    return Err(both("api_key"));
                }
                let key = read_secret_file("api_key_path", path)?;
                let source = Source::File {
                    key: "api_key_path",
                    path: path.clone(),
                };
                (Some(key), cfg.password.clone(), source)
            }
            (None, Some(path)) => {
                if cfg.password.is_some() {
                    return Err(both("password"));
                }
                let password = read_secret_file("password_path", path)?;
                let source = Source::File {
                    key: "password_path",
                    path: path.clone(),
                };
                (cfg.api_key.clone(), Some(password), source)
            }
            (None, None) => {
                let source = match &cfg.keystore_source {
                    Some(k) if k.api_key.is_some() || k.password.is_some() => {
                        Source::Keystore(k.clone())
                    }
                    _ => Source::Fixed,
                };
                (cfg.api_key.clone(), cfg.password.clone(), source)
            }
        };
        let mut auth = Self::new(
            api_key.as_ref(),
            cfg.username.as_deref(),
            password.as_ref(),
            &cfg.headers,
        )?;
        let stamp = match &source {
            Source::Fixed => None,
            Source::File { path, .. } => stamp(path),
            Source::Keystore(k) => stamp(&k.file),
        };
        if let Some(shared) = Arc::get_mut(&mut auth.shared) {
            shared.source = source;
            shared
                .state
                .get_mut()
                .unwrap_or_else(PoisonError::into_inner)
                .stamp = stamp;
        }
        Ok(auth)
    }

    /// Validates the credentials and prepares the `Authorization` value; they never change.
    ///
    /// # Errors
    /// [`CredentialError::Invalid`]: both `api_key` and `username`, `password` without
    /// `username`, a malformed `api_key`, an invalid header name or value, or an
    /// `Authorization` header next to `api_key`/`username`.
    pub fn new(
        api_key: Option<&Secret>,
        username: Option<&str>,
        password: Option<&Secret>,
        headers: &BTreeMap<String, String>,
    ) -> Result<Self, CredentialError> {
        let current = build_current(api_key, username, password)?;
        let mut out = Vec::with_capacity(headers.len());
        for (name, value) in headers {
            if !is_token(name) {
                return Err(CredentialError::Invalid {
                    key: "headers",
                    reason: format!("{name:?} is not a valid HTTP header name"),
                });
            }
            if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
                return Err(CredentialError::Invalid {
                    key: "headers",
                    reason: format!("the value of {name} contains a line break or NUL"),
                });
            }
            if name.eq_ignore_ascii_case("authorization") && current.authorization.is_some() {
                return Err(CredentialError::Invalid {
                    key: "headers",
                    reason: format!(
                        "an Authorization header conflicts with {}; keep one",
                        current.credential
                    ),
                });
            }
            out.push((name.clone(), value.clone()));
        }
        Ok(Self {
            shared: Arc::new(Shared {
                source: Source::Fixed,
                username: username.map(str::to_string),
                state: Mutex::new(State {
                    current: Arc::new(current),
                    stamp: None,
                    refusal_logged: None,
                }),
                generation: AtomicU64::new(0),
                expiry: Mutex::new(ExpiryWatch::default()),
            }),
            headers: out,
        })
    }

    fn current(&self) -> Arc<Current> {
        self.refresh();
        let state = self
            .shared
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        Arc::clone(&state.current)
    }

    /// Re-reads the credential's source when its file changed (see the module docs).
    /// Returns the generation in use afterwards: it changes with every new credential.
    pub fn refresh(&self) -> u64 {
        let shared = &*self.shared;
        let path = match &shared.source {
            Source::Fixed => return shared.generation.load(Ordering::Acquire),
            Source::File { path, .. } => path.as_path(),
            Source::Keystore(k) => k.file.as_path(),
        };
        let now = stamp(path);
        {
            let mut state = shared.state.lock().unwrap_or_else(PoisonError::into_inner);
            if now == state.stamp {
                return shared.generation.load(Ordering::Acquire);
            }
            // Remembered even when the reload fails: a broken file is reported once, and
            // fixing it changes the stamp again. Other callers keep the current credential
            // meanwhile.
            state.stamp = now.clone();
        }
        // Read without the lock: opening a keystore with a passphrase runs PBKDF2.
        let result = self.reread();
        let mut state = shared.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.stamp != now {
            // The file changed again while it was read: the caller that saw that change
            // reads and applies the newer content.
            return shared.generation.load(Ordering::Acquire);
        }
        match result {
            Ok(next) if next == *state.current => {}
            Ok(next) => {
                info!(
                    source = %self.source_name(),
                    from = %state.current.credential,
                    to = %next.credential,
                    "Elasticsearch credential reloaded; the next request uses it"
                );
                state.current = Arc::new(next);
                super::reload::count_reload();
                shared.generation.fetch_add(1, Ordering::AcqRel);
            }
            Err(e) => {
                error!(
                    source = %self.source_name(),
                    error = %e,
                    keeping = %state.current.credential,
                    "Elasticsearch credential source changed but cannot be used; keeping the previous credential"
                );
            }
        }
        shared.generation.load(Ordering::Acquire)
    }

    fn source_name(&self) -> String {
        match &self.shared.source {
            Source::Fixed => "configuration".to_string(),
            Source::File { key, path } => format!("{key} {}", path.display()),
            Source::Keystore(k) => format!("keystore {}", k.file.display()),
        }
    }

    fn reread(&self) -> Result<Current, CredentialError> {
        let shared = &*self.shared;
        let user = shared.username.as_deref();
        match &shared.source {
            Source::Fixed => Err(CredentialError::Invalid {
                key: "api_key",
                reason: "nothing to re-read".to_string(),
            }),
            Source::File { key, path } => {
                let value = read_secret_file(key, path)?;
                if *key == "api_key_path" {
                    build_current(Some(&value), None, None)
                } else {
                    build_current(None, user, Some(&value))
                }
            }
            Source::Keystore(k) => {
                let store =
                    super::Keystore::open_with(&k.file, super::keystore::passphrase_from_env())
                        .map_err(|e| CredentialError::Invalid {
                            key: "keystore",
                            reason: e.to_string(),
                        })?;
                let expand = |key: &'static str, template: &str| {
                    crate::config::expand_secret(template, &store)
                        .map(Secret::new)
                        .map_err(|reason| CredentialError::Invalid { key, reason })
                };
                match (&k.api_key, &k.password) {
                    (Some(t), _) => build_current(Some(&expand("api_key", t)?), None, None),
                    (None, Some(t)) => build_current(None, user, Some(&expand("password", t)?)),
                    (None, None) => Err(CredentialError::Invalid {
                        key: "keystore",
                        reason: "no credential comes from the keystore".to_string(),
                    }),
                }
            }
        }
    }

    /// The `Authorization` header value (`ApiKey ...` or `Basic ...`) to send now, if any,
    /// after re-reading a changed source.
    pub fn authorization(&self) -> Option<Secret> {
        self.current().authorization.clone()
    }

    /// The custom headers, in name order.
    pub fn headers(&self) -> &[(String, String)] {
        &self.headers
    }

    /// Which credential is in use, for messages: `api_key id ID`, `username NAME` or
    /// `no credentials`.
    pub fn credential(&self) -> String {
        self.current().credential.clone()
    }

    /// The id of the API key in use, if the credential is one.
    pub fn key_id(&self) -> Option<String> {
        self.current().key_id.clone()
    }

    /// True when the credential can change while running (a file or keystore source).
    pub fn is_watched(&self) -> bool {
        !matches!(self.shared.source, Source::Fixed)
    }

    /// True the first time the credential of generation `generation` is reported refused:
    /// a refused credential is logged at ERROR once, its retries at a lower level.
    pub fn first_refusal(&self, generation: u64) -> bool {
        let mut state = self
            .shared
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if state.refusal_logged == Some(generation) {
            return false;
        }
        state.refusal_logged = Some(generation);
        true
    }

    /// True when the API key's expiry should be read now: never read for this credential,
    /// or last read `every` ago. The caller that gets `true` does it; the others do not.
    pub fn expiry_check_due(&self, every: std::time::Duration) -> bool {
        let generation = self.refresh();
        let mut watch = self
            .shared
            .expiry
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let due = match watch.checked {
            Some((g, at)) => g != generation || at.elapsed() >= every,
            None => true,
        };
        if due {
            watch.checked = Some((generation, std::time::Instant::now()));
        }
        due
    }

    /// Records the API key's expiry as Elasticsearch reported it (`None`: never expires).
    pub fn set_expiration(&self, expiration: Option<time::OffsetDateTime>) {
        self.shared
            .expiry
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .expiration = expiration;
    }

    /// The API key's expiry, when known and set.
    pub fn expiration(&self) -> Option<time::OffsetDateTime> {
        self.shared
            .expiry
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .expiration
    }

    /// The error for a 401/403 from `host` with Elasticsearch's `reason`: names the
    /// credential (the key id), never its value. The output must treat it as a connection
    /// failure with backoff, never retry at once.
    pub fn refused(&self, host: &str, status: u16, reason: String) -> CredentialError {
        CredentialError::Refused {
            credential: self.credential(),
            host: host.to_string(),
            status,
            reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_key_forms_normalise_to_base64() {
        let plain = normalize_api_key(&Secret::new("myid:mykey")).unwrap();
        assert_eq!(plain.expose(), "bXlpZDpteWtleQ==");
        let b64 = normalize_api_key(&Secret::new("bXlpZDpteWtleQ==")).unwrap();
        assert_eq!(b64.expose(), "bXlpZDpteWtleQ==");
        let err = normalize_api_key(&Secret::new("notakey")).unwrap_err();
        assert!(!err.to_string().contains("notakey"));
    }

    #[test]
    fn headers_and_refusal_name_the_credential() {
        let none = BTreeMap::new();
        let auth = EsAuth::new(Some(&Secret::new("a:b")), None, None, &none).unwrap();
        assert_eq!(auth.authorization().unwrap().expose(), "ApiKey YTpi");
        let msg = auth
            .refused("es1:9200", 401, "API key: api key is expired".into())
            .to_string();
        assert!(
            msg.contains("api_key id a") && msg.contains("401") && msg.contains("es1:9200"),
            "{msg}"
        );
        assert!(msg.contains("api key is expired"), "{msg}");
        let auth =
            EsAuth::new(None, Some("elastic"), Some(&Secret::new("changeme")), &none).unwrap();
        assert_eq!(
            auth.authorization().unwrap().expose(),
            "Basic ZWxhc3RpYzpjaGFuZ2VtZQ=="
        );
        let msg = auth.refused("es1:9200", 403, String::new()).to_string();
        assert!(
            msg.contains("username elastic") && !msg.contains("changeme"),
            "{msg}"
        );
        assert!(format!("{auth:?}").contains("REDACTED"));
        assert!(!format!("{auth:?}").contains("ZWxhc3RpYzpjaGFuZ2VtZQ"));
    }

    /// Replaces `path` the way a rotation should (write, then rename over).
    fn rotate(path: &std::path::Path, text: &str) {
        let tmp = path.with_extension("new");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, path).unwrap();
    }

    #[test]
    fn a_rotated_key_file_is_used_by_every_clone_and_a_bad_one_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        rotate(&path, "old-id:old-secret\n");
        let cfg = ElasticsearchOutputConfig {
            api_key_path: Some(path.clone()),
            ..Default::default()
        };
        let worker_a = EsAuth::from_config(&cfg).unwrap();
        let worker_b = worker_a.clone();
        assert_eq!(worker_a.credential(), "api_key id old-id");
        let first = worker_a.refresh();

        rotate(&path, "new-id:new-secret");
        // One worker notices; the other uses the new key without looking itself.
        assert_ne!(worker_a.refresh(), first);
        assert_eq!(worker_b.key_id().as_deref(), Some("new-id"));
        let header = worker_b.authorization().unwrap();
        assert_eq!(
            header.expose(),
            format!(
                "ApiKey {}",
                base64::engine::general_purpose::STANDARD.encode("new-id:new-secret")
            )
        );

        let generation = worker_a.refresh();
        rotate(&path, "not a key");
        assert_eq!(worker_a.refresh(), generation, "a bad file changes nothing");
        assert_eq!(worker_b.credential(), "api_key id new-id");
        assert!(!format!("{worker_b:?}").contains("new-secret"));
    }

    #[test]
    fn a_rotated_password_file_changes_the_basic_header() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw");
        rotate(&path, "first-pw\n");
        let auth = EsAuth::from_config(&ElasticsearchOutputConfig {
            username: Some("shipper".into()),
            password_path: Some(path.clone()),
            ..Default::default()
        })
        .unwrap();
        let basic = |pw: &str| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("shipper:{pw}"))
            )
        };
        assert_eq!(auth.authorization().unwrap().expose(), basic("first-pw"));
        rotate(&path, "second-pw\n");
        assert_eq!(auth.authorization().unwrap().expose(), basic("second-pw"));
        assert_eq!(auth.credential(), "username shipper");
        assert_eq!(auth.key_id(), None);
    }

    #[test]
    fn inline_and_file_credentials_are_exclusive() {
        let cfg = ElasticsearchOutputConfig {
            api_key: Some(Secret::new("a:b")),
            api_key_path: Some("key".into()),
            ..Default::default()
        };
        let e = EsAuth::from_config(&cfg).unwrap_err();
        assert!(e.to_string().contains("api_key or api_key_path"), "{e}");
        assert!(
            refusal_reason(br#"{"error":{"reason":"generic","additional_unsuccessful_credentials":"API key: api key is expired"},"status":401}"#)
                == "API key: api key is expired"
        );
    }

    #[test]
    fn contradictions_are_config_errors() {
        let none = BTreeMap::new();
        let k = Secret::new("a:b");
        assert!(EsAuth::new(Some(&k), Some("u"), None, &none)
            .unwrap_err()
            .is_config());
        assert!(EsAuth::new(None, None, Some(&k), &none)
            .unwrap_err()
            .is_config());
        let mut h = BTreeMap::new();
        h.insert("Authorization".to_string(), "x".to_string());
        assert!(EsAuth::new(Some(&k), None, None, &h)
            .unwrap_err()
            .is_config());
        let mut h = BTreeMap::new();
        h.insert("bad name".to_string(), "x".to_string());
        assert!(EsAuth::new(None, None, None, &h).unwrap_err().is_config());
    }
}
