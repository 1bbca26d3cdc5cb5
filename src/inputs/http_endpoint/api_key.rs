//! `auth.api_key`: Elasticsearch API keys presented by clients (`Authorization: ApiKey
//! base64(id:key)`), verified as APM Server does: `_security/user/_has_privileges` sent to
//! Elasticsearch *with the client's own key*, asking for the one privilege the user named.
//!
//! * Verdicts (allowed, refused, forbidden) are cached for `cache.expiry` under the SHA-256
//!   of the header value, so no key material is kept; an invalidated or expired key is
//!   therefore refused at most `cache.expiry` after Elasticsearch stops accepting it.
//! * At most `limit` verifications per minute reach Elasticsearch; beyond, and when
//!   Elasticsearch cannot answer, the client gets 503 (not a refusal: its key may be good).
//! * The Elasticsearch hosts and TLS are `auth.api_key.elasticsearch`, or
//!   `output.elasticsearch` with its `username`, `password` and `api_key` removed, so only
//!   the client's key is ever sent.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;

use crate::credentials::Secret;
use crate::outputs::elasticsearch::client::EsClient;

/// What Elasticsearch said about a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The key holds the privilege.
    Allowed,
    /// The key does not authenticate (401): expired, invalidated, unknown or wrong.
    Refused(String),
    /// The key authenticates but lacks the privilege (403).
    Forbidden(String),
}

/// Why a key could not be checked now (503).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Unavailable(pub String);

/// The required privilege.
#[derive(Debug, Clone)]
pub enum Privilege {
    /// An application privilege on a resource.
    Application {
        /// The application.
        application: String,
        /// The privilege.
        privilege: String,
        /// The resource.
        resource: String,
    },
    /// An index privilege on an index pattern.
    Index {
        /// The pattern.
        index: String,
        /// The privilege.
        privilege: String,
    },
}

impl Privilege {
    /// The `_has_privileges` request body.
    pub fn request(&self) -> serde_json::Value {
        match self {
            Self::Application {
                application,
                privilege,
                resource,
            } => serde_json::json!({"application": [{
                "application": application, "privileges": [privilege], "resources": [resource]}]}),
            Self::Index { index, privilege } => {
                serde_json::json!({"index": [{"names": [index], "privileges": [privilege]}]})
            }
        }
    }

    /// The privilege's value in a `_has_privileges` response, `None` when absent.
    pub fn granted(&self, response: &serde_json::Value) -> Option<bool> {
        match self {
            Self::Application {
                application,
                privilege,
                resource,
            } => response
                .get("application")?
                .get(application)?
                .get(resource)?
                .get(privilege)?
                .as_bool(),
            Self::Index { index, privilege } => {
                response.get("index")?.get(index)?.get(privilege)?.as_bool()
            }
        }
    }

    /// In words, for a 403 body.
    pub fn describe(&self) -> String {
        match self {
            Self::Application {
                application,
                privilege,
                resource,
            } => format!(
                "application privilege {privilege:?} of {application:?} on resource {resource:?}"
            ),
            Self::Index { index, privilege } => {
                format!("index privilege {privilege:?} on {index:?}")
            }
        }
    }
}

/// The reason of an Elasticsearch 401 for an API key, in words a client can act on
/// (elastic-security §1.8: `additional_unsuccessful_credentials` reads `API key: <why>`).
pub fn refusal_reason(body: &[u8]) -> String {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let detail = v
        .pointer("/error/additional_unsuccessful_credentials")
        .or_else(|| v.pointer("/error/root_cause/0/additional_unsuccessful_credentials"))
        .or_else(|| v.pointer("/error/reason"))
        .and_then(|d| d.as_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    if detail.contains("expired") {
        "API key expired".into()
    } else if detail.contains("invalidated") {
        "API key invalidated".into()
    } else if detail.contains("unable to find apikey") {
        "unknown API key".into()
    } else {
        "API key refused by Elasticsearch".into()
    }
}

/// `id` of `base64(id:key)`, or why it is malformed (the text never holds the key).
///
/// # Errors
/// A message for a 401 body.
pub fn key_id(credential: &str) -> Result<String, &'static str> {
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(credential.trim())
        .map_err(|_| "the ApiKey credential is not base64(id:key)")?;
    let text =
        std::str::from_utf8(&decoded).map_err(|_| "the ApiKey credential is not base64(id:key)")?;
    match text.split_once(':') {
        Some((id, key)) if !id.is_empty() && !key.is_empty() => Ok(id.to_string()),
        _ => Err("the ApiKey credential is not base64(id:key)"),
    }
}

/// Verifies keys against Elasticsearch, with a cache and a rate limit.
pub struct Verifier {
    client: EsClient,
    privilege: Privilege,
    request: serde_json::Value,
    cache_size: usize,
    expiry: Duration,
    per_minute: u32,
    cache: Mutex<HashMap<[u8; 32], (Verdict, Instant)>>,
    window: Mutex<(Instant, u32)>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("privilege", &self.privilege)
            .field("cache_size", &self.cache_size)
            .field("expiry", &self.expiry)
            .field("per_minute", &self.per_minute)
            .finish()
    }
}

impl Verifier {
    /// A verifier asking through `client` (built without credentials of its own).
    pub fn new(
        client: EsClient,
        privilege: Privilege,
        cache_size: usize,
        expiry: Duration,
        per_minute: u32,
    ) -> Self {
        Self {
            client,
            request: privilege.request(),
            privilege,
            cache_size,
            expiry,
            per_minute,
            cache: Mutex::new(HashMap::new()),
            window: Mutex::new((Instant::now(), 0)),
        }
    }

