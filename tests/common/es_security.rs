//! A stand-in Elasticsearch with security, on the recording server of `es_server.rs`: the
//! security APIs skidder calls, answered as Elasticsearch documents them
//! (docs: /work/shared/design/elastic-security.md, cited by section below). The OpenSearch
//! node the other tests start is built from Maven Central without its security plugin, so
//! it cannot stand in for these (tests/README.md).
//!
//! - authentication (§1.2, §1.8): `ApiKey base64(id:key)` and `Basic`; an unknown, wrong,
//!   expired or invalidated key is a 401 with `additional_unsuccessful_credentials`;
//! - `POST|PUT /_security/api_key` (§1.1), `GET /_security/api_key` (§1.3: a key may read
//!   its own entry without privileges), `DELETE /_security/api_key` (§1.4);
//! - `GET /_security/_authenticate` (§2), `PUT|POST /_security/role/<name>` (role body
//!   schema checked, unknown fields refused), `GET|POST /_security/user/_has_privileges`
//!   (§3.1: cluster, index and application privileges, the latter as the http_endpoint
//!   intake verifies its clients' keys);
//! - `POST /_bulk` (§3.2, §7): `create` needs create_doc (or create/index/write/all), an
//!   `index` with an `_id` needs index (or create/write/all), without one it is a create; a
//!   missing index needs auto_configure (or create_index/manage/all); per-item 403s as
//!   documented;
//! - `GET /` needs cluster `monitor`.
//!
//! Expiry is driven by the test (`expire`), because a real expiry is a wait. The server of
//! `start` records every request, so `verifications` reads what was asked of
//! `_has_privileges` even when it was refused.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use serde_json::{json, Value};

use crate::es_server::{Seen, Server};

/// An API key as the cluster stores it.
#[derive(Debug, Clone)]
pub struct Key {
    pub id: String,
    pub name: String,
    pub secret: String,
    pub owner: String,
    pub creation: i64,
    pub expiration: Option<i64>,
    pub invalidated: Option<i64>,
    /// `role_descriptors` as given; empty means the owner's rights.
    pub descriptors: Value,
}

impl Key {
    /// The `id:api_key` form `output.elasticsearch.api_key` takes.
    pub fn credential(&self) -> String {
        format!("{}:{}", self.id, self.secret)
    }

    /// `base64(id:api_key)`, the create response's `encoded` and what follows `ApiKey `.
    pub fn encoded(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.credential())
    }
}

#[derive(Debug, Default)]
struct State {
    /// user → (password, roles).
    users: BTreeMap<String, (String, Vec<String>)>,
    roles: BTreeMap<String, Value>,
    keys: Vec<Key>,
    indices: BTreeSet<String>,
    /// Indexed documents.
    docs: Vec<Value>,
    /// The `additional_unsuccessful_credentials` / reason of every 401, in order.
    refusals: Vec<String>,
    next: u64,
}

/// The stand-in cluster; cheap to clone, all clones share the state.
#[derive(Clone, Default)]
pub struct Security {
    state: Arc<Mutex<State>>,
}

/// The `_has_privileges` requests `server` received, in order, refused ones included.
pub fn verifications(server: &Server) -> Vec<Seen> {
    server
        .seen()
        .into_iter()
        .filter(|s| s.path_and_query.contains("_has_privileges"))
        .collect()
}

fn now_ms() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

/// `5s`, `30m`, `2h`, `30d` (the duration strings `expiration` takes, §1.1).
pub fn parse_expiration(s: &str) -> Option<Duration> {
    let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit())?);
    let n: u64 = n.parse().ok()?;
    let secs = match unit {
        "ms" => return Some(Duration::from_millis(n)),
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86400,
        _ => return None,
    };
    Some(Duration::from_secs(secs))
}

