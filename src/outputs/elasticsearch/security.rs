//! `skidder setup roles` and `skidder apikey create|info|invalidate|verify`: the cluster's
//! security API (elastic-security.md §1, §3), over the configured `output.elasticsearch`
//! connection (hosts, TLS, credentials), first host that answers.
//!
//! What is printed: role bodies, key ids, names and dates. A secret is printed once, by
//! `apikey create`, and only when it is not stored in the keystore (`--keystore-key`);
//! every other text passes through the configuration's redactor.

use std::fmt::Write as _;
use std::io::Read as _;

use serde_json::{json, Value};

use super::client::{EsClient, EsError, Method};
use super::roles::{self, Feature};
use super::settings::{ElasticsearchSettings, SettingsError};
use crate::config::ElasticsearchOutputConfig;
use crate::credentials::expiry::format_time;
use crate::credentials::keystore::{self, Keystore, KeystoreError};
use crate::credentials::Secret;

/// Why a security command failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SecurityError {
    /// `output.elasticsearch` is not configured.
    #[error(
        "output.elasticsearch is not configured; these commands use its hosts and credentials"
    )]
    NoOutput,
    /// Its settings cannot be used.
    #[error(transparent)]
    Settings(Box<SettingsError>),
    /// The HTTP client or a request failed.
    #[error(transparent)]
    Request(Box<EsError>),
    /// The cluster answered with an error.
    #[error("{what}: HTTP {status}: {reason}")]
    Refused {
        /// What was asked.
        what: String,
        /// HTTP status.
        status: u16,
        /// The cluster's reason.
        reason: String,
    },
    /// A usage problem (a flag combination).
    #[error("{0}")]
    Usage(String),
    /// The keystore could not store the key.
    #[error(transparent)]
    Keystore(#[from] KeystoreError),
    /// Reading `--credentials -` from stdin failed.
    #[error("cannot read the credentials from standard input: {0}")]
    Stdin(std::io::Error),
}

impl From<SettingsError> for SecurityError {
    fn from(e: SettingsError) -> Self {
        Self::Settings(Box::new(e))
    }
}

impl From<EsError> for SecurityError {
    fn from(e: EsError) -> Self {
        Self::Request(Box::new(e))
    }
}

/// `skidder setup ...`.
#[derive(Debug, clap::Subcommand)]
pub enum SetupCommand {
    /// Print (and with --apply create) the least-privilege feature roles skidder needs.
    Roles(RolesArgs),
}

/// `skidder setup roles` flags.
#[derive(Debug, clap::Args)]
pub struct RolesArgs {
    /// Print the exact requests and JSON bodies, create nothing.
    #[arg(long, conflicts_with = "apply")]
    pub dry_run: bool,
    /// Create or update the roles through `_security/role` (needs `manage_security`).
    #[arg(long)]
    pub apply: bool,
    /// Name of the writer role.
    #[arg(long, default_value = "skidder_writer")]
    pub writer_role: String,
    /// Name of the API key manager role.
    #[arg(long, default_value = "skidder_api_key_manager")]
    pub api_key_manager_role: String,
}

