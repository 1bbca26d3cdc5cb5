//! The keystore: named secrets in `<path.data>/skidder.keystore` (mode 0600), resolved as
//! `${NAME}` in the configuration before environment variables.
//!
//! The file is JSON. When `SKIDDER_KEYSTORE_PASSPHRASE` is set the secrets are sealed with
//! ChaCha20-Poly1305 under a key derived by PBKDF2-HMAC-SHA256 (600 000 iterations, random
//! salt) with a random nonce per save, all from ring (already our TLS provider).

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};

use super::Secret;

/// File name of the keystore under `path.data`.
pub const FILE_NAME: &str = "skidder.keystore";
/// Environment variable holding the keystore passphrase.
pub const PASSPHRASE_ENV: &str = "SKIDDER_KEYSTORE_PASSPHRASE";

const FORMAT_VERSION: u32 = 1;
const KDF: &str = "pbkdf2-hmac-sha256";
const CIPHER: &str = "chacha20-poly1305";
const ITERATIONS: u32 = 600_000;
const AAD: &[u8] = b"skidder-keystore-v1";

/// Why a keystore operation failed. Never carries a secret value or the passphrase.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeystoreError {
    /// `create` without `--force` over an existing keystore.
    #[error("keystore {path} already exists; use --force to overwrite it (its secrets are lost)")]
    Exists {
        /// The keystore file.
        path: PathBuf,
    },
    /// No keystore file.
    #[error("keystore {path} does not exist; run `skidder keystore create` first")]
    NotFound {
        /// The keystore file.
        path: PathBuf,
    },
    /// Reading or writing the file failed.
    #[error("keystore {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Group or others may read or write the file.
    #[error(
        "keystore {path} has mode {mode:04o}; it must be readable by its owner only (chmod 600)"
    )]
    Permissions {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The file is not a keystore this version understands.
    #[error("keystore {path} is damaged or not a skidder keystore: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The keystore is encrypted and no passphrase is set.
    #[error("keystore {path} is encrypted; set SKIDDER_KEYSTORE_PASSPHRASE")]
    PassphraseRequired {
        /// The file.
        path: PathBuf,
    },
    /// The passphrase does not open the keystore (or the file was altered).
    #[error("keystore {path} cannot be decrypted: wrong SKIDDER_KEYSTORE_PASSPHRASE, or the file was altered")]
    WrongPassphrase {
        /// The file.
        path: PathBuf,
    },
    /// `remove` of a name that is not there.
    #[error("no secret named {name} in the keystore")]
    NoSuchSecret {
        /// The name.
        name: String,
    },
    /// `add` without `--force` of a name that is there.
    #[error("secret {name} already exists; use --force to replace it")]
    SecretExists {
        /// The name.
        name: String,
    },
    /// A name that `${NAME}` could not refer to.
    #[error("invalid secret name {name:?}: use letters, digits, '_', '.' and '-'")]
    InvalidName {
        /// The name.
        name: String,
    },
    /// `add` without `--stdin` while standard input is not a terminal: there is no one to
    /// prompt, and reading the pipe as the value would be a guess.
    #[error("no terminal to prompt for the value of {name}; nothing was stored. Pipe the value in with `skidder keystore add {name} --stdin`")]
    NoTerminal {
        /// The name.
        name: String,
    },
    /// `add` received an empty value.
    #[error("no value given for secret {name}; nothing was stored")]
    EmptyValue {
        /// The name.
        name: String,
    },
    /// The system random generator or the cipher failed.
    #[error("keystore encryption failed: {reason}")]
    Crypto {
        /// What failed.
        reason: &'static str,
    },
}