/// Checks a role body against Elasticsearch's role descriptor schema (PUT
/// /_security/role): the documented top-level fields only, `cluster` a string list,
/// `indices` entries with string lists `names` and `privileges` and the documented
/// optional fields. `Err` names the first problem, as Elasticsearch's parse_exception does.
pub fn check_role_body(body: &Value) -> Result<(), String> {
    const TOP: [&str; 10] = [
        "cluster",
        "indices",
        "applications",
        "run_as",
        "metadata",
        "global",
        "remote_indices",
        "remote_cluster",
        "description",
        "transient_metadata",
    ];
    const INDEX: [&str; 5] = [
        "names",
        "privileges",
        "field_security",
        "query",
        "allow_restricted_indices",
    ];
    let obj = body.as_object().ok_or("the role body is not an object")?;
    for k in obj.keys() {
        if !TOP.contains(&k.as_str()) {
            return Err(format!("failed to parse role: unexpected field [{k}]"));
        }
    }
    let strings = |v: &Value, what: &str| -> Result<(), String> {
        match v.as_array() {
            Some(a) if a.iter().all(Value::is_string) => Ok(()),
            _ => Err(format!("[{what}] must be an array of strings")),
        }
    };
    if let Some(c) = obj.get("cluster") {
        strings(c, "cluster")?;
    }
    if let Some(m) = obj.get("metadata") {
        if !m.is_object() {
            return Err("[metadata] must be an object".into());
        }
    }
    for entry in obj
        .get("indices")
        .map(|v| v.as_array().cloned().ok_or("[indices] must be an array"))
        .transpose()?
        .unwrap_or_default()
    {
        let e = entry
            .as_object()
            .ok_or("an [indices] entry is not an object")?;
        for k in e.keys() {
            if !INDEX.contains(&k.as_str()) {
                return Err(format!(
                    "failed to parse indices privileges: unexpected field [{k}]"
                ));
            }
        }
        strings(
            e.get("names").ok_or("[indices] entry without [names]")?,
            "names",
        )?;
        strings(
            e.get("privileges")
                .ok_or("[indices] entry without [privileges]")?,
            "privileges",
        )?;
        if let Some(a) = e.get("allow_restricted_indices") {
            if !a.is_boolean() {
                return Err("[allow_restricted_indices] must be a boolean".into());
            }
        }
    }
    Ok(())
}

/// `*` globbing, as role index patterns match names.
fn glob(pattern: &str, text: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == text,
        Some((head, rest)) => {
            if !text.starts_with(head) {
                return false;
            }
            let text = &text[head.len()..];
            (0..=text.len()).any(|i| text.is_char_boundary(i) && glob(rest, &text[i..]))
        }
    }
}

/// The privileges that grant `privilege` (§3.2 and the privilege reference).
fn granted_by(privilege: &str) -> Vec<&'static str> {
    match privilege {
        "create_doc" => vec!["create_doc", "create", "index", "write", "all"],
        "create" => vec!["create", "index", "write", "all"],
        "index" => vec!["index", "write", "all"],
        "auto_configure" => vec!["auto_configure", "create_index", "manage", "all"],
        "manage_own_api_key" => vec![
            "manage_own_api_key",
            "manage_api_key",
            "manage_security",
            "all",
        ],
        "monitor" => vec!["monitor", "manage", "all"],
        "manage_security" => vec!["manage_security", "all"],
        _ => vec!["all"],
    }
}

