//! Feature roles: the least privileges skidder needs in Elasticsearch, one role per
//! feature, as Elastic's guidance for shippers asks (elastic-security.md §3.3/§3.4). Pure:
//! the role bodies `skidder setup roles` prints and creates, the API key role descriptors
//! of `skidder apikey create`, and the privileges `skidder test output` checks, all come
//! from here, so they cannot disagree.
//!
//! Why each privilege (by the API skidder calls; docs/credentials.md has the table):
//! - writer: index `create_doc` (every bulk item is a `create`, or an `index` whose id
//!   Elasticsearch generates, which it authorizes as a create; see
//!   [`WriteNeeds`]), index `auto_configure` (a bulk request that creates a missing index
//!   or data stream, and dynamic mapping updates, since 8.0). No cluster privilege: the
//!   output calls only `_bulk`, `_security/_authenticate` and `_security/api_key?id=<own
//!   id>` (which needs none). `op_type: index` with ids skidder sends adds index `index`.
//! - api_key_manager: cluster `manage_own_api_key` for `skidder apikey`.
//! - monitoring: none. skidder does not ship its own metrics to Elasticsearch (they go to
//!   its log), so there is no monitoring role to grant.

use serde_json::{json, Value};

use super::settings::{ElasticsearchSettings, NonIndexableAction, WriteNeeds};

/// A feature a role is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Feature {
    /// Ship events with `output.elasticsearch`.
    Writer,
    /// Manage the credential's own API keys (`skidder apikey`).
    ApiKeyManager,
}

impl Feature {
    /// Every feature, in the order they are printed.
    pub const ALL: [Feature; 2] = [Feature::Writer, Feature::ApiKeyManager];

    /// The feature's name in messages and default role names.
    pub fn as_str(self) -> &'static str {
        match self {
            Feature::Writer => "writer",
            Feature::ApiKeyManager => "api_key_manager",
        }
    }
}

/// Index privileges on some names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexGrant {
    /// Index names or patterns.
    pub names: Vec<String>,
    /// Privilege names.
    pub privileges: Vec<&'static str>,
}

/// One feature role: what Elasticsearch's `PUT /_security/role/<name>` takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeatureRole {
    /// The feature.
    pub feature: Feature,
    /// The role's name.
    pub name: String,
    /// Cluster privileges.
    pub cluster: Vec<&'static str>,
    /// Index privileges.
    pub indices: Vec<IndexGrant>,
}

impl FeatureRole {
    /// The role body, in Elasticsearch's role descriptor schema (`cluster`, `indices` with
    /// `names` and `privileges`, `metadata`); the same shape is an API key's
    /// `role_descriptors` entry.
    pub fn body(&self) -> Value {
        json!({
            "cluster": self.cluster,
            "indices": self.indices.iter().map(|g| json!({
                "names": g.names,
                "privileges": g.privileges,
                "allow_restricted_indices": false,
            })).collect::<Vec<_>>(),
            "metadata": { "skidder_feature": self.feature.as_str() },
        })
    }
}

/// The default name of a feature's role: `skidder_writer`, `skidder_api_key_manager`.
pub fn default_name(feature: Feature) -> String {
    format!("skidder_{}", feature.as_str())
}

/// The index pattern a format string writes to: every `%{...}` becomes `*`, lower-cased
/// as Elasticsearch's index names are.
pub fn index_pattern(format: &str) -> String {
    let mut out = String::with_capacity(format.len());
    let mut rest = format;
    while let Some(start) = rest.find("%{") {
        out.push_str(&rest[..start]);
        match rest[start..].find('}') {
            Some(end) => {
                if !out.ends_with('*') {
                    out.push('*');
                }
                rest = &rest[start + end + 1..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out.to_lowercase()
}

/// The writer role's index privileges on the configured index pattern.
pub fn writer_privileges(settings: &ElasticsearchSettings) -> Vec<&'static str> {
    let needs = WriteNeeds::of(settings.op_type, settings.document_id);
    let mut privileges = vec![needs.always];
    privileges.extend(needs.with_metadata_id);
    privileges.push("auto_configure");
    privileges
}

/// The role of `feature` for `settings`, named `name`.
pub fn role(feature: Feature, name: &str, settings: &ElasticsearchSettings) -> FeatureRole {
    match feature {
        Feature::Writer => {
            let mut indices = vec![IndexGrant {
                names: vec![index_pattern(settings.index.source())],
                privileges: writer_privileges(settings),
            }];
            if let NonIndexableAction::DeadLetter { index } = &settings.non_indexable {
                // Dead-letter items are `index` actions without an id: a create.
                indices.push(IndexGrant {
                    names: vec![index.clone()],
                    privileges: vec!["create_doc", "auto_configure"],
                });
            }
            FeatureRole {
                feature,
                name: name.to_string(),
                cluster: Vec::new(),
                indices,
            }
        }
        Feature::ApiKeyManager => FeatureRole {
            feature,
            name: name.to_string(),
            cluster: vec!["manage_own_api_key"],
            indices: Vec::new(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ElasticsearchOutputConfig;

    fn settings(f: impl FnOnce(&mut ElasticsearchOutputConfig)) -> ElasticsearchSettings {
        let mut c = ElasticsearchOutputConfig {
            hosts: vec!["localhost".into()],
            ..Default::default()
        };
        f(&mut c);
        ElasticsearchSettings::from_config(&c).unwrap()
    }

    #[test]
    fn default_writer_is_create_doc_and_auto_configure_only() {
        let r = role(Feature::Writer, "w", &settings(|_| {}));
        assert_eq!(
            r.body(),
            json!({"cluster": [], "indices": [{"names": ["skidder-*"],
              "privileges": ["create_doc", "auto_configure"], "allow_restricted_indices": false}],
              "metadata": {"skidder_feature": "writer"}})
        );
        let r = role(
            Feature::Writer,
            "w",
            &settings(|c| {
                c.op_type = Some("index".into());
                c.document_id = crate::config::DocumentId::Hash;
                c.index = Some("Logs-%{[svc]}-x".into());
            }),
        );
        assert_eq!(r.indices[0].names, ["logs-*-x"]);
        assert_eq!(r.indices[0].privileges, ["index", "auto_configure"]);
        let m = role(Feature::ApiKeyManager, "m", &settings(|_| {}));
        assert_eq!(m.cluster, ["manage_own_api_key"]);
        assert!(m.indices.is_empty());
    }
}