#[derive(Debug, Serialize, Deserialize)]
struct Envelope {
    version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    encryption: Option<Encryption>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    secrets: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ciphertext: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Encryption {
    kdf: String,
    iterations: u32,
    salt: String,
    cipher: String,
    nonce: String,
}

/// An opened keystore. Changes are written to disk at once (atomically, mode 0600).
#[derive(Debug)]
pub struct Keystore {
    path: PathBuf,
    passphrase: Option<Secret>,
    secrets: BTreeMap<String, Secret>,
}

/// `SKIDDER_KEYSTORE_PASSPHRASE`, when set and not empty.
pub fn passphrase_from_env() -> Option<Secret> {
    std::env::var(PASSPHRASE_ENV)
        .ok()
        .filter(|p| !p.is_empty())
        .map(Secret::new)
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

fn derive_key(
    passphrase: &Secret,
    salt: &[u8],
    iterations: u32,
) -> Result<LessSafeKey, KeystoreError> {
    let iterations = NonZeroU32::new(iterations).ok_or(KeystoreError::Crypto {
        reason: "zero KDF iterations",
    })?;
    let mut key = [0u8; 32];
    ring::pbkdf2::derive(
        ring::pbkdf2::PBKDF2_HMAC_SHA256,
        iterations,
        salt,
        passphrase.expose().as_bytes(),
        &mut key,
    );
    let unbound = UnboundKey::new(&CHACHA20_POLY1305, &key).map_err(|_| KeystoreError::Crypto {
        reason: "cannot create the cipher key",
    })?;
    Ok(LessSafeKey::new(unbound))
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-')
}

impl Keystore {
    /// The keystore file under `path.data`.
    pub fn path_in(data_dir: &Path) -> PathBuf {
        data_dir.join(FILE_NAME)
    }

    /// Creates an empty keystore, encrypted when `SKIDDER_KEYSTORE_PASSPHRASE` is set.
    ///
    /// # Errors
    /// It exists and `force` is false, or it cannot be written.
    pub fn create(path: &Path, force: bool) -> Result<Self, KeystoreError> {
        Self::create_with(path, passphrase_from_env(), force)
    }

    /// As [`Self::create`] with an explicit passphrase (`None`: plain JSON).
    ///
    /// # Errors
    /// As [`Self::create`].
    pub fn create_with(
        path: &Path,
        passphrase: Option<Secret>,
        force: bool,
    ) -> Result<Self, KeystoreError> {
        if path.exists() && !force {
            return Err(KeystoreError::Exists {
                path: path.to_path_buf(),
            });
        }
        let store = Self {
            path: path.to_path_buf(),
            passphrase,
            secrets: BTreeMap::new(),
        };
        store.save()?;
        Ok(store)
    }

    /// Opens the keystore with `SKIDDER_KEYSTORE_PASSPHRASE`.
    ///
    /// # Errors
    /// Missing, too permissive, damaged, encrypted without (or with a wrong) passphrase.
    pub fn open(path: &Path) -> Result<Self, KeystoreError> {
        Self::open_with(path, passphrase_from_env())
    }

    /// As [`Self::open`] with an explicit passphrase.
    ///
    /// # Errors
    /// As [`Self::open`].
    pub fn open_with(path: &Path, passphrase: Option<Secret>) -> Result<Self, KeystoreError> {
        let io = |source: std::io::Error| {
            if source.kind() == std::io::ErrorKind::NotFound {
                KeystoreError::NotFound {
                    path: path.to_path_buf(),
                }
            } else {
                KeystoreError::Io {
                    path: path.to_path_buf(),
                    source,
                }
            }
        };
        let meta = std::fs::metadata(path).map_err(io)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(KeystoreError::Permissions {
                    path: path.to_path_buf(),
                    mode,
                });
            }
        }
        #[cfg(not(unix))]
        let _ = meta;
        let text = std::fs::read(path).map_err(io)?;
        let corrupt = |reason: String| KeystoreError::Corrupt {
            path: path.to_path_buf(),
            reason,
        };
        let envelope: Envelope =
            serde_json::from_slice(&text).map_err(|e| corrupt(format!("not JSON: {e}")))?;
        if envelope.version != FORMAT_VERSION {
            return Err(corrupt(format!(
                "format version {} (this skidder reads {FORMAT_VERSION})",
                envelope.version
            )));
        }
        let plain: BTreeMap<String, String> = match (&envelope.encryption, envelope.secrets) {
            (None, Some(secrets)) => secrets,
            (None, None) => return Err(corrupt("no secrets and no ciphertext".to_string())),
            (Some(enc), _) => {
                let Some(passphrase) = &passphrase else {
                    return Err(KeystoreError::PassphraseRequired {
                        path: path.to_path_buf(),
                    });
                };
                if enc.kdf != KDF || enc.cipher != CIPHER {
                    return Err(corrupt(format!(
                        "unknown encryption {}/{}",
                        enc.kdf, enc.cipher
                    )));
                }
                let salt = b64()
                    .decode(&enc.salt)
                    .map_err(|e| corrupt(format!("salt: {e}")))?;
                let nonce = b64()
                    .decode(&enc.nonce)
                    .map_err(|e| corrupt(format!("nonce: {e}")))?;
                let nonce = Nonce::try_assume_unique_for_key(&nonce)
                    .map_err(|_| corrupt(format!("nonce is not {NONCE_LEN} bytes")))?;
                let mut sealed = b64()
                    .decode(envelope.ciphertext.as_deref().unwrap_or(""))
                    .map_err(|e| corrupt(format!("ciphertext: {e}")))?;
                let key = derive_key(passphrase, &salt, enc.iterations)?;
                let opened = key
                    .open_in_place(nonce, Aad::from(AAD), &mut sealed)
                    .map_err(|_| KeystoreError::WrongPassphrase {
                        path: path.to_path_buf(),
                    })?;
                serde_json::from_slice(opened)
                    .map_err(|e| corrupt(format!("decrypted content is not JSON: {e}")))?
            }
        };
        Ok(Self {
            path: path.to_path_buf(),
            passphrase,
            secrets: plain
                .into_iter()
                .map(|(k, v)| (k, Secret::new(v)))
                .collect(),
        })
    }

