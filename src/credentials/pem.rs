//! Loading certificates and private keys from a file path or inline PEM.
//!
//! A value that starts with `-----BEGIN` (after whitespace) is inline PEM; anything else is a
//! path. PEM decoding is rustls-pki-types' (certificates, PKCS#1, PKCS#8, SEC1 keys) and the
//! `pkcs8` crate's (encrypted PKCS#8, PBES2).

use std::path::{Path, PathBuf};

use pkcs8::EncryptedPrivateKeyInfo;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use super::{CredentialError, Origin, Secret};

const ENCRYPTED_LABEL: &str = "-----BEGIN ENCRYPTED PRIVATE KEY-----";
const LEGACY_ENCRYPTION_HEADER: &str = "Proc-Type: 4,ENCRYPTED";
/// Longer "paths" in `ssl.key` are treated as mangled key material and never printed.
const MAX_PLAUSIBLE_PATH: usize = 256;

/// True when a setting's value is PEM text rather than a path.
pub fn is_inline_pem(value: &str) -> bool {
    value.trim_start().starts_with("-----BEGIN")
}

/// The file a setting names, or `None` for inline PEM. Values with a line break are never
/// paths: a mangled inline key must not end up printed as a "file name".
pub fn file_of(value: &str) -> Option<PathBuf> {
    if is_inline_pem(value) || value.contains('\n') {
        None
    } else {
        Some(PathBuf::from(value.trim()))
    }
}

fn read_value(key: &'static str, value: &str) -> Result<(Origin, Vec<u8>), CredentialError> {
    match file_of(value) {
        None => Ok((Origin::Inline, value.as_bytes().to_vec())),
        Some(path) => {
            let bytes = read_file(key, &path)?;
            Ok((Origin::File(path), bytes))
        }
    }
}

fn read_file(key: &'static str, path: &Path) -> Result<Vec<u8>, CredentialError> {
    std::fs::read(path).map_err(|source| CredentialError::Read {
        key,
        path: path.to_path_buf(),
        source,
    })
}

/// Every certificate in one value (a path or inline PEM), in order. At least one is required.
///
/// # Errors
/// [`CredentialError::Read`] or [`CredentialError::BadMaterial`] naming `key` and the origin.
pub fn load_certificates(
    key: &'static str,
    value: &str,
) -> Result<(Origin, Vec<CertificateDer<'static>>), CredentialError> {
    let (origin, bytes) = read_value(key, value)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| CredentialError::BadMaterial {
            key,
            origin: origin.clone(),
            reason: format!("invalid PEM: {e}"),
        })?;
    if certs.is_empty() {
        return Err(CredentialError::BadMaterial {
            key,
            origin,
            reason: "no CERTIFICATE PEM block found".to_string(),
        });
    }
    Ok((origin, certs))
}

/// All certificates of a list of values (`ssl.certificate_authorities`).
///
/// # Errors
/// The first value that cannot be read or holds no certificate.
pub fn load_certificate_list(
    key: &'static str,
    values: &[String],
) -> Result<Vec<CertificateDer<'static>>, CredentialError> {
    let mut all = Vec::new();
    for value in values {
        all.extend(load_certificates(key, value)?.1);
    }
    Ok(all)
}

/// The passphrase of an encrypted key: `ssl.key_passphrase`, or the first line of the file
/// `ssl.key_passphrase_path` (trailing line break removed). Setting both is an error.
///
/// # Errors
/// Both set, or the file cannot be read.
pub fn load_passphrase(
    inline: Option<&Secret>,
    path: Option<&Path>,
) -> Result<Option<Secret>, CredentialError> {
    match (inline, path) {
        (Some(_), Some(_)) => Err(CredentialError::Invalid {
            key: "ssl.key_passphrase",
            reason: "set either ssl.key_passphrase or ssl.key_passphrase_path, not both"
                .to_string(),
        }),
        (Some(p), None) => Ok(Some(p.clone())),
        (None, Some(path)) => {
            let bytes = read_file("ssl.key_passphrase_path", path)?;
            let text = String::from_utf8(bytes).map_err(|_| CredentialError::BadMaterial {
                key: "ssl.key_passphrase_path",
                origin: Origin::File(path.to_path_buf()),
                reason: "the passphrase file is not UTF-8".to_string(),
            })?;
            let line = text.lines().next().unwrap_or("");
            Ok(Some(Secret::new(line)))
        }
        (None, None) => Ok(None),
    }
}