/// `skidder apikey ...`.
#[derive(Debug, clap::Subcommand)]
pub enum ApikeyCommand {
    /// Create an API key limited to a feature role's privileges; prints it once.
    Create {
        /// The key's name.
        #[arg(long)]
        name: String,
        /// Lifetime, e.g. `30d`, `12h` (Elasticsearch's duration strings); never expires
        /// when omitted.
        #[arg(long)]
        expiration: Option<String>,
        /// The feature role whose privileges the key gets.
        #[arg(long, value_enum, default_value = "writer")]
        role: Feature,
        /// Store `id:api_key` in the keystore under this name instead of printing it
        /// (replaces an existing entry: a running skidder using `${NAME}` picks it up).
        #[arg(long, value_name = "NAME")]
        keystore_key: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show keys: id, name, creation, expiration, invalidated.
    Info {
        /// The key's id.
        #[arg(long, conflicts_with = "name")]
        id: Option<String>,
        /// The key's name (a `*` wildcard is allowed).
        #[arg(long)]
        name: Option<String>,
        /// Only keys neither expired nor invalidated.
        #[arg(long)]
        valid_only: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Invalidate keys by id or name.
    Invalidate {
        /// The key's id.
        #[arg(long, conflicts_with = "name", required_unless_present = "name")]
        id: Option<String>,
        /// The key's name.
        #[arg(long)]
        name: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Check which feature roles' privileges a key has.
    Verify {
        /// The key to check (`id:api_key` or its base64 form); `-` reads it from stdin.
        #[arg(long)]
        credentials: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

struct Cluster {
    client: EsClient,
    settings: ElasticsearchSettings,
}

impl Cluster {
    fn new(cfg: Option<&ElasticsearchOutputConfig>) -> Result<Self, SecurityError> {
        let cfg = cfg.ok_or(SecurityError::NoOutput)?;
        let settings = ElasticsearchSettings::from_config(cfg)?;
        let client = EsClient::new(&settings)?;
        Ok(Self { client, settings })
    }

    /// Sends to the first host that can be reached; a reply with a non-2xx status is an
    /// error naming `what`.
    async fn call(
        &self,
        method: Method,
        endpoint: &str,
        body: Option<&Value>,
        what: &str,
    ) -> Result<Value, SecurityError> {
        let mut last = None;
        for host in 0..self.client.hosts().len() {
            match self.client.request_with(host, method, endpoint, body).await {
                Ok(r) if (200..300).contains(&r.status) => {
                    return Ok(serde_json::from_slice(&r.body).unwrap_or(Value::Null))
                }
                Ok(r) => {
                    return Err(SecurityError::Refused {
                        what: what.to_string(),
                        status: r.status,
                        reason: crate::credentials::es_auth::refusal_reason(&r.body),
                    })
                }
                Err(e) if e.is_host_failure() => last = Some(e),
                Err(e) => return Err(e.into()),
            }
        }
        Err(last
            .map(SecurityError::from)
            .unwrap_or(SecurityError::NoOutput))
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, SecurityError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| SecurityError::Usage(format!("cannot start the runtime: {e}")))
}

/// The feature roles for `settings` under the names of `args`.
pub fn feature_roles(
    settings: &ElasticsearchSettings,
    args: &RolesArgs,
) -> Vec<roles::FeatureRole> {
    Feature::ALL
        .iter()
        .map(|f| {
            let name = match f {
                Feature::Writer => &args.writer_role,
                Feature::ApiKeyManager => &args.api_key_manager_role,
            };
            roles::role(*f, name, settings)
        })
        .collect()
}

/// `skidder setup roles`: the text to print.
///
/// # Errors
/// [`SecurityError`]: no usable `output.elasticsearch`, or (with `--apply`) a refused
/// request.
pub fn setup_roles(
    cfg: Option<&ElasticsearchOutputConfig>,
    args: &RolesArgs,
) -> Result<String, SecurityError> {
    let cfg = cfg.ok_or(SecurityError::NoOutput)?;
    let settings = ElasticsearchSettings::from_config(cfg)?;
    let roles = feature_roles(&settings, args);
    let mut out = String::new();
    if args.apply {
        let cluster = Cluster::new(Some(cfg))?;
        let rt = runtime()?;
        for r in &roles {
            let endpoint = format!("_security/role/{}", r.name);
            let reply = rt.block_on(cluster.call(
                Method::Put,
                &endpoint,
                Some(&r.body()),
                &format!("creating role {}", r.name),
            ))?;
            let verb = if reply["role"]["created"].as_bool() == Some(true) {
                "created"
            } else {
                "updated"
            };
            let _ = writeln!(
                out,
                "role {} {verb} ({} feature)",
                r.name,
                r.feature.as_str()
            );
        }
        return Ok(out);
    }
    for r in &roles {
        if args.dry_run {
            let body = serde_json::to_string_pretty(&r.body()).unwrap_or_default();
            let _ = writeln!(out, "PUT /_security/role/{}\n{body}\n", r.name);
        } else {
            let indices: Vec<String> = r
                .indices
                .iter()
                .map(|g| format!("{} on {}", g.privileges.join(", "), g.names.join(", ")))
                .collect();
            let _ = writeln!(
                out,
                "{} ({} feature): cluster [{}], indices [{}]",
                r.name,
                r.feature.as_str(),
                r.cluster.join(", "),
                indices.join("; ")
            );
        }
    }
    if !args.dry_run {
        out.push_str(
            "skidder ships no metrics to Elasticsearch, so no monitoring role is needed.\n\
             --dry-run prints the request bodies; --apply creates the roles.\n",
        );
    }
    Ok(out)
}

fn date_of(ms: Option<i64>) -> String {
    ms.and_then(|ms| {
        time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()
    })
    .map_or_else(|| "never".to_string(), format_time)
}

/// `skidder apikey ...`: the text to print.
///
/// # Errors
/// [`SecurityError`].
pub fn apikey(
    cfg: Option<&ElasticsearchOutputConfig>,
    command: &ApikeyCommand,
    data_dir: &std::path::Path,
) -> Result<String, SecurityError> {
    let rt = runtime()?;
    match command {
        ApikeyCommand::Create {
            name,
            expiration,
            role,
            keystore_key,
            json,
        } => {
            let cluster = Cluster::new(cfg)?;
            let feature_role = roles::role(*role, &roles::default_name(*role), &cluster.settings);
            let mut body = json!({
                "name": name,
                "role_descriptors": { feature_role.name.clone(): feature_role.body() },
                "metadata": { "created_by": "skidder", "skidder_feature": role.as_str() },
            });
            if let Some(e) = expiration {
                body["expiration"] = Value::String(e.clone());
            }
            let reply = rt.block_on(cluster.call(
                Method::Post,
                "_security/api_key",
                Some(&body),
                "creating the API key",
            ))?;
            let id = reply["id"].as_str().unwrap_or_default().to_string();
            let secret = Secret::new(format!(
                "{id}:{}",
                reply["api_key"].as_str().unwrap_or_default()
            ));
            let expires = date_of(reply["expiration"].as_i64());
            if let Some(entry) = keystore_key {
                let path = Keystore::path_in(data_dir);
                let mut store = if path.exists() {
                    Keystore::open_with(&path, keystore::passphrase_from_env())?
                } else {
                    Keystore::create_with(&path, keystore::passphrase_from_env(), false)?
                };
                store.add(entry, secret, true)?;
                return Ok(if *json {
                    format!(
                        "{}\n",
                        json!({"id": id, "name": name, "expiration": reply["expiration"], "keystore_key": entry})
                    )
                } else {
                    format!(
                        "Name: {name}\nId: {id}\nExpiration: {expires}\nStored in the keystore {} as {entry} (use api_key: ${{{entry}}}); not printed.\n",
                        path.display()
                    )
                });
            }
            Ok(if *json {
                let mut v = reply.clone();
                v["credentials"] = Value::String(secret.expose().to_string());
                format!("{v}\n")
            } else {
                format!(
                    "Name: {name}\nId: {id}\nExpiration: {expires}\nAPI key (id:api_key, for output.elasticsearch.api_key; shown only this once):\n{}\n",
                    secret.expose()
                )
            })
        }
        ApikeyCommand::Info {
            id,
            name,
            valid_only,
            json,
        } => {
            let cluster = Cluster::new(cfg)?;
            // An API key may read only its own entry, by id (elastic-security.md §2).
            let own = cluster.client.auth().key_id();
            let query = match (id, name, &own) {
                (Some(id), _, _) => format!("id={}", enc(id)),
                (None, Some(n), _) => format!("name={}", enc(n)),
                (None, None, Some(own)) => format!("id={}", enc(own)),
                (None, None, None) => "owner=true".to_string(),
            };
            let reply = rt.block_on(cluster.call(
                Method::Get,
                &format!("_security/api_key?{query}"),
                None,
                "reading API keys",
            ))?;
            let now = time::OffsetDateTime::now_utc().unix_timestamp() * 1000;
            let keys: Vec<&Value> = reply["api_keys"]
                .as_array()
                .map(|a| a.iter().collect())
                .unwrap_or_default();
            let keys: Vec<&Value> = keys
                .into_iter()
                .filter(|k| {
                    !*valid_only
                        || (k["invalidated"].as_bool() != Some(true)
                            && k["expiration"].as_i64().is_none_or(|e| e > now))
                })
                .collect();
            if *json {
                let list: Vec<Value> = keys
                    .iter()
                    .map(|k| {
                        json!({"id": k["id"], "name": k["name"], "creation": k["creation"],
                               "expiration": k["expiration"], "invalidated": k["invalidated"],
                               "username": k["username"]})
                    })
                    .collect();
                return Ok(format!("{}\n", json!({ "api_keys": list })));
            }
            let mut out = String::new();
            for k in &keys {
                let _ = writeln!(
                    out,
                    "Id: {}\nName: {}\nUsername: {}\nCreation: {}\nExpiration: {}\nInvalidated: {}\n",
                    k["id"].as_str().unwrap_or(""),
                    k["name"].as_str().unwrap_or(""),
                    k["username"].as_str().unwrap_or(""),
                    date_of(k["creation"].as_i64()),
                    date_of(k["expiration"].as_i64()),
                    k["invalidated"].as_bool().unwrap_or(false),
                );
            }
            let _ = writeln!(out, "{} key(s)", keys.len());
            Ok(out)
        }
        ApikeyCommand::Invalidate { id, name, json } => {
            let cluster = Cluster::new(cfg)?;
            let own = cluster.client.auth().key_id();
            let mut body = match (id, name) {
                (Some(id), _) => json!({ "ids": [id] }),
                (None, Some(n)) => json!({ "name": n }),
                (None, None) => {
                    return Err(SecurityError::Usage("give --id or --name".to_string()))
                }
            };
            // manage_own_api_key needs owner=true, except for a key invalidating itself
            // (elastic-security.md §1.4).
            if own.is_none() || id.as_ref() != own.as_ref() {
                body["owner"] = Value::Bool(true);
            }
            let reply = rt.block_on(cluster.call(
                Method::Delete,
                "_security/api_key",
                Some(&body),
                "invalidating API keys",
            ))?;
            if *json {
                return Ok(format!("{reply}\n"));
            }
            let list = |k: &str| -> String {
                reply[k]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(Value::as_str)
                            .collect::<Vec<_>>()
                            .join(", ")
                    })
                    .unwrap_or_default()
            };
            Ok(format!(
                "Invalidated keys: {}\nPreviously invalidated: {}\nError count: {}\n",
                list("invalidated_api_keys"),
                list("previously_invalidated_api_keys"),
                reply["error_count"].as_u64().unwrap_or(0)
            ))
        }
        ApikeyCommand::Verify { credentials, json } => {
            let mut cfg = cfg.ok_or(SecurityError::NoOutput)?.clone();
            let key = if credentials == "-" {
                let mut text = String::new();
                std::io::stdin()
                    .read_to_string(&mut text)
                    .map_err(SecurityError::Stdin)?;
                text.trim().to_string()
            } else {
                credentials.clone()
            };
            cfg.api_key = Some(Secret::new(key));
            cfg.username = None;
            cfg.password = None;
            cfg.api_key_path = None;
            cfg.password_path = None;
            cfg.keystore_source = None;
            let cluster = Cluster::new(Some(&cfg))?;
            let who = rt.block_on(cluster.call(
                Method::Get,
                "_security/_authenticate",
                None,
                "authenticating the key",
            ))?;
            let pattern = roles::index_pattern(cluster.settings.index.source());
            let mut lines = Vec::new();
            let mut report = serde_json::Map::new();
            for feature in Feature::ALL {
                let role = roles::role(feature, &roles::default_name(feature), &cluster.settings);
                let index: Vec<Value> = role
                    .indices
                    .iter()
                    .map(|g| json!({"names": g.names, "privileges": g.privileges}))
                    .collect();
                let body = json!({"cluster": role.cluster, "index": index});
                let reply = rt.block_on(cluster.call(
                    Method::Post,
                    "_security/user/_has_privileges",
                    Some(&body),
                    "checking privileges",
                ))?;
                let mut held = Vec::new();
                let mut missing = Vec::new();
                for p in &role.cluster {
                    match reply["cluster"][*p].as_bool() {
                        Some(true) => held.push(format!("cluster {p}")),
                        _ => missing.push(format!("cluster {p}")),
                    }
                }
                for g in &role.indices {
                    for n in &g.names {
                        for p in &g.privileges {
                            match reply["index"][n][*p].as_bool() {
                                Some(true) => held.push(format!("{p} on {n}")),
                                _ => missing.push(format!("{p} on {n}")),
                            }
                        }
                    }
                }
                let ok = missing.is_empty();
                lines.push(format!(
                    "Authorized for the {} role: {}{}",
                    feature.as_str(),
                    if ok { "Yes" } else { "No" },
                    if ok {
                        String::new()
                    } else {
                        format!(" (missing {})", missing.join(", "))
                    }
                ));
                report.insert(
                    feature.as_str().to_string(),
                    json!({"authorized": ok, "held": held, "missing": missing}),
                );
            }
            let id = who["api_key"]["id"].as_str().unwrap_or("?");
            if *json {
                return Ok(format!(
                    "{}\n",
                    json!({"id": id, "index_pattern": pattern, "roles": report})
                ));
            }
            Ok(format!(
                "API key id {id} (owner {}), index pattern {pattern}\n{}\n",
                who["username"].as_str().unwrap_or("?"),
                lines.join("\n")
            ))
        }
    }
}

fn enc(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}