    /// True when the file is encrypted.
    pub fn is_encrypted(&self) -> bool {
        self.passphrase.is_some()
    }

    /// Stores a secret and saves.
    ///
    /// # Errors
    /// Invalid name, empty value, an existing name without `force`, or the save failed.
    pub fn add(&mut self, name: &str, value: Secret, force: bool) -> Result<(), KeystoreError> {
        if !valid_name(name) {
            return Err(KeystoreError::InvalidName {
                name: name.to_string(),
            });
        }
        if value.is_empty() {
            return Err(KeystoreError::EmptyValue {
                name: name.to_string(),
            });
        }
        if self.secrets.contains_key(name) && !force {
            return Err(KeystoreError::SecretExists {
                name: name.to_string(),
            });
        }
        self.secrets.insert(name.to_string(), value);
        self.save()
    }

    /// The names of the stored secrets, sorted.
    pub fn list(&self) -> Vec<&str> {
        self.secrets.keys().map(String::as_str).collect()
    }

    /// Removes a secret and saves.
    ///
    /// # Errors
    /// No such name, or the save failed.
    pub fn remove(&mut self, name: &str) -> Result<(), KeystoreError> {
        if self.secrets.remove(name).is_none() {
            return Err(KeystoreError::NoSuchSecret {
                name: name.to_string(),
            });
        }
        self.save()
    }

    /// The secret called `name`, for `${NAME}` resolution.
    pub fn get(&self, name: &str) -> Option<Secret> {
        self.secrets.get(name).cloned()
    }

    fn save(&self) -> Result<(), KeystoreError> {
        let io = |source: std::io::Error| KeystoreError::Io {
            path: self.path.clone(),
            source,
        };
        let plain: BTreeMap<&str, &str> = self
            .secrets
            .iter()
            .map(|(k, v)| (k.as_str(), v.expose()))
            .collect();
        let envelope = match &self.passphrase {
            None => Envelope {
                version: FORMAT_VERSION,
                encryption: None,
                secrets: Some(
                    plain
                        .iter()
                        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
                        .collect(),
                ),
                ciphertext: None,
            },
            Some(passphrase) => {
                let rng = SystemRandom::new();
                let mut salt = [0u8; 16];
                let mut nonce = [0u8; NONCE_LEN];
                rng.fill(&mut salt).map_err(|_| KeystoreError::Crypto {
                    reason: "no system randomness for the salt",
                })?;
                rng.fill(&mut nonce).map_err(|_| KeystoreError::Crypto {
                    reason: "no system randomness for the nonce",
                })?;
                let key = derive_key(passphrase, &salt, ITERATIONS)?;
                let mut sealed =
                    serde_json::to_vec(&plain).map_err(|e| KeystoreError::Corrupt {
                        path: self.path.clone(),
                        reason: e.to_string(),
                    })?;
                key.seal_in_place_append_tag(
                    Nonce::assume_unique_for_key(nonce),
                    Aad::from(AAD),
                    &mut sealed,
                )
                .map_err(|_| KeystoreError::Crypto {
                    reason: "sealing failed",
                })?;
                Envelope {
                    version: FORMAT_VERSION,
                    encryption: Some(Encryption {
                        kdf: KDF.to_string(),
                        iterations: ITERATIONS,
                        salt: b64().encode(salt),
                        cipher: CIPHER.to_string(),
                        nonce: b64().encode(nonce),
                    }),
                    secrets: None,
                    ciphertext: Some(b64().encode(&sealed)),
                }
            }
        };
        let bytes = serde_json::to_vec_pretty(&envelope).map_err(|e| KeystoreError::Corrupt {
            path: self.path.clone(),
            reason: e.to_string(),
        })?;
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        // Write a sibling and rename it over the keystore, so a crash never leaves half a file.
        let tmp = self.path.with_extension("keystore.tmp");
        let mut options = OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&tmp).map_err(io)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            // The mode above only applies to a new file; a stale temp file keeps its own.
            file.set_permissions(std::fs::Permissions::from_mode(0o600))
                .map_err(io)?;
        }
        file.write_all(&bytes).map_err(io)?;
        file.sync_all().map_err(io)?;
        drop(file);
        std::fs::rename(&tmp, &self.path).map_err(io)
    }
}