/// The private key in `value` (`ssl.key`): PKCS#1, PKCS#8 or SEC1 PEM, or encrypted PKCS#8
/// decrypted with `passphrase`.
///
/// # Errors
/// Unreadable file, no key found, an encrypted key without passphrase or with a wrong one,
/// or legacy OpenSSL-encrypted PEM (which has no standard decryption; convert it).
pub fn load_private_key(
    value: &Secret,
    passphrase: Option<&Secret>,
) -> Result<(Origin, PrivateKeyDer<'static>), CredentialError> {
    const KEY: &str = "ssl.key";
    let (origin, bytes) = match read_value(KEY, value.expose()) {
        Ok(read) => read,
        // A long single line that is no file is most likely key material pasted without
        // its PEM armour: report it without printing it as a "path".
        Err(CredentialError::Read { path, .. }) if path.as_os_str().len() > MAX_PLAUSIBLE_PATH => {
            return Err(CredentialError::BadMaterial {
                key: KEY,
                origin: Origin::Inline,
                reason: "neither a readable file nor PEM text (value not shown)".to_string(),
            })
        }
        Err(e) => return Err(e),
    };
    let text = String::from_utf8_lossy(&bytes);
    if text.contains(LEGACY_ENCRYPTION_HEADER) {
        return Err(CredentialError::BadMaterial {
            key: KEY,
            origin,
            reason:
                "legacy OpenSSL-encrypted PEM is not supported; convert it to encrypted PKCS#8 \
                     with `openssl pkcs8 -topk8 -v2 aes-256-cbc`"
                    .to_string(),
        });
    }
    if text.contains(ENCRYPTED_LABEL) {
        let Some(passphrase) = passphrase else {
            return Err(CredentialError::PassphraseMissing { key: KEY, origin });
        };
        let (label, der) = pkcs8::der::pem::decode_vec(text.trim().as_bytes()).map_err(|e| {
            CredentialError::BadMaterial {
                key: KEY,
                origin: origin.clone(),
                reason: format!("expected exactly one ENCRYPTED PRIVATE KEY PEM block: {e}"),
            }
        })?;
        if label != "ENCRYPTED PRIVATE KEY" {
            return Err(CredentialError::BadMaterial {
                key: KEY,
                origin,
                reason: format!("expected an ENCRYPTED PRIVATE KEY block, found {label}"),
            });
        }
        let info = EncryptedPrivateKeyInfo::try_from(der.as_slice()).map_err(|e| {
            CredentialError::BadMaterial {
                key: KEY,
                origin: origin.clone(),
                reason: format!("not an encrypted PKCS#8 structure: {e}"),
            }
        })?;
        let doc =
            info.decrypt(passphrase.expose().as_bytes())
                .map_err(|e| CredentialError::Decrypt {
                    key: KEY,
                    origin: origin.clone(),
                    reason: e.to_string(),
                })?;
        // A wrong passphrase with some ciphers decrypts to garbage with valid padding; only
        // a parse of the result proves the passphrase was right.
        pkcs8::PrivateKeyInfo::try_from(doc.as_bytes()).map_err(|_| CredentialError::Decrypt {
            key: KEY,
            origin: origin.clone(),
            reason: "decrypted data is not a PKCS#8 key".to_string(),
        })?;
        let key = PrivatePkcs8KeyDer::from(doc.as_bytes().to_vec());
        return Ok((origin, PrivateKeyDer::Pkcs8(key)));
    }
    match PrivateKeyDer::from_pem_slice(&bytes) {
        Ok(key) => Ok((origin, key)),
        Err(rustls_pki_types::pem::Error::NoItemsFound) => Err(CredentialError::BadMaterial {
            key: KEY,
            origin,
            reason: "no private key found (expected a PKCS#1 RSA, PKCS#8 or SEC1 EC PRIVATE KEY \
                     PEM block)"
                .to_string(),
        }),
        Err(e) => Err(CredentialError::BadMaterial {
            key: KEY,
            origin,
            reason: format!("invalid PEM: {e}"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_and_paths_are_told_apart() {
        assert!(is_inline_pem("  \n-----BEGIN CERTIFICATE-----\n"));
        assert_eq!(file_of("/etc/ca.pem"), Some(PathBuf::from("/etc/ca.pem")));
        assert_eq!(file_of("garbage\nwith lines"), None);
    }

    #[test]
    fn missing_file_names_key_and_path() {
        let err = load_certificates("ssl.certificate", "/nonexistent/cert.pem").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("ssl.certificate"), "{msg}");
        assert!(msg.contains("/nonexistent/cert.pem"), "{msg}");
    }

    #[test]
    fn inline_key_garbage_is_not_printed() {
        let err = load_private_key(&Secret::new("secret-material\nmore"), None).unwrap_err();
        let msg = err.to_string();
        assert!(!msg.contains("secret-material"), "{msg}");
        assert!(msg.contains("inline PEM"), "{msg}");
    }

    #[test]
    fn long_single_line_key_is_not_printed_as_a_path() {
        let material = "A".repeat(400);
        let err = load_private_key(&Secret::new(material.clone()), None).unwrap_err();
        assert!(!err.to_string().contains(&material), "{err}");
    }

    #[test]
    fn both_passphrase_settings_is_an_error() {
        let err = load_passphrase(Some(&Secret::new("x")), Some(Path::new("/p"))).unwrap_err();
        assert!(err.is_config());
    }
}
