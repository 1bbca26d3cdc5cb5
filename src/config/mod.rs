//! The configuration layer: Beats-style YAML, environment and `-E` overrides merged by
//! figment into the typed [`Config`], validated once.

pub mod schema;
pub mod units;

use std::path::{Path, PathBuf};

use figment::providers::{Format, Yaml};
use figment::Figment;

pub use schema::*;
pub use units::{ByteSize, Duration};

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// One or more problems in the merged configuration; each names its key and file.
    #[error("{} problem(s) in the configuration:\n{}", .0.len(), .0.join("\n"))]
    Invalid(Vec<String>),
}

/// Loads `path`, applies `-E key=value` overrides (values parsed as YAML), and validates.
///
/// # Errors
/// [`ConfigError`] naming the file, the key and the problem.
pub fn load(path: &Path, overrides: &[String]) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let mut figment = Figment::new().merge(Yaml::string(&text));
    for o in overrides {
        let Some((key, value)) = o.split_once('=') else {
            return Err(ConfigError::Invalid(vec![format!(
                "-E {o}: expected key=value"
            )]));
        };
        figment = figment.merge(Yaml::string(&format!("{key}: {value}")).nested());
    }
    figment
        .extract::<Config>()
        .map_err(|e| ConfigError::Invalid(vec![format!("{}: {e}", path.display())]))
}