/// A `skidder keystore` subcommand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeystoreCommand {
    /// `create [--force]`.
    Create {
        /// Overwrite an existing keystore.
        force: bool,
    },
    /// `add NAME [--force] [--stdin]`.
    Add {
        /// The secret's name.
        name: String,
        /// Replace an existing secret.
        force: bool,
        /// Read the value from standard input (all of it, one trailing line break removed)
        /// instead of prompting on the terminal without echo.
        stdin: bool,
    },
    /// `list`.
    List,
    /// `remove NAME...`.
    Remove {
        /// The names to remove.
        names: Vec<String>,
    },
}

/// Runs a keystore subcommand against `<data_dir>/skidder.keystore` with `passphrase`
/// (normally [`passphrase_from_env`]). `input` supplies `add --stdin` values; messages and
/// `list` output go to `out`. Secret values are never written to `out`.
///
/// # Errors
/// Any [`KeystoreError`]; nothing is changed on disk when one is returned.
pub fn run_keystore_command(
    data_dir: &Path,
    command: &KeystoreCommand,
    passphrase: Option<Secret>,
    input: &mut dyn Read,
    out: &mut dyn Write,
) -> Result<(), KeystoreError> {
    let path = Keystore::path_in(data_dir);
    let out_err = |source: std::io::Error| KeystoreError::Io {
        path: PathBuf::from("<output>"),
        source,
    };
    match command {
        KeystoreCommand::Create { force } => {
            let store = Keystore::create_with(&path, passphrase, *force)?;
            writeln!(
                out,
                "created {} keystore {}",
                if store.is_encrypted() {
                    "encrypted"
                } else {
                    "unencrypted"
                },
                path.display()
            )
            .map_err(out_err)
        }
        KeystoreCommand::Add { name, force, stdin } => {
            let mut store = Keystore::open_with(&path, passphrase)?;
            if !valid_name(name) {
                return Err(KeystoreError::InvalidName { name: name.clone() });
            }
            let value = if *stdin {
                let mut text = String::new();
                input
                    .read_to_string(&mut text)
                    .map_err(|source| KeystoreError::Io {
                        path: PathBuf::from("<stdin>"),
                        source,
                    })?;
                let trimmed = text
                    .strip_suffix('\n')
                    .map(|t| t.strip_suffix('\r').unwrap_or(t))
                    .unwrap_or(&text);
                Secret::new(trimmed)
            } else {
                use std::io::IsTerminal as _;
                if !std::io::stdin().is_terminal() {
                    return Err(KeystoreError::NoTerminal { name: name.clone() });
                }
                Secret::new(
                    rpassword::prompt_password(format!("Enter value for {name}: ")).map_err(
                        |source| KeystoreError::Io {
                            path: PathBuf::from("<terminal>"),
                            source,
                        },
                    )?,
                )
            };
            store.add(name, value, *force)?;
            writeln!(out, "added secret {name}").map_err(out_err)
        }
        KeystoreCommand::List => {
            let store = Keystore::open_with(&path, passphrase)?;
            for name in store.list() {
                writeln!(out, "{name}").map_err(out_err)?;
            }
            Ok(())
        }
        KeystoreCommand::Remove { names } => {
            let mut store = Keystore::open_with(&path, passphrase)?;
            if let Some(missing) = names.iter().find(|n| store.get(n).is_none()) {
                return Err(KeystoreError::NoSuchSecret {
                    name: missing.clone(),
                });
            }
            for name in names {
                store.secrets.remove(name);
            }
            store.save()?;
            for name in names {
                writeln!(out, "removed secret {name}").map_err(out_err)?;
            }
            Ok(())
        }
    }
}

