//! Request authentication shared by the HTTP endpoints: the `Authorization` header's
//! schemes and comparisons that take the same time whatever the guess.
//!
//! Every comparison of a presented secret with the configured one hashes both with SHA-256
//! and compares the digests in constant time (`subtle`), so neither the position of the
//! first wrong byte nor the secret's length shows in the reply time. Filebeat's
//! `http_endpoint` compares basic-auth and secret-header values with `!=`; skidder does not.

use base64::Engine as _;
use hyper::header::{HeaderMap, AUTHORIZATION};
use subtle::ConstantTimeEq as _;

use crate::config::HttpAuthConfig;
use crate::credentials::Secret;

/// True when `presented` equals `expected`, in time independent of both.
pub fn same_secret(presented: &[u8], expected: &[u8]) -> bool {
    let a = ring::digest::digest(&ring::digest::SHA256, presented);
    let b = ring::digest::digest(&ring::digest::SHA256, expected);
    a.as_ref().ct_eq(b.as_ref()).into()
}

/// The credential of an `Authorization` header.
#[derive(PartialEq, Eq)]
pub enum Presented {
    /// `Bearer <token>`.
    Bearer(String),
    /// `ApiKey <base64(id:key)>`.
    ApiKey(String),
    /// `Basic <base64(user:password)>`, decoded.
    Basic {
        /// The user.
        user: String,
        /// The password.
        password: String,
    },
    /// Another scheme (its name only).
    Other(String),
    /// A header that is not `scheme credentials` or whose Basic value does not decode.
    Malformed,
}

impl std::fmt::Debug for Presented {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the credential itself.
        match self {
            Self::Bearer(_) => f.write_str("Bearer(REDACTED)"),
            Self::ApiKey(_) => f.write_str("ApiKey(REDACTED)"),
            Self::Basic { user, .. } => write!(f, "Basic({user}, REDACTED)"),
            Self::Other(s) => write!(f, "Other({s})"),
            Self::Malformed => f.write_str("Malformed"),
        }
    }
}

/// The `Authorization` header of `headers`, split at the first space as APM Server does;
/// `None` when absent.
pub fn presented(headers: &HeaderMap) -> Option<Presented> {
    let value = headers.get(AUTHORIZATION)?;
    let Ok(text) = value.to_str() else {
        return Some(Presented::Malformed);
    };
    let Some((scheme, cred)) = text.trim().split_once(' ') else {
        return Some(Presented::Malformed);
    };
    let cred = cred.trim();
    Some(match scheme.to_ascii_lowercase().as_str() {
        "bearer" => Presented::Bearer(cred.to_string()),
        "apikey" => Presented::ApiKey(cred.to_string()),
        "basic" => {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(cred)
                .ok()
                .and_then(|b| String::from_utf8(b).ok());
            match decoded.as_deref().and_then(|s| s.split_once(':')) {
                Some((u, p)) => Presented::Basic {
                    user: u.to_string(),
                    password: p.to_string(),
                },
                None => Presented::Malformed,
            }
        }
        _ => Presented::Other(scheme.to_string()),
    })
}

/// True when `presented` is Basic with this user and password (both compared in
/// constant time).
pub fn basic_matches(presented: Option<&Presented>, user: &str, password: &Secret) -> bool {
    match presented {
        Some(Presented::Basic {
            user: u,
            password: p,
        }) => {
            // Both compared, always, so a right user with a wrong password takes as long as
            // a wrong user.
            let user_ok = same_secret(u.as_bytes(), user.as_bytes());
            let pass_ok = same_secret(p.as_bytes(), password.expose().as_bytes());
            user_ok & pass_ok
        }
        _ => false,
    }
}

/// `http.auth.*` of the monitoring endpoint, validated.
#[derive(Debug, Clone, Default)]
pub struct EndpointAuth {
    bearer: Option<Secret>,
    basic: Option<(String, Secret)>,
}

impl EndpointAuth {
    /// Validates `http.auth.*`.
    ///
    /// # Errors
    /// The key and the problem: a user without password or the reverse, an empty token.
    pub fn from_config(c: &HttpAuthConfig) -> Result<Self, (&'static str, String)> {
        let bearer = match &c.bearer_token {
            Some(t) if t.expose().trim().is_empty() => {
                return Err(("http.auth.bearer_token", "is empty".into()))
            }
            other => other.clone(),
        };
        let basic = match (&c.username, &c.password) {
            (Some(u), Some(p)) if !u.is_empty() && !p.is_empty() => Some((u.clone(), p.clone())),
            (None, None) => None,
            _ => {
                return Err((
                    "http.auth.username",
                    "username and password go together, both non-empty".into(),
                ))
            }
        };
        Ok(Self { bearer, basic })
    }

    /// True when requests must authenticate.
    pub fn is_required(&self) -> bool {
        self.bearer.is_some() || self.basic.is_some()
    }

    /// True when the request may pass: no credential configured, or one of them presented.
    pub fn allows(&self, headers: &HeaderMap) -> bool {
        if !self.is_required() {
            return true;
        }
        let p = presented(headers);
        let bearer_ok = match (&self.bearer, &p) {
            (Some(t), Some(Presented::Bearer(b))) => {
                same_secret(b.as_bytes(), t.expose().as_bytes())
            }
            _ => false,
        };
        let basic_ok = match &self.basic {
            Some((u, pw)) => basic_matches(p.as_ref(), u, pw),
            None => false,
        };
        bearer_ok || basic_ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    fn headers(auth: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, HeaderValue::from_str(auth).unwrap());
        h
    }

    #[test]
    fn schemes_are_recognised() {
        assert_eq!(
            presented(&headers("Bearer abc")),
            Some(Presented::Bearer("abc".into()))
        );
        assert_eq!(
            presented(&headers("ApiKey Zm9vOmJhcg==")),
            Some(Presented::ApiKey("Zm9vOmJhcg==".into()))
        );
        assert_eq!(
            presented(&headers("Basic dTpw")),
            Some(Presented::Basic {
                user: "u".into(),
                password: "p".into()
            })
        );
        assert_eq!(presented(&headers("Bearer")), Some(Presented::Malformed));
        assert_eq!(presented(&headers("Basic !!!")), Some(Presented::Malformed));
        assert_eq!(
            presented(&headers("Digest x")),
            Some(Presented::Other("Digest".into()))
        );
        assert_eq!(presented(&HeaderMap::new()), None);
    }

    #[test]
    fn endpoint_auth_accepts_either_configured_credential() {
        let auth = EndpointAuth::from_config(&HttpAuthConfig {
            bearer_token: Some(Secret::new("tok")),
            username: Some("mon".into()),
            password: Some(Secret::new("pw")),
        })
        .unwrap();
        assert!(auth.allows(&headers("Bearer tok")));
        assert!(auth.allows(&headers("Basic bW9uOnB3")));
        assert!(!auth.allows(&headers("Bearer tok2")));
        assert!(!auth.allows(&headers("Basic bW9uOnB4")));
        assert!(!auth.allows(&HeaderMap::new()));
        assert!(EndpointAuth::default().allows(&HeaderMap::new()));
        assert!(EndpointAuth::from_config(&HttpAuthConfig {
            username: Some("u".into()),
            ..HttpAuthConfig::default()
        })
        .is_err());
    }

    #[test]
    fn secrets_compare_by_content() {
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abc", b"abd"));
        assert!(!same_secret(b"abc", b"abcd"));
    }
}