/// One privilege asked of a principal.
#[derive(Debug, Clone, Copy)]
enum Want<'a> {
    Cluster(&'a str),
    /// (index name, privilege).
    Index(&'a str, &'a str),
    /// (application, resource, privilege).
    Application(&'a str, &'a str, &'a str),
}

/// Who a request authenticated as.
#[derive(Debug, Clone)]
enum Principal {
    User(String),
    Key(Key),
}

impl State {
    fn descriptors_of_user(&self, user: &str) -> Vec<Value> {
        let roles = self
            .users
            .get(user)
            .map(|u| u.1.clone())
            .unwrap_or_default();
        roles
            .iter()
            .map(|r| {
                if r == "superuser" {
                    json!({"cluster": ["all"], "indices": [{"names": ["*"], "privileges": ["all"]}],
                        "applications": [{"application": "*", "privileges": ["*"], "resources": ["*"]}]})
                } else {
                    self.roles.get(r).cloned().unwrap_or(json!({}))
                }
            })
            .collect()
    }

    fn holds(descriptors: &[Value], want: Want) -> bool {
        let strs = |v: &Value| -> Vec<String> {
            v.as_array()
                .into_iter()
                .flatten()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        };
        descriptors.iter().any(|d| match want {
            Want::Cluster(c) => {
                let grants = granted_by(c);
                strs(&d["cluster"])
                    .iter()
                    .any(|p| grants.contains(&p.as_str()))
            }
            Want::Index(name, privilege) => {
                let grants = granted_by(privilege);
                d["indices"].as_array().into_iter().flatten().any(|e| {
                    strs(&e["names"]).iter().any(|p| glob(p, name))
                        && strs(&e["privileges"])
                            .iter()
                            .any(|p| grants.contains(&p.as_str()))
                })
            }
            // §4: application privileges are named per application; `*` globs the
            // application and resource names and grants every privilege.
            Want::Application(application, resource, privilege) => {
                d["applications"].as_array().into_iter().flatten().any(|e| {
                    glob(e["application"].as_str().unwrap_or(""), application)
                        && strs(&e["resources"]).iter().any(|r| glob(r, resource))
                        && strs(&e["privileges"])
                            .iter()
                            .any(|p| p == "*" || p == privilege)
                })
            }
        })
    }

    /// A key's rights are its descriptors intersected with its owner's (§1.1); no
    /// descriptors means the owner's.
    fn allowed(&self, who: &Principal, want: Want) -> bool {
        match who {
            Principal::User(u) => Self::holds(&self.descriptors_of_user(u), want),
            Principal::Key(k) => {
                let owner = Self::holds(&self.descriptors_of_user(&k.owner), want);
                let own: Vec<Value> = k
                    .descriptors
                    .as_object()
                    .map(|m| m.values().cloned().collect())
                    .unwrap_or_default();
                owner && (own.is_empty() || Self::holds(&own, want))
            }
        }
    }
}

fn unauthorized(reason: &str, additional: Option<String>) -> (u16, String) {
    let mut cause = json!({
        "type": "security_exception",
        "reason": reason,
        "header": {"WWW-Authenticate": ["Basic realm=\"security\" charset=\"UTF-8\"", "Bearer realm=\"security\"", "ApiKey"]},
    });
    if let Some(a) = additional {
        cause["additional_unsuccessful_credentials"] = Value::String(a);
    }
    let mut error = cause.clone();
    error["root_cause"] = json!([cause]);
    (401, json!({"error": error, "status": 401}).to_string())
}

fn forbidden(reason: String) -> (u16, String) {
    (
        403,
        json!({"error": {"root_cause": [{"type": "security_exception", "reason": reason}],
            "type": "security_exception", "reason": reason}, "status": 403})
        .to_string(),
    )
}

fn describe(who: &Principal) -> String {
    match who {
        Principal::User(u) => format!("user [{u}]"),
        Principal::Key(k) => format!("API key id [{}] of user [{}]", k.id, k.owner),
    }
}

impl Security {
    /// A cluster with a superuser `admin` (password `admin-pw`).
    pub fn new() -> Self {
        let s = Self::default();
        s.add_user("admin", "admin-pw", &["superuser"]);
        s
    }

    pub fn add_user(&self, name: &str, password: &str, roles: &[&str]) {
        self.state.lock().unwrap().users.insert(
            name.to_string(),
            (
                password.to_string(),
                roles.iter().map(|r| r.to_string()).collect(),
            ),
        );
    }

    pub fn put_role(&self, name: &str, body: Value) {
        self.state
            .lock()
            .unwrap()
            .roles
            .insert(name.to_string(), body);
    }

    pub fn role(&self, name: &str) -> Option<Value> {
        self.state.lock().unwrap().roles.get(name).cloned()
    }

    /// Creates a key owned by `owner` directly (as `POST /_security/api_key` would).
    pub fn create_key(
        &self,
        owner: &str,
        name: &str,
        expiration: Option<Duration>,
        descriptors: Value,
    ) -> Key {
        let mut st = self.state.lock().unwrap();
        st.next += 1;
        let now = now_ms();
        let key = Key {
            id: format!("kid{:04}standin", st.next),
            name: name.to_string(),
            secret: format!("sec{:04}{}", st.next, now % 100_000),
            owner: owner.to_string(),
            creation: now,
            expiration: expiration.map(|d| now + i64::try_from(d.as_millis()).unwrap()),
            invalidated: None,
            descriptors,
        };
        st.keys.push(key.clone());
        key
    }

    pub fn invalidate(&self, id: &str) {
        let mut st = self.state.lock().unwrap();
        for k in st.keys.iter_mut().filter(|k| k.id == id) {
            k.invalidated.get_or_insert(now_ms());
        }
    }

    /// Lets a key's expiry instant pass now (a real expiry would be a wait).
    pub fn expire(&self, id: &str) {
        let now = now_ms();
        let mut st = self.state.lock().unwrap();
        for k in st.keys.iter_mut().filter(|k| k.id == id) {
            k.expiration = Some(k.expiration.map_or(now, |e| e.min(now)));
        }
    }

    pub fn key(&self, id: &str) -> Option<Key> {
        self.state
            .lock()
            .unwrap()
            .keys
            .iter()
            .find(|k| k.id == id)
            .cloned()
    }

    pub fn keys(&self) -> Vec<Key> {
        self.state.lock().unwrap().keys.clone()
    }

    pub fn docs(&self) -> Vec<Value> {
        self.state.lock().unwrap().docs.clone()
    }

    pub fn refusals(&self) -> Vec<String> {
        self.state.lock().unwrap().refusals.clone()
    }

    /// Creates a key owned by `admin` holding only `privileges` of `application` on every
    /// resource, as an intake's clients get (§3.4).
    pub fn create_application_key(&self, application: &str, privileges: &[&str]) -> Key {
        self.create_key(
            "admin",
            "intake",
            None,
            json!({"writer": {"applications": [
                {"application": application, "privileges": privileges, "resources": ["*"]}]}}),
        )
    }

    /// Starts the HTTP server answering for this cluster.
    pub async fn start(&self) -> Server {
        let me = self.clone();
        Server::start(move |_, seen| me.answer(seen)).await
    }

    fn authenticate(&self, seen: &Seen) -> Result<Principal, (u16, String)> {
        let path = seen.path_and_query.split('?').next().unwrap_or("");
        let mut st = self.state.lock().unwrap();
        let Some(header) = seen.headers.get("authorization") else {
            let r = format!("missing authentication credentials for REST request [{path}]");
            st.refusals.push(r.clone());
            return Err(unauthorized(&r, None));
        };
        let (scheme, value) = header.split_once(' ').unwrap_or((header.as_str(), ""));
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(value.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .unwrap_or_default();
        let generic = "unable to authenticate with provided credentials and anonymous access is not allowed for this request";
        if scheme.eq_ignore_ascii_case("apikey") {
            let (id, secret) = decoded.split_once(':').unwrap_or(("", ""));
            let why = match st.keys.iter().find(|k| k.id == id) {
                None => format!("unable to find apikey with id {id}"),
                Some(k) if k.secret != secret => "invalid credentials".to_string(),
                Some(k) if k.invalidated.is_some() => "api key has been invalidated".to_string(),
                Some(k) if k.expiration.is_some_and(|e| now_ms() >= e) => {
                    "api key is expired".to_string()
                }
                Some(k) => return Ok(Principal::Key(k.clone())),
            };
            let additional = format!("API key: {why}");
            st.refusals.push(format!("{id}: {additional}"));
            return Err(unauthorized(generic, Some(additional)));
        }
        if scheme.eq_ignore_ascii_case("basic") {
            let (user, pw) = decoded.split_once(':').unwrap_or(("", ""));
            if st.users.get(user).is_some_and(|u| u.0 == pw) {
                return Ok(Principal::User(user.to_string()));
            }
            let r = format!("unable to authenticate user [{user}] for REST request [{path}]");
            st.refusals.push(r.clone());
            return Err(unauthorized(&r, None));
        }
        st.refusals.push("unknown scheme".into());
        Err(unauthorized(generic, None))
    }

    fn answer(&self, seen: &Seen) -> (u16, String) {
        let who = match self.authenticate(seen) {
            Ok(p) => p,
            Err(reply) => return reply,
        };
        let (path, query) = seen
            .path_and_query
            .split_once('?')
            .unwrap_or((seen.path_and_query.as_str(), ""));
        let params: BTreeMap<String, String> = url::form_urlencoded::parse(query.as_bytes())
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let body: Value = serde_json::from_str(&seen.body).unwrap_or(Value::Null);
        let method = seen.method.as_str();
        match (method, path) {
            ("GET", "/") => self.root(&who),
            ("GET", "/_security/_authenticate") => self.authenticate_reply(&who),
            ("POST" | "PUT", "/_security/api_key") => self.create_key_reply(&who, &body),
            ("GET", "/_security/api_key") => self.get_keys(&who, &params),
            ("DELETE", "/_security/api_key") => self.invalidate_reply(&who, &body),
            ("GET" | "POST", "/_security/user/_has_privileges") => self.has_privileges(&who, &body),
            ("PUT" | "POST", p) if p.starts_with("/_security/role/") => {
                self.put_role_reply(&who, &p["/_security/role/".len()..], &body)
            }
            ("POST" | "PUT", "/_bulk") => self.bulk(&who, seen),
            _ => (
                404,
                json!({"error": format!("no handler found for uri [{path}] and method [{method}]")})
                    .to_string(),
            ),
        }
    }

    fn root(&self, who: &Principal) -> (u16, String) {
        if !self
            .state
            .lock()
            .unwrap()
            .allowed(who, Want::Cluster("monitor"))
        {
            return forbidden(format!(
                "action [cluster:monitor/main] is unauthorized for {}",
                describe(who)
            ));
        }
        (
            200,
            json!({"name": "standin", "cluster_name": "standin", "version": {"number": "8.17.0"}})
                .to_string(),
        )
    }

    fn authenticate_reply(&self, who: &Principal) -> (u16, String) {
        let st = self.state.lock().unwrap();
        let v = match who {
            Principal::User(u) => json!({
                "username": u, "roles": st.users.get(u).map(|x| x.1.clone()).unwrap_or_default(),
                "full_name": null, "email": null, "metadata": {}, "enabled": true,
                "authentication_realm": {"name": "native1", "type": "native"},
                "lookup_realm": {"name": "native1", "type": "native"},
                "authentication_type": "realm"}),
            Principal::Key(k) => json!({
                "username": k.owner, "roles": [], "full_name": null, "email": null,
                "metadata": {}, "enabled": true,
                "authentication_realm": {"name": "_es_api_key", "type": "_es_api_key"},
                "lookup_realm": {"name": "_es_api_key", "type": "_es_api_key"},
                "authentication_type": "api_key",
                "api_key": {"id": k.id, "name": k.name, "managed_by": "elasticsearch"}}),
        };
        (200, v.to_string())
    }

    fn create_key_reply(&self, who: &Principal, body: &Value) -> (u16, String) {
        let owner = match who {
            Principal::User(u) => u.clone(),
            Principal::Key(k) => {
                // §1.1: a key may only derive a key without privileges.
                let empty = body["role_descriptors"].as_object().is_some_and(|m| {
                    !m.is_empty()
                        && m.values().all(|d| {
                            d["cluster"].as_array().is_none_or(Vec::is_empty)
                                && d["indices"].as_array().is_none_or(Vec::is_empty)
                        })
                });
                if !empty {
                    return (400, json!({"error": {"type": "illegal_argument_exception", "reason": "creating derived api keys requires an explicit role descriptor that is empty (has no privileges)"}, "status": 400}).to_string());
                }
                k.owner.clone()
            }
        };
        if !self
            .state
            .lock()
            .unwrap()
            .allowed(who, Want::Cluster("manage_own_api_key"))
        {
            return forbidden(format!(
                "action [cluster:admin/xpack/security/api_key/create] is unauthorized for {}",
                describe(who)
            ));
        }
        let Some(name) = body["name"].as_str() else {
            return (400, json!({"error": {"type": "action_request_validation_exception", "reason": "Validation Failed: 1: api key name is required;"}, "status": 400}).to_string());
        };
        let expiration = match body["expiration"].as_str() {
            Some(e) => match parse_expiration(e) {
                Some(d) => Some(d),
                None => return (400, json!({"error": {"type": "illegal_argument_exception", "reason": format!("failed to parse setting [expiration] with value [{e}]")}, "status": 400}).to_string()),
            },
            None => None,
        };
        if let Some(descriptors) = body["role_descriptors"].as_object() {
            for d in descriptors.values() {
                if let Err(e) = check_role_body(d) {
                    return (
                        400,
                        json!({"error": {"type": "parse_exception", "reason": e}, "status": 400})
                            .to_string(),
                    );
                }
            }
        }
        let key = self.create_key(
            &owner,
            name,
            expiration,
            body.get("role_descriptors").cloned().unwrap_or(json!({})),
        );
        let mut v = json!({
            "id": key.id, "name": key.name, "api_key": key.secret,
            "encoded": key.encoded(),
        });
        if let Some(e) = key.expiration {
            v["expiration"] = json!(e);
        }
        (200, v.to_string())
    }

    fn key_json(k: &Key) -> Value {
        let mut v = json!({
            "id": k.id, "name": k.name, "type": "rest", "creation": k.creation,
            "invalidated": k.invalidated.is_some(), "username": k.owner, "realm": "native1",
            "metadata": {}, "role_descriptors": k.descriptors,
        });
        if let Some(e) = k.expiration {
            v["expiration"] = json!(e);
        }
        if let Some(i) = k.invalidated {
            v["invalidation"] = json!(i);
        }
        v
    }

    fn get_keys(&self, who: &Principal, params: &BTreeMap<String, String>) -> (u16, String) {
        let st = self.state.lock().unwrap();
        let id = params.get("id");
        let name = params.get("name");
        if params.contains_key("with_limited_by") && matches!(who, Principal::Key(_)) {
            return forbidden("with_limited_by needs manage_api_key".into());
        }
        let visible = |k: &&Key| match who {
            // §2: a key reads its own entry without any privilege, only by its id.
            Principal::Key(me) => id.is_some_and(|i| *i == me.id) && k.id == me.id,
            Principal::User(u) => {
                st.allowed(who, Want::Cluster("manage_own_api_key")) && &k.owner == u
            }
        };
        if let Principal::Key(me) = who {
            if id.is_none_or(|i| *i != me.id) {
                return forbidden(format!(
                    "action [cluster:admin/xpack/security/api_key/get] is unauthorized for {}",
                    describe(who)
                ));
            }
        } else if !st.allowed(who, Want::Cluster("manage_own_api_key")) {
            return forbidden(format!(
                "action [cluster:admin/xpack/security/api_key/get] is unauthorized for {}",
                describe(who)
            ));
        }
        let keys: Vec<Value> = st
            .keys
            .iter()
            .filter(visible)
            .filter(|k| id.is_none_or(|i| &k.id == i))
            .filter(|k| name.is_none_or(|n| glob(n, &k.name)))
            .map(Self::key_json)
            .collect();
        if keys.is_empty() && (id.is_some() || name.is_some()) {
            return (404, json!({"error": {"type": "resource_not_found_exception", "reason": "api key not found"}, "status": 404}).to_string());
        }
        (200, json!({"api_keys": keys}).to_string())
    }

    fn invalidate_reply(&self, who: &Principal, body: &Value) -> (u16, String) {
        let mut st = self.state.lock().unwrap();
        let ids: Vec<String> = body["ids"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let name = body["name"].as_str();
        if ids.is_empty() && name.is_none() && body["owner"] != json!(true) {
            return (400, json!({"error": {"type": "action_request_validation_exception", "reason": "Validation Failed: 1: One of [api key id(s), api key name, username, realm name] must be specified if [owner] flag is false;"}, "status": 400}).to_string());
        }
        let may = match who {
            Principal::Key(me) => ids == [me.id.clone()],
            Principal::User(_) => st.allowed(who, Want::Cluster("manage_own_api_key")),
        };
        if !may {
            return forbidden(format!(
                "action [cluster:admin/xpack/security/api_key/invalidate] is unauthorized for {}",
                describe(who)
            ));
        }
        let owner = match who {
            Principal::User(u) => u.clone(),
            Principal::Key(k) => k.owner.clone(),
        };
        let (mut done, mut before) = (Vec::new(), Vec::new());
        let now = now_ms();
        for k in st.keys.iter_mut().filter(|k| {
            k.owner == owner
                && (ids.contains(&k.id)
                    || name.is_some_and(|n| glob(n, &k.name))
                    || (ids.is_empty() && name.is_none()))
        }) {
            if k.invalidated.is_some() {
                before.push(k.id.clone());
            } else {
                k.invalidated = Some(now);
                done.push(k.id.clone());
            }
        }
        (
            200,
            json!({"invalidated_api_keys": done, "previously_invalidated_api_keys": before, "error_count": 0})
                .to_string(),
        )
    }

    fn has_privileges(&self, who: &Principal, body: &Value) -> (u16, String) {
        let st = self.state.lock().unwrap();
        let mut all = true;
        let mut cluster = serde_json::Map::new();
        for c in body["cluster"].as_array().into_iter().flatten() {
            let c = c.as_str().unwrap_or("");
            let ok = st.allowed(who, Want::Cluster(c));
            all &= ok;
            cluster.insert(c.to_string(), Value::Bool(ok));
        }
        let mut index = serde_json::Map::new();
        for entry in body["index"].as_array().into_iter().flatten() {
            let names: Vec<String> = match &entry["names"] {
                Value::String(s) => vec![s.clone()],
                v => v
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|n| n.as_str().map(str::to_string))
                    .collect(),
            };
            for n in names {
                let mut privs = serde_json::Map::new();
                for p in entry["privileges"].as_array().into_iter().flatten() {
                    let p = p.as_str().unwrap_or("");
                    let ok = st.allowed(who, Want::Index(&n, p));
                    all &= ok;
                    privs.insert(p.to_string(), Value::Bool(ok));
                }
                index.insert(n, Value::Object(privs));
            }
        }
        // Keyed by exactly what was asked: app → resource → privilege → bool (§3.1).
        let mut application = serde_json::Map::new();
        for entry in body["application"].as_array().into_iter().flatten() {
            let app = entry["application"].as_str().unwrap_or("");
            let mut per_resource = serde_json::Map::new();
            for r in entry["resources"].as_array().into_iter().flatten() {
                let r = r.as_str().unwrap_or("");
                let mut privs = serde_json::Map::new();
                for p in entry["privileges"].as_array().into_iter().flatten() {
                    let p = p.as_str().unwrap_or("");
                    let ok = st.allowed(who, Want::Application(app, r, p));
                    all &= ok;
                    privs.insert(p.to_string(), Value::Bool(ok));
                }
                per_resource.insert(r.to_string(), Value::Object(privs));
            }
            application.insert(app.to_string(), Value::Object(per_resource));
        }
        let username = match who {
            Principal::User(u) => u.clone(),
            Principal::Key(k) => k.owner.clone(),
        };
        (
            200,
            json!({"username": username, "has_all_requested": all, "cluster": cluster,
                   "index": index, "application": application})
            .to_string(),
        )
    }

    fn put_role_reply(&self, who: &Principal, name: &str, body: &Value) -> (u16, String) {
        if !self
            .state
            .lock()
            .unwrap()
            .allowed(who, Want::Cluster("manage_security"))
        {
            return forbidden(format!(
                "action [cluster:admin/xpack/security/role/put] is unauthorized for {}",
                describe(who)
            ));
        }
        if let Err(e) = check_role_body(body) {
            return (
                400,
                json!({"error": {"type": "parse_exception", "reason": e}, "status": 400})
                    .to_string(),
            );
        }
        let created = self
            .state
            .lock()
            .unwrap()
            .roles
            .insert(name.to_string(), body.clone())
            .is_none();
        (200, json!({"role": {"created": created}}).to_string())
    }

    fn bulk(&self, who: &Principal, seen: &Seen) -> (u16, String) {
        let lines = seen.lines();
        let mut st = self.state.lock().unwrap();
        let mut items = Vec::new();
        let mut errors = false;
        for pair in lines.chunks(2) {
            let (op, meta) = pair[0]
                .as_object()
                .and_then(|o| o.iter().next())
                .map(|(k, v)| (k.clone(), v.clone()))
                .unwrap_or_default();
            let index = meta["_index"].as_str().unwrap_or("").to_string();
            // §3.2: an index action whose id the cluster generates is authorized as a create.
            let needed = match (op.as_str(), meta.get("_id")) {
                ("index", Some(_)) => "index",
                _ => "create_doc",
            };
            let write_ok = st.allowed(who, Want::Index(&index, needed));
            let create_ok = st.indices.contains(&index)
                || st.allowed(who, Want::Index(&index, "auto_configure"));
            let item = if !write_ok {
                errors = true;
                json!({op.clone(): {"_index": index, "status": 403, "error": {"type": "security_exception",
                  "reason": format!("action [indices:data/write/bulk[s]] is unauthorized for {} on indices [{index}], this action is granted by the index privileges [create_doc,create,delete,index,write,all]", describe(who))}}})
            } else if !create_ok {
                errors = true;
                json!({op.clone(): {"_index": index, "status": 403, "error": {"type": "security_exception",
                  "reason": format!("action [indices:admin/auto_create] is unauthorized for {} on indices [{index}], this action is granted by the index privileges [auto_configure,create_index,manage,all]", describe(who))}}})
            } else {
                st.indices.insert(index.clone());
                if let Some(doc) = pair.get(1) {
                    st.docs.push(doc.clone());
                }
                json!({op.clone(): {"_index": index, "result": "created", "status": 201}})
            };
            items.push(item);
        }
        (
            200,
            json!({"took": 1, "errors": errors, "items": items}).to_string(),
        )
    }
}
