//! A stand-in for Elasticsearch's API-key security endpoints, answering with the documented
//! shapes (shared/design/elastic-security.md §1.1 create, §1.4 invalidate, §1.8 refusals,
//! §3.1 `_has_privileges`). The OpenSearch node the other tests start cannot be used: its
//! Maven build has no security plugin, so it has no API keys at all.
//!
//! Creating and invalidating go through the HTTP API like any client would do against
//! Elasticsearch; expiry is driven by the test (`expire`), because a real expiry is a wait.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use base64::Engine as _;

use super::es_server::{Seen, Server};

#[derive(Debug, Clone)]
struct Key {
    secret: String,
    /// Application privileges granted: (application, privilege).
    granted: Vec<(String, String)>,
    invalidated: bool,
    expired: bool,
}

/// The keys and the server answering for them.
pub struct Security {
    pub server: Server,
    keys: Arc<Mutex<BTreeMap<String, Key>>>,
}

fn error(status: u16, reason: &str, additional: Option<&str>) -> (u16, String) {
    let mut cause = serde_json::json!({"type":"security_exception","reason":reason,
        "header":{"WWW-Authenticate":["Basic realm=\"security\" charset=\"UTF-8\"","Bearer realm=\"security\"","ApiKey"]}});
    if let Some(a) = additional {
        cause["additional_unsuccessful_credentials"] = a.into();
    }
    let mut err = cause.clone();
    err["root_cause"] = serde_json::json!([cause]);
    (
        status,
        serde_json::json!({"error": err, "status": status}).to_string(),
    )
}

fn answer(keys: &Mutex<BTreeMap<String, Key>>, n: usize, seen: &Seen) -> (u16, String) {
    let path = seen.path_and_query.split('?').next().unwrap_or("");
    let body: serde_json::Value = serde_json::from_str(&seen.body).unwrap_or_default();
    match (seen.method.as_str(), path) {
        ("POST" | "PUT", "/_security/api_key") => {
            let id = format!("key{n}");
            let secret = format!("s3cr3t-{n}-{}", seen.body.len());
            let granted = body["role_descriptors"]
                .as_object()
                .into_iter()
                .flat_map(|m| m.values())
                .flat_map(|r| r["applications"].as_array().cloned().unwrap_or_default())
                .flat_map(|a| {
                    let app = a["application"].as_str().unwrap_or("").to_string();
                    a["privileges"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default()
                        .into_iter()
                        .map(move |p| (app.clone(), p.as_str().unwrap_or("").to_string()))
                })
                .collect();
            keys.lock().unwrap().insert(
                id.clone(),
                Key {
                    secret: secret.clone(),
                    granted,
                    invalidated: false,
                    expired: false,
                },
            );
            let encoded =
                base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"));
            (
                200,
                serde_json::json!({"id": id, "name": body["name"], "api_key": secret, "encoded": encoded})
                    .to_string(),
            )
        }
        ("DELETE", "/_security/api_key") => {
            let mut done = Vec::new();
            let mut before = Vec::new();
            let mut all = keys.lock().unwrap();
            for id in body["ids"].as_array().cloned().unwrap_or_default() {
                let id = id.as_str().unwrap_or("").to_string();
                if let Some(k) = all.get_mut(&id) {
                    if k.invalidated {
                        before.push(id);
                    } else {
                        k.invalidated = true;
                        done.push(id);
                    }
                }
            }
            (
                200,
                serde_json::json!({"invalidated_api_keys": done, "previously_invalidated_api_keys": before, "error_count": 0})
                    .to_string(),
            )
        }
        ("GET" | "POST", "/_security/user/_has_privileges") => {
            let Some(auth) = seen.headers.get("authorization") else {
                return error(
                    401,
                    &format!("missing authentication credentials for REST request [{path}]"),
                    None,
                );
            };
            let refused = |why: &str| {
                error(
                    401,
                    "unable to authenticate with provided credentials and anonymous access is not allowed for this request",
                    Some(&format!("API key: {why}")),
                )
            };
            let Some(encoded) = auth.strip_prefix("ApiKey ") else {
                return refused("invalid credentials");
            };
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .unwrap_or_default();
            let Some((id, secret)) = decoded.split_once(':') else {
                return refused("invalid credentials");
            };
            let all = keys.lock().unwrap();
            let Some(key) = all.get(id) else {
                return refused(&format!("unable to find apikey with id {id}"));
            };
            if key.secret != secret {
                return refused("invalid credentials");
            }
            if key.invalidated {
                return refused("api key has been invalidated");
            }
            if key.expired {
                return refused("api key is expired");
            }
            // Keyed by exactly what was asked (§3.1).
            let mut application = serde_json::Map::new();
            let mut all_granted = true;
            for a in body["application"].as_array().cloned().unwrap_or_default() {
                let app = a["application"].as_str().unwrap_or("").to_string();
                let mut per_res = serde_json::Map::new();
                for r in a["resources"].as_array().cloned().unwrap_or_default() {
                    let mut privs = serde_json::Map::new();
                    for p in a["privileges"].as_array().cloned().unwrap_or_default() {
                        let p = p.as_str().unwrap_or("").to_string();
                        let ok = key.granted.contains(&(app.clone(), p.clone()));
                        all_granted &= ok;
                        privs.insert(p, ok.into());
                    }
                    per_res.insert(r.as_str().unwrap_or("").to_string(), privs.into());
                }
                application.insert(app, per_res.into());
            }
            (
                200,
                serde_json::json!({"username": "elastic", "has_all_requested": all_granted,
                    "cluster": {}, "index": {}, "application": application})
                .to_string(),
            )
        }
        _ => (404, "{}".into()),
    }
}

impl Security {
    pub async fn start() -> Self {
        let keys: Arc<Mutex<BTreeMap<String, Key>>> = Arc::default();
        let k = Arc::clone(&keys);
        let server = Server::start(move |n, seen| answer(&k, n, seen)).await;
        Self { server, keys }
    }

    /// Creates a key through the API; returns (id, encoded).
    pub async fn create(&self, app: &str, privileges: &[&str]) -> (String, String) {
        let body = serde_json::json!({"name": "intake", "role_descriptors": {"writer": {
            "applications": [{"application": app, "privileges": privileges, "resources": ["*"]}]}}});
        let r = reqwest::Client::builder()
            .no_proxy()
            .build()
            .unwrap()
            .post(format!("{}/_security/api_key", self.server.host()))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        let v: serde_json::Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
        (
            v["id"].as_str().unwrap().to_string(),
            v["encoded"].as_str().unwrap().to_string(),
        )
    }

    /// Invalidates a key through the API.
    pub async fn invalidate(&self, id: &str) {
        let r = reqwest::Client::builder()
            .no_proxy()
            .build()
            .unwrap()
            .delete(format!("{}/_security/api_key", self.server.host()))
            .header("content-type", "application/json")
            .body(serde_json::json!({ "ids": [id] }).to_string())
            .send()
            .await
            .unwrap();
        let v: serde_json::Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
        assert_eq!(v["invalidated_api_keys"][0], id);
    }

    /// Lets a key's expiry instant pass.
    pub fn expire(&self, id: &str) {
        self.keys.lock().unwrap().get_mut(id).unwrap().expired = true;
    }

    /// `_has_privileges` requests seen so far.
    pub fn verifications(&self) -> Vec<Seen> {
        self.server
            .seen()
            .into_iter()
            .filter(|s| s.path_and_query.contains("_has_privileges"))
            .collect()
    }
}