/// `${NAME}` in the configuration is looked up in the keystore before the environment.
impl crate::config::SecretResolver for Keystore {
    fn resolve(&self, name: &str) -> Option<Secret> {
        self.get(name)
    }

    fn location(&self) -> Option<&Path> {
        Some(&self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_keystore_round_trip_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let path = Keystore::path_in(dir.path());
        let mut ks = Keystore::create_with(&path, None, false).unwrap();
        ks.add("ES_PWD", Secret::new("hunter2"), false).unwrap();
        assert!(matches!(
            ks.add("ES_PWD", Secret::new("x"), false),
            Err(KeystoreError::SecretExists { .. })
        ));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        let ks = Keystore::open_with(&path, None).unwrap();
        assert_eq!(ks.list(), vec!["ES_PWD"]);
        assert_eq!(ks.get("ES_PWD").unwrap().expose(), "hunter2");
        assert!(matches!(
            Keystore::create_with(&path, None, false),
            Err(KeystoreError::Exists { .. })
        ));
    }

    #[test]
    fn encrypted_keystore_needs_the_right_passphrase() {
        let dir = tempfile::tempdir().unwrap();
        let path = Keystore::path_in(dir.path());
        let pass = Secret::new("correct horse");
        let mut ks = Keystore::create_with(&path, Some(pass.clone()), false).unwrap();
        ks.add("API_KEY", Secret::new("id:topsecretvalue"), false)
            .unwrap();
        let raw = std::fs::read_to_string(&path).unwrap();
        assert!(!raw.contains("topsecretvalue") && !raw.contains("API_KEY"));
        assert!(matches!(
            Keystore::open_with(&path, None),
            Err(KeystoreError::PassphraseRequired { .. })
        ));
        let err = Keystore::open_with(&path, Some(Secret::new("wrong"))).unwrap_err();
        assert!(matches!(err, KeystoreError::WrongPassphrase { .. }));
        let ks = Keystore::open_with(&path, Some(pass)).unwrap();
        assert_eq!(ks.get("API_KEY").unwrap().expose(), "id:topsecretvalue");
    }

    #[cfg(unix)]
    #[test]
    fn permissive_file_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = Keystore::path_in(dir.path());
        Keystore::create_with(&path, None, false).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = Keystore::open_with(&path, None).unwrap_err();
        assert!(err.to_string().contains("0644"), "{err}");
    }

    #[test]
    fn commands_never_echo_values() {
        let dir = tempfile::tempdir().unwrap();
        let mut out = Vec::new();
        let mut nothing: &[u8] = b"";
        run_keystore_command(
            dir.path(),
            &KeystoreCommand::Create { force: false },
            None,
            &mut nothing,
            &mut out,
        )
        .unwrap();
        let mut value: &[u8] = b"s3cr3t-value\n";
        let add = KeystoreCommand::Add {
            name: "PWD".to_string(),
            force: false,
            stdin: true,
        };
        run_keystore_command(dir.path(), &add, None, &mut value, &mut out).unwrap();
        run_keystore_command(
            dir.path(),
            &KeystoreCommand::List,
            None,
            &mut nothing,
            &mut out,
        )
        .unwrap();
        let remove = KeystoreCommand::Remove {
            names: vec!["PWD".to_string(), "MISSING".to_string()],
        };
        let err =
            run_keystore_command(dir.path(), &remove, None, &mut nothing, &mut out).unwrap_err();
        assert!(matches!(err, KeystoreError::NoSuchSecret { .. }));
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("PWD") && !text.contains("s3cr3t"), "{text}");
        let ks = Keystore::open_with(&Keystore::path_in(dir.path()), None).unwrap();
        assert_eq!(ks.get("PWD").unwrap().expose(), "s3cr3t-value");
        let mut empty: &[u8] = b"\n";
        let add = KeystoreCommand::Add {
            name: "EMPTY".to_string(),
            force: false,
            stdin: true,
        };
        assert!(matches!(
            run_keystore_command(dir.path(), &add, None, &mut empty, &mut Vec::new()),
            Err(KeystoreError::EmptyValue { .. })
        ));
    }
}
