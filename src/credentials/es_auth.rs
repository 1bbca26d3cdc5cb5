//! Elasticsearch credentials: `api_key`, `username`/`password` and custom `headers`, turned
//! into header values once; the HTTP client only copies them into requests.

use std::collections::BTreeMap;

use base64::Engine as _;

use super::{CredentialError, Secret};
use crate::config::ElasticsearchOutputConfig;

/// The credentials of one Elasticsearch output.
#[derive(Debug, Clone)]
pub struct EsAuth {
    authorization: Option<Secret>,
    credential: String,
    headers: Vec<(String, String)>,
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
    /// From `output.elasticsearch`.
    ///
    /// # Errors
    /// As [`Self::new`].
    pub fn from_config(cfg: &ElasticsearchOutputConfig) -> Result<Self, CredentialError> {
        Self::new(
            cfg.api_key.as_ref(),
            cfg.username.as_deref(),
            cfg.password.as_ref(),
            &cfg.headers,
        )
    }

    /// Validates the credentials and prepares the `Authorization` value.
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
        let (authorization, credential) = match (api_key, username, password) {
            (Some(_), Some(_), _) | (Some(_), None, Some(_)) => {
                return Err(CredentialError::Invalid {
                    key: "api_key",
                    reason: "set either api_key or username/password, not both".to_string(),
                })
            }
            (Some(key), None, None) => (
                Some(Secret::new(format!(
                    "ApiKey {}",
                    normalize_api_key(key)?.expose()
                ))),
                "api_key".to_string(),
            ),
            (None, Some(user), password) => {
                if user.contains(':') {
                    return Err(CredentialError::Invalid {
                        key: "username",
                        reason: "must not contain ':' (Basic authentication separates user and password with it)".to_string(),
                    });
                }
                let pair = format!("{user}:{}", password.map(Secret::expose).unwrap_or(""));
                (
                    Some(Secret::new(format!(
                        "Basic {}",
                        base64::engine::general_purpose::STANDARD.encode(pair.as_bytes())
                    ))),
                    format!("username {user}"),
                )
            }
            (None, None, Some(_)) => {
                return Err(CredentialError::Invalid {
                    key: "password",
                    reason: "is set but username is not".to_string(),
                })
            }
            (None, None, None) => (None, "no credentials".to_string()),
        };
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
            if name.eq_ignore_ascii_case("authorization") && authorization.is_some() {
                return Err(CredentialError::Invalid {
                    key: "headers",
                    reason: format!(
                        "an Authorization header conflicts with {credential}; keep one"
                    ),
                });
            }
            out.push((name.clone(), value.clone()));
        }
        Ok(Self {
            authorization,
            credential,
            headers: out,
        })
    }

    /// The `Authorization` header value (`ApiKey ...` or `Basic ...`), if any.
    pub fn authorization(&self) -> Option<&Secret> {
        self.authorization.as_ref()
    }

    /// The custom headers, in name order.
    pub fn headers(&self) -> &[(String, String)] {
        &self.headers
    }

    /// Which credential is in use, for messages: `api_key`, `username NAME` or `no credentials`.
    pub fn credential(&self) -> &str {
        &self.credential
    }

    /// The error for a 401/403 from `host`: names the credential, never its value. The
    /// output must treat it as a connection failure with backoff, never retry at once.
    pub fn refused(&self, host: &str, status: u16) -> CredentialError {
        CredentialError::Refused {
            credential: self.credential.clone(),
            host: host.to_string(),
            status,
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
        let msg = auth.refused("es1:9200", 401).to_string();
        assert!(msg.contains("api_key") && msg.contains("401") && msg.contains("es1:9200"));
        let auth =
            EsAuth::new(None, Some("elastic"), Some(&Secret::new("changeme")), &none).unwrap();
        assert_eq!(
            auth.authorization().unwrap().expose(),
            "Basic ZWxhc3RpYzpjaGFuZ2VtZQ=="
        );
        let msg = auth.refused("es1:9200", 403).to_string();
        assert!(
            msg.contains("username elastic") && !msg.contains("changeme"),
            "{msg}"
        );
        assert!(format!("{auth:?}").contains("REDACTED"));
        assert!(!format!("{auth:?}").contains("ZWxhc3RpYzpjaGFuZ2VtZQ"));
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