    /// The verdict on `credential` (the part after `ApiKey `).
    ///
    /// # Errors
    /// [`Unavailable`] when the limit is reached or Elasticsearch cannot answer.
    pub async fn verify(&self, credential: &str) -> Result<Verdict, Unavailable> {
        let id = match key_id(credential) {
            Ok(id) => id,
            Err(why) => return Ok(Verdict::Refused(why.into())),
        };
        let digest = ring::digest::digest(&ring::digest::SHA256, credential.trim().as_bytes());
        let mut hash = [0u8; 32];
        hash.copy_from_slice(digest.as_ref());
        if let Some(v) = self.cached(&hash) {
            return Ok(v);
        }
        self.admit()?;
        let auth = Secret::new(format!("ApiKey {}", credential.trim()));
        let mut last = String::from("no Elasticsearch host");
        for host in 0..self.client.hosts().len() {
            match self
                .client
                .request_as(
                    host,
                    "_security/user/_has_privileges",
                    Some(&self.request),
                    &auth,
                )
                .await
            {
                Ok(reply) => {
                    let verdict = match reply.status {
                        200 => {
                            let v: serde_json::Value =
                                serde_json::from_slice(&reply.body).unwrap_or_default();
                            match self.privilege.granted(&v) {
                                Some(true) => Verdict::Allowed,
                                Some(false) => Verdict::Forbidden(format!(
                                    "API key {id} lacks the {}",
                                    self.privilege.describe()
                                )),
                                None => {
                                    return Err(Unavailable(
                                        "Elasticsearch answered _has_privileges without the privilege asked for".into(),
                                    ))
                                }
                            }
                        }
                        401 => Verdict::Refused(refusal_reason(&reply.body)),
                        403 => {
                            Verdict::Forbidden(format!("API key {id} may not check its privileges"))
                        }
                        s => {
                            last = format!("Elasticsearch answered HTTP {s}");
                            continue;
                        }
                    };
                    self.remember(hash, verdict.clone());
                    return Ok(verdict);
                }
                Err(e) => last = e.to_string(),
            }
        }
        Err(Unavailable(format!("cannot verify the API key: {last}")))
    }

    fn cached(&self, hash: &[u8; 32]) -> Option<Verdict> {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        match cache.get(hash) {
            Some((v, at)) if at.elapsed() < self.expiry => Some(v.clone()),
            Some(_) => {
                cache.remove(hash);
                None
            }
            None => None,
        }
    }

    fn remember(&self, hash: [u8; 32], verdict: Verdict) {
        if self.expiry.is_zero() || self.cache_size == 0 {
            return;
        }
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= self.cache_size {
            let expiry = self.expiry;
            cache.retain(|_, (_, at)| at.elapsed() < expiry);
        }
        if cache.len() >= self.cache_size {
            // Still full of live entries: the oldest goes.
            if let Some(oldest) = cache.iter().min_by_key(|(_, (_, at))| *at).map(|(k, _)| *k) {
                cache.remove(&oldest);
            }
        }
        cache.insert(hash, (verdict, Instant::now()));
    }

    /// Counts one verification against `limit` per minute.
    fn admit(&self) -> Result<(), Unavailable> {
        let mut w = self.window.lock().unwrap_or_else(|p| p.into_inner());
        if w.0.elapsed() >= Duration::from_secs(60) {
            *w = (Instant::now(), 0);
        }
        if w.1 >= self.per_minute {
            return Err(Unavailable(format!(
                "auth.api_key.limit of {} verifications per minute reached; try later or raise it",
                self.per_minute
            )));
        }
        w.1 += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_say_which() {
        let expired = br#"{"error":{"root_cause":[{"type":"security_exception","reason":"unable to authenticate with provided credentials and anonymous access is not allowed for this request","additional_unsuccessful_credentials":"API key: api key is expired"}],"type":"security_exception","reason":"unable to authenticate with provided credentials and anonymous access is not allowed for this request","additional_unsuccessful_credentials":"API key: api key is expired"},"status":401}"#;
        assert_eq!(refusal_reason(expired), "API key expired");
        let inv = br#"{"error":{"additional_unsuccessful_credentials":"API key: api key has been invalidated"},"status":401}"#;
        assert_eq!(refusal_reason(inv), "API key invalidated");
        let unknown = br#"{"error":{"additional_unsuccessful_credentials":"API key: unable to find apikey with id abc"},"status":401}"#;
        assert_eq!(refusal_reason(unknown), "unknown API key");
        assert_eq!(
            refusal_reason(b"garbage"),
            "API key refused by Elasticsearch"
        );
    }

    #[test]
    fn privileges_are_read_from_the_response_shape() {
        let app = Privilege::Application {
            application: "skidder".into(),
            privilege: "event:write".into(),
            resource: "*".into(),
        };
        let yes = serde_json::json!({"username":"u","has_all_requested":true,"application":{"skidder":{"*":{"event:write":true}}}});
        assert_eq!(app.granted(&yes), Some(true));
        assert_eq!(app.granted(&serde_json::json!({})), None);
        let idx = Privilege::Index {
            index: "logs-*".into(),
            privilege: "create_doc".into(),
        };
        let no = serde_json::json!({"index":{"logs-*":{"create_doc":false}}});
        assert_eq!(idx.granted(&no), Some(false));
        assert_eq!(idx.request()["index"][0]["names"][0], "logs-*");
    }

    #[test]
    fn key_ids() {
        assert_eq!(key_id("aWQxOnNlY3JldA==").unwrap(), "id1");
        assert!(key_id("not base64!").is_err());
        assert!(key_id("aWQx").is_err());
    }
}
